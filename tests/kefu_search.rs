//! Search and lists over HTTP against the real binary: the closed-conversation list with
//! keyset paging, full-text search (FTS5 trigram and the short-text path on SQLite, ILIKE
//! over a pg_trgm index on PostgreSQL: `KEFU_TEST_STORE=postgres`) with its filters,
//! a visitor's profile, hostile queries, and tenant isolation (another business's agent
//! never sees a hit, a conversation or a visitor of this one).

mod common;

use common::http::http_json;
use common::kefu_app::*;
use common::ws::Ws;
use serde_json::Value;

fn get(k: &Kefu, token: Option<&str>, path: &str) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let h: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    http_json(&k.addr(), "GET", path, &h, b"")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn search(k: &Kefu, token: &str, query: &str) -> (u16, Value) {
    get(k, Some(token), &format!("/api/search?{query}"))
}

fn texts(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {v}"))
        .iter()
        .map(|h| h["text"].as_str().unwrap().to_string())
        .collect()
}

/// A visitor of `bid` that says `lines` (the first opens a conversation); returns the
/// socket, its visitor id and the conversation id.
fn visitor_says(k: &Kefu, bid: &str, lines: &[&str]) -> (Ws, String, i64) {
    let (mut v, l) = k.visitor(bid);
    let vid = l["visitor_id"].as_str().unwrap().to_string();
    let mut conv = None;
    for (i, t) in lines.iter().enumerate() {
        say(&mut v, conv, &format!("m{i}"), t);
        let m = recv_until(&mut v, "own message", |m| {
            m["method"] == "message" && m["text"] == *t
        });
        conv = m["conv_id"].as_i64();
    }
    (v, vid, conv.unwrap())
}

fn close(v: &mut Ws) {
    v.send_text(r#"{"method":"close"}"#);
    recv_until(v, "closed", |m| {
        m["method"] == "message" && m["event"] == "closed"
    });
}

#[test]
fn search_lists_and_profiles_stay_in_the_business() {
    let k = Kefu::start(
        1,
        "",
        &[
            ("shop", "alice", "Alice", None),
            ("other", "zed", "Zed", None),
        ],
    );
    let (mut alice_ws, _) = k.agent("shop", "alice");
    let alice = k.agent_token("shop", "alice");
    let zed = k.agent_token("other", "zed");

    let (mut v1, vid1, c1) = visitor_says(&k, "shop", &["我想退款 refund please"]);
    recv_until(&mut alice_ws, "assigned", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"] == c1
    });
    say(&mut alice_ws, Some(c1), "a1", "好的，马上处理退款");
    close(&mut v1);
    let (mut v2, _vid2, c2) = visitor_says(
        &k,
        "shop",
        &[
            "shipping one",
            "shipping two",
            "shipping three",
            "shipping four",
            "shipping five",
        ],
    );
    close(&mut v2);
    let (_v3, vid3, _c3) = visitor_says(&k, "other", &["refund refund 退款 from other"]);

    // Full-text (trigram) search: only this business's message, with its context.
    let (st, r) = search(&k, &alice, "q=refund");
    assert_eq!(st, 200, "{r}");
    assert_eq!(texts(&r), ["我想退款 refund please"]);
    let h = &r["items"][0];
    assert_eq!(
        (h["conv_id"].as_i64(), h["from"].as_str()),
        (Some(c1), Some("visitor"))
    );
    assert_eq!(h["visitor_id"], vid1.as_str());
    assert_eq!(h["agent_id"], "alice");
    // Chinese, four characters (FTS) and two (the short-text path), newest first.
    let (_, r) = search(&k, &alice, &format!("q={}", enc("马上处理")));
    assert_eq!(texts(&r), ["好的，马上处理退款"]);
    assert_eq!(r["items"][0]["from"], "agent");
    let (_, r) = search(&k, &alice, &format!("q={}", enc("退款")));
    assert_eq!(texts(&r), ["好的，马上处理退款", "我想退款 refund please"]);
    // Case does not matter (FTS5's trigrams; PostgreSQL's ILIKE).
    let (_, r) = search(&k, &alice, "q=REFUND");
    assert_eq!(texts(&r), ["我想退款 refund please"]);
    let (_, r) = search(&k, &alice, "q=fU");
    assert_eq!(texts(&r), ["我想退款 refund please"]);
    if let Some(pg) = &k.pg {
        // On PostgreSQL three characters or more are served by the pg_trgm index.
        assert_eq!(
            pg.psql("SELECT indexname FROM pg_indexes WHERE indexname = 'msg_trgm'"),
            "msg_trgm"
        );
    }
    // Filters: agent, visitor, date range.
    let (_, r) = search(&k, &alice, &format!("q={}&agent_id=alice", enc("退款")));
    assert_eq!(texts(&r).len(), 2, "alice's conversation");
    let (_, r) = search(&k, &alice, &format!("q={}&visitor_id={vid1}", enc("退款")));
    assert_eq!(texts(&r).len(), 2);
    let (_, r) = search(&k, &alice, "q=shipping&visitor_id=nobody");
    assert_eq!(texts(&r).len(), 0);
    let (_, r) = search(&k, &alice, "q=shipping&to=1000");
    assert_eq!(texts(&r).len(), 0, "before any message");
    let (_, r) = search(
        &k,
        &alice,
        &format!("q=shipping&from={}", unix_now() * 1000 + 3_600_000),
    );
    assert_eq!(texts(&r).len(), 0, "after every message");

    // Keyset paging: five hits, pages of two, each exactly once, newest first.
    let mut seen = Vec::new();
    let mut before = String::new();
    for page in 0.. {
        let (st, r) = search(&k, &alice, &format!("q=shipping&limit=2&before={before}"));
        assert_eq!(st, 200, "{r}");
        seen.extend(texts(&r));
        match r["next"].as_str() {
            Some(n) => before = n.to_string(),
            None => break,
        }
        assert!(page < 5, "paging does not end");
    }
    assert_eq!(
        seen,
        [
            "shipping five",
            "shipping four",
            "shipping three",
            "shipping two",
            "shipping one"
        ]
    );

    // Hostile queries: FTS syntax is plain text, sizes are bounded, bad input is 400.
    for q in [
        "refund\" OR \"other",
        "refund OR other",
        "text:refund",
        "NEAR(refund other)",
        "ref*",
        "\"",
        "^refund",
        "%",
        "_",
        "refund)(",
    ] {
        let (st, r) = search(&k, &alice, &format!("q={}", enc(q)));
        assert_eq!(st, 200, "{q}: {r}");
        assert!(
            texts(&r).iter().all(|t| !t.contains("other")),
            "{q} leaked: {r}"
        );
    }
    let (_, r) = search(&k, &alice, &format!("q={}", enc("%")));
    assert_eq!(texts(&r).len(), 0, "% is a character, not a wildcard");
    let (_, r) = search(&k, &alice, "q=shipping&limit=1000000");
    assert_eq!(texts(&r).len(), 5, "clamped, not refused");
    for bad in [
        "q=".to_string(),
        format!("q={}", "x".repeat(101)),
        "q=a%00b".to_string(),
        "q=ship&before=1.2.3.4".to_string(),
        "q=ship&before=abc".to_string(),
        "q=ship&limit=lots".to_string(),
        format!("q=ship&visitor_id={}", enc("' OR 1=1 --")),
        "q=ship&from=yesterday".to_string(),
    ] {
        let (st, r) = search(&k, &alice, &bad);
        assert_eq!(st, 400, "{bad}: {r}");
    }

    // The other business: its own hit only, and nothing of shop's by any filter.
    let (_, r) = search(&k, &zed, "q=refund");
    assert_eq!(texts(&r), ["refund refund 退款 from other"]);
    let (_, r) = search(
        &k,
        &zed,
        &format!("q=shipping&visitor_id={_vid2}", _vid2 = vid1),
    );
    assert_eq!(texts(&r).len(), 0);
    let (_, r) = search(&k, &zed, "q=shipping&agent_id=alice");
    assert_eq!(texts(&r).len(), 0);

    // Closed conversations, newest closed first, one per page.
    let (st, p1) = get(&k, Some(&alice), "/api/conversations/closed?limit=1");
    assert_eq!(st, 200, "{p1}");
    assert_eq!(p1["items"][0]["conv_id"].as_i64(), Some(c2));
    assert_eq!(p1["items"][0]["state"], "closed");
    let next = p1["next"].as_str().unwrap();
    let (_, p2) = get(
        &k,
        Some(&alice),
        &format!("/api/conversations/closed?limit=1&before={next}"),
    );
    assert_eq!(p2["items"][0]["conv_id"].as_i64(), Some(c1));
    assert_eq!(p2["items"][0]["agent_id"], "alice");
    let (_, p3) = get(
        &k,
        Some(&alice),
        &format!(
            "/api/conversations/closed?limit=1&before={}",
            p2["next"].as_str().unwrap()
        ),
    );
    assert_eq!(p3["items"].as_array().unwrap().len(), 0);
    assert!(p3.get("next").is_none());
    let (_, z) = get(&k, Some(&zed), "/api/conversations/closed");
    assert_eq!(z["items"].as_array().unwrap().len(), 0, "{z}");
    // Filters: visitor, agent, the time it closed; another business's ids find nothing.
    let ids = |v: &Value| -> Vec<i64> {
        v["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|i| i["conv_id"].as_i64().unwrap())
            .collect()
    };
    let closed = |token: &str, q: &str| {
        let (st, v) = get(&k, Some(token), &format!("/api/conversations/closed?{q}"));
        assert_eq!(st, 200, "{q}: {v}");
        ids(&v)
    };
    assert_eq!(closed(&alice, &format!("visitor_id={vid1}")), [c1]);
    assert_eq!(closed(&alice, "agent_id=alice"), [c2, c1]);
    assert_eq!(closed(&alice, "agent_id=nobody"), Vec::<i64>::new());
    let later = unix_now() * 1000 + 3_600_000;
    assert_eq!(closed(&alice, &format!("to={later}")), [c2, c1]);
    assert_eq!(closed(&alice, &format!("from={later}")), Vec::<i64>::new());
    assert_eq!(closed(&alice, "to=1000"), Vec::<i64>::new());
    assert_eq!(
        closed(&zed, &format!("visitor_id={vid1}")),
        Vec::<i64>::new()
    );
    assert_eq!(closed(&zed, "agent_id=alice"), Vec::<i64>::new());
    for bad in ["visitor_id=a%20b", "agent_id=%27", "from=today", "to=x"] {
        let (st, v) = get(
            &k,
            Some(&alice),
            &format!("/api/conversations/closed?{bad}"),
        );
        assert_eq!(st, 400, "{bad}: {v}");
    }

    // A visitor's profile: conversations and visits; another business's visitor is 404.
    let (st, p) = get(
        &k,
        Some(&alice),
        &format!("/api/visitor/profile?visitor_id={vid1}"),
    );
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["conversations"][0]["conv_id"].as_i64(), Some(c1));
    // One visit (its sign-in), recorded by a trigger on either store.
    assert_eq!(p["visits"].as_array().map(Vec::len), Some(1), "{p}");
    assert_eq!(p["visits"][0]["page_url"], "https://shop/p");
    assert_eq!(p["visits"][0]["referrer"], "https://ref/");
    assert_eq!(p["page_url"], "https://shop/p");
    let (st, _) = get(
        &k,
        Some(&alice),
        &format!("/api/visitor/profile?visitor_id={vid3}"),
    );
    assert_eq!(st, 404);
    let (st, _) = get(
        &k,
        Some(&zed),
        &format!("/api/visitor/profile?visitor_id={vid1}"),
    );
    assert_eq!(st, 404);
    assert_eq!(get(&k, Some(&alice), "/api/visitor/profile").0, 400);

    // Who may not: no token, a forged one, a visitor's token; a wrong method.
    for path in [
        "/api/search?q=refund",
        "/api/conversations/closed",
        &format!("/api/visitor/profile?visitor_id={vid1}"),
    ] {
        assert_eq!(get(&k, None, path).0, 401, "{path}");
        assert_eq!(get(&k, Some("forged.token"), path).0, 401, "{path}");
        let (_, vl) = k.visitor("shop");
        let (st, _) = get(&k, vl["token"].as_str(), path);
        assert_eq!(st, 403, "{path}");
    }
    let (st, _, _) = common::http::http(
        &k.addr(),
        "POST",
        "/api/search?q=refund",
        &[("Authorization", &format!("Bearer {alice}"))],
        b"",
    );
    assert_eq!(st, 405);
}
