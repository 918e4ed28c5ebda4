//! The sections of `kefu.toml` below the top level, each with its defaults.

use super::secs;
use serde::Deserialize;
use std::time::Duration;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingPolicy {
    /// Fewest active conversations; ties go to the agent idle longest.
    LeastBusy,
    /// The agent whose last assignment is oldest.
    RoundRobin,
}

impl RoutingPolicy {
    /// Its name in the config, the store and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingPolicy::LeastBusy => "least_busy",
            RoutingPolicy::RoundRobin => "round_robin",
        }
    }

    /// The policy a name names.
    pub fn parse(s: &str) -> Option<RoutingPolicy> {
        [RoutingPolicy::LeastBusy, RoutingPolicy::RoundRobin]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
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
    /// A PEM file of CA certificates that `https://` webhook endpoints may also chain to,
    /// besides the built-in Mozilla roots.
    pub webhook_ca_file: Option<std::path::PathBuf>,
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
            webhook_ca_file: None,
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
    /// Microseconds a worker may hold deliveries to other nodes' workers once it has just
    /// written some (0: write them every event-loop turn). Changes of state never wait.
    #[serde(default = "default_publish_window_us")]
    pub publish_window_us: u64,
}

fn default_publish_window_us() -> u64 {
    2500
}

fn default_lease_ms() -> u64 {
    3000
}

fn default_prefix() -> String {
    "kefu".into()
}
