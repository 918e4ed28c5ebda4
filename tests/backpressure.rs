//! Back-pressure and resource exhaustion against the real binary: a client that does not read
//! its echoes is throttled (reads paused), a slow member of a busy room overflows its send
//! buffer and is disconnected and counted as a send failure, neither disturbs other clients;
//! a member that falls megabytes behind and then reads gets every broadcast in order;
//! a worker out of file descriptors keeps serving, does not spin on accept, and accepts
//! again once descriptors are free.

mod common;

use common::ws::Ws;
use common::{wait_until, Instance, SEC};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn echo(c: &mut Ws, msg: &str) {
    c.send_text(msg);
    assert_eq!(c.recv_text().as_deref(), Some(msg), "no echo for {msg}");
}

/// One masked 1000-byte text frame (the payload is ASCII, so masking keeps it valid UTF-8).
fn frame_1000() -> Vec<u8> {
    let mut f = vec![0x81, 0x80 | 126, 0x03, 0xe8, 0, 0, 0, 0];
    f.extend(std::iter::repeat_n(b'x', 1000));
    f
}

/// A one-worker chat server with `[limits] max_send_buffer = bytes`; returns it and its
/// WebSocket address.
fn start_chat_with_send_buffer(bytes: usize) -> (Instance, String) {
    let k = Instance::new("chat", 1, &["websocket"])
        .config(&format!("[limits]\nmax_send_buffer = {bytes}\n"));
    let out = k.start_detached();
    assert!(out.ok(), "{out:?}\n{}", k.log());
    let addr = format!("127.0.0.1:{}", k.port("websocket"));
    (k, addr)
}

/// Log into chat room "r" and wait for our own login echo.
fn login(ws: &mut Ws, name: &str) {
    ws.send_text(&format!(
        r#"{{"type":"login","client_name":"{name}","room_id":"r"}}"#
    ));
    ws.recv_json_type("login");
}

#[test]
fn a_client_that_does_not_read_its_echoes_is_throttled_not_dropped() {
    // Echo traffic is self-inflicted: the worker stops reading from a client whose answers
    // back up (paused reads), so the client is slowed down, never disconnected.
    let k = Instance::new("echo", 1, &["websocket"]).config("[limits]\nmax_send_buffer = 16384\n");
    let out = k.start_detached();
    assert!(out.ok(), "{out:?}\n{}", k.log());
    let addr = format!("127.0.0.1:{}", k.port("websocket"));
    let mut good = Ws::connect(&addr, "/");
    let mut bad = Ws::connect(&addr, "/");
    echo(&mut bad, "hello");
    let written = Arc::new(AtomicUsize::new(0));
    let mut sock = bad.sock.try_clone().unwrap();
    sock.set_write_timeout(Some(2 * SEC)).unwrap();
    let w = written.clone();
    let writer = std::thread::spawn(move || {
        let batch: Vec<u8> = (0..64).flat_map(|_| frame_1000()).collect();
        // Until the kernel buffers on both sides are full and the write times out.
        while sock.write_all(&batch).is_ok() {
            w.fetch_add(batch.len(), Ordering::SeqCst);
        }
    });
    writer.join().unwrap();
    assert!(
        written.load(Ordering::SeqCst) > 16384,
        "the worker never pushed back"
    );
    // Other clients are served meanwhile.
    echo(&mut good, "still served");
    // The slow client is still connected: reading its backlog yields echoes, in order.
    for _ in 0..10 {
        let f = bad.recv_frame().expect("throttled client was dropped");
        assert_eq!((f.opcode, f.payload.len()), (1, 1000));
    }
    let s = k.status().expect("status --json");
    assert_eq!(s["workers"][0]["send_fail"].as_u64(), Some(0), "{s}");
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn a_slow_member_of_a_busy_room_overflows_and_is_dropped() {
    // Messages pushed by others cannot be throttled at their source: once the slow client's
    // send buffer is full it is disconnected and counted as a send failure.
    let (k, addr) = start_chat_with_send_buffer(16384);
    let mut slow = Ws::connect(&addr, "/");
    login(&mut slow, "slow");
    let mut fast = Ws::connect(&addr, "/");
    login(&mut fast, "fast");
    let content = "y".repeat(1000);
    let say = format!(r#"{{"type":"say","to_client_id":"all","content":"{content}"}}"#);
    // The fast client keeps talking and reads its own copies; the slow one never reads.
    let mut sent = 0;
    let dropped = wait_until(60 * SEC, || {
        for _ in 0..50 {
            fast.send_text(&say);
            sent += 1;
        }
        for _ in 0..50 {
            fast.recv_json_type("say");
        }
        k.status()
            .and_then(|s| s["workers"][0]["send_fail"].as_u64())
            .is_some_and(|n| n >= 1)
    });
    assert!(
        dropped,
        "slow client never dropped after {sent} messages\n{}",
        k.log()
    );
    // The slow client's socket ends (after whatever the kernel still held).
    let mut buf = vec![0u8; 65536];
    loop {
        match slow.sock.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("slow client still connected: {e}"),
        }
    }
    // The room lives on for the fast client.
    fast.send_text(&say);
    fast.recv_json_type("say");
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn a_member_that_falls_behind_then_reads_gets_every_broadcast_whole_and_in_order() {
    // Broadcasts are queued as ranges of one per-turn buffer shared by the room; a member
    // whose socket is full when the turn ends keeps its ranges on a kept copy of that buffer.
    // Megabytes pile up for a member that does not read (well past what the kernel buffers),
    // then it reads: every message must arrive once, intact, in order.
    let (k, addr) = start_chat_with_send_buffer(64 << 20);
    let mut late = Ws::connect(&addr, "/");
    login(&mut late, "late");
    let mut talker = Ws::connect(&addr, "/");
    login(&mut talker, "talker");
    assert_eq!(late.recv_json_type("login")["client_name"], "talker");
    const N: usize = 4000;
    let pad = "z".repeat(1000);
    for i in 0..N {
        let say = format!(r#"{{"type":"say","to_client_id":"all","content":"{i}:{pad}"}}"#);
        talker.send_text(&say);
        // Read our own copies as we go, so only `late` falls behind.
        if i % 50 == 49 {
            for _ in 0..50 {
                talker.recv_json_type("say");
            }
        }
    }
    for i in 0..N {
        let m = late.recv_json_type("say");
        assert_eq!(
            m["content"].as_str(),
            Some(format!("{i}:{pad}").as_str()),
            "message {i} out of order or damaged"
        );
    }
    let s = k.status().expect("status --json");
    assert_eq!(s["workers"][0]["send_fail"].as_u64(), Some(0), "{s}");
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

/// utime + stime of `pid` in clock ticks (/proc/PID/stat fields 14 and 15).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm, fields start at 3 (state): utime is field 14, stime 15.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_sec() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn text_echo(c: &mut TcpStream, msg: &str) -> Option<String> {
    c.write_all(format!("{msg}\n").as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(&*c).read_line(&mut line).ok()?;
    Some(line)
}

#[test]
fn accept_survives_emfile_without_spinning() {
    // A foreground master under a 64-descriptor limit; the worker inherits it.
    let mut k = Instance::new("echo", 1, &["text"]).nofile_limit(64).start();
    let port = k.port("text");
    let log = || k.stderr();
    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    first.set_read_timeout(Some(10 * SEC)).unwrap();
    assert_eq!(text_echo(&mut first, "one").as_deref(), Some("one\n"));
    let worker = k.worker_pids()[0];

    // More connections than descriptors: the rest wait in the kernel backlog.
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    assert!(
        wait_until(20 * SEC, || log().contains("Too many open files")),
        "the worker never hit EMFILE:\n{}",
        log()
    );

    // At the limit, the worker must wait for descriptors, not retry accept in a tight loop.
    let hz = clock_ticks_per_sec();
    let before = cpu_ticks(worker);
    std::thread::sleep(2 * SEC); // measurement window, not synchronisation
    let used = cpu_ticks(worker) - before;
    assert!(
        used < hz,
        "worker used {used} ticks ({hz}/s) in 2 s at the fd limit: accept is spinning"
    );
    assert_eq!(text_echo(&mut first, "two").as_deref(), Some("two\n"));
    // Accept is retried every 100 ms while the limit lasts; the warning is not repeated with
    // it (at most one line per 10 s), so a flood cannot fill the log.
    let warnings = log().matches("Too many open files").count();
    assert!(
        warnings <= 2,
        "{warnings} EMFILE warnings in 2 s:\n{}",
        log()
    );

    // Descriptors come back: the backlog drains and new clients are served.
    drop(flood);
    let served = wait_until(20 * SEC, || {
        let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        c.set_read_timeout(Some(SEC)).unwrap();
        text_echo(&mut c, "three").as_deref() == Some("three\n")
    });
    assert!(
        served,
        "new connections not served after the flood:\n{}",
        log()
    );
    assert_eq!(text_echo(&mut first, "four").as_deref(), Some("four\n"));

    k.signal_master(libc::SIGTERM);
    assert!(k.wait_exit(10 * SEC).is_some(), "{}", k.log());
}
