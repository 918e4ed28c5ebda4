//! The gateway across worker processes, through the HTTP API: clients spread over 2 and 4
//! workers; group, uid, all and client sends reach exactly the right clients, once, in order;
//! every worker answers lists and counts the same; sessions follow the client; kill -9 of a
//! worker removes its clients everywhere, the respawned worker catches up; reload hands every
//! client over with its id, uid, groups and session, and sends in flight arrive once.

mod common;

use common::http::{api_config, api_per_worker, Http};
use common::ws::Ws;
use common::{signal, wait_until, Instance};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

struct Client {
    ws: Ws,
    id: String,
    uid: Option<String>,
    groups: BTreeSet<String>,
}

impl Client {
    fn inc(&self) -> &str {
        &self.id[..16]
    }
}

fn connect_client(s: &Instance) -> Client {
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    let id = ws.recv_json_type("init")["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    Client {
        ws,
        id,
        uid: None,
        groups: BTreeSet::new(),
    }
}

fn sorted_ids<'a>(it: impl Iterator<Item = &'a Client>) -> Value {
    let mut v: Vec<&str> = it.map(|c| c.id.as_str()).collect();
    v.sort();
    json!(v)
}

/// What every worker must answer, from the test's own model of the clients.
fn expected_views(clients: &[Client]) -> Vec<(&'static str, Value, Value)> {
    let uids: BTreeSet<&str> = clients.iter().filter_map(|c| c.uid.as_deref()).collect();
    let groups: BTreeSet<&str> = clients
        .iter()
        .flat_map(|c| c.groups.iter().map(String::as_str))
        .collect();
    let even_uids: BTreeSet<&str> = clients
        .iter()
        .filter(|c| c.groups.contains("even"))
        .filter_map(|c| c.uid.as_deref())
        .collect();
    vec![
        ("get_all_client_id_count", json!({}), json!(clients.len())),
        (
            "get_all_client_id_list",
            json!({}),
            sorted_ids(clients.iter()),
        ),
        (
            "get_client_id_list_by_group",
            json!({"group": "even"}),
            sorted_ids(clients.iter().filter(|c| c.groups.contains("even"))),
        ),
        (
            "get_client_id_count_by_group",
            json!({"group": "all"}),
            json!(clients.iter().filter(|c| c.groups.contains("all")).count()),
        ),
        ("get_all_uid_list", json!({}), json!(uids)),
        ("get_all_uid_count", json!({}), json!(uids.len())),
        ("get_all_group_id_list", json!({}), json!(groups)),
        (
            "get_uid_list_by_group",
            json!({"group": "even"}),
            json!(even_uids),
        ),
        (
            "get_client_id_by_uid",
            json!({"uid": "u1"}),
            sorted_ids(clients.iter().filter(|c| c.uid.as_deref() == Some("u1"))),
        ),
    ]
}

/// Poll every API connection until all of them agree with the model.
fn assert_views(apis: &mut BTreeMap<String, Http>, clients: &[Client], what: &str) {
    let want = expected_views(clients);
    for (inc, h) in apis.iter_mut() {
        let mut last = Vec::new();
        let ok = wait_until(Duration::from_secs(10), || {
            last = want
                .iter()
                .filter_map(|(call, body, exp)| {
                    let got = h.ok(call, body.clone());
                    (got != *exp).then(|| format!("{call}: got {got}, want {exp}"))
                })
                .collect();
            last.is_empty()
        });
        assert!(ok, "{what}: worker {inc} disagrees: {last:?}");
    }
}

enum Op {
    Group(&'static str, Vec<usize>),
    Uid(&'static str),
    All(Vec<usize>),
    ToClient(usize),
}

/// Receivers of `op` among `clients` (indexes).
fn receivers(op: &Op, clients: &[Client]) -> Vec<usize> {
    (0..clients.len())
        .filter(|&i| {
            let c = &clients[i];
            match op {
                Op::Group(g, ex) => c.groups.contains(*g) && !ex.contains(&i),
                Op::Uid(u) => c.uid.as_deref() == Some(*u),
                Op::All(ex) => !ex.contains(&i),
                Op::ToClient(t) => *t == i,
            }
        })
        .collect()
}

/// From every worker, run a series of numbered sends; check that each client gets exactly
/// its messages, once, and in the order each worker sent them.
fn check_sends(apis: &mut BTreeMap<String, Http>, clients: &mut [Client], tag: &str) {
    let n = clients.len();
    let mut expected: Vec<Vec<String>> = vec![Vec::new(); n];
    for (w, (_, h)) in apis.iter_mut().enumerate() {
        let ops = [
            Op::Group("even", vec![]),
            Op::Uid("u1"),
            Op::Group("all", vec![0, n - 1]),
            Op::All(vec![1 % n]),
            Op::ToClient((w * 3 + 1) % n),
            Op::Group("even", vec![2 % n]),
            Op::Uid("u2"),
        ];
        for (k, op) in ops.iter().enumerate() {
            for round in 0..2 {
                let msg = format!("{tag}-w{w}-op{k}-r{round}");
                let ids = |ex: &Vec<usize>| -> Vec<&str> {
                    ex.iter().map(|&i| clients[i].id.as_str()).collect()
                };
                match op {
                    Op::Group(g, ex) => h.ok(
                        "send_to_group",
                        json!({"group": g, "message": msg, "exclude": ids(ex)}),
                    ),
                    Op::Uid(u) => h.ok("send_to_uid", json!({"uid": u, "message": msg})),
                    Op::All(ex) => h.ok("send_to_all", json!({"message": msg, "exclude": ids(ex)})),
                    Op::ToClient(t) => h.ok(
                        "send_to_client",
                        json!({"client_id": clients[*t].id, "message": msg}),
                    ),
                };
                for i in receivers(op, clients) {
                    expected[i].push(msg.clone());
                }
            }
        }
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < expected[i].len() {
            match c.ws.recv_text() {
                Some(m) => got.push(m),
                None => break,
            }
        }
        c.ws.sock
            .set_read_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        if let Some(extra) = c.ws.recv_text() {
            got.push(extra);
        }
        c.ws.sock
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // Per sending worker, the exact sequence; across workers, no order is promised.
        for w in 0..apis.len() {
            let p = format!("{tag}-w{w}-");
            let g: Vec<&String> = got.iter().filter(|m| m.starts_with(&p)).collect();
            let e: Vec<&String> = expected[i].iter().filter(|m| m.starts_with(&p)).collect();
            assert_eq!(g, e, "client {i} ({}) from worker #{w}", c.id);
        }
        assert_eq!(got.len(), expected[i].len(), "client {i}: {got:?}");
    }
}

fn setup_state(apis: &mut BTreeMap<String, Http>, clients: &mut [Client]) {
    let keys: Vec<String> = apis.keys().cloned().collect();
    for (i, c) in clients.iter_mut().enumerate() {
        // Ask a different worker each time: most changes cross workers to the owner.
        let h = apis.get_mut(&keys[i % keys.len()]).unwrap();
        let uid = format!("u{}", i % 3);
        h.ok("bind_uid", json!({"client_id": c.id, "uid": uid}));
        c.uid = Some(uid);
        h.ok("join_group", json!({"client_id": c.id, "group": "all"}));
        c.groups.insert("all".into());
        if i % 2 == 0 {
            h.ok("join_group", json!({"client_id": c.id, "group": "even"}));
            c.groups.insert("even".into());
        }
    }
}

fn scenario(nworkers: usize) {
    let s = Instance::new("bridge", nworkers, &["websocket", "api"])
        .config(&api_config())
        .start();
    let ws0 = s.workers();
    assert_eq!(ws0.len(), nworkers);
    let incs: BTreeSet<String> = ws0.iter().map(|w| w.2.clone()).collect();

    // Connect until every worker holds at least two clients.
    let mut clients: Vec<Client> = Vec::new();
    for _ in 0..400 {
        let mut per: HashMap<&str, usize> = HashMap::new();
        for c in &clients {
            *per.entry(c.inc()).or_default() += 1;
        }
        if incs
            .iter()
            .all(|i| per.get(i.as_str()).copied().unwrap_or(0) >= 2)
        {
            break;
        }
        clients.push(connect_client(&s));
    }
    for c in &clients {
        assert!(
            incs.contains(c.inc()),
            "client {} on an unknown worker",
            c.id
        );
    }
    let landed: BTreeSet<&str> = clients.iter().map(Client::inc).collect();
    assert_eq!(
        landed.len(),
        nworkers,
        "clients never spread over all workers"
    );

    let mut apis = api_per_worker(&s.addr("api"), &incs);
    setup_state(&mut apis, &mut clients);
    assert_views(&mut apis, &clients, "after setup");
    check_sends(&mut apis, &mut clients, "s1");

    // Sessions set through one worker are read from every other.
    let keys: Vec<String> = apis.keys().cloned().collect();
    for (i, c) in clients.iter().enumerate().take(4) {
        let setter = &keys[(i + 1) % keys.len()];
        let session = json!({"n": i, "nested": {"a": 1}});
        apis.get_mut(setter).unwrap().ok(
            "set_session",
            json!({"client_id": c.id, "session": session}),
        );
        apis.get_mut(&keys[(i + 2) % keys.len()]).unwrap().ok(
            "update_session",
            json!({"client_id": c.id, "session": {"nested": {"b": 2}}}),
        );
        let want = json!({"n": i, "nested": {"a": 1, "b": 2}});
        for (inc, h) in apis.iter_mut() {
            assert!(
                wait_until(Duration::from_secs(5), || h
                    .ok("get_session", json!({"client_id": c.id}))
                    == want),
                "session of client {i} never reached worker {inc}"
            );
        }
    }

    // kill -9 the worker of client 1: its clients vanish from every list at once.
    let victim_inc = clients[1].inc().to_string();
    let (victim_wid, victim_pid, _) = ws0.iter().find(|w| w.2 == victim_inc).unwrap().clone();
    signal(victim_pid, libc::SIGKILL);
    let (dead, alive): (Vec<Client>, Vec<Client>) =
        clients.into_iter().partition(|c| c.inc() == victim_inc);
    let mut clients = alive;
    for mut d in dead {
        assert!(
            d.ws.recv_text().is_none(),
            "a client of the killed worker still receives"
        );
    }
    apis.remove(&victim_inc);
    assert_views(&mut apis, &clients, "after kill -9");
    // The others keep receiving.
    check_sends(&mut apis, &mut clients, "s2");

    // The respawned worker (same slot, new pid and incarnation) catches up.
    let mut respawned = None;
    assert!(
        wait_until(Duration::from_secs(15), || {
            respawned = s
                .workers()
                .into_iter()
                .find(|w| w.0 == victim_wid && w.1 != victim_pid);
            respawned.is_some()
        }),
        "worker {victim_wid} was not respawned"
    );
    let (_, new_pid, new_inc) = respawned.unwrap();
    assert_ne!(new_pid, victim_pid);
    assert_ne!(new_inc, victim_inc);
    let mut incs: BTreeSet<String> = apis.keys().cloned().collect();
    incs.insert(new_inc.clone());
    let mut apis = api_per_worker(&s.addr("api"), &incs);
    assert_views(&mut apis, &clients, "respawned worker catching up");
    // New clients land on it too, and everyone sees them.
    for _ in 0..400 {
        if clients.iter().any(|c| c.inc() == new_inc) {
            break;
        }
        let c = connect_client(&s);
        clients.push(c);
    }
    assert!(clients.iter().any(|c| c.inc() == new_inc));
    assert_views(&mut apis, &clients, "after new clients");
    check_sends(&mut apis, &mut clients, "s3");

    // Reload hands every client over (issue 14): same ids, same incarnations (each successor
    // speaks as its predecessor), new pids; uids, groups and sessions intact from every
    // worker; a stream of sends running through the reload arrives exactly once, in order.
    let before = s.workers();
    let keys: Vec<String> = apis.keys().cloned().collect();
    for (i, c) in clients.iter().enumerate() {
        let h = apis.get_mut(&keys[i % keys.len()]).unwrap();
        h.ok(
            "set_session",
            json!({"client_id": c.id, "session": {"r": i, "o": {"k": "v"}}}),
        );
    }
    let api_addr = s.addr("api");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut h = Http::connect(&api_addr);
            let mut n = 0;
            while n < 20_000 && (n < 50 || !stop.load(std::sync::atomic::Ordering::Relaxed)) {
                h.ok(
                    "send_to_group",
                    json!({"group": "all", "message": format!("flight-{n}")}),
                );
                n += 1;
            }
            n
        })
    };
    let out = s.run(&["reload"], Duration::from_secs(60));
    assert!(out.ok(), "reload: {} {}", out.stdout, out.stderr);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.join().unwrap();
    let after = s.workers();
    let incs_after: BTreeSet<String> = after.iter().map(|w| w.2.clone()).collect();
    let incs_before: BTreeSet<String> = before.iter().map(|w| w.2.clone()).collect();
    assert_eq!(incs_after, incs_before, "the successors took other ids");
    for (wid, pid, _) in &before {
        assert!(
            after.iter().all(|(_, p, _)| p != pid),
            "worker {wid} was not replaced"
        );
    }
    for c in clients.iter_mut().filter(|c| c.groups.contains("all")) {
        for i in 0..sent {
            assert_eq!(
                c.ws.recv_text(),
                Some(format!("flight-{i}")),
                "client {} through the reload",
                c.id
            );
        }
    }
    // The API connections were handed over too: the same keep-alive sockets answer.
    assert_views(&mut apis, &clients, "after reload");
    check_sends(&mut apis, &mut clients, "s4");
    for (i, c) in clients.iter().enumerate() {
        for (inc, h) in apis.iter_mut() {
            assert_eq!(
                h.ok("get_session", json!({"client_id": c.id})),
                json!({"r": i, "o": {"k": "v"}}),
                "session of moved client {} on worker {inc}",
                c.id
            );
        }
    }
    // Changes to moved clients still work from every worker, and new clients get new ids.
    let keys: Vec<String> = apis.keys().cloned().collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let h = apis.get_mut(&keys[(i + 1) % keys.len()]).unwrap();
        h.ok("leave_group", json!({"client_id": c.id, "group": "all"}));
        c.groups.remove("all");
    }
    let old_ids: BTreeSet<String> = clients.iter().map(|c| c.id.clone()).collect();
    let fresh: Vec<Client> = (0..2 * nworkers).map(|_| connect_client(&s)).collect();
    for c in &fresh {
        assert!(!old_ids.contains(&c.id), "an id was handed out twice");
        assert!(incs_after.contains(c.inc()));
    }
    clients.extend(fresh);
    let n = clients.len();
    let mut more: Vec<Client> = clients.drain(n - 2 * nworkers..).collect();
    setup_state(&mut apis, &mut more);
    clients.extend(more);
    assert_views(&mut apis, &clients, "after reload and new clients");
    check_sends(&mut apis, &mut clients, "s5");
}

#[test]
fn two_workers() {
    scenario(2);
}

#[test]
fn four_workers() {
    scenario(4);
}
