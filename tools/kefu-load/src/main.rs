//! kefu-load: WebSocket / text-protocol load generator for kefu and its peer servers.
//!
//! Every subcommand prints exactly one JSON line on stdout; progress goes to stderr.
//! Exit codes: 0 run completed and correct, 1 run completed with losses/errors, 2 fatal.

mod conn;
mod runner;
mod scenarios;
mod stats;
mod sys;
mod target;
mod throttle;
mod ws;

use clap::{Args, Parser, Subcommand};
use runner::LoadError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use target::Target;

/// Most connections one run may open (the per-process fd limit usually binds first).
pub const MAX_CONNECTIONS: usize = 200_000;
/// Longest phase (duration, hold, warmup) one run may last, in seconds.
pub const MAX_SECONDS: f64 = 3600.0;

#[derive(Parser)]
#[command(
    name = "kefu-load",
    version,
    about = "Load generator for kefu and peer servers (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open N connections at a fixed rate and hold them; report setup rate/latency and server memory per connection.
    Connect(scenarios::connect::ConnectArgs),
    /// Echo round trips with W messages in flight per connection (or a fixed total rate).
    Echo(scenarios::echo::EchoArgs),
    /// workerman-chat room broadcast: deliveries/s, latency, lost and duplicated deliveries.
    Broadcast(scenarios::broadcast::BroadcastArgs),
    /// workerman-chat private messages to random other clients.
    Private(scenarios::private::PrivateArgs),
    /// Customer-service (kefu app) protocol: agents, visitors, routing, acked and delivered messages.
    Kefu(scenarios::kefu::KefuArgs),
}

/// Options every scenario takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Server URL: ws://HOST:PORT/PATH or text://HOST:PORT, or over TLS wss://... and
    /// text+tls://... (127.0.0.0/8 or ::1 only).
    #[arg(long, default_value = "ws://127.0.0.1:8282/")]
    pub url: String,
    /// PEM file of the CA a TLS target's certificate is checked against (wss://, text+tls://).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Event-loop threads, each owning an equal share of the connections.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Server root pid: its process tree's CPU (and memory for `connect`) is sampled from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// File holding the server root pid (alternative to --server-pid).
    #[arg(long)]
    pub server_pid_file: Option<PathBuf>,
    /// Seconds a single connection may take to connect + upgrade before counting as failed.
    #[arg(long, default_value_t = 10.0)]
    pub setup_timeout: f64,
    /// Cgroup directory (its CPU quota set beforehand) that the server's processes are moved
    /// into for the measured phase and the drain, then moved out of; needs --server-pid.
    #[arg(long)]
    pub throttle_cgroup: Option<PathBuf>,
    /// Shell command run (and waited for) with the argument `start` just before the measured
    /// window opens and `stop` right after it ends (after the drain): e.g. to switch a
    /// profiler's collection on and off so setup and teardown are not counted.
    #[arg(long)]
    pub window_cmd: Option<String>,
}

impl Common {
    /// Validates the URL and thread count; returns the target.
    pub fn target(&self) -> Result<Arc<Target>, LoadError> {
        if self.threads == 0 || self.threads > 64 {
            return Err(LoadError::Usage("--threads must be 1..=64".into()));
        }
        let mut t = Target::parse(&self.url)?;
        t.trust(self.ca.as_deref())?;
        Ok(Arc::new(t))
    }

    /// The server pid from --server-pid or --server-pid-file, if any.
    pub fn server_pid(&self) -> Result<Option<u32>, LoadError> {
        if let Some(p) = self.server_pid {
            return Ok(Some(p));
        }
        let Some(path) = &self.server_pid_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| LoadError::Usage(format!("cannot read {}: {e}", path.display())))?;
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| LoadError::Usage(format!("{} does not hold a pid", path.display())))
    }

    /// The throttling cgroup, if asked for: a directory holding `cgroup.procs`.
    pub fn throttle(&self) -> Result<Option<&Path>, LoadError> {
        let Some(dir) = &self.throttle_cgroup else {
            return Ok(None);
        };
        if !dir.join("cgroup.procs").is_file() {
            return Err(LoadError::Usage(format!(
                "{} is not a cgroup directory (no cgroup.procs)",
                dir.display()
            )));
        }
        if self.server_pid.is_none() && self.server_pid_file.is_none() {
            return Err(LoadError::Usage(
                "--throttle-cgroup needs --server-pid or --server-pid-file".into(),
            ));
        }
        Ok(Some(dir))
    }

    /// Per-connection setup timeout.
    pub fn setup_limit(&self) -> Duration {
        Duration::from_secs_f64(self.setup_timeout.clamp(0.1, 600.0))
    }
}

/// Refuses connection counts above the cap or the fd limit (raised to the hard limit first).
pub fn check_connections(n: usize) -> Result<(), LoadError> {
    if n == 0 || n > MAX_CONNECTIONS {
        return Err(LoadError::Usage(format!(
            "connection count {n} out of range 1..={MAX_CONNECTIONS}"
        )));
    }
    let limit = sys::raise_nofile_limit()? as usize;
    // Leave headroom for stdio, epoll and /proc reads.
    if n + 64 > limit {
        return Err(LoadError::Usage(format!(
            "{n} connections need more file descriptors than RLIMIT_NOFILE allows ({limit}); \
             run several kefu-load processes side by side"
        )));
    }
    Ok(())
}

/// Validates a duration option in seconds.
pub fn check_seconds(name: &str, secs: f64) -> Result<Duration, LoadError> {
    if !(0.0..=MAX_SECONDS).contains(&secs) {
        return Err(LoadError::Usage(format!(
            "--{name} must be within 0..={MAX_SECONDS} s"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Validates a rate option.
pub fn check_rate(name: &str, rate: f64) -> Result<f64, LoadError> {
    if !(rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0) {
        return Err(LoadError::Usage(format!(
            "--{name} must be within (0, 1e7]"
        )));
    }
    Ok(rate)
}

/// A finished run: its JSON report and whether it met the correctness bar.
pub struct Outcome {
    /// Report object printed as one line.
    pub json: serde_json::Value,
    /// No losses, duplicates, mismatches or failures.
    pub ok: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = match &cli.cmd {
        Cmd::Connect(a) => a.common(),
        Cmd::Echo(a) => a.common(),
        Cmd::Broadcast(a) => a.common(),
        Cmd::Private(a) => a.common(),
        Cmd::Kefu(a) => a.common(),
    };
    runner::set_window_cmd(common.window_cmd.clone());
    let (name, result) = match &cli.cmd {
        Cmd::Connect(a) => ("connect", scenarios::connect::run(a)),
        Cmd::Echo(a) => ("echo", scenarios::echo::run(a)),
        Cmd::Broadcast(a) => ("broadcast", scenarios::broadcast::run(a)),
        Cmd::Private(a) => ("private", scenarios::private::run(a)),
        Cmd::Kefu(a) => ("kefu", scenarios::kefu::run(a)),
    };
    match result {
        Ok(out) => {
            println!("{}", out.json);
            if out.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({ "scenario": name, "error": e.to_string() })
            );
            eprintln!("kefu-load {name}: {e}");
            ExitCode::from(2)
        }
    }
}
