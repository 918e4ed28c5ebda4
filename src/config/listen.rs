//! The `listen` entries: which protocol, address, TLS files and options each listener has.

use super::{ConfigError, WebSocketConfig};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

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

/// One `listen` item: a URL, or a table with the URL and per-listener options.
pub(super) fn de_listen<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<ListenSpec>, D::Error> {
    let entries: Vec<ListenEntry> = Vec::deserialize(d)?;
    entries
        .into_iter()
        .map(|e| e.into_spec().map_err(serde::de::Error::custom))
        .collect()
}
