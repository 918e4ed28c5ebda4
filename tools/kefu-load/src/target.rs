//! Target URL parsing with the loopback-only guard.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

/// Wire protocol spoken with the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proto {
    /// WebSocket (RFC 6455) with the given Host header and request path.
    Ws {
        /// Value of the Host header.
        host: String,
        /// Request path, e.g. `/`.
        path: String,
    },
    /// Newline-delimited text frames (Workerman `text://`).
    Text,
}

/// A validated server address plus its protocol.
#[derive(Debug, Clone)]
pub struct Target {
    /// Resolved loopback socket address.
    pub addr: SocketAddr,
    /// Protocol to speak.
    pub proto: Proto,
    /// The URL as given, for reports.
    pub url: String,
    /// For `wss://` and `text+tls://`: the name the certificate is checked against, and the
    /// client settings once [`Target::trust`] gave them a CA.
    pub tls: Option<Tls>,
}

/// A TLS target's client side.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Host of the URL (IP literal or `localhost`), checked in the server's certificate.
    pub name: ServerName<'static>,
    /// rustls settings trusting the CA given with `--ca`.
    pub config: Option<Arc<rustls::ClientConfig>>,
}

/// Why a target URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// Scheme other than ws:// or text://.
    Scheme(String),
    /// Missing or unparsable host:port (hosts must be IP literals or `localhost`).
    Address(String),
    /// Resolves to something outside 127.0.0.0/8 and ::1.
    NotLoopback(String),
    /// The CA file for a TLS target is missing or unusable.
    Ca(String),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Scheme(u) => {
                write!(
                    f,
                    "unsupported URL scheme in {u:?} (use ws://, wss://, text:// or text+tls://)"
                )
            }
            TargetError::Address(u) => write!(
                f,
                "cannot parse host:port in {u:?} (use an IP literal or localhost)"
            ),
            TargetError::NotLoopback(u) => write!(
                f,
                "refusing target {u:?}: load tests may only target 127.0.0.0/8 or ::1"
            ),
            TargetError::Ca(why) => write!(f, "TLS target: {why}"),
        }
    }
}

impl std::error::Error for TargetError {}

/// `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`; never a DNS lookup, so no name can lead
/// traffic off the machine.
pub fn resolve_literal(hostport: &str) -> Option<SocketAddr> {
    if let Ok(a) = hostport.parse::<SocketAddr>() {
        return Some(a);
    }
    let (host, port) = hostport.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    host.eq_ignore_ascii_case("localhost")
        .then_some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

impl Target {
    /// Parses `ws://host:port/path` or `text://host:port`, refusing non-loopback addresses.
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| TargetError::Scheme(url.to_string()))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (is_ws, tls) = match scheme.to_ascii_lowercase().as_str() {
            "ws" => (true, false),
            "wss" => (true, true),
            "text" => (false, false),
            "text+tls" => (false, true),
            _ => return Err(TargetError::Scheme(url.to_string())),
        };
        if hostport.is_empty() || !hostport.contains(':') {
            return Err(TargetError::Address(url.to_string()));
        }
        let addr =
            resolve_literal(hostport).ok_or_else(|| TargetError::Address(url.to_string()))?;
        if !addr.ip().is_loopback() {
            return Err(TargetError::NotLoopback(url.to_string()));
        }
        let proto = if is_ws {
            Proto::Ws {
                host: hostport.to_string(),
                path: path.to_string(),
            }
        } else {
            Proto::Text
        };
        let tls = if tls {
            let host = hostport[..hostport.rfind(':').unwrap_or(hostport.len())]
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| TargetError::Address(url.to_string()))?;
            Some(Tls { name, config: None })
        } else {
            None
        };
        Ok(Target {
            addr,
            proto,
            url: url.to_string(),
            tls,
        })
    }

    /// Trust the CA certificates in PEM file `ca` for a TLS target (required for one, refused
    /// for a plain one).
    pub fn trust(&mut self, ca: Option<&Path>) -> Result<(), TargetError> {
        let (Some(tls), Some(ca)) = (self.tls.as_mut(), ca) else {
            return match (&self.tls, ca) {
                (Some(_), None) => Err(TargetError::Ca("--ca FILE is required".into())),
                (None, Some(_)) => Err(TargetError::Ca("--ca given for a plain URL".into())),
                _ => Ok(()),
            };
        };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| TargetError::Ca(format!("{}: {e}", ca.display())))?;
        for c in certs {
            let c = c.map_err(|e| TargetError::Ca(format!("{}: {e}", ca.display())))?;
            roots
                .add(c)
                .map_err(|e| TargetError::Ca(format!("{}: {e}", ca.display())))?;
        }
        if roots.is_empty() {
            return Err(TargetError::Ca(format!("{}: no certificate", ca.display())));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TargetError::Ca(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.config = Some(Arc::new(config));
        Ok(())
    }

    /// True for WebSocket targets.
    pub fn is_ws(&self) -> bool {
        matches!(self.proto, Proto::Ws { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback() {
        let t = Target::parse("ws://127.0.0.1:8282/chat").unwrap();
        assert_eq!(t.addr.port(), 8282);
        assert_eq!(
            t.proto,
            Proto::Ws {
                host: "127.0.0.1:8282".into(),
                path: "/chat".into()
            }
        );
        assert!(Target::parse("text://127.5.6.7:9000").is_ok());
        assert!(Target::parse("ws://[::1]:80").is_ok());
        assert!(Target::parse("ws://localhost:80/").is_ok());
    }

    #[test]
    fn refuses_remote_and_bad() {
        assert!(matches!(
            Target::parse("ws://10.0.0.1:80/"),
            Err(TargetError::NotLoopback(_))
        ));
        assert!(matches!(
            Target::parse("ws://192.168.1.1:80/"),
            Err(TargetError::NotLoopback(_))
        ));
        assert!(matches!(
            Target::parse("wsx://127.0.0.1:1/"),
            Err(TargetError::Scheme(_))
        ));
        let mut t = Target::parse("wss://localhost:1/").unwrap();
        assert!(t.tls.is_some());
        assert!(matches!(t.trust(None), Err(TargetError::Ca(_))));
        assert!(Target::parse("ws://127.0.0.1:1/")
            .unwrap()
            .trust(Some(Path::new("/nonexistent")))
            .is_err());
        assert!(matches!(
            Target::parse("ws://127.0.0.1/"),
            Err(TargetError::Address(_))
        ));
    }
}
