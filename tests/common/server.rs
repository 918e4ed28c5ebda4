//! Start the real `kefu` binary in the foreground on free loopback ports, and stop it on drop.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running foreground `kefu start`.
pub struct Server {
    /// The master process.
    pub child: Child,
    /// Temporary directory holding pid, log and data.
    pub dir: PathBuf,
    /// Ports by listener, in the order given.
    pub ports: Vec<u16>,
}

impl Server {
    /// Start `kefu start --app APP --workers N` with one listener per scheme in `schemes`.
    pub fn start(app: &str, workers: usize, schemes: &[&str], extra: &[&str]) -> Server {
        let dir =
            std::env::temp_dir().join(format!("kefu-t-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let ports: Vec<u16> = schemes.iter().map(|_| free_port()).collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kefu"));
        cmd.current_dir(&dir)
            .arg("start")
            .args(["--app", app, "--workers", &workers.to_string()])
            .args(["--pid-file", dir.join("k.pid").to_str().unwrap()])
            .args(["--log-file", dir.join("k.log").to_str().unwrap()]);
        for (s, p) in schemes.iter().zip(&ports) {
            cmd.args(["--listen", &format!("{s}://127.0.0.1:{p}")]);
        }
        cmd.args(extra);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(dir.join("stdout.log")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("stderr.log")).unwrap(),
            ));
        let child = cmd.spawn().expect("spawn kefu");
        let s = Server { child, dir, ports };
        // The banner is printed once every worker is ready (app started); a bound port alone
        // only says that one worker is.
        let t0 = Instant::now();
        while !std::fs::read_to_string(s.dir.join("stdout.log"))
            .unwrap_or_default()
            .contains("Start success")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "kefu did not report ready: {}",
                s.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in &s.ports {
            s.wait_port(*p);
        }
        s
    }

    fn wait_port(&self, p: u16) {
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", p)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "kefu did not listen on {p}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Worker pids (children of the foreground master).
    pub fn worker_pids(&self) -> Vec<i32> {
        let pid = self.child.id();
        let s =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        s.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// `127.0.0.1:PORT` of listener `i`.
    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM = fast stop; then make sure nothing is left behind.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
