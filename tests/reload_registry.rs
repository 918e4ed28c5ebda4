//! A reload copies each worker's registry replica (client ids, uids, groups, sessions) to its
//! successor ahead of the commit, while it serves on, and then sends again only the clients
//! that changed since (issue 14). Here the uids, groups and sessions of one worker's clients
//! change after that worker copied its replica and before it commits, and every worker
//! answers them as changed after the reload, sends included.
//!
//! How the changes land in that window: the bridge app waits for its backend calls before it
//! commits (`App::settled`), and the test's backend holds one call of a client of worker W.
//! The other worker P has nothing in flight: its successor takes over while W still waits,
//! and an API connection that moved with P makes the changes. W applies each change to its
//! own client and replicates it back over the bus; once P's successor shows it, W has it.

mod common;

use common::http::{api_per_worker, bridge_config, gated_backend};
use common::ws::Ws;
use common::{wait_until, Instance, SEC};
use serde_json::{json, Value};
use std::collections::BTreeSet;

struct Client {
    ws: Ws,
    id: String,
}

impl Client {
    fn inc(&self) -> &str {
        &self.id[..16]
    }
}

fn sorted(ids: impl Iterator<Item = String>) -> Value {
    let mut v: Vec<String> = ids.collect();
    v.sort();
    json!(v)
}

#[test]
fn registry_changes_after_the_copy_reach_the_successor_and_every_worker() {
    let (port, seen, gate) = gated_backend();
    let s = Instance::new("bridge", 2, &["websocket", "api"])
        .config(&bridge_config(port, 60))
        .start();
    let ws0 = s.workers();
    let incs: BTreeSet<String> = ws0.iter().map(|w| w.2.clone()).collect();
    assert_eq!(incs.len(), 2);

    // Clients until each worker holds three.
    let mut clients: Vec<Client> = Vec::new();
    for _ in 0..400 {
        let on = |inc: &String| clients.iter().filter(|c| c.inc() == inc).count();
        if incs.iter().all(|i| on(i) >= 3) {
            break;
        }
        let mut ws = Ws::connect(&s.addr("websocket"), "/");
        let id = ws.recv_json_type("init")["client_id"]
            .as_str()
            .unwrap()
            .to_string();
        clients.push(Client { ws, id });
    }
    let w_inc = clients[0].inc().to_string();
    let p_inc = incs.iter().find(|&i| *i != w_inc).unwrap().clone();
    let wid = |inc: &str| ws0.iter().find(|w| w.2 == inc).unwrap().0;
    let (w_id, p_id) = (wid(&w_inc), wid(&p_inc));
    assert!(clients.iter().filter(|c| c.inc() == p_inc).count() >= 3);
    let mut apis = api_per_worker(&s.addr("api"), &incs);

    // State before the reload, set through both workers.
    let keys: Vec<String> = apis.keys().cloned().collect();
    for (i, c) in clients.iter().enumerate() {
        let h = apis.get_mut(&keys[i % 2]).unwrap();
        h.ok(
            "bind_uid",
            json!({"client_id": c.id, "uid": format!("u{i}")}),
        );
        h.ok("join_group", json!({"client_id": c.id, "group": "before"}));
        h.ok(
            "set_session",
            json!({"client_id": c.id, "session": {"i": i, "o": {"a": 1}}}),
        );
    }

    // A call of W's client 0 waits at the backend: W cannot commit before it is answered.
    clients[0].ws.send_text(r#"{"hold":1}"#);
    let req = seen.recv_timeout(30 * SEC).expect("the backend call");
    assert_eq!(req["client_id"], clients[0].id.as_str());

    let reloading = {
        let dir = s.dir.clone();
        std::thread::spawn(move || {
            let args = ["reload", "--pid-file", "k.pid"].map(String::from);
            common::run_in(&dir, &args, 120 * SEC)
        })
    };
    // W has copied its replica ahead; P's successor serves (P had nothing to wait for).
    let copied = format!("worker {w_id} copied ");
    let p_took = format!("worker {p_id} took over ");
    assert!(
        wait_until(60 * SEC, || {
            let log = s.stderr();
            log.contains(&copied) && log.contains(&p_took)
        }),
        "{}",
        s.stderr()
    );

    // Through the API connection that moved with P: W's clients change (W applies them,
    // then replicates them back to P's successor), and so do P's.
    let h = apis.get_mut(&p_inc).unwrap();
    let mut changed_on_w = 0;
    for (i, c) in clients.iter().enumerate() {
        h.ok(
            "bind_uid",
            json!({"client_id": c.id, "uid": format!("v{i}")}),
        );
        if i % 2 == 1 {
            h.ok("leave_group", json!({"client_id": c.id, "group": "before"}));
        }
        h.ok("join_group", json!({"client_id": c.id, "group": "after"}));
        h.ok(
            "update_session",
            json!({"client_id": c.id, "session": {"j": i, "o": {"b": 2}}}),
        );
        if c.inc() == w_inc {
            changed_on_w += 1;
        }
    }
    let want_session = |i: usize| json!({"i": i, "j": i, "o": {"a": 1, "b": 2}});
    for (i, c) in clients.iter().enumerate().filter(|(_, c)| c.inc() == w_inc) {
        assert!(
            wait_until(30 * SEC, || h.ok("get_session", json!({"client_id": c.id}))
                == want_session(i)),
            "W's change of client {i} never came back"
        );
    }
    // W waits for its app at most a few seconds: on a very slow machine it may have
    // committed meanwhile (the changes then reach its successor over the bus instead).
    let in_window = !s.stderr().contains(&format!("worker {w_id} handed "));
    // Only now may W answer its client and commit.
    gate.send(()).unwrap();
    let out = reloading.join().unwrap();
    assert!(out.ok(), "{out:?}\n{}", s.stderr());
    let log = s.stderr();
    assert!(!log.contains("no hand-over"), "{log}");
    if in_window {
        // W's commit sent these clients again (and maybe others the bus changed meanwhile).
        let line = log
            .lines()
            .find(|l| l.contains(&format!("worker {w_id} handed ")))
            .expect("W's commit line");
        let resent: usize = line
            .rsplit_once('(')
            .and_then(|(_, r)| r.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(resent >= changed_on_w, "{line}");
        eprintln!("{line}");
    } else {
        eprintln!("W committed before the changes were made (a very slow machine)");
    }

    // Every worker, through new connections and the moved ones, answers the changed state.
    let after: BTreeSet<String> = s.workers().into_iter().map(|w| w.2).collect();
    assert_eq!(after, incs, "the successors took other incarnations");
    let mut fresh = api_per_worker(&s.addr("api"), &incs);
    for (inc, h) in fresh.iter_mut().chain(apis.iter_mut()) {
        for (i, c) in clients.iter().enumerate() {
            assert_eq!(
                h.ok("get_session", json!({"client_id": c.id})),
                want_session(i),
                "session of client {i} on worker {inc}"
            );
            assert_eq!(
                h.ok("get_client_id_by_uid", json!({"uid": format!("v{i}")})),
                json!([c.id]),
                "uid of client {i} on worker {inc}"
            );
            assert_eq!(
                h.ok("get_client_id_by_uid", json!({"uid": format!("u{i}")})),
                json!([]),
                "old uid of client {i} on worker {inc}"
            );
        }
        assert_eq!(
            h.ok("get_client_id_list_by_group", json!({"group": "after"})),
            sorted(clients.iter().map(|c| c.id.clone())),
            "group after on worker {inc}"
        );
        assert_eq!(
            h.ok("get_client_id_list_by_group", json!({"group": "before"})),
            sorted(clients.iter().step_by(2).map(|c| c.id.clone())),
            "group before on worker {inc}"
        );
    }
    // Sends from each worker reach the groups and uids as changed.
    for (w, (_, h)) in fresh.iter_mut().enumerate() {
        h.ok(
            "send_to_group",
            json!({"group": "before", "message": format!("g{w}")}),
        );
        h.ok(
            "send_to_uid",
            json!({"uid": "v1", "message": format!("u{w}")}),
        );
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut want: Vec<String> = Vec::new();
        for w in 0..2 {
            if i % 2 == 0 {
                want.push(format!("g{w}"));
            }
            if i == 1 {
                want.push(format!("u{w}"));
            }
        }
        let mut got: Vec<String> = Vec::new();
        while got.len() < want.len() {
            let m = c.ws.recv_text().expect("a send after the reload");
            // Client 0 also hears the backend's answer to its held call.
            if !m.contains("echo") {
                got.push(m);
            }
        }
        got.sort();
        want.sort();
        assert_eq!(got, want, "client {i}");
    }
}
