//! Back-pressure and resource exhaustion against the real binary: a client whose echoes overflow
//! its send buffer is disconnected and counted as a send failure without disturbing other
//! clients; a worker out of file descriptors keeps serving, does not spin on accept, and accepts
//! again once descriptors are free.

mod common;

use common::ws::Ws;
use common::{free_port, wait_until, Instance, KEFU};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

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

#[test]
fn a_client_that_does_not_read_its_echoes_is_dropped_and_counted() {
    let k = Instance::new(1);
    std::fs::write(
        k.dir.join("bp.toml"),
        "app = \"echo\"\n[limits]\nmax_send_buffer = 16384\n",
    )
    .unwrap();
    let mut args = vec![
        "start".to_string(),
        "-d".into(),
        "-c".into(),
        "bp.toml".into(),
    ];
    args.extend(k.start_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = k.run(&refs, 30 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
    let worker = k.worker_pids()[0];
    let addr = format!("127.0.0.1:{}", k.ws_port);
    let mut good = Ws::connect(&addr, "/");
    echo(&mut good, "hello");
    let mut bad = Ws::connect(&addr, "/");
    echo(&mut bad, "hello");

    // Freeze the worker while the bad client pipelines 1000-byte messages and reads nothing, so
    // at least 48 KiB of them (three send buffers of echoes) are waiting when it wakes up: the
    // overflow then happens in one loop turn, whatever the scheduling.
    kefu::sys::process::kill(worker, libc::SIGSTOP).unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let mut sock = bad.sock.try_clone().unwrap();
    sock.set_write_timeout(Some(10 * SEC)).unwrap();
    let w = written.clone();
    let writer = std::thread::spawn(move || {
        let batch: Vec<u8> = (0..8).flat_map(|_| frame_1000()).collect();
        for _ in 0..64 {
            if sock.write_all(&batch).is_err() {
                break; // reset by the server: expected
            }
            w.fetch_add(batch.len(), Ordering::SeqCst);
        }
    });
    let queued = wait_until(10 * SEC, || written.load(Ordering::SeqCst) >= 48 * 1024);
    kefu::sys::process::kill(worker, libc::SIGCONT).unwrap();
    assert!(queued, "could not queue 48 KiB towards a stopped worker");

    // The server hangs up on the bad client: reading now ends in EOF or a reset, never a timeout.
    let mut buf = vec![0u8; 65536];
    let hung_up = loop {
        match bad.sock.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(e) => panic!("bad client still connected: {e}\n{}", k.log()),
        }
    };
    assert!(hung_up);
    writer.join().unwrap();
    let s = k.status().expect("status --json");
    let send_fail = s["workers"][0]["send_fail"].as_u64().unwrap_or(0);
    assert!(send_fail >= 1, "send_fail not counted: {s}");

    // The other client on the same worker was not disturbed.
    echo(&mut good, "still served");
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
    let k = Instance::new(1);
    let port = free_port();
    let stderr = std::fs::File::create(k.dir.join("stderr.log")).unwrap();
    // A foreground master under a 64-descriptor limit; the worker inherits it.
    let mut master = Command::new("sh")
        .args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\"", KEFU, "start"])
        .args(["--app", "echo", "--workers", "1"])
        .args(["--listen", &format!("text://127.0.0.1:{port}")])
        .args(["--pid-file", "k.pid", "--log-file", "k.log"])
        .current_dir(&k.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(k.dir.join("stderr.log")).unwrap_or_default();
    let mut first = None;
    assert!(
        wait_until(20 * SEC, || {
            first = TcpStream::connect(("127.0.0.1", port)).ok();
            first.is_some()
        }),
        "{}",
        log()
    );
    let mut first = first.unwrap();
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

    kefu::sys::process::kill(master.id() as i32, libc::SIGTERM).unwrap();
    assert!(wait_until(10 * SEC, || master
        .try_wait()
        .is_ok_and(|s| s.is_some())));
}
