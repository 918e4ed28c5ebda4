//! History and resume against the real binary with two workers: backwards paging (WS and
//! HTTP), resume after a dropped connection with messages sent meanwhile, the "reload" answer
//! for a too-large gap, idempotent retries, and uploads (good, bad, oversized, served back).

mod common;

use common::http::{http, http_json};
use common::kefu_app::*;
use serde_json::{json, Value};

fn seqs(v: &Value) -> Vec<i64> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

#[test]
fn history_pages_and_http_access() {
    let k = Kefu::start(
        2,
        "rate_per_sec = 1000.0\nrate_burst = 1000.0",
        &[
            ("shop", "alice", "Alice", None),
            ("other", "zed", "Zed", None),
        ],
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut v, vl) = k.visitor("shop");
    let vtoken = vl["token"].as_str().unwrap().to_string();
    say(&mut v, None, "v0", "m0");
    let a = recv_until(&mut alice, "assigned", |m| m["method"] == "assigned");
    let conv = a["conv"]["conv_id"].as_i64().unwrap();
    // 120 more, alternating sides: seqs 1 (joined event), 2 (m0), 3..=122.
    for i in 1..=120 {
        if i % 2 == 0 {
            say(&mut v, None, &format!("v{i}"), &format!("m{i}"));
        } else {
            say(&mut alice, Some(conv), &format!("a{i}"), &format!("m{i}"));
        }
    }
    let last = 122;
    let mut got: Vec<i64> = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut req = json!({"method":"history","conv_id":conv,"limit":50});
        if let Some(b) = before {
            req["before_seq"] = json!(b);
        }
        v.send_text(&req.to_string());
        let h = recv_method(&mut v, "history");
        let s = seqs(&h);
        assert!(
            s.windows(2).all(|w| w[1] == w[0] + 1),
            "ascending, contiguous: {s:?}"
        );
        got.splice(0..0, s.iter().copied());
        before = s.first().copied();
        if !h["has_more"].as_bool().unwrap() {
            break;
        }
        assert_eq!(s.len(), 50);
    }
    assert_eq!(got, (1..=last).collect::<Vec<_>>());

    // HTTP: the visitor's token and the agent's token read it; others cannot.
    let auth = format!("Bearer {vtoken}");
    let (st, h) = http_json(
        &k.addr(),
        "GET",
        &format!("/api/history?conv_id={conv}&limit=10"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(st, 200, "{h}");
    assert_eq!(seqs(&h), (last - 9..=last).collect::<Vec<_>>());
    assert_eq!(h["has_more"], true);
    let at = format!("Bearer {}", k.agent_token("shop", "alice"));
    let (st, h) = http_json(
        &k.addr(),
        "GET",
        &format!("/api/history?conv_id={conv}&before_seq=3"),
        &[("Authorization", &at)],
        b"",
    );
    assert_eq!((st, seqs(&h)), (200, vec![1, 2]));
    assert_eq!(h["has_more"], false);
    // The assignment event precedes the first message (routing happens before it is stored).
    assert_eq!(h["messages"][0]["kind"], "event");
    assert_eq!(h["messages"][1]["text"], "m0");
    let (_v2, v2l) = k.visitor("shop");
    let other = format!("Bearer {}", v2l["token"].as_str().unwrap());
    let (st, _) = http_json(
        &k.addr(),
        "GET",
        &format!("/api/history?conv_id={conv}"),
        &[("Authorization", &other)],
        b"",
    );
    assert_eq!(st, 404);
    let zt = format!("Bearer {}", k.agent_token("other", "zed"));
    let (st, _) = http_json(
        &k.addr(),
        "GET",
        &format!("/api/history?conv_id={conv}"),
        &[("Authorization", &zt)],
        b"",
    );
    assert_eq!(st, 404);
    let (st, _) = http_json(
        &k.addr(),
        "GET",
        &format!("/api/history?conv_id={conv}"),
        &[],
        b"",
    );
    assert_eq!(st, 401);
    let (st, _) = http_json(
        &k.addr(),
        "GET",
        &format!("/api/history?conv_id={conv}"),
        &[("Authorization", "Bearer forged.token")],
        b"",
    );
    assert_eq!(st, 401);
    // Over WS, a foreign conversation is "not found".
    let (mut v2, _) = k.visitor("shop");
    v2.send_text(&json!({"method":"history","conv_id":conv}).to_string());
    assert_eq!(recv_error(&mut v2)["code"], "10007");
}

#[test]
fn resume_after_drop_gets_exactly_the_missed_messages() {
    let k = Kefu::start(
        2,
        "resume_max_gap = 10",
        &[("shop", "alice", "Alice", None)],
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut v, vl) = k.visitor("shop");
    let token = vl["token"].as_str().unwrap().to_string();
    say(&mut v, None, "v0", "hi");
    let conv = recv_until(&mut alice, "assigned", |m| m["method"] == "assigned")["conv"]["conv_id"]
        .as_i64()
        .unwrap();
    let s = say(&mut alice, Some(conv), "a0", "hello");
    recv_until(&mut v, "hello", |m| {
        m["method"] == "message" && m["seq"] == s
    });
    let last_seen = s;
    drop(v);

    // Sent while the visitor is away.
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(say(
            &mut alice,
            Some(conv),
            &format!("away{i}"),
            &format!("while away {i}"),
        ));
    }
    // Reconnect with the token and the last seq: exactly the 5 missed, then live.
    let (mut v, l) = k.visitor_with(
        "shop",
        &token,
        json!([{"conv_id":conv,"last_seq":last_seen}]),
    );
    assert_eq!(l["conv"]["conv_id"], conv);
    assert_eq!(l["conv"]["last_seq"], last_seen + 5);
    let sync = recv_method(&mut v, "sync");
    assert_eq!(seqs(&sync), sent);
    assert_eq!(sync["reload"], false);
    assert_eq!(sync["messages"][4]["text"], "while away 4");
    let live = say(&mut alice, Some(conv), "live", "live one");
    let m = recv_until(&mut v, "live", |m| m["method"] == "message");
    assert_eq!(
        (m["seq"].as_i64(), m["text"].as_str()),
        (Some(live), Some("live one"))
    );
    assert_eq!(live, sent[4] + 1);

    // Agent side: the same over `sync` after its own reconnect.
    drop(alice);
    say(&mut v, None, "v1", "are you there?");
    let (mut alice, login) = k.agent("shop", "alice");
    assert_eq!(login["conversations"][0]["conv_id"], conv);
    alice.send_text(&json!({"method":"sync","conv_id":conv,"last_seq":live}).to_string());
    let sync = recv_method(&mut alice, "sync");
    assert_eq!(seqs(&sync), vec![live + 1]);
    assert_eq!(sync["messages"][0]["text"], "are you there?");

    // A gap over resume_max_gap (10): told to reload instead.
    drop(v);
    for i in 0..12 {
        say(&mut alice, Some(conv), &format!("flood{i}"), "x");
    }
    let (mut v, _) = k.visitor_with("shop", &token, json!([{"conv_id":conv,"last_seq":live}]));
    let sync = recv_method(&mut v, "sync");
    assert_eq!(sync["reload"], true);
    assert_eq!(sync["messages"].as_array().unwrap().len(), 0);
    assert_eq!(sync["last_seq"], live + 13);

    // Retrying a send with the same client_msg_id stores it once and acks the same seq.
    let s1 = say(&mut v, None, "dup", "only once");
    let s2 = say(&mut v, None, "dup", "only once");
    assert_eq!(s1, s2);
    v.send_text(&json!({"method":"history","conv_id":conv,"limit":3}).to_string());
    let h = recv_method(&mut v, "history");
    let texts: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["x", "x", "only once"]);
}

#[test]
fn uploads() {
    let k = Kefu::start(
        2,
        "upload_max_bytes = 4096",
        &[("shop", "alice", "Alice", None)],
    );
    let (mut alice, _) = k.agent("shop", "alice");
    let (mut v, vl) = k.visitor("shop");
    let auth = format!("Bearer {}", vl["token"].as_str().unwrap());
    // Visitors upload into an open conversation (docs/security.md).
    say(&mut v, None, "first", "hello");
    let png = tiny_png();
    let (st, up) = http_json(
        &k.addr(),
        "POST",
        "/api/upload",
        &[("Authorization", &auth), ("Content-Type", "image/png")],
        &png,
    );
    assert_eq!(st, 200, "{up}");
    assert_eq!(up["mime"], "image/png");
    assert_eq!(up["bytes"], 208);
    let url = up["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("/uploads/") && url.ends_with(".png"));
    // Served back as an image, not sniffable into HTML.
    let (st, body, head) = http(&k.addr(), "GET", &url, &[], b"");
    assert_eq!(st, 200);
    assert_eq!(body, png);
    assert!(head.contains("Content-Type: image/png"), "{head}");
    assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");
    // And used in a message.
    v.send_text(
        &json!({"method":"send","client_msg_id":"img","kind":"image","url":url}).to_string(),
    );
    let m = recv_until(&mut alice, "image", |m| {
        m["method"] == "message" && m["kind"] == "image"
    });
    assert_eq!(m["url"], url.as_str());

    // Bad uploads: a script claiming to be an image, too large, empty, no token.
    let (st, e) = http_json(
        &k.addr(),
        "POST",
        "/api/upload",
        &[("Authorization", &auth), ("Content-Type", "image/png")],
        b"<svg onload=alert(1)></svg>",
    );
    assert_eq!((st, e["code"].as_str()), (415, Some("10005")));
    let mut big = b"GIF89a".to_vec();
    big.resize(5000, 0);
    let (st, _) = http_json(
        &k.addr(),
        "POST",
        "/api/upload",
        &[("Authorization", &auth)],
        &big,
    );
    assert_eq!(st, 413);
    let (st, _) = http_json(
        &k.addr(),
        "POST",
        "/api/upload",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(st, 400);
    let (st, _) = http_json(&k.addr(), "POST", "/api/upload", &[], &png);
    assert_eq!(st, 401);
    // Unknown or malformed file names.
    let (st, _, _) = http(
        &k.addr(),
        "GET",
        &format!("/uploads/{}.png", "0".repeat(64)),
        &[],
        b"",
    );
    assert_eq!(st, 404);
    let (st, _, _) = http(&k.addr(), "GET", "/uploads/..%2fsecret.key", &[], b"");
    assert_eq!(st, 404);
    // CORS preflight for the widget on another origin.
    let (st, _, head) = http(
        &k.addr(),
        "OPTIONS",
        "/api/upload",
        &[("Origin", "https://shop.example")],
        b"",
    );
    assert_eq!(st, 204);
    assert!(head.contains("Access-Control-Allow-Origin: *"), "{head}");
    // Unknown endpoints answer 404, not silence.
    let (st, _) = http_json(&k.addr(), "GET", "/api/nope", &[], b"");
    assert_eq!(st, 404);
}
