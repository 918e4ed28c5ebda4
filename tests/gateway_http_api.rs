//! The gateway HTTP API end to end: the real binary, real sockets, every call, the errors.

mod common;

use common::http::{call_once, Http, API_KEY};
use common::ws::Ws;
use common::Instance;
use serde_json::json;
use std::time::Duration;

const KEY: &str = API_KEY;

fn start(workers: usize, key: &str) -> Instance {
    Instance::new("bridge", workers, &["websocket", "api"])
        .config(&format!(
            "[gateway]\nsecret_key = \"{key}\"\n[limits]\nmax_package_size = 4096\n"
        ))
        .start()
}

/// A WebSocket client of the bridge app with its client id (from the init message).
fn client(s: &Instance) -> (Ws, String) {
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    let init = ws.recv_json_type("init");
    let id = init["client_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    (ws, id)
}

fn api(s: &Instance) -> Http {
    let mut h = Http::connect(&s.addr("api"));
    h.key = Some(KEY.to_string());
    h
}

/// Next text message, or None within a short wait.
fn recv_quick(ws: &mut Ws) -> Option<String> {
    ws.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let m = ws.recv_text();
    ws.sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    m
}

#[test]
fn every_call_end_to_end() {
    let s = start(1, KEY);
    let (mut a, ida) = client(&s);
    let (mut b, idb) = client(&s);
    let (mut c, idc) = client(&s);
    let mut h = api(&s);

    // Counts and lists.
    assert_eq!(h.ok("get_all_client_id_count", json!({})), 3);
    let mut all = vec![ida.clone(), idb.clone(), idc.clone()];
    all.sort();
    assert_eq!(h.ok("get_all_client_id_list", json!({})), json!(all));
    assert_eq!(h.ok("is_online", json!({"client_id": ida})), true);

    // Uids.
    h.ok("bind_uid", json!({"client_id": ida, "uid": "u1"}));
    h.ok("bind_uid", json!({"client_id": idb, "uid": 7}));
    assert_eq!(h.ok("is_uid_online", json!({"uid": "u1"})), true);
    assert_eq!(h.ok("is_uid_online", json!({"uid": "nobody"})), false);
    assert_eq!(
        h.ok("get_client_id_by_uid", json!({"uid": "7"})),
        json!([idb])
    );
    assert_eq!(
        h.ok("get_uid_by_client_id", json!({"client_id": ida})),
        "u1"
    );
    assert_eq!(
        h.ok("get_uid_by_client_id", json!({"client_id": idc})),
        json!(null)
    );
    assert_eq!(h.ok("get_all_uid_list", json!({})), json!(["7", "u1"]));
    assert_eq!(h.ok("get_all_uid_count", json!({})), 2);

    // Groups.
    h.ok("join_group", json!({"client_id": ida, "group": "g1"}));
    h.ok("join_group", json!({"client_id": idb, "group": "g1"}));
    h.ok("join_group", json!({"client_id": idc, "group": "g2"}));
    assert_eq!(
        h.ok("get_client_id_count_by_group", json!({"group": "g1"})),
        2
    );
    assert_eq!(h.ok("get_client_id_count_by_group", json!({})), 3);
    let mut g1 = vec![ida.clone(), idb.clone()];
    g1.sort();
    assert_eq!(
        h.ok("get_client_id_list_by_group", json!({"group": "g1"})),
        json!(g1)
    );
    assert_eq!(
        h.ok("get_uid_list_by_group", json!({"group": "g1"})),
        json!(["7", "u1"])
    );
    assert_eq!(h.ok("get_uid_count_by_group", json!({"group": "g1"})), 2);
    assert_eq!(
        h.ok("get_all_group_id_list", json!({})),
        json!(["g1", "g2"])
    );

    // Sends: text, JSON value, binary; to client, uid, group, all.
    h.ok(
        "send_to_client",
        json!({"client_id": ida, "message": "hello a"}),
    );
    assert_eq!(a.recv_text().unwrap(), "hello a");
    h.ok("send_to_uid", json!({"uid": 7, "message": {"n": 1}}));
    assert_eq!(b.recv_text().unwrap(), r#"{"n":1}"#);
    h.ok(
        "send_to_uid",
        json!({"uids": ["u1", "7"], "message": "uids"}),
    );
    assert_eq!(a.recv_text().unwrap(), "uids");
    assert_eq!(b.recv_text().unwrap(), "uids");
    h.ok(
        "send_to_group",
        json!({"group": "g1", "message": "g1 but not b", "exclude": [idb]}),
    );
    assert_eq!(a.recv_text().unwrap(), "g1 but not b");
    h.ok(
        "send_to_group",
        json!({"groups": ["g1", "g2"], "message": "both groups"}),
    );
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(ws.recv_text().unwrap(), "both groups");
    }
    h.ok(
        "send_to_all",
        json!({"message": {"binary_base64": "AAEC"}, "exclude": [ida]}),
    );
    for ws in [&mut b, &mut c] {
        let f = ws.recv_frame().unwrap();
        assert_eq!((f.opcode, f.payload), (2, vec![0, 1, 2]));
    }
    h.ok(
        "send_to_all",
        json!({"message": "listed", "client_ids": [ida, idc], "exclude": [idc]}),
    );
    assert_eq!(a.recv_text().unwrap(), "listed");
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(recv_quick(ws), None, "a client got a message it should not");
    }

    // Sessions.
    h.ok(
        "set_session",
        json!({"client_id": ida, "session": {"name": "A", "o": {"x": 1}}}),
    );
    h.ok(
        "update_session",
        json!({"client_id": ida, "session": {"o": {"y": 2}}}),
    );
    assert_eq!(
        h.ok("get_session", json!({"client_id": ida})),
        json!({"name": "A", "o": {"x": 1, "y": 2}})
    );
    h.ok(
        "set_session",
        json!({"client_id": idb, "session": {"name": "B"}}),
    );
    assert_eq!(
        h.ok("get_client_sessions_by_group", json!({"group": "g1"})),
        json!({ida.clone(): {"name": "A", "o": {"x": 1, "y": 2}}, idb.clone(): {"name": "B"}})
    );
    let all_sessions = h.ok("get_all_client_sessions", json!({}));
    assert_eq!(all_sessions.as_object().unwrap().len(), 3);
    assert_eq!(all_sessions[&idc], json!({}));

    // Leave, unbind, ungroup.
    h.ok("leave_group", json!({"client_id": idb, "group": "g1"}));
    assert_eq!(
        h.ok("get_client_id_list_by_group", json!({"group": "g1"})),
        json!([ida])
    );
    h.ok("unbind_uid", json!({"client_id": idb, "uid": 7}));
    assert_eq!(h.ok("is_uid_online", json!({"uid": 7})), false);
    h.ok("ungroup", json!({"group": "g2"}));
    assert_eq!(h.ok("get_all_group_id_list", json!({})), json!(["g1"]));

    // Close with a last message, destroy.
    h.ok("close_client", json!({"client_id": ida, "message": "bye"}));
    assert_eq!(a.recv_text().unwrap(), "bye");
    assert_eq!(a.recv_close_code(), Some(1000));
    h.ok("destroy_client", json!({"client_id": idb}));
    assert!(b.recv_frame().is_none(), "destroyed client must see EOF");
    assert_eq!(h.ok("is_online", json!({"client_id": ida})), false);
    assert_eq!(h.ok("get_all_client_id_list", json!({})), json!([idc]));
    // Their uid and groups went with them.
    assert_eq!(h.ok("get_all_uid_list", json!({})), json!([]));
    assert_eq!(h.ok("get_all_group_id_list", json!({})), json!([]));
}

#[test]
fn errors_and_auth() {
    let s = start(1, KEY);
    let (_a, ida) = client(&s);
    let addr = s.addr("api");

    // Wrong, missing, alternative header.
    let r = call_once(&addr, Some("wrong"), "get_all_client_id_count", &json!({}));
    assert_eq!((r.status, r.error_code().as_str()), (401, "unauthorized"));
    assert!(r.head.contains("WWW-Authenticate: Bearer"));
    let r = call_once(&addr, None, "get_all_client_id_count", &json!({}));
    assert_eq!((r.status, r.error_code().as_str()), (401, "unauthorized"));
    let mut h = Http::connect(&addr);
    h.key = None;
    let r = h.request(
        "POST",
        "/gateway/get_all_client_id_count",
        &[("X-Kefu-Key", KEY), ("Content-Type", "application/json")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"ok": true, "result": 1}));

    let mut h = api(&s);
    // Malformed JSON, wrong types, unknown fields.
    let r = h.request(
        "POST",
        "/gateway/is_online",
        &[("Content-Type", "application/json")],
        b"{\"client_id\":",
    );
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_json"));
    let r = h.call("is_online", &json!({"client_id": 5}));
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_request"));
    let r = h.call("is_online", &json!({"client_id": ida, "typo": 1}));
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_request"));
    // Unknown call, wrong method.
    let r = h.call("send_to_mars", &json!({}));
    assert_eq!((r.status, r.error_code().as_str()), (404, "unknown_call"));
    let r = h.request("GET", "/gateway/is_online", &[], b"");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (405, "method_not_allowed")
    );
    // Malformed and unknown client ids.
    let r = h.call(
        "send_to_client",
        &json!({"client_id": "xyz", "message": "m"}),
    );
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_client_id"));
    let gone = format!("{}00000063{}", &ida[..16], "00000000");
    let r = h.call(
        "send_to_client",
        &json!({"client_id": gone, "message": "m"}),
    );
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_online"));
    let r = h.call("get_session", &json!({"client_id": gone}));
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_online"));
    let r = h.call("join_group", &json!({"client_id": ida, "group": ""}));
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_group"));
    let r = h.call("send_to_group", &json!({"message": "no group"}));
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_request"));
    let r = h.call("send_to_all", &json!({"message": {"binary_base64": "!!"}}));
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_message"));
    // The connection survived every error (keep-alive).
    assert_eq!(h.ok("get_all_client_id_count", json!({})), 1);

    // Oversized body: over limits.max_package_size (4096).
    let big = json!({"client_id": ida, "message": "x".repeat(10_000)});
    let r = call_once(&addr, Some(KEY), "send_to_client", &big);
    assert_eq!(r.status, 413);

    // The API is served on its own listener only: the public WebSocket port does not know it.
    let r = call_once(
        &s.addr("websocket"),
        Some(KEY),
        "is_online",
        &json!({"client_id": ida}),
    );
    assert_eq!(r.status, 426, "{}", r.head);
}
