//! The kefu app through a reload (issue 14): an agent and a visitor chat on two workers while
//! `kefu reload` replaces both, messages in flight both ways. Nobody is disconnected, the
//! conversation's seqs have no gap and no repeat, each side gets every message of the other
//! exactly once and in order, and after the reload the moved connections are still logged in
//! (typing and read receipts flow, sends need no new login).

mod common;

use common::kefu_app::*;
use common::ws::Ws;
use common::SEC;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// What one side saw: its own acks' seqs and the other side's messages `(seq, text)`.
#[derive(Default)]
struct Seen {
    acked: Vec<i64>,
    got: Vec<(i64, String)>,
}

/// Send messages `{tag}-{i}` in bursts of four (so some are always unread or unanswered when
/// the reload comes), waiting for each burst's acks and keeping every message of the other
/// side that arrives meanwhile; goes on until `stop` and at least `min` were sent.
fn chat(
    ws: &mut Ws,
    conv: i64,
    tag: &str,
    from_other: &str,
    stop: &AtomicBool,
    min: usize,
    sent: &AtomicUsize,
) -> Seen {
    let mut seen = Seen::default();
    let mut i = 0;
    while i < min || !stop.load(Ordering::Relaxed) {
        let burst: Vec<String> = (i..i + 4).map(|j| format!("{tag}-{j}")).collect();
        for cmid in &burst {
            let m = json!({"method":"send","conv_id":conv,"client_msg_id":cmid,"kind":"text","text":cmid});
            ws.send_text(&m.to_string());
        }
        let mut acks = 0;
        while acks < burst.len() {
            let v = recv_json(ws).unwrap_or_else(|| panic!("{tag}: closed or silent at {i}"));
            if v.get("code").is_some() {
                panic!("{tag}: error {v}");
            }
            if v["method"] == "message" && v["from"] == from_other {
                seen.got.push((
                    v["seq"].as_i64().unwrap(),
                    v["text"].as_str().unwrap().to_string(),
                ));
            }
            if v["method"] == "ack" {
                // Acks come in the order of the sends.
                assert_eq!(v["client_msg_id"], burst[acks], "{tag}: ack out of order");
                seen.acked.push(v["seq"].as_i64().unwrap());
                acks += 1;
            }
        }
        i += burst.len();
        sent.fetch_add(burst.len(), Ordering::Relaxed);
    }
    seen
}

/// Read until `want` messages of the other side were seen in total.
fn drain(ws: &mut Ws, seen: &mut Seen, from_other: &str, want: usize) {
    while seen.got.len() < want {
        let v = recv_json(ws).expect("closed or silent while draining");
        if v["method"] == "message" && v["from"] == from_other {
            seen.got.push((
                v["seq"].as_i64().unwrap(),
                v["text"].as_str().unwrap().to_string(),
            ));
        }
    }
}

#[test]
fn agent_and_visitor_chat_through_a_reload_without_noticing() {
    let k = Kefu::start(
        2,
        "rate_per_sec = 1000.0\nrate_burst = 1000.0",
        &[("shop", "alice", "Alice", None)],
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut v, _) = k.visitor("shop");
    let first = say(&mut v, None, "v-open", "hello");
    let conv = recv_until(&mut alice, "assigned", |m| m["method"] == "assigned")["conv"]["conv_id"]
        .as_i64()
        .unwrap();
    recv_until(&mut alice, "first message", |m| {
        m["method"] == "message" && m["seq"] == first
    });
    let pids0 = k.worker_pids();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let agent_side = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let seen = chat(&mut alice, conv, "a", "visitor", &stop, 20, &sent);
            (alice, seen)
        })
    };
    let visitor_side = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let seen = chat(&mut v, conv, "v", "agent", &stop, 20, &sent);
            (v, seen)
        })
    };
    // Reload while both sides are mid-conversation, then let them go on a little.
    assert!(common::wait_until(20 * SEC, || sent
        .load(Ordering::Relaxed)
        >= 10));
    let out = k.inst.run(&["reload"], 60 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.inst.stdout());
    let after = sent.load(Ordering::Relaxed);
    assert!(common::wait_until(20 * SEC, || sent
        .load(Ordering::Relaxed)
        >= after + 10));
    stop.store(true, Ordering::Relaxed);
    let (mut alice, mut a_seen) = agent_side.join().unwrap();
    let (mut v, mut v_seen) = visitor_side.join().unwrap();
    let pids1 = k.worker_pids();
    assert!(
        pids1.iter().all(|p| !pids0.contains(p)),
        "not every worker was replaced: {pids0:?} -> {pids1:?}"
    );
    // Both workers handed over (the agent and the visitor may share one; the master logs
    // each successor's count), and nobody started fresh.
    let log = k.inst.stderr();
    let moved: usize = log
        .lines()
        .filter(|l| l.contains("] took over "))
        .filter_map(|l| {
            l.split("] took over ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert!(moved >= 2, "{log}");
    assert!(!log.contains("starts fresh"), "{log}");
    drain(&mut alice, &mut a_seen, "visitor", v_seen.acked.len());
    drain(&mut v, &mut v_seen, "agent", a_seen.acked.len());

    // Each side got each of the other's messages once, in order, with the seq it was acked with.
    let expect = |acked: &[i64], tag: &str| -> Vec<(i64, String)> {
        acked
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, format!("{tag}-{i}")))
            .collect()
    };
    assert_eq!(a_seen.got, expect(&v_seen.acked, "v"), "agent's view");
    assert_eq!(v_seen.got, expect(&a_seen.acked, "a"), "visitor's view");
    // The conversation's seqs: no gap, no repeat, from the first message on.
    let all: BTreeSet<i64> = a_seen.acked.iter().chain(&v_seen.acked).copied().collect();
    let n = a_seen.acked.len() + v_seen.acked.len();
    assert_eq!(all.len(), n, "a seq was handed out twice");
    let want: BTreeSet<i64> = (first + 1..=first + n as i64).collect();
    assert_eq!(all, want, "seqs have a gap");

    // Still logged in on the new workers: typing and read receipts flow both ways.
    alice.send_text(&json!({"method":"typing","conv_id":conv,"typing":true}).to_string());
    let t = recv_until(&mut v, "typing", |m| m["method"] == "typing");
    assert_eq!(
        (t["from"].as_str(), t["typing"].as_bool()),
        (Some("agent"), Some(true))
    );
    let last = *all.iter().next_back().unwrap();
    v.send_text(&json!({"method":"read","conv_id":conv,"seq":last}).to_string());
    let r: Value = recv_until(&mut alice, "read", |m| m["method"] == "read");
    assert_eq!(
        (r["by"].as_str(), r["seq"].as_i64()),
        (Some("visitor"), Some(last))
    );
    let s = say(&mut v, Some(conv), "v-after", "after");
    assert_eq!(s, last + 1);
    recv_until(&mut alice, "after", |m| {
        m["method"] == "message" && m["seq"] == s
    });
}
