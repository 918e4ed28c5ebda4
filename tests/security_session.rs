//! The 64 KiB session cap holds on the merged result, on every worker (issue 11, item 15):
//! `update_session` patches each under the cap must not add up to a larger session, neither
//! on the client's own worker nor in another worker's copy when the call went through it.

mod common;

use common::http::{api_config, Http};
use common::ws::Ws;
use common::Instance;
use serde_json::{json, Value};

const MAX_SESSION: usize = 64 * 1024;

/// An API connection served by a worker whose incarnation is (`same`) or is not `inc`.
fn api_on(s: &Instance, inc: &str, same: bool) -> Http {
    for _ in 0..400 {
        let mut h = Http::connect(&s.addr("api"));
        let a = h.call("get_all_client_id_count", &json!({}));
        assert_eq!(a.status, 200);
        if (a.header("X-Kefu-Incarnation").unwrap() == inc) == same {
            return h;
        }
    }
    panic!("no API connection reached the wanted worker");
}

fn session_bytes(h: &mut Http, id: &str) -> usize {
    let v: Value = h.ok("get_session", json!({"client_id": id}));
    serde_json::to_vec(&v).unwrap().len()
}

#[test]
fn session_cap_is_checked_on_the_merged_result_everywhere() {
    let s = Instance::new("bridge", 2, &["websocket", "api"])
        .config(&api_config())
        .start();
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    let id = ws.recv_json_type("init")["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let inc = id[..16].to_string();
    let mut other = api_on(&s, &inc, false);
    let mut owner = api_on(&s, &inc, true);

    // Patches of 30 000 bytes through the worker that does not own the client: two fit, the
    // third would make the session ~90 KB and is refused there, before the owner is asked.
    let chunk = "x".repeat(30_000);
    for i in 0..2 {
        other.ok(
            "update_session",
            json!({"client_id": id, "session": {format!("k{i}"): chunk}}),
        );
    }
    // The owner's replication of each patch comes back to `other` after its own mirror of
    // the next one (the mirror only gives read-your-writes until then). A change the owner
    // makes afterwards arrives behind all of them on the same link: once `other` sees it,
    // its copy is the owner's settled k0+k1.
    owner.ok("join_group", json!({"client_id": id, "group": "settled"}));
    assert!(common::wait_until(10 * common::SEC, || {
        other.ok("get_client_id_count_by_group", json!({"group": "settled"})) == 1
    }));
    let a = other.call(
        "update_session",
        &json!({"client_id": id, "session": {"k2": chunk}}),
    );
    assert_ne!(a.json()["ok"], true, "a 90 KB session was accepted");
    assert!(session_bytes(&mut other, &id) <= MAX_SESSION);

    // The owner refuses the same growth, and both copies stay within the cap.
    let a = owner.call(
        "update_session",
        &json!({"client_id": id, "session": {"k3": chunk}}),
    );
    assert_ne!(a.json()["ok"], true, "the owner accepted a 90 KB session");
    assert!(session_bytes(&mut owner, &id) <= MAX_SESSION);
    assert!(session_bytes(&mut other, &id) <= MAX_SESSION);
    // A replacement is measured on its own, and reaches the other copy as is.
    owner.ok(
        "set_session",
        json!({"client_id": id, "session": {"k": chunk}}),
    );
    assert!(common::wait_until(
        std::time::Duration::from_secs(5),
        || {
            let n = session_bytes(&mut other, &id);
            n < 31_000 && n > 30_000
        }
    ));
}
