//! Helpers shared by the integration tests: a private instance directory (pid file, log), free
//! ports, running the real `kefu` binary with a deadline, and polling for a condition.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const KEFU: &str = env!("CARGO_BIN_EXE_kefu");

/// A port nobody listens on right now (bind :0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// One kefu instance under test: its own directory, pid file and ports.
pub struct Instance {
    /// Working directory for every command (short: the control socket path must fit sun_path).
    pub dir: PathBuf,
    /// Text protocol port.
    pub text_port: u16,
    /// WebSocket port.
    pub ws_port: u16,
    /// Worker count.
    pub workers: usize,
    /// App passed with `--app` (the tests' default is `echo`; the server's is `kefu`).
    pub app: &'static str,
}

impl Instance {
    /// A fresh directory and two free ports.
    pub fn new(workers: usize) -> Instance {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("kefu-t{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        Instance {
            dir,
            text_port: free_port(),
            ws_port: free_port(),
            workers,
            app: "echo",
        }
    }

    /// The pid file (relative to `dir`, as passed on the command line).
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("k.pid")
    }

    /// Master pid from the pid file.
    pub fn master_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Run `kefu <args> --pid-file k.pid` in `dir` with a deadline.
    pub fn run(&self, args: &[&str], timeout: Duration) -> Out {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--pid-file".into(), "k.pid".into()]);
        run_in(&self.dir, &all, timeout)
    }

    /// Start options for this instance (listeners, workers, log file).
    pub fn start_args(&self) -> Vec<String> {
        vec![
            "--app".into(),
            self.app.into(),
            "--listen".into(),
            format!("text://127.0.0.1:{}", self.text_port),
            "--listen".into(),
            format!("websocket://127.0.0.1:{}", self.ws_port),
            "--workers".into(),
            self.workers.to_string(),
            "--log-file".into(),
            "k.log".into(),
        ]
    }

    /// `kefu start -d` with this instance's options.
    pub fn start(&self) -> Out {
        let mut a = vec!["start".to_string(), "-d".to_string()];
        a.extend(self.start_args());
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        self.run(&refs, Duration::from_secs(30))
    }

    /// `kefu status --json`, parsed.
    pub fn status(&self) -> Option<serde_json::Value> {
        let o = self.run(&["status", "--json"], Duration::from_secs(10));
        if !o.ok() {
            return None;
        }
        serde_json::from_str(o.stdout.trim()).ok()
    }

    /// Worker pids from `status --json`.
    pub fn worker_pids(&self) -> Vec<i32> {
        self.status()
            .and_then(|s| {
                s["workers"].as_array().map(|w| {
                    w.iter()
                        .filter_map(|w| w["pid"].as_i64().map(|p| p as i32))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// The log file contents (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("k.log")).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Whatever the test did, leave no master behind (workers follow via PDEATHSIG).
        if let Some(pid) = self.master_pid() {
            let _ = kefu::sys::process::kill(pid, libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run the binary in `dir` with `args`, killing it after `timeout`.
pub fn run_in(dir: &Path, args: &[String], timeout: Duration) -> Out {
    let mut child = Command::new(KEFU)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kefu");
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

pub mod http;
pub mod server;
pub mod ws;

/// Which of `pids` holds the server side of the client socket `sock` (from /proc/net/tcp and
/// the processes' fd tables).
pub fn socket_owner(sock: &std::net::TcpStream, server_port: u16, pids: &[i32]) -> Option<i32> {
    let client_port = sock.local_addr().unwrap().port();
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
