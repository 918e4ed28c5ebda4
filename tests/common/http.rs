//! A tiny blocking HTTP/1.1 client for the tests: keep-alive connections with Content-Length
//! framing and JSON helpers for the gateway API ([`Http`]), and one-shot requests read to EOF
//! ([`raw`], [`http`], [`http_json`]) for the kefu app's API and pages.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Head as text (status line and headers).
    pub head: String,
    /// Body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `error.code` of an API error answer.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// The `gateway.secret_key` the tests configure for `api://` listeners (16+ bytes, as the
/// server demands); every [`Http`] presents it unless told otherwise.
pub const API_KEY: &str = "test-api-key-0123456789";

/// The config lines that turn the HTTP API on with [`API_KEY`].
pub fn api_config() -> String {
    format!("[gateway]\nsecret_key = \"{API_KEY}\"\n")
}

/// Config for the `bridge` app with the HTTP API on: client events go to
/// `http://127.0.0.1:PORT/hook`, which has `timeout_s` seconds to answer.
pub fn bridge_config(port: u16, timeout_s: u32) -> String {
    format!(
        "{}[bridge]\nbackend_url = \"http://127.0.0.1:{port}/hook\"\nbackend_timeout = {timeout_s}\n",
        api_config()
    )
}

/// One keep-alive connection.
pub struct Http {
    sock: TcpStream,
    buf: Vec<u8>,
    /// Sent as `Authorization: Bearer` when set.
    pub key: Option<String>,
    addr: String,
}

impl Http {
    /// Connect to `addr`, presenting [`API_KEY`].
    pub fn connect(addr: &str) -> Http {
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.set_nodelay(true).unwrap();
        Http {
            sock,
            buf: Vec::new(),
            key: Some(API_KEY.to_string()),
            addr: addr.to_string(),
        }
    }

    /// Local port of this connection (tells connections apart).
    pub fn local_port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    /// Send a raw request (head with extra headers, body) and read the answer.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(k) = &self.key {
            req.push_str(&format!("Authorization: Bearer {k}\r\n"));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        // The server may answer (413) and close before reading a large body: ignore write errors.
        let _ = self.sock.write_all(&bytes);
        self.read_answer()
    }

    /// POST `/gateway/<call>` with a JSON body.
    pub fn call(&mut self, call: &str, body: &serde_json::Value) -> Answer {
        self.request(
            "POST",
            &format!("/gateway/{call}"),
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    /// POST a call and return `result`, panicking unless the answer is `ok`.
    pub fn ok(&mut self, call: &str, body: serde_json::Value) -> serde_json::Value {
        let a = self.call(call, &body);
        let v = a.json();
        assert!(
            a.status == 200 && v["ok"] == true,
            "{call} {body}: {} {v}",
            a.status
        );
        v["result"].clone()
    }

    fn read_answer(&mut self) -> Answer {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if self.buf.len() >= i + 4 + len {
                    let body = self.buf[i + 4..i + 4 + len].to_vec();
                    self.buf.drain(..i + 4 + len);
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    return Answer { status, head, body };
                }
            }
            let mut tmp = [0u8; 65536];
            match self.sock.read(&mut tmp) {
                Ok(0) => panic!(
                    "connection closed before a full answer: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) => panic!("read answer: {e}"),
            }
        }
    }
}

/// One call on a fresh connection.
pub fn call_once(addr: &str, key: Option<&str>, call: &str, body: &serde_json::Value) -> Answer {
    let mut h = Http::connect(addr);
    h.key = key.map(str::to_string);
    h.call(call, body)
}

impl Answer {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Send `req` verbatim (no client-side path normalisation) on a fresh connection and read the
/// answer to EOF (the request should say `Connection: close`).
pub fn raw(addr: &str, req: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before reading a large body: ignore write errors.
    let _ = s.write_all(req);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let i = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&out)));
    let head = String::from_utf8_lossy(&out[..i]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Answer {
        status,
        head,
        body: out[i + 4..].to_vec(),
    }
}

/// One request on a fresh connection (`Connection: close`); returns status, body and head.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let a = raw(addr, &bytes);
    (a.status, a.body, a.head)
}

/// [`http`] with a JSON answer (`Null` if the body is not JSON).
pub fn http_json(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, serde_json::Value) {
    let (st, b, _) = http(addr, method, path, headers, body);
    (
        st,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

/// One HTTP request read from `s` (head, then `Content-Length` bytes of body), its body
/// parsed as JSON: what the test backends of the bridge app receive. None on EOF, a read
/// error or a body that is not JSON.
pub fn read_json_request(s: &mut impl Read) -> Option<serde_json::Value> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < i + 4 + len {
            let n = s.read(&mut tmp).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        return serde_json::from_slice(&buf[i + 4..i + 4 + len]).ok();
    }
}

/// One keep-alive API connection to `addr` per worker incarnation in `incs` (SO_REUSEPORT
/// spreads new connections over the workers; each answer names its worker in
/// `X-Kefu-Incarnation`).
pub fn api_per_worker(
    addr: &str,
    incs: &std::collections::BTreeSet<String>,
) -> std::collections::BTreeMap<String, Http> {
    let mut apis = std::collections::BTreeMap::new();
    for _ in 0..400 {
        if apis.len() == incs.len() {
            break;
        }
        let mut h = Http::connect(addr);
        let a = h.call("get_all_client_id_count", &serde_json::json!({}));
        assert_eq!(a.status, 200);
        let inc = a.header("X-Kefu-Incarnation").unwrap();
        if incs.contains(&inc) {
            apis.entry(inc).or_insert(h);
        }
    }
    assert_eq!(apis.len(), incs.len(), "API connections missed a worker");
    apis
}

/// A bridge backend on 127.0.0.1 that holds every answer until the test releases it (one
/// `()` on the returned sender per answer) and answers `{"echo": <the message>}`; each
/// request body goes to the returned receiver as it arrives. One request at a time: the
/// bridge makes one call per client at a time anyway.
pub fn gated_backend() -> (
    u16,
    std::sync::mpsc::Receiver<serde_json::Value>,
    std::sync::mpsc::Sender<()>,
) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let Some(req) = read_json_request(&mut s) else {
                continue;
            };
            let _ = seen_tx.send(req.clone());
            if gate_rx.recv().is_err() {
                return;
            }
            let body = serde_json::json!({"echo": req["message"]}).to_string();
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    (port, seen_rx, gate_tx)
}
