//! Throughput of stored-and-acknowledged messages (ignored by default; run with
//! `cargo test --release --test kefu_bench -- --ignored --nocapture`).
//!
//! KEFU_BENCH_SYNC=full|normal (default full), KEFU_BENCH_CONNS (16), KEFU_BENCH_WINDOW
//! (32 unacked messages per connection), KEFU_BENCH_SECS (5), KEFU_BENCH_WORKERS (2),
//! KEFU_BENCH_BUSINESSES (1: the connections are spread over this many businesses).
//! With `KEFU_TEST_STORE=postgres` the store is a PostgreSQL server of the run's own
//! (`tests/common/pg.rs`: fsync and synchronous_commit on, as SQLite's `full`).

mod common;

use common::kefu_app::*;
use common::ws::Ws;
use serde_json::json;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_string())
}

#[test]
#[ignore]
fn stored_and_acked_messages_per_second() {
    let sync = env("KEFU_BENCH_SYNC", "full");
    let conns: usize = env("KEFU_BENCH_CONNS", "16").parse().unwrap();
    let window: usize = env("KEFU_BENCH_WINDOW", "32").parse().unwrap();
    let secs: u64 = env("KEFU_BENCH_SECS", "5").parse().unwrap();
    let workers: usize = env("KEFU_BENCH_WORKERS", "2").parse().unwrap();
    let businesses: usize = env("KEFU_BENCH_BUSINESSES", "1").parse().unwrap();
    let bids: Vec<String> = (0..businesses).map(|i| format!("shop{i}")).collect();
    let agents: Vec<(&str, &str, &str, Option<u32>)> = bids
        .iter()
        .map(|b| (b.as_str(), "alice", "Alice", None))
        .collect();
    let k = Kefu::start(
        workers,
        // Every connection comes from 127.0.0.1: the per-address limits are off.
        &format!(
            "synchronous = \"{sync}\"\nrate_per_sec = 1e9\nrate_burst = 1e9\n\
             visitor_msg_per_ip = {{ per_min = 0, burst = 0 }}\n\
             visitor_new_per_ip = {{ per_min = 0, burst = 0 }}\n\
             conv_new_per_ip = {{ per_min = 0, burst = 0 }}"
        ),
        &agents,
    );
    let store = if k.pg.is_some() {
        "postgresql"
    } else {
        "sqlite"
    };
    // The window opens when every connection is logged in; the first through the barrier
    // sets the common start.
    let ready = Arc::new(Barrier::new(conns));
    let t0 = Arc::new(OnceLock::new());
    let threads: Vec<_> = (0..conns)
        .map(|i| {
            let addr = k.addr();
            let (ready, t0) = (ready.clone(), t0.clone());
            let bid = bids[i % businesses].clone();
            std::thread::spawn(move || {
                let mut ws = Ws::connect(&addr, "/ws");
                // A shared disk can stall fsync for seconds: wait for acks longer than tests do.
                ws.sock
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                ws.send_text(&json!({"method":"visitor_login","bid":bid}).to_string());
                recv_method(&mut ws, "visitor_login");
                ready.wait();
                let start = *t0.get_or_init(Instant::now);
                let end = start + Duration::from_secs(secs);
                let mut next = 0u64;
                let mut inflight = 0usize;
                let mut acked = 0u64;
                let mut lat = Vec::new();
                let mut sent_at = std::collections::HashMap::new();
                loop {
                    let now = Instant::now();
                    while inflight < window && now < end {
                        ws.send_text(
                            &json!({"method":"send","client_msg_id":format!("c{next}"),"kind":"text","text":"benchmark message with some text"})
                                .to_string(),
                        );
                        sent_at.insert(format!("c{next}"), Instant::now());
                        next += 1;
                        inflight += 1;
                    }
                    if inflight == 0 {
                        break;
                    }
                    let v = recv_json(&mut ws).expect("ack");
                    if v["method"] == "ack" {
                        inflight -= 1;
                        if let Some(t) = sent_at.remove(v["client_msg_id"].as_str().unwrap()) {
                            if t >= start && Instant::now() <= end {
                                acked += 1;
                                lat.push(t.elapsed());
                            }
                        }
                    } else {
                        assert!(v.get("code").is_none(), "{v}");
                    }
                }
                (acked, lat)
            })
        })
        .collect();
    let mut total = 0;
    let mut lat = Vec::new();
    for t in threads {
        let (a, l) = t.join().unwrap();
        total += a;
        lat.extend(l);
    }
    lat.sort();
    let p = |q: f64| {
        lat.get(((lat.len() as f64) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "kefu bench: store={store} synchronous={sync} workers={workers} businesses={businesses} conns={conns} window={window}: {total} messages stored+acked in {secs} s = {:.0} msg/s; ack latency p50 {:?} p99 {:?}",
        total as f64 / secs as f64,
        p(0.5),
        p(0.99)
    );
}
