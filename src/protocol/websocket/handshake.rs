//! The server side of the WebSocket opening handshake (RFC 6455 §4.2). No I/O here.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::protocol::http::{reason, Request};

/// GUID appended to the client key before hashing (RFC 6455 §1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Server policy for accepting upgrades.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeConfig<'a> {
    /// Allowed `Origin` values (ASCII case-insensitive); empty = any.
    pub allowed_origins: &'a [String],
    /// Supported subprotocols in server preference order.
    pub subprotocols: &'a [String],
}

/// Result of a successful handshake check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Value for `Sec-WebSocket-Accept`.
    pub accept_key: String,
    /// Selected subprotocol, if any.
    pub protocol: Option<String>,
}

/// Why an upgrade request was refused; see [`HandshakeError::response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Method is not GET (405).
    MethodNotGet,
    /// HTTP/1.0; §4.1 requires HTTP/1.1 or higher (400).
    OldHttpVersion,
    /// No `Host` header (400).
    MissingHost,
    /// `Upgrade` header lacks the `websocket` token (400).
    NotUpgrade,
    /// `Connection` header lacks the `Upgrade` token (400).
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Key` (400).
    MissingKey,
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes (400).
    BadKey,
    /// `Sec-WebSocket-Version` missing or not 13 (426, answered with `Sec-WebSocket-Version: 13`).
    UnsupportedVersion,
    /// `Origin` not in the allow-list (403).
    OriginNotAllowed,
}

impl HandshakeError {
    /// HTTP status to answer with.
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::MethodNotGet => 405,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::OriginNotAllowed => 403,
            HandshakeError::OldHttpVersion
            | HandshakeError::MissingHost
            | HandshakeError::NotUpgrade
            | HandshakeError::MissingConnectionUpgrade
            | HandshakeError::MissingKey
            | HandshakeError::BadKey => 400,
        }
    }

    /// Full HTTP response bytes including `Connection: close`.
    pub fn response(self) -> Vec<u8> {
        let status = self.status();
        let body = format!("{} {}: {}\n", status, reason(status), self);
        let mut extra = String::new();
        match self {
            // §4.2.2: tell the client which version we speak.
            HandshakeError::UnsupportedVersion => extra.push_str("Sec-WebSocket-Version: 13\r\n"),
            // RFC 9110 §15.5.6: 405 must list allowed methods.
            HandshakeError::MethodNotGet => extra.push_str("Allow: GET\r\n"),
            _ => {}
        }
        format!(
            "HTTP/1.1 {} {}\r\n{}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            status,
            reason(status),
            extra,
            body.len(),
            body
        )
        .into_bytes()
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            HandshakeError::MethodNotGet => "WebSocket upgrade requires GET",
            HandshakeError::OldHttpVersion => "WebSocket upgrade requires HTTP/1.1",
            HandshakeError::MissingHost => "missing Host header",
            HandshakeError::NotUpgrade => "Upgrade header must contain websocket",
            HandshakeError::MissingConnectionUpgrade => "Connection header must contain Upgrade",
            HandshakeError::MissingKey => "missing Sec-WebSocket-Key",
            HandshakeError::BadKey => "Sec-WebSocket-Key must be base64 of 16 bytes",
            HandshakeError::UnsupportedVersion => "Sec-WebSocket-Version must be 13",
            HandshakeError::OriginNotAllowed => "origin not allowed",
        };
        f.write_str(s)
    }
}

impl std::error::Error for HandshakeError {}

/// Whether the request asks for a WebSocket upgrade (`Upgrade` contains the `websocket` token).
pub fn is_upgrade(req: &Request) -> bool {
    req.header_has_token("upgrade", "websocket")
}

/// Validate an upgrade request against RFC 6455 §4.2.1 and the server policy.
///
/// A request without `Origin` is accepted even with an allow-list: only browsers send it, and
/// the allow-list exists to stop cross-site browser pages (§10.2); other clients can forge it.
pub fn check(req: &Request, cfg: &HandshakeConfig<'_>) -> Result<Accepted, HandshakeError> {
    if req.method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if req.minor_version < 1 {
        return Err(HandshakeError::OldHttpVersion);
    }
    if req.header("host").is_none() {
        return Err(HandshakeError::MissingHost);
    }
    if !is_upgrade(req) {
        return Err(HandshakeError::NotUpgrade);
    }
    if !req.header_has_token("connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let key = req
        .header("sec-websocket-key")
        .ok_or(HandshakeError::MissingKey)?
        .trim();
    match STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::BadKey),
    }
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    if !cfg.allowed_origins.is_empty() {
        if let Some(origin) = req.header("origin") {
            let origin = origin.trim();
            if !cfg
                .allowed_origins
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin))
            {
                return Err(HandshakeError::OriginNotAllowed);
            }
        }
    }
    // §4.2.2 item 5.4: pick at most one of the client's protocols; tokens are case-sensitive.
    let offered: Vec<&str> = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let protocol = cfg
        .subprotocols
        .iter()
        .find(|p| offered.contains(&p.as_str()))
        .cloned();
    Ok(Accepted {
        accept_key: accept_key(key),
        protocol,
    })
}

/// `base64(sha1(key + GUID))` (RFC 6455 §4.2.2 item 5.4).
pub fn accept_key(client_key: &str) -> String {
    let mut h = Sha1::new();
    h.update(client_key.as_bytes());
    h.update(GUID.as_bytes());
    STANDARD.encode(h.finalize())
}

/// `HTTP/1.1 101 Switching Protocols` with Upgrade/Connection/Sec-WebSocket-Accept
/// (+ Sec-WebSocket-Protocol) and `extra` headers. No Sec-WebSocket-Extensions: none accepted.
pub fn response_101(acc: &Accepted, extra: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(acc.accept_key.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = &acc.protocol {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        push_clean(&mut out, p);
        out.extend_from_slice(b"\r\n");
    }
    for (k, v) in extra {
        push_clean(&mut out, k);
        out.extend_from_slice(b": ");
        push_clean(&mut out, v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Header text without CR/LF, so a value cannot inject headers.
fn push_clean(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(|&b| b != b'\r' && b != b'\n'));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::{parse_request, HttpError, RequestLimits};

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn req(raw: &str) -> Request {
        let lim = RequestLimits {
            max_header_size: 4096,
            max_body_size: 0,
        };
        parse_request(raw.as_bytes(), &lim).unwrap().unwrap().0
    }

    fn good(extra: &str) -> String {
        format!("GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n")
    }

    const NONE: HandshakeConfig<'static> = HandshakeConfig {
        allowed_origins: &[],
        subprotocols: &[],
    };

    #[test]
    fn rfc_accept_key() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accepts_rfc_example() {
        let r = req(&good(
            "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n",
        ));
        assert!(is_upgrade(&r));
        let acc = check(&r, &NONE).unwrap();
        assert_eq!(
            acc,
            Accepted {
                accept_key: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(),
                protocol: None
            }
        );
        let resp = String::from_utf8(response_101(&acc, &[("X-Kefu".into(), "1".into())])).unwrap();
        assert_eq!(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Kefu: 1\r\n\r\n");
        assert!(!resp.contains("Extensions"));
    }

    #[test]
    fn token_lists_and_case() {
        let raw = format!("GET / HTTP/1.1\r\nhost: a\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\nsec-websocket-key: {KEY}\r\nsec-websocket-version: 13\r\n\r\n");
        assert!(check(&req(&raw), &NONE).is_ok());
    }

    #[test]
    fn subprotocol_selection_uses_server_preference() {
        let prefs = ["json".to_string(), "chat".to_string()];
        let cfg = HandshakeConfig {
            allowed_origins: &[],
            subprotocols: &prefs,
        };
        let cases = [
            ("Sec-WebSocket-Protocol: chat, json\r\n", Some("json")),
            (
                "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: xml\r\n",
                Some("chat"),
            ),
            ("Sec-WebSocket-Protocol: CHAT\r\n", None),
            ("Sec-WebSocket-Protocol: xml\r\n", None),
            ("", None),
        ];
        for (hdr, want) in cases {
            let acc = check(&req(&good(hdr)), &cfg).unwrap();
            assert_eq!(acc.protocol.as_deref(), want, "{hdr:?}");
            let resp = String::from_utf8(response_101(&acc, &[])).unwrap();
            assert_eq!(resp.contains("Sec-WebSocket-Protocol: "), want.is_some());
        }
    }

    #[test]
    fn origin_allow_list() {
        let allowed = ["https://kefu.example".to_string()];
        let cfg = HandshakeConfig {
            allowed_origins: &allowed,
            subprotocols: &[],
        };
        assert!(check(&req(&good("Origin: https://KEFU.example\r\n")), &cfg).is_ok());
        assert!(check(&req(&good("")), &cfg).is_ok());
        assert_eq!(
            check(&req(&good("Origin: https://evil.example\r\n")), &cfg),
            Err(HandshakeError::OriginNotAllowed)
        );
        assert!(check(&req(&good("Origin: https://evil.example\r\n")), &NONE).is_ok());
    }

    #[test]
    fn bad_requests() {
        let full = good("");
        let drop = |name: &str| -> String {
            full.split("\r\n")
                .filter(|l| !l.starts_with(name))
                .collect::<Vec<_>>()
                .join("\r\n")
        };
        let cases: Vec<(String, HandshakeError, u16)> = vec![
            (
                full.replacen("GET", "POST", 1),
                HandshakeError::MethodNotGet,
                405,
            ),
            (
                full.replacen("HTTP/1.1", "HTTP/1.0", 1),
                HandshakeError::OldHttpVersion,
                400,
            ),
            (drop("Host"), HandshakeError::MissingHost, 400),
            (drop("Upgrade"), HandshakeError::NotUpgrade, 400),
            (
                full.replacen("Upgrade: websocket", "Upgrade: h2c", 1),
                HandshakeError::NotUpgrade,
                400,
            ),
            (
                drop("Connection"),
                HandshakeError::MissingConnectionUpgrade,
                400,
            ),
            (
                full.replacen("Connection: Upgrade", "Connection: keep-alive", 1),
                HandshakeError::MissingConnectionUpgrade,
                400,
            ),
            (drop("Sec-WebSocket-Key"), HandshakeError::MissingKey, 400),
            (
                full.replacen(KEY, "dGhlIHNhbXBsZSBub25jZQ", 1),
                HandshakeError::BadKey,
                400,
            ),
            (full.replacen(KEY, "AAAA", 1), HandshakeError::BadKey, 400),
            (full.replacen(KEY, "!!!!", 1), HandshakeError::BadKey, 400),
            (
                drop("Sec-WebSocket-Version"),
                HandshakeError::UnsupportedVersion,
                426,
            ),
            (
                full.replacen("Version: 13", "Version: 8", 1),
                HandshakeError::UnsupportedVersion,
                426,
            ),
        ];
        for (raw, want, status) in cases {
            assert_eq!(check(&req(&raw), &NONE), Err(want), "{raw:?}");
            assert_eq!(want.status(), status);
            let resp = String::from_utf8(want.response()).unwrap();
            assert!(resp.starts_with(&format!("HTTP/1.1 {status} ")), "{resp}");
            assert!(resp.contains("Connection: close\r\n"));
            assert_eq!(
                resp.contains("Sec-WebSocket-Version: 13\r\n"),
                status == 426
            );
        }
    }

    #[test]
    fn oversized_upgrade_head() {
        let lim = RequestLimits {
            max_header_size: 256,
            max_body_size: 0,
        };
        let raw = good(&format!("Cookie: {}\r\n", "a".repeat(300)));
        assert_eq!(
            parse_request(raw.as_bytes(), &lim),
            Err(HttpError::HeaderTooLarge)
        );
        assert_eq!(
            parse_request(&raw.as_bytes()[..260], &lim),
            Err(HttpError::HeaderTooLarge)
        );
    }
}
