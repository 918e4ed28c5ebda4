//! Room broadcasts and private messages within one node and across nodes (ignored by default:
//! a measurement, not a check; figures go to BENCHMARKS.md):
//!
//!     cargo test --release --test cluster_bench -- --ignored --nocapture --test-threads 1
//!
//! Three chat nodes with one worker each on one Redis. Room: one sender on node 1 says
//! `ROOM_RATE` messages/s in a room of `RECEIVERS` clients, all on node 1 (in-node) or split
//! over nodes 2 and 3 (cross-node: one batch per say and destination node through Redis).
//! Private: `PAIRS` senders on node 1 each say to their own receiver, on node 1 or on nodes 2
//! and 3, `PRIVATE_RATE` messages/s in all (the sender's own copy, which the chat app sends
//! back, is not counted as a delivery). In-node and cross-node runs alternate. Reported:
//! deliveries, deliveries per server CPU-second (every node's master and worker), Redis's
//! CPU, and p50/p99 latency from send to receipt. `KEFU_BENCH_SECS` (5), `KEFU_BENCH_ROUNDS`
//! (2), `KEFU_BENCH_ROOM_RATE` (400), `KEFU_BENCH_PRIVATE_RATE` (5000) change the defaults;
//! `KEFU_BENCH_ONLY` runs only the cases whose label contains it; `KEFU_BENCH_WINDOW_US` sets
//! the nodes' `[cluster] publish_window_us`.

mod common;

use common::cluster::{redis_available, Node, Redis};
use common::ws::Ws;
use common::{wait_until, SEC};
use serde_json::json;
use std::io::Read;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RECEIVERS: usize = 50;
const PAIRS: usize = 20;

fn env(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// utime + stime of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3, utime 14 and stime 15 (indexes 11 and 12 here).
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// A chat client in `room`, and its client id.
fn login(node: &Node, name: &str, room: &str) -> (Ws, String) {
    let mut ws = Ws::connect(&node.ws_addr(), "/");
    ws.send_text(&json!({"type":"login","client_name":name,"room_id":room}).to_string());
    let me = ws.recv_json_type("login");
    let id = me["client_id"].as_str().unwrap().to_string();
    (ws, id)
}

/// The send time carried by a message (`@@<µs>` in its content), if it has one.
fn stamp(t: &str) -> Option<u64> {
    let i = t.find("@@")?;
    let digits: String = t[i + 2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Read `ws` until `n` stamped messages came (or it stays silent for its read timeout);
/// returns their latencies in µs.
fn receive(mut ws: Ws, n: u64) -> JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut lat = Vec::with_capacity(n as usize);
        while (lat.len() as u64) < n {
            let Some(t) = ws.recv_text() else { break };
            if let Some(sent) = stamp(&t) {
                lat.push(now_us().saturating_sub(sent));
            }
        }
        lat
    })
}

/// Read and drop everything `ws` gets until 3 s of silence, so its socket never backs up.
fn drain(ws: &Ws) -> JoinHandle<()> {
    let mut s = ws.sock.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut b = vec![0u8; 1 << 16];
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
    })
}

/// Call `send(k)` for k in 0..total, `rate` per second; returns the wall time.
fn pace(total: u64, rate: u64, mut send: impl FnMut(u64)) -> Instant {
    let t0 = Instant::now();
    for k in 0..total {
        let due = t0 + Duration::from_micros(k * 1_000_000 / rate);
        let now = Instant::now();
        if due > now {
            // The load generator's pacing, not a synchronisation.
            std::thread::sleep(due - now);
        }
        send(k);
    }
    t0
}

struct Cluster {
    _redis: Redis,
    redis_pid: i32,
    nodes: Vec<Node>,
    servers: Vec<i32>,
}

impl Cluster {
    fn cpu(&self) -> (u64, u64) {
        (
            self.servers.iter().map(|&p| cpu_ticks(p)).sum(),
            cpu_ticks(self.redis_pid),
        )
    }

    /// Wait until node `at` counts `n` clients in `room` (presence and rooms cross nodes).
    fn sees(&self, at: usize, room: &str, n: usize) {
        let mut api = self.nodes[at].api();
        assert!(
            wait_until(15 * SEC, || api
                .ok("get_client_id_count_by_group", json!({"group": room}))
                == json!(n)),
            "node {} never counted {n} clients in {room}",
            self.nodes[at].id
        );
    }
}

/// Print one run's line.
fn report(label: &str, mut lat: Vec<u64>, want: u64, t0: Instant, c: &Cluster, before: (u64, u64)) {
    let wall = t0.elapsed().as_secs_f64();
    let (cpu1, r1) = c.cpu();
    let cpu = (cpu1 - before.0) as f64 / 100.0;
    let rcpu = (r1 - before.1) as f64 / 100.0;
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "{label}: {} of {want} deliveries in {wall:.2}s ({:.0}/s), server CPU {cpu:.2}s -> {:.0} deliveries per CPU-second, redis CPU {rcpu:.2}s, p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        lat.len() as f64 / wall,
        lat.len() as f64 / cpu.max(0.01),
        pct(0.50),
        pct(0.99),
    );
}

/// Room broadcast from node 1 to receivers on `on` (node indexes, round robin).
fn room(label: &str, c: &Cluster, on: &[usize], rate: u64, secs: u64) {
    let tag = label.replace([' ', '#'], "");
    let mut receivers: Vec<Ws> = (0..RECEIVERS)
        .map(|i| login(&c.nodes[on[i % on.len()]], &format!("r{i}"), &tag).0)
        .collect();
    c.sees(0, &tag, RECEIVERS);
    let (sender, _) = login(&c.nodes[0], "sender", &tag);
    // Every receiver has the room on the sender's node before the clock starts: the
    // sender's own login broadcast comes back to each of them.
    for r in receivers.iter_mut() {
        loop {
            let v: serde_json::Value = serde_json::from_str(&r.recv_text().unwrap()).unwrap();
            if v["type"] == "login" && v["client_name"] == "sender" {
                break;
            }
        }
    }
    let drainer = drain(&sender);
    let total = rate * secs;
    let handles: Vec<_> = receivers.into_iter().map(|r| receive(r, total)).collect();
    let before = c.cpu();
    let mut sender = sender;
    let t0 = pace(total, rate, |_| {
        sender.send_text(
            &json!({"type":"say","to_client_id":"all","content":format!("@@{}", now_us())})
                .to_string(),
        );
    });
    let lat: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    report(label, lat, total * RECEIVERS as u64, t0, c, before);
    drop(sender);
    let _ = drainer.join();
}

/// Private messages: `PAIRS` senders on node 1, each to its receiver on `on` (round robin).
fn private(label: &str, c: &Cluster, on: &[usize], rate: u64, secs: u64) {
    let room = label.replace([' ', '#'], "");
    let (receivers, ids): (Vec<Ws>, Vec<String>) = (0..PAIRS)
        .map(|i| login(&c.nodes[on[i % on.len()]], &format!("r{i}"), &room))
        .unzip();
    c.sees(0, &room, PAIRS);
    let mut senders: Vec<Ws> = (0..PAIRS)
        .map(|i| login(&c.nodes[0], &format!("s{i}"), &room).0)
        .collect();
    // Receivers hear the senders' logins in the room: read past them before the clock.
    let mut receivers = receivers;
    for r in receivers.iter_mut() {
        let mut seen = 0;
        while seen < PAIRS {
            let v: serde_json::Value = serde_json::from_str(&r.recv_text().unwrap()).unwrap();
            if v["type"] == "login" && v["client_name"].as_str().unwrap_or("").starts_with('s') {
                seen += 1;
            }
        }
    }
    let drainers: Vec<_> = senders.iter().map(drain).collect();
    let total = rate * secs;
    let each = total / PAIRS as u64;
    let handles: Vec<_> = receivers.into_iter().map(|r| receive(r, each)).collect();
    let before = c.cpu();
    let t0 = pace(each * PAIRS as u64, rate, |k| {
        let i = (k % PAIRS as u64) as usize;
        senders[i].send_text(
            &json!({"type":"say","to_client_id":ids[i],"content":format!("@@{}", now_us())})
                .to_string(),
        );
    });
    let lat: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    report(label, lat, each * PAIRS as u64, t0, c, before);
    drop(senders);
    for d in drainers {
        let _ = d.join();
    }
}

#[test]
#[ignore]
fn room_broadcast_and_private_messages_in_node_and_cross_node() {
    if !redis_available() {
        return;
    }
    let secs = env("KEFU_BENCH_SECS", 5);
    let rounds = env("KEFU_BENCH_ROUNDS", 2);
    let room_rate = env("KEFU_BENCH_ROOM_RATE", 400);
    let private_rate = env("KEFU_BENCH_PRIVATE_RATE", 5000);
    let redis = Redis::start();
    let redis_pid = redis.pid();
    let nodes: Vec<Node> = (1..=3)
        .map(|id| Node::start("chat", id, 1, &redis, 3000, ""))
        .collect();
    let servers = nodes.iter().flat_map(Node::pids).collect();
    let c = Cluster {
        _redis: redis,
        redis_pid,
        nodes,
        servers,
    };
    // `KEFU_BENCH_ONLY=private` (say) runs only the cases whose label contains it.
    let only = std::env::var("KEFU_BENCH_ONLY").unwrap_or_default();
    let want = |label: &str| label.contains(only.as_str());
    let places: [(&str, &[usize]); 2] = [("in-node", &[0]), ("cross-node", &[1, 2])];
    for round in 0..rounds {
        for (kind, on) in places {
            let label = format!("room {kind} #{round}");
            if want(&label) {
                room(&label, &c, on, room_rate, secs);
            }
        }
        for (kind, on) in places {
            let label = format!("private {kind} #{round}");
            if want(&label) {
                private(&label, &c, on, private_rate, secs);
            }
        }
    }
}
