//! Issue 11, items 6, 7, 16 and 17, against the real binary: uploads need an agent or a
//! visitor with an open conversation, are rate-limited per token, address and business, and
//! are deleted when no message uses them; logins back off per address and account, are logged,
//! carry no CORS and run on their own thread; visitor creation, new conversations and
//! messages are limited per address; uploads are served same-origin without their metadata.

mod common;

use common::http::http;
use common::kefu_app::*;
use common::ws::Ws;
use serde_json::{json, Value};
use std::time::Duration;

/// A PNG of `fill` bytes of pixel data, with a text chunk naming its author.
fn png(fill: u8, pixels: usize) -> Vec<u8> {
    let mut p = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (&b"IHDR"[..], vec![0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]),
        (b"tEXt", b"Author\0Jane Doe, 12 Secret Street".to_vec()),
        (b"IDAT", vec![fill; pixels]),
        (b"IEND", vec![]),
    ] {
        p.extend_from_slice(&(data.len() as u32).to_be_bytes());
        p.extend_from_slice(kind);
        p.extend_from_slice(&data);
        p.extend_from_slice(&[0; 4]);
    }
    p
}

/// A JPEG with a JFIF header, an EXIF segment holding a GPS position and a comment.
fn jpeg_with_exif() -> Vec<u8> {
    let seg = |m: u8, d: &[u8]| {
        let mut v = vec![0xFF, m];
        v.extend_from_slice(&((d.len() + 2) as u16).to_be_bytes());
        v.extend_from_slice(d);
        v
    };
    let mut j = vec![0xFF, 0xD8];
    j.extend(seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    j.extend(seg(0xE1, b"Exif\0\0GPSLatitude 48.8584N"));
    j.extend(seg(0xFE, b"shot at home"));
    j.extend(seg(0xDB, &[0; 65]));
    j.extend(seg(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
    j.extend_from_slice(&[0x12, 0x34, 0xFF, 0xD9]);
    j
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

/// `POST /api/upload` with `token`: status, JSON body, response head.
fn upload(k: &Kefu, token: &str, body: &[u8]) -> (u16, Value, String) {
    let auth = format!("Bearer {token}");
    let (st, b, head) = http(
        &k.addr(),
        "POST",
        "/api/upload",
        &[("Authorization", &auth)],
        body,
    );
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null), head)
}

/// A 429 that says when to retry, in the header and the body.
fn assert_limited(st: u16, v: &Value, head: &str) {
    assert_eq!(st, 429, "{v} {head}");
    assert_eq!(v["code"], "10008", "{v}");
    let secs = v["retry_after"].as_u64().unwrap_or(0);
    assert!(secs >= 1, "{v}");
    assert!(head.contains(&format!("Retry-After: {secs}")), "{head}");
}

fn anon_token(k: &Kefu) -> (u16, Value, String) {
    let (st, b, head) = http(
        &k.addr(),
        "POST",
        "/api/visitor/token",
        &[],
        br#"{"bid":"shop"}"#,
    );
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null), head)
}

fn login(k: &Kefu, agent: &str, pw: &str) -> (u16, Value, String) {
    let body = json!({"bid":"shop","agent_id":agent,"password":pw}).to_string();
    let (st, b, head) = http(&k.addr(), "POST", "/api/agent/login", &[], body.as_bytes());
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null), head)
}

#[test]
fn uploads_need_an_agent_or_a_visitor_with_an_open_conversation() {
    let k = Kefu::start(1, "", &[("shop", "alice", "Alice", None)]);
    // A token minted over HTTP, nothing else: no conversation, no upload.
    let (st, t, _) = anon_token(&k);
    assert_eq!(st, 200);
    let (st, e, _) = upload(&k, t["token"].as_str().unwrap(), &png(1, 10));
    assert_eq!(st, 403, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("message first"), "{e}");
    // Once it talks, it may.
    let (mut v, vl) = k.visitor("shop");
    say(&mut v, None, "hi", "hello");
    let (st, e, _) = upload(&k, vl["token"].as_str().unwrap(), &png(2, 10));
    assert_eq!(st, 200, "{e}");
    // Agents may.
    let (st, e, _) = upload(&k, &k.agent_token("shop", "alice"), &png(3, 10));
    assert_eq!(st, 200, "{e}");
}

#[test]
fn uploads_are_rate_limited_per_token_and_per_business() {
    let k = Kefu::start(
        1,
        "upload_per_token = { per_min = 1, burst = 2 }\nupload_business_mib_per_day = 1",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
        ],
    );
    let alice = k.agent_token("shop", "alice");
    assert_eq!(upload(&k, &alice, &png(1, 10)).0, 200);
    assert_eq!(upload(&k, &alice, &png(2, 10)).0, 200);
    let (st, v, head) = upload(&k, &alice, &png(3, 10));
    assert_limited(st, &v, &head);
    // The business's daily bytes: 700 KiB fits, twice does not.
    let bob = k.agent_token("shop", "bob");
    let (st, v, _) = upload(&k, &bob, &png(4, 700 << 10));
    assert_eq!(st, 200, "{v}");
    let (st, v, head) = upload(&k, &bob, &png(5, 700 << 10));
    assert_limited(st, &v, &head);
    assert!(v["msg"].as_str().unwrap().contains("quota"), "{v}");
}

#[test]
fn uploads_no_message_uses_are_deleted() {
    let k = Kefu::start(
        1,
        "upload_orphan_after = 2",
        &[("shop", "alice", "Alice", None)],
    );
    let (mut agent, _) = k.agent("shop", "alice");
    let token = k.agent_token("shop", "alice");
    let (mut v, _) = k.visitor("shop");
    say(&mut v, None, "hi", "hello");
    let conv = recv_until(&mut agent, "assigned", |m| m["method"] == "assigned")["conv"]["conv_id"]
        .as_i64()
        .unwrap();
    let (_, used, _) = upload(&k, &token, &png(1, 10));
    let (_, unused, _) = upload(&k, &token, &png(2, 10));
    let (used, unused) = (
        used["url"].as_str().unwrap(),
        unused["url"].as_str().unwrap(),
    );
    agent.send_text(
        &json!({"method":"send","conv_id":conv,"client_msg_id":"img","kind":"image","url":used})
            .to_string(),
    );
    recv_until(&mut agent, "ack", |m| m["method"] == "ack");
    let get = |u: &str| http(&k.addr(), "GET", u, &[], b"").0;
    assert_eq!((get(used), get(unused)), (200, 200));
    assert!(
        common::wait_until(Duration::from_secs(10), || get(unused) == 404),
        "the unreferenced upload is still served"
    );
    assert_eq!(get(used), 200, "a message shows it: kept");
}

#[test]
fn logins_back_off_per_account_and_are_logged() {
    let k = Kefu::start(
        1,
        "login_account_free_failures = 3\nlogin_backoff_max = 2",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
        ],
    );
    for _ in 0..3 {
        assert_eq!(login(&k, "alice", "guess-guess").0, 401);
    }
    // The 4th failure locks the account for a second, then 2 s (the maximum here).
    assert_eq!(login(&k, "alice", "guess-guess").0, 401);
    let (st, v, head) = login(&k, "alice", "guess-guess");
    assert_limited(st, &v, &head);
    // Even the right password waits; another account does not.
    assert_eq!(login(&k, "alice", AGENT_PW).0, 429);
    assert_eq!(login(&k, "bob", AGENT_PW).0, 200);
    // Attempts while locked are refused without counting, so polling waits the lock out.
    assert!(common::wait_until(Duration::from_secs(10), || {
        login(&k, "alice", AGENT_PW).0 == 200
    }));
    // A success starts over.
    assert_eq!(login(&k, "alice", "guess-guess").0, 401);
    assert_eq!(login(&k, "alice", AGENT_PW).0, 200);
    let log = format!("{}{}{}", k.inst.stderr(), k.inst.stdout(), k.inst.log());
    assert!(
        log.contains("failed agent login for shop/alice from 127.0.0.1"),
        "{log}"
    );
}

#[test]
fn logins_back_off_per_address() {
    let k = Kefu::start(
        1,
        "login_ip_free_failures = 4\nlogin_account_free_failures = 100",
        &[("shop", "alice", "Alice", None)],
    );
    for i in 0..5 {
        assert_eq!(login(&k, &format!("nobody{i}"), "guess-guess").0, 401);
    }
    let (st, v, head) = login(&k, "someone-else", "guess-guess");
    assert_limited(st, &v, &head);
}

#[test]
fn the_login_has_no_cors_and_refuses_other_sites() {
    let k = Kefu::start(1, "", &[("shop", "alice", "Alice", None)]);
    let (st, _, head) = http(
        &k.addr(),
        "OPTIONS",
        "/api/agent/login",
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert!(!head.contains("Access-Control-Allow-Origin"), "{st} {head}");
    let (st, _, head) = login(&k, "alice", AGENT_PW);
    assert_eq!(st, 200);
    assert!(!head.contains("Access-Control-Allow-Origin"), "{head}");
    let body = json!({"bid":"shop","agent_id":"alice","password":AGENT_PW}).to_string();
    let (st, _, _) = http(
        &k.addr(),
        "POST",
        "/api/agent/login",
        &[
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
            ("Content-Type", "text/plain"),
        ],
        body.as_bytes(),
    );
    assert_eq!(st, 403);
    // The widget's calls keep theirs.
    let (_, _, head) = http(
        &k.addr(),
        "OPTIONS",
        "/api/upload",
        &[("Origin", "https://shop.example")],
        b"",
    );
    assert!(head.contains("Access-Control-Allow-Origin: *"), "{head}");
}

#[test]
fn a_flood_of_logins_does_not_stall_served_uploads() {
    let k = Kefu::start(
        1,
        "login_ip_free_failures = 100000\nlogin_account_free_failures = 100000",
        &[("shop", "alice", "Alice", None)],
    );
    let (_, up, _) = upload(&k, &k.agent_token("shop", "alice"), &png(1, 10));
    let url = up["url"].as_str().unwrap().to_string();
    let addr = k.addr();
    // Each answer of the flood is reported as it comes, so the check below can tell whether
    // the password checks were still running while the upload was served.
    let (tx, answers) = std::sync::mpsc::channel();
    let flood: Vec<_> = (0..128)
        .map(|i| {
            let (addr, tx) = (addr.clone(), tx.clone());
            std::thread::spawn(move || {
                let body = json!({"bid":"shop","agent_id":"alice","password":format!("wrong-{i}")});
                let body = body.to_string();
                let code = http(&addr, "POST", "/api/agent/login", &[], body.as_bytes()).0;
                let _ = tx.send(code);
                code
            })
        })
        .collect();
    drop(tx);
    // The flood has reached the server: its first answer is in (a 503 means the login queue
    // is full, a 401 that checks have started).
    let first = answers.recv().unwrap();
    for _ in 0..5 {
        assert_eq!(http(&addr, "GET", &url, &[], b"").0, 200);
    }
    let answered_by_then = 1 + answers.try_iter().count();
    let codes: Vec<u16> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        codes.iter().all(|c| [401, 503].contains(c)),
        "{first} {codes:?}"
    );
    // Served on its own thread: the uploads came back while password checks were still
    // queued (on a shared thread they would have waited behind all of them, or been refused
    // as busy with the login queue full).
    assert!(
        answered_by_then < codes.len(),
        "the uploads were answered only after every login: they waited behind the password checks"
    );
}

#[test]
fn visitor_creation_is_limited_per_address() {
    let k = Kefu::start(
        1,
        "visitor_new_per_ip = { per_min = 1, burst = 3 }",
        &[("shop", "alice", "Alice", None)],
    );
    let mut tokens = vec![];
    for _ in 0..3 {
        let (st, v, _) = anon_token(&k);
        assert_eq!(st, 200, "{v}");
        tokens.push(v["token"].as_str().unwrap().to_string());
    }
    let (st, v, head) = anon_token(&k);
    assert_limited(st, &v, &head);
    // Over WebSocket too.
    let mut ws = Ws::connect(&k.addr(), "/ws");
    ws.send_text(&json!({"method":"visitor_login","bid":"shop"}).to_string());
    let e = recv_error(&mut ws);
    assert_eq!(
        (e["code"].as_str(), e["method"].as_str()),
        (Some("10008"), Some("visitor_login")),
        "{e}"
    );
    assert!(e["retry_after"].as_u64().unwrap() >= 1, "{e}");
    // A visitor coming back with its token is not new.
    let (_, vl) = k.visitor_with("shop", &tokens[0], json!([]));
    assert_eq!(vl["method"], "visitor_login");
}

#[test]
fn new_conversations_and_messages_are_limited_per_address() {
    let k = Kefu::start(
        1,
        "conv_new_per_ip = { per_min = 1, burst = 2 }\nvisitor_msg_per_ip = { per_min = 1, burst = 6 }",
        &[("shop", "alice", "Alice", None)],
    );
    let (mut v, _) = k.visitor("shop");
    // Two conversations opened and closed, then a third is refused.
    for i in 0..2 {
        let cmid = format!("open{i}");
        v.send_text(
            &json!({"method":"send","client_msg_id":cmid,"kind":"text","text":"hello"}).to_string(),
        );
        let a = recv_until(&mut v, "ack", |m| m["client_msg_id"] == cmid.as_str());
        assert_eq!(a["method"], "ack", "{a}");
        v.send_text(&json!({"method":"close","conv_id":a["conv_id"]}).to_string());
        recv_until(&mut v, "closed", |m| m["event"] == "closed");
    }
    v.send_text(
        &json!({"method":"send","client_msg_id":"open2","kind":"text","text":"spam"}).to_string(),
    );
    let e = recv_error(&mut v);
    assert_eq!(
        (e["code"].as_str(), e["client_msg_id"].as_str()),
        (Some("10008"), Some("open2")),
        "{e}"
    );
    assert!(e["msg"].as_str().unwrap().contains("conversations"), "{e}");
    assert!(e["retry_after"].as_u64().unwrap() >= 1, "{e}");
    // Messages: 6 at once, all counted (retries included), then the 7th waits.
    let e = loop {
        v.send_text(
            &json!({"method":"send","client_msg_id":"m","kind":"text","text":"x"}).to_string(),
        );
        let r = recv_until(&mut v, "answer", |m| {
            m.get("code").is_some() || m["method"] == "ack"
        });
        if r.get("code").is_some() && r["msg"].as_str().unwrap_or("").contains("messages") {
            break r;
        }
    };
    assert!(e["retry_after"].as_u64().unwrap() >= 1, "{e}");
}

#[test]
fn uploads_are_served_same_origin_without_metadata() {
    let k = Kefu::start(1, "", &[("shop", "alice", "Alice", None)]);
    let token = k.agent_token("shop", "alice");
    let (st, j, _) = upload(&k, &token, &jpeg_with_exif());
    assert_eq!(st, 200, "{j}");
    let (st, body, head) = http(&k.addr(), "GET", j["url"].as_str().unwrap(), &[], b"");
    assert_eq!(st, 200);
    assert!(!head.contains("Access-Control-Allow-Origin"), "{head}");
    assert!(
        head.contains("Cross-Origin-Resource-Policy: same-origin"),
        "{head}"
    );
    assert!(contains(&body, b"JFIF"));
    assert!(!contains(&body, b"Exif") && !contains(&body, b"GPS") && !contains(&body, b"home"));
    let (st, p, _) = upload(&k, &token, &png(9, 10));
    assert_eq!(st, 200, "{p}");
    let (_, body, _) = http(&k.addr(), "GET", p["url"].as_str().unwrap(), &[], b"");
    assert!(!contains(&body, b"Secret Street") && contains(&body, b"IDAT"));
    // Malformed images are refused, not stored.
    let mut bad = jpeg_with_exif();
    bad.truncate(30);
    assert_eq!(upload(&k, &token, &bad).0, 415);
}
