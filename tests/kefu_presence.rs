//! Live presence over the WebSocket protocol, with two workers (agents and visitors land on
//! either): the business's availability and the agent's presence pushed to visitors, the
//! visitor's presence to agents, and an absent agent's conversation requeued after
//! `agent_away_grace`, then taken by the next agent who comes online.

mod common;

use common::kefu_app::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn presence(m: &Value, agent: &str, online: bool) -> bool {
    m["method"] == "agent_presence" && m["agent_id"] == agent && m["online"] == online
}

#[test]
fn presence_is_pushed_both_ways_and_an_absent_agent_is_requeued() {
    let k = Kefu::start(
        2,
        "agent_away_grace = 1",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
        ],
    );
    // Nobody online: the visitor starts in leave-a-message mode.
    let (mut v, login) = k.visitor("shop");
    assert_eq!(login["agents_online"], false, "{login}");
    assert_eq!(login["agent_online"], false, "{login}");

    // Alice comes online: the visitor hears it at once (well within a second).
    let t0 = Instant::now();
    let (mut alice, _) = k.agent("shop", "alice");
    let p = recv_until(&mut v, "alice online", |m| presence(m, "alice", true));
    assert_eq!(p["agents_online"], true, "{p}");
    assert_eq!(p["agent_name"], "Alice", "{p}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());

    // The visitor's conversation goes to alice.
    let seq = say(&mut v, None, "c1", "hello");
    assert!(seq > 0);
    let a = recv_until(&mut alice, "assigned", |m| m["method"] == "assigned");
    let conv = a["conv"]["conv_id"].as_i64().unwrap();

    // A second visitor's arrival and departure reach the agent.
    let (v2, l2) = k.visitor("shop");
    let vid2 = l2["visitor_id"].as_str().unwrap().to_string();
    let on = recv_until(&mut alice, "visitor online", |m| {
        m["method"] == "visitor_presence" && m["visitor_id"] == vid2.as_str()
    });
    assert_eq!(on["online"], true, "{on}");
    drop(v2);
    let off = recv_until(&mut alice, "visitor offline", |m| {
        m["method"] == "visitor_presence" && m["visitor_id"] == vid2.as_str()
    });
    assert_eq!(off["online"], false, "{off}");

    // A reconnecting visitor learns its agent is online.
    let token = login["token"].as_str().unwrap().to_string();
    let (v3, l3) = k.visitor_with("shop", &token, serde_json::json!([]));
    assert_eq!(l3["agent_online"], true, "{l3}");
    assert_eq!(l3["conv"]["conv_id"], conv, "{l3}");
    drop(v3);

    // Alice leaves: the visitor hears she is gone and the business is offline ...
    drop(alice);
    let p = recv_until(&mut v, "alice offline", |m| presence(m, "alice", false));
    assert_eq!(p["agents_online"], false, "{p}");
    // ... and after the grace period the conversation is back in the queue (an event line,
    // then its place in an unattended queue).
    let ev = recv_until(&mut v, "requeued event", |m| {
        m["method"] == "message" && m["event"] == "requeued"
    });
    assert_eq!(ev["conv_id"], conv, "{ev}");
    // Typed, so pages can say it in their language; `text` stays for other clients.
    assert_eq!(ev["args"]["type"], "requeued", "{ev}");
    assert_eq!(ev["args"]["agent_id"], "alice", "{ev}");
    assert_eq!(ev["args"]["agent_name"], "Alice", "{ev}");
    assert!(ev["text"].as_str().unwrap().contains("Alice"), "{ev}");
    let w = recv_until(&mut v, "waiting", |m| m["method"] == "waiting");
    assert_eq!(w["conv_id"], conv, "{w}");
    assert_eq!(w["agents_online"], false, "{w}");

    // Bob comes online and gets it.
    let (mut bob, _) = k.agent("shop", "bob");
    let a = recv_until(&mut bob, "assigned to bob", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"] == conv
    });
    assert_eq!(a["conv"]["agent_id"], "bob", "{a}");
    let to_v = recv_until(&mut v, "visitor assigned", |m| m["method"] == "assigned");
    assert_eq!(to_v["agent_id"], "bob", "{to_v}");
    let joined = recv_until(&mut v, "joined event", |m| m["event"] == "assigned");
    assert_eq!(
        joined["args"],
        serde_json::json!({"type":"assigned","agent_id":"bob","agent_name":"Bob"}),
        "{joined}"
    );
}

#[test]
fn an_agent_back_within_the_grace_period_keeps_its_conversations() {
    let k = Kefu::start(
        2,
        "agent_away_grace = 2",
        &[("shop", "alice", "Alice", None)],
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut v, _) = k.visitor("shop");
    say(&mut v, None, "c1", "hi");
    let a = recv_until(&mut alice, "assigned", |m| m["method"] == "assigned");
    let conv = a["conv"]["conv_id"].as_i64().unwrap();
    drop(alice);
    recv_until(&mut v, "alice offline", |m| presence(m, "alice", false));
    // A reload: back well before the grace period ends.
    let (_alice, login) = k.agent("shop", "alice");
    assert_eq!(login["conversations"][0]["conv_id"], conv, "{login}");
    recv_until(&mut v, "alice online", |m| presence(m, "alice", true));
    let later = collect(&mut v, Duration::from_secs(3));
    assert!(
        !later
            .iter()
            .any(|m| m["event"] == "requeued" || m["method"] == "waiting"),
        "{later:?}"
    );
}
