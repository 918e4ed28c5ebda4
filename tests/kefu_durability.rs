//! kill -9 of a worker while messages flow: every acknowledged message is in the history
//! afterwards, with its acked seq, in order, and each conversation's seqs have no gap.

mod common;

use common::http::http_json;
use common::kefu_app::*;
use common::ws::Ws;
use common::{port_owner, signal, wait_until, SEC};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;

/// What the test watches of a running sender.
#[derive(Default)]
struct Progress {
    /// Messages acknowledged so far.
    acked: AtomicUsize,
    /// The sender ended (stopped, or its connection died with its worker).
    done: AtomicBool,
    /// Local port of its connection (tells which worker serves it).
    port: AtomicU16,
}

/// One visitor sending as fast as acks come back; returns (token, acked (conv, seq, text)).
fn sender(
    addr: String,
    n: usize,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
) -> (String, Vec<(i64, i64, String)>) {
    let r = send_until_stopped(addr, n, &stop, &progress);
    progress.done.store(true, Ordering::SeqCst);
    r
}

fn send_until_stopped(
    addr: String,
    n: usize,
    stop: &AtomicBool,
    progress: &Progress,
) -> (String, Vec<(i64, i64, String)>) {
    let mut ws = Ws::connect(&addr, "/ws");
    progress
        .port
        .store(ws.sock.local_addr().unwrap().port(), Ordering::SeqCst);
    ws.send_text(r#"{"method":"visitor_login","bid":"shop"}"#);
    let l = recv_method(&mut ws, "visitor_login");
    let token = l["token"].as_str().unwrap().to_string();
    let mut acked = Vec::new();
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let text = format!("s{n}-m{i}");
        ws.send_text(
            &json!({"method":"send","client_msg_id":format!("c{i}"),"kind":"text","text":text})
                .to_string(),
        );
        // Wait for this message's ack; the connection may die with the worker.
        let ack = loop {
            match recv_json(&mut ws) {
                Some(v) if v["method"] == "ack" => break Some(v),
                Some(v) if v.get("code").is_some() => panic!("send refused: {v}"),
                Some(_) => continue,
                None => break None,
            }
        };
        let Some(a) = ack else { break };
        acked.push((
            a["conv_id"].as_i64().unwrap(),
            a["seq"].as_i64().unwrap(),
            text,
        ));
        progress.acked.fetch_add(1, Ordering::SeqCst);
    }
    (token, acked)
}

fn full_history(addr: &str, token: &str, conv: i64) -> Vec<Value> {
    let auth = format!("Bearer {token}");
    let mut all: Vec<Value> = Vec::new();
    let mut before = String::new();
    loop {
        let (st, h) = http_json(
            addr,
            "GET",
            &format!("/api/history?conv_id={conv}&limit=100{before}"),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(st, 200, "{h}");
        let page = h["messages"].as_array().unwrap().clone();
        let first = page.first().map(|m| m["seq"].as_i64().unwrap());
        all.splice(0..0, page);
        match (h["has_more"].as_bool().unwrap(), first) {
            (true, Some(f)) => before = format!("&before_seq={f}"),
            _ => return all,
        }
    }
}

#[test]
fn kill9_worker_loses_no_acked_message() {
    // No agent: every visitor writes into its own queued (leave-a-message) conversation.
    let k = Kefu::start(
        2,
        // Load from one address: the per-connection and per-address limits are off.
        "rate_per_sec = 100000.0\nrate_burst = 100000.0\n\
         visitor_msg_per_ip = { per_min = 0, burst = 0 }",
        &[("shop", "alice", "Alice", None)],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let progress: Vec<Arc<Progress>> = (0..8).map(|_| Arc::default()).collect();
    let threads: Vec<_> = progress
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let (a, s, p) = (k.addr(), stop.clone(), p.clone());
            std::thread::spawn(move || sender(a, n, s, p))
        })
        .collect();
    let acked = |i: usize| progress[i].acked.load(Ordering::SeqCst);
    // Kill only once messages flow on every connection.
    assert!(
        wait_until(60 * SEC, || (0..8).all(|i| acked(i) >= 20)),
        "senders never got going"
    );
    let pids = k.worker_pids();
    assert_eq!(pids.len(), 2, "workers: {pids:?}");
    // The victim is the worker serving sender 0, so the kill cuts live connections.
    let server_port: u16 = k.addr().rsplit(':').next().unwrap().parse().unwrap();
    let victim = port_owner(progress[0].port.load(Ordering::SeqCst), server_port, &pids)
        .expect("no worker holds sender 0's socket");
    signal(victim, libc::SIGKILL);
    // Keep sending until the master has a replacement ready and every sender that survived
    // the kill has had messages acknowledged after it (the cut ones are done).
    let at_kill: Vec<usize> = (0..8).map(acked).collect();
    k.inst.wait_workers_ready(2, &[victim], 60 * SEC);
    let flowed = wait_until(60 * SEC, || {
        (0..8).all(|i| progress[i].done.load(Ordering::SeqCst) || acked(i) >= at_kill[i] + 20)
    });
    assert!(flowed, "surviving senders stalled after the kill");
    let cut = (0..8)
        .filter(|&i| progress[i].done.load(Ordering::SeqCst))
        .count();
    assert!(cut >= 1, "the kill cut no sender");
    stop.store(true, Ordering::Relaxed);
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    let total: usize = results.iter().map(|(_, a)| a.len()).sum();
    assert!(total > 100, "too few messages flowed: {total}");
    eprintln!("acked {total} messages; {cut} senders were cut short");
    // The replacement is ready (waited for above); history is read through whichever
    // worker answers.
    for (token, acked) in &results {
        let mut by_conv: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
        for (c, s, t) in acked {
            by_conv.entry(*c).or_default().push((*s, t.clone()));
        }
        for (conv, msgs) in by_conv {
            let h = full_history(&k.addr(), token, conv);
            let seqs: Vec<i64> = h.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
            assert_eq!(
                seqs,
                (1..=seqs.len() as i64).collect::<Vec<_>>(),
                "gap in conv {conv}"
            );
            for (s, t) in &msgs {
                let m = &h[(*s - 1) as usize];
                assert_eq!(
                    m["text"].as_str(),
                    Some(t.as_str()),
                    "acked seq {s} of conv {conv}"
                );
            }
            // Acked order is history order.
            assert!(msgs.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}
