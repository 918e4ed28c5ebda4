//! A private PostgreSQL server for the tests: `initdb` into a temporary directory and
//! `postgres` on a free 127.0.0.1 port, started, stopped and restarted by the test itself
//! (no system service). PostgreSQL refuses to run as root, so as root the server runs as the
//! `postgres` user Debian's package creates (or `nobody`).

use super::{free_port, wait_until, SEC};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The newest `/usr/lib/postgresql/N/bin` (Debian's layout), if any.
pub fn pg_bin() -> Option<PathBuf> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let n: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((n, bin))
        })
        .collect();
    v.sort();
    v.pop().map(|(_, b)| b)
}

/// Whether the tests can run here; CI installs postgresql (see `.ci/run`), so there a
/// missing server fails the test instead of skipping it.
pub fn pg_available() -> bool {
    if pg_bin().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "/usr/lib/postgresql/*/bin/postgres is missing: .ci/run installs postgresql"
    );
    eprintln!("\n*** SKIPPED: PostgreSQL is not installed (apt-get install postgresql) ***\n");
    false
}

/// The uid/gid to run the server as: ourselves, unless we are root.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in ["postgres", "nobody"] {
        let id = |flag: &str| -> Option<u32> {
            let o = Command::new("id").args([flag, name]).output().ok()?;
            String::from_utf8(o.stdout).ok()?.trim().parse().ok()
        };
        if let (Some(u), Some(g)) = (id("-u"), id("-g")) {
            return Some((u, g));
        }
    }
    panic!("running as root and neither a postgres nor a nobody user exists");
}

/// One PostgreSQL server of the test's own.
pub struct Pg {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

impl Pg {
    /// initdb, start on a free port, and wait until it accepts connections.
    pub fn start() -> Pg {
        let bin = pg_bin().expect("postgresql installed");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("kefu-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        let user = server_user();
        if let Some((u, g)) = user {
            chown_r(&dir, u, g);
        }
        let mut pg = Pg {
            port,
            dir,
            bin,
            user,
            child: None,
        };
        let out = pg
            .cmd("initdb")
            .args(["-D", pg.data().to_str().unwrap()])
            .args(["-U", "kefu", "-A", "trust", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Another test may bind the free port before postgres does; then it exits at once
        // and a second port is tried.
        let mut tries = 0;
        loop {
            pg.launch();
            let settled = wait_until(30 * SEC, || pg.ready() || pg.exited());
            if settled && !pg.exited() {
                return pg;
            }
            tries += 1;
            assert!(
                settled && tries < 3,
                "postgres did not start on port {}: {}",
                pg.port,
                pg.log()
            );
            pg.port = free_port();
        }
    }

    /// Whether the server process has ended (then it is forgotten).
    fn exited(&mut self) -> bool {
        let gone = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
        if gone {
            self.child = None;
        }
        gone || self.child.is_none()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(self.bin.join(prog));
        if let Some((u, g)) = self.user {
            c.uid(u).gid(g);
        }
        c.current_dir(&self.dir);
        c
    }

    fn spawn(&mut self) {
        self.launch();
        assert!(
            wait_until(30 * SEC, || self.ready()),
            "postgres did not start on port {}: {}",
            self.port,
            self.log()
        );
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        if let Some((u, g)) = self.user {
            let _ = std::os::unix::fs::chown(self.dir.join("server.log"), Some(u), Some(g));
        }
        let child = self
            .cmd("postgres")
            .args(["-D", self.data().to_str().unwrap()])
            .args(["-p", &self.port.to_string()])
            .args(["-k", self.dir.join("sock").to_str().unwrap()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn postgres");
        self.child = Some(child);
    }

    /// Whether it accepts connections now (`pg_isready`).
    pub fn ready(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && self
                .cmd("pg_isready")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "kefu",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// Stop it at once (SIGQUIT: immediate shutdown, every connection cut) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            super::signal(c.id() as i32, libc::SIGQUIT);
            let _ = c.wait();
        }
    }

    /// Start it again on the same port and data (after [`Pg::stop`]).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// `postgres://kefu@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://kefu@127.0.0.1:{}/postgres", self.port)
    }

    /// Run SQL with `psql` and return its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let out = self
            .cmd("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "kefu",
            ])
            .args([
                "-d",
                "postgres",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

fn chown_r(p: &Path, u: u32, g: u32) {
    std::os::unix::fs::chown(p, Some(u), Some(g)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_r(&e.unwrap().path(), u, g);
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Fast shutdown: nothing to keep, but let it remove its socket and pid files.
            super::signal(c.id() as i32, libc::SIGINT);
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
