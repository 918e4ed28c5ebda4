//! Reload, restart and WebSocket clients: a fast reload hands open clients over to the new
//! worker (they notice nothing; `reload_handover.rs` has the details, and the 1012 a client
//! gets when the new binary cannot take them), `restart` closes them with 1001, and a
//! graceful reload lets them finish on the old worker.

mod common;

use common::ws::Ws;
use common::{alive, wait_until, Instance};
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

fn echo(c: &mut Ws, msg: &str) {
    c.send_text(msg);
    assert_eq!(c.recv_text().as_deref(), Some(msg), "no echo for {msg}");
}

#[test]
fn fast_reload_keeps_the_client_and_restart_closes_it_with_1001() {
    let k = Instance::echo(1);
    assert!(k.start_detached().ok(), "{}", k.log());
    let before = k.worker_pids();
    assert_eq!(before.len(), 1);
    let addr = format!("127.0.0.1:{}", k.port("websocket"));
    let mut c = Ws::connect(&addr, "/");
    echo(&mut c, "before");

    // `reload` hands the connection over: the next frame is the echo, no close code.
    let out = k.run(&["reload"], 30 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
    echo(&mut c, "after the reload");
    let after = k.worker_pids();
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "status still shows the old worker");
    assert!(
        !alive(before[0]),
        "fast reload returned with the old worker alive"
    );

    // `restart` is a stop and a start: the client is closed with 1001 and reconnects.
    let mut a = vec!["restart".to_string(), "-d".to_string()];
    a.extend(k.start_args());
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = k.run(&refs, 30 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
    assert_eq!(c.recv_close_code(), Some(1001), "{}", k.log());
    let mut again = Ws::connect(&addr, "/");
    echo(&mut again, "after the restart");
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn graceful_reload_lets_an_open_client_finish_on_the_old_worker() {
    let k = Instance::echo(1);
    assert!(k.start_detached().ok(), "{}", k.log());
    let before = k.worker_pids();
    assert_eq!(before.len(), 1);
    let old = before[0];
    let addr = format!("127.0.0.1:{}", k.port("websocket"));
    let mut c = Ws::connect(&addr, "/");
    echo(&mut c, "before");

    let out = k.run(&["reload", "-g"], 30 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
    // No 1012: the next frame is the echo of a message sent after the reload.
    echo(&mut c, "during the drain");
    echo(&mut c, "still here");

    // Status lists the new worker, and the old one while it drains.
    let s = k.status().expect("status --json");
    let pids: Vec<i64> = s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["pid"].as_i64())
        .collect();
    assert!(
        pids.contains(&(old as i64)),
        "draining worker not listed: {s}"
    );
    assert!(
        pids.iter().any(|&p| p != old as i64),
        "no new worker listed: {s}"
    );
    // New clients go to the new worker.
    let mut fresh = Ws::connect(&addr, "/");
    echo(&mut fresh, "new");
    assert!(alive(old));

    // The client leaves: the old worker has nothing left to drain and exits.
    drop(c);
    assert!(wait_until(10 * SEC, || !alive(old)), "{}", k.log());
    let after = k.worker_pids();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0], old);
    echo(&mut fresh, "new worker keeps serving");
    assert!(k.run(&["stop"], 10 * SEC).ok());
}
