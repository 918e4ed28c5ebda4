//! What the nodes of a cluster on PostgreSQL share besides the conversations: the token
//! signing key and the uploads are in the database, so a token issued by one node is taken by
//! every other and an image uploaded through one node is served by every other, with nothing
//! copied between hosts; a node whose own key file differs says so and uses the cluster's; a
//! rotation on one node reaches the others by itself. And writers lock per business: a
//! business held up does not hold up another, and seqs stay gapless and unique under
//! concurrent sends from two nodes.

mod common;

use common::cluster::Redis;
use common::http::{http, http_json};
use common::kefu_app::*;
use common::kefu_cluster::{available, node, node_keyed, node_toml, open_conv};
use common::pg::Pg;
use common::ws::Ws;
use common::{wait_until, SEC};
use kefu::app::kefu::auth::{Claims, Role, Secret};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// The first half of a business's advisory lock key (`BUSINESS_LOCK` in src/store/db.rs,
/// documented in docs/cluster.md).
const BUSINESS_LOCK: i32 = 0x6b65_6675;

/// An agent's WebSocket login on `k` with `token`: the login answer or its error frame.
fn agent_login(k: &Kefu, id: &str, token: &str) -> (Ws, Value) {
    let mut ws = Ws::connect(&k.addr(), "/ws");
    ws.send_text(
        &json!({"method":"login","bid":"shop","customer_id":id,"customer_name":id,"token":token})
            .to_string(),
    );
    let v = recv_until(&mut ws, "login answer", |m| m["method"] == "login");
    (ws, v)
}

#[test]
fn one_signing_key_and_one_upload_store_for_every_node() {
    if !available() {
        return;
    }
    let pg = Pg::start();
    let redis = Redis::start();
    let a = Kefu::start(
        1,
        &node_toml(&pg, &redis, 1),
        &[("shop", "alice", "Alice", None)],
    );
    // Node 2 ran alone before and has a key file of its own: not the cluster's.
    let own = "f0".repeat(32);
    let b = node_keyed(&pg, &redis, 2, 1, Some(&own));
    assert_eq!(pg.psql("SELECT COUNT(*) FROM kefu_keys"), "1");
    let said = || format!("{}{}", b.inst.log(), b.inst.stderr());
    assert!(
        wait_until(10 * SEC, || said()
            .contains("is not the cluster's token signing key")),
        "node 2 did not say its key file is not the cluster's: {}",
        said()
    );

    // An agent token issued by node 1 logs in on node 2.
    let token = a.agent_token("shop", "alice");
    let (mut alice_b, l) = agent_login(&b, "alice", &token);
    assert!(l.get("code").is_none(), "{l}");
    // A visitor token issued by node 1 is the same visitor on node 2.
    let (_, vl) = a.visitor("shop");
    let (_, vl2) = b.visitor_with("shop", vl["token"].as_str().unwrap(), json!([]));
    assert_eq!(vl2["visitor_id"], vl["visitor_id"], "{vl2}");
    // A token signed with node 2's own file is refused there.
    let forged = Secret::from_bytes(own.as_bytes()).sign(&Claims {
        r: Role::Agent,
        b: "shop".into(),
        s: "alice".into(),
        exp: unix_now() * 1000 + 3_600_000,
        pv: 1,
        vf: false,
    });
    let (_, e) = agent_login(&b, "alice", &forged);
    assert_eq!(e["msg"], "invalid token", "{e}");

    // An image uploaded through node 1 is served by node 2 (and node 1), from PostgreSQL.
    let png = tiny_png();
    let auth = format!("Bearer {token}");
    let (st, up) = http_json(
        &a.addr(),
        "POST",
        "/api/upload",
        &[("Authorization", &auth), ("Content-Type", "image/png")],
        &png,
    );
    assert_eq!(st, 200, "{up}");
    let url = up["url"].as_str().unwrap().to_string();
    for k in [&b, &a] {
        let (st, body, head) = http(&k.addr(), "GET", &url, &[], b"");
        assert_eq!(st, 200, "{head}");
        assert_eq!(body, png);
        assert!(head.contains("Content-Type: image/png"), "{head}");
    }
    assert_eq!(pg.psql("SELECT COUNT(*) FROM kefu_upload_bytes"), "1");
    for k in [&a, &b] {
        let files = std::fs::read_dir(k.inst.data_dir().join("uploads"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(files, 0, "an upload went to a node's disk");
    }
    let name = &url["/uploads/".len()..];
    let (st, _, _) = http(
        &b.addr(),
        "GET",
        &format!("/uploads/{}.png", "0".repeat(64)),
        &[],
        b"",
    );
    assert_eq!(st, 404, "unknown upload");
    assert_eq!(
        pg.psql(&format!(
            "SELECT bid FROM kefu_uploads WHERE name = '{name}'"
        )),
        "shop"
    );

    // `kefu key rotate` on node 1 reaches node 2 by itself (node 2 was not told): its
    // session is closed, the old token refused, a new one from node 1 taken.
    a.cli(&["key", "rotate"]);
    assert_eq!(pg.psql("SELECT version FROM kefu_keys"), "2");
    let r = recv_until(&mut alice_b, "revoked on node 2", |m| {
        m.get("code").is_some()
    });
    assert_eq!(r["msg"], "session revoked: log in again", "{r}");
    let (_, e) = agent_login(&b, "alice", &token);
    assert_eq!(e["msg"], "invalid token", "{e}");
    // Node 1's workers reload the key when its master passes the CLI's word on, which the
    // CLI does not wait for: a token signed just before that is refused, so ask again.
    let mut last = Value::Null;
    assert!(
        wait_until(10 * SEC, || {
            let fresh = a.agent_token("shop", "alice");
            last = agent_login(&b, "alice", &fresh).1;
            last.get("code").is_none()
        }),
        "no new token from node 1 taken on node 2: {last}"
    );
}

/// Read `ws` until the acks of every id in `ids` came; returns their seqs (errors fail).
fn acks(ws: &mut Ws, ids: &[String]) -> Vec<i64> {
    let want: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let mut seqs = Vec::new();
    while seqs.len() < ids.len() {
        let m = recv_json(ws).expect("acks");
        let id = m["client_msg_id"].as_str().unwrap_or("");
        // The pushes of the messages carry their ids too: only answers count.
        let answer = m["method"] == "ack" || m.get("code").is_some();
        if !answer || !want.contains(id) {
            continue;
        }
        assert_eq!(m["method"], "ack", "{m}");
        seqs.push(m["seq"].as_i64().unwrap());
    }
    seqs
}

/// Send `n` messages into `conv` at once (no wait between them); returns their ids.
fn burst(ws: &mut Ws, conv: i64, tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let id = format!("{tag}{i}");
            ws.send_text(
                &json!({"method":"send","conv_id":conv,"client_msg_id":id,"kind":"text","text":id})
                    .to_string(),
            );
            id
        })
        .collect()
}

/// The seqs stored for `conv`, in order.
fn stored_seqs(pg: &Pg, conv: i64) -> Vec<i64> {
    pg.psql(&format!(
        "SELECT seq FROM messages WHERE conv_id = {conv} ORDER BY seq"
    ))
    .lines()
    .map(|l| l.parse().unwrap())
    .collect()
}

#[test]
fn a_business_held_up_does_not_hold_up_another_and_seqs_stay_whole() {
    if !available() {
        return;
    }
    let pg = Pg::start();
    let redis = Redis::start();
    let a = Kefu::start(
        1,
        &node_toml(&pg, &redis, 1),
        &[("east", "e1", "E1", None), ("west", "w1", "W1", None)],
    );
    let b = node(&pg, &redis, 2, 1);
    // East's agent on node 2, east's visitor on node 1; west's visitor on node 2.
    let (mut e1, _) = b.agent("east", "e1");
    // Routed to e1 at once if node 1 already sees it online, else by node 2's next drain.
    let (mut ve, _, conv_e, _) = open_conv(&a, "east", "hi east");
    recv_until(&mut e1, "assigned", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"] == conv_e
    });
    let (mut vw, _, conv_w, _) = open_conv(&b, "west", "hi west");

    // A session of the test's own holds east's lock, as a long east transaction would.
    let mut hold = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    hold.execute(
        "SELECT pg_advisory_lock($1, hashtext('east'))",
        &[&BUSINESS_LOCK],
    )
    .unwrap();
    // West writes on: its messages are acked, in order.
    let w: Vec<i64> = (0..5)
        .map(|i| say(&mut vw, Some(conv_w), &format!("w{i}"), "west goes on"))
        .collect();
    assert!(w.windows(2).all(|p| p[1] == p[0] + 1), "{w:?}");
    // East's message waits for the lock: no ack while it is held...
    ve.send_text(
        &json!({"method":"send","conv_id":conv_e,"client_msg_id":"held","kind":"text","text":"held"})
            .to_string(),
    );
    let early = collect(&mut ve, Duration::from_secs(2));
    assert!(
        !early
            .iter()
            .any(|m| m["client_msg_id"] == "held" && m["method"] == "ack"),
        "east's message was answered while east's lock was held: {early:?}"
    );
    // ...and is acked once the lock is let go.
    hold.execute("SELECT pg_advisory_unlock_all()", &[])
        .unwrap();
    let held = acks(&mut ve, &["held".to_string()]);

    // Concurrent writers of one conversation on two nodes, and of another business at the
    // same time (20 each, within the per-connection burst): every ack a distinct seq, the stored seqs gapless.
    let vid = burst(&mut ve, conv_e, "v", 20);
    let aid = burst(&mut e1, conv_e, "a", 20);
    let wid = burst(&mut vw, conv_w, "x", 20);
    let mut all: Vec<i64> = held;
    all.extend(acks(&mut ve, &vid));
    all.extend(acks(&mut e1, &aid));
    let west = acks(&mut vw, &wid);
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a seq acked twice: {all:?}");
    for (conv, acked) in [
        (conv_e, &distinct),
        (conv_w, &west.iter().copied().collect()),
    ] {
        let seqs = stored_seqs(&pg, conv);
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "conv {conv}"
        );
        assert!(acked.iter().all(|s| seqs.contains(s)), "conv {conv}");
    }
}
