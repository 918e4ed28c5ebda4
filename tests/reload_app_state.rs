//! What an app remembers survives a reload's hand-over (issue 14; `App::hand_over` /
//! `App::take_over`): the kefu app's away timers and per-address limits, and the bridge's
//! backend calls in flight. Each test makes the reload happen while that memory matters and
//! watches what a client sees afterwards.

mod common;

use common::http::{bridge_config, gated_backend};
use common::kefu_app::*;
use common::ws::Ws;
use common::{Instance, SEC};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Wait (bounded) until the master's log shows the retiring worker holding its clients for
/// the hand-over.
fn wait_handing(inst: &Instance) {
    assert!(
        common::wait_until(30 * SEC, || inst
            .stderr()
            .contains("handing its connections over")),
        "{}",
        inst.stderr()
    );
}

/// Run `kefu reload` and check that every connection moved (none closed with 1012).
fn reload_moving(inst: &Instance) {
    let out = inst.run(&["reload"], 60 * SEC);
    assert!(out.ok(), "{out:?}\n{}", inst.stderr());
    let log = inst.stderr();
    assert!(log.contains("] took over "), "{log}");
    assert!(!log.contains("no hand-over"), "{log}");
}

#[test]
fn an_away_agent_stays_away_across_a_reload_and_is_requeued_on_time() {
    let grace = Duration::from_secs(8);
    let k = Kefu::start(
        1,
        &format!("agent_away_grace = {}", grace.as_secs()),
        &[("shop", "alice", "Alice", None)],
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut v, _) = k.visitor("shop");
    say(&mut v, None, "c1", "hello");
    let conv = recv_until(&mut alice, "assigned", |m| m["method"] == "assigned")["conv"]["conv_id"]
        .as_i64()
        .unwrap();

    // Alice leaves: her away timer starts on the worker about to be replaced.
    drop(alice);
    recv_until(&mut v, "alice offline", |m| {
        m["method"] == "agent_presence" && m["agent_id"] == "alice" && m["online"] == false
    });
    let left = Instant::now();
    reload_moving(&k.inst);
    // Only meaningful if the old worker's timer had not fired yet when it handed over.
    assert!(
        left.elapsed() < grace,
        "the reload took longer than the grace period"
    );

    // The successor requeues her conversation when her time is up (the visitor's connection
    // moved too, and hears it).
    v.sock.set_read_timeout(Some(grace + 10 * SEC)).unwrap();
    let ev = recv_until(&mut v, "requeued event", |m| {
        m["method"] == "message" && m["event"] == "requeued"
    });
    assert_eq!(ev["conv_id"], conv, "{ev}");
    assert_eq!(ev["args"]["agent_id"], "alice", "{ev}");
    // Not earlier than her grace period (the carried timer keeps its deadline, it is not
    // fired at once on arrival).
    assert!(left.elapsed() >= grace, "{:?}", left.elapsed());
}

#[test]
fn a_rate_limited_address_stays_limited_across_a_reload() {
    let k = Kefu::start(
        1,
        "visitor_msg_per_ip = { per_min = 1, burst = 3 }",
        &[("shop", "alice", "Alice", None)],
    );
    let (mut v, _) = k.visitor("shop");
    let conv = say(&mut v, None, "m1", "one");
    assert!(conv > 0);
    let send = |v: &mut Ws, cmid: &str| -> Value {
        v.send_text(
            &json!({"method":"send","client_msg_id":cmid,"kind":"text","text":cmid}).to_string(),
        );
        recv_until(v, "answer", |m| {
            (m["method"] == "ack" || m.get("code").is_some()) && m["client_msg_id"] == cmid
        })
    };
    assert_eq!(send(&mut v, "m2")["method"], "ack");
    assert_eq!(send(&mut v, "m3")["method"], "ack");
    let limited = send(&mut v, "m4");
    assert!(limited.get("code").is_some(), "{limited}");
    assert!(limited.get("retry_after").is_some(), "{limited}");

    reload_moving(&k.inst);

    // Same connection (it moved), same address: still over its limit.
    let again = send(&mut v, "m5");
    assert_eq!(again["code"], limited["code"], "{again}");
    assert!(again.get("retry_after").is_some(), "{again}");
    // And another connection from the same address too.
    let (mut v2, _) = k.visitor("shop");
    let other = send(&mut v2, "n1");
    assert_eq!(other["code"], limited["code"], "{other}");
}

#[test]
fn a_bridge_call_in_flight_during_a_reload_gets_its_answer() {
    let (port, seen, gate) = gated_backend();
    let inst = Instance::new("bridge", 1, &["websocket", "api"])
        .config(&bridge_config(port, 20))
        .start();
    let mut ws = Ws::connect(&inst.addr("websocket"), "/");
    let id = ws.recv_json_type("init")["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let pids0 = inst.worker_pids();

    // One call running at the backend, one message waiting behind it (or still unread).
    ws.send_text(r#"{"n":1}"#);
    assert_eq!(
        seen.recv_timeout(10 * SEC).unwrap()["message"],
        json!({"n": 1})
    );
    ws.send_text(r#"{"n":2}"#);

    // The reload starts while the backend still holds the answer.
    let reload = {
        let dir = inst.dir.clone();
        std::thread::spawn(move || {
            let args = ["reload", "--pid-file", "k.pid"].map(String::from);
            common::run_in(&dir, &args, 60 * SEC)
        })
    };
    wait_handing(&inst);
    gate.send(()).unwrap();
    assert_eq!(
        seen.recv_timeout(10 * SEC).unwrap()["message"],
        json!({"n": 2})
    );
    gate.send(()).unwrap();
    let out = reload.join().unwrap();
    assert!(out.ok(), "{out:?}\n{}", inst.stderr());

    // Both answers, once each, in order, on the same connection (no close on the way).
    let got = |ws: &mut Ws| -> Value {
        serde_json::from_str(&ws.recv_text().expect("an answer")).unwrap()
    };
    assert_eq!(got(&mut ws), json!({"echo": {"n": 1}}));
    assert_eq!(got(&mut ws), json!({"echo": {"n": 2}}));
    let pids1 = inst.worker_pids();
    assert!(
        pids1.iter().all(|p| !pids0.contains(p)),
        "{pids0:?} {pids1:?}"
    );
    ws.send_text(r#"{"n":3}"#);
    let third = seen.recv_timeout(10 * SEC).unwrap();
    assert_eq!(third["message"], json!({"n": 3}));
    assert_eq!(third["client_id"], id.as_str(), "the client id changed");
    gate.send(()).unwrap();
    assert_eq!(got(&mut ws), json!({"echo": {"n": 3}}));
}
