//! Helpers for the kefu app's integration tests: a server with a data dir and agents, a tiny
//! HTTP client, and WebSocket helpers that speak the `method`-tagged protocol.

#![allow(dead_code)]

use crate::common::server::Server;
use crate::common::ws::Ws;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The binary under test.
pub const KEFU: &str = env!("CARGO_BIN_EXE_kefu");

/// A running kefu app with its data dir.
pub struct Kefu {
    /// The server (stopped on drop).
    pub server: Server,
    /// Data dir.
    pub data: PathBuf,
    /// Config file.
    pub conf: PathBuf,
}

/// A fresh scratch directory.
pub fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "kefu-{tag}-{}-{}",
        std::process::id(),
        crate::common::free_port()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The password every test agent gets (long enough for `agent add`'s minimum).
pub const AGENT_PW: &str = "pw-agent-test";

/// Run the CLI against a data dir; returns stdout (panics on failure).
pub fn cli(conf: &Path, data: &Path, args: &[&str]) -> String {
    cli_stdin(conf, data, args, "")
}

/// [`cli`] with `stdin` as the command's standard input (`agent add|passwd` read the password
/// from it).
pub fn cli_stdin(conf: &Path, data: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(KEFU)
        .args(args)
        .args([
            "-c",
            conf.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A command that reads nothing may exit before the write: a broken pipe is fine then.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "kefu {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

impl Kefu {
    /// Start with `workers` workers, `[kefu]` settings `kefu_toml`, and agents
    /// `(bid, id, name, max)` all with password [`AGENT_PW`].
    pub fn start(
        workers: usize,
        kefu_toml: &str,
        agents: &[(&str, &str, &str, Option<u32>)],
    ) -> Kefu {
        let dir = scratch("app");
        let data = dir.join("data");
        let conf = dir.join("kefu.toml");
        std::fs::write(&conf, format!("[kefu]\n{kefu_toml}\n")).unwrap();
        for (bid, id, name, max) in agents {
            let mut a = vec![
                "agent",
                "add",
                "--bid",
                bid,
                "--id",
                id,
                "--name",
                name,
                "--password-stdin",
            ];
            let m = max.map(|m| m.to_string());
            if let Some(m) = &m {
                a.extend(["--max", m]);
            }
            cli_stdin(&conf, &data, &a, &format!("{AGENT_PW}\n"));
        }
        let server = Server::start(
            "kefu",
            workers,
            &["websocket"],
            &[
                "-c",
                conf.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ],
        );
        Kefu { server, data, conf }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.server.addr(0)
    }

    /// An agent token from `POST /api/agent/login`.
    pub fn agent_token(&self, bid: &str, id: &str) -> String {
        let (st, v) = http_json(
            &self.addr(),
            "POST",
            "/api/agent/login",
            &[],
            json!({"bid":bid,"agent_id":id,"password":AGENT_PW})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(st, 200, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// A logged-in agent connection (login reply returned too).
    pub fn agent(&self, bid: &str, id: &str) -> (Ws, Value) {
        let token = self.agent_token(bid, id);
        let mut ws = Ws::connect(&self.addr(), "/ws");
        ws.send_text(
            &json!({"method":"login","bid":bid,"customer_id":id,"customer_name":id,"token":token})
                .to_string(),
        );
        let v = recv_method(&mut ws, "login");
        (ws, v)
    }

    /// A logged-in anonymous visitor connection.
    pub fn visitor(&self, bid: &str) -> (Ws, Value) {
        let mut ws = Ws::connect(&self.addr(), "/ws");
        ws.send_text(&json!({"method":"visitor_login","bid":bid,"page_url":"https://shop/p","referrer":"https://ref/"}).to_string());
        let v = recv_method(&mut ws, "visitor_login");
        (ws, v)
    }

    /// A visitor connection reusing a token.
    pub fn visitor_with(&self, bid: &str, token: &str, resume: Value) -> (Ws, Value) {
        let mut ws = Ws::connect(&self.addr(), "/ws");
        ws.send_text(
            &json!({"method":"visitor_login","bid":bid,"token":token,"resume":resume}).to_string(),
        );
        let v = recv_method(&mut ws, "visitor_login");
        (ws, v)
    }

    /// Worker pids (children of the foreground master).
    pub fn worker_pids(&self) -> Vec<i32> {
        self.server.worker_pids()
    }
}

/// Next JSON message (None on timeout/close).
pub fn recv_json(ws: &mut Ws) -> Option<Value> {
    let t = ws.recv_text()?;
    Some(serde_json::from_str(&t).unwrap_or_else(|_| panic!("not json: {t}")))
}

/// Read until a message with `method == m` (others are skipped); panics on timeout.
pub fn recv_method(ws: &mut Ws, m: &str) -> Value {
    loop {
        let v = recv_json(ws).unwrap_or_else(|| panic!("closed/timeout waiting for {m}"));
        if v["method"] == m && v.get("code").is_none() {
            return v;
        }
        if v.get("code").is_some() && v["method"] == m {
            panic!("error instead of {m}: {v}");
        }
    }
}

/// Read until an error frame (has `code`); panics on timeout.
pub fn recv_error(ws: &mut Ws) -> Value {
    loop {
        let v = recv_json(ws).expect("closed/timeout waiting for an error");
        if v.get("code").is_some() {
            return v;
        }
    }
}

/// Read until `pred` holds.
pub fn recv_until(ws: &mut Ws, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
    loop {
        let v = recv_json(ws).unwrap_or_else(|| panic!("closed/timeout waiting for {what}"));
        if pred(&v) {
            return v;
        }
    }
}

/// Everything that arrives within `d`.
pub fn collect(ws: &mut Ws, d: Duration) -> Vec<Value> {
    ws.sock.set_read_timeout(Some(d)).unwrap();
    let end = Instant::now() + d;
    let mut v = Vec::new();
    while Instant::now() < end {
        match ws.recv_text() {
            Some(t) => v.push(serde_json::from_str(&t).unwrap()),
            None => break,
        }
    }
    ws.sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    v
}

/// Send a text message; wait for its ack; returns the seq.
pub fn say(ws: &mut Ws, conv: Option<i64>, cmid: &str, text: &str) -> i64 {
    let mut m = json!({"method":"send","client_msg_id":cmid,"kind":"text","text":text});
    if let Some(c) = conv {
        m["conv_id"] = json!(c);
    }
    ws.send_text(&m.to_string());
    let a = recv_until(ws, "ack", |v| {
        (v["method"] == "ack" || v.get("code").is_some()) && v["client_msg_id"] == cmid
    });
    assert_eq!(a["method"], "ack", "send failed: {a}");
    a["seq"].as_i64().unwrap()
}

/// A raw HTTP/1.1 request; returns status and body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let i = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("http head");
    let head = String::from_utf8_lossy(&out[..i]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, out[i + 4..].to_vec(), head)
}

/// An HTTP request with a JSON answer.
pub fn http_json(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let (st, b, _) = http(addr, method, path, headers, body);
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null))
}
