//! The `kefu` command line: start/stop/restart/reload/status/connections (Workerman's verbs),
//! plus the hidden `worker` subcommand the master execs.
//!
//! Commands find their master through the pid file (`-c`/`--pid-file`) and talk to it over the
//! control socket `<pid_file>.sock`; signals are the fallback when the socket is unreachable.

pub(crate) mod agent;
pub(crate) mod client;
pub(crate) mod key;
pub(crate) mod password;
pub(crate) mod table;

use crate::config::{Config, ConfigError, Overrides};
use crate::ipc::{CliReply, CliRequest, MasterStatus};
use crate::master::daemon::{self, Daemonized, InstanceLock, LockError, ReadyNotify, StartReport};
use crate::master::spawn::SpawnSpec;
use crate::master::{self, control, MasterOptions};
use crate::sys::process;
use clap::{Args, Parser, Subcommand};
use std::collections::HashMap;
use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Config file used when `-c` is not given, if it exists in the current directory.
pub const DEFAULT_CONFIG: &str = "kefu.toml";

/// How often `stop` checks whether the master is gone (Workerman polls every 10 ms too).
const STOP_POLL: Duration = Duration::from_millis(10);
/// Extra time `stop` waits beyond stop_timeout before declaring failure (Workerman's +3 s).
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long `status`/`connections` wait for the master (it gives workers 1 s).
const QUERY_WAIT: Duration = Duration::from_secs(5);

/// kefu: real-time customer-service server.
#[derive(Debug, Parser)]
#[command(name = "kefu", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Start the server (foreground unless -d).
    Start(StartArgs),
    /// Stop the running server.
    Stop(StopArgs),
    /// Stop, then start again.
    Restart(RestartArgs),
    /// Replace the workers one at a time (new binary and config, no downtime).
    Reload(ReloadArgs),
    /// Show master and worker status.
    Status(StatusArgs),
    /// List every live connection.
    Connections(ConnectionsArgs),
    /// Manage the kefu app's agents (add, list, remove, passwd).
    Agent(agent::AgentArgs),
    /// Manage the kefu app's businesses (add, list, secret).
    Business(agent::BusinessArgs),
    /// Manage the kefu app's token signing key (rotate).
    Key(key::KeyArgs),
    /// Internal: run one worker process (exec'd by the master).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Options that build the configuration (file plus overrides).
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Config file (default: ./kefu.toml if it exists).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Application to run (echo, chat...).
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// Listener URL, repeatable (websocket://IP:PORT, text://IP:PORT, http://IP:PORT).
    #[arg(long = "listen", value_name = "URL")]
    pub listen: Vec<String>,
    /// Number of worker processes.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Pid file (lock and control socket sit next to it).
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Log file (daemon mode).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Data directory.
    #[arg(long, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
}

/// Options that locate a running instance.
#[derive(Debug, Clone, Default, Args)]
pub struct LocateArgs {
    /// Config file of the instance (default: ./kefu.toml if it exists).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Pid file of the instance.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
}

/// `kefu start`.
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// Run as a daemon; returns once every worker listens.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Configuration.
    #[command(flatten)]
    pub cfg: ConfigArgs,
}

/// `kefu stop`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Graceful: workers stop accepting and exit once their connections are gone.
    #[arg(short = 'g', long = "graceful")]
    pub graceful: bool,
    /// Instance.
    #[command(flatten)]
    pub locate: LocateArgs,
}

/// `kefu restart`.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// Start as a daemon.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Stop gracefully.
    #[arg(short = 'g', long = "graceful")]
    pub graceful: bool,
    /// Configuration.
    #[command(flatten)]
    pub cfg: ConfigArgs,
}

/// `kefu reload`.
#[derive(Debug, Clone, Args)]
pub struct ReloadArgs {
    /// Old workers drain their connections instead of closing them.
    #[arg(short = 'g', long = "graceful")]
    pub graceful: bool,
    /// Instance.
    #[command(flatten)]
    pub locate: LocateArgs,
}

/// `kefu status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Live: refresh every second.
    #[arg(short = 'd', long = "live")]
    pub live: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Instance.
    #[command(flatten)]
    pub locate: LocateArgs,
}

/// `kefu connections`.
#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Instance.
    #[command(flatten)]
    pub locate: LocateArgs,
}

/// `kefu worker` (hidden).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Worker slot.
    #[arg(long, value_name = "N")]
    pub worker_id: usize,
    /// Same configuration options as `start`.
    #[command(flatten)]
    pub cfg: ConfigArgs,
}

/// `-c` if given, else ./kefu.toml when it exists, else none (built-in defaults).
fn config_path(explicit: &Option<PathBuf>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    }
}

impl ConfigArgs {
    /// The command-line overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            app: self.app.clone(),
            listen: self.listen.clone(),
            workers: self.workers,
            pid_file: self.pid_file.clone(),
            log_file: self.log_file.clone(),
            data_dir: self.data_dir.clone(),
        }
    }

    /// Load the file (if any) and apply the overrides.
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(config_path(&self.config).as_deref(), &self.overrides())
    }

    /// Arguments for an exec'd worker: the config file made absolute plus the overrides, so the
    /// worker (re-)reads the same file and applies the same flags.
    pub fn worker_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(p) = config_path(&self.config) {
            let p = std::path::absolute(&p).unwrap_or(p);
            a.extend(["-c".to_string(), p.display().to_string()]);
        }
        a.extend(self.overrides().to_args());
        a
    }
}

impl LocateArgs {
    /// The config, only to find the instance: with an explicit `--pid-file` a broken config file
    /// is not fatal (the admin may be reloading precisely to find out it is broken).
    fn load(&self) -> Result<Config, ConfigError> {
        let ov = Overrides {
            pid_file: self.pid_file.clone(),
            ..Default::default()
        };
        match Config::load(config_path(&self.config).as_deref(), &ov) {
            Err(e) if self.pid_file.is_some() => {
                eprintln!("kefu: warning: {e}; using --pid-file and default timeouts");
                Config::load(None, &ov)
            }
            r => r,
        }
    }
}

/// Run a parsed command (everything except `worker`); returns the exit code.
pub fn run(cmd: Cmd) -> i32 {
    let r = match cmd {
        Cmd::Start(a) => start(&a.cfg, a.daemon),
        Cmd::Stop(a) => a
            .locate
            .load()
            .map_err(Into::into)
            .and_then(|cfg| stop(&cfg, a.graceful)),
        Cmd::Restart(a) => restart(&a),
        Cmd::Reload(a) => reload(&a),
        Cmd::Status(a) => status(&a),
        Cmd::Connections(a) => connections(&a),
        Cmd::Agent(a) => agent::run_agent(&a),
        Cmd::Business(a) => agent::run_business(&a),
        Cmd::Key(a) => key::run_key(&a),
        Cmd::Worker(_) => Err("the worker subcommand is run by the master".into()),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kefu: {e}");
            1
        }
    }
}

type CliResult = Result<i32, Box<dyn Error>>;

/// Make pid and log paths absolute now: the daemon keeps the cwd, but absolute paths in logs and
/// status make it obvious which instance is which.
fn absolutize(cfg: &mut Config) {
    for p in [&mut cfg.pid_file, &mut cfg.log_file, &mut cfg.data_dir] {
        if let Ok(a) = std::path::absolute(&*p) {
            *p = a;
        }
    }
}

/// First start of the kefu app on an empty store: the demo business and its one-time agent
/// login. Only once the server is up: created before, a start that then fails (port in use)
/// would print a login nobody can use yet, and the next good start would print none.
fn print_demo_login(cfg: &Config) {
    match crate::app::kefu::demo::first_run(cfg) {
        Ok(Some(text)) => {
            // The foreground master's stdout may be closed: no panicking print!.
            let mut out = std::io::stdout();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        Ok(None) => {}
        Err(e) => eprintln!("kefu: warning: could not create the demo business: {e}"),
    }
}

fn print_foreground_report(r: &StartReport) {
    match r {
        StartReport::Ready {
            app,
            workers,
            listeners,
            ..
        } => {
            // This runs inside the master: a closed stdout must not panic it (print! would).
            let mut out = std::io::stdout();
            let _ = out.write_all(table::banner(app, *workers, listeners, false).as_bytes());
            let _ = out.flush();
        }
        StartReport::Failed { reason } => eprintln!("kefu start failed: {reason}"),
    }
}

fn start(args: &ConfigArgs, daemon_mode: bool) -> CliResult {
    let mut cfg = match args.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kefu start failed: {e}");
            return Ok(1);
        }
    };
    absolutize(&mut cfg);
    control::check_path(&cfg.control_socket())?;
    // The pid, lock and socket share the pid file's directory; the log is used only by a daemon.
    daemon::check_dir(&cfg.pid_file)?;
    if daemon_mode {
        daemon::check_dir(&cfg.log_file)?;
    }
    let lock = match InstanceLock::acquire(&cfg.pid_file, &cfg.lock_file()) {
        Ok(l) => l,
        Err(e @ LockError::Running(_)) => {
            eprintln!("{e}");
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    if let Err(e) = crate::app::kefu::demo::prepare(&cfg) {
        eprintln!("kefu: warning: could not open the store: {e}");
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let mut spawn = SpawnSpec {
        exe,
        config_args: args.worker_args(),
        master_pid: 0,
    };
    let notify = if daemon_mode {
        match daemon::daemonize(&cfg.log_file)? {
            Daemonized::Parent(waiter) => {
                drop(lock);
                return Ok(match waiter.wait() {
                    StartReport::Ready {
                        app,
                        workers,
                        listeners,
                        ..
                    } => {
                        print!("{}", table::banner(&app, workers, &listeners, true));
                        print_demo_login(&cfg);
                        0
                    }
                    StartReport::Failed { reason } => {
                        eprintln!("kefu start failed: {reason}");
                        1
                    }
                });
            }
            Daemonized::Daemon(n) => n,
        }
    } else {
        let demo_cfg = cfg.clone();
        ReadyNotify::Callback(Box::new(move |r| {
            print_foreground_report(r);
            if matches!(r, StartReport::Ready { .. }) {
                print_demo_login(&demo_cfg);
            }
        }))
    };
    spawn.master_pid = std::process::id() as i32;
    Ok(master::run(MasterOptions {
        cfg,
        spawn,
        lock,
        notify,
    }))
}

/// The running master's pid, or `None` (with a message printed) if there is none.
fn find_master(cfg: &Config) -> Option<i32> {
    match daemon::running_master(&cfg.pid_file, &cfg.lock_file()) {
        Some(Some(pid)) => Some(pid),
        Some(None) => {
            eprintln!(
                "kefu holds {} but its pid file {} is unreadable",
                cfg.lock_file().display(),
                cfg.pid_file.display()
            );
            None
        }
        None => {
            eprintln!("kefu not run (no master for {})", cfg.pid_file.display());
            None
        }
    }
}

fn stop(cfg: &Config, graceful: bool) -> CliResult {
    let Some(pid) = find_master(cfg) else {
        return Ok(1);
    };
    println!(
        "kefu is stopping ({}) ...",
        if graceful { "graceful" } else { "fast" }
    );
    let req = CliRequest::Stop { graceful };
    if let Err(e) = client::request(&cfg.control_socket(), &req, Some(QUERY_WAIT)) {
        let sig = if graceful {
            libc::SIGQUIT
        } else {
            libc::SIGINT
        };
        eprintln!("{e}; sending {} instead", process::signal_name(sig));
        process::kill(pid, sig)?;
    }
    let limit = if !graceful {
        Some(cfg.stop_timeout + STOP_GRACE)
    } else if !cfg.graceful_timeout.is_zero() {
        Some(cfg.graceful_timeout + cfg.stop_timeout + STOP_GRACE)
    } else {
        // Workerman waits as long as the connections last.
        None
    };
    let started = Instant::now();
    while process::is_alive(pid) {
        if limit.is_some_and(|l| started.elapsed() > l) {
            eprintln!("kefu stop fail: master {pid} still running");
            return Ok(1);
        }
        std::thread::sleep(STOP_POLL);
    }
    println!("kefu stopped");
    Ok(0)
}

fn restart(a: &RestartArgs) -> CliResult {
    let cfg = a.cfg.load()?;
    if daemon::running_master(&cfg.pid_file, &cfg.lock_file()).is_some() {
        let code = stop(&cfg, a.graceful)?;
        if code != 0 {
            return Ok(code);
        }
    }
    start(&a.cfg, a.daemon)
}

fn reload(a: &ReloadArgs) -> CliResult {
    let cfg = a.locate.load()?;
    let Some(pid) = find_master(&cfg) else {
        return Ok(1);
    };
    let req = CliRequest::Reload {
        graceful: a.graceful,
    };
    // No timeout: the master answers when the last slot is replaced (or the reload fails), and
    // closes the socket if it dies.
    match client::request(&cfg.control_socket(), &req, None) {
        Ok(CliReply::Done { pids, .. }) => {
            let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
            println!("kefu reloaded, workers: {}", list.join(" "));
            Ok(0)
        }
        Ok(CliReply::Error { reason }) => {
            eprintln!("kefu reload failed: {reason}");
            Ok(1)
        }
        Ok(other) => Err(format!("unexpected reply: {other:?}").into()),
        Err(e) => {
            let sig = if a.graceful {
                libc::SIGUSR2
            } else {
                libc::SIGUSR1
            };
            eprintln!("{e}; sending {} instead", process::signal_name(sig));
            process::kill(pid, sig)?;
            println!("kefu reload signalled (progress in the log)");
            Ok(0)
        }
    }
}

fn fetch_status(cfg: &Config) -> Result<MasterStatus, Box<dyn Error>> {
    match client::request(&cfg.control_socket(), &CliRequest::Status, Some(QUERY_WAIT))? {
        CliReply::Status { status } => Ok(status),
        CliReply::Error { reason } => Err(reason.into()),
        other => Err(format!("unexpected reply: {other:?}").into()),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "N/A".into())
}

fn status(a: &StatusArgs) -> CliResult {
    let cfg = a.locate.load()?;
    if find_master(&cfg).is_none() {
        return Ok(1);
    }
    let mut previous: Option<(Instant, HashMap<u32, u64>)> = None;
    loop {
        let s = fetch_status(&cfg)?;
        if a.json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            let now = Instant::now();
            let ctx = table::StatusContext {
                now: crate::log::now_secs(),
                load_average: load_average(),
                kernel: process::kernel_release(),
                interval: previous
                    .as_ref()
                    .map(|(t, _)| now.duration_since(*t).as_secs_f64())
                    .unwrap_or(1.0),
                previous: previous.take().map(|(_, m)| m),
            };
            let text = table::status(&s, &ctx);
            if a.live {
                // Workerman's clear-screen sequence.
                print!("\x1b[H\x1b[2J\x1b(B\x1b[m{text}\nPress Ctrl+C to quit.\n\n");
            } else {
                print!("{text}");
            }
            previous = Some((
                now,
                s.workers.iter().map(|w| (w.pid, w.total_request)).collect(),
            ));
        }
        let _ = std::io::stdout().flush();
        if !a.live {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn connections(a: &ConnectionsArgs) -> CliResult {
    let cfg = a.locate.load()?;
    if find_master(&cfg).is_none() {
        return Ok(1);
    }
    match client::request(
        &cfg.control_socket(),
        &CliRequest::Connections,
        Some(QUERY_WAIT),
    )? {
        CliReply::Connections { conns } => {
            if a.json {
                println!("{}", serde_json::to_string(&conns)?);
            } else {
                print!("{}", table::connections(&conns, &cfg.app));
            }
            Ok(0)
        }
        CliReply::Error { reason } => Err(reason.into()),
        other => Err(format!("unexpected reply: {other:?}").into()),
    }
}

/// Resolve the pid file a command would use (for tests and docs).
pub fn pid_file_for(
    config: Option<&Path>,
    pid_file: Option<&Path>,
) -> Result<PathBuf, ConfigError> {
    let l = LocateArgs {
        config: config.map(Path::to_path_buf),
        pid_file: pid_file.map(Path::to_path_buf),
    };
    l.load().map(|c| c.pid_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cmd {
        Cli::try_parse_from(args).unwrap().cmd
    }

    #[test]
    fn start_flags_map_to_overrides_and_worker_args() {
        let Cmd::Start(a) = parse(&[
            "kefu",
            "start",
            "-d",
            "--app",
            "chat",
            "--listen",
            "text://127.0.0.1:1",
            "--listen",
            "websocket://127.0.0.1:2",
            "--workers",
            "3",
            "--pid-file",
            "/tmp/k.pid",
        ]) else {
            panic!("not start")
        };
        assert!(a.daemon);
        let ov = a.cfg.overrides();
        assert_eq!(ov.app.as_deref(), Some("chat"));
        assert_eq!(ov.listen.len(), 2);
        assert_eq!(ov.workers, Some(3));
        let cfg = a.cfg.load().unwrap();
        assert_eq!(cfg.workers, 3);
        assert_eq!(cfg.listen[1].to_string(), "websocket://127.0.0.1:2");
        assert_eq!(cfg.control_socket(), PathBuf::from("/tmp/k.pid.sock"));
        let w = a.cfg.worker_args();
        assert_eq!(
            w,
            [
                "--app",
                "chat",
                "--listen",
                "text://127.0.0.1:1",
                "--listen",
                "websocket://127.0.0.1:2",
                "--workers",
                "3",
                "--pid-file",
                "/tmp/k.pid"
            ]
        );
        // The worker parses what the master passes.
        let mut argv = vec!["kefu", "worker", "--worker-id", "2"];
        argv.extend(w.iter().map(String::as_str));
        let Cmd::Worker(wa) = parse(&argv) else {
            panic!("not worker")
        };
        assert_eq!(wa.worker_id, 2);
        assert_eq!(wa.cfg.load().unwrap().workers, 3);
    }

    #[test]
    fn verbs_and_modes() {
        assert!(matches!(
            parse(&["kefu", "stop", "-g"]),
            Cmd::Stop(StopArgs { graceful: true, .. })
        ));
        assert!(matches!(
            parse(&["kefu", "restart", "-d", "-g"]),
            Cmd::Restart(RestartArgs {
                daemon: true,
                graceful: true,
                ..
            })
        ));
        assert!(matches!(
            parse(&["kefu", "reload"]),
            Cmd::Reload(ReloadArgs {
                graceful: false,
                ..
            })
        ));
        assert!(matches!(
            parse(&["kefu", "status", "-d", "--json"]),
            Cmd::Status(StatusArgs {
                live: true,
                json: true,
                ..
            })
        ));
        let Cmd::Connections(c) = parse(&["kefu", "connections", "--pid-file", "x.pid"]) else {
            panic!()
        };
        assert_eq!(c.locate.pid_file, Some(PathBuf::from("x.pid")));
        assert_eq!(
            pid_file_for(None, Some(Path::new("y.pid"))).unwrap(),
            PathBuf::from("y.pid")
        );
    }
}
