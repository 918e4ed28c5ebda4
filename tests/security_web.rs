//! Issue 11, item 13, against the real binary: behind a trusted proxy the visitor's address is
//! the `X-Forwarded-For` entry that proxy appended (counted from the right, `trusted_hops`),
//! never the leftmost one, which the client writes itself.

mod common;

use common::kefu_app::*;
use common::ws::Ws;
use serde_json::json;

/// A visitor connecting with `xff`, sending its first message: the address the agent is shown.
fn ip_seen_by_agent(k: &Kefu, agent: &mut Ws, xff: &str, n: usize) -> String {
    let (mut v, status, _) = Ws::try_connect(&k.addr(), "/ws", &[("X-Forwarded-For", xff)]);
    assert_eq!(status, 101);
    v.send_text(&json!({"method":"visitor_login","bid":"shop"}).to_string());
    recv_method(&mut v, "visitor_login");
    say(&mut v, None, &format!("first-{n}"), "hello");
    let a = recv_until(agent, "assigned", |m| m["method"] == "assigned");
    a["conv"]["visitor"]["ip"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn forwarded_for_is_taken_from_the_trusted_proxy_end() {
    let k = Kefu::start(
        1,
        "trust_forwarded_for = true\nmax_per_agent = 10",
        &[("shop", "alice", "Alice", None)],
    );
    let (mut agent, _) = k.agent("shop", "alice");
    // The client claims 6.6.6.6; the proxy on the same host appended the real peer.
    assert_eq!(
        ip_seen_by_agent(&k, &mut agent, "6.6.6.6, 203.0.113.7", 1),
        "203.0.113.7"
    );
    drop(agent);
    drop(k);

    // Two proxies (a CDN, then the local TLS proxy): the CDN's entry is one from the right.
    let k = Kefu::start(
        1,
        "trust_forwarded_for = true\ntrusted_hops = 2\nmax_per_agent = 10",
        &[("shop", "alice", "Alice", None)],
    );
    let (mut agent, _) = k.agent("shop", "alice");
    assert_eq!(
        ip_seen_by_agent(&k, &mut agent, "6.6.6.6, 198.51.100.9, 10.0.0.2", 2),
        "198.51.100.9"
    );
    // Fewer entries than hops: the request did not come through the proxies; the socket
    // address is all there is.
    assert_eq!(ip_seen_by_agent(&k, &mut agent, "6.6.6.6", 3), "127.0.0.1");
}
