//! Roles and the admin API (issue 18, point 2) against the real binary with two workers:
//! `kefu agent add --admin` / `agent set --role`, `POST /api/admin` refused to everyone but
//! the business's own enabled admins (no token, a forged one, a visitor's, a plain agent's,
//! another business's admin, a disabled admin, a revoked token), and what an admin's changes
//! do to live sessions: disabling closes them and requeues the conversations, a new password
//! closes them, the last admin stays.

mod common;

use common::http::http_json;
use common::kefu_app::*;
use common::ws::Ws;
use serde_json::{json, Value};

fn login(k: &Kefu, bid: &str, id: &str, pw: &str) -> (u16, Value) {
    http_json(
        &k.addr(),
        "POST",
        "/api/agent/login",
        &[("Content-Type", "application/json")],
        json!({"bid":bid,"agent_id":id,"password":pw})
            .to_string()
            .as_bytes(),
    )
}

/// The agent ids and roles of an admin view.
fn roster(st: &Value) -> Vec<(String, String, bool)> {
    st["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["agent_id"].as_str().unwrap().to_string(),
                a["role"].as_str().unwrap().to_string(),
                a["disabled"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The session is told it was revoked, then closed.
fn revoked(ws: &mut Ws) {
    let e = recv_error(ws);
    assert_eq!(e["code"], "10002", "{e}");
    assert!(e["msg"].as_str().unwrap().contains("revoked"), "{e}");
    assert_eq!(ws.recv_close_code(), Some(1000));
}

#[test]
fn every_admin_call_is_refused_to_all_but_the_business_admins() {
    let k = Kefu::start(
        2,
        "",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "carol", "Carol", None),
            ("other", "zed", "Zed", None),
        ],
    );
    // The first admin comes from the host: a new one with --admin, an existing one by role.
    k.cli_stdin(
        &[
            "agent",
            "add",
            "--bid",
            "shop",
            "--id",
            "boss",
            "--name",
            "Boss",
            "--admin",
            "--password-stdin",
        ],
        &format!("{AGENT_PW}\n"),
    );
    k.cli(&[
        "agent", "set", "--bid", "shop", "--id", "carol", "--role", "admin",
    ]);
    k.cli(&[
        "agent", "set", "--bid", "other", "--id", "zed", "--role", "admin",
    ]);
    let list = k.cli(&["agent", "list", "--bid", "shop"]);
    assert!(
        list.lines()
            .any(|l| l.contains("boss") && l.contains("admin")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains("alice") && l.contains(" agent ")),
        "{list}"
    );
    let boss = k.agent_token("shop", "boss");
    let before = k.admin_ok(&boss, json!({"op":"state"}));
    assert_eq!(
        roster(&before),
        vec![
            ("alice".into(), "agent".into(), false),
            ("boss".into(), "admin".into(), false),
            ("carol".into(), "admin".into(), false),
        ]
    );
    let alice = k.agent_token("shop", "alice");
    let zed = k.agent_token("other", "zed");
    let (_v, vl) = k.visitor("shop");
    let visitor = vl["token"].as_str().unwrap().to_string();
    let ops = [
        json!({"op":"state"}),
        json!({"op":"agent_add","agent_id":"mallory","name":"M","password":"long-enough-1"}),
        json!({"op":"agent_update","agent_id":"alice","role":"admin"}),
        json!({"op":"agent_disable","agent_id":"boss","disabled":true}),
        json!({"op":"agent_password","agent_id":"boss","password":"taken-over-1"}),
        json!({"op":"dept_save","dept_id":"evil","name":"Evil"}),
        json!({"op":"dept_remove","dept_id":"evil"}),
        json!({"op":"routing","policy":"round_robin"}),
    ];
    for op in &ops {
        assert_eq!(k.admin(None, op.clone()).0, 401, "no token: {op}");
        assert_eq!(
            k.admin(Some("forged.token"), op.clone()).0,
            401,
            "forged: {op}"
        );
        assert_eq!(k.admin(Some(&visitor), op.clone()).0, 403, "visitor: {op}");
        let (st, e) = k.admin(Some(&alice), op.clone());
        assert_eq!(st, 403, "plain agent: {op} -> {e}");
        // Another business's admin acts on its own business only: shop's agents are not
        // found there, and what it creates is its own.
        let (st, _) = k.admin(Some(&zed), op.clone());
        match op["op"].as_str().unwrap() {
            "agent_update" | "agent_disable" | "agent_password" => {
                assert_eq!(st, 404, "other admin: {op}")
            }
            _ => assert_eq!(st, 200, "other admin, own business: {op}"),
        }
    }
    // None of it changed shop; zed's business got its own mallory (and its own department
    // "evil", saved then removed).
    let after = k.admin_ok(&boss, json!({"op":"state"}));
    assert_eq!(roster(&after), roster(&before));
    assert_eq!(after["departments"], json!([]));
    assert_eq!(after["routing"], Value::Null);
    let theirs = k.admin_ok(&zed, json!({"op":"state"}));
    assert_eq!(theirs["bid"], "other");
    assert!(roster(&theirs).iter().any(|a| a.0 == "mallory"));
    assert!(!roster(&theirs).iter().any(|a| a.0 == "alice"));
    // A bid in the request is refused, not obeyed.
    let (st, _) = k.admin(Some(&zed), json!({"op":"state","bid":"shop"}));
    assert_eq!(st, 400);
    // A GET is not the API.
    let (st, _) = http_json(&k.addr(), "GET", "/api/admin", &[], b"");
    assert_eq!(st, 405);

    // A revoked token: carol's password is changed, her old token dies.
    let carol = k.agent_token("shop", "carol");
    k.admin_ok(&carol, json!({"op":"state"}));
    k.admin_ok(
        &boss,
        json!({"op":"agent_password","agent_id":"carol","password":"carol-new-pass"}),
    );
    assert_eq!(k.admin(Some(&carol), json!({"op":"state"})).0, 401);
    let (st, c) = login(&k, "shop", "carol", "carol-new-pass");
    assert_eq!((st, c["role"].as_str()), (200, Some("admin")), "{c}");
    let carol = c["token"].as_str().unwrap().to_string();
    // A disabled admin: refused with the token it had, and at login.
    k.admin_ok(
        &boss,
        json!({"op":"agent_disable","agent_id":"carol","disabled":true}),
    );
    assert_eq!(k.admin(Some(&carol), json!({"op":"state"})).0, 401);
    let (st, e) = login(&k, "shop", "carol", "carol-new-pass");
    assert_eq!(st, 403, "{e}");
    // A demoted admin is refused at once (the role is read at every call).
    k.admin_ok(
        &boss,
        json!({"op":"agent_disable","agent_id":"carol","disabled":false}),
    );
    let (_, c) = login(&k, "shop", "carol", "carol-new-pass");
    let carol = c["token"].as_str().unwrap().to_string();
    k.admin_ok(&carol, json!({"op":"state"}));
    k.admin_ok(
        &boss,
        json!({"op":"agent_update","agent_id":"carol","role":"agent"}),
    );
    assert_eq!(k.admin(Some(&carol), json!({"op":"state"})).0, 403);
}

#[test]
fn admins_manage_agents_and_live_sessions_follow() {
    let k = Kefu::start(
        2,
        "max_per_agent = 3",
        &[
            ("shop", "boss", "Boss", None),
            ("shop", "alice", "Alice", None),
        ],
    );
    k.cli(&[
        "agent", "set", "--bid", "shop", "--id", "boss", "--role", "admin",
    ]);
    let boss = k.agent_token("shop", "boss");

    // Bad input is refused with a reason, and changes nothing.
    for bad in [
        json!({"op":"agent_add","agent_id":"dan","name":"Dan","password":"short"}),
        json!({"op":"agent_add","agent_id":"d an","name":"Dan","password":AGENT_PW}),
        json!({"op":"agent_add","agent_id":"dan","name":" ","password":AGENT_PW}),
        json!({"op":"agent_add","agent_id":"dan","name":"Dan","password":AGENT_PW,"max":-1}),
        json!({"op":"agent_add","agent_id":"dan","name":"Dan","password":AGENT_PW,"depts":["nope"]}),
        json!({"op":"agent_update","agent_id":"alice","max":100000}),
        json!({"op":"dept_save","dept_id":"x y","name":"X"}),
        json!({"op":"dept_save","dept_id":"x","name":""}),
    ] {
        let (st, e) = k.admin(Some(&boss), bad.clone());
        assert_eq!(st, 400, "{bad} -> {e}");
    }
    let (st, _) = k.admin(
        Some(&boss),
        json!({"op":"agent_add","agent_id":"alice","name":"A","password":AGENT_PW}),
    );
    assert_eq!(st, 409, "an existing agent");
    assert_eq!(roster(&k.admin_ok(&boss, json!({"op":"state"}))).len(), 2);

    // Add an agent from the console: it can sign in with the password it was given.
    k.admin_ok(
        &boss,
        json!({"op":"dept_save","dept_id":"sales","name":"Sales"}),
    );
    let st = k.admin_ok(
        &boss,
        json!({"op":"agent_add","agent_id":"dan","name":"Dan","password":AGENT_PW,"max":2,"depts":["sales"]}),
    );
    let dan_row = st["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent_id"] == "dan")
        .unwrap()
        .clone();
    assert_eq!(
        (dan_row["max"].as_i64(), dan_row["depts"].clone()),
        (Some(2), json!(["sales"]))
    );
    let (mut dan, dl) = k.agent("shop", "dan");
    assert_eq!(dl["departments"][0]["dept_id"], "sales");
    let st = k.admin_ok(&boss, json!({"op":"state"}));
    assert!(st["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["agent_id"] == "dan" && a["online"] == true));

    // Dan has a visitor; then he is disabled: his session is told and closed, the visitor
    // hears why and goes to the next agent online.
    let (mut v, _) = k.visitor("shop");
    say(&mut v, None, "c1", "hello");
    let a = recv_until(&mut dan, "assigned", |m| m["method"] == "assigned");
    let conv = a["conv"]["conv_id"].as_i64().unwrap();
    let (mut alice, _) = k.agent("shop", "alice");
    let (st, e) = k.admin(
        Some(&boss),
        json!({"op":"agent_disable","agent_id":"boss","disabled":true}),
    );
    assert_eq!(st, 409, "not yourself: {e}");
    let (st, e) = k.admin(
        Some(&boss),
        json!({"op":"agent_update","agent_id":"boss","role":"agent"}),
    );
    assert_eq!(st, 409, "the last admin stays: {e}");
    let st = k.admin_ok(
        &boss,
        json!({"op":"agent_disable","agent_id":"dan","disabled":true}),
    );
    assert!(roster(&st).contains(&("dan".into(), "agent".into(), true)));
    revoked(&mut dan);
    let ev = recv_until(&mut v, "disabled event", |m| {
        m["method"] == "message" && m["args"]["type"] == "agent_disabled"
    });
    assert_eq!(ev["conv_id"], conv);
    let a = recv_until(&mut alice, "assigned", |m| m["method"] == "assigned");
    assert_eq!(a["conv"]["conv_id"], conv);
    let (st, e) = login(&k, "shop", "dan", AGENT_PW);
    assert_eq!(st, 403, "{e}");
    // Enabled again, he signs in.
    k.admin_ok(
        &boss,
        json!({"op":"agent_disable","agent_id":"dan","disabled":false}),
    );
    assert_eq!(login(&k, "shop", "dan", AGENT_PW).0, 200);

    // A new password closes alice's sessions; only the new one signs in.
    k.admin_ok(
        &boss,
        json!({"op":"agent_password","agent_id":"alice","password":"alice-new-pass"}),
    );
    revoked(&mut alice);
    assert_eq!(login(&k, "shop", "alice", AGENT_PW).0, 401);
    assert_eq!(login(&k, "shop", "alice", "alice-new-pass").0, 200);

    // Maximum and name, and back to the default; the routing policy and back.
    let st = k.admin_ok(
        &boss,
        json!({"op":"agent_update","agent_id":"alice","max":0,"name":"Alice 李"}),
    );
    let row = |st: &Value| {
        st["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent_id"] == "alice")
            .unwrap()
            .clone()
    };
    assert_eq!(
        (row(&st)["max"].as_i64(), row(&st)["name"].as_str()),
        (Some(0), Some("Alice 李"))
    );
    let st = k.admin_ok(
        &boss,
        json!({"op":"agent_update","agent_id":"alice","max":null}),
    );
    assert_eq!(row(&st)["max"], Value::Null);
    let st = k.admin_ok(&boss, json!({"op":"routing","policy":"round_robin"}));
    assert_eq!(
        (st["routing"].as_str(), st["default_routing"].as_str()),
        (Some("round_robin"), Some("least_busy"))
    );
    let st = k.admin_ok(&boss, json!({"op":"routing","policy":null}));
    assert_eq!(st["routing"], Value::Null);
    // A department removed: gone from the view and from its members.
    let st = k.admin_ok(&boss, json!({"op":"dept_remove","dept_id":"sales"}));
    assert_eq!(st["departments"], json!([]));
    assert_eq!(row(&st)["depts"], json!([]));
}
