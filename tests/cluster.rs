//! Three kefu nodes on 127.0.0.2-4 sharing one Redis of the test's own: gateway calls from any
//! node reach clients on every node, counts and lists agree everywhere; a node killed with
//! SIGKILL or frozen with SIGSTOP is dropped by the others once its lease runs out, and a
//! frozen node that resumes rejoins without duplicates; a Redis restart is survived.

mod common;

use common::cluster::{redis_available, wait_lists, Node, Redis};
use common::ws::Ws;
use common::{wait_until, SEC};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const LEASE_MS: u64 = 1500;

struct Client {
    ws: Ws,
    id: String,
    node: usize,
}

fn start_cluster(redis: &Redis) -> Vec<Node> {
    (1..=3)
        .map(|id| Node::start("bridge", id, 1, redis, LEASE_MS, ""))
        .collect()
}

/// Two clients per node, each bound to uid `u<i>`, all in group `all`, node 1's in `one`.
fn connect(nodes: &[Node]) -> Vec<Client> {
    let mut cs = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for _ in 0..2 {
            let (ws, id) = node.client();
            // The id names the node: its first byte is the node id.
            assert_eq!(&id[..2], &format!("{:02x}", node.id), "client id {id}");
            cs.push(Client { ws, id, node: n });
        }
    }
    cs
}

/// Wait until every node's API answers the client list and count of `want`.
fn assert_views(nodes: &[Node], want: &[&Client], what: &str) {
    let want: BTreeSet<String> = want.iter().map(|c| c.id.clone()).collect();
    wait_lists(nodes, &want, what);
}

/// Group membership and uids set from node 1 for every client (crossing to the owners), then
/// sends from every node: each client gets exactly its messages, in order per sender.
fn gateway_round(nodes: &[Node], cs: &mut [Client], tag: &str) {
    let mut a = nodes[0].api();
    for (i, c) in cs.iter().enumerate() {
        a.ok(
            "bind_uid",
            json!({"client_id": c.id, "uid": format!("u{i}")}),
        );
        a.ok("join_group", json!({"client_id": c.id, "group": "all"}));
        if c.node == 0 {
            a.ok("join_group", json!({"client_id": c.id, "group": "one"}));
        }
    }
    let n = cs.len();
    let all: Vec<&Client> = cs.iter().collect();
    for node in nodes {
        let mut api = node.api();
        let mut ok = false;
        for _ in 0..750 {
            let g = api.ok("get_client_id_list_by_group", json!({"group": "all"}));
            let u = api.ok("get_all_uid_count", json!({}));
            if g.as_array().map(|a| a.len()) == Some(n) && u == json!(n) {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            ok,
            "node {} never saw every client's group and uid",
            node.id
        );
    }
    assert_views(nodes, &all, "after joins");
    let mut expected: Vec<Vec<String>> = vec![Vec::new(); n];
    for (k, node) in nodes.iter().enumerate() {
        let mut api = node.api();
        let m = format!("{tag}-group-from{k}");
        let ex = cs[(k + 1) % n].id.clone();
        api.ok(
            "send_to_group",
            json!({"group": "all", "message": m, "exclude": [ex]}),
        );
        for (i, e) in expected.iter_mut().enumerate() {
            if i != (k + 1) % n {
                e.push(m.clone());
            }
        }
        let m = format!("{tag}-one-from{k}");
        api.ok("send_to_group", json!({"group": "one", "message": m}));
        for (i, e) in expected.iter_mut().enumerate() {
            if cs[i].node == 0 {
                e.push(m.clone());
            }
        }
        // A private message to a client on the next node, and a uid on the one after.
        let t = cs
            .iter()
            .position(|c| c.node == (k + 1) % nodes.len())
            .unwrap();
        let m = format!("{tag}-client-from{k}");
        api.ok(
            "send_to_client",
            json!({"client_id": cs[t].id, "message": m}),
        );
        expected[t].push(m);
        let t = cs
            .iter()
            .rposition(|c| c.node == (k + 2) % nodes.len())
            .unwrap();
        let m = format!("{tag}-uid-from{k}");
        api.ok("send_to_uid", json!({"uid": format!("u{t}"), "message": m}));
        expected[t].push(m);
        // Is-online answers agree for a remote client.
        assert_eq!(
            api.ok("is_online", json!({"client_id": cs[t].id})),
            json!(true),
            "node {} on {}",
            node.id,
            cs[t].id
        );
    }
    // Per receiver, messages from one sender keep their order; across senders none is
    // promised, so compare per sender.
    for (i, c) in cs.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < expected[i].len() {
            match c.ws.recv_text() {
                Some(m) => got.push(m),
                None => break,
            }
        }
        for k in 0..nodes.len() {
            let p = format!("-from{k}");
            let g: Vec<&String> = got.iter().filter(|m| m.ends_with(&p)).collect();
            let e: Vec<&String> = expected[i].iter().filter(|m| m.ends_with(&p)).collect();
            assert_eq!(g, e, "client {i} from node #{k}");
        }
        assert_eq!(got.len(), expected[i].len(), "client {i}: {got:?}");
    }
}

#[test]
fn three_nodes_gateway_calls_counts_and_lists() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let nodes = start_cluster(&redis);
    let mut cs = connect(&nodes);
    // Calls from node 1 name clients of nodes 2 and 3: only once node 1 knows them.
    let all: Vec<&Client> = cs.iter().collect();
    assert_views(&nodes, &all, "after connecting");
    gateway_round(&nodes, &mut cs, "r1");
    // A close from node 3 of a client on node 1 reaches its owner, and every node forgets it.
    let gone = cs.remove(0);
    nodes[2]
        .api()
        .ok("close_client", json!({"client_id": gone.id}));
    let left: Vec<&Client> = cs.iter().collect();
    assert_views(&nodes, &left, "after close_client");
    // kefu status shows the cluster from any node: every other node, by the name in its
    // lease (read within a renewal period).
    for n in &nodes {
        let want: BTreeSet<(u64, String)> = (1..=3u64)
            .filter(|&i| i != n.id as u64)
            .map(|i| (i, format!("n{i}")))
            .collect();
        let mut last = Value::Null;
        let ok = wait_until(10 * SEC, || {
            let s = n.inst.status().expect("status");
            let got: BTreeSet<(u64, String)> = s["cluster"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    (
                        v["node"].as_u64().unwrap(),
                        v["name"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let good = s["cluster"]["node"] == json!(n.id) && got == want;
            last = s;
            good
        });
        assert!(ok, "node {}: {last}", n.id);
        let out = n.inst.run(&["status"], 10 * SEC);
        assert!(out.ok(), "{out:?}");
        assert!(out.stdout.contains("CLUSTER"), "{}", out.stdout);
        for m in &nodes {
            assert!(out.stdout.contains(&format!("n{}", m.id)), "{}", out.stdout);
        }
    }
}

#[test]
fn killed_node_is_dropped_within_its_lease() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let nodes = start_cluster(&redis);
    let cs = connect(&nodes);
    let all: Vec<&Client> = cs.iter().collect();
    assert_views(&nodes, &all, "before the kill");
    let pids = nodes[2].pids();
    assert_eq!(pids.len(), 2);
    let t0 = Instant::now();
    Node::signal_all(&pids, libc::SIGKILL);
    let alive: Vec<&Client> = cs.iter().filter(|c| c.node != 2).collect();
    assert_views(&nodes[..2], &alive, "after kill -9 of node 3");
    eprintln!(
        "node 3 dropped by the others {:?} after kill -9 (lease {LEASE_MS} ms)",
        t0.elapsed()
    );
}

#[test]
fn frozen_node_is_dropped_then_rejoins_without_duplicates() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let nodes = start_cluster(&redis);
    let mut cs = connect(&nodes);
    let all: Vec<&Client> = cs.iter().collect();
    assert_views(&nodes, &all, "before SIGSTOP");
    let pids = nodes[2].pids();
    Node::signal_all(&pids, libc::SIGSTOP);
    let alive: Vec<&Client> = cs.iter().filter(|c| c.node != 2).collect();
    assert_views(&nodes[..2], &alive, "while node 3 is frozen");
    Node::signal_all(&pids, libc::SIGCONT);
    let all: Vec<&Client> = cs.iter().collect();
    assert_views(&nodes, &all, "after SIGCONT");
    gateway_round(&nodes, &mut cs, "after-cont");
    if std::env::var_os("CLUSTER_LOGS").is_some() {
        for n in &nodes {
            eprintln!("--- node {}\n{}{}", n.id, n.inst.stdout(), n.inst.stderr());
        }
    }
}

#[test]
fn redis_restart_is_survived() {
    if !redis_available() {
        return;
    }
    let mut redis = Redis::start();
    let nodes = start_cluster(&redis);
    let mut cs = connect(&nodes);
    let all: Vec<&Client> = cs.iter().collect();
    assert_views(&nodes, &all, "before the restart");
    redis.restart();
    // Clients that come while the nodes reconnect are seen everywhere too.
    for (n, node) in nodes.iter().enumerate() {
        let (ws, id) = node.client();
        cs.push(Client { ws, id, node: n });
    }
    let all: Vec<&Client> = cs.iter().collect();
    assert_views(&nodes, &all, "after the Redis restart");
    gateway_round(&nodes, &mut cs, "after-restart");
    if std::env::var_os("CLUSTER_LOGS").is_some() {
        for n in &nodes {
            eprintln!("--- node {}\n{}{}", n.id, n.inst.stdout(), n.inst.stderr());
        }
    }
}
