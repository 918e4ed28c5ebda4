//! The gateway HTTP API is not reachable from the internet by default: not on the public
//! listeners, not without a key, not from a web page; and the kefu app's identities cannot be
//! handed out through it (issue 11, item 1).

mod common;

use common::http::{api_config, call_once, Http, API_KEY};
use common::ws::Ws;
use common::Instance;
use serde_json::json;

fn kefu_server(schemes: &[&str], toml: &str) -> Instance {
    Instance::new("kefu", 1, schemes)
        .config(toml)
        .with_data_dir()
        .start()
}

/// A raw POST with the given headers on a fresh connection; returns the status.
fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut h = Http::connect(addr);
    h.key = None;
    h.request("POST", path, headers, body.as_bytes()).status
}

#[test]
fn default_public_listener_never_serves_the_api() {
    // Defaults as `kefu start` has them: one public WebSocket listener, no key.
    let s = kefu_server(&["websocket"], "");
    let a = s.addr("websocket");
    let mut ws = Ws::connect(&a, "/ws");
    let all = r#"{"message":"injected"}"#;
    // What a same-host proxy forwards (loopback peer), with and without a key, JSON or the
    // `text/plain` a cross-site no-cors fetch sends.
    for headers in [
        vec![("Content-Type", "application/json")],
        vec![("Content-Type", "text/plain")],
        vec![
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer anything"),
        ],
    ] {
        let st = post(&a, "/gateway/send_to_all", &headers, all);
        assert_ne!(st, 200, "the public listener answered the API");
    }
    // The visitor's socket got nothing: the next frame is the answer to its own bad request.
    ws.send_text("{");
    let first = ws.recv_text().expect("an answer");
    assert!(
        !first.contains("injected"),
        "a message injected through the public listener arrived: {first}"
    );
}

#[test]
fn api_listener_with_a_short_or_empty_key_refuses_to_start() {
    for key in ["", "short-key"] {
        let inst = Instance::new("echo", 1, &["api"])
            .config(&format!("[gateway]\nsecret_key = \"{key}\"\n"));
        let out = inst.start_detached();
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("at least 16 bytes"), "{out:?}");
    }
}

#[test]
fn api_listener_needs_key_json_and_no_origin_and_keeps_app_names() {
    let s = kefu_server(&["websocket", "api"], &api_config());
    let api = s.addr("api");
    let json_ct = ("Content-Type", "application/json");
    let bearer = format!("Bearer {API_KEY}");
    let auth = ("Authorization", bearer.as_str());
    let body = "{}";
    let path = "/gateway/get_all_client_id_count";
    // No key, a wrong key: 401. No loopback exemption.
    assert_eq!(post(&api, path, &[json_ct], body), 401);
    assert_eq!(
        post(
            &api,
            path,
            &[json_ct, ("Authorization", "Bearer nope")],
            body
        ),
        401
    );
    // The right key, but the content type a cross-site form or no-cors fetch can send: 415.
    assert_eq!(
        post(&api, path, &[auth, ("Content-Type", "text/plain")], body),
        415
    );
    assert_eq!(post(&api, path, &[auth], body), 415);
    // The right key from a browser page (any Origin, even our own): 403.
    for origin in [
        "https://evil.example",
        &format!("http://{}", s.addr("websocket")),
    ] {
        assert_eq!(
            post(&api, path, &[auth, json_ct, ("Origin", origin)], body),
            403
        );
    }
    // Everything right: 200.
    assert_eq!(post(&api, path, &[auth, json_ct], body), 200);
    // Nothing but the API on the API listener.
    let mut h = Http::connect(&api);
    assert_eq!(h.request("GET", "/", &[], b"").status, 404);

    // An anonymous connection cannot be made an agent through the API: the kefu app keeps
    // its uids and groups to itself; sends to them stay allowed.
    let mut ws = Ws::connect(&s.addr("websocket"), "/ws");
    ws.send_text("{");
    let _ = ws.recv_text();
    let ids = Http::connect(&api).ok("get_all_client_id_list", json!({}));
    let id = ids[0].as_str().unwrap().to_string();
    for (call, body) in [
        (
            "bind_uid",
            json!({"client_id": id, "uid": "agent:demo:admin"}),
        ),
        (
            "bind_uid",
            json!({"client_id": id, "uid": "visitor:demo:v1"}),
        ),
        (
            "join_group",
            json!({"client_id": id, "group": "agents:demo"}),
        ),
        (
            "leave_group",
            json!({"client_id": id, "group": "agents:demo"}),
        ),
        ("ungroup", json!({"group": "agents:demo"})),
    ] {
        let r = call_once(&api, Some(API_KEY), call, &body);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (403, "reserved_name"),
            "{call} {body}"
        );
    }
    assert_eq!(
        Http::connect(&api).ok("get_all_uid_list", json!({})),
        json!([])
    );
    let r = call_once(
        &api,
        Some(API_KEY),
        "send_to_uid",
        &json!({"uid": "agent:demo:admin", "message": "notice"}),
    );
    assert_eq!(r.status, 200);
    // Names outside the app's namespaces are the backend's to use.
    Http::connect(&api).ok("bind_uid", json!({"client_id": id, "uid": "crm:42"}));
}
