//! The bridge app against a tiny backend HTTP server run by the test: the init message, the
//! forwarded JSON, answers reaching the client in order, timeout, backend errors and down,
//! the in-flight bound.

mod common;

use common::http::{api_config, Http};
use common::ws::Ws;
use common::Instance;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

/// A backend that records each request body and answers by the message's `cmd`:
/// `slow` sleeps `ms` first, `fail` answers 500, `empty` answers 200 with no body, anything
/// else echoes `{"echo": <request>}`.
fn backend() -> (u16, mpsc::Receiver<Value>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || serve(s, tx));
        }
    });
    (port, rx)
}

fn serve(mut s: TcpStream, tx: mpsc::Sender<Value>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let (head_end, len) = loop {
        let n = s.read(&mut tmp).unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            assert!(head.starts_with("post /hook?k=1 http/1.1"), "{head}");
            assert!(head.contains("content-type: application/json"));
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            break (i + 4, len);
        }
    };
    while buf.len() < head_end + len {
        let n = s.read(&mut tmp).unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let req: Value = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap();
    let _ = tx.send(req.clone());
    let cmd = req["message"]["cmd"].as_str().unwrap_or("");
    if let Some(ms) = req["message"]["ms"].as_u64() {
        // The slow backend is the thing under test (ordering, timeouts, the in-flight bound).
        std::thread::sleep(Duration::from_millis(ms));
    }
    let (status, body) = match cmd {
        "fail" => (500, "oops".to_string()),
        "empty" => (200, String::new()),
        _ => (200, json!({"echo": req}).to_string()),
    };
    let _ = s.write_all(
        format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

fn start(url: &str, timeout: f64, max_in_flight: usize) -> Instance {
    Instance::new("bridge", 1, &["websocket", "api"])
        .config(&format!(
            "{}[bridge]\nbackend_url = \"{url}\"\nbackend_timeout = {timeout}\nmax_in_flight = {max_in_flight}\n",
            api_config()
        ))
        .start()
}

fn client(s: &Instance) -> (Ws, String) {
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    let init = ws.recv_json_type("init");
    (ws, init["client_id"].as_str().unwrap().to_string())
}

fn recv_json(ws: &mut Ws) -> Value {
    serde_json::from_str(&ws.recv_text().expect("a message")).unwrap()
}

#[test]
fn forwards_and_answers_in_order() {
    let (port, seen) = backend();
    let s = start(&format!("http://127.0.0.1:{port}/hook?k=1"), 2.0, 64);
    let (mut ws, id) = client(&s);
    let mut h = Http::connect(&s.addr("api"));
    h.ok("bind_uid", json!({"client_id": id, "uid": "u9"}));
    h.ok(
        "set_session",
        json!({"client_id": id, "session": {"shop": 3}}),
    );

    ws.send_text(r#"{"cmd":"hi","n":0}"#);
    let req = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        req,
        json!({"client_id": id, "message": {"cmd":"hi","n":0}, "session": {"shop": 3}, "uid": "u9"})
    );
    assert_eq!(recv_json(&mut ws)["echo"], req);

    // Plain text goes as a string.
    ws.send_text("just words");
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(5)).unwrap()["message"],
        "just words"
    );
    assert_eq!(recv_json(&mut ws)["echo"]["message"], "just words");

    // Answers come back in message order even when earlier calls are slower.
    for n in 1..=6 {
        let ms = if n % 2 == 1 { 150 } else { 0 };
        ws.send_text(&json!({"cmd":"n","n":n,"ms":ms}).to_string());
    }
    for n in 1..=6 {
        assert_eq!(recv_json(&mut ws)["echo"]["message"]["n"], n);
    }
    // An empty 2xx answer sends nothing.
    ws.send_text(r#"{"cmd":"empty"}"#);
    ws.send_text(r#"{"cmd":"after"}"#);
    assert_eq!(recv_json(&mut ws)["echo"]["message"]["cmd"], "after");
}

#[test]
fn backend_errors_reach_the_client() {
    let (port, _seen) = backend();
    let s = start(&format!("http://127.0.0.1:{port}/hook?k=1"), 0.5, 64);
    let (mut ws, _) = client(&s);
    ws.send_text(r#"{"cmd":"fail"}"#);
    assert_eq!(
        recv_json(&mut ws),
        json!({"type":"error","code":500,"msg":"backend failed"})
    );
    ws.send_text(r#"{"cmd":"slow","ms":1500}"#);
    let t0 = std::time::Instant::now();
    assert_eq!(
        recv_json(&mut ws),
        json!({"type":"error","code":504,"msg":"backend timed out"})
    );
    assert!(
        t0.elapsed() < Duration::from_millis(1400),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn backend_down() {
    // A port nobody listens on.
    let port = common::free_port();
    let s = start(&format!("http://127.0.0.1:{port}/hook"), 1.0, 64);
    let (mut ws, _) = client(&s);
    ws.send_text("hello?");
    assert_eq!(
        recv_json(&mut ws),
        json!({"type":"error","code":502,"msg":"backend failed"})
    );
}

#[test]
fn busy_when_too_many_in_flight() {
    let (port, seen) = backend();
    let s = start(&format!("http://127.0.0.1:{port}/hook?k=1"), 3.0, 1);
    let (mut a, _) = client(&s);
    let (mut b, _) = client(&s);
    a.send_text(r#"{"cmd":"slow","ms":600}"#);
    seen.recv_timeout(Duration::from_secs(5)).unwrap();
    b.send_text(r#"{"cmd":"hi"}"#);
    assert_eq!(
        recv_json(&mut b),
        json!({"type":"error","code":503,"msg":"backend busy"})
    );
    assert_eq!(recv_json(&mut a)["echo"]["message"]["cmd"], "slow");
    // The slot is free again.
    b.send_text(r#"{"cmd":"hi"}"#);
    assert_eq!(recv_json(&mut b)["echo"]["message"]["cmd"], "hi");
}

#[test]
fn greeting_in_seed_001_form() {
    let s = Instance::new("bridge", 1, &["websocket"])
        .config("[bridge]\ngreeting = \"array\"\n")
        .start();
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    let v: serde_json::Value = serde_json::from_str(&ws.recv_text().unwrap()).unwrap();
    assert_eq!(v[0], "init");
    assert_eq!(v[1]["client_id"].as_str().unwrap().len(), 32);
}

#[test]
fn without_backend_only_init() {
    let s = Instance::new("bridge", 1, &["websocket"]).start();
    let (mut ws, id) = client(&s);
    assert_eq!(id.len(), 32);
    ws.send_text("ignored");
    ws.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(ws.recv_text(), None);
}
