//! Issue 11, items 9 and 10 against the real binary: a retried `client_msg_id` never acks or
//! pushes a message of another conversation, and a verified visitor keeps its
//! integrator-signed name.

mod common;

use common::http::http_json;
use common::kefu_app::*;
use common::ws::Ws;
use serde_json::{json, Value};

/// Send a text message; returns its ack or error frame.
fn send(ws: &mut Ws, conv: Option<i64>, cmid: &str, text: &str) -> Value {
    let mut m = json!({"method":"send","client_msg_id":cmid,"kind":"text","text":text});
    if let Some(c) = conv {
        m["conv_id"] = json!(c);
    }
    ws.send_text(&m.to_string());
    recv_until(ws, "ack or error", |v| {
        (v["method"] == "ack" || v.get("code").is_some()) && v["client_msg_id"] == cmid
    })
}

/// A visitor's first message opens a conversation; waits until `agent` is told it is theirs.
fn open_conv(k: &Kefu, agent: &mut Ws, text: &str) -> (Ws, i64) {
    let (mut v, _) = k.visitor("shop");
    let a = send(&mut v, None, "v1", text);
    assert_eq!(a["method"], "ack", "{a}");
    let conv = a["conv_id"].as_i64().unwrap();
    recv_until(agent, "assigned", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"] == conv
    });
    (v, conv)
}

/// The next agent message a visitor receives (a live push).
fn next_agent_text(v: &mut Ws) -> (String, String) {
    let m = recv_until(v, "agent message", |m| {
        m["method"] == "message" && m["from"] == "agent"
    });
    (
        m["sender_id"].as_str().unwrap().to_string(),
        m["text"].as_str().unwrap().to_string(),
    )
}

#[test]
fn retried_client_msg_id_stays_in_its_conversation() {
    let k = Kefu::start(
        1,
        "",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
        ],
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (_v1, c1) = open_conv(&k, &mut alice, "hello from v1");
    let (mut v2, c2) = open_conv(&k, &mut alice, "hello from v2");

    // The same client_msg_id in two of alice's conversations: two messages, each in its own.
    let a = send(&mut alice, Some(c1), "dup", "for v1");
    assert_eq!(
        (a["method"].as_str(), a["conv_id"].as_i64()),
        (Some("ack"), Some(c1))
    );
    let a = send(&mut alice, Some(c2), "dup", "for v2");
    assert_eq!(
        (a["method"].as_str(), a["conv_id"].as_i64()),
        (Some("ack"), Some(c2)),
        "acked a message of another conversation: {a}"
    );
    assert_eq!(next_agent_text(&mut v2).1, "for v2");
    // A real retry in the same conversation is still idempotent.
    let again = send(&mut alice, Some(c2), "dup", "for v2");
    assert_eq!(
        (again["conv_id"].clone(), again["seq"].clone()),
        (a["conv_id"].clone(), a["seq"].clone())
    );

    // Bob's visitor: alice's retried id gets her nothing there, and the visitor hears nothing
    // of her (bob's next message is the first agent message it receives).
    let (mut bob, _) = k.agent("shop", "bob");
    let (mut v3, c3) = open_conv(&k, &mut bob, "hello from v3");
    let e = send(&mut alice, Some(c3), "dup", "for v3");
    assert_eq!(e["code"], "10006", "{e}");
    let a = send(&mut bob, Some(c3), "b1", "bob here");
    assert_eq!(a["method"], "ack");
    assert_eq!(
        next_agent_text(&mut v3),
        ("bob".to_string(), "bob here".to_string())
    );
}

#[test]
fn verified_visitor_keeps_its_signed_name() {
    let k = Kefu::start(1, "", &[("shop", "alice", "Alice", None)]);
    let secret = k.business_secret("shop");
    let now = unix_now();
    let sig = identity_sig(&secret, "shop", "u42", "Zhang", now);
    let mut ws = Ws::connect(&k.addr(), "/ws");
    ws.send_text(&json!({"method":"visitor_login","bid":"shop","visitor_id":"u42","name":"Zhang","ts":now,"sig":sig}).to_string());
    let l = recv_method(&mut ws, "visitor_login");
    assert_eq!(l["verified"], true);
    let token = l["token"].as_str().unwrap().to_string();
    drop(ws);

    // Back with the (verified) token and a name of its own choosing.
    let mut ws = Ws::connect(&k.addr(), "/ws");
    ws.send_text(
        &json!({"method":"visitor_login","bid":"shop","token":token,"name":"Mallory"}).to_string(),
    );
    let l = recv_method(&mut ws, "visitor_login");
    assert_eq!(l["verified"], true);
    let a = send(&mut ws, None, "c1", "hi");
    assert_eq!(a["method"], "ack", "{a}");
    let conv = a["conv_id"].as_i64().unwrap();
    let auth = format!("Bearer {token}");
    let (st, h) = http_json(
        &k.addr(),
        "GET",
        &format!("/api/history?conv_id={conv}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(st, 200, "{h}");
    let names: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["from"] == "visitor")
        .map(|m| m["sender_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Zhang"]);
    // Agents see the verified name too.
    let (_alice, login) = k.agent("shop", "alice");
    let shown: Vec<&Value> = login["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .chain(login["queue"].as_array().unwrap())
        .collect();
    assert!(
        shown
            .iter()
            .any(|c| c["visitor"]["name"] == "Zhang" || c["visitor_name"] == "Zhang"),
        "{login}"
    );
    assert!(!login.to_string().contains("Mallory"), "{login}");
}
