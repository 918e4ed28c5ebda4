//! Webhooks against the real binary and a local HTTP receiver: signed events in order
//! (conversation created, message, closed), retries after 500s with the same delivery id,
//! queued events surviving a restart, the documented Python verification recipe, the SSRF
//! guard (private targets refused without `webhook_allow_private`, at registration and
//! after DNS at delivery), who may register, and tenant isolation.

mod common;

use common::http::http_json;
use common::kefu_app::*;
use common::{wait_for, SEC};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
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

fn read_request(s: &mut TcpStream) -> Option<Got> {
    s.set_read_timeout(Some(10 * SEC)).ok()?;
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

/// Webhooks are SQLite-only so far (docs/cluster.md, "What is missing"): under
/// `KEFU_TEST_STORE=postgres` the delivery tests are skipped and
/// [`refused_on_postgres`] checks the refusal instead.
fn sqlite_only() -> bool {
    let pg = test_store_is_pg();
    if pg {
        eprintln!("\n*** SKIPPED on PostgreSQL: webhooks are SQLite-only so far ***\n");
    }
    pg
}

/// On the PostgreSQL store registering a webhook is refused with a clear 501, and nothing is
/// registered.
#[test]
fn refused_on_postgres() {
    if !test_store_is_pg() {
        return;
    }
    let k = Kefu::start(1, "", &[("shop", "alice", "Alice", None)]);
    let alice = k.agent_token("shop", "alice");
    let (st, r) = api(
        &k,
        Some(&alice),
        "POST",
        "/api/webhooks",
        json!({ "url": "http://example.com/hook" }),
    );
    assert_eq!(st, 501, "{r}");
    assert!(
        r.to_string()
            .contains("not available on the PostgreSQL store"),
        "{r}"
    );
    let (st, l) = api(&k, Some(&alice), "GET", "/api/webhooks", json!({}));
    assert_eq!(st, 200, "{l}");
    assert_eq!(l["items"].as_array().map(Vec::len), Some(0), "{l}");
}

fn next(rx: &Receiver<Got>) -> Got {
    rx.recv_timeout(30 * SEC).expect("a webhook delivery")
}

fn conversation(k: &Kefu, bid: &str, text: &str) -> i64 {
    let (mut v, _) = k.visitor(bid);
    say(&mut v, None, "c1", text);
    let m = recv_until(&mut v, "own message", |m| {
        m["method"] == "message" && m["text"] == text
    });
    v.send_text(r#"{"method":"close"}"#);
    recv_until(&mut v, "closed", |m| {
        m["method"] == "message" && m["event"] == "closed"
    });
    m["conv_id"].as_i64().unwrap()
}

#[test]
fn signed_events_in_order_with_retries_and_isolation() {
    if sqlite_only() {
        return;
    }
    let k = Kefu::start(
        1,
        "webhook_allow_private = true",
        &[
            ("shop", "alice", "Alice", None),
            ("other", "zed", "Zed", None),
        ],
    );
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

    let conv = conversation(&k, "shop", "where is my order?");
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

    // The other business's endpoint gets its own events only.
    let oc = conversation(&k, "other", "other's question");
    for _ in 0..3 {
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
    if sqlite_only() {
        return;
    }
    let k = Kefu::start(1, "", &[("shop", "alice", "Alice", None)]);
    let alice = k.agent_token("shop", "alice");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let rx = receiver(l, 0);
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
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
    let err = wait_for(30 * SEC, || {
        let (_, l) = api(&k, Some(&alice), "GET", "/api/webhooks", json!({}));
        let h = l["items"]
            .as_array()?
            .iter()
            .find(|h| h["id"] == id)?
            .clone();
        let e = h["last_error"].as_str()?.to_string();
        (!e.is_empty()).then_some(e)
    })
    .expect("a failed delivery");
    assert!(err.contains("refused: 127.0.0.1"), "{err}");
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "reached loopback"
    );
}

#[test]
fn queued_events_survive_a_restart() {
    if sqlite_only() {
        return;
    }
    let k = Kefu::start(
        1,
        "webhook_allow_private = true",
        &[("shop", "alice", "Alice", None)],
    );
    let alice = k.agent_token("shop", "alice");
    // Reserve a port, then close it: deliveries fail (connection refused) until it opens.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
