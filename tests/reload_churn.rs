//! Issue 14's churn test: the echo app on 2 workers, 10 reloads while 16 clients open, echo
//! and close WebSocket connections in a loop and 40 long-lived clients echo every 50 ms.
//! Nothing may fail: every attempt gets its 101 and its echo, no long-lived connection is
//! closed (no 1012: it is handed over), and every echo comes back exactly once, in order.

mod common;

use common::ws::Ws;
use common::{wait_until, Instance, SEC};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One short-lived connection: upgrade, echo once, close. `Err` says what went wrong.
fn attempt(addr: &str, n: usize) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(10 * SEC)).unwrap();
    let req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send upgrade: {e}"))?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            Ok(_) => return Err("closed before the 101".into()),
            Err(e) => return Err(format!("read 101: {e}")),
        }
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(String::from_utf8_lossy(&head).into_owned());
    }
    let mut ws = Ws::from_stream(s);
    let msg = format!("short-{n}");
    ws.send_text(&msg);
    match ws.recv_frame() {
        Some(f) if f.opcode == 1 && f.payload == msg.as_bytes() => {
            ws.send_frame(true, 8, &1000u16.to_be_bytes());
            Ok(())
        }
        other => Err(format!("after the 101: {other:?}")),
    }
}

/// A long-lived client: echo a numbered message every 50 ms until `stop`; returns how many
/// echoes came back, or what went wrong.
fn long_lived(
    addr: &str,
    who: usize,
    stop: &AtomicBool,
    echoed: &AtomicUsize,
) -> Result<usize, String> {
    let mut ws = Ws::connect(addr, "/");
    let mut n = 0;
    loop {
        let last = stop.load(Ordering::Relaxed);
        let msg = format!("long-{who}-{n}");
        ws.send_text(&msg);
        match ws.recv_frame() {
            Some(f) if f.opcode == 1 && f.payload == msg.as_bytes() => {
                n += 1;
                echoed.fetch_add(1, Ordering::Relaxed);
            }
            other => return Err(format!("client {who} after {n} echoes: {other:?}")),
        }
        if last {
            break;
        }
        // Pacing (the client's rate), not synchronisation: each echo is awaited above.
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing more may come: a repeated echo would show up here.
    ws.sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    if let Some(f) = ws.recv_frame() {
        return Err(format!(
            "client {who}: unexpected frame after the last echo: {f:?}"
        ));
    }
    Ok(n)
}

#[test]
fn ten_reloads_under_churn_fail_nothing_and_close_no_long_lived_client() {
    let k = Instance::new("echo", 2, &["websocket"]);
    assert!(k.start_detached().ok(), "{}", k.log());
    let addr = k.addr("websocket");
    let stop = Arc::new(AtomicBool::new(false));
    let short_ok = Arc::new(AtomicUsize::new(0));
    let churn: Vec<_> = (0..16)
        .map(|t| {
            let (addr, stop, ok) = (addr.clone(), stop.clone(), short_ok.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut n = t * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    match attempt(&addr, n) {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(why) => failures.push(why),
                    }
                    n += 1;
                }
                failures
            })
        })
        .collect();
    let long_echoed = Arc::new(AtomicUsize::new(0));
    let long: Vec<_> = (0..40)
        .map(|who| {
            let (addr, stop, echoed) = (addr.clone(), stop.clone(), long_echoed.clone());
            std::thread::spawn(move || long_lived(&addr, who, &stop, &echoed))
        })
        .collect();
    let pids0 = k.worker_pids();
    for i in 0..10 {
        let before = short_ok.load(Ordering::Relaxed);
        let long_before = long_echoed.load(Ordering::Relaxed);
        let out = k.run(&["reload"], 60 * SEC);
        assert!(out.ok(), "reload {i}: {out:?}\n{}", k.log());
        // Traffic between reloads (every long-lived client echoes about 5 times), so each
        // reload lands on loaded workers.
        assert!(
            wait_until(20 * SEC, || short_ok.load(Ordering::Relaxed) > before + 100
                && long_echoed.load(Ordering::Relaxed) > long_before + 40 * 5),
            "no traffic after reload {i}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = churn.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let long: Vec<Result<usize, String>> = long.into_iter().map(|t| t.join().unwrap()).collect();
    let pids1 = k.worker_pids();
    assert!(
        pids1.iter().all(|p| !pids0.contains(p)),
        "a worker was never replaced: {pids0:?} -> {pids1:?}"
    );
    let attempts = short_ok.load(Ordering::Relaxed) + failures.len();
    assert!(
        failures.is_empty(),
        "{} of {attempts} attempts failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let broken: Vec<&String> = long.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(broken.is_empty(), "long-lived clients broke: {broken:?}");
    let echoes: usize = long.iter().filter_map(|r| r.as_ref().ok()).sum();
    assert!(echoes > 10 * 40 * 5, "only {echoes} long-lived echoes");
    assert!(k.run(&["stop"], 10 * SEC).ok());
}
