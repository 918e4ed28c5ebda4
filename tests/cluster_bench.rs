//! Room broadcast within one node and across nodes (ignored by default: a measurement, not a
//! check; figures go to BENCHMARKS.md):
//!
//!     cargo test --release --test cluster_bench -- --ignored --nocapture
//!
//! Two chat nodes with one worker each on one Redis. One sender on node 1 says messages at a
//! fixed rate in a room of `RECEIVERS` clients, first on node 1 (in-node), then on node 2
//! (cross-node). Reported: deliveries, deliveries per server CPU-second (both nodes' masters
//! and workers), Redis's CPU, and the p50/p99 latency from send to receipt.

mod common;

use common::cluster::{redis_available, Node, Redis};
use common::ws::Ws;
use serde_json::json;
use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RECEIVERS: usize = 50;
const RATE: u64 = 400; // messages per second: RATE x RECEIVERS deliveries per second
const SECONDS: u64 = 5;

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

fn login(node: &Node, name: &str) -> Ws {
    let mut ws = Ws::connect(&node.ws_addr(), "/");
    ws.send_text(&json!({"type":"login","client_name":name,"room_id":"bench"}).to_string());
    ws.recv_json_type("login");
    ws
}

fn run(label: &str, sender_node: &Node, recv_node: &Node, servers: &[i32], redis_pid: i32) {
    let mut receivers: Vec<Ws> = (0..RECEIVERS)
        .map(|i| login(recv_node, &format!("r{i}")))
        .collect();
    let mut sender = login(sender_node, "sender");
    // Every receiver is in the room everywhere before the clock starts: the sender's own
    // login broadcast comes back to each of them.
    for r in receivers.iter_mut() {
        loop {
            let v: serde_json::Value = serde_json::from_str(&r.recv_text().unwrap()).unwrap();
            if v["type"] == "login" && v["client_name"] == "sender" {
                break;
            }
        }
    }
    // The sender hears its own messages: drain them so its socket never backs up.
    let mut drain = sender.sock.try_clone().unwrap();
    let drainer = std::thread::spawn(move || {
        let mut b = vec![0u8; 1 << 16];
        drain
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        while matches!(drain.read(&mut b), Ok(n) if n > 0) {}
    });
    let total = RATE * SECONDS;
    let handles: Vec<_> = receivers
        .into_iter()
        .map(|mut r| {
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(total as usize);
                while (lat.len() as u64) < total {
                    let Some(t) = r.recv_text() else { break };
                    if let Some(i) = t.find("\"content\":\"t") {
                        let rest = &t[i + 12..];
                        let end = rest.find('"').unwrap();
                        let sent: u64 = rest[..end].parse().unwrap();
                        lat.push(now_us().saturating_sub(sent));
                    }
                }
                lat
            })
        })
        .collect();
    let cpu0: u64 = servers.iter().map(|&p| cpu_ticks(p)).sum();
    let r0 = cpu_ticks(redis_pid);
    let t0 = Instant::now();
    for k in 0..total {
        let due = t0 + Duration::from_micros(k * 1_000_000 / RATE);
        let now = Instant::now();
        if due > now {
            // The load generator's pacing, not a synchronisation.
            std::thread::sleep(due - now);
        }
        sender.send_text(
            &json!({"type":"say","to_client_id":"all","content":format!("t{}", now_us())})
                .to_string(),
        );
    }
    let mut lat: Vec<u64> = Vec::new();
    for h in handles {
        lat.extend(h.join().unwrap());
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (servers.iter().map(|&p| cpu_ticks(p)).sum::<u64>() - cpu0) as f64 / 100.0;
    let rcpu = (cpu_ticks(redis_pid) - r0) as f64 / 100.0;
    drop(sender);
    let _ = drainer.join();
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)));
    println!(
        "{label}: {} of {} deliveries in {wall:.2}s ({:.0}/s), server CPU {cpu:.2}s -> {:.0} deliveries per CPU-second, redis CPU {rcpu:.2}s, p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        total * RECEIVERS as u64,
        lat.len() as f64 / wall,
        lat.len() as f64 / cpu.max(0.01),
        *pct(0.50).unwrap_or(&0) as f64 / 1000.0,
        *pct(0.99).unwrap_or(&0) as f64 / 1000.0,
    );
}

#[test]
#[ignore]
fn room_broadcast_in_node_and_cross_node() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let redis_pid = redis.pid();
    let a = Node::start("chat", 1, 1, &redis, 3000, "");
    let b = Node::start("chat", 2, 1, &redis, 3000, "");
    let mut servers = a.pids();
    servers.extend(b.pids());
    for round in 0..2 {
        run(&format!("in-node #{round}"), &a, &a, &servers, redis_pid);
        run(&format!("cross-node #{round}"), &a, &b, &servers, redis_pid);
    }
}
