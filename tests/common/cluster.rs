//! Cluster tests' helpers: a private `redis-server` on a free port (started, restarted and
//! stopped by the test itself, so no system service is needed) and kefu nodes on their own
//! 127.0.0.x addresses sharing it.

use super::http::{api_config, Http};
use super::ws::Ws;
use super::{free_port, try_signal, wait_until, Instance, SEC};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Where Debian puts the server.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Whether the tests can run here; CI installs redis-server (see `.ci/run`), so there a
/// missing server fails the test instead of skipping it.
pub fn redis_available() -> bool {
    if std::path::Path::new(REDIS_SERVER).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{REDIS_SERVER} is missing: .ci/run installs it"
    );
    eprintln!(
        "\n*** SKIPPED: {REDIS_SERVER} is not installed (apt-get install redis-server) ***\n"
    );
    false
}

/// One redis-server of the test's own, without persistence.
pub struct Redis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    /// Start on a free port and wait until it answers PING.
    pub fn start() -> Redis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("kefu-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            port,
            dir,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new(REDIS_SERVER)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        assert!(
            wait_until(10 * SEC, || self.ping()),
            "redis-server did not answer on port {}",
            self.port
        );
    }

    /// Whether it answers PING now.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(SEC));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut b = [0u8; 7];
        s.read_exact(&mut b).is_ok() && &b == b"+PONG\r\n"
    }

    /// Kill it (SIGKILL: nothing flushed) and start a fresh, empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Kill it and wait for the exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its pid (0 if it is not running).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One node: a kefu instance on `host` (a 127.0.0.x address) with a WebSocket and an API
/// listener, in the cluster of `redis`.
pub struct Node {
    /// Node id.
    pub id: u8,
    /// Its address.
    pub host: String,
    /// WebSocket port.
    pub ws_port: u16,
    /// API port.
    pub api_port: u16,
    /// The instance.
    pub inst: Instance,
}

impl Node {
    /// Start node `id` of app `app` with `workers` workers on 127.0.0.`id+1`.
    pub fn start(
        app: &str,
        id: u8,
        workers: usize,
        redis: &Redis,
        lease_ms: u64,
        extra: &str,
    ) -> Node {
        let host = format!("127.0.0.{}", id + 1);
        let (ws_port, api_port) = (free_port(), free_port());
        let toml = format!(
            "{}{extra}\n[cluster]\nnode = {id}\nname = \"n{id}\"\nredis = \"{}\"\nlease_ms = {lease_ms}\n",
            api_config(),
            redis.url()
        );
        let inst = Instance::new(app, workers, &[])
            .config(&toml)
            .args(&[
                "--listen",
                &format!("websocket://{host}:{ws_port}"),
                "--listen",
                &format!("api://{host}:{api_port}"),
            ])
            .start();
        Node {
            id,
            host,
            ws_port,
            api_port,
            inst,
        }
    }

    /// `host:port` of the WebSocket listener.
    pub fn ws_addr(&self) -> String {
        format!("{}:{}", self.host, self.ws_port)
    }

    /// `host:port` of the API listener.
    pub fn api_addr(&self) -> String {
        format!("{}:{}", self.host, self.api_port)
    }

    /// A new API connection.
    pub fn api(&self) -> Http {
        Http::connect(&self.api_addr())
    }

    /// A new WebSocket client and its id (the bridge app's `init`).
    pub fn client(&self) -> (Ws, String) {
        let mut ws = Ws::connect(&self.ws_addr(), "/");
        let id = ws.recv_json_type("init")["client_id"]
            .as_str()
            .unwrap()
            .to_string();
        (ws, id)
    }

    /// The master and worker pids.
    pub fn pids(&self) -> Vec<i32> {
        let mut p = self.inst.worker_pids();
        p.extend(self.inst.master_pid());
        p
    }

    /// Signal every process of the node.
    pub fn signal_all(pids: &[i32], sig: i32) {
        for &p in pids {
            try_signal(p, sig);
        }
    }
}
