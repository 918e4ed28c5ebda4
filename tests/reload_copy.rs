//! A reload copies a worker's connections to its successor ahead of time, a bounded batch per
//! loop turn, while the worker goes on serving them, and then commits only what changed
//! (issue 14: delivery during a reload). With more connections than several turns copy, a
//! client that talks all through the reload gets every answer once and in order, clients that
//! leave while the copy runs are gone on the new worker too, and every other one moves and
//! still answers.

mod common;

use common::ws::Ws;
use common::{Instance, SEC};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Idle connections: a few copy batches' worth (the worker copies 1000 per turn).
const IDLE: usize = 2600;
/// Of which this many hang up as soon as the hand-over begins.
const LEAVING: usize = 400;

/// Connections the workers hold, by their own count.
fn held(k: &Instance) -> u64 {
    k.status()
        .and_then(|s| {
            s["workers"]
                .as_array()
                .map(|w| w.iter().filter_map(|w| w["connections"].as_u64()).sum())
        })
        .unwrap_or(0)
}

#[test]
fn clients_are_served_while_their_worker_copies_them_and_all_move() {
    let limit = kefu::sys::process::raise_nofile(4 * IDLE as u64).expect("getrlimit");
    assert!(
        limit >= 2 * IDLE as u64,
        "this test needs {} descriptors, the hard limit allows {limit}",
        2 * IDLE
    );
    let k = Instance::new("echo", 1, &["websocket", "text"]);
    assert!(k.start_detached().ok(), "{}", k.log());
    let mut idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(k.addr("text")).expect("connect"))
        .collect();
    assert!(
        common::wait_until(30 * SEC, || held(&k) >= IDLE as u64),
        "the worker holds {} of {IDLE}",
        held(&k)
    );

    // One client echoes back to back through the whole reload.
    let mut talker = Ws::connect(&k.addr("websocket"), "/");
    let stop = Arc::new(AtomicBool::new(false));
    let talking = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let msg = format!("m{n}");
                talker.send_text(&msg);
                assert_eq!(talker.recv_text().as_deref(), Some(msg.as_str()));
                n += 1;
            }
            (talker, n)
        })
    };
    // Some hang up as soon as the old worker starts handing over: during its copy, or just
    // before or after it.
    let leavers: Vec<TcpStream> = idle.drain(..LEAVING).collect();
    let leaving = {
        let dir = k.dir.clone();
        std::thread::spawn(move || {
            let began = common::wait_until(60 * SEC, || {
                std::fs::read_to_string(dir.join("k.log"))
                    .is_ok_and(|l| l.contains("handing its connections over"))
            });
            drop(leavers);
            began
        })
    };

    let out = k.run(&["reload"], 60 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
    assert!(leaving.join().unwrap(), "no hand-over began");
    stop.store(true, Ordering::Relaxed);
    let (mut talker, n) = talking.join().expect("every echo came back once, in order");
    assert!(n > 0);
    let log = k.log();
    assert!(!log.contains("no hand-over"), "{log}");
    assert!(log.contains("clients held for the last"), "{log}");
    assert!(log.contains("] took over "), "{log}");

    // The talker and every idle client that stayed are on the new worker; the leavers are not.
    let want = (IDLE - LEAVING + 1) as u64;
    assert!(
        common::wait_until(30 * SEC, || held(&k) == want),
        "the new worker holds {}, not {want}",
        held(&k)
    );
    talker.send_text("after");
    assert_eq!(talker.recv_text().as_deref(), Some("after"));
    for (i, s) in idle.iter_mut().enumerate().step_by(97) {
        s.set_read_timeout(Some(10 * SEC)).unwrap();
        let line = format!("idle {i}\n");
        s.write_all(line.as_bytes()).unwrap();
        let mut got = vec![0u8; line.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, line.as_bytes());
    }
    // The moved sockets report their peers' hang-ups to the new worker.
    drop(idle);
    assert!(
        common::wait_until(30 * SEC, || held(&k) == 1),
        "the new worker still holds {} after its idle clients hung up",
        held(&k)
    );
    drop(talker);
    assert!(common::wait_until(30 * SEC, || held(&k) == 0));
    let out = k.run(&["stop"], 30 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
}
