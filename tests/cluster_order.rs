//! Cross-node batching keeps each sender's order and loses nothing: a sender on node 1
//! writes private messages back to back to receivers on nodes 2 and 3 (so the relay holds
//! them in batches for `publish_window_us` and the publisher merges and pipelines them), and
//! each receiver gets all of its messages once, in the order sent. While Redis restarts in
//! the middle of such a burst, what arrives is still in order and never twice; once the
//! cluster has recovered, a new burst arrives whole again.

mod common;

use common::cluster::{redis_available, Node, Redis};
use common::ws::Ws;
use common::{wait_until, SEC};
use serde_json::{json, Value};
use std::io::Read;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LEASE_MS: u64 = 1500;

fn login(node: &Node, name: &str, room: &str) -> (Ws, String) {
    let mut ws = Ws::connect(&node.ws_addr(), "/");
    ws.send_text(&json!({"type":"login","client_name":name,"room_id":room}).to_string());
    let me = ws.recv_json_type("login");
    (ws, me["client_id"].as_str().unwrap().to_string())
}

/// Wait until node `at` counts `n` clients in `room`.
fn sees(node: &Node, room: &str, n: usize) {
    let mut api = node.api();
    assert!(
        wait_until(30 * SEC, || api
            .ok("get_client_id_count_by_group", json!({"group": room}))
            == json!(n)),
        "node {} never counted {n} clients in {room}",
        node.id
    );
}

/// The numbers of the messages tagged `tag` that `ws` receives, until it has `want` of them
/// or stays silent for its read timeout.
fn collect(mut ws: Ws, tag: String, want: usize) -> JoinHandle<(Ws, Vec<u64>)> {
    std::thread::spawn(move || {
        let mut got = Vec::new();
        // Pings keep a silent connection from timing out: bound the wait by a deadline too.
        let end = Instant::now() + Duration::from_secs(60);
        while got.len() < want && Instant::now() < end {
            let Some(t) = ws.recv_text() else { break };
            let Ok(v) = serde_json::from_str::<Value>(&t) else {
                continue;
            };
            let Some(c) = v["content"].as_str() else {
                continue;
            };
            // The chat app puts `<b>对你说: </b>` before a private message.
            let n = c.find(&tag).and_then(|i| c[i + tag.len()..].parse().ok());
            if let Some(n) = n {
                got.push(n);
            }
        }
        (ws, got)
    })
}

/// Read and drop what `ws` gets (the sender's own copies) until it is closed.
fn drain(ws: &Ws) -> JoinHandle<()> {
    let mut s = ws.sock.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut b = vec![0u8; 1 << 16];
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
    })
}

/// Send `per` messages tagged `tag` to each receiver in turn, back to back.
fn burst(sender: &mut Ws, ids: &[String], tag: &str, per: usize) {
    for k in 0..per {
        for id in ids {
            sender.send_text(
                &json!({"type":"say","to_client_id":id,"content":format!("{tag}{k}")}).to_string(),
            );
        }
    }
}

#[test]
fn bursts_across_nodes_arrive_whole_and_in_order_and_redis_restart_never_reorders() {
    if !redis_available() {
        return;
    }
    let mut redis = Redis::start();
    let nodes: Vec<Node> = (1..=3)
        .map(|id| Node::start("chat", id, 1, &redis, LEASE_MS, ""))
        .collect();
    let (r2, id2) = login(&nodes[1], "r2", "o");
    let (r3, id3) = login(&nodes[2], "r3", "o");
    sees(&nodes[0], "o", 2);
    let (mut s, _) = login(&nodes[0], "s", "o");
    let d = drain(&s);
    let ids = [id2, id3];
    let per = 1500;

    // A burst with nothing failing: everything, in order.
    let hs = [
        collect(r2, "[a-".into(), per),
        collect(r3, "[a-".into(), per),
    ];
    burst(&mut s, &ids, "[a-", per);
    let mut rs = Vec::new();
    for h in hs {
        let (ws, got) = h.join().unwrap();
        assert_eq!(got, (0..per as u64).collect::<Vec<_>>(), "burst a");
        rs.push(ws);
    }

    eprintln!("burst a: whole and in order");
    // Redis restarts during a burst: what arrives keeps its order and comes once.
    let hs: Vec<_> = rs
        .into_iter()
        .map(|ws| collect(ws, "[b-".into(), per))
        .collect();
    burst(&mut s, &ids, "[b-", per / 2);
    redis.restart();
    for k in per / 2..per {
        for id in &ids {
            s.send_text(
                &json!({"type":"say","to_client_id":id,"content":format!("[b-{k}")}).to_string(),
            );
        }
    }
    let mut rs = Vec::new();
    for h in hs {
        let (ws, got) = h.join().unwrap();
        eprintln!("burst b: {} of {per}", got.len());
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "burst b reordered or repeated: {got:?}"
        );
        rs.push(ws);
    }

    eprintln!("burst b: in order");
    // Recovered: node 1 sees both receivers again, and a new burst arrives whole.
    sees(&nodes[0], "o", 3);
    let hs: Vec<_> = rs
        .into_iter()
        .map(|ws| collect(ws, "[c-".into(), per))
        .collect();
    burst(&mut s, &ids, "[c-", per);
    for h in hs {
        let (_, got) = h.join().unwrap();
        assert_eq!(got, (0..per as u64).collect::<Vec<_>>(), "burst c");
    }
    let _ = s.sock.shutdown(std::net::Shutdown::Both);
    let _ = d.join();
}
