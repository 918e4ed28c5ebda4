//! The kefu app's store on PostgreSQL (one server of the test's own): three nodes, each with
//! its own data directory, share one Redis and one PostgreSQL. Visitors and agents on
//! different nodes: routing, cluster-wide queue positions, the claim race, transfer, history
//! and resume from any node; PostgreSQL stopped mid-traffic (clear errors, no false ack,
//! recovery by itself); and a node killed with SIGKILL under load (no acknowledged message
//! lost, every client resumed on another node).

mod common;

use common::cluster::Redis;
use common::kefu_app::*;
use common::kefu_cluster::{available, node, node_toml, open_conv};
use common::pg::{pg_available, Pg};
use common::ws::Ws;
use common::{wait_until, SEC};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn three_nodes_share_one_postgresql() {
    if !available() {
        return;
    }
    let pg = Pg::start();
    let redis = Redis::start();
    let a = Kefu::start(
        1,
        &node_toml(&pg, &redis, 1),
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
            ("q", "qa", "Qa", Some(1)),
            ("q", "qb", "Qb", Some(1)),
        ],
    );
    let b = node(&pg, &redis, 2, 2);
    let c = node(&pg, &redis, 3, 1);
    // The store is PostgreSQL: no node has an SQLite file.
    for k in [&a, &b, &c] {
        assert!(!k.inst.data_dir().join("kefu.db").exists());
    }
    // Every migration ran (the newest is `(9, SCHEMA_V9)` in src/store/mod.rs).
    assert_eq!(pg.psql("SELECT version FROM kefu_schema"), "9");

    // Routing across nodes: the visitor on node 1 goes to alice on node 2.
    let (mut alice, _) = b.agent("shop", "alice");
    let (mut v, token, conv, fate) = open_conv(&a, "shop", "hello from node 1");
    assert_eq!(fate["agent_id"], "alice", "{fate}");
    recv_until(&mut alice, "assigned", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"] == conv
    });
    let s1 = say(&mut alice, Some(conv), "a1", "hi from node 2");
    recv_until(&mut v, "alice's message", |m| {
        m["method"] == "message" && m["seq"] == s1
    });

    // Transfer to bob on node 3; he answers; the visitor hears both.
    let (mut bob, _) = c.agent("shop", "bob");
    // Node 2 learns bob is online through the cluster's presence: until then a transfer to
    // him is refused, so alice tries again until it is taken.
    assert!(
        wait_until(10 * SEC, || {
            alice.send_text(&json!({"method":"transfer","conv_id":conv,"to":"bob"}).to_string());
            let r = recv_until(&mut alice, "transfer answer", |m| {
                (m["method"] == "transfer" && m.get("code").is_some())
                    || m["event"] == "transferred"
            });
            r["event"] == "transferred"
        }),
        "transfer to bob refused"
    );
    recv_until(&mut bob, "transferred to bob", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"] == conv
    });
    let e = recv_until(&mut v, "transfer event", |m| m["event"] == "transferred");
    let last_seen = e["seq"].as_i64().unwrap();

    // The visitor drops; bob writes meanwhile; the visitor resumes on node 3 and gets
    // exactly the missed messages, seqs following on from node 2's without a gap.
    drop(v);
    let sent: Vec<i64> = (0..4)
        .map(|i| say(&mut bob, Some(conv), &format!("b{i}"), &format!("away {i}")))
        .collect();
    assert_eq!(
        sent,
        ((last_seen + 1)..=(last_seen + 4)).collect::<Vec<_>>()
    );
    let (mut v, l) = c.visitor_with(
        "shop",
        &token,
        json!([{"conv_id":conv,"last_seq":last_seen}]),
    );
    assert_eq!(l["conv"]["agent_id"], "bob", "{l}");
    let sync = recv_method(&mut v, "sync");
    let got: Vec<i64> = sync["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(got, sent);

    // History from node 2, by an agent of the business: every message, in seq order.
    alice.send_text(&json!({"method":"history","conv_id":conv,"limit":50}).to_string());
    let h = recv_method(&mut alice, "history");
    let seqs: Vec<i64> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=*sent.last().unwrap()).collect::<Vec<_>>());
    assert_eq!(
        pg.psql(&format!(
            "SELECT COUNT(*) FROM messages WHERE conv_id = {conv}"
        )),
        sent.last().unwrap().to_string()
    );

    // Queue positions are cluster-wide: three visitors on three nodes, nobody online in
    // business q, wait at positions 1, 2, 3.
    let mut waiting = Vec::new();
    for (i, k) in [&a, &b, &c].into_iter().enumerate() {
        let (v, _, conv, fate) = open_conv(k, "q", &format!("q{i}"));
        assert_eq!(
            (fate["method"].as_str(), fate["position"].as_i64()),
            (Some("waiting"), Some(i as i64 + 1)),
            "{fate}"
        );
        waiting.push((v, conv));
    }
    // qa (max 1) comes online on node 3: the oldest, from node 1, is hers; the visitors on
    // nodes 2 and 3 move up.
    let (mut qa, _) = c.agent("q", "qa");
    recv_until(&mut qa, "oldest", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"] == waiting[0].1
    });
    recv_until(&mut waiting[1].0, "position 1", |m| {
        m["method"] == "waiting" && m["position"] == 1
    });
    recv_until(&mut waiting[2].0, "position 2", |m| {
        m["method"] == "waiting" && m["position"] == 2
    });

    // The claim race across nodes: qa (node 3) and qb (node 2) are full (max 1) and claim
    // both waiting conversations at once: each has exactly one winner.
    let (mut qb, _) = b.agent("q", "qb");
    let got_b = recv_until(&mut qb, "qb drains one", |m| m["method"] == "assigned");
    let drained = got_b["conv"]["conv_id"].as_i64().unwrap();
    assert_eq!(drained, waiting[1].1, "FIFO");
    let left = waiting[2].1;
    qa.send_text(&json!({"method":"claim","conv_id":left}).to_string());
    qb.send_text(&json!({"method":"claim","conv_id":left}).to_string());
    let answer = |ws: &mut Ws| {
        recv_until(ws, "claim answer", |m| {
            (m["method"] == "assigned" && m["conv"]["conv_id"] == left)
                || (m["method"] == "claim" && m.get("code").is_some())
        })
    };
    let (ra, rb) = (answer(&mut qa), answer(&mut qb));
    let wins = [&ra, &rb]
        .iter()
        .filter(|r| r["method"] == "assigned")
        .count();
    assert_eq!(wins, 1, "{ra} {rb}");
    let loser = if ra["method"] == "assigned" { &rb } else { &ra };
    assert_eq!(loser["code"], "10006", "{loser}");
    assert_eq!(
        pg.psql(&format!(
            "SELECT state || ' ' || agent_id FROM conversations WHERE id = {left}"
        )),
        format!(
            "active {}",
            if ra["method"] == "assigned" {
                "qa"
            } else {
                "qb"
            }
        )
    );
}

#[test]
fn postgresql_down_mid_traffic_gives_errors_not_acks_and_recovers() {
    if !pg_available() {
        return;
    }
    let mut pg = Pg::start();
    let k = Kefu::start(
        2,
        &format!("database = \"{}\"", pg.url()),
        &[("shop", "alice", "Alice", None)],
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut v, _, conv, _) = open_conv(&k, "shop", "before");
    recv_until(&mut alice, "assigned", |m| m["method"] == "assigned");

    // Send one message at a time; each answer is an ack or an error, never nothing.
    let mut acked = BTreeSet::new();
    let mut refused = 0;
    let mut send = |ws: &mut Ws, id: String| -> bool {
        ws.send_text(
            &json!({"method":"send","conv_id":conv,"client_msg_id":id,"kind":"text","text":id})
                .to_string(),
        );
        let a = recv_until(ws, "answer", |m| {
            (m["method"] == "ack" || m.get("code").is_some()) && m["client_msg_id"] == id
        });
        if a["method"] == "ack" {
            acked.insert(id);
            true
        } else {
            assert_eq!(a["code"], "10009", "{a}");
            assert_eq!(a["msg"], "storage error; nothing was done", "{a}");
            refused += 1;
            false
        }
    };
    for i in 0..20 {
        assert!(send(&mut v, format!("up{i}")));
    }
    pg.stop();
    // Down: every send is refused with a storage error (none acked).
    for i in 0..10 {
        assert!(!send(&mut v, format!("down{i}")));
        assert!(!send(&mut alice, format!("adown{i}")));
    }
    pg.restart();
    // Back: the store reconnects by itself; sends are acked again.
    let mut n = 0;
    assert!(
        wait_until(30 * SEC, || {
            n += 1;
            send(&mut v, format!("again{n}"))
        }),
        "no ack after postgresql came back"
    );
    for i in 0..10 {
        assert!(send(&mut alice, format!("after{i}")));
    }
    assert!(refused >= 20, "{refused}");
    // Nothing acknowledged is missing, nothing refused was stored.
    let stored: BTreeSet<String> = pg
        .psql(&format!(
            "SELECT client_msg_id FROM messages WHERE conv_id = {conv} AND client_msg_id IS NOT NULL"
        ))
        .lines()
        .map(str::to_string)
        .collect();
    for id in &acked {
        assert!(stored.contains(id), "acked {id} not stored");
    }
    assert!(stored.iter().all(|s| !s.contains("down")), "{stored:?}");
    // Seqs have no gap.
    let seqs: Vec<i64> = pg
        .psql(&format!(
            "SELECT seq FROM messages WHERE conv_id = {conv} ORDER BY seq"
        ))
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}

/// One client of the load: who it is, where it is connected, what it got acked.
struct Client {
    visitor: bool,
    id: String,
    token: String,
    conv: i64,
    ws: Ws,
    node: usize,
    acked: BTreeMap<String, i64>,
    last_seen: i64,
}

#[test]
fn kill_9_of_a_node_under_load_loses_no_acknowledged_message() {
    if !available() {
        return;
    }
    let pg = Pg::start();
    let redis = Redis::start();
    let agents: Vec<(String, String)> = (0..4)
        .map(|i| (format!("ag{i}"), format!("Agent {i}")))
        .collect();
    let spec: Vec<(&str, &str, &str, Option<u32>)> = agents
        .iter()
        .map(|(id, name)| ("shop", id.as_str(), name.as_str(), Some(10)))
        .collect();
    let n0 = Kefu::start(2, &node_toml(&pg, &redis, 1), &spec);
    let n1 = node(&pg, &redis, 2, 2);
    let nodes = [&n0, &n1];

    // Agents 0, 1 on node 0 (the one that dies), 2, 3 on node 1.
    // (agent_away_grace = 0: conversations stay with an agent whose node died, so it finds
    // them again when it logs in elsewhere.)
    let _agent_ws: Vec<Ws> = (0..4)
        .map(|i| nodes[i / 2].agent("shop", &agents[i].0).0)
        .collect();
    // Eight visitors, half on each node.
    let mut clients: Vec<Client> = Vec::new();
    for i in 0..8 {
        let k = nodes[i % 2];
        let (ws, token, conv, _) = open_conv(k, "shop", &format!("v{i} first"));
        clients.push(Client {
            visitor: true,
            id: format!("v{i}"),
            token,
            conv,
            ws,
            node: i % 2,
            acked: BTreeMap::new(),
            last_seen: 0,
        });
    }
    // Each visitor's agent answers in its conversation.
    let mut owner: BTreeMap<i64, String> = BTreeMap::new();
    for c in &clients {
        let a = pg.psql(&format!(
            "SELECT agent_id FROM conversations WHERE id = {}",
            c.conv
        ));
        owner.insert(c.conv, a);
    }
    let mut agent_clients = Vec::new();
    for (i, (id, _)) in agents.iter().enumerate() {
        for (conv, _) in owner.iter().filter(|(_, a)| *a == id) {
            agent_clients.push((i, *conv));
        }
    }
    // One connection per (agent, conversation) pair keeps the bookkeeping simple: each is a
    // client of its own on the agent's node.
    for (i, conv) in agent_clients {
        let node = i / 2;
        let (ws, _) = nodes[node].agent("shop", &agents[i].0);
        clients.push(Client {
            visitor: false,
            id: agents[i].0.clone(),
            token: String::new(),
            conv,
            ws,
            node,
            acked: BTreeMap::new(),
            last_seen: 0,
        });
    }

    // Rounds of traffic: every client sends one message per round and waits for its answer.
    // Node 0 is killed after round 5; its clients reconnect to node 1 and resume.
    let pids = {
        let mut p = n0.inst.worker_pids();
        p.extend(n0.inst.master_pid());
        p
    };
    let on_node0 = clients.iter().filter(|c| c.node == 0).count();
    let mut resumed = 0;
    for round in 0..12 {
        if round == 5 {
            for &p in &pids {
                common::try_signal(p, libc::SIGKILL);
            }
        }
        for c in clients.iter_mut() {
            let cmid = format!("{}-{}-r{round}", c.id, c.conv);
            let msg = json!({"method":"send","conv_id":c.conv,"client_msg_id":cmid,"kind":"text","text":cmid});
            c.ws.send_text(&msg.to_string());
            let answer = loop {
                match recv_json(&mut c.ws) {
                    Some(m)
                        if m["client_msg_id"] == cmid
                            && (m["method"] == "ack" || m.get("code").is_some()) =>
                    {
                        break Some(m)
                    }
                    Some(m) => {
                        if m["method"] == "message" && m["conv_id"] == c.conv {
                            c.last_seen = c.last_seen.max(m["seq"].as_i64().unwrap());
                        }
                    }
                    None => break None,
                }
            };
            match answer {
                Some(a) if a["method"] == "ack" => {
                    c.acked.insert(cmid, a["seq"].as_i64().unwrap());
                }
                _ => {
                    // The node is gone (or the answer never came): reconnect to the other
                    // node and resume, then send the same message again (same id: a retry
                    // that was stored is answered with its first ack, not stored twice).
                    assert_eq!(c.node, 0, "a client of the live node lost its answer");
                    c.node = 1;
                    resumed += 1;
                    if c.visitor {
                        let (ws, l) = n1.visitor_with(
                            "shop",
                            &c.token,
                            json!([{"conv_id":c.conv,"last_seq":c.last_seen}]),
                        );
                        assert_eq!(l["conv"]["conv_id"], c.conv, "{l}");
                        c.ws = ws;
                        let sync = recv_method(&mut c.ws, "sync");
                        assert_eq!(sync["reload"], false, "{sync}");
                        let first = sync["messages"][0]["seq"].as_i64();
                        assert!(
                            first.is_none() || first == Some(c.last_seen + 1),
                            "resume from {} got {sync}",
                            c.last_seen
                        );
                    } else {
                        let (ws, login) = n1.agent("shop", &c.id);
                        assert!(login["conversations"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|x| x["conv_id"] == c.conv));
                        c.ws = ws;
                    }
                    c.ws.send_text(&msg.to_string());
                    let a = recv_until(&mut c.ws, "ack after resume", |m| {
                        m["client_msg_id"] == cmid
                            && (m["method"] == "ack" || m.get("code").is_some())
                    });
                    assert_eq!(a["method"], "ack", "{a}");
                    c.acked.insert(cmid, a["seq"].as_i64().unwrap());
                }
            }
        }
    }
    eprintln!(
        "{resumed} of {} clients resumed on the other node after kill -9 of theirs",
        clients.len()
    );
    // Every client of the killed node was resumed on the other one.
    assert!(on_node0 > 0);
    assert_eq!(resumed, on_node0);
    assert!(clients.iter().all(|c| c.node == 1));
    // Zero acknowledged messages lost: each is in PostgreSQL at the acked seq, once.
    let mut total = 0;
    for c in &clients {
        let rows = pg.psql(&format!(
            "SELECT client_msg_id || ' ' || seq FROM messages WHERE conv_id = {} AND sender_id = '{}'",
            c.conv,
            if c.visitor {
                pg.psql(&format!("SELECT visitor_id FROM conversations WHERE id = {}", c.conv))
            } else {
                c.id.clone()
            }
        ));
        let stored: BTreeMap<String, i64> = rows
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_string(), b.parse().unwrap()))
            .collect();
        for (id, seq) in &c.acked {
            assert_eq!(stored.get(id), Some(seq), "acked {id} at {seq} not stored");
            total += 1;
        }
    }
    assert_eq!(total, clients.len() * 12);
}
