//! The launcher: one kefu instance under test, i.e. the real binary with a private directory
//! (pid file, log, config, data), its own free ports and worker count. It starts either in the
//! foreground ([`Instance::start`], the usual case: stdout and stderr land in files of the
//! private directory) or as a daemon through the CLI ([`Instance::start_detached`], for tests of
//! `start -d` itself), talks to the master through the CLI ([`Instance::run`]), and on drop
//! stops whatever it started and removes the directory.

use super::{alive, is_kefu, run_in, signal, try_signal, wait_until, Out, KEFU, SEC};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// One kefu instance: a directory, listeners, options, and the foreground master if any.
pub struct Instance {
    /// Working directory of every command. Kept short: the control socket path derived from
    /// the pid file must fit `sun_path`.
    pub dir: PathBuf,
    /// App passed with `--app`.
    pub app: String,
    /// Worker count.
    pub workers: usize,
    /// `(scheme, port)` of every listener, in the order given.
    pub listeners: Vec<(String, u16)>,
    /// Extra options for `start` (config file, data dir, ...).
    pub extra: Vec<String>,
    /// `ulimit -n` for the master and its workers, if set.
    nofile: Option<u32>,
    /// Environment variables for the foreground master (and so its workers).
    env: Vec<(String, String)>,
    /// A command the foreground master is started through (it execs kefu in the end, so
    /// the child is still the master): e.g. `ip netns exec NS`.
    wrap: Vec<String>,
    /// The foreground master, once started.
    child: Option<Child>,
}

impl Instance {
    /// A fresh private directory and one free loopback port per scheme (`text`, `websocket`,
    /// `http`); nothing runs yet.
    pub fn new(app: &str, workers: usize, schemes: &[&str]) -> Instance {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("kefu-t{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        Instance {
            dir,
            app: app.into(),
            workers,
            listeners: schemes
                .iter()
                .map(|s| (s.to_string(), super::free_port()))
                .collect(),
            extra: Vec::new(),
            nofile: None,
            env: Vec::new(),
            wrap: Vec::new(),
            child: None,
        }
    }

    /// The CLI tests' usual subject: the echo app on a text and a WebSocket listener.
    pub fn echo(workers: usize) -> Instance {
        Instance::new("echo", workers, &["text", "websocket"])
    }

    /// Write `toml` to `kefu.toml` in the private directory and start with `-c` on it.
    pub fn config(mut self, toml: &str) -> Instance {
        let p = self.dir.join("kefu.toml");
        std::fs::write(&p, toml).expect("write config");
        self.extra
            .extend(["-c".into(), p.to_str().expect("utf-8 path").into()]);
        self
    }

    /// Extra options for `start`.
    pub fn args(mut self, args: &[&str]) -> Instance {
        self.extra.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Give the app a data directory (`--data-dir`, inside the private directory).
    pub fn with_data_dir(self) -> Instance {
        let d = self.data_dir();
        self.args(&["--data-dir", d.to_str().expect("utf-8 path")])
    }

    /// Start the foreground master under `ulimit -n n` (the workers inherit it).
    pub fn nofile_limit(mut self, n: u32) -> Instance {
        self.nofile = Some(n);
        self
    }

    /// Set an environment variable for the foreground master and its workers.
    pub fn env(mut self, key: &str, value: &str) -> Instance {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Start the foreground master through `prefix` (a command that execs its arguments,
    /// such as `ip netns exec NS`).
    pub fn wrap(mut self, prefix: &[&str]) -> Instance {
        self.wrap = prefix.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The data directory [`Instance::with_data_dir`] passes.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Port of the first listener of `scheme`.
    pub fn port(&self, scheme: &str) -> u16 {
        self.listeners
            .iter()
            .find(|(s, _)| s == scheme)
            .unwrap_or_else(|| panic!("no {scheme} listener"))
            .1
    }

    /// `127.0.0.1:PORT` of the first listener of `scheme`.
    pub fn addr(&self, scheme: &str) -> String {
        format!("127.0.0.1:{}", self.port(scheme))
    }

    /// Options of `start` for this instance: app, listeners, workers, log file, extras.
    pub fn start_args(&self) -> Vec<String> {
        let mut a = vec!["--app".into(), self.app.clone()];
        for (s, p) in &self.listeners {
            a.extend(["--listen".into(), format!("{s}://127.0.0.1:{p}")]);
        }
        a.extend([
            "--workers".into(),
            self.workers.to_string(),
            "--log-file".into(),
            "k.log".into(),
        ]);
        a.extend(self.extra.iter().cloned());
        a
    }

    /// `kefu start -d` with this instance's options; the CLI returns once every worker is
    /// ready (or the start failed), so the output is the event to check.
    pub fn start_detached(&self) -> Out {
        let mut a = vec!["start".to_string(), "-d".to_string()];
        a.extend(self.start_args());
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        self.run(&refs, 30 * SEC)
    }

    /// `kefu start` in the foreground; returns once the master printed its banner (printed
    /// when every worker is ready; a bound port alone only says that one worker is) and
    /// every port accepts. Panics with the server's stderr if that does not happen.
    pub fn start(mut self) -> Instance {
        let mut cmd = match (self.nofile, self.wrap.split_first()) {
            (Some(n), _) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), KEFU]);
                c
            }
            (None, Some((first, rest))) => {
                let mut c = Command::new(first);
                c.args(rest).arg(KEFU);
                c
            }
            (None, None) => Command::new(KEFU),
        };
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.arg("start")
            .args(self.start_args())
            .args(["--pid-file", "k.pid"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(self.file("stdout.log"))
            .stderr(self.file("stderr.log"));
        self.child = Some(cmd.spawn().expect("spawn kefu"));
        let t0 = Instant::now();
        while !self.stdout().contains("Start success") {
            if let Some(st) = self.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                panic!("kefu exited with {st} before ready: {}", self.stderr());
            }
            assert!(
                t0.elapsed() < 30 * SEC,
                "kefu did not report ready: {}",
                self.stderr()
            );
            // Polling a file for the banner: no event to block on.
            std::thread::sleep(Duration::from_millis(20));
        }
        for (scheme, p) in &self.listeners {
            let up = wait_until(20 * SEC, || TcpStream::connect(("127.0.0.1", *p)).is_ok());
            assert!(up, "kefu did not listen on {scheme}:{p}: {}", self.stderr());
        }
        self
    }

    fn file(&self, name: &str) -> Stdio {
        Stdio::from(std::fs::File::create(self.dir.join(name)).expect("create log"))
    }

    /// Run `kefu <args> --pid-file k.pid` in the private directory with a deadline.
    pub fn run(&self, args: &[&str], timeout: Duration) -> Out {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--pid-file".into(), "k.pid".into()]);
        run_in(&self.dir, &all, timeout)
    }

    /// The pid file.
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

    /// `kefu status --json`, parsed (None if the master does not answer).
    pub fn status(&self) -> Option<serde_json::Value> {
        let o = self.run(&["status", "--json"], 10 * SEC);
        if !o.ok() {
            return None;
        }
        serde_json::from_str(o.stdout.trim()).ok()
    }

    /// `(worker_id, pid, incarnation as 16 hex digits)` of every worker in `status --json`
    /// (the incarnation is how a client id names its worker).
    pub fn workers(&self) -> Vec<(u64, i32, String)> {
        let v = self.status().expect("status --json");
        v["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["worker_id"].as_u64().unwrap(),
                    w["pid"].as_i64().unwrap() as i32,
                    format!("{:016x}", w["inc"].as_u64().unwrap()),
                )
            })
            .collect()
    }

    /// Worker pids, as the master lists them in `status --json`.
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

    /// Wait until the master lists `n` workers, none of them in `gone`, each of which answered
    /// the status query itself (state `idle`: its loop runs; a worker still starting is shown
    /// `busy`). Returns their pids. This is the event "the respawn or reload is over".
    pub fn wait_workers_ready(&self, n: usize, gone: &[i32], timeout: Duration) -> Vec<i32> {
        let mut last = None;
        let ready = super::wait_for(timeout, || {
            let s = self.status()?;
            let w = s["workers"].as_array()?;
            let pids: Vec<i32> = w
                .iter()
                .filter(|w| w["state"] == "idle")
                .filter_map(|w| w["pid"].as_i64().map(|p| p as i32))
                .filter(|p| !gone.contains(p))
                .collect();
            let ok = w.len() == n && pids.len() == n;
            last = Some(s);
            ok.then_some(pids)
        });
        ready.unwrap_or_else(|| panic!("workers never ready: {last:?}\n{}", self.log()))
    }

    /// Send `sig` to the foreground master.
    pub fn signal_master(&self, sig: i32) {
        let c = self.child.as_ref().expect("not started in the foreground");
        signal(c.id() as i32, sig);
    }

    /// Wait up to `timeout` for the foreground master to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let c = self.child.as_mut().expect("not started in the foreground");
        let mut st = None;
        wait_until(timeout, || {
            st = c.try_wait().ok().flatten();
            st.is_some()
        });
        st
    }

    /// The log file (`--log-file`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("k.log")).unwrap_or_default()
    }

    /// What the foreground master printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    /// What the foreground master printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // A foreground master: SIGTERM (fast stop), then make sure it is gone.
        if let Some(mut c) = self.child.take() {
            if c.try_wait().ok().flatten().is_none() {
                try_signal(c.id() as i32, libc::SIGTERM);
                let done = wait_until(5 * SEC, || c.try_wait().ok().flatten().is_some());
                if !done {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        // A daemon (or a master the test started by hand): leave none behind; the workers
        // follow it through PDEATHSIG.
        if let Some(pid) = self.master_pid() {
            if alive(pid) && is_kefu(pid) {
                try_signal(pid, libc::SIGKILL);
            }
        }
        if std::thread::panicking() {
            // The directory goes below: a failing test shows what the server said first. A
            // foreground kefu logs to stderr; a daemon to its log file.
            for (name, text) in [("stderr", self.stderr()), ("log file", self.log())] {
                if !text.is_empty() {
                    eprintln!(
                        "--- kefu {name} ({}), last lines ---\n{}",
                        self.dir.display(),
                        tail_lines(&text, 80)
                    );
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last `n` lines of `text`.
fn tail_lines(text: &str, n: usize) -> &str {
    let cut = text.rmatch_indices('\n').nth(n).map_or(0, |(i, _)| i + 1);
    &text[cut..]
}
