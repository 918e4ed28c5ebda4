//! Internal notes (docs/kefu-protocol.md "Desk"): agents of the business see them, live and
//! listed; the visitor never does: not pushed, not in its history, sync or resume, and they
//! take no seq of the conversation, so what the visitor sees stays gap-free. Another
//! business's agents neither see nor write them. Real binary, two workers.

mod common;

use common::kefu_app::*;
use common::ws::Ws;
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "NOTE-7f3a internal only";

/// Every frame a visitor gets passes here: no note, nothing that carries a note's text, and
/// message seqs of a conversation strictly one after the other.
struct Watch {
    last_seq: i64,
}

impl Watch {
    fn check(&mut self, f: &Value) {
        let raw = f.to_string();
        assert!(
            !raw.contains("NOTE-7f3a"),
            "a note reached the visitor: {raw}"
        );
        assert_ne!(f["method"], "note", "{raw}");
        if f["method"] == "message" {
            let s = f["seq"].as_i64().unwrap();
            assert_eq!(s, self.last_seq + 1, "gap in what the visitor saw: {raw}");
            self.last_seq = s;
        }
    }

    fn until(&mut self, ws: &mut Ws, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        loop {
            let f = recv_json(ws).unwrap_or_else(|| panic!("closed/timeout waiting for {what}"));
            self.check(&f);
            if pred(&f) {
                return f;
            }
        }
    }
}

fn seqs(v: &Value) -> Vec<i64> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

fn note(k: &Kefu, token: Option<&str>, body: Value) -> (u16, Value) {
    api(k, "POST", "/api/notes", token, &body)
}

#[test]
fn notes_reach_agents_only_and_leave_the_visitor_gap_free() {
    let k = Kefu::start(
        2,
        "rate_per_sec = 1000.0\nrate_burst = 1000.0\nmax_text_chars = 100",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
            ("other", "zed", "Zed", None),
        ],
    );
    let (alice_t, zed_t) = (
        k.agent_token("shop", "alice"),
        k.agent_token("other", "zed"),
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut zed, _) = k.agent("other", "zed");
    let (mut v, vl) = k.visitor("shop");
    let vtoken = vl["token"].as_str().unwrap().to_string();
    let mut w = Watch { last_seq: 0 };

    v.send_text(
        &json!({"method":"send","client_msg_id":"c1","kind":"text","text":"hi"}).to_string(),
    );
    let ack = w.until(&mut v, "ack", |f| f["method"] == "ack");
    let conv = ack["conv_id"].as_i64().unwrap();
    // Alice is the only one online: hers. Bob, a colleague, comes later.
    recv_until(&mut alice, "assigned", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"] == conv
    });
    let (mut bob, _) = k.agent("shop", "bob");
    w.until(&mut v, "the visitor's own message", |f| {
        f["method"] == "message" && f["text"] == "hi"
    });

    // A note: 200 with the stored note, pushed to both agents of the business.
    let (st, n) = note(&k, Some(&alice_t), json!({"conv_id": conv, "text": SECRET}));
    assert_eq!(st, 200, "{n}");
    assert_eq!(
        (n["conv_id"].as_i64(), n["agent_id"].as_str()),
        (Some(conv), Some("alice"))
    );
    for ws in [&mut alice, &mut bob] {
        let p = recv_until(ws, "note push", |m| m["method"] == "note");
        assert_eq!(p["note"]["text"], SECRET);
        assert_eq!(p["note"]["id"], n["id"]);
    }

    // The conversation goes on: the next message takes the very next seq.
    let next = say(&mut alice, Some(conv), "a1", "after the note");
    let m = w.until(&mut v, "the agent's reply", |f| {
        f["method"] == "message" && f["text"] == "after the note"
    });
    assert_eq!(m["seq"].as_i64(), Some(next));
    v.send_text(
        &json!({"method":"send","client_msg_id":"c2","kind":"text","text":"thanks"}).to_string(),
    );
    w.until(&mut v, "ack", |f| {
        f["method"] == "ack" && f["client_msg_id"] == "c2"
    });
    let last = w.last_seq.max(next + 1);

    // History (WS and HTTP), sync from the start, and a resume: 1..=last, no note.
    v.send_text(&json!({"method":"history","conv_id":conv,"limit":100}).to_string());
    let h = w.until(&mut v, "history", |f| f["method"] == "history");
    assert_eq!(seqs(&h), (1..=last).collect::<Vec<_>>());
    v.send_text(&json!({"method":"sync","conv_id":conv,"last_seq":0}).to_string());
    let s = w.until(&mut v, "sync", |f| f["method"] == "sync");
    assert_eq!(seqs(&s), (1..=last).collect::<Vec<_>>());
    let (st, hh) = api(
        &k,
        "GET",
        &format!("/api/history?conv_id={conv}"),
        Some(&vtoken),
        &Value::Null,
    );
    assert_eq!(st, 200);
    assert!(!hh.to_string().contains("NOTE-7f3a"));
    assert_eq!(seqs(&hh), (1..=last).collect::<Vec<_>>());
    drop(v);
    let (mut v2, l2) = k.visitor_with("shop", &vtoken, json!([{"conv_id": conv, "last_seq": 0}]));
    let mut w2 = Watch { last_seq: 0 };
    w2.check(&l2);
    let s = w2.until(&mut v2, "resume sync", |f| f["method"] == "sync");
    assert_eq!(seqs(&s), (1..=last).collect::<Vec<_>>());
    for f in collect(&mut v2, Duration::from_millis(300)) {
        w2.check(&f);
    }

    // Listed for the business's agents only.
    let (st, list) = api(
        &k,
        "GET",
        &format!("/api/notes?conv_id={conv}"),
        Some(&alice_t),
        &Value::Null,
    );
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["notes"].as_array().unwrap().len(), 1);
    assert_eq!(list["notes"][0]["text"], SECRET);
    let path = format!("/api/notes?conv_id={conv}");
    assert_eq!(api(&k, "GET", &path, Some(&zed_t), &Value::Null).0, 404);
    assert_eq!(api(&k, "GET", &path, Some(&vtoken), &Value::Null).0, 403);
    assert_eq!(api(&k, "GET", &path, None, &Value::Null).0, 401);
    assert_eq!(
        api(&k, "GET", "/api/notes", Some(&alice_t), &Value::Null).0,
        400
    );

    // Nobody outside the business writes one, and a visitor never does.
    assert_eq!(
        note(&k, Some(&zed_t), json!({"conv_id": conv, "text": "x"})).0,
        404
    );
    assert_eq!(
        note(&k, Some(&vtoken), json!({"conv_id": conv, "text": "x"})).0,
        403
    );
    assert_eq!(note(&k, None, json!({"conv_id": conv, "text": "x"})).0, 401);
    // ... and zed's console heard nothing of shop's note.
    for f in collect(&mut zed, Duration::from_millis(500)) {
        assert_ne!(f["method"], "note", "{f}");
    }

    // Hostile bodies: clear 400s, nothing stored.
    for bad in [
        json!({"conv_id": conv, "text": "   "}),
        json!({"conv_id": conv, "text": "x".repeat(101)}),
        json!({"conv_id": conv, "text": "bell\u{7}"}),
        json!({"conv_id": "1", "text": "x"}),
        json!({"conv_id": conv, "text": "x", "bid": "other"}),
        json!({"text": "x"}),
        json!([1, 2]),
    ] {
        let (st, e) = note(&k, Some(&alice_t), bad.clone());
        assert_eq!(st, 400, "{bad} -> {e}");
        assert_eq!(e["code"], "10005");
    }
    assert_eq!(
        note(
            &k,
            Some(&alice_t),
            json!({"conv_id": i64::MAX, "text": "x"})
        )
        .0,
        404
    );
    let (st, list) = api(&k, "GET", &path, Some(&alice_t), &Value::Null);
    assert_eq!((st, list["notes"].as_array().unwrap().len()), (200, 1));
}
