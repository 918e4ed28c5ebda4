//! What every integration test shares: one launcher ([`Instance`]: the real `kefu` binary in a
//! private directory, with its own config and ports, stopped on drop) and one set of helpers
//! (free ports, waiting for a condition, processes and signals, an HTTP client in [`http`], a
//! WebSocket client in [`ws`], the kefu app's protocol in [`kefu_app`]).
//!
//! Each test binary compiles this module and uses only part of it, hence `allow(dead_code)`.

#![allow(dead_code)]

pub mod cluster;
pub mod http;
pub mod instance;
pub mod kefu_app;
pub mod kefu_cluster;
pub mod nginx;
pub mod pg;
pub mod pki;
pub mod ws;

pub use instance::Instance;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const KEFU: &str = env!("CARGO_BIN_EXE_kefu");

/// One second, the unit most deadlines are written in.
pub const SEC: Duration = Duration::from_secs(1);

/// A port nobody listens on right now (bind :0, read it, release it). Another process could
/// take it before the server binds it; on a test machine that is rare enough.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes; returns whether it held. This
/// is how tests wait for an observable event (a process gone, a status field, a log line)
/// instead of sleeping for a guessed time.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || cond().then_some(())).is_some()
}

/// Poll `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a live (non-zombie) process.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 (after the parenthesised comm) is the state; Z = zombie, X = dead.
        Ok(s) => match s.rsplit_once(')') {
            Some((_, rest)) => !matches!(rest.trim_start().chars().next(), Some('Z' | 'X')),
            None => false,
        },
        Err(_) => false,
    }
}

/// Send `sig` to `pid`, panicking if that fails (the tests only signal processes they know).
pub fn signal(pid: i32, sig: i32) {
    assert!(
        try_signal(pid, sig),
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Send `sig` to `pid`; false if it failed (e.g. the process is already gone).
pub fn try_signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Whether `pid` runs the binary under test (so a stale pid file never makes a test signal
/// a stranger that reused the pid).
pub fn is_kefu(pid: i32) -> bool {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
    let ours = std::fs::canonicalize(KEFU);
    matches!((exe, ours), (Ok(a), Ok(b)) if a == b)
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct Out {
    /// Exit code (-1 if killed by a signal or the deadline).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Exit code 0.
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// Run the binary in `dir` with `args`, killing it after `timeout`.
pub fn run_in(dir: &Path, args: &[String], timeout: Duration) -> Out {
    run_bin(Path::new(KEFU), dir, args, timeout)
}

/// [`run_in`] with another copy of the binary (a test standing in for an upgrade installs a
/// different program at that path before a reload).
pub fn run_bin(bin: &Path, dir: &Path, args: &[String], timeout: Duration) -> Out {
    let mut tries = 0;
    let mut child = loop {
        match Command::new(bin)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            // A binary the test has just written: another test thread's fork may still hold
            // the write fd for the instant before its exec closes it (ETXTBSY). That passes.
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 200 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            r => break r.expect("spawn kefu"),
        }
    };
    // Read both pipes on threads so a chatty child cannot block on a full pipe.
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let to = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let te = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + timeout;
    let code = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code().unwrap_or(-1),
            // Polling the child: the exit is the event, there is no fd to wait on.
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break -1;
            }
        }
    };
    Out {
        code,
        stdout: to.join().unwrap_or_default(),
        stderr: te.join().unwrap_or_default(),
    }
}

/// Which of `pids` holds the server side of the client socket `sock` (from /proc/net/tcp and
/// the processes' fd tables).
pub fn socket_owner(sock: &std::net::TcpStream, server_port: u16, pids: &[i32]) -> Option<i32> {
    port_owner(sock.local_addr().unwrap().port(), server_port, pids)
}

/// Which of `pids` holds the server side of the loopback connection from `client_port` to
/// `server_port`.
pub fn port_owner(client_port: u16, server_port: u16, pids: &[i32]) -> Option<i32> {
    let port = |s: &str| u16::from_str_radix(s.rsplit(':').next()?, 16).ok();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let inode = tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 9 && port(f[1]) == Some(server_port) && port(f[2]) == Some(client_port))
            .then(|| f[9].to_string())
    })?;
    let target = format!("socket:[{inode}]");
    pids.iter().copied().find(|p| {
        std::fs::read_dir(format!("/proc/{p}/fd")).is_ok_and(|d| {
            d.flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == target))
        })
    })
}
