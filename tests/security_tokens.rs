//! Token revocation (issue 11, item 3) against the real binary: agent tokens are re-checked
//! against the agent row at every use (WebSocket login, `/api/history`, `/api/upload`); live
//! sessions of a removed or re-passworded agent are closed (at once when the CLI reaches the
//! server, by the sweep otherwise); re-adding a removed agent does not revive its old tokens;
//! `kefu key rotate` voids every token and closes every session.

mod common;

use common::http::http_json;
use common::kefu_app::*;
use common::ws::Ws;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const NEW_PW: &str = "another-password";

/// The CLI with `--pid-file` of the running test server, so it can tell the server.
fn cli_told(k: &Kefu, args: &[&str], stdin: &str) -> String {
    let pid = k.inst.dir.join("k.pid");
    let mut a = args.to_vec();
    a.extend(["--pid-file", pid.to_str().unwrap()]);
    k.cli_stdin(&a, stdin)
}

/// Wait up to `limit` for the server to close `ws`; returns how long it took and what came
/// before the close (panics if it stayed open).
fn closed_within(ws: &mut Ws, limit: Duration) -> (Duration, Vec<Value>) {
    let t0 = Instant::now();
    ws.sock.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    while let Some(f) = ws.recv_frame() {
        match f.opcode {
            1 => got.push(serde_json::from_slice(&f.payload).unwrap()),
            8 => return (t0.elapsed(), got),
            _ => {}
        }
    }
    let took = t0.elapsed();
    assert!(took < limit, "still open after {took:?}: {got:?}");
    (took, got)
}

fn agent_ws_login(k: &Kefu, id: &str, token: &str) -> (Ws, Value) {
    let mut ws = Ws::connect(&k.addr(), "/ws");
    ws.send_text(
        &json!({"method":"login","bid":"shop","customer_id":id,"token":token}).to_string(),
    );
    let v = recv_until(&mut ws, "login answer", |v| v["method"] == "login");
    (ws, v)
}

fn login_http(k: &Kefu, id: &str, pw: &str) -> (u16, Value) {
    http_json(
        &k.addr(),
        "POST",
        "/api/agent/login",
        &[],
        json!({"bid":"shop","agent_id":id,"password":pw})
            .to_string()
            .as_bytes(),
    )
}

fn history(k: &Kefu, token: &str, conv: i64) -> u16 {
    let auth = format!("Bearer {token}");
    let path = format!("/api/history?conv_id={conv}");
    http_json(&k.addr(), "GET", &path, &[("Authorization", &auth)], b"").0
}

fn upload(k: &Kefu, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    let png = tiny_png();
    http_json(
        &k.addr(),
        "POST",
        "/api/upload",
        &[("Authorization", &auth)],
        &png,
    )
    .0
}

/// A conversation of the business (a visitor's first message).
fn some_conv(k: &Kefu) -> i64 {
    let (mut v, _) = k.visitor("shop");
    v.send_text(r#"{"method":"send","client_msg_id":"c1","kind":"text","text":"hi"}"#);
    recv_method(&mut v, "ack")["conv_id"].as_i64().unwrap()
}

#[test]
fn passwd_and_remove_revoke_tokens_and_close_sessions() {
    let k = Kefu::start(
        2,
        "",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
        ],
    );
    let conv = some_conv(&k);
    let token = k.agent_token("shop", "alice");
    assert_eq!((history(&k, &token, conv), upload(&k, &token)), (200, 200));
    // Several tabs, likely on both workers: every one must close.
    let mut tabs: Vec<Ws> = (0..4)
        .map(|_| {
            let (ws, v) = agent_ws_login(&k, "alice", &token);
            assert!(v.get("code").is_none(), "{v}");
            ws
        })
        .collect();
    let (mut bob, _) = k.agent("shop", "bob");

    let out = cli_told(
        &k,
        &[
            "agent",
            "passwd",
            "--bid",
            "shop",
            "--id",
            "alice",
            "--password-stdin",
        ],
        &format!("{NEW_PW}\n"),
    );
    assert!(out.contains("sessions were closed"), "{out}");
    for ws in &mut tabs {
        let (took, got) = closed_within(ws, Duration::from_secs(3));
        assert!(took < Duration::from_secs(3));
        assert!(
            got.iter().any(|m| m["code"] == "10002"),
            "no reason given: {got:?}"
        );
    }
    // The old token is refused everywhere; the new password works; bob is untouched.
    assert_eq!((history(&k, &token, conv), upload(&k, &token)), (401, 401));
    let (_ws, v) = agent_ws_login(&k, "alice", &token);
    assert_eq!(v["code"], "10002", "{v}");
    let (st, v) = login_http(&k, "alice", AGENT_PW);
    assert_eq!(st, 401, "{v}");
    let (st, v) = login_http(&k, "alice", NEW_PW);
    assert_eq!(st, 200, "{v}");
    let fresh = v["token"].as_str().unwrap().to_string();
    assert_eq!(history(&k, &fresh, conv), 200);
    bob.send_text(r#"{"method":"conversations"}"#);
    recv_method(&mut bob, "conversations");

    // Remove: the fresh token and its session die the same way.
    let (mut tab, _) = agent_ws_login(&k, "alice", &fresh);
    cli_told(
        &k,
        &["agent", "remove", "--bid", "shop", "--id", "alice"],
        "",
    );
    closed_within(&mut tab, Duration::from_secs(3));
    assert_eq!(history(&k, &fresh, conv), 401);
}

#[test]
fn changes_made_without_telling_the_server_still_revoke() {
    let k = Kefu::start(1, "", &[("shop", "alice", "Alice", None)]);
    let conv = some_conv(&k);
    let old = k.agent_token("shop", "alice");
    let (mut tab, _) = agent_ws_login(&k, "alice", &old);
    // No --pid-file: the CLI finds no server to tell. Removed and added again, same password.
    k.cli(&["agent", "remove", "--bid", "shop", "--id", "alice"]);
    let add = [
        "agent",
        "add",
        "--bid",
        "shop",
        "--id",
        "alice",
        "--name",
        "Alice",
        "--password-stdin",
    ];
    k.cli_stdin(&add, &format!("{AGENT_PW}\n"));
    // The re-added agent's generation is new: the old token stays dead.
    assert_eq!((history(&k, &old, conv), upload(&k, &old)), (401, 401));
    let (_ws, v) = agent_ws_login(&k, "alice", &old);
    assert_eq!(v["code"], "10002", "{v}");
    // The open session is found by the sweep (every 5 s).
    closed_within(&mut tab, Duration::from_secs(9));
    let new = k.agent_token("shop", "alice");
    assert_eq!(history(&k, &new, conv), 200);
    let (_ws, v) = agent_ws_login(&k, "alice", &new);
    assert!(v.get("code").is_none(), "{v}");
}

#[test]
fn key_rotation_voids_every_token_and_session() {
    let k = Kefu::start(2, "", &[("shop", "alice", "Alice", None)]);
    let conv = some_conv(&k);
    let agent_token = k.agent_token("shop", "alice");
    let (mut tab, _) = agent_ws_login(&k, "alice", &agent_token);
    let (mut visitor, v) = k.visitor("shop");
    let visitor_token = v["token"].as_str().unwrap().to_string();
    let before = std::fs::read_to_string(k.inst.data_dir().join("secret.key")).unwrap();

    let out = cli_told(&k, &["key", "rotate"], "");
    assert!(out.contains("closed every session"), "{out}");
    assert_ne!(
        std::fs::read_to_string(k.inst.data_dir().join("secret.key")).unwrap(),
        before
    );
    closed_within(&mut tab, Duration::from_secs(3));
    closed_within(&mut visitor, Duration::from_secs(3));
    // Each worker reads the new key on its store thread: the sessions above prove the workers
    // they were on; any request may land on the other, so each check waits for it too.
    let soon = |what: &str, mut ok: Box<dyn FnMut() -> bool + '_>| {
        assert!(
            common::wait_until(Duration::from_secs(5), &mut *ok),
            "{what}"
        );
    };
    for _ in 0..4 {
        soon(
            "old agent token refused over HTTP",
            Box::new(|| history(&k, &agent_token, conv) == 401),
        );
        soon(
            "old visitor token refused",
            Box::new(|| upload(&k, &visitor_token) == 401),
        );
        soon(
            "old agent token refused over WebSocket",
            Box::new(|| agent_ws_login(&k, "alice", &agent_token).1["code"] == "10002"),
        );
        soon(
            "old visitor token refused over WebSocket",
            Box::new(|| {
                let mut ws = Ws::connect(&k.addr(), "/ws");
                ws.send_text(
                    &json!({"method":"visitor_login","bid":"shop","token":visitor_token})
                        .to_string(),
                );
                recv_until(&mut ws, "visitor_login answer", |v| {
                    v["method"] == "visitor_login"
                })["code"]
                    == "10002"
            }),
        );
        // Tokens from fresh logins work wherever their connections land.
        soon(
            "a fresh token works",
            Box::new(|| {
                let t = k.agent_token("shop", "alice");
                agent_ws_login(&k, "alice", &t).1.get("code").is_none()
                    && history(&k, &t, conv) == 200
            }),
        );
    }
}
