//! Idle keep-alive HTTP connections (what every browser leaves open) do not hold up `stop`,
//! `stop -g` or `reload -g`: the worker closes them at once and exits cleanly (a fast `reload`
//! hands them over to the new worker instead, see `reload_handover.rs`), so no worker is
//! SIGKILLed at its stop timeout and `status` never shows a clean stop as a kill (issue 14,
//! item 4).

mod common;

use common::{Instance, SEC};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// A keep-alive connection that has been answered once and now sits idle.
fn idle_keepalive(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(10 * SEC)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    s
}

/// The server hung up on `s` (EOF, not a read timeout).
fn hung_up(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 16];
    matches!(s.read(&mut b), Ok(0))
}

fn no_kill_in(log: &str) {
    assert!(
        !log.contains("SIGKILL") && !log.contains("is stuck"),
        "a worker was killed: {log}"
    );
}

#[test]
fn stop_closes_idle_keepalive_connections_at_once() {
    for graceful in [false, true] {
        // graceful_timeout 0: a draining worker waits for every connection to end.
        let k = Instance::new("echo", 1, &["http"]).config("graceful_timeout = 0\n");
        assert!(k.start_detached().ok());
        let mut idle = idle_keepalive(&k.addr("http"));
        let args: &[&str] = if graceful { &["stop", "-g"] } else { &["stop"] };
        let out = k.run(args, 30 * SEC);
        assert!(out.ok(), "stop -g={graceful}: {out:?}");
        assert!(hung_up(&mut idle), "the idle connection was closed");
        let log = k.log();
        no_kill_in(&log);
        assert!(log.contains("exit with status 0"), "{log}");
    }
}

/// A graceful reload drains the old worker without waiting on idle keep-alive connections (a
/// fast reload hands them over instead: `reload_handover.rs`).
#[test]
fn graceful_reload_closes_idle_keepalive_connections_at_once() {
    let k = Instance::new("echo", 1, &["http"]);
    assert!(k.start_detached().ok());
    let mut idle = idle_keepalive(&k.addr("http"));
    let out = k.run(&["reload", "-g"], 30 * SEC);
    assert!(out.ok(), "{out:?}");
    assert!(hung_up(&mut idle));
    let log = k.log();
    no_kill_in(&log);
    assert!(log.contains("exit with status 0"), "{log}");
    // The successor serves.
    drop(idle_keepalive(&k.addr("http")));
}
