//! Working hours and offline messages (docs/kefu-protocol.md "Desk", docs/web.md): the
//! admin sets the hours in the business's time zone, anyone reads whether it is open; a
//! visitor leaves a message with its contact while nobody is online, it waits in the queue
//! with that contact, and the agent's reply is there when the visitor comes back.

mod common;

use common::kefu_app::*;
use serde_json::{json, Value};

fn hours(k: &Kefu, bid: &str) -> (u16, Value) {
    api(
        k,
        "GET",
        &format!("/api/hours?bid={bid}"),
        None,
        &Value::Null,
    )
}

fn week(day: Value) -> Value {
    json!([
        day.clone(),
        day.clone(),
        day.clone(),
        day.clone(),
        day.clone(),
        day.clone(),
        day
    ])
}

#[test]
fn working_hours_are_set_by_the_business_and_read_by_anyone() {
    let k = Kefu::start(
        1,
        "",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
            ("other", "zed", "Zed", None),
        ],
    );
    for (bid, id) in [("shop", "alice"), ("other", "zed")] {
        k.cli(&["agent", "set", "--bid", bid, "--id", id, "--role", "admin"]);
    }
    let (alice, zed) = (
        k.agent_token("shop", "alice"),
        k.agent_token("other", "zed"),
    );
    // A plain agent may not set them.
    let bob = k.agent_token("shop", "bob");
    let (st, e) = api(&k, "POST", "/api/hours", Some(&bob), &json!({}));
    assert_eq!((st, e["code"].as_str()), (403, Some("10004")), "{e}");
    // None set: open.
    let (st, h) = hours(&k, "shop");
    assert_eq!(st, 200, "{h}");
    assert_eq!(
        (h["open"].as_bool(), h["hours"].is_null()),
        (Some(true), true)
    );
    // Closed every day: offline, and nothing changes within a week.
    let set = |t: &str, b: Value| api(&k, "POST", "/api/hours", Some(t), &b);
    let (st, h) = set(&alice, json!({"tz":"Asia/Shanghai","days":week(json!([]))}));
    assert_eq!(st, 200, "{h}");
    assert_eq!(
        (h["open"].as_bool(), h["next_change"].is_null()),
        (Some(false), true)
    );
    let (_, h) = hours(&k, "shop");
    assert_eq!(
        (h["open"].as_bool(), h["hours"]["tz"].as_str()),
        (Some(false), Some("Asia/Shanghai"))
    );
    // Another business's hours are its own.
    assert_eq!(hours(&k, "other").1["open"].as_bool(), Some(true));
    let (st, _) = set(
        &zed,
        json!({"tz":"UTC","days":week(json!([["00:00","24:00"]]))}),
    );
    assert_eq!(st, 200);
    assert_eq!(hours(&k, "shop").1["open"].as_bool(), Some(false));
    assert_eq!(hours(&k, "other").1["open"].as_bool(), Some(true));
    // Round the clock; then cleared.
    let (_, h) = set(
        &alice,
        json!({"tz":"Europe/Berlin","days":week(json!([["00:00","12:00"],["12:00","24:00"]]))}),
    );
    assert_eq!(
        (h["open"].as_bool(), h["next_change"].is_null()),
        (Some(true), true),
        "{h}"
    );
    assert_eq!(
        h["hours"]["days"][3],
        json!([["00:00", "12:00"], ["12:00", "24:00"]])
    );
    let (st, h) = set(&alice, json!({}));
    assert_eq!((st, h["hours"].is_null()), (200, true));

    // Who may not, and what is refused.
    let (_, vl) = k.visitor("shop");
    let vt = vl["token"].as_str().unwrap();
    assert_eq!(set(vt, json!({})).0, 403);
    assert_eq!(api(&k, "POST", "/api/hours", None, &json!({})).0, 401);
    assert_eq!(hours(&k, "nosuch").0, 404);
    assert_eq!(hours(&k, "a%20b").0, 400);
    for bad in [
        json!({"tz":"Mars/Base","days":week(json!([]))}),
        json!({"tz":"../../../etc/passwd","days":week(json!([]))}),
        json!({"tz":"UTC"}),
        json!({"tz":"UTC","days":[[]]}),
        json!({"tz":"UTC","days":week(json!([["18:00","09:00"]]))}),
        json!({"tz":"UTC","days":week(json!([["9:00","18:00"]]))}),
        json!({"tz":"UTC","days":week(json!([["09:00","24:01"]]))}),
        json!({"tz":"UTC","days":week(json!([["01:00","02:00"],["03:00","04:00"],["05:00","06:00"],["07:00","08:00"],["09:00","10:00"]]))}),
        json!({"tz":"UTC","days":week(json!([]),),"bid":"other"}),
    ] {
        let (st, e) = set(&alice, bad.clone());
        assert_eq!(
            (st, e["code"].as_str()),
            (400, Some("10005")),
            "{bad} -> {e}"
        );
    }
    assert_eq!(
        hours(&k, "shop").1["hours"],
        Value::Null,
        "nothing refused was stored"
    );
}

#[test]
fn an_offline_message_waits_with_its_contact_and_the_reply_waits_for_the_visitor() {
    let k = Kefu::start(
        2,
        "rate_per_sec = 1000.0\nrate_burst = 1000.0",
        &[
            ("shop", "alice", "Alice", None),
            ("other", "zed", "Zed", None),
        ],
    );
    let alice_t = k.agent_token("shop", "alice");
    let (mut v, vl) = k.visitor("shop");
    assert_eq!(vl["agents_online"], false);
    let vt = vl["token"].as_str().unwrap().to_string();
    let leave = |t: Option<&str>, b: Value| api(&k, "POST", "/api/offline", t, &b);

    // Refused: wrong callers, bad contacts, empty messages, extra fields.
    assert_eq!(
        leave(Some(&alice_t), json!({"contact":"a@b.co","message":"x"})).0,
        403
    );
    assert_eq!(
        leave(None, json!({"contact":"a@b.co","message":"x"})).0,
        401
    );
    for bad in [
        json!({"contact":"call me maybe","message":"x"}),
        json!({"contact":"","message":"x"}),
        json!({"contact":"a@b.co","message":"  "}),
        json!({"contact":"a@b.co"}),
        json!({"contact":"a@b.co","message":"x","name":"two\nlines"}),
        json!({"contact":"a@b.co","message":"x","name":"n".repeat(65)}),
        json!({"contact":"a@b.co","message":"x","bid":"other"}),
    ] {
        let (st, e) = leave(Some(&vt), bad.clone());
        assert_eq!(
            (st, e["code"].as_str()),
            (400, Some("10005")),
            "{bad} -> {e}"
        );
    }

    let (st, r) = leave(
        Some(&vt),
        json!({"name":"李雷","contact":"+86 138-0013-8000","message":"请回电，谢谢"}),
    );
    assert_eq!(st, 200, "{r}");
    let conv = r["conv_id"].as_i64().unwrap();
    // The visitor's page hears its own message (its other tabs too).
    let m = recv_until(&mut v, "own message", |f| f["method"] == "message");
    assert_eq!(
        (m["conv_id"].as_i64(), m["text"].as_str()),
        (Some(conv), Some("请回电，谢谢"))
    );
    assert_eq!(m["sender_name"], "李雷");
    drop(v); // the visitor leaves

    // Alice comes online: the conversation is hers, with the name and contact left.
    let (mut alice, login) = k.agent("shop", "alice");
    let a = if login["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["conv_id"] == conv)
    {
        login["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["conv_id"] == conv)
            .unwrap()
            .clone()
    } else {
        recv_until(&mut alice, "assigned", |f| {
            f["method"] == "assigned" && f["conv"]["conv_id"] == conv
        })["conv"]
            .clone()
    };
    assert_eq!(a["visitor"]["contact"], "+86 138-0013-8000", "{a}");
    assert_eq!(a["visitor"]["name"], "李雷");
    let reply = say(&mut alice, Some(conv), "r1", "您好，稍后致电");

    // Another business's agent cannot read it.
    let zed_t = k.agent_token("other", "zed");
    let (st, _) = api(
        &k,
        "GET",
        &format!("/api/history?conv_id={conv}"),
        Some(&zed_t),
        &Value::Null,
    );
    assert_eq!(st, 404);

    // The visitor comes back: its conversation and the reply are there.
    let (mut v2, l2) = k.visitor_with("shop", &vt, json!([{"conv_id": conv, "last_seq": 0}]));
    assert_eq!(l2["conv"]["conv_id"].as_i64(), Some(conv), "{l2}");
    let s = recv_method(&mut v2, "sync");
    let texts: Vec<&str> = s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"请回电，谢谢") && texts.contains(&"您好，稍后致电"),
        "{s}"
    );
    assert_eq!(s["last_seq"].as_i64(), Some(reply));
}
