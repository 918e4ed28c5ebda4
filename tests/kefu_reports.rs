//! Reports over HTTP against the real binary: per day and per agent, conversations, missed
//! ones (the visitor left while queued), first-response and resolution times, the CSV
//! export, bounded ranges, who may read them, and tenant isolation.

mod common;

use common::http::{http, http_json};
use common::kefu_app::*;
use common::ws::Ws;
use serde_json::Value;

fn report(k: &Kefu, token: Option<&str>, query: &str) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let h: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    http_json(&k.addr(), "GET", &format!("/api/reports?{query}"), &h, b"")
}

fn opened(k: &Kefu, bid: &str, text: &str) -> (Ws, i64) {
    let (mut v, _) = k.visitor(bid);
    say(&mut v, None, "first", text);
    let m = recv_until(&mut v, "own message", |m| {
        m["method"] == "message" && m["text"] == text
    });
    (v, m["conv_id"].as_i64().unwrap())
}

fn close(v: &mut Ws) {
    v.send_text(r#"{"method":"close"}"#);
    recv_until(v, "closed", |m| {
        m["method"] == "message" && m["event"] == "closed"
    });
}

fn row<'a>(r: &'a Value, key: &str) -> &'a Value {
    r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == key)
        .unwrap_or_else(|| panic!("no row {key}: {r}"))
}

#[test]
fn reports_count_per_day_and_agent_for_the_business_only() {
    let k = Kefu::start(
        1,
        "",
        &[
            ("shop", "alice", "Alice", None),
            ("other", "zed", "Zed", None),
        ],
    );
    // Nobody online: the visitor waits, then leaves: a missed conversation.
    let (mut gone, _) = opened(&k, "shop", "anyone there?");
    close(&mut gone);
    // Alice answers and the visitor closes: answered and resolved.
    let (mut alice_ws, _) = k.agent("shop", "alice");
    let (mut v, c) = opened(&k, "shop", "hello");
    recv_until(&mut alice_ws, "assigned", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"] == c
    });
    say(&mut alice_ws, Some(c), "r1", "hi, how can I help?");
    close(&mut v);
    // Another business's conversation.
    let _other = opened(&k, "other", "other business");

    let alice = k.agent_token("shop", "alice");
    let zed = k.agent_token("other", "zed");

    // Per day: every day of the (default 30-day) range; today holds both.
    let (st, r) = report(&k, Some(&alice), "group=day");
    assert_eq!(st, 200, "{r}");
    let rows = r["rows"].as_array().unwrap();
    assert!((30..=32).contains(&rows.len()), "{}", rows.len());
    let today = rows.last().unwrap();
    assert_eq!(today["conversations"], 2, "{r}");
    assert_eq!(today["missed"], 1);
    assert_eq!(today["answered"], 1);
    assert_eq!(today["resolved"], 1);
    assert!(today["first_response_ms"].as_i64().unwrap() >= 0);
    assert!(today["resolution_ms"].as_i64().unwrap() >= 0);
    let total: i64 = rows
        .iter()
        .map(|x| x["conversations"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 2, "the other business's conversation is not counted");
    assert!(rows[0]["first_response_ms"].is_null());

    // Per agent: alice's, and the missed one under no agent.
    let (_, r) = report(&k, Some(&alice), "group=agent");
    assert_eq!(r["rows"].as_array().unwrap().len(), 2, "{r}");
    let a = row(&r, "alice");
    assert_eq!(
        (a["conversations"].as_i64(), a["missed"].as_i64()),
        (Some(1), Some(0))
    );
    let none = row(&r, "");
    assert_eq!(
        (none["conversations"].as_i64(), none["missed"].as_i64()),
        (Some(1), Some(1))
    );

    // The other business sees its own only.
    let (_, r) = report(&k, Some(&zed), "group=agent");
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{r}");
    assert_eq!(rows[0]["key"], "");
    assert_eq!(rows[0]["conversations"], 1);

    // CSV export with the agent token.
    let auth = format!("Bearer {alice}");
    let (st, body, head) = http(
        &k.addr(),
        "GET",
        "/api/reports?group=agent&format=csv",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(st, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/csv"), "{head}");
    assert!(head.contains("content-disposition: attachment"), "{head}");
    let csv = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "agent,conversations,missed,answered,first_response_s,resolved,resolution_s"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines.iter().any(|l| l.starts_with("alice,1,0,1,")), "{csv}");
    assert!(lines.iter().any(|l| l.starts_with(",1,1,0,,0,")), "{csv}");

    // Bounded and checked: ranges, groups, formats, time zones.
    let now = unix_now() * 1000;
    for bad in [
        format!("from={now}&to={}", now - 1),
        format!("from=0&to={now}"),
        "group=department".to_string(),
        "group=agent;DROP".to_string(),
        "format=xml".to_string(),
        "tz=100000".to_string(),
        "from=soon".to_string(),
    ] {
        let (st, e) = report(&k, Some(&alice), &bad);
        assert_eq!(st, 400, "{bad}: {e}");
    }
    // A range with a time zone: one day, east of UTC.
    let (st, r) = report(
        &k,
        Some(&alice),
        &format!("group=day&from={}&to={now}&tz=480", now - 86_400_000),
    );
    assert_eq!(st, 200, "{r}");
    assert!(r["rows"].as_array().unwrap().len() <= 2);

    // Who may not: no token, a forged one, a visitor's.
    assert_eq!(report(&k, None, "group=day").0, 401);
    assert_eq!(report(&k, Some("forged.token"), "group=day").0, 401);
    let (_, vl) = k.visitor("shop");
    assert_eq!(report(&k, vl["token"].as_str(), "group=day").0, 403);
}
