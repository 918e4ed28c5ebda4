//! The seed's agent protocol (seed 002) against the real binary with two workers: login with
//! customer_list, login_push, logout_push only when the last tab closes, beat, error codes
//! 10001/10002/10003, malformed and oversized frames, bad and forged tokens.

mod common;

use common::http::http_json;
use common::kefu_app::*;
use common::signal;
use common::ws::Ws;
use serde_json::json;
use std::time::Duration;

const SHORT: Duration = Duration::from_millis(400);

fn names(v: &serde_json::Value) -> Vec<String> {
    let mut n: Vec<String> = v["customer_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["status"], 1);
            e["customer_id"].as_str().unwrap().to_string()
        })
        .collect();
    n.sort();
    n
}

#[test]
fn seed_login_push_logout_and_two_tabs() {
    let k = Kefu::start(
        2,
        "",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
            ("other", "carol", "Carol", None),
        ],
    );
    let (mut alice, login) = k.agent("shop", "alice");
    assert_eq!(login["customer_id"], "alice");
    assert_eq!(login["customer_name"], "Alice");
    assert!(login["timestamp"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(names(&login), vec!["alice"]);

    // Another business's agent is invisible to shop.
    let (mut carol, cl) = k.agent("other", "carol");
    assert_eq!(names(&cl), vec!["carol"]);

    let (mut bob, bl) = k.agent("shop", "bob");
    assert_eq!(names(&bl), vec!["alice", "bob"]);
    let p = recv_method(&mut alice, "login_push");
    assert_eq!(p["customer_id"], "bob");
    assert_eq!(p["customer_name"], "Bob");
    // The newcomer does not get its own push (seed: push before joining).
    assert!(collect(&mut bob, SHORT)
        .iter()
        .all(|v| v["method"] != "login_push"));

    // Bob's second tab: one presence, so no second login_push and one list entry.
    let (mut bob2, b2) = k.agent("shop", "bob");
    assert_eq!(names(&b2), vec!["alice", "bob"]);
    assert!(collect(&mut alice, SHORT)
        .iter()
        .all(|v| v["method"] != "login_push"));

    // Heartbeats: plain and JSON, no reply, connection stays usable.
    bob2.send_text("beat");
    bob2.send_text(r#"{"method":"beat"}"#);
    assert!(collect(&mut bob2, SHORT).is_empty());

    // Closing one of Bob's tabs: still online.
    drop(bob);
    assert!(collect(&mut alice, Duration::from_millis(600))
        .iter()
        .all(|v| v["method"] != "logout_push"));
    // Closing the last one: logout_push.
    drop(bob2);
    let p = recv_method(&mut alice, "logout_push");
    assert_eq!(p["customer_id"], "bob");
    assert_eq!(p["customer_name"], "Bob");
    // Other businesses hear nothing.
    assert!(collect(&mut carol, SHORT)
        .iter()
        .all(|v| v["method"] != "logout_push"));
}

#[test]
fn seed_error_codes_and_bad_input() {
    let k = Kefu::start(
        2,
        "max_text_chars = 50",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
        ],
    );
    let mut ws = Ws::connect(&k.addr(), "/ws");
    // 10001: JSON without method.
    ws.send_text(r#"{"bid":"shop"}"#);
    let e = recv_error(&mut ws);
    assert_eq!(e["code"], "10001");
    // 10002: login without the required fields (seed: 登录失败，参数不正确).
    ws.send_text(r#"{"method":"login","bid":"shop"}"#);
    let e = recv_error(&mut ws);
    assert_eq!(e["code"], "10002");
    assert_eq!(e["method"], "login");
    // 10002: garbage token, and a token of another agent.
    ws.send_text(&json!({"method":"login","bid":"shop","customer_id":"alice","customer_name":"A","token":"x.y"}).to_string());
    assert_eq!(recv_error(&mut ws)["code"], "10002");
    let bob_token = k.agent_token("shop", "bob");
    ws.send_text(&json!({"method":"login","bid":"shop","customer_id":"alice","customer_name":"A","token":bob_token}).to_string());
    assert_eq!(recv_error(&mut ws)["code"], "10002");
    // A forged token: bob's signature on a payload claiming alice.
    let (payload, sig) = bob_token.split_once('.').unwrap();
    let _ = payload;
    let forged_payload = base64_url(
        &json!({"r":"a","b":"shop","s":"alice","exp":9_999_999_999_999i64,"pv":1}).to_string(),
    );
    ws.send_text(&json!({"method":"login","bid":"shop","customer_id":"alice","token":format!("{forged_payload}.{sig}")}).to_string());
    assert_eq!(recv_error(&mut ws)["code"], "10002");
    // 10003: unknown method, never silently dropped.
    ws.send_text(r#"{"method":"frobnicate"}"#);
    let e = recv_error(&mut ws);
    assert_eq!(e["code"], "10003");
    assert_eq!(e["method"], "frobnicate");
    // 10000: malformed JSON and binary frames.
    ws.send_text(r#"{"method":"login","#);
    assert_eq!(recv_error(&mut ws)["code"], "10000");
    ws.send_text("[1,2,3]");
    assert_eq!(recv_error(&mut ws)["code"], "10000");
    ws.send_frame(true, 2, b"\x00\x01");
    assert_eq!(recv_error(&mut ws)["code"], "10000");
    // 10004: anything but login before login.
    ws.send_text(r#"{"method":"send","kind":"text","text":"hi"}"#);
    assert_eq!(recv_error(&mut ws)["code"], "10004");
    // 10005: oversized frame.
    ws.send_text(&format!(
        r#"{{"method":"beat","pad":"{}"}}"#,
        "x".repeat(70_000)
    ));
    assert_eq!(recv_error(&mut ws)["code"], "10005");
    // A good login still works on the same connection afterwards.
    let t = k.agent_token("shop", "alice");
    ws.send_text(
        &json!({"method":"login","bid":"shop","customer_id":"alice","customer_name":"A","token":t})
            .to_string(),
    );
    let l = recv_method(&mut ws, "login");
    assert_eq!(l["customer_name"], "Alice");
    // Oversized text (max_text_chars = 50, counted in characters) and empty text.
    let (mut v, _) = k.visitor("shop");
    v.send_text(
        &json!({"method":"send","client_msg_id":"c1","kind":"text","text":"好".repeat(51)})
            .to_string(),
    );
    let e = recv_error(&mut v);
    assert_eq!(e["code"], "10005");
    assert_eq!(e["client_msg_id"], "c1");
    v.send_text(
        &json!({"method":"send","client_msg_id":"c2","kind":"text","text":"   "}).to_string(),
    );
    assert_eq!(recv_error(&mut v)["code"], "10005");
    // 50 emoji/CJK characters are fine.
    say(&mut v, None, "c3", &"😀".repeat(50));
    // Images must reference our uploads.
    v.send_text(
        &json!({"method":"send","client_msg_id":"c4","kind":"image","url":"javascript:alert(1)"})
            .to_string(),
    );
    assert_eq!(recv_error(&mut v)["code"], "10005");
    // Agents-only methods.
    v.send_text(r#"{"method":"claim","conv_id":1}"#);
    assert_eq!(recv_error(&mut v)["code"], "10004");
    // Wrong field types on a known method.
    v.send_text(r#"{"method":"history","conv_id":"abc"}"#);
    let e = recv_error(&mut v);
    assert_eq!(e["code"], "10005");
    assert_eq!(e["method"], "history");
    // Flooding (default 20/s, burst 40) is refused with 10008, each request answered.
    for _ in 0..60 {
        v.send_text(r#"{"method":"typing","typing":true}"#);
    }
    let answers = collect(&mut v, Duration::from_millis(800));
    let limited = answers.iter().filter(|m| m["code"] == "10008").count();
    assert!(limited >= 10, "{answers:?}");
    assert!(answers
        .iter()
        .filter(|m| m["code"] == "10008")
        .all(|m| m["method"] == "typing"));
}

#[test]
fn visitor_identity_forgery_and_tokens() {
    let k = Kefu::start(
        2,
        "",
        &[("shop", "alice", "Alice", None), ("b2", "x", "X", None)],
    );
    let secret = k.business_secret("shop");
    let now = unix_now();
    let sign = |vid: &str, name: &str, ts: i64, key: &str| identity_sig(key, "shop", vid, name, ts);
    // A valid integrator identity.
    let mut ws = Ws::connect(&k.addr(), "/ws");
    let sig = sign("u42", "Zhang", now, &secret);
    ws.send_text(&json!({"method":"visitor_login","bid":"shop","visitor_id":"u42","name":"Zhang","ts":now,"sig":sig}).to_string());
    let l = recv_method(&mut ws, "visitor_login");
    assert_eq!(l["visitor_id"], "u42");
    assert_eq!(l["verified"], true);
    // Same signature for another id, another name, a stale timestamp, a wrong key: refused.
    for (vid, name, ts, key) in [
        ("u43", "Zhang", now, secret.as_str()),
        ("u42", "Li", now, secret.as_str()),
        ("u42", "Zhang", now - 3600, secret.as_str()),
        ("u42", "Zhang", now, "not-the-secret"),
    ] {
        let mut ws = Ws::connect(&k.addr(), "/ws");
        let s = if key == secret && vid == "u43" || name == "Li" {
            sig.clone()
        } else {
            sign(vid, name, ts, key)
        };
        ws.send_text(&json!({"method":"visitor_login","bid":"shop","visitor_id":vid,"name":name,"ts":ts,"sig":s}).to_string());
        let e = recv_error(&mut ws);
        assert_eq!(e["code"], "10002", "{vid} {name} {ts}: {e}");
    }
    // Anonymous visitors get a token; reusing it keeps the id; another business refuses it.
    let (_v, a) = k.visitor("shop");
    let token = a["token"].as_str().unwrap().to_string();
    let vid = a["visitor_id"].as_str().unwrap().to_string();
    assert!(vid.starts_with("v_"));
    assert_eq!(a["verified"], false);
    let (_v2, b) = k.visitor_with("shop", &token, json!([]));
    assert_eq!(b["visitor_id"], vid.as_str());
    let mut ws = Ws::connect(&k.addr(), "/ws");
    ws.send_text(&json!({"method":"visitor_login","bid":"b2","token":token}).to_string());
    assert_eq!(recv_error(&mut ws)["code"], "10002");
    // An agent token is not a visitor token, and vice versa.
    let at = k.agent_token("shop", "alice");
    ws.send_text(&json!({"method":"visitor_login","bid":"shop","token":at}).to_string());
    assert_eq!(recv_error(&mut ws)["code"], "10002");
    ws.send_text(
        &json!({"method":"login","bid":"shop","customer_id":vid,"token":token}).to_string(),
    );
    assert_eq!(recv_error(&mut ws)["code"], "10002");
    // Unknown business.
    ws.send_text(r#"{"method":"visitor_login","bid":"nope"}"#);
    assert_eq!(recv_error(&mut ws)["code"], "10002");
    // HTTP: anonymous and signed tokens; forged → 401.
    let (st, v) = http_json(
        &k.addr(),
        "POST",
        "/api/visitor/token",
        &[],
        br#"{"bid":"shop"}"#,
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["token"].is_string());
    let body = json!({"bid":"shop","visitor_id":"u42","name":"Zhang","ts":now,"sig":sign("u42","Zhang",now,&secret)});
    let (st, v) = http_json(
        &k.addr(),
        "POST",
        "/api/visitor/token",
        &[],
        body.to_string().as_bytes(),
    );
    assert_eq!((st, v["verified"].clone()), (200, json!(true)));
    let body = json!({"bid":"shop","visitor_id":"u42","name":"Zhang","ts":now,"sig":sign("u42","Zhang",now,"bad")});
    let (st, _) = http_json(
        &k.addr(),
        "POST",
        "/api/visitor/token",
        &[],
        body.to_string().as_bytes(),
    );
    assert_eq!(st, 401);
    let (st, _) = http_json(
        &k.addr(),
        "POST",
        "/api/visitor/token",
        &[],
        br#"{"bid":"nope"}"#,
    );
    assert_eq!(st, 404);
    // Agent HTTP login: wrong password and unknown agent look the same.
    let (st, _) = http_json(
        &k.addr(),
        "POST",
        "/api/agent/login",
        &[],
        br#"{"bid":"shop","agent_id":"alice","password":"bad"}"#,
    );
    assert_eq!(st, 401);
    let (st, _) = http_json(
        &k.addr(),
        "POST",
        "/api/agent/login",
        &[],
        br#"{"bid":"shop","agent_id":"zed","password":"pw"}"#,
    );
    assert_eq!(st, 401);
    let (st, _) = http_json(&k.addr(), "POST", "/api/agent/login", &[], b"not json");
    assert_eq!(st, 400);
    // Changing the password revokes old tokens.
    k.cli_stdin(
        &["agent", "passwd", "--bid", "shop", "--id", "alice"],
        "pw2-changed\n",
    );
    let mut ws = Ws::connect(&k.addr(), "/ws");
    ws.send_text(
        &json!({"method":"login","bid":"shop","customer_id":"alice","token":at}).to_string(),
    );
    assert_eq!(recv_error(&mut ws)["code"], "10002");
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.as_bytes())
}

#[test]
fn agents_of_a_killed_worker_are_pushed_offline_to_colleagues_on_the_other() {
    // kill -9 runs no on_close: the surviving worker learns of the loss when its bus link to
    // the dead one ends, and must still send logout_push for every agent that went with it.
    let ids: Vec<String> = (0..16).map(|i| format!("a{i}")).collect();
    let agents: Vec<_> = ids
        .iter()
        .map(|i| ("shop1", i.as_str(), i.as_str(), None))
        .collect();
    let k = Kefu::start(2, "", &agents);
    let pids = k.worker_pids();
    assert_eq!(pids.len(), 2, "{pids:?}");
    let port: u16 = k.addr().rsplit(':').next().unwrap().parse().unwrap();
    // Log agents in until both workers hold some (SO_REUSEPORT spreads them at random).
    let mut conns: Vec<(String, i32, Ws)> = Vec::new();
    for id in &ids {
        let (ws, _) = k.agent("shop1", id);
        let pid = common::socket_owner(&ws.sock, port, &pids)
            .expect("no worker holds the agent's socket");
        conns.push((id.clone(), pid, ws));
        let on_first = conns.iter().filter(|c| c.1 == pids[0]).count();
        if conns.len() >= 6 && on_first > 0 && on_first < conns.len() {
            break;
        }
    }
    let victim = conns[0].1;
    assert!(
        conns.iter().any(|c| c.1 != victim),
        "all {} agents landed on one worker",
        conns.len()
    );
    for (_, _, ws) in conns.iter_mut() {
        collect(ws, Duration::from_millis(100));
    }
    signal(victim, libc::SIGKILL);
    let mut dead: Vec<String> = conns
        .iter()
        .filter(|c| c.1 == victim)
        .map(|c| c.0.clone())
        .collect();
    dead.sort();
    // Read by reference: dropping a socket would log its agent out and muddle the pushes.
    for (id, pid, ws) in conns.iter_mut() {
        if *pid == victim {
            continue;
        }
        // Wait for as many pushes as agents died, then listen a while longer: a duplicate,
        // or a push for a survivor, would come with them.
        let mut offline = Vec::new();
        while offline.len() < dead.len() {
            let v = recv_until(ws, "logout_push", |v| v["method"] == "logout_push");
            offline.push(v["customer_id"].as_str().unwrap().to_string());
        }
        offline.extend(
            collect(ws, Duration::from_millis(500))
                .iter()
                .filter(|v| v["method"] == "logout_push")
                .map(|v| v["customer_id"].as_str().unwrap().to_string()),
        );
        offline.sort();
        assert_eq!(offline, dead, "logout_push seen by {id}");
    }
}
