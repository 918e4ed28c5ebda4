//! The kefu app across three nodes of one cluster (one Redis of the test's own; the nodes
//! share one data directory, so one SQLite store, as nodes on one host can): a visitor on
//! node 1 is served by an agent on node 2, both ways live; when node 2 is killed with SIGKILL,
//! the visitor hears its agent is gone once the node's lease runs out, and the conversation
//! goes to an agent on node 3.

mod common;

use common::cluster::{redis_available, Redis};
use common::kefu_app::*;
use common::{signal, Instance};
use std::time::Instant;

fn presence(m: &serde_json::Value, agent: &str, online: bool) -> bool {
    m["method"] == "agent_presence" && m["agent_id"] == agent && m["online"] == online
}

fn cluster_toml(redis: &Redis, id: u8) -> String {
    format!(
        "agent_away_grace = 1\n[cluster]\nnode = {id}\nredis = \"{}\"\nlease_ms = 1500\n",
        redis.url()
    )
}

/// A further node of `first`'s cluster on its data directory.
fn node(first: &Kefu, redis: &Redis, id: u8) -> Kefu {
    let data = first.inst.data_dir();
    let inst = Instance::new("kefu", 1, &["websocket"])
        .config(&format!("[kefu]\n{}", cluster_toml(redis, id)))
        .args(&["--data-dir", data.to_str().unwrap()])
        .start();
    Kefu { inst, pg: None }
}

#[test]
fn visitor_and_agents_on_different_nodes() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let a = Kefu::start(
        1,
        &cluster_toml(&redis, 1),
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
        ],
    );
    let b = node(&a, &redis, 2);
    let c = node(&a, &redis, 3);

    // The visitor on node 1 learns that alice, on node 2, came online.
    let (mut v, _) = a.visitor("shop");
    let (mut alice, _) = b.agent("shop", "alice");
    recv_until(&mut v, "alice online", |m| presence(m, "alice", true));

    // Its conversation goes to alice; messages cross both ways.
    say(&mut v, None, "c1", "hello from node 1");
    let asg = recv_until(&mut alice, "assigned", |m| m["method"] == "assigned");
    let conv = asg["conv"]["conv_id"].as_i64().unwrap();
    assert_eq!(asg["conv"]["agent_id"], "alice", "{asg}");
    say(&mut alice, Some(conv), "a1", "hi from node 2");
    let m = recv_until(&mut v, "agent's message", |m| {
        m["method"] == "message" && m["text"] == "hi from node 2"
    });
    assert_eq!(m["conv_id"], conv, "{m}");

    // Node 2 dies: once its lease runs out the visitor hears alice is gone, and after the
    // grace period bob, on node 3, gets the conversation.
    let pids = {
        let mut p = b.inst.worker_pids();
        p.extend(b.inst.master_pid());
        p
    };
    let t0 = Instant::now();
    for p in pids {
        signal(p, libc::SIGKILL);
    }
    recv_until(&mut v, "alice offline", |m| presence(m, "alice", false));
    eprintln!(
        "visitor told alice is gone {:?} after kill -9 of her node",
        t0.elapsed()
    );
    let (mut bob, _) = c.agent("shop", "bob");
    let got = recv_until(&mut bob, "assigned to bob", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"] == conv
    });
    assert_eq!(got["conv"]["agent_id"], "bob", "{got}");
    let to_v = recv_until(&mut v, "visitor assigned", |m| m["method"] == "assigned");
    assert_eq!(to_v["agent_id"], "bob", "{to_v}");
    say(&mut bob, Some(conv), "b1", "bob here, from node 3");
    recv_until(&mut v, "bob's message", |m| {
        m["method"] == "message" && m["text"] == "bob here, from node 3"
    });
}
