//! Cluster tests' helpers: a private `redis-server` on a free port (started, restarted and
//! stopped by the test itself, so no system service is needed) and kefu nodes on their own
//! 127.0.0.x addresses sharing it.

use super::http::{api_config, Http};
use super::ws::Ws;
use super::{free_port, try_signal, wait_until, Instance, SEC};
use serde_json::{json, Value};
use std::collections::BTreeSet;
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
    /// Addresses it listens on, space-separated.
    bind: String,
    child: Option<Child>,
}

impl Redis {
    /// Start on a free port and wait until it answers PING.
    pub fn start() -> Redis {
        Redis::start_bound(&[])
    }

    /// Start on a free port, listening on 127.0.0.1 and `also` (addresses of the test's own
    /// interfaces), and wait until it answers PING.
    pub fn start_bound(also: &[&str]) -> Redis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("kefu-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            port,
            dir,
            bind: std::iter::once("127.0.0.1")
                .chain(also.iter().copied())
                .collect::<Vec<_>>()
                .join(" "),
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.args(["--port", &self.port.to_string(), "--bind"]);
        cmd.args(self.bind.split(' '));
        cmd.args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
        // Protected mode refuses every client that is not on loopback; the other addresses
        // are the test's own private link (see `start_bound`).
        let protected = if self.bind == "127.0.0.1" {
            "yes"
        } else {
            "no"
        };
        cmd.args(["--protected-mode", protected]);
        let child = cmd
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
        self.url_on("127.0.0.1")
    }

    /// `redis://HOST:PORT/` for one of the addresses it listens on.
    pub fn url_on(&self, host: &str) -> String {
        format!("redis://{host}:{}/", self.port)
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
        Node::start_on(app, id, workers, &redis.url(), &host, lease_ms, extra, &[])
    }

    /// Start node `id` on `host`, reaching Redis at `redis_url`, its master started through
    /// `wrap` (e.g. `ip netns exec NS` for a node in a network namespace of the test's).
    #[allow(clippy::too_many_arguments)]
    pub fn start_on(
        app: &str,
        id: u8,
        workers: usize,
        redis_url: &str,
        host: &str,
        lease_ms: u64,
        extra: &str,
        wrap: &[&str],
    ) -> Node {
        let (ws_port, api_port) = (free_port(), free_port());
        let mut toml = format!(
            "{}{extra}\n[cluster]\nnode = {id}\nname = \"n{id}\"\nredis = \"{redis_url}\"\nlease_ms = {lease_ms}\n",
            api_config(),
        );
        // The cluster benchmark compares publish windows (docs/config.md) side by side.
        if let Ok(us) = std::env::var("KEFU_BENCH_WINDOW_US") {
            if let Ok(us) = us.parse::<u64>() {
                toml.push_str(&format!("publish_window_us = {us}\n"));
            }
        }
        let inst = Instance::new(app, workers, &[])
            .config(&toml)
            .wrap(wrap)
            .args(&[
                "--listen",
                &format!("websocket://{host}:{ws_port}"),
                "--listen",
                &format!("api://{host}:{api_port}"),
            ])
            .start();
        Node {
            id,
            host: host.to_string(),
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

/// Wait until every node in `nodes` lists exactly the client ids `want` through its API (list
/// and count, no duplicates), within 20 s; fails with each node's view and logs.
pub fn wait_lists<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    want: &BTreeSet<String>,
    what: &str,
) {
    let nodes: Vec<&Node> = nodes.into_iter().collect();
    for n in &nodes {
        let mut last = Value::Null;
        let ok = wait_until(20 * SEC, || {
            // A connection per look: a node that was cut off may have closed an older one.
            let mut api = n.api();
            let list = api.ok("get_all_client_id_list", json!({}));
            let count = api.ok("get_all_client_id_count", json!({}));
            let got: BTreeSet<String> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            let good = &got == want
                && list.as_array().unwrap().len() == want.len()
                && count == json!(want.len());
            last = json!({"list": list, "count": count});
            good
        });
        if !ok {
            let logs: String = nodes
                .iter()
                .map(|n| format!("--- node {}:\n{}{}", n.id, n.inst.log(), n.inst.stderr()))
                .collect();
            panic!("{what}: node {} sees {last}, want {want:?}\n{logs}", n.id);
        }
    }
}
