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
    let k = Kefu::shop_and_other(1, "");
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

/// The conversation `conv` as `agent` got it: in its login reply, or pushed as `assigned`.
fn taken(agent: &mut common::ws::Ws, login: &Value, conv: i64) -> Value {
    if let Some(c) = login["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conv_id"] == conv)
    {
        return c.clone();
    }
    recv_until(agent, "assigned", |f| {
        f["method"] == "assigned" && f["conv"]["conv_id"] == conv
    })["conv"]
        .clone()
}

/// Whether any object inside `v` (a frame) names conversation `conv`.
fn mentions(v: &Value, conv: i64) -> bool {
    match v {
        Value::Object(m) => {
            m.get("conv_id").and_then(Value::as_i64) == Some(conv)
                || m.values().any(|x| mentions(x, conv))
        }
        Value::Array(a) => a.iter().any(|x| mentions(x, conv)),
        _ => false,
    }
}

#[test]
fn an_offline_message_goes_to_the_visitors_department() {
    let k = Kefu::start(
        2,
        "rate_per_sec = 1000.0\nrate_burst = 1000.0",
        &[
            ("shop", "boss", "Boss", None),
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
            ("other", "zed", "Zed", None),
        ],
    );
    k.make_admins(&[("shop", "boss"), ("other", "zed")]);
    let boss = k.agent_token("shop", "boss");
    for d in ["sales", "support"] {
        k.admin_ok(&boss, json!({"op":"dept_save","dept_id":d,"name":d}));
    }
    k.admin_ok(
        &boss,
        json!({"op":"agent_update","agent_id":"alice","depts":["sales"]}),
    );
    k.admin_ok(
        &boss,
        json!({"op":"agent_update","agent_id":"bob","depts":["support"]}),
    );
    // Another business has a department of its own.
    let zed_t = k.agent_token("other", "zed");
    k.admin_ok(
        &zed_t,
        json!({"op":"dept_save","dept_id":"vip","name":"VIP"}),
    );
    let (mut zed, _) = k.agent("other", "zed");

    // Bob (support) is online and free; Alice (sales) is not.
    let (mut bob, _) = k.agent("shop", "bob");
    let (_v1, l1) = k.visitor_in("shop", "sales");
    let t1 = l1["token"].as_str().unwrap().to_string();
    let leave = |t: &str, b: Value| api(&k, "POST", "/api/offline", Some(t), &b);
    let (st, e) = leave(
        &t1,
        json!({"contact":"a@b.co","message":"x","dept":"no spaces"}),
    );
    assert_eq!((st, e["code"].as_str()), (400, Some("10005")), "{e}");

    // The sales visitor's message waits in the sales line: not Bob's to take.
    let (st, r) = leave(
        &t1,
        json!({"contact":"+86 138 0013 8000","message":"price for 300 boxes?","dept":"sales"}),
    );
    assert_eq!(st, 200, "{r}");
    let c1 = r["conv_id"].as_i64().unwrap();
    bob.send_text(&json!({"method":"conversations"}).to_string());
    let view = recv_method(&mut bob, "conversations");
    let ids = |v: &Value, key: &str| -> Vec<i64> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["conv_id"].as_i64())
            .collect()
    };
    assert!(
        !ids(&view, "queue").contains(&c1) && !ids(&view, "conversations").contains(&c1),
        "{view}"
    );
    // The same visitor again, naming another department: it joins its open conversation,
    // which keeps its line.
    let (st, r) = leave(
        &t1,
        json!({"contact":"+86 138 0013 8000","message":"and delivery?","dept":"support"}),
    );
    assert_eq!((st, r["conv_id"].as_i64()), (200, Some(c1)), "{r}");

    // Another business's department is not this one's: that message goes to the line
    // without a department, where Bob gets it at once. Everything Bob heard before it
    // (the fence) said nothing of the sales conversation.
    let (_v2, l2) = k.visitor("shop");
    let t2 = l2["token"].as_str().unwrap();
    let (st, r) = leave(
        t2,
        json!({"contact":"c@d.co","message":"hello?","dept":"vip"}),
    );
    assert_eq!(st, 200, "{r}");
    let c2 = r["conv_id"].as_i64().unwrap();
    let mut heard = Vec::new();
    let a = recv_until(&mut bob, "assigned c2", |f| {
        heard.push(f.clone());
        f["method"] == "assigned" && f["conv"]["conv_id"] == c2
    });
    assert_eq!(a["conv"]["dept_id"], Value::Null, "{a}");
    assert!(!heard.iter().any(|f| mentions(f, c1)), "{heard:?}");

    // A signed visitor of support: its page sends the signed department with the message.
    let (vid, ts) = ("u77", unix_now());
    let sig = identity_sig_dept(
        &k.business_secret("shop"),
        "shop",
        vid,
        "Wang",
        ts,
        "support",
    );
    let mut v3 = common::ws::Ws::connect(&k.addr(), "/ws");
    v3.send_text(
        &json!({"method":"visitor_login","bid":"shop","visitor_id":vid,"name":"Wang","ts":ts,"sig":sig,"dept":"support"})
            .to_string(),
    );
    let l3 = recv_method(&mut v3, "visitor_login");
    assert_eq!(
        (l3["verified"].as_bool(), l3["dept"].as_str()),
        (Some(true), Some("support"))
    );
    let (st, r) = leave(
        l3["token"].as_str().unwrap(),
        json!({"contact":"w@e.cn","message":"my invoice","dept":"support"}),
    );
    assert_eq!(st, 200, "{r}");
    let c3 = r["conv_id"].as_i64().unwrap();
    let a = recv_until(&mut bob, "assigned c3", |f| {
        f["method"] == "assigned" && f["conv"]["conv_id"] == c3
    });
    assert_eq!(a["conv"]["dept_id"], "support", "{a}");

    // Alice of sales comes online: the sales message is hers, with the contact left.
    let (mut alice, al) = k.agent("shop", "alice");
    let c = taken(&mut alice, &al, c1);
    assert_eq!(
        (c["dept_id"].as_str(), c["visitor"]["contact"].as_str()),
        (Some("sales"), Some("+86 138 0013 8000")),
        "{c}"
    );

    // The other business saw none of it.
    zed.send_text(&json!({"method":"conversations"}).to_string());
    let z = recv_method(&mut zed, "conversations");
    assert!(
        ids(&z, "queue").is_empty() && ids(&z, "conversations").is_empty(),
        "{z}"
    );
}
