//! A reload of one cluster node while cross-node traffic flows (issue 14): three nodes on
//! 127.0.0.2-4 with a Redis of the test's own; node 1 is reloaded while every node's API
//! sends to clients on another node. Client ids do not change, each send that was accepted
//! arrives exactly once and in order, and the other nodes never stop seeing node 1's clients.

mod common;

use common::cluster::{redis_available, wait_lists, Node, Redis};
use common::ws::Ws;
use common::{wait_until, SEC};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const LEASE_MS: u64 = 1500;

/// Send `{tag}-{i}` to `to` through `node`'s API until `stop` (and at least `min`); returns
/// how many were accepted.
fn sender(
    addr: String,
    to: String,
    tag: String,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    min: usize,
) -> JoinHandle<Result<usize, String>> {
    std::thread::spawn(move || {
        let mut api = common::http::Http::connect(&addr);
        let mut i = 0;
        while i < min || !stop.load(Ordering::Relaxed) {
            let body = json!({"client_id": to, "message": format!("{tag}-{i}")});
            let a = api.call("send_to_client", &body);
            if a.status != 200 {
                // Reported with the nodes' logs by the test.
                return Err(format!("{addr} {body}: {} {}", a.status, a.json()));
            }
            i += 1;
            sent.fetch_add(1, Ordering::Relaxed);
        }
        Ok(i)
    })
}

/// Read `ws` until `n` messages of each tag in `tags` came; returns them per tag.
fn receive(ws: &mut Ws, tags: &[(String, usize)]) -> Vec<Vec<String>> {
    let mut got = vec![Vec::new(); tags.len()];
    let total: usize = tags.iter().map(|(_, n)| n).sum();
    let mut seen = 0;
    while seen < total {
        let m = ws.recv_text().expect("a message (closed or silent)");
        let k = tags
            .iter()
            .position(|(t, _)| m.starts_with(&format!("{t}-")))
            .unwrap_or_else(|| panic!("unexpected message {m}"));
        got[k].push(m);
        seen += 1;
    }
    got
}

#[test]
fn reloading_a_node_under_cross_node_traffic_loses_and_repeats_nothing() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let nodes: Vec<Node> = (1..=3)
        .map(|id| Node::start("bridge", id, 2, &redis, LEASE_MS, ""))
        .collect();
    // Two clients per node (with two workers each, probably one per worker).
    let mut clients: Vec<(Ws, String)> = Vec::new();
    for n in &nodes {
        for _ in 0..2 {
            clients.push(n.client());
        }
    }
    let ids: BTreeSet<String> = clients.iter().map(|(_, id)| id.clone()).collect();
    wait_lists(&nodes, &ids, "before the reload");
    // Node 1's clients get uids (bound from node 3), so presence by uid is watched too.
    let mut api3 = nodes[2].api();
    for (i, (_, id)) in clients.iter().take(2).enumerate() {
        api3.ok(
            "bind_uid",
            json!({"client_id": id, "uid": format!("n1-{i}")}),
        );
    }
    // The bind goes to node 1 and comes back to every node with its registry: watch only
    // once every node has it.
    for n in &nodes {
        let mut api = n.api();
        for i in 0..2 {
            let uid = json!({"uid": format!("n1-{i}")});
            let seen = wait_until(15 * SEC, || {
                api.ok("is_uid_online", uid.clone()) == json!(true)
            });
            assert!(seen, "node {} never saw uid n1-{i}", n.id);
        }
    }

    // Traffic: nodes 2 and 3 send to both of node 1's clients, node 1 (being reloaded)
    // sends to a client of node 2.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut flows = Vec::new(); // (receiver index, tag, handle)
    for (from, to) in [(1, 0), (2, 0), (1, 1), (2, 1), (0, 2)] {
        let tag = format!("from{from}to{to}");
        let h = sender(
            nodes[from].api_addr(),
            clients[to].1.clone(),
            tag.clone(),
            stop.clone(),
            sent.clone(),
            20,
        );
        flows.push((to, tag, h));
    }
    // Presence watch: nodes 2 and 3 ask about node 1's clients all along.
    let dropped = Arc::new(Mutex::new(Vec::<String>::new()));
    let watchers: Vec<JoinHandle<usize>> = nodes[1..]
        .iter()
        .map(|n| {
            let (addr, stop, dropped) = (n.api_addr(), stop.clone(), dropped.clone());
            let watched: Vec<String> = clients.iter().take(2).map(|c| c.1.clone()).collect();
            std::thread::spawn(move || {
                let mut api = common::http::Http::connect(&addr);
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) {
                    for (i, id) in watched.iter().enumerate() {
                        let on = api.ok("is_online", json!({"client_id": id}));
                        let uid = api.ok("is_uid_online", json!({"uid": format!("n1-{i}")}));
                        if on != json!(true) || uid != json!(true) {
                            dropped
                                .lock()
                                .unwrap()
                                .push(format!("{addr}: {id} {on} {uid}"));
                        }
                    }
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();

    assert!(wait_until(20 * SEC, || sent.load(Ordering::Relaxed) >= 50));
    let pids0 = nodes[0].inst.worker_pids();
    let out = nodes[0].inst.run(&["reload"], 60 * SEC);
    assert!(out.ok(), "{out:?}\n{}", nodes[0].inst.stderr());
    let log = nodes[0].inst.stderr();
    assert!(log.contains("] took over "), "{log}");
    assert!(!log.contains("no hand-over"), "{log}");
    let pids1 = nodes[0].inst.worker_pids();
    assert!(
        pids1.iter().all(|p| !pids0.contains(p)),
        "{pids0:?} {pids1:?}"
    );
    let after = sent.load(Ordering::Relaxed);
    assert!(wait_until(20 * SEC, || sent.load(Ordering::Relaxed) >= after + 50));
    stop.store(true, Ordering::Relaxed);

    let mut want: Vec<Vec<(String, usize)>> = vec![Vec::new(); clients.len()];
    for (to, tag, h) in flows {
        let n = h.join().unwrap().unwrap_or_else(|e| {
            let logs: Vec<String> = nodes.iter().map(|n| n.inst.stderr()).collect();
            panic!("{e}\n{}", logs.join("\n----\n"))
        });
        want[to].push((tag, n));
    }
    for w in watchers {
        assert!(w.join().unwrap() > 0, "a watcher never asked");
    }
    let dropped = dropped.lock().unwrap().clone();
    assert!(dropped.is_empty(), "node 1's clients dropped: {dropped:?}");

    // Every accepted send arrived once, in order, on the connection it was sent to.
    for (k, (ws, id)) in clients.iter_mut().enumerate() {
        if want[k].is_empty() {
            continue;
        }
        let got = receive(ws, &want[k]);
        for ((tag, n), g) in want[k].iter().zip(got) {
            let expect: Vec<String> = (0..*n).map(|i| format!("{tag}-{i}")).collect();
            assert_eq!(g, expect, "client {id}");
        }
    }
    // Same ids everywhere, still reachable by id from every node.
    wait_lists(&nodes, &ids, "after the reload");
    for (k, n) in nodes.iter().enumerate() {
        let mut api = n.api();
        for (ws, id) in clients.iter_mut().take(2) {
            let m = format!("after-{k}");
            api.ok("send_to_client", json!({"client_id": id, "message": m}));
            assert_eq!(ws.recv_text().as_deref(), Some(m.as_str()), "{id}");
        }
    }
}
