//! Departments (issue 18, point 1) against the real binary with two workers, over real
//! WebSockets: a visitor picks a department (at login, or signed with its identity), its
//! conversation goes only to that department's agents, each department queues on its own
//! with its own positions and is broadcast to its own agents' group, only members claim,
//! transfer to a department, membership changes taking effect on live sessions, and another
//! business never seeing a department.

mod common;

use common::kefu_app::*;
use common::ws::Ws;
use serde_json::{json, Value};
use std::time::Duration;

/// A visitor of `dept` that has sent its first message: (ws, conv_id, its fate).
fn open_in(k: &Kefu, bid: &str, dept: &str, text: &str) -> (Ws, i64, Value) {
    let (mut v, l) = k.visitor_in(bid, dept);
    assert_eq!(l["dept"], dept, "{l}");
    let (conv, fate) = first_message(&mut v, text);
    (v, conv, fate)
}

/// Shop with admin boss and agents alice (sales) and bob (support); returns boss's token.
fn shop(k: &Kefu) -> String {
    k.cli(&[
        "agent", "set", "--bid", "shop", "--id", "boss", "--role", "admin",
    ]);
    let boss = k.agent_token("shop", "boss");
    k.admin_ok(
        &boss,
        json!({"op":"dept_save","dept_id":"sales","name":"Sales 销售"}),
    );
    k.admin_ok(
        &boss,
        json!({"op":"dept_save","dept_id":"support","name":"Support"}),
    );
    k.admin_ok(
        &boss,
        json!({"op":"agent_update","agent_id":"alice","depts":["sales"]}),
    );
    let st = k.admin_ok(
        &boss,
        json!({"op":"agent_update","agent_id":"bob","depts":["support"]}),
    );
    let depts: Vec<(&str, &str)> = st["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["dept_id"].as_str().unwrap(), d["name"].as_str().unwrap()))
        .collect();
    assert_eq!(depts, vec![("sales", "Sales 销售"), ("support", "Support")]);
    boss
}

fn start() -> Kefu {
    Kefu::start(
        2,
        "max_per_agent = 1",
        &[
            ("shop", "boss", "Boss", None),
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
            ("other", "zed", "Zed", None),
        ],
    )
}

#[test]
fn each_department_routes_queues_and_broadcasts_on_its_own() {
    let k = start();
    shop(&k);
    let (mut alice, al) = k.agent("shop", "alice");
    assert_eq!(al["role"], "agent");
    assert_eq!(
        al["departments"],
        json!([{"dept_id":"sales","name":"Sales 销售"}])
    );
    let (mut bob, _) = k.agent("shop", "bob");

    // A sales visitor goes to alice, although bob is free too.
    let (_v1, c1, f) = open_in(&k, "shop", "sales", "I want to buy");
    assert_eq!(f["agent_id"], "alice", "{f}");
    let a = assigned_to(&mut alice, c1);
    assert_eq!(a["conv"]["dept_id"], "sales");

    // The next one waits in the sales line (alice is at her maximum), first in it, and only
    // sales agents hear of the line.
    let (_v2, c2, f) = open_in(&k, "shop", "sales", "me too");
    assert_eq!(
        (f["method"].as_str(), f["position"].as_i64()),
        (Some("waiting"), Some(1))
    );
    assert_eq!(f["agents_online"], true);
    let q = recv_until(&mut alice, "sales queue_update", |m| {
        m["method"] == "queue_update" && m["dept_id"] == "sales" && m["queue_len"] == 1
    });
    assert_eq!(q["queue"][0]["conv_id"], c2);
    assert_eq!(q["queue"][0]["dept_id"], "sales");

    // Support has its own line: its visitor goes to bob at once.
    let (_v3, c3, f) = open_in(&k, "shop", "support", "it is broken");
    assert_eq!(f["agent_id"], "bob", "{f}");
    assigned_to(&mut bob, c3);
    // Bob never heard the sales line (a listening window: nothing marks "no more").
    let heard = collect(&mut bob, Duration::from_millis(800));
    assert!(
        !heard
            .iter()
            .any(|m| m["method"] == "queue_update" && m["dept_id"] == "sales"),
        "{heard:?}"
    );

    // Only members claim; bob is refused the waiting sales conversation.
    bob.send_text(&json!({"method":"claim","conv_id":c2}).to_string());
    let e = recv_error(&mut bob);
    assert_eq!(
        (e["code"].as_str(), e["method"].as_str()),
        (Some("10006"), Some("claim"))
    );
    assert!(e["msg"].as_str().unwrap().contains("department"), "{e}");

    // Alice closes her first: the sales line drains into her, not bob.
    alice.send_text(&json!({"method":"close","conv_id":c1}).to_string());
    let a = assigned_to(&mut alice, c2);
    assert_eq!(a["conv"]["dept_id"], "sales");
    let q = recv_until(&mut alice, "empty sales line", |m| {
        m["method"] == "queue_update" && m["dept_id"] == "sales" && m["queue_len"] == 0
    });
    assert_eq!(q["queue"], json!([]));

    // A department that does not exist, or a malformed id, is refused at login.
    for bad in ["nope", "a b", "sales\n"] {
        let mut v = Ws::connect(&k.addr(), "/ws");
        v.send_text(&json!({"method":"visitor_login","bid":"shop","dept":bad}).to_string());
        let e = recv_error(&mut v);
        assert_eq!(e["code"], "10002", "{bad:?}: {e}");
    }
}

#[test]
fn a_signed_identity_carries_its_department() {
    let k = start();
    shop(&k);
    let (mut bob, _) = k.agent("shop", "bob");
    let key = k.business_secret("shop");
    let ts = unix_now();
    let sig = identity_sig_dept(&key, "shop", "u-42", "Wang", ts, "support");
    let login = |dept: &str, sig: &str| {
        let mut v = Ws::connect(&k.addr(), "/ws");
        v.send_text(
            &json!({"method":"visitor_login","bid":"shop","visitor_id":"u-42","name":"Wang",
                    "ts":ts,"sig":sig,"dept":dept})
            .to_string(),
        );
        (recv_json(&mut v).unwrap(), v)
    };
    // The page cannot move a signed visitor to another department, nor drop the signed one.
    let (e, _) = login("sales", &sig);
    assert_eq!(e["code"], "10002", "{e}");
    let plain = identity_sig(&key, "shop", "u-42", "Wang", ts);
    let (e, _) = login("support", &plain);
    assert_eq!(e["code"], "10002", "{e}");
    let (ok, mut v) = login("support", &sig);
    assert_eq!(
        (ok["method"].as_str(), ok["verified"].as_bool()),
        (Some("visitor_login"), Some(true))
    );
    assert_eq!(ok["dept"], "support");
    say(&mut v, None, "c1", "hello from a signed visitor");
    let a = recv_until(&mut bob, "assigned", |m| m["method"] == "assigned");
    assert_eq!(a["conv"]["visitor"]["visitor_id"], "u-42");
    assert_eq!(a["conv"]["dept_id"], "support");
}

#[test]
fn transfer_to_a_department_and_membership_changes_live() {
    let k = start();
    let boss = shop(&k);
    let (mut alice, _) = k.agent("shop", "alice");
    let (_v1, c1, f) = open_in(&k, "shop", "sales", "refund please");
    assert_eq!(f["agent_id"], "alice");
    assigned_to(&mut alice, c1);

    // Nobody of support is online: the conversation waits in the support line, and the
    // visitor and alice see the transfer.
    alice.send_text(&json!({"method":"transfer","conv_id":c1,"dept":"support"}).to_string());
    let u = recv_until(&mut alice, "unassigned", |m| m["method"] == "unassigned");
    assert_eq!(
        (u["conv_id"].as_i64(), u["reason"].as_str()),
        (Some(c1), Some("transferred"))
    );
    let ev = recv_until(&mut alice, "event", |m| {
        m["method"] == "message" && m["kind"] == "event"
    });
    assert_eq!(ev["args"]["type"], "transferred_dept", "{ev}");
    assert_eq!(ev["args"]["dept_name"], "Support");
    // Neither both nor none of to and dept; a department that does not exist.
    for bad in [
        json!({"method":"transfer","conv_id":c1}),
        json!({"method":"transfer","conv_id":c1,"to":"bob","dept":"support"}),
    ] {
        alice.send_text(&bad.to_string());
        assert_eq!(recv_error(&mut alice)["code"], "10005", "{bad}");
    }

    // The admin adds alice to support: her live session joins the support group at once,
    // gets her new queue view, and routing gives her the waiting conversation back.
    k.admin_ok(
        &boss,
        json!({"op":"agent_update","agent_id":"alice","depts":["sales","support"]}),
    );
    let a = assigned_to(&mut alice, c1);
    assert_eq!(a["conv"]["dept_id"], "support");
    // Support's line now reaches her: a second support visitor waits (she is full).
    let (_v2, c2, f) = open_in(&k, "shop", "support", "also broken");
    assert_eq!(f["method"], "waiting");
    recv_until(&mut alice, "support line", |m| {
        m["method"] == "queue_update" && m["dept_id"] == "support" && m["queue"][0]["conv_id"] == c2
    });
    // Removed from support again, she may no longer claim it.
    k.admin_ok(
        &boss,
        json!({"op":"agent_update","agent_id":"alice","depts":["sales"]}),
    );
    recv_until(&mut alice, "conversations", |m| {
        m["method"] == "conversations"
    });
    alice.send_text(&json!({"method":"claim","conv_id":c2}).to_string());
    assert_eq!(recv_error(&mut alice)["code"], "10006");
}

#[test]
fn another_business_never_sees_a_department() {
    let k = start();
    shop(&k);
    k.cli(&[
        "agent", "set", "--bid", "other", "--id", "zed", "--role", "admin",
    ]);
    let zed = k.agent_token("other", "zed");
    // Its admin view holds only its own agents and departments.
    let st = k.admin_ok(&zed, json!({"op":"state"}));
    assert_eq!(st["bid"], "other");
    assert_eq!(st["departments"], json!([]));
    let ids: Vec<&str> = st["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["zed"]);
    // It cannot put anyone in shop's department, nor touch shop's agents or departments.
    let (st, e) = k.admin(
        Some(&zed),
        json!({"op":"agent_update","agent_id":"zed","depts":["sales"]}),
    );
    assert_eq!(st, 400, "{e}");
    let (st, _) = k.admin(
        Some(&zed),
        json!({"op":"agent_update","agent_id":"alice","depts":[]}),
    );
    assert_eq!(st, 404);
    let (st, _) = k.admin(Some(&zed), json!({"op":"dept_remove","dept_id":"sales"}));
    assert_eq!(st, 404);
    let (st, e) = k.admin(Some(&zed), json!({"op":"state","bid":"shop"}));
    assert_eq!(st, 400, "a bid field is refused: {e}");
    // Its visitors cannot pick shop's department, its agents cannot transfer into it.
    let mut v = Ws::connect(&k.addr(), "/ws");
    v.send_text(&json!({"method":"visitor_login","bid":"other","dept":"sales"}).to_string());
    assert_eq!(recv_error(&mut v)["code"], "10002");
    let (mut zws, _) = k.agent("other", "zed");
    let (mut ov, _) = k.visitor("other");
    let conv = {
        say(&mut ov, None, "o1", "hi");
        recv_until(&mut zws, "assigned", |m| m["method"] == "assigned")["conv"]["conv_id"]
            .as_i64()
            .unwrap()
    };
    zws.send_text(&json!({"method":"transfer","conv_id":conv,"dept":"sales"}).to_string());
    assert_eq!(recv_error(&mut zws)["code"], "10007");
    // Shop's departments are unchanged.
    let (_, p) =
        common::http::http_json(&k.addr(), "GET", "/api/business/profile?bid=shop", &[], b"");
    assert_eq!(p["departments"].as_array().map(Vec::len), Some(2), "{p}");
    let (_, p) = common::http::http_json(
        &k.addr(),
        "GET",
        "/api/business/profile?bid=other",
        &[],
        b"",
    );
    assert_eq!(p["departments"], json!([]));
}
