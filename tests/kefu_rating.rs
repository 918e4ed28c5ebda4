//! Satisfaction ratings (docs/kefu-protocol.md "Desk"): a visitor rates its own conversation
//! once, after it closed, 1 to 5 with an optional comment; the business's agents hear of it
//! live, another business's never. Real binary, two workers.

mod common;

use common::kefu_app::*;
use serde_json::{json, Value};
use std::time::Duration;

fn rate(k: &Kefu, token: Option<&str>, body: Value) -> (u16, Value) {
    api(k, "POST", "/api/rating", token, &body)
}

#[test]
fn a_visitor_rates_its_closed_conversation_once() {
    let k = Kefu::start(
        2,
        "rate_per_sec = 1000.0\nrate_burst = 1000.0",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
            ("other", "zed", "Zed", None),
        ],
    );
    let alice_t = k.agent_token("shop", "alice");
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut zed, _) = k.agent("other", "zed");
    let (mut v, vl) = k.visitor("shop");
    let vtoken = vl["token"].as_str().unwrap().to_string();
    say(&mut v, None, "c1", "hello");
    let a = recv_until(&mut alice, "assigned", |m| m["method"] == "assigned");
    let conv = a["conv"]["conv_id"].as_i64().unwrap();
    let (mut bob, _) = k.agent("shop", "bob");

    // Not before it closed.
    let (st, e) = rate(&k, Some(&vtoken), json!({"conv_id": conv, "score": 5}));
    assert_eq!((st, e["code"].as_str()), (409, Some("10006")), "{e}");

    alice.send_text(&json!({"method":"close","conv_id":conv}).to_string());
    recv_until(&mut v, "closed event", |m| {
        m["method"] == "message" && m["event"] == "closed"
    });

    // Someone else: another visitor of the business, an agent, nobody, another business's visitor.
    let (_, other_v) = k.visitor("shop");
    let other_vt = other_v["token"].as_str().unwrap();
    assert_eq!(
        rate(&k, Some(other_vt), json!({"conv_id": conv, "score": 1})).0,
        404
    );
    assert_eq!(
        rate(&k, Some(&alice_t), json!({"conv_id": conv, "score": 1})).0,
        403
    );
    assert_eq!(rate(&k, None, json!({"conv_id": conv, "score": 1})).0, 401);
    let (_, far) = k.visitor("other");
    let far_t = far["token"].as_str().unwrap();
    assert_eq!(
        rate(&k, Some(far_t), json!({"conv_id": conv, "score": 1})).0,
        404
    );

    // Hostile bodies.
    for bad in [
        json!({"conv_id": conv, "score": 0}),
        json!({"conv_id": conv, "score": 6}),
        json!({"conv_id": conv, "score": -1}),
        json!({"conv_id": conv, "score": 4.5}),
        json!({"conv_id": conv, "score": "5"}),
        json!({"conv_id": conv}),
        json!({"conv_id": conv, "score": 5, "comment": "x".repeat(501)}),
        json!({"conv_id": conv, "score": 5, "comment": "nul\u{0}"}),
        json!({"conv_id": conv, "score": 5, "bid": "other"}),
        json!("5"),
    ] {
        let (st, e) = rate(&k, Some(&vtoken), bad.clone());
        assert_eq!(
            (st, e["code"].as_str()),
            (400, Some("10005")),
            "{bad} -> {e}"
        );
    }
    assert_eq!(
        rate(&k, Some(&vtoken), json!({"conv_id": i64::MIN, "score": 3})).0,
        404
    );

    // The rating: stored once, pushed to the business's agents.
    let (st, r) = rate(
        &k,
        Some(&vtoken),
        json!({"conv_id": conv, "score": 4, "comment": "  快，谢谢 <b>!</b> "}),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["score"].as_i64(), r["comment"].as_str()),
        (Some(4), Some("快，谢谢 <b>!</b>"))
    );
    for ws in [&mut alice, &mut bob] {
        let p = recv_until(ws, "rated push", |m| m["method"] == "rated");
        assert_eq!(p["conv_id"].as_i64(), Some(conv));
        assert_eq!(p["score"].as_i64(), Some(4));
        assert_eq!(p["comment"], "快，谢谢 <b>!</b>");
        assert_eq!(p["agent_id"], "alice");
    }
    let (st, e) = rate(&k, Some(&vtoken), json!({"conv_id": conv, "score": 1}));
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("10006")),
        "rated twice: {e}"
    );
    for f in collect(&mut zed, Duration::from_millis(500)) {
        assert_ne!(f["method"], "rated", "another business heard of it: {f}");
    }
    // The visitor itself is told nothing beyond its answer.
    for f in collect(&mut v, Duration::from_millis(300)) {
        assert_ne!(f["method"], "rated", "{f}");
    }
}
