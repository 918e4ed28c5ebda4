//! A node cut off from the network while it keeps running: the test makes its own network
//! namespace and veth pair (a private link between two addresses of 169.254.250.0/30 that
//! exist only on that pair), runs node 3 inside the namespace and nodes 1-2 and Redis outside,
//! then takes the link down. Nodes 1-2 drop node 3's clients once its lease runs out; when the
//! link comes back node 3 rejoins and every node lists every client exactly once, and
//! messages cross between the nodes again, once each.
//!
//! Creating namespaces needs root (CAP_NET_ADMIN) and `ip`; without them the test prints
//! SKIPPED and passes (the kill -9 and SIGSTOP tests in tests/cluster.rs still run).

mod common;

use common::alive;
use common::cluster::{redis_available, wait_lists, Node, Redis};
use common::ws::Ws;
use serde_json::json;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Instant;

const LEASE_MS: u64 = 1500;
const HOST_ADDR: &str = "169.254.250.1";
const NODE_ADDR: &str = "169.254.250.2";

/// The namespace and the veth pair of this test; removed on drop.
struct Netns {
    name: String,
    host_if: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// The namespace with `NODE_ADDR` on its end of the pair, `HOST_ADDR` on ours; or why not.
    fn make() -> Result<Netns, String> {
        let tag = std::process::id() % 100_000;
        let n = Netns {
            name: format!("kefu-t{tag}"),
            host_if: format!("kt{tag}h"),
        };
        let peer = format!("kt{tag}n");
        ip(&["netns", "add", &n.name])?;
        // From here on, `n` removes what was made if a step fails.
        ip(&[
            "link", "add", &n.host_if, "type", "veth", "peer", "name", &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &n.name])?;
        ip(&["addr", "add", &format!("{HOST_ADDR}/30"), "dev", &n.host_if])?;
        ip(&["link", "set", &n.host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut a = vec!["netns", "exec", &n.name, "ip"];
            a.extend_from_slice(args);
            ip(&a)
        };
        inside(&["addr", "add", &format!("{NODE_ADDR}/30"), "dev", &peer])?;
        inside(&["link", "set", &peer, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(n)
    }

    /// Take the link down (`false`) or up again (`true`).
    fn link(&self, up: bool) {
        ip(&["link", "set", &self.host_if, if up { "up" } else { "down" }]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The veth pair goes with its end in the namespace.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

struct Client {
    ws: Ws,
    id: String,
}

/// Every node in `nodes` lists exactly `want` (count and list, no duplicates), within 20 s.
fn assert_views(nodes: &[&Node], want: &[&Client], what: &str) {
    let want: BTreeSet<String> = want.iter().map(|c| c.id.clone()).collect();
    wait_lists(nodes.iter().copied(), &want, what);
}

#[test]
fn a_node_cut_off_by_the_network_is_dropped_then_rejoins_without_duplicates() {
    if !redis_available() {
        return;
    }
    let ns = match Netns::make() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!(
                "\n*** SKIPPED: cannot make a network namespace here ({why}); needs root and \
                 `ip`. The kill -9 and SIGSTOP tests in tests/cluster.rs cover node loss. ***\n"
            );
            return;
        }
    };
    let redis = Redis::start_bound(&[HOST_ADDR]);
    let mut nodes: Vec<Node> = (1..=2)
        .map(|id| Node::start("bridge", id, 1, &redis, LEASE_MS, ""))
        .collect();
    nodes.push(Node::start_on(
        "bridge",
        3,
        1,
        &redis.url_on(HOST_ADDR),
        NODE_ADDR,
        LEASE_MS,
        "",
        &["ip", "netns", "exec", &ns.name],
    ));
    let mut cs: Vec<(usize, Client)> = Vec::new();
    for (k, n) in nodes.iter().enumerate() {
        for _ in 0..2 {
            let (ws, id) = n.client();
            cs.push((k, Client { ws, id }));
        }
    }
    let all_nodes: Vec<&Node> = nodes.iter().collect();
    let everyone: Vec<&Client> = cs.iter().map(|(_, c)| c).collect();
    assert_views(&all_nodes, &everyone, "before the cut");

    ns.link(false);
    let t0 = Instant::now();
    let outside: Vec<&Client> = cs.iter().filter(|(k, _)| *k != 2).map(|(_, c)| c).collect();
    assert_views(&all_nodes[..2], &outside, "while node 3 is cut off");
    eprintln!(
        "node 3 dropped by the others {:?} after the cut (lease {LEASE_MS} ms)",
        t0.elapsed()
    );
    // It was cut off, not stopped: every process of node 3 still runs.
    let pids = nodes[2].pids();
    assert!(
        !pids.is_empty() && pids.iter().all(|&p| alive(p)),
        "{pids:?}"
    );

    ns.link(true);
    let t1 = Instant::now();
    assert_views(&all_nodes, &everyone, "after the link came back");
    eprintln!(
        "node 3 back in every view {:?} after the link",
        t1.elapsed()
    );

    // Messages cross both ways again, each once: node 1 to a client of node 3 and node 3 to
    // a client of node 1, then a marker each, which must come next.
    let (c1, c3) = (cs[0].1.id.clone(), cs[4].1.id.clone());
    for (from, to) in [(0usize, c3.as_str()), (2, c1.as_str())] {
        let mut api = nodes[from].api();
        api.ok(
            "send_to_client",
            json!({"client_id": to, "message": format!("after the cut from {from}")}),
        );
        api.ok(
            "send_to_client",
            json!({"client_id": to, "message": format!("marker from {from}")}),
        );
    }
    for (i, from) in [(4usize, 0usize), (0, 2)] {
        let ws = &mut cs[i].1.ws;
        assert_eq!(
            ws.recv_text().as_deref(),
            Some(format!("after the cut from {from}").as_str())
        );
        assert_eq!(
            ws.recv_text().as_deref(),
            Some(format!("marker from {from}").as_str())
        );
    }
    nodes.clear();
}
