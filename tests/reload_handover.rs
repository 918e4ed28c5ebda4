//! Reload hands live connections over (issue 14, item 2): on `kefu reload` each old worker
//! gives every established connection (the socket, its protocol state, its unread and unsent
//! bytes, its deadlines) and its gateway state to its slot's successor. Clients see nothing:
//! no close, no 1012, no lost or repeated message, the same client id.

mod common;

use common::ws::Ws;
use common::{alive, Instance, SEC};
use std::io::{Read, Write};
use std::net::TcpStream;

fn echo(c: &mut Ws, msg: &str) {
    c.send_text(msg);
    assert_eq!(c.recv_text().as_deref(), Some(msg), "no echo for {msg}");
}

fn reload(k: &Instance) {
    let out = k.run(&["reload"], 60 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
}

#[test]
fn websocket_text_and_keep_alive_http_clients_move_to_the_new_worker() {
    let k = Instance::new("echo", 1, &["websocket", "text", "http"]);
    assert!(k.start_detached().ok(), "{}", k.log());
    let before = k.worker_pids();
    let mut ws = Ws::connect(&k.addr("websocket"), "/");
    echo(&mut ws, "before");
    let mut text = TcpStream::connect(k.addr("text")).unwrap();
    text.set_read_timeout(Some(10 * SEC)).unwrap();
    let line = |s: &mut TcpStream, msg: &str| {
        s.write_all(format!("{msg}\n").as_bytes()).unwrap();
        let mut got = vec![0u8; msg.len() + 1];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, format!("{msg}\n").as_bytes());
    };
    line(&mut text, "text before");
    // Half a line and half a WebSocket frame are in flight when the reload comes.
    text.write_all(b"text ha").unwrap();
    let frame = masked_text("split frame");
    ws.sock.write_all(&frame[..5]).unwrap();
    // A keep-alive HTTP connection between two requests.
    let mut http = TcpStream::connect(k.addr("http")).unwrap();
    http.set_read_timeout(Some(10 * SEC)).unwrap();
    let first = get(&mut http);
    assert!(first.starts_with("HTTP/1.1 404"), "{first}");

    reload(&k);
    let after = k.worker_pids();
    assert_ne!(after, before);
    assert!(!alive(before[0]), "the old worker is still there");

    ws.sock.write_all(&frame[5..]).unwrap();
    assert_eq!(ws.recv_text().as_deref(), Some("split frame"));
    echo(&mut ws, "after");
    text.write_all(b"lf over\n").unwrap();
    let mut got = vec![0u8; "text half over\n".len()];
    text.read_exact(&mut got).unwrap();
    assert_eq!(got, b"text half over\n");
    line(&mut text, "text after");
    let second = get(&mut http);
    assert!(second.starts_with("HTTP/1.1 404"), "{second}");
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

/// A client frame (masked) with a text payload.
fn masked_text(s: &str) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x81, 0x80 | s.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(s.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// One keep-alive GET; returns the head and body.
fn get(s: &mut TcpStream) -> String {
    s.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}
