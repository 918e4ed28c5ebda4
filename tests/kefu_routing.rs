//! Routing against the real binary with two workers: least-busy and round-robin, the
//! per-agent maximum, the FIFO queue with live positions, draining when capacity frees,
//! leave-a-message while nobody is online, the claim race, transfer, close, typing, read
//! receipts and unread counts.

mod common;

use common::kefu_app::*;
use common::ws::Ws;
use serde_json::{json, Value};
use std::time::Duration;

/// A visitor that has sent its first message: (ws, conv_id, its fate).
fn open_conv(k: &Kefu, text: &str) -> (Ws, i64, Value) {
    let (mut v, _) = k.visitor("shop");
    let (conv, fate) = first_message(&mut v, text);
    (v, conv, fate)
}

#[test]
fn least_busy_max_queue_positions_and_drain() {
    let k = Kefu::start(
        2,
        "max_per_agent = 2",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
        ],
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut v1, c1, f) = open_conv(&k, "hello 1");
    assert_eq!(f["agent_id"], "alice");
    let a = assigned_to(&mut alice, c1);
    assert_eq!(a["conv"]["visitor"]["page_url"], "https://shop/p");
    assert_eq!(a["conv"]["visitor"]["referrer"], "https://ref/");
    assert_eq!(a["conv"]["visitor"]["ip"], "127.0.0.1");
    assert!(a["conv"]["visitor"]["first_seen"].as_i64().unwrap() > 0);
    let (mut v2, c2, f_v2) = open_conv(&k, "hello 2");
    assert_eq!(f_v2["agent_id"], "alice");
    assigned_to(&mut alice, c2);

    // Bob comes online: least-busy sends the next two to him (0 < 2, then 1 < 2).
    let (mut bob, _) = k.agent("shop", "bob");
    let (mut v3, c3, f_v3) = open_conv(&k, "hello 3");
    assert_eq!(f_v3["agent_id"], "bob");
    let (mut v4, c4, f_v4) = open_conv(&k, "hello 4");
    assert_eq!(f_v4["agent_id"], "bob");
    assigned_to(&mut bob, c3);
    assigned_to(&mut bob, c4);

    // Everyone is at the maximum: FIFO queue with positions.
    let (mut v5, c5, f_v5) = open_conv(&k, "hello 5");
    let f = f_v5;
    assert_eq!(
        (f["method"].as_str(), f["position"].as_i64()),
        (Some("waiting"), Some(1))
    );
    assert_eq!(f["agents_online"], true);
    let (mut v6, c6, f_v6) = open_conv(&k, "hello 6");
    let f = f_v6;
    assert_eq!(
        (f["position"].as_i64(), f["conv_id"].as_i64()),
        (Some(2), Some(c6))
    );
    let q = recv_until(&mut alice, "queue of 2", |m| {
        m["method"] == "queue_update" && m["queue_len"] == 2
    });
    assert_eq!(q["queue"][0]["conv_id"], c5);
    assert_eq!(q["queue"][1]["conv_id"], c6);
    assert_eq!(q["queue"][1]["last_message"]["text"], "hello 6");

    // Bob closes one: the oldest waiting conversation takes the slot, the next moves up.
    bob.send_text(&json!({"method":"close","conv_id":c3}).to_string());
    let closed = recv_until(&mut v3, "closed event", |m| {
        m["method"] == "message" && m["event"] == "closed"
    });
    assert_eq!(closed["from"], "system");
    let un = recv_until(&mut bob, "unassigned", |m| m["method"] == "unassigned");
    assert_eq!(
        (un["conv_id"].as_i64(), un["reason"].as_str()),
        (Some(c3), Some("closed"))
    );
    let f = recv_until(&mut v5, "assigned", |m| m["method"] == "assigned");
    assert_eq!(f["agent_id"], "bob");
    assigned_to(&mut bob, c5);
    recv_until(&mut v6, "position 1", |m| {
        m["method"] == "waiting" && m["position"] == 1
    });

    // A waiting visitor gives up: the queue empties.
    v6.send_text(r#"{"method":"close"}"#);
    recv_until(&mut alice, "empty queue", |m| {
        m["method"] == "queue_update" && m["queue_len"] == 0
    });
    // Closing someone else's conversation or a closed one is refused.
    bob.send_text(&json!({"method":"close","conv_id":c1}).to_string());
    assert_eq!(recv_error(&mut bob)["code"], "10006");
    bob.send_text(&json!({"method":"close","conv_id":c3}).to_string());
    assert_eq!(recv_error(&mut bob)["code"], "10006");
    // A closed conversation's visitor starts a new one with its next message.
    say(&mut v3, None, "again", "back again");
    let m = recv_until(&mut v3, "message", |m| {
        m["method"] == "message" && m["text"] == "back again"
    });
    assert_ne!(m["conv_id"].as_i64(), Some(c3));
    let _ = (c2, c4, &mut v1, &mut v2, &mut v4);
}

#[test]
fn round_robin_policy() {
    let k = Kefu::start(
        2,
        "policy = \"round_robin\"\nmax_per_agent = 5",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
        ],
    );
    let (_alice, _) = k.agent("shop", "alice");
    let (_v1, _, f1) = open_conv(&k, "1");
    let (_v2, _, f2) = open_conv(&k, "2");
    assert_eq!(f1["agent_id"], "alice");
    assert_eq!(f2["agent_id"], "alice");
    let (_bob, _) = k.agent("shop", "bob");
    let (_v3, _, f_v3) = open_conv(&k, "3");
    assert_eq!(f_v3["agent_id"], "bob");
    // Least-busy would pick bob again (1 < 2); round-robin goes back to alice.
    let (_v4, _, f_v4) = open_conv(&k, "4");
    assert_eq!(f_v4["agent_id"], "alice");
    let (_v5, _, f_v5) = open_conv(&k, "5");
    assert_eq!(f_v5["agent_id"], "bob");
}

#[test]
fn offline_messages_go_to_the_next_agent() {
    let k = Kefu::start(2, "", &[("shop", "alice", "Alice", None)]);
    let (mut v1, c1, f_v1) = open_conv(&k, "anyone there?");
    let f = f_v1;
    assert_eq!(
        (f["method"].as_str(), f["agents_online"].as_bool()),
        (Some("waiting"), Some(false))
    );
    say(&mut v1, None, "second", "please call me back");
    let (v2, c2, f_v2) = open_conv(&k, "me too");
    assert_eq!(f_v2["position"], 2);
    drop(v2); // leaves; its message stays.

    let (mut alice, login) = k.agent("shop", "alice");
    let convs = login["conversations"].as_array().unwrap();
    let ids: Vec<i64> = convs
        .iter()
        .map(|c| c["conv_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![c1, c2]);
    assert_eq!(convs[0]["unread"], 2);
    assert_eq!(convs[1]["unread"], 1);
    assert_eq!(convs[1]["visitor"]["online"], false);
    let f = recv_until(&mut v1, "assigned", |m| m["method"] == "assigned");
    assert_eq!(f["agent_id"], "alice");
    alice.send_text(&json!({"method":"history","conv_id":c1}).to_string());
    let h = recv_method(&mut alice, "history");
    let texts: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        vec![
            "anyone there?",
            "please call me back",
            "Alice joined the conversation"
        ]
    );
    // Read receipt: unread drops to 0 and the visitor hears it.
    alice.send_text(&json!({"method":"read","conv_id":c1,"seq":3}).to_string());
    let u = recv_method(&mut alice, "unread");
    assert_eq!(
        (u["conv_id"].as_i64(), u["unread"].as_i64()),
        (Some(c1), Some(0))
    );
    let r = recv_method(&mut v1, "read");
    assert_eq!(
        (r["by"].as_str(), r["seq"].as_i64()),
        (Some("agent"), Some(3))
    );
    // Typing both ways.
    v1.send_text(r#"{"method":"typing","typing":true}"#);
    let t = recv_method(&mut alice, "typing");
    assert_eq!(
        (t["from"].as_str(), t["conv_id"].as_i64()),
        (Some("visitor"), Some(c1))
    );
    alice.send_text(&json!({"method":"typing","conv_id":c1,"typing":false}).to_string());
    let t = recv_method(&mut v1, "typing");
    assert_eq!(
        (t["from"].as_str(), t["typing"].as_bool()),
        (Some("agent"), Some(false))
    );
    // Visitor reads the agent's reply.
    let seq = say(&mut alice, Some(c1), "a1", "hi, how can I help?");
    v1.send_text(&json!({"method":"read","conv_id":c1,"seq":seq}).to_string());
    let r = recv_method(&mut alice, "read");
    assert_eq!(
        (r["by"].as_str(), r["seq"].as_i64()),
        (Some("visitor"), Some(seq))
    );
}

#[test]
fn claim_race_has_exactly_one_winner() {
    // max_per_agent = 0: nothing is auto-assigned, every conversation waits to be claimed.
    let k = Kefu::start(
        2,
        "max_per_agent = 0",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
        ],
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut bob, _) = k.agent("shop", "bob");
    let mut convs = Vec::new();
    let mut visitors = Vec::new();
    for i in 0..12 {
        let (v, c, f_v) = open_conv(&k, &format!("q{i}"));
        assert_eq!(f_v["method"], "waiting");
        convs.push(c);
        visitors.push(v);
    }
    // Both claim every conversation at the same time.
    let ca = convs.clone();
    let cb = convs.clone();
    let ta = std::thread::spawn(move || {
        for c in &ca {
            alice.send_text(&json!({"method":"claim","conv_id":c}).to_string());
        }
        alice
    });
    let tb = std::thread::spawn(move || {
        for c in &cb {
            bob.send_text(&json!({"method":"claim","conv_id":c}).to_string());
        }
        bob
    });
    let mut alice = ta.join().unwrap();
    let mut bob = tb.join().unwrap();
    let outcome = |ws: &mut Ws| {
        let mut won = Vec::new();
        let mut lost = 0;
        while won.len() + lost < 12 {
            let m = recv_json(ws).expect("claim answers");
            if m["method"] == "assigned" {
                won.push(m["conv"]["conv_id"].as_i64().unwrap());
            } else if m["method"] == "claim" && m["code"] == "10006" {
                lost += 1;
            }
        }
        won
    };
    let wa = outcome(&mut alice);
    let wb = outcome(&mut bob);
    let mut all: Vec<i64> = wa.iter().chain(wb.iter()).copied().collect();
    all.sort();
    assert_eq!(all, convs, "alice won {wa:?}, bob won {wb:?}");
    // Each visitor was told about exactly its one winner.
    for (v, c) in visitors.iter_mut().zip(&convs) {
        let f = recv_until(v, "assigned", |m| m["method"] == "assigned");
        let winner = if wa.contains(c) { "alice" } else { "bob" };
        assert_eq!(f["agent_id"], winner);
    }
    // Claiming a taken or unknown conversation.
    alice.send_text(&json!({"method":"claim","conv_id":convs[0]}).to_string());
    assert_eq!(recv_error(&mut alice)["code"], "10006");
    alice.send_text(r#"{"method":"claim","conv_id":999999}"#);
    assert_eq!(recv_error(&mut alice)["code"], "10007");
}

#[test]
fn transfer_between_agents() {
    let k = Kefu::start(
        2,
        "",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
            ("shop", "carol", "Carol", None),
        ],
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut v, c, f_v) = open_conv(&k, "help");
    assert_eq!(f_v["agent_id"], "alice");
    let (mut bob, _) = k.agent("shop", "bob");
    // Carol is offline.
    alice.send_text(&json!({"method":"transfer","conv_id":c,"to":"carol"}).to_string());
    assert_eq!(recv_error(&mut alice)["code"], "10010");
    // Bob cannot transfer what is not his.
    bob.send_text(&json!({"method":"transfer","conv_id":c,"to":"alice"}).to_string());
    assert_eq!(recv_error(&mut bob)["code"], "10006");
    alice.send_text(&json!({"method":"transfer","conv_id":c,"to":"bob"}).to_string());
    let un = recv_until(&mut alice, "unassigned", |m| m["method"] == "unassigned");
    assert_eq!(
        (un["reason"].as_str(), un["to"].as_str()),
        (Some("transferred"), Some("bob"))
    );
    let a = assigned_to(&mut bob, c);
    assert_eq!(a["conv"]["agent_id"], "bob");
    let f = recv_until(&mut v, "assigned", |m| m["method"] == "assigned");
    assert_eq!(f["agent_id"], "bob");
    let e = recv_until(&mut v, "event", |m| m["event"] == "transferred");
    assert_eq!(e["text"], "Alice transferred the conversation to Bob");
    // Bob talks; Alice no longer can.
    say(&mut bob, Some(c), "b1", "Bob here");
    let m = recv_until(&mut v, "message", |m| {
        m["method"] == "message" && m["text"] == "Bob here"
    });
    assert_eq!(m["sender_name"], "Bob");
    alice.send_text(
        &json!({"method":"send","conv_id":c,"client_msg_id":"a1","kind":"text","text":"me?"})
            .to_string(),
    );
    let e = recv_error(&mut alice);
    assert_eq!(
        (e["code"].as_str(), e["client_msg_id"].as_str()),
        (Some("10006"), Some("a1"))
    );
    // The visitor's next message reaches Bob only.
    say(&mut v, None, "v2", "thanks");
    recv_until(&mut bob, "message", |m| {
        m["method"] == "message" && m["text"] == "thanks"
    });
    assert!(collect(&mut alice, Duration::from_millis(400))
        .iter()
        .all(|m| m["text"] != "thanks"));
}
