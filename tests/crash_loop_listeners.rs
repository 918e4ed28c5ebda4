//! The master owns each worker slot's listening sockets. A slot whose worker crash-loops gives
//! its sockets up during the back-off (so new connections go to the live slots instead of
//! waiting on a socket nobody accepts on) and gets fresh ones at the respawn: afterwards both
//! workers serve again.

mod common;

use common::{signal, socket_owner, wait_until, Instance, SEC};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

fn echoes(c: &mut TcpStream) -> bool {
    if c.write_all(b"ping\n").is_err() {
        return false;
    }
    let mut line = String::new();
    matches!(BufReader::new(&*c).read_line(&mut line), Ok(5) if line == "ping\n")
}

#[test]
fn a_crash_looping_slot_rebinds_and_serves_again() {
    let k = Instance::new("echo", 2, &["text"]);
    assert!(k.start_detached().ok());
    let port = k.port("text");
    let first = k.wait_workers_ready(2, &[], 20 * SEC);
    let survivor = first[1];
    // Kill slot 0's worker, then each replacement as soon as the master lists it, until the
    // master calls the slot crash-looping (and gives its sockets up for the back-off).
    let mut gone = vec![first[0]];
    signal(first[0], libc::SIGKILL);
    let looping = wait_until(30 * SEC, || {
        if k.log().contains("crash-looping") {
            return true;
        }
        let listed = k.status().and_then(|s| {
            let w = s["workers"].as_array()?.clone();
            Some(
                w.iter()
                    .filter_map(|w| w["pid"].as_i64())
                    .collect::<Vec<_>>(),
            )
        });
        for p in listed.unwrap_or_default() {
            let p = p as i32;
            if p != survivor && !gone.contains(&p) {
                signal(p, libc::SIGKILL);
                gone.push(p);
            }
        }
        false
    });
    assert!(looping, "{}", k.log());
    // What the killed workers had accepted died with them, before the connections below.
    // Every connection from now on is served (by the live slot, or the respawned one).
    for _ in 0..20 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(10 * SEC)).unwrap();
        assert!(
            echoes(&mut c),
            "a connection was not served during the back-off"
        );
    }
    // After the respawn both slots take connections again (the kernel spreads new connections
    // over the slots' sockets by their ports, so a few hundred reach both).
    let now = k.wait_workers_ready(2, &gone, 20 * SEC);
    let mut owners = BTreeSet::new();
    let served = wait_until(20 * SEC, || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(10 * SEC)).unwrap();
        assert!(echoes(&mut c));
        if let Some(p) = socket_owner(&c, port, &now) {
            owners.insert(p);
        }
        owners.len() == 2
    });
    assert!(
        served,
        "only {owners:?} of {now:?} served after the respawn"
    );
}
