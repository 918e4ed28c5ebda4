//! Three kefu nodes (127.0.0.2-4, one Redis) behind Debian's nginx, which the test starts with
//! its own config: WebSocket proxying on a plain listener and TLS terminated at nginx with a
//! test CA. The workerman-chat app works across the nodes through nginx; a node killed with
//! SIGKILL loses its clients, which reconnect through nginx to the other nodes, and presence
//! everywhere drops the dead node's clients within its lease.

mod common;

use common::cluster::{redis_available, wait_lists, Node, Redis};
use common::nginx::{nginx_available, Nginx};
use common::pki;
use common::ws::Ws;
use serde_json::json;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const LEASE_MS: u64 = 1500;

struct Client {
    ws: Ws,
    id: String,
}

impl Client {
    /// The node id, the client id's first byte.
    fn node(&self) -> u8 {
        u8::from_str_radix(&self.id[..2], 16).unwrap()
    }
}

/// A chat client through nginx, logged in to room 1.
fn join(nginx: &Nginx, name: &str) -> Client {
    let mut ws = Ws::connect(&nginx.addr(), "/");
    ws.send_text(&json!({"type":"login","client_name":name,"room_id":1}).to_string());
    let me = ws.recv_json_type("login");
    let id = me["client_id"].as_str().unwrap().to_string();
    assert!(me["client_list"].get(&id).is_some(), "{me}");
    Client { ws, id }
}

/// Every client gets the room's `say` of `content` from `from`, exactly once before the next
/// marker `end` (sent by the same sender right after).
fn all_hear(cs: &mut [Client], from: &str, content: &str) {
    for c in cs.iter_mut() {
        let m = c.ws.recv_json_type("say");
        assert_eq!(m["content"], content, "client {}", c.id);
        assert_eq!(m["from_client_id"], from, "client {}", c.id);
    }
}

/// A wss:// chat client through nginx's TLS listener, checking nginx's certificate against the
/// test CA: prints its client id once logged in, says "over wss", then waits for "back to wss".
const WSS_CLIENT: &str = r#"
import asyncio, json, ssl, sys, websockets
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    async with websockets.connect(sys.argv[1], ssl=ctx) as ws:
        await ws.send(json.dumps({"type": "login", "client_name": "tls", "room_id": 1}))
        while True:
            m = json.loads(await ws.recv())
            if m["type"] == "login" and "client_list" in m:
                break
        print(m["client_id"], flush=True)
        await ws.send(json.dumps({"type": "say", "to_client_id": "all", "content": "over wss"}))
        while True:
            m = json.loads(await ws.recv())
            if m["type"] == "say" and m["content"] == "back to wss":
                break
        print("ok", flush=True)
asyncio.run(asyncio.wait_for(main(), 60))
"#;

#[test]
fn chat_through_nginx_across_nodes_and_a_killed_node_s_clients_reconnect() {
    if !redis_available() || !nginx_available() {
        return;
    }
    let redis = Redis::start();
    let nodes: Vec<Node> = (1..=3)
        .map(|id| Node::start("chat", id, 1, &redis, LEASE_MS, ""))
        .collect();
    let dir = nodes[0].inst.dir.join("nginx");
    let pki = pki::make(&dir.join("pki"));
    let upstreams: Vec<String> = nodes.iter().map(|n| n.ws_addr()).collect();
    let nginx = Nginx::start(&dir, &upstreams, &pki.cert, &pki.key);

    // Six clients through one address: nginx's round-robin spreads them over the nodes.
    let mut cs: Vec<Client> = (0..6).map(|i| join(&nginx, &format!("c{i}"))).collect();
    let on: BTreeSet<u8> = cs.iter().map(Client::node).collect();
    assert_eq!(on, BTreeSet::from([1, 2, 3]), "clients landed on {on:?}");

    // A room message from a client on one node reaches the room on every node.
    let from = cs[0].id.clone();
    cs[0]
        .ws
        .send_text(&json!({"type":"say","to_client_id":"all","content":"hello all"}).to_string());
    all_hear(&mut cs, &from, "hello all");

    // TLS terminated at nginx: a wss:// client joins the same room.
    let url = format!("wss://localhost:{}/", nginx.tls_port);
    let mut py = Command::new("python3")
        .args(["-c", WSS_CLIENT, &url, pki.ca.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(py.stdout.take().unwrap()).lines();
    let tls_id = lines.next().expect("wss client id").unwrap();
    all_hear(&mut cs, &tls_id, "over wss");
    let from = cs[1].id.clone();
    cs[1]
        .ws
        .send_text(&json!({"type":"say","to_client_id":"all","content":"back to wss"}).to_string());
    all_hear(&mut cs, &from, "back to wss");
    assert_eq!(lines.next().expect("wss client end").unwrap(), "ok");
    assert!(py.wait().unwrap().success());

    // kill -9 every process of node 3.
    let victim = nodes.iter().position(|n| n.id == 3).unwrap();
    Node::signal_all(&nodes[victim].pids(), libc::SIGKILL);
    let (lost, mut kept): (Vec<Client>, Vec<Client>) = cs.into_iter().partition(|c| c.node() == 3);
    assert!(!lost.is_empty());
    // nginx ends the proxied connections of the dead node; the clients come back through it
    // and land on the nodes still alive.
    for mut c in lost {
        while c.ws.recv_frame().is_some() {}
        let again = join(&nginx, &format!("back-{}", c.id));
        assert_ne!(
            again.node(),
            3,
            "reconnected to the dead node: {}",
            again.id
        );
        kept.push(again);
    }
    let want: BTreeSet<String> = kept.iter().map(|c| c.id.clone()).collect();
    let alive: Vec<&Node> = nodes.iter().filter(|n| n.id != 3).collect();
    wait_lists(alive, &want, "after kill -9 of node 3");
    // The room works for everyone, reconnected clients included, each message once.
    let from = kept[0].id.clone();
    kept[0]
        .ws
        .send_text(&json!({"type":"say","to_client_id":"all","content":"after"}).to_string());
    all_hear(&mut kept, &from, "after");
    let from = kept[1].id.clone();
    kept[1]
        .ws
        .send_text(&json!({"type":"say","to_client_id":"all","content":"marker"}).to_string());
    all_hear(&mut kept, &from, "marker");
}
