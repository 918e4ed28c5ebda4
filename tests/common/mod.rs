//! What every integration test shares: one launcher ([`Instance`]: the real `kefu` binary in a
//! private directory, with its own config and ports, stopped on drop) and one set of helpers
//! (free ports, waiting for a condition, processes and signals, an HTTP client in [`http`], a
//! WebSocket client in [`ws`], the kefu app's protocol in [`kefu_app`]).
//!
//! Each test binary compiles this module and uses only part of it, hence `allow(dead_code)`.

#![allow(dead_code)]

pub mod cluster;
pub mod gw_php;
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

/// A port nobody listens on right now, with the three above it free too (a server with N
/// workers may bind `port + i`, as GatewayWorker's inner ports do).
///
/// Ports come from below the kernel's ephemeral range: a port the kernel hands out with
/// `bind(:0)` or to an outgoing connection may be taken again by another test's client
/// between our check and the server's bind, and CI once failed so. Here each process walks
/// its own sequence from a start picked by pid and clock, so two calls never return
/// overlapping blocks, and only a server binding a fixed port could still collide.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    const BLOCK: u32 = 4;
    let (lo, hi) = port_pool();
    let span = (hi - lo) / BLOCK;
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
        let _ = NEXT.compare_exchange(u32::MAX, seed % span, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..span {
        let k = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let base = lo + k * BLOCK;
        let held: Vec<_> = (base..base + BLOCK)
            .map_while(|p| TcpListener::bind(("127.0.0.1", p as u16)).ok())
            .collect();
        if held.len() == BLOCK as usize {
            return base as u16;
        }
    }
    panic!("no free block of {BLOCK} ports in {lo}..{hi}")
}

/// The range `free_port` draws from: up to 12 000 ports below the ephemeral range, or above
/// it, whichever side has more room (a fixed middle range if neither has 2 000).
fn port_pool() -> (u32, u32) {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = range
        .split_whitespace()
        .filter_map(|w| w.parse::<u32>().ok());
    let (low, high) = (it.next().unwrap_or(32768), it.next().unwrap_or(60999));
    let below = low.saturating_sub(1024);
    let above = 65_535u32.saturating_sub(high);
    match below.max(above) {
        n if n < 2_000 => (20_000, 30_000),
        _ if below >= above => (low - below.min(12_000), low),
        _ => (high + 1, high + 1 + above.min(12_000)),
    }
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
