//! The slice of the kefu client protocol (`docs/kefu-protocol.md`) the `kefu` scenario
//! speaks: typed requests and pushes, message content, and the agent login over HTTP.

use crate::runner::LoadError;
use crate::target;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Requests the scenario sends over the WebSocket, tagged by `method`.
#[derive(Debug, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Req<'a> {
    /// Agent login with the HTTP-issued token.
    Login {
        /// Business.
        bid: &'a str,
        /// Agent id.
        customer_id: &'a str,
        /// Token from `POST /api/agent/login`.
        token: &'a str,
    },
    /// Anonymous visitor login: no token, the server issues one ("issued on first connect").
    VisitorLogin {
        /// Business.
        bid: &'a str,
        /// Page the widget pretends to run on.
        page_url: &'a str,
    },
    /// A text message; visitors omit `conv_id` (their open conversation, opened if needed).
    Send {
        /// Conversation (agents).
        #[serde(skip_serializing_if = "Option::is_none")]
        conv_id: Option<i64>,
        /// Per-connection id echoed in the ack.
        client_msg_id: &'a str,
        /// Always `text`.
        kind: &'static str,
        /// Body: `<sender>:<seq>:<send_us>`.
        text: &'a str,
    },
    /// Heartbeat (no reply).
    Beat,
}

impl Req<'_> {
    /// The request as one JSON text frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Every frame the server sends, flattened to the fields the scenario reads; the rest
/// (conversation objects, agent lists, queues) is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
pub struct Push<'a> {
    /// Push/reply type; absent on error frames.
    #[serde(default, borrow)]
    pub method: Option<Cow<'a, str>>,
    /// Error code (error frames only).
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    /// Echoed by `ack`, `message` and `send` errors.
    #[serde(default, borrow)]
    pub client_msg_id: Option<Cow<'a, str>>,
    /// Conversation (ack, message, assigned to a visitor, waiting).
    #[serde(default)]
    pub conv_id: Option<i64>,
    /// Message position (ack, message).
    #[serde(default)]
    pub seq: Option<i64>,
    /// `text`, `image` or `event` (message).
    #[serde(default, borrow)]
    pub kind: Option<Cow<'a, str>>,
    /// Message text.
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    /// Assigned agent (visitor's `assigned`).
    #[serde(default, borrow)]
    pub agent_id: Option<Cow<'a, str>>,
}

/// Body of `<sender>:<seq>:<send_us>` (sender = global client index).
pub fn content(sender: usize, seq: u64, send_us: u64) -> String {
    format!("{sender}:{seq}:{send_us}")
}

#[derive(Serialize)]
struct AgentLoginReq<'a> {
    bid: &'a str,
    agent_id: &'a str,
    password: &'a str,
}

#[derive(Deserialize)]
struct AgentLoginReply {
    token: String,
}

/// `http://IP:PORT` (loopback only, no path) → socket address.
pub fn http_addr(url: &str) -> Result<SocketAddr, LoadError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| LoadError::Usage(format!("--http must be http://IP:PORT, got {url}")))?;
    let hostport = rest.trim_end_matches('/');
    let addr = target::resolve_literal(hostport)
        .ok_or_else(|| LoadError::Usage(format!("--http: not an IP literal: {url}")))?;
    if !addr.ip().is_loopback() {
        return Err(LoadError::Usage(format!("--http: not loopback: {url}")));
    }
    Ok(addr)
}

/// `POST /api/agent/login` → the agent token.
pub fn agent_login(
    addr: SocketAddr,
    bid: &str,
    agent_id: &str,
    password: &str,
) -> Result<String, LoadError> {
    let body = serde_json::to_string(&AgentLoginReq {
        bid,
        agent_id,
        password,
    })
    .unwrap_or_default();
    let (status, reply) = post_json(addr, "/api/agent/login", &body)?;
    if status != 200 {
        return Err(LoadError::Usage(format!(
            "agent login {bid}/{agent_id}: HTTP {status}: {}",
            String::from_utf8_lossy(&reply)
        )));
    }
    serde_json::from_slice::<AgentLoginReply>(&reply)
        .map(|r| r.token)
        .map_err(|e| LoadError::Usage(format!("agent login {agent_id}: bad reply: {e}")))
}

/// One HTTP/1.1 POST with `Connection: close`; returns status and body.
fn post_json(addr: SocketAddr, path: &str, body: &str) -> Result<(u16, Vec<u8>), LoadError> {
    let timeout = Duration::from_secs(10);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(done) = complete_response(&buf) {
            buf.truncate(done);
            break;
        }
        if buf.len() > 1 << 20 {
            return Err(LoadError::Usage(format!("{path}: reply too large")));
        }
    }
    parse_response(&buf).ok_or_else(|| LoadError::Usage(format!("{path}: malformed HTTP reply")))
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

/// Length of a complete response in `buf` (head + Content-Length body), if complete.
fn complete_response(buf: &[u8]) -> Option<usize> {
    let end = head_end(buf)?;
    let len = content_length(&String::from_utf8_lossy(&buf[..end]))?;
    (buf.len() >= end + len).then_some(end + len)
}

fn parse_response(buf: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = head_end(buf)?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = match content_length(&head) {
        Some(len) => buf.get(end..end + len)?.to_vec(),
        None => buf[end..].to_vec(),
    };
    Some((status, body))
}

/// Parses `id:password,id:password` (or one pair per line of a file).
pub fn parse_credentials(text: &str) -> Result<Vec<(String, String)>, LoadError> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
        .map(|pair| {
            pair.split_once(':')
                .map(|(id, pw)| (id.trim().to_string(), pw.trim().to_string()))
                .filter(|(id, pw)| !id.is_empty() && !pw.is_empty())
                .ok_or_else(|| {
                    LoadError::Usage(format!(
                        "agent credentials: expected id:password, got {pair:?}"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_serialize() {
        let s = Req::Send {
            conv_id: None,
            client_msg_id: "7",
            kind: "text",
            text: "3:7:99",
        }
        .to_json();
        assert_eq!(
            s,
            r#"{"method":"send","client_msg_id":"7","kind":"text","text":"3:7:99"}"#
        );
        assert_eq!(Req::Beat.to_json(), r#"{"method":"beat"}"#);
        let s = Req::Login {
            bid: "b",
            customer_id: "a",
            token: "t",
        }
        .to_json();
        assert_eq!(
            s,
            r#"{"method":"login","bid":"b","customer_id":"a","token":"t"}"#
        );
    }

    #[test]
    fn pushes_parse() {
        let p: Push = serde_json::from_str(
            r#"{"method":"message","conv_id":7,"seq":13,"from":"visitor","sender_id":"v_1","sender_name":"","kind":"text","text":"3:1:5","url":null,"event":null,"ts":1,"client_msg_id":"1"}"#,
        )
        .unwrap();
        assert_eq!(p.method.as_deref(), Some("message"));
        assert_eq!((p.conv_id, p.seq), (Some(7), Some(13)));
        assert_eq!(p.text.as_deref(), Some("3:1:5"));
        let p: Push = serde_json::from_str(
            r#"{"method":"assigned","conv":{"conv_id":7,"visitor":{"visitor_id":"v"}}}"#,
        )
        .unwrap();
        assert_eq!(p.conv_id, None);
        let p: Push = serde_json::from_str(
            r#"{"code":"10008","msg":"slow down","method":"send","client_msg_id":"4"}"#,
        )
        .unwrap();
        assert_eq!(p.code.as_deref(), Some("10008"));
    }

    #[test]
    fn http_replies() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"token\":\"x\"}";
        assert_eq!(complete_response(r), Some(r.len()));
        let (st, body) = parse_response(r).unwrap();
        assert_eq!(st, 200);
        assert_eq!(body, b"{\"token\":\"x\"}");
        assert_eq!(complete_response(&r[..r.len() - 1]), None);
    }

    #[test]
    fn credentials() {
        let c = parse_credentials("a1:pw1, a2:pw2\n# c\na3:p:3\n").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2], ("a3".into(), "p:3".into()));
        assert!(parse_credentials("nopass").is_err());
        assert!(http_addr("http://10.0.0.1:80").is_err());
        assert!(http_addr("http://127.0.0.1:80/").is_ok());
    }
}
