//! `kefu.toml` plus command-line overrides, turned into one typed [`Config`].
//!
//! Every key has a default so `kefu start` runs with no file at all. Durations are
//! given in seconds (floats allowed) in the file and held as [`Duration`] here.

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which wire protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// RFC 6455 WebSocket (the upgrade request may also be plain HTTP on this port).
    Websocket,
    /// One message per `\n`-terminated line.
    Text,
    /// Plain HTTP: web pages and the apps' HTTP endpoints (WebSocket upgrades are accepted too).
    Http,
    /// The gateway's HTTP API for business backends, and nothing else (needs a secret key).
    Api,
}

impl Scheme {
    /// The URL scheme word, as written in `kefu.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Websocket => "websocket",
            Scheme::Text => "text",
            Scheme::Http => "http",
            Scheme::Api => "api",
        }
    }
}

/// One listening socket, parsed from a URL like `websocket://0.0.0.0:8282` or
/// `wss://0.0.0.0:443`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// Protocol spoken on this port (inside TLS when `tls` is set).
    pub scheme: Scheme,
    /// Address to bind (with SO_REUSEPORT in every worker).
    pub addr: SocketAddr,
    /// The protocol runs over TLS (`wss://`, `https://`, `text+tls://`, `api+tls://`).
    pub tls: bool,
    /// The certificate of a TLS listener (the entry's `cert`, `key` and `sni`).
    pub certs: Option<TlsFiles>,
    /// permessage-deflate on this listener; `None` follows `websocket.compression`.
    pub compression: Option<bool>,
}

impl ListenSpec {
    /// The URL scheme word as written in `kefu.toml` (`wss` for a TLS `websocket` listener...).
    pub fn scheme_word(&self) -> &'static str {
        match (self.scheme, self.tls) {
            (s, false) => s.as_str(),
            (Scheme::Websocket, true) => "wss",
            (Scheme::Http, true) => "https",
            (Scheme::Text, true) => "text+tls",
            (Scheme::Api, true) => "api+tls",
        }
    }

    /// Whether WebSocket clients of this listener may negotiate permessage-deflate.
    pub fn compresses(&self, ws: &WebSocketConfig) -> bool {
        matches!(self.scheme, Scheme::Websocket | Scheme::Http)
            && self.compression.unwrap_or(ws.compression)
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme_word(), self.addr)
    }
}

/// The certificate of a TLS listener: PEM files, the certificate file holding the whole
/// chain (leaf first), like Workerman's `local_cert` / `local_pk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
    /// More certificates chosen by the name the client asks for (SNI); the one above serves
    /// clients that ask for no name or another name.
    pub sni: Vec<SniFiles>,
}

/// One entry of `listen`: a URL, or a table with the URL and the listener's options.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ListenEntry {
    Url(String),
    Table(ListenTable),
}

/// `{ url = "wss://0.0.0.0:443", cert = "...", key = "..." }` (or a `[[listen]]` table).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenTable {
    url: String,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    #[serde(default)]
    sni: Vec<SniFiles>,
    /// permessage-deflate on or off for this listener (default: `websocket.compression`).
    compression: Option<bool>,
}

impl ListenEntry {
    fn into_spec(self) -> Result<ListenSpec, ConfigError> {
        let t = match self {
            ListenEntry::Url(u) => return u.parse(),
            ListenEntry::Table(t) => t,
        };
        let mut spec: ListenSpec = t.url.parse()?;
        spec.compression = t.compression;
        let bad = |why: &str| ConfigError::Tls(format!("listener {}: {why}", t.url));
        spec.certs = match (t.cert, t.key) {
            (None, None) if t.sni.is_empty() => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                sni: t.sni,
            }),
            _ => return Err(bad("cert and key go together (PEM paths)")),
        };
        if spec.certs.is_some() && !spec.tls {
            return Err(bad(
                "cert and key need a TLS scheme (wss://, https://, text+tls://, api+tls://)",
            ));
        }
        Ok(spec)
    }
}

/// One certificate served to the clients that ask for one of `names` (SNI).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniFiles {
    /// Host names (exact, case-insensitive; `*.example.com` matches one label).
    pub names: Vec<String>,
    /// Certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

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

impl std::str::FromStr for ListenSpec {
    type Err = ConfigError;
    fn from_str(url: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::BadListen(url.to_string());
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let (scheme, tls) = match scheme.to_ascii_lowercase().as_str() {
            "websocket" | "ws" => (Scheme::Websocket, false),
            "text" => (Scheme::Text, false),
            "http" => (Scheme::Http, false),
            "api" => (Scheme::Api, false),
            "wss" | "websocket+tls" => (Scheme::Websocket, true),
            "https" | "http+tls" => (Scheme::Http, true),
            "text+tls" => (Scheme::Text, true),
            "api+tls" => (Scheme::Api, true),
            _ => return Err(bad()),
        };
        let addr = rest.trim_end_matches('/').parse().map_err(|_| bad())?;
        Ok(ListenSpec {
            scheme,
            addr,
            tls,
            certs: None,
            compression: None,
        })
    }
}

/// Per-connection limits and timeouts (apply to every listener).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message (WebSocket message, text line, HTTP body) in bytes; Workerman's default is 10 MiB.
    pub max_package_size: usize,
    /// Bytes queued for one connection before it is closed as a send failure; Workerman's 1 MiB.
    pub max_send_buffer: usize,
    /// Bound on an HTTP request head / WebSocket upgrade request, in bytes.
    pub max_header_size: usize,
    /// Seconds a client has to finish the WebSocket/HTTP handshake.
    #[serde(with = "secs")]
    pub handshake_timeout: Duration,
    /// Seconds without any byte from the client before it is closed (0 = never).
    #[serde(with = "secs")]
    pub idle_timeout: Duration,
    /// Maximum simultaneous connections per worker (new ones are refused past it).
    pub max_connections: usize,
    /// Seconds a client has, once connected, to log in to the app (0 = the app's default: 30
    /// for `kefu`, none for apps without a login).
    #[serde(with = "secs")]
    pub login_timeout: Duration,
    /// Bytes of undecoded input one worker holds for all its connections together; past it,
    /// the connection whose buffer grows is closed (a bound on what strangers can make it
    /// buffer, whatever each message limit allows).
    pub max_buffered_input: usize,
    /// Connections from one peer address, server-wide (each worker allows its share); past it
    /// new connections from that address are closed at once. 0 = no cap.
    pub max_connections_per_ip: usize,
    /// Peer addresses exempt from `max_connections_per_ip`: reverse proxies, which forward
    /// many clients from one address (limit those in the proxy). Exempts from the cap only,
    /// never from a login, a key or any other limit.
    pub proxies: Vec<std::net::IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_package_size: 10 * 1024 * 1024,
            max_send_buffer: 1024 * 1024,
            max_header_size: 16 * 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(0),
            max_connections: 100_000,
            login_timeout: Duration::ZERO,
            max_buffered_input: 256 * 1024 * 1024,
            max_connections_per_ip: 1000,
            proxies: vec![
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ],
        }
    }
}

/// WebSocket options.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// If non-empty, only upgrade requests whose Origin is listed are accepted (others get 403).
    pub allowed_origins: Vec<String>,
    /// Subprotocols the server speaks, in order of preference; the first one the client offers is selected.
    pub subprotocols: Vec<String>,
    /// Accept permessage-deflate (RFC 7692) offers; a listener entry may say otherwise.
    pub compression: bool,
    /// Messages shorter than this many bytes are sent uncompressed.
    pub compression_threshold: usize,
    /// zlib level for outgoing messages, 1 (fastest) to 9 (smallest).
    pub compression_level: u32,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            allowed_origins: Vec::new(),
            subprotocols: Vec::new(),
            compression: true,
            compression_threshold: 1024,
            compression_level: 1,
        }
    }
}

/// Gateway options: the HTTP API and heartbeats (GatewayWorker's names and meaning).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Secret key for the HTTP API on `api://` listeners: at least 16 bytes when one is
    /// configured (there is no keyless or loopback-only mode).
    pub secret_key: String,
    /// Seconds between heartbeat checks (0 = off).
    #[serde(with = "secs")]
    pub ping_interval: Duration,
    /// Close a client silent for this many intervals (0 = never close).
    pub ping_not_response_limit: u32,
    /// Text sent to clients idle for a whole interval (empty = send nothing).
    pub ping_data: String,
    /// Also send WebSocket ping frames to idle WebSocket clients.
    pub ws_ping: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            secret_key: String::new(),
            ping_interval: Duration::ZERO,
            ping_not_response_limit: 0,
            ping_data: String::new(),
            ws_ping: false,
        }
    }
}

/// GatewayWorker compatibility (`docs/gatewayworker.md`): each worker is a gateway with an
/// inner port for BusinessWorkers and GatewayClient, optionally the Register too.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayWorkerConfig {
    /// GatewayWorker's `lanIp`: the address BusinessWorkers reach this host on.
    pub lan_ip: String,
    /// GatewayWorker's `startPort`: worker N listens on `start_port + N` (0 = off).
    pub start_port: u16,
    /// GatewayWorker's `registerAddress`: Registers to announce the inner ports to.
    pub register_address: Vec<String>,
    /// Be the Register on this `ip:port` (worker 0 serves it; empty = not a Register).
    pub register_listen: String,
    /// GatewayWorker's `secretKey` for the inner ports and the Register ("" = none).
    pub secret_key: String,
    /// Largest inner frame accepted, in bytes.
    pub max_frame: usize,
}

impl Default for GatewayWorkerConfig {
    fn default() -> Self {
        GatewayWorkerConfig {
            lan_ip: "127.0.0.1".into(),
            start_port: 0,
            register_address: Vec::new(),
            register_listen: String::new(),
            secret_key: String::new(),
            max_frame: 4 << 20,
        }
    }
}

impl GatewayWorkerConfig {
    /// Whether the inner ports are on.
    pub fn enabled(&self) -> bool {
        self.start_port != 0
    }
}

/// The `bridge` app: hand clients to a business backend (seed 001 and 002 patterns).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// URL messages are POSTed to as JSON (empty = no forwarding).
    pub backend_url: String,
    /// Seconds to wait for the backend.
    #[serde(with = "secs")]
    pub backend_timeout: Duration,
    /// Most backend calls in flight per worker; more are refused with an error to the client.
    pub max_in_flight: usize,
    /// Form of the greeting with the client id.
    pub greeting: Greeting,
}

/// The `bridge` app's greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Greeting {
    /// `{"type":"init","client_id":"..."}`
    #[default]
    Object,
    /// `["init",{"client_id":"..."}]`, as seed 001's `Events::onConnect` sends it.
    Array,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            backend_url: String::new(),
            backend_timeout: Duration::from_secs(5),
            max_in_flight: 256,
            greeting: Greeting::Object,
        }
    }
}

/// How the kefu app picks an agent for a new conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingPolicy {
    /// Fewest active conversations; ties go to the agent idle longest.
    LeastBusy,
    /// The agent whose last assignment is oldest.
    RoundRobin,
}

/// SQLite `synchronous` setting of the kefu store (see docs/durability.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// fsync the WAL on every (group) commit: acked messages survive power loss.
    Full,
    /// fsync only at checkpoints: acked messages survive process crashes, not power loss.
    Normal,
}

/// A rate limit of the kefu app: `per_min` sustained, `burst` at once; `per_min = 0` is off.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Sustained events per minute (0: no limit).
    pub per_min: f64,
    /// Events allowed at once on top of the sustained rate.
    pub burst: f64,
}

impl Rate {
    /// `per_min` sustained with `burst` at once.
    pub const fn new(per_min: f64, burst: f64) -> Rate {
        Rate { per_min, burst }
    }
}

/// The `kefu` app: routing, limits, tokens and durability (docs/kefu-protocol.md §9).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KefuConfig {
    /// Routing policy.
    pub policy: RoutingPolicy,
    /// Default maximum of concurrent active conversations per agent.
    pub max_per_agent: u32,
    /// Longest message text, in characters.
    pub max_text_chars: usize,
    /// Lifetime of agent tokens, seconds.
    #[serde(with = "secs")]
    pub agent_token_ttl: Duration,
    /// Lifetime of visitor tokens, seconds.
    #[serde(with = "secs")]
    pub visitor_token_ttl: Duration,
    /// How old an integrator-signed visitor identity may be, seconds.
    #[serde(with = "secs")]
    pub identity_max_age: Duration,
    /// Largest accepted upload, bytes.
    pub upload_max_bytes: usize,
    /// A resume missing more than this many messages is told to reload history.
    pub resume_max_gap: u64,
    /// SQLite durability setting.
    pub synchronous: SyncMode,
    /// PostgreSQL URL of the store (`postgres://user:pass@host:port/db`); none: the
    /// embedded SQLite file under `data_dir`. Every node of a cluster names the same one.
    pub database: Option<String>,
    /// Take the visitor IP from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Trusted proxies in front of kefu, each appending one `X-Forwarded-For` entry: the client
    /// address is that many entries from the right (docs/security.md).
    pub trusted_hops: usize,
    /// Messages per second one connection may send, sustained.
    pub rate_per_sec: f64,
    /// Burst allowance on top of the rate.
    pub rate_burst: f64,
    /// New visitors (anonymous token or `visitor_login`) per client IP.
    pub visitor_new_per_ip: Rate,
    /// New conversations opened by visitors per client IP.
    pub conv_new_per_ip: Rate,
    /// Visitor messages per client IP (all its connections together).
    pub visitor_msg_per_ip: Rate,
    /// Uploads per token (agent or visitor).
    pub upload_per_token: Rate,
    /// Uploads per client IP.
    pub upload_per_ip: Rate,
    /// Upload bytes one business may store per 24 hours, MiB (0: no limit).
    pub upload_business_mib_per_day: u64,
    /// An upload no stored message references this long after it was made is deleted, seconds.
    #[serde(with = "secs")]
    pub upload_orphan_after: Duration,
    /// Failed agent logins per client IP before back-off starts.
    pub login_ip_free_failures: u32,
    /// Failed logins per agent account before back-off starts.
    pub login_account_free_failures: u32,
    /// Longest back-off after failed logins, seconds (it doubles per failure up to this).
    #[serde(with = "secs")]
    pub login_backoff_max: Duration,
    /// Entries each per-IP / per-token / per-account table keeps (oldest evicted beyond).
    pub limit_table_entries: usize,
    /// How long an agent may be gone (every connection closed) before its active
    /// conversations go back to the queue, seconds; 0 keeps them with the agent.
    #[serde(with = "secs")]
    pub agent_away_grace: Duration,
    /// Let webhooks reach loopback, private and link-local addresses (off: SSRF guard).
    pub webhook_allow_private: bool,
    /// Connect, write and read timeout of one webhook delivery, seconds.
    #[serde(with = "secs")]
    pub webhook_timeout: Duration,
}

impl Default for KefuConfig {
    fn default() -> Self {
        KefuConfig {
            policy: RoutingPolicy::LeastBusy,
            max_per_agent: 5,
            max_text_chars: 2000,
            agent_token_ttl: Duration::from_secs(12 * 3600),
            visitor_token_ttl: Duration::from_secs(30 * 86400),
            identity_max_age: Duration::from_secs(600),
            upload_max_bytes: 2 * 1024 * 1024,
            resume_max_gap: 500,
            synchronous: SyncMode::Full,
            database: None,
            trust_forwarded_for: false,
            trusted_hops: 1,
            rate_per_sec: 20.0,
            rate_burst: 40.0,
            visitor_new_per_ip: Rate::new(10.0, 30.0),
            conv_new_per_ip: Rate::new(10.0, 30.0),
            visitor_msg_per_ip: Rate::new(120.0, 240.0),
            upload_per_token: Rate::new(4.0, 20.0),
            upload_per_ip: Rate::new(10.0, 40.0),
            upload_business_mib_per_day: 2048,
            upload_orphan_after: Duration::from_secs(600),
            login_ip_free_failures: 20,
            login_account_free_failures: 5,
            login_backoff_max: Duration::from_secs(300),
            limit_table_entries: 16384,
            agent_away_grace: Duration::from_secs(60),
            webhook_allow_private: false,
            webhook_timeout: Duration::from_secs(10),
        }
    }
}

/// `[cluster]`: this node's place in a cluster of kefu nodes sharing one Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id, 1..=255, unique in the cluster (it is the top byte of client ids).
    pub node: u8,
    /// A name shown by `kefu status` (default `node-<id>`).
    #[serde(default)]
    pub name: String,
    /// Redis URL (`redis://[:password@]host:port[/db]`).
    pub redis: String,
    /// Milliseconds a node's lease lives without renewal; a node silent that long is dropped.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Prefix of every Redis key and channel, so several clusters can share one Redis.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_lease_ms() -> u64 {
    3000
}

fn default_prefix() -> String {
    "kefu".into()
}

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

/// One `listen` item: a URL, or a table with the URL and per-listener options.
fn de_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ListenSpec>, D::Error> {
    let entries: Vec<ListenEntry> = Vec::deserialize(d)?;
    entries
        .into_iter()
        .map(|e| e.into_spec().map_err(serde::de::Error::custom))
        .collect()
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
mod tests {
    use super::*;

    #[test]
    fn defaults_without_file() {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.limits.max_package_size, 10 * 1024 * 1024);
        assert_eq!(c.stop_timeout, Duration::from_secs(2));
    }

    #[test]
    fn listen_urls() {
        let l: ListenSpec = "websocket://127.0.0.1:9000".parse().unwrap();
        assert_eq!(l.scheme, Scheme::Websocket);
        assert_eq!(l.to_string(), "websocket://127.0.0.1:9000");
        let l: ListenSpec = "text://[::1]:9001".parse().unwrap();
        assert_eq!(l.scheme, Scheme::Text);
        assert!("ftp://1.2.3.4:5".parse::<ListenSpec>().is_err());
        assert!("text://nohost".parse::<ListenSpec>().is_err());
    }

    #[test]
    fn tls_listeners_strings_and_tables() {
        for (url, word) in [
            ("wss://127.0.0.1:1", "wss"),
            ("https://127.0.0.1:1", "https"),
            ("text+tls://127.0.0.1:1", "text+tls"),
            ("api+tls://127.0.0.1:1", "api+tls"),
        ] {
            let l: ListenSpec = url.parse().unwrap();
            assert!(l.tls && l.certs.is_none());
            assert_eq!(l.scheme_word(), word);
            assert_eq!(l.to_string(), url);
        }
        let parse = |text: &str| -> Result<Config, ConfigError> {
            let c: Config =
                toml::from_str(text).map_err(|e| ConfigError::Parse("t".into(), e.to_string()))?;
            c.validate()?;
            Ok(c)
        };
        let c = parse(
            r#"listen = ["text://127.0.0.1:1", { url = "wss://127.0.0.1:2", cert = "c.pem", key = "k.pem", sni = [{ names = ["b.test"], cert = "b.pem", key = "b.key" }] }]"#,
        )
        .unwrap();
        let certs = c.listen[1].certs.as_ref().unwrap();
        assert_eq!(certs.cert, PathBuf::from("c.pem"));
        assert_eq!(certs.sni[0].names, ["b.test"]);
        let c = parse("[[listen]]\nurl = \"https://127.0.0.1:3\"\ncert = \"c\"\nkey = \"k\"\n")
            .unwrap();
        assert!(c.listen[0].certs.is_some());
        // A TLS listener needs its certificate; a plain one takes none; cert and key go together.
        for bad in [
            r#"listen = ["wss://127.0.0.1:2"]"#,
            r#"listen = [{ url = "websocket://127.0.0.1:2", cert = "c", key = "k" }]"#,
            r#"listen = [{ url = "wss://127.0.0.1:2", cert = "c" }]"#,
            r#"listen = [{ url = "wss://127.0.0.1:2", cert = "c", key = "k", sni = [{ names = [], cert = "c", key = "k" }] }]"#,
            r#"listen = [{ url = "wss://127.0.0.1:2", cert = "c", key = "k", certificate = "x" }]"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_override_keeps_the_file_entry_options() {
        let dir = std::env::temp_dir().join(format!("kefu-cfg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("kefu.toml");
        std::fs::write(
            &p,
            r#"listen = [{ url = "wss://127.0.0.1:2", cert = "c", key = "k" }]"#,
        )
        .unwrap();
        let ov = Overrides {
            listen: vec!["wss://127.0.0.1:2".into(), "text://127.0.0.1:3".into()],
            ..Overrides::default()
        };
        let c = Config::load(Some(&p), &ov).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert!(c.listen[0].certs.is_some());
        let ov = Overrides {
            listen: vec!["wss://127.0.0.1:4".into()],
            ..Overrides::default()
        };
        assert!(Config::load(Some(&p), &ov).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_and_overrides() {
        let dir = std::env::temp_dir().join(format!("kefu-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("kefu.toml");
        std::fs::write(
            &p,
            "app = \"chat\"\nworkers = 3\nlisten = [\"text://127.0.0.1:1\"]\nstop_timeout = 0.5\n[limits]\nmax_send_buffer = 4096\n",
        )
        .unwrap();
        let ov = Overrides {
            workers: Some(2),
            ..Default::default()
        };
        let c = Config::load(Some(&p), &ov).unwrap();
        assert_eq!(c.app, "chat");
        assert_eq!(c.workers, 2);
        assert_eq!(c.stop_timeout, Duration::from_millis(500));
        assert_eq!(c.limits.max_send_buffer, 4096);
        std::fs::write(
            &p,
            "listen = [\"websocket://127.0.0.1:1\", { url = \"http://127.0.0.1:2\", compression = false }, { url = \"text://127.0.0.1:3\", compression = true }]\n[websocket]\ncompression_threshold = 1000\n",
        )
        .unwrap();
        let c = Config::load(Some(&p), &ov).unwrap();
        let on: Vec<bool> = c
            .listen
            .iter()
            .map(|l| l.compresses(&c.websocket))
            .collect();
        // The text protocol has no compression whatever its entry says.
        assert_eq!(on, [true, false, false]);
        assert_eq!(c.listen[1].to_string(), "http://127.0.0.1:2");
        assert_eq!(c.websocket.compression_threshold, 1000);
        std::fs::write(
            &p,
            "listen = [{ url = \"websocket://127.0.0.1:1\", gzip = 1 }]\n",
        )
        .unwrap();
        assert!(Config::load(Some(&p), &ov).is_err());
        std::fs::write(&p, "[websocket]\ncompression_level = 10\n").unwrap();
        assert!(Config::load(Some(&p), &ov).is_err());
        std::fs::write(&p, "bogus_key = 1\n").unwrap();
        assert!(matches!(
            Config::load(Some(&p), &ov),
            Err(ConfigError::Parse(..))
        ));
    }

    #[test]
    fn cluster_section() {
        let dir = std::env::temp_dir().join(format!("kefu-cfg-cl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("kefu.toml");
        let ov = Overrides::default();
        let load = |body: &str| {
            std::fs::write(&p, body).unwrap();
            Config::load(Some(&p), &ov)
        };
        let c = load("[cluster]\nnode = 7\nredis = \"redis://127.0.0.1:6379/\"\n").unwrap();
        let cl = c.cluster.unwrap();
        assert_eq!(
            (cl.node, cl.lease_ms, cl.prefix.as_str()),
            (7, 3000, "kefu")
        );
        assert!(Config::load(None, &ov).unwrap().cluster.is_none());
        for bad in [
            "[cluster]\nnode = 0\nredis = \"redis://h:1/\"\n",
            "[cluster]\nnode = 256\nredis = \"redis://h:1/\"\n",
            "[cluster]\nnode = 1\nredis = \"http://h:1/\"\n",
            "[cluster]\nnode = 1\nredis = \"redis://h:1/\"\nlease_ms = 10\n",
            "[cluster]\nnode = 1\nredis = \"redis://h:1/\"\nprefix = \"a b\"\n",
            "[cluster]\nnode = 1\n",
        ] {
            assert!(load(bad).is_err(), "{bad}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
