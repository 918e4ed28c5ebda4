//! Webhooks against the real binary and local HTTP and HTTPS receivers: signed events in
//! order (conversation created, message, closed, rated), retries after 500s with the same
//! delivery id, queued events surviving a restart, the documented Python verification recipe,
//! the SSRF guard (private targets refused without `webhook_allow_private`, at registration
//! and after DNS at delivery), `https://` endpoints verified against a CA (a test CA given by
//! `webhook_ca_file`; a wrong name or an unknown CA refused), who may register (admins only),
//! and tenant isolation. Every test runs on both stores (`KEFU_TEST_STORE=postgres`).

mod common;

use common::http::http_json;
use common::kefu_app::*;
use common::pki;
use common::{wait_for, SEC};
use hmac::{Hmac, KeyInit, Mac};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use sha2::Sha256;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, k: &str) -> String {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} header"))
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An HTTP receiver on `listener`: answers the first `fail_first` requests with 500, the
/// rest with 200, and hands every request to the returned channel.
fn receiver(listener: TcpListener, fail_first: usize) -> Receiver<Got> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut n = 0;
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            s.set_read_timeout(Some(10 * SEC)).unwrap();
            let Some(got) = read_request(&mut s) else {
                continue;
            };
            n += 1;
            let status = if n <= fail_first {
                "500 Oops"
            } else {
                "200 OK"
            };
            let _ = s.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    .as_bytes(),
            );
            if tx.send(got).is_err() {
                return;
            }
        }
    });
    rx
}

/// One TLS connection a receiver accepted: the name the client asked for (SNI; none for an
/// address) and whether the handshake completed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempt {
    sni: Option<String>,
    handshake: bool,
}

/// An HTTPS receiver on `listener` with the chain `cert` and its `key`: answers 200 and
/// hands every request to the first channel; every connection, its handshake done or
/// refused, to the second.
fn tls_receiver(listener: TcpListener, cert: &Path, key: &Path) -> Receiver<Got> {
    tls_receiver_seeing(listener, cert, key).0
}

/// [`tls_receiver`], with the channel of its connection attempts.
fn tls_receiver_seeing(
    listener: TcpListener,
    cert: &Path,
    key: &Path,
) -> (Receiver<Got>, Receiver<Attempt>) {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let (atx, arx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            s.set_read_timeout(Some(10 * SEC)).unwrap();
            let mut conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let done = conn.complete_io(&mut s).is_ok() && !conn.is_handshaking();
            let _ = atx.send(Attempt {
                sni: conn.server_name().map(str::to_string),
                handshake: done,
            });
            if !done {
                continue;
            }
            let mut tls = rustls::StreamOwned::new(conn, s);
            let Some(got) = read_request(&mut tls) else {
                continue;
            };
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            tls.conn.send_close_notify();
            let _ = tls.flush();
            if tx.send(got).is_err() {
                return;
            }
        }
    });
    (rx, arx)
}

fn read_request(s: &mut impl Read) -> Option<Got> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let k = s.read(&mut chunk).ok()?;
        if k == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..k]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())?;
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let k = s.read(&mut chunk).ok()?;
        if k == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..k]);
    }
    Some(Got { headers, body })
}

/// The receiver's check: `X-Kefu-Signature` is `v1=` HMAC-SHA256(secret, "<ts>.<body>").
fn signed_by(g: &Got, secret: &str) -> bool {
    let ts = g.header("X-Kefu-Timestamp");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&g.body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    g.header("X-Kefu-Signature") == format!("v1={want}")
}

fn api(k: &Kefu, token: Option<&str>, method: &str, path: &str, body: Value) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    http_json(&k.addr(), method, path, &h, body.to_string().as_bytes())
}

fn register(k: &Kefu, token: &str, url: &str) -> (i64, String) {
    let (st, r) = api(
        k,
        Some(token),
        "POST",
        "/api/webhooks",
        json!({ "url": url }),
    );
    assert_eq!(st, 200, "{r}");
    (
        r["id"].as_i64().unwrap(),
        r["secret"].as_str().unwrap().to_string(),
    )
}

fn next(rx: &Receiver<Got>) -> Got {
    rx.recv_timeout(30 * SEC).expect("a webhook delivery")
}

/// A visitor's conversation, opened with `text` and closed by the visitor; returns its id
/// and the visitor's token.
fn conversation_by(k: &Kefu, bid: &str, text: &str) -> (i64, String) {
    let (mut v, l) = k.visitor(bid);
    say(&mut v, None, "c1", text);
    let m = recv_until(&mut v, "own message", |m| {
        m["method"] == "message" && m["text"] == text
    });
    v.send_text(r#"{"method":"close"}"#);
    recv_until(&mut v, "closed", |m| {
        m["method"] == "message" && m["event"] == "closed"
    });
    (
        m["conv_id"].as_i64().unwrap(),
        l["token"].as_str().unwrap().to_string(),
    )
}

fn conversation(k: &Kefu, bid: &str, text: &str) -> i64 {
    conversation_by(k, bid, text).0
}

/// A one-worker kefu whose `shop` has the admin `alice`, with `cfg`; her token.
fn shop_with_admin(cfg: &str) -> (Kefu, String) {
    let k = Kefu::start(1, cfg, &[("shop", "alice", "Alice", None)]);
    k.make_admins(&[("shop", "alice")]);
    let alice = k.agent_token("shop", "alice");
    (k, alice)
}

/// A listener on 127.0.0.1 and its port. IPv4 only: `localhost` may resolve to ::1 first,
/// which a delivery then skips for the next address.
fn listen4() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// A scratch directory for a test's certificates, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("kefu-hooks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn signed_events_in_order_with_retries_and_isolation() {
    let k = Kefu::start(
        1,
        "webhook_allow_private = true",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
            ("other", "zed", "Zed", None),
        ],
    );
    k.make_admins(&[("shop", "alice")]);
    k.make_admins(&[("other", "zed")]);
    let alice = k.agent_token("shop", "alice");
    let zed = k.agent_token("other", "zed");
    let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
    let url1 = format!(
        "http://127.0.0.1:{}/hooks/kefu?src=test",
        l1.local_addr().unwrap().port()
    );
    let shop_rx = receiver(l1, 2);
    let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
    let url2 = format!("http://127.0.0.1:{}/", l2.local_addr().unwrap().port());
    let other_rx = receiver(l2, 0);
    let (id1, secret) = register(&k, &alice, &url1);
    let (_, other_secret) = register(&k, &zed, &url2);

    let (conv, visitor) = conversation_by(&k, "shop", "where is my order?");
    // The first event fails twice (500), then is retried with the same delivery id.
    let tries: Vec<Got> = (0..3).map(|_| next(&shop_rx)).collect();
    for g in &tries {
        assert_eq!(g.json()["event"], "conversation.created");
        assert!(signed_by(g, &secret), "bad signature: {g:?}");
        assert_eq!(g.header("X-Kefu-Event"), "conversation.created");
        assert_eq!(g.header("Content-Type"), "application/json");
    }
    let ids: Vec<String> = tries.iter().map(|g| g.header("X-Kefu-Delivery")).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    // Then the rest, in order, each signed; nothing of the other business.
    let msg = next(&shop_rx);
    let closed = next(&shop_rx);
    assert!(signed_by(&msg, &secret) && signed_by(&closed, &secret));
    let (m, c) = (msg.json(), closed.json());
    assert_eq!(
        (m["event"].as_str(), m["text"].as_str(), m["from"].as_str()),
        (
            Some("message.created"),
            Some("where is my order?"),
            Some("visitor")
        )
    );
    assert_eq!(
        (m["conv_id"].as_i64(), m["bid"].as_str()),
        (Some(conv), Some("shop"))
    );
    assert_eq!(
        (c["event"].as_str(), c["conv_id"].as_i64()),
        (Some("conversation.closed"), Some(conv))
    );
    assert!(!signed_by(&msg, &other_secret));
    // The visitor rates the closed conversation: `conversation.rated`, after the rest.
    let (st, r) = api(
        &k,
        Some(&visitor),
        "POST",
        "/api/rating",
        json!({"conv_id": conv, "score": 4, "comment": "quick, thanks"}),
    );
    assert_eq!(st, 200, "{r}");
    let rated = next(&shop_rx);
    assert!(signed_by(&rated, &secret));
    assert_eq!(rated.header("X-Kefu-Event"), "conversation.rated");
    let r = rated.json();
    assert_eq!(
        (
            r["event"].as_str(),
            r["bid"].as_str(),
            r["conv_id"].as_i64(),
            r["score"].as_i64(),
            r["comment"].as_str()
        ),
        (
            Some("conversation.rated"),
            Some("shop"),
            Some(conv),
            Some(4),
            Some("quick, thanks")
        ),
        "{r}"
    );
    assert!(r["visitor_id"].is_string() && r["ts"].is_i64(), "{r}");

    // The other business's endpoint gets its own events only, its rating too.
    let (oc, other_visitor) = conversation_by(&k, "other", "other's question");
    let (st, _) = api(
        &k,
        Some(&other_visitor),
        "POST",
        "/api/rating",
        json!({"conv_id": oc, "score": 1}),
    );
    assert_eq!(st, 200);
    for _ in 0..4 {
        let g = next(&other_rx);
        assert!(signed_by(&g, &other_secret));
        assert_eq!(
            (g.json()["bid"].as_str(), g.json()["conv_id"].as_i64()),
            (Some("other"), Some(oc))
        );
    }
    assert!(
        shop_rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "leaked to shop"
    );

    // The documented Python recipe accepts a real delivery and refuses a tampered one.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/verify_webhook.py"
    );
    let run = |body: &[u8]| {
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .env("KEFU_WEBHOOK_SECRET", &secret)
            .env("KEFU_TIMESTAMP", msg.header("X-Kefu-Timestamp"))
            .env("KEFU_SIGNATURE", msg.header("X-Kefu-Signature"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3");
        child.stdin.take().unwrap().write_all(body).unwrap();
        child.wait().unwrap().success()
    };
    assert!(run(&msg.body), "the recipe refuses a genuine delivery");
    let mut forged = msg.body.clone();
    forged[2] ^= 1;
    assert!(!run(&forged), "the recipe accepts a tampered body");

    // Listing shows the endpoint but never its secret; the other business cannot see or
    // delete it.
    let (st, l) = api(&k, Some(&alice), "GET", "/api/webhooks", json!({}));
    assert_eq!(st, 200, "{l}");
    assert_eq!(l["items"][0]["url"], url1.as_str());
    assert!(!l.to_string().contains(&secret));
    let (_, zl) = api(&k, Some(&zed), "GET", "/api/webhooks", json!({}));
    assert_eq!(zl["items"].as_array().unwrap().len(), 1);
    assert_ne!(zl["items"][0]["id"].as_i64(), Some(id1));
    let (st, _) = api(
        &k,
        Some(&zed),
        "POST",
        "/api/webhooks/delete",
        json!({ "id": id1 }),
    );
    assert_eq!(st, 404);
    // A plain agent of the business may not list, register or delete.
    let bob = k.agent_token("shop", "bob");
    let (st, e) = api(&k, Some(&bob), "GET", "/api/webhooks", json!({}));
    assert_eq!(st, 403, "{e}");
    assert!(!e.to_string().contains(&url1), "{e}");
    let (st, _) = api(
        &k,
        Some(&bob),
        "POST",
        "/api/webhooks",
        json!({"url": "http://example.com/bob"}),
    );
    assert_eq!(st, 403);
    let (st, _) = api(
        &k,
        Some(&bob),
        "POST",
        "/api/webhooks/delete",
        json!({ "id": id1 }),
    );
    assert_eq!(st, 403);
    let (_, l) = api(&k, Some(&alice), "GET", "/api/webhooks", json!({}));
    assert_eq!(l["items"].as_array().map(Vec::len), Some(1), "{l}");
    // Who may not register: no token, a forged one, a visitor.
    let body = json!({"url": url1});
    assert_eq!(api(&k, None, "POST", "/api/webhooks", body.clone()).0, 401);
    assert_eq!(
        api(
            &k,
            Some("forged.token"),
            "POST",
            "/api/webhooks",
            body.clone()
        )
        .0,
        401
    );
    let (_, vl) = k.visitor("shop");
    assert_eq!(
        api(&k, vl["token"].as_str(), "POST", "/api/webhooks", body).0,
        403
    );
    // Malformed URLs and bodies.
    for bad in [
        json!({"url":"ftp://example.com/"}),
        json!({"url":"http://u:p@example.com/"}),
        json!({"url":"http://example.com/a\r\nX-Evil: 1"}),
        json!({"url":"http://example.com/".to_string() + &"a".repeat(600)}),
        json!({"url":"http://example.com/","bid":"other"}),
        json!({"nope":1}),
    ] {
        let (st, e) = api(&k, Some(&alice), "POST", "/api/webhooks", bad.clone());
        assert_eq!(st, 400, "{bad}: {e}");
    }
    // Deleting stops deliveries.
    let (st, _) = api(
        &k,
        Some(&alice),
        "POST",
        "/api/webhooks/delete",
        json!({ "id": id1 }),
    );
    assert_eq!(st, 200);
    conversation(&k, "shop", "after delete");
    assert!(shop_rx.recv_timeout(Duration::from_millis(1500)).is_err());
}

#[test]
fn private_targets_are_refused_by_default() {
    let (k, alice) = shop_with_admin("");
    let (l, port) = listen4();
    let rx = receiver(l, 0);
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        format!("https://localhost:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
    ] {
        let (st, e) = api(
            &k,
            Some(&alice),
            "POST",
            "/api/webhooks",
            json!({ "url": url }),
        );
        assert_eq!(st, 400, "{url}: {e}");
    }
    // A name that only resolves to loopback passes registration and is refused at
    // delivery, after resolving (2130706433 is 127.0.0.1 to the resolver).
    let (id, _) = register(&k, &alice, &format!("http://2130706433:{port}/"));
    conversation(&k, "shop", "hello");
    let err = failure(&k, &alice, id);
    assert!(err.contains("refused: 127.0.0.1"), "{err}");
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "reached loopback"
    );
}

#[test]
fn queued_events_survive_a_restart() {
    let (k, alice) = shop_with_admin("webhook_allow_private = true");
    // A port nobody listens on yet (outside the kernel's ephemeral range, so no client takes
    // it meanwhile): deliveries fail (connection refused) until it opens.
    let port = common::free_port();
    let (_, secret) = register(&k, &alice, &format!("http://127.0.0.1:{port}/"));
    let conv = conversation(&k, "shop", "before the restart");
    wait_for(30 * SEC, || {
        let (_, l) = api(&k, Some(&alice), "GET", "/api/webhooks", json!({}));
        (!l["items"][0]["last_error"].as_str()?.is_empty()).then_some(())
    })
    .expect("a failed try");
    let Kefu { mut inst, pg } = k;
    inst.signal_master(libc::SIGTERM);
    assert!(inst.wait_exit(30 * SEC).is_some());
    let rx = receiver(TcpListener::bind(("127.0.0.1", port)).unwrap(), 0);
    let _k = Kefu {
        inst: inst.start(),
        pg,
    };
    let events: Vec<Value> = (0..3)
        .map(|_| {
            let g = next(&rx);
            assert!(signed_by(&g, &secret));
            g.json()
        })
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "conversation.created",
            "message.created",
            "conversation.closed"
        ]
    );
    assert!(events.iter().all(|e| e["conv_id"] == conv));
}

/// The error an endpoint's deliveries fail with, once one has.
fn failure(k: &Kefu, token: &str, id: i64) -> String {
    wait_for(30 * SEC, || {
        let (_, l) = api(k, Some(token), "GET", "/api/webhooks", json!({}));
        let h = l["items"]
            .as_array()?
            .iter()
            .find(|h| h["id"] == id)?
            .clone();
        let e = h["last_error"].as_str()?.to_string();
        (!e.is_empty()).then_some(e)
    })
    .expect("a failed delivery")
}

#[test]
fn https_endpoints_are_verified_against_the_trusted_cas() {
    let dir = Scratch::new("tls");
    let ours = pki::make(&dir.0.join("ours"));
    let stranger = pki::make(&dir.0.join("stranger"));
    let (k, alice) = shop_with_admin(&format!(
        "webhook_allow_private = true\nwebhook_ca_file = \"{}\"",
        ours.ca.display()
    ));
    let listen = listen4;
    // Addresses, not `localhost`: a resolver may list ::1 first, where nothing listens.
    // A certificate of the configured CA for 127.0.0.1 (and localhost): delivered.
    let (l, port) = listen();
    let good_rx = tls_receiver(l, &ours.cert, &ours.key);
    let (_, secret) = register(&k, &alice, &format!("https://127.0.0.1:{port}/in"));
    // The configured CA's certificate for another name (b.test): refused.
    let (l, port) = listen();
    let wrong_name_rx = tls_receiver(l, &ours.other_cert, &ours.other_key);
    let (wrong_name, _) = register(&k, &alice, &format!("https://127.0.0.1:{port}/"));
    // A certificate for 127.0.0.1 from a CA nobody configured: refused.
    let (l, port) = listen();
    let unknown_rx = tls_receiver(l, &stranger.cert, &stranger.key);
    let (unknown, _) = register(&k, &alice, &format!("https://127.0.0.1:{port}/"));

    let conv = conversation(&k, "shop", "over tls");
    let names: Vec<String> = (0..3)
        .map(|_| {
            let g = next(&good_rx);
            assert!(signed_by(&g, &secret), "{g:?}");
            assert_eq!(g.json()["conv_id"], conv);
            g.header("X-Kefu-Event")
        })
        .collect();
    assert_eq!(
        names,
        [
            "conversation.created",
            "message.created",
            "conversation.closed"
        ]
    );
    let e = failure(&k, &alice, wrong_name);
    assert!(e.starts_with("tls: ") && e.contains("certificate"), "{e}");
    let e = failure(&k, &alice, unknown);
    assert!(e.starts_with("tls: ") && e.contains("certificate"), "{e}");
    assert!(wrong_name_rx
        .recv_timeout(Duration::from_millis(300))
        .is_err());
    assert!(unknown_rx.recv_timeout(Duration::from_millis(300)).is_err());
}

/// Without `webhook_ca_file` only the built-in roots are trusted: the test CA's endpoint is
/// refused.
#[test]
fn a_private_ca_needs_the_setting() {
    let dir = Scratch::new("noca");
    let ours = pki::make(&dir.0);
    let (k, alice) = shop_with_admin("webhook_allow_private = true");
    let (l, port) = listen4();
    let rx = tls_receiver(l, &ours.cert, &ours.key);
    let (id, _) = register(&k, &alice, &format!("https://127.0.0.1:{port}/"));
    conversation(&k, "shop", "untrusted");
    let e = failure(&k, &alice, id);
    assert!(e.contains("UnknownIssuer"), "{e}");
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
}

/// An `https://` URL with a host name: the delivery thread resolves it (off the event loop),
/// sends the name by SNI and checks the certificate names it. A certificate of the trusted
/// CA for `localhost` is delivered to; one for another name (`b.test`) is refused, logged in
/// the endpoint's `last_error`, retried with back-off, and the server goes on delivering.
#[test]
fn https_to_a_host_name_checks_the_name() {
    let dir = Scratch::new("name");
    let ours = pki::make(&dir.0);
    let (k, alice) = shop_with_admin(&format!(
        "webhook_allow_private = true\nwebhook_ca_file = \"{}\"",
        ours.ca.display()
    ));
    let listen = listen4;
    let (l, good_port) = listen();
    let (good_rx, good_seen) = tls_receiver_seeing(l, &ours.cert, &ours.key);
    let (_, secret) = register(&k, &alice, &format!("https://localhost:{good_port}/hook"));
    let (l, port) = listen();
    let (bad_rx, bad_seen) = tls_receiver_seeing(l, &ours.other_cert, &ours.other_key);
    let (mismatch, _) = register(&k, &alice, &format!("https://localhost:{port}/hook"));

    let events = |conv: i64| {
        let names: Vec<String> = (0..3)
            .map(|_| {
                let g = next(&good_rx);
                assert!(signed_by(&g, &secret), "{g:?}");
                assert_eq!(g.json()["conv_id"], conv);
                assert_eq!(g.header("Host"), format!("localhost:{good_port}"));
                g.header("X-Kefu-Event")
            })
            .collect();
        assert_eq!(
            names,
            [
                "conversation.created",
                "message.created",
                "conversation.closed"
            ]
        );
    };
    events(conversation(&k, "shop", "by name"));
    let a = good_seen.recv_timeout(30 * SEC).expect("a connection");
    assert_eq!(
        a,
        Attempt {
            sni: Some("localhost".into()),
            handshake: true
        }
    );

    // The name does not match: the client sent it, refused the certificate, and tries again.
    let e = failure(&k, &alice, mismatch);
    assert!(
        e.starts_with("tls: ") && e.contains("not valid for name \"localhost\""),
        "{e}"
    );
    for _ in 0..2 {
        let a = bad_seen.recv_timeout(30 * SEC).expect("a retry");
        assert_eq!(
            a,
            Attempt {
                sni: Some("localhost".into()),
                handshake: false
            }
        );
    }
    assert!(
        bad_rx.try_recv().is_err(),
        "a request crossed a bad handshake"
    );
    let (_, l) = api(&k, Some(&alice), "GET", "/api/webhooks", json!({}));
    let hook = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == mismatch)
        .unwrap()
        .clone();
    assert!(hook["pending"].as_i64().unwrap() >= 1, "{hook}");
    // Still serving: the good endpoint gets the next event.
    events(conversation(&k, "shop", "still here"));
}
