//! Reload refuses no connection (issue 14, item 1): while clients open, upgrade, echo and
//! close WebSocket connections in a loop, `kefu reload` replaces the workers several times and
//! every attempt gets its 101 answer. The master owns each worker slot's SO_REUSEPORT
//! listening sockets, so a retiring worker never closes the socket its queued connections
//! wait on (closing it would reset them).

mod common;

use common::ws::Ws;
use common::{Instance, SEC};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// How one attempt ended.
enum Attempt {
    /// Upgraded and echoed.
    Echoed,
    /// Upgraded, then closed by the retiring worker before its echo (1012: item 2's part).
    Restarted,
    /// No answer to the upgrade: refused, reset or closed. What this test forbids.
    Failed(String),
}

fn attempt(addr: &str) -> Attempt {
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => return Attempt::Failed(format!("connect: {e}")),
    };
    s.set_read_timeout(Some(10 * SEC)).unwrap();
    let req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if let Err(e) = s.write_all(req.as_bytes()) {
        return Attempt::Failed(format!("send upgrade: {e}"));
    }
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            Ok(_) => return Attempt::Failed("closed before the 101".into()),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Attempt::Failed("reset before the 101".into())
            }
            Err(e) => return Attempt::Failed(format!("read 101: {e}")),
        }
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Attempt::Failed(String::from_utf8_lossy(&head).into_owned());
    }
    let mut ws = Ws::from_stream(s);
    ws.send_text("hi");
    match ws.recv_frame() {
        Some(f) if f.opcode == 1 && f.payload == b"hi" => {
            ws.send_frame(true, 8, &1000u16.to_be_bytes());
            Attempt::Echoed
        }
        Some(f) if f.opcode == 8 && f.payload.starts_with(&1012u16.to_be_bytes()) => {
            Attempt::Restarted
        }
        other => Attempt::Failed(format!("after the 101: {other:?}")),
    }
}

#[test]
fn reloads_under_connection_churn_refuse_nothing() {
    let k = Instance::new("echo", 2, &["websocket"]);
    assert!(k.start_detached().ok());
    let addr = k.addr("websocket");
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicUsize::new(0));
    let restarted = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (addr, stop) = (addr.clone(), stop.clone());
            let (echoed, restarted) = (echoed.clone(), restarted.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match attempt(&addr) {
                        Attempt::Echoed => echoed.fetch_add(1, Ordering::Relaxed),
                        Attempt::Restarted => restarted.fetch_add(1, Ordering::Relaxed),
                        Attempt::Failed(why) => {
                            failures.push(why);
                            0
                        }
                    };
                }
                failures
            })
        })
        .collect();
    for i in 0..5 {
        let before = echoed.load(Ordering::Relaxed);
        let out = k.run(&["reload"], 60 * SEC);
        assert!(out.ok(), "reload {i}: {out:?}");
        // Traffic between reloads, so each reload lands on a loaded listener.
        assert!(common::wait_until(10 * SEC, || echoed
            .load(Ordering::Relaxed)
            > before + 200));
    }
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = clients
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let total = echoed.load(Ordering::Relaxed) + restarted.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} attempts got no answer: {:?}",
        failures.len(),
        total + failures.len(),
        &failures[..failures.len().min(5)]
    );
}
