//! Error frames echo the request they answer (docs/kefu-protocol.md §1) against the real
//! binary: `method` always, and a `send`'s `client_msg_id`, whichever stage refused it
//! (before login, unparseable fields, the loop's checks, the store, rate limiting).

mod common;

use common::kefu_app::*;
use common::ws::Ws;
use serde_json::{json, Value};

/// The error frame's (code, method, client_msg_id).
fn echo(e: &Value) -> (&str, Option<&str>, Option<&str>) {
    (
        e["code"].as_str().unwrap(),
        e["method"].as_str(),
        e["client_msg_id"].as_str(),
    )
}

#[test]
fn errors_echo_method_and_client_msg_id() {
    let k = Kefu::start(1, "", &[("shop", "alice", "Alice", None)]);
    let mut anon = Ws::connect(&k.addr(), "/ws");

    // A send before login: 10004, and the client can tell which send it was.
    anon.send_text(r#"{"method":"send","client_msg_id":"c1","kind":"text","text":"hi"}"#);
    assert_eq!(
        echo(&recv_error(&mut anon)),
        ("10004", Some("send"), Some("c1"))
    );
    anon.send_text(r#"{"method":"history","conv_id":1}"#);
    assert_eq!(
        echo(&recv_error(&mut anon)),
        ("10004", Some("history"), None)
    );
    // A send whose fields do not parse (no kind) still names itself.
    anon.send_text(r#"{"method":"send","client_msg_id":"c2","text":"hi"}"#);
    let e = recv_error(&mut anon);
    assert_eq!(echo(&e), ("10005", Some("send"), Some("c2")), "{e}");

    // Logged in: refusals of the loop, of the role and of the store.
    let (mut v, _) = k.visitor("shop");
    v.send_text(r#"{"method":"send","client_msg_id":"c3","kind":"text","text":"  "}"#);
    assert_eq!(
        echo(&recv_error(&mut v)),
        ("10005", Some("send"), Some("c3"))
    );
    v.send_text(r#"{"method":"claim","conv_id":1}"#);
    assert_eq!(echo(&recv_error(&mut v)), ("10004", Some("claim"), None));
    v.send_text(r#"{"method":"visitor_login","bid":"shop"}"#);
    assert_eq!(
        echo(&recv_error(&mut v)),
        ("10005", Some("visitor_login"), None)
    );
    let (mut alice, _) = k.agent("shop", "alice");
    alice.send_text(
        &json!({"method":"send","conv_id":999,"client_msg_id":"c4","kind":"text","text":"x"})
            .to_string(),
    );
    assert_eq!(
        echo(&recv_error(&mut alice)),
        ("10007", Some("send"), Some("c4"))
    );
}

#[test]
fn rate_limited_send_echoes_its_client_msg_id() {
    // One request allowed, never refilled: the second is over the limit.
    let k = Kefu::start(1, "rate_per_sec = 0.0\nrate_burst = 1.0", &[]);
    let mut ws = Ws::connect(&k.addr(), "/ws");
    ws.send_text(r#"{"method":"history","conv_id":1}"#);
    assert_eq!(echo(&recv_error(&mut ws)), ("10004", Some("history"), None));
    ws.send_text(r#"{"method":"send","client_msg_id":"c5","kind":"text","text":"hi"}"#);
    assert_eq!(
        echo(&recv_error(&mut ws)),
        ("10008", Some("send"), Some("c5"))
    );
}
