//! `kefu.toml` plus command-line overrides, turned into one typed [`Config`].
//!
//! Every key has a default so `kefu start` runs with no file at all. Durations are
//! given in seconds (floats allowed) in the file and held as [`Duration`] here.

mod listen;
mod sections;

pub use listen::*;
pub use sections::*;

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a config could not be used.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read(PathBuf, std::io::Error),
    /// The file is not valid TOML or has a wrong key or type.
    Parse(PathBuf, String),
    /// A listen URL is malformed.
    BadListen(String),
    /// A value is out of range.
    Invalid(&'static str),
    /// A TLS listener without its certificate, or a certificate for a plain listener.
    Tls(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read(p, e) => write!(f, "cannot read config {}: {e}", p.display()),
            ConfigError::Parse(p, e) => write!(f, "bad config {}: {e}", p.display()),
            ConfigError::BadListen(u) => write!(
                f,
                "bad listen url {u:?}: expected websocket://IP:PORT, text://IP:PORT, http://IP:PORT or api://IP:PORT, or over \
                 TLS wss://, https://, text+tls://, api+tls://"
            ),
            ConfigError::Tls(why) => write!(f, "tls: {why}"),
            ConfigError::Invalid(what) => write!(f, "invalid config value: {what}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The whole configuration of one kefu instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Application run by the workers: `kefu` (customer service, the default), `chat`, `bridge`, `echo`.
    pub app: String,
    /// Number of worker processes (default: number of CPUs).
    pub workers: usize,
    /// Listener URLs.
    #[serde(deserialize_with = "de_listen")]
    pub listen: Vec<ListenSpec>,
    /// Pid file of the master; its lock file is `<pid_file>.lock`, its control socket `<pid_file>.sock`.
    pub pid_file: PathBuf,
    /// Log file (daemon mode sends stdout/stderr here).
    pub log_file: PathBuf,
    /// Directory for persistent data.
    pub data_dir: PathBuf,
    /// Seconds a worker gets to exit on a fast stop/reload before SIGKILL (Workerman's stopTimeout).
    #[serde(with = "secs")]
    pub stop_timeout: Duration,
    /// Seconds a gracefully stopping worker may drain (0 = wait for every connection to end).
    #[serde(with = "secs")]
    pub graceful_timeout: Duration,
    /// Connection limits and timeouts.
    pub limits: Limits,
    /// WebSocket options.
    pub websocket: WebSocketConfig,
    /// Gateway options.
    pub gateway: GatewayConfig,
    /// `[gatewayworker]`: inner ports and Register.
    pub gatewayworker: GatewayWorkerConfig,
    /// Bridge app options.
    pub bridge: BridgeConfig,
    /// Customer-service app options.
    pub kefu: KefuConfig,
    /// Cluster membership (absent: a single node, no Redis).
    pub cluster: Option<ClusterConfig>,
    /// Path of the file this config was read from, if any (workers re-read it on reload).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            app: "kefu".into(),
            workers: num_cpus(),
            listen: vec![
                "websocket://0.0.0.0:8282".parse().expect("static url"),
                "text://0.0.0.0:8283".parse().expect("static url"),
            ],
            pid_file: PathBuf::from("kefu.pid"),
            log_file: PathBuf::from("kefu.log"),
            data_dir: PathBuf::from("data"),
            stop_timeout: Duration::from_secs(2),
            graceful_timeout: Duration::from_secs(0),
            limits: Limits::default(),
            websocket: WebSocketConfig::default(),
            gateway: GatewayConfig::default(),
            gatewayworker: GatewayWorkerConfig::default(),
            bridge: BridgeConfig::default(),
            kefu: KefuConfig::default(),
            cluster: None,
            source: None,
        }
    }
}

/// Command-line values that override the file (`--app`, `--listen`, `--workers`, `--pid-file`, `--log-file`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--app NAME`
    pub app: Option<String>,
    /// `--listen URL`, repeatable; replaces the file's list when given.
    pub listen: Vec<String>,
    /// `--workers N`
    pub workers: Option<usize>,
    /// `--pid-file PATH`
    pub pid_file: Option<PathBuf>,
    /// `--log-file PATH`
    pub log_file: Option<PathBuf>,
    /// `--data-dir PATH`
    pub data_dir: Option<PathBuf>,
}

impl Overrides {
    /// The overrides as command-line words, so the master can hand them to the workers it execs.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(v) = &self.app {
            a.extend(["--app".into(), v.clone()]);
        }
        for l in &self.listen {
            a.extend(["--listen".into(), l.clone()]);
        }
        if let Some(v) = self.workers {
            a.extend(["--workers".into(), v.to_string()]);
        }
        if let Some(v) = &self.pid_file {
            a.extend(["--pid-file".into(), v.display().to_string()]);
        }
        if let Some(v) = &self.log_file {
            a.extend(["--log-file".into(), v.display().to_string()]);
        }
        if let Some(v) = &self.data_dir {
            a.extend(["--data-dir".into(), v.display().to_string()]);
        }
        a
    }
}

impl Config {
    /// Read `path` (if given; a missing default file is not an error) and apply `ov`.
    pub fn load(path: Option<&Path>, ov: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::Read(p.to_path_buf(), e))?;
                let mut c: Config = toml::from_str(&text)
                    .map_err(|e| ConfigError::Parse(p.to_path_buf(), e.to_string()))?;
                c.source = Some(p.to_path_buf());
                c
            }
            None => Config::default(),
        };
        if let Some(a) = &ov.app {
            cfg.app = a.clone();
        }
        if !ov.listen.is_empty() {
            let mut listen: Vec<ListenSpec> = ov
                .listen
                .iter()
                .map(|u| u.parse())
                .collect::<Result<_, _>>()?;
            // A URL the file lists too keeps the file's options (its certificate...).
            for l in &mut listen {
                if let Some(f) = cfg.listen.iter().find(|f| f.to_string() == l.to_string()) {
                    *l = f.clone();
                }
            }
            cfg.listen = listen;
        }
        if let Some(w) = ov.workers {
            cfg.workers = w;
        }
        if let Some(p) = &ov.pid_file {
            cfg.pid_file = p.clone();
        }
        if let Some(p) = &ov.log_file {
            cfg.log_file = p.clone();
        }
        if let Some(p) = &ov.data_dir {
            cfg.data_dir = p.clone();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 || self.workers > 1024 {
            return Err(ConfigError::Invalid("workers must be 1..=1024"));
        }
        if self.listen.is_empty() {
            return Err(ConfigError::Invalid("at least one listener is needed"));
        }
        if self.limits.max_package_size < 126 {
            return Err(ConfigError::Invalid(
                "limits.max_package_size must be >= 126",
            ));
        }
        if self.limits.max_send_buffer < 1024 {
            return Err(ConfigError::Invalid(
                "limits.max_send_buffer must be >= 1024",
            ));
        }
        if self.limits.max_header_size < 256 {
            return Err(ConfigError::Invalid(
                "limits.max_header_size must be >= 256",
            ));
        }
        if self.limits.max_connections == 0 {
            return Err(ConfigError::Invalid("limits.max_connections must be > 0"));
        }
        if !(1..=9).contains(&self.websocket.compression_level) {
            return Err(ConfigError::Invalid(
                "websocket.compression_level must be 1..=9",
            ));
        }
        if self.kefu.trusted_hops == 0 || self.kefu.trusted_hops > 16 {
            return Err(ConfigError::Invalid("kefu.trusted_hops must be 1..=16"));
        }
        let k = &self.kefu;
        let rates = [
            k.visitor_new_per_ip,
            k.conv_new_per_ip,
            k.visitor_msg_per_ip,
            k.upload_per_token,
            k.upload_per_ip,
        ];
        let sane = |v: f64| v.is_finite() && v >= 0.0;
        if !rates.iter().all(|r| sane(r.per_min) && sane(r.burst)) {
            return Err(ConfigError::Invalid(
                "kefu rate limits need per_min and burst >= 0",
            ));
        }
        if !(16..=10_000_000).contains(&k.limit_table_entries) {
            return Err(ConfigError::Invalid(
                "kefu.limit_table_entries must be 16..=10000000",
            ));
        }
        self.validate_tls()?;
        if let Some(c) = &self.cluster {
            if c.node == 0 {
                return Err(ConfigError::Invalid("cluster.node must be 1..=255"));
            }
            if !(500..=60_000).contains(&c.lease_ms) {
                return Err(ConfigError::Invalid("cluster.lease_ms must be 500..=60000"));
            }
            if c.publish_window_us > 10_000 {
                return Err(ConfigError::Invalid(
                    "cluster.publish_window_us must be 0..=10000",
                ));
            }
            let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
            if c.prefix.is_empty() || c.prefix.len() > 64 || !c.prefix.bytes().all(ok) {
                return Err(ConfigError::Invalid(
                    "cluster.prefix must be 1..=64 of [A-Za-z0-9_.-]",
                ));
            }
            if !c.redis.starts_with("redis://") && !c.redis.starts_with("unix://") {
                return Err(ConfigError::Invalid(
                    "cluster.redis must be a redis:// or unix:// URL",
                ));
            }
        }
        let gw = &self.gatewayworker;
        if self.app == "gatewayworker" && !gw.enabled() {
            return Err(ConfigError::Invalid(
                "app gatewayworker needs gatewayworker.start_port",
            ));
        }
        if gw.enabled() {
            let addr = |a: &String| a.parse::<SocketAddr>().is_ok();
            if gw.lan_ip.parse::<std::net::Ipv4Addr>().is_err()
                || !gw.register_address.iter().all(addr)
                || !(gw.register_listen.is_empty() || addr(&gw.register_listen))
            {
                return Err(ConfigError::Invalid(
                    "gatewayworker: lan_ip must be IPv4, register addresses ip:port",
                ));
            }
            if usize::from(gw.start_port) + self.workers > 65536 || gw.max_frame < 1024 {
                return Err(ConfigError::Invalid(
                    "gatewayworker: start_port + workers must fit, max_frame >= 1024",
                ));
            }
        }
        let api = self.listen.iter().any(|l| l.scheme == Scheme::Api);
        // Counted in bytes, like the comparison; 16 bytes of a random key are out of reach of
        // guessing over the network.
        if api && self.gateway.secret_key.len() < 16 {
            return Err(ConfigError::Invalid(
                "an api:// listener needs gateway.secret_key of at least 16 bytes",
            ));
        }
        Ok(())
    }

    /// The listeners of the config file at `path`, read again (a reload checks the
    /// certificates its new workers will load).
    pub fn listen_of_file(path: &Path) -> Result<Vec<ListenSpec>, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
        let c: Config = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse(path.to_path_buf(), e.to_string()))?;
        Ok(c.listen)
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        for l in &self.listen {
            match &l.certs {
                None if l.tls => {
                    return Err(ConfigError::Tls(format!(
                        "listener {l} needs a certificate: write it as {{ url = \"{l}\", \
                         cert = \"fullchain.pem\", key = \"privkey.pem\" }} in kefu.toml"
                    )))
                }
                Some(f) if f.sni.iter().any(|s| s.names.is_empty()) => {
                    return Err(ConfigError::Tls(format!(
                        "listener {l}: every sni entry needs at least one name"
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The lock file next to the pid file.
    pub fn lock_file(&self) -> PathBuf {
        with_suffix(&self.pid_file, ".lock")
    }

    /// The master's unix control socket next to the pid file.
    pub fn control_socket(&self) -> PathBuf {
        with_suffix(&self.pid_file, ".sock")
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Number of online CPUs (at least 1).
pub fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

mod secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        if !(0.0..=86_400.0 * 365.0).contains(&v) {
            return Err(serde::de::Error::custom("seconds out of range"));
        }
        Ok(Duration::from_secs_f64(v))
    }
}

#[cfg(test)]
mod tests;
