//! Reports over HTTP against the real binary: per day, per agent and per department,
//! conversations, missed ones (the visitor left while queued), first-response and resolution
//! times, the visitors' ratings, one department's figures, the CSV export, bounded ranges,
//! who may read them (the business's admins only), and tenant isolation.

mod common;

use common::http::{http, http_json};
use common::kefu_app::*;
use common::ws::Ws;
use serde_json::{json, Value};

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

fn csv_lines(k: &Kefu, token: &str, query: &str) -> (u16, Vec<String>) {
    let auth = format!("Bearer {token}");
    let (st, body, _) = http(
        &k.addr(),
        "GET",
        &format!("/api/reports?{query}&format=csv"),
        &[("Authorization", &auth)],
        b"",
    );
    let csv = String::from_utf8(body).unwrap();
    (
        st,
        csv.split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn reports_count_per_day_and_agent_for_the_business_only() {
    let k = Kefu::start(
        1,
        "",
        &[
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
            ("other", "zed", "Zed", None),
        ],
    );
    k.make_admins(&[("shop", "alice")]);
    k.make_admins(&[("other", "zed")]);
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
        "agent,name,conversations,missed,answered,first_response_s,resolved,resolution_s,rated,rating_avg"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines.iter().any(|l| l.starts_with("alice,Alice,1,0,1,")),
        "{csv}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(",,1,1,0,,0,,0,")),
        "{csv}"
    );

    // Bounded and checked: ranges, groups, formats, time zones.
    let now = unix_now() * 1000;
    for bad in [
        format!("from={now}&to={}", now - 1),
        format!("from=0&to={now}"),
        "group=week".to_string(),
        "dept=a%20b".to_string(),
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

    // Who may not: no token, a forged one, a visitor's, a plain agent's (JSON and CSV).
    assert_eq!(report(&k, None, "group=day").0, 401);
    assert_eq!(report(&k, Some("forged.token"), "group=day").0, 401);
    let (_, vl) = k.visitor("shop");
    assert_eq!(report(&k, vl["token"].as_str(), "group=day").0, 403);
    let bob = k.agent_token("shop", "bob");
    let (st, e) = report(&k, Some(&bob), "group=agent");
    assert_eq!(st, 403, "{e}");
    assert!(e.get("rows").is_none(), "{e}");
    let (st, lines) = csv_lines(&k, &bob, "group=agent");
    assert_eq!(st, 403);
    assert!(!lines.iter().any(|l| l.contains("alice")), "{lines:?}");
    // An admin demoted to agent is refused with the token it already holds (bob first
    // becomes one: a business keeps an admin).
    k.make_admins(&[("shop", "bob")]);
    k.cli(&[
        "agent", "set", "--bid", "shop", "--id", "alice", "--role", "agent",
    ]);
    assert_eq!(report(&k, Some(&alice), "group=day").0, 403);
    assert_eq!(report(&k, Some(&bob), "group=day").0, 200);
}

/// A visitor of `dept` served by `agent` (who answers), then closing; returns the
/// visitor's token and the conversation.
fn served(k: &Kefu, bid: &str, dept: &str, agent: &mut Ws, text: &str) -> (String, i64) {
    let (mut v, l) = k.visitor_in(bid, dept);
    assert_eq!(l["dept"], dept, "{l}");
    say(&mut v, None, "q", text);
    let a = recv_until(agent, "assigned", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"].is_i64()
    });
    let c = a["conv"]["conv_id"].as_i64().unwrap();
    assert_eq!(a["conv"]["dept_id"], dept, "{a}");
    say(agent, Some(c), "r", "right away");
    close(&mut v);
    (l["token"].as_str().unwrap().to_string(), c)
}

fn rate(k: &Kefu, visitor_token: &str, conv: i64, score: i64) {
    let (st, r) = api(
        k,
        "POST",
        "/api/rating",
        Some(visitor_token),
        &json!({"conv_id": conv, "score": score, "comment": "thanks"}),
    );
    assert_eq!(st, 200, "{r}");
}

fn dept_save(k: &Kefu, admin: &str, id: &str, name: &str) {
    k.admin_ok(admin, json!({"op":"dept_save","dept_id":id,"name":name}));
}

fn keys(r: &Value) -> Vec<String> {
    r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn reports_per_department_with_ratings_for_the_business_only() {
    let k = Kefu::start(
        1,
        "",
        &[
            ("shop", "boss", "Boss", None),
            ("shop", "alice", "Alice", None),
            ("shop", "bob", "Bob", None),
            ("other", "zed", "Zed", None),
        ],
    );
    k.make_admins(&[("shop", "boss")]);
    k.make_admins(&[("other", "zed")]);
    let boss = k.agent_token("shop", "boss");
    let zed = k.agent_token("other", "zed");
    dept_save(&k, &boss, "sales", "Sales 销售");
    dept_save(&k, &boss, "support", "Support");
    k.admin_ok(
        &boss,
        json!({"op":"agent_update","agent_id":"alice","depts":["sales"]}),
    );
    k.admin_ok(
        &boss,
        json!({"op":"agent_update","agent_id":"bob","depts":["support"]}),
    );
    // The other business has a department of the same id, and an agent in it.
    dept_save(&k, &zed, "sales", "Their sales");
    k.admin_ok(
        &zed,
        json!({"op":"agent_update","agent_id":"zed","depts":["sales"]}),
    );

    // Support, nobody online: the visitor leaves while queued (missed).
    let (mut gone, l) = k.visitor_in("shop", "support");
    assert_eq!(l["dept"], "support");
    say(&mut gone, None, "q", "anyone in support?");
    close(&mut gone);
    // Sales: alice answers, the visitor rates 5. Support: bob answers, rated 2.
    let (mut alice_ws, _) = k.agent("shop", "alice");
    let (t1, c1) = served(&k, "shop", "sales", &mut alice_ws, "price?");
    rate(&k, &t1, c1, 5);
    let (mut bob_ws, _) = k.agent("shop", "bob");
    let (t2, c2) = served(&k, "shop", "support", &mut bob_ws, "broken");
    rate(&k, &t2, c2, 2);
    // The other business: served in its "sales", rated 1.
    let (mut zed_ws, _) = k.agent("other", "zed");
    let (t3, c3) = served(&k, "other", "sales", &mut zed_ws, "theirs");
    rate(&k, &t3, c3, 1);

    // Per department, with names and ratings.
    let (st, r) = report(&k, Some(&boss), "group=dept");
    assert_eq!(st, 200, "{r}");
    assert_eq!(keys(&r), ["sales", "support"], "{r}");
    let sales = row(&r, "sales");
    assert_eq!(sales["name"], "Sales 销售");
    assert_eq!(
        (
            sales["conversations"].as_i64(),
            sales["missed"].as_i64(),
            sales["rated"].as_i64(),
            sales["rating_avg"].as_f64()
        ),
        (Some(1), Some(0), Some(1), Some(5.0)),
        "{r}"
    );
    let support = row(&r, "support");
    assert_eq!(
        (
            support["conversations"].as_i64(),
            support["missed"].as_i64(),
            support["answered"].as_i64(),
            support["resolved"].as_i64(),
            support["rated"].as_i64(),
            support["rating_avg"].as_f64()
        ),
        (Some(2), Some(1), Some(1), Some(1), Some(1), Some(2.0)),
        "{r}"
    );
    // Per agent, of one department: the missed one (no agent) and bob's.
    let (st, r) = report(&k, Some(&boss), "group=agent&dept=support");
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["dept"], "support");
    assert_eq!(keys(&r), ["", "bob"], "{r}");
    assert_eq!(row(&r, "bob")["name"], "Bob");
    assert_eq!(row(&r, "bob")["rating_avg"].as_f64(), Some(2.0));
    // Per day: today's ratings, the mean of 5 and 2.
    let (_, r) = report(&k, Some(&boss), "group=day");
    let today = r["rows"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            today["conversations"].as_i64(),
            today["rated"].as_i64(),
            today["rating_avg"].as_f64()
        ),
        (Some(3), Some(2), Some(3.5)),
        "{r}"
    );
    let (_, r) = report(&k, Some(&boss), "group=day&dept=sales");
    let today = r["rows"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["conversations"], 1, "{r}");

    // CSV per department.
    let (st, lines) = csv_lines(&k, &boss, "group=dept");
    assert_eq!(st, 200);
    assert_eq!(
        lines[0],
        "dept,name,conversations,missed,answered,first_response_s,resolved,resolution_s,rated,rating_avg"
    );
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].starts_with("sales,Sales 销售,1,0,1,"), "{lines:?}");
    assert!(lines[1].ends_with(",1,5.00"), "{lines:?}");
    assert!(lines[2].starts_with("support,Support,2,1,1,"), "{lines:?}");
    assert!(lines[2].ends_with(",1,2.00"), "{lines:?}");

    // The other business: its own "sales" only, its own rating; shop's departments, agents
    // and ratings never appear, whatever it asks for.
    let (_, r) = report(&k, Some(&zed), "group=dept");
    assert_eq!(keys(&r), ["sales"], "{r}");
    let theirs = row(&r, "sales");
    assert_eq!(theirs["name"], "Their sales");
    assert_eq!(
        (
            theirs["conversations"].as_i64(),
            theirs["rated"].as_i64(),
            theirs["rating_avg"].as_f64()
        ),
        (Some(1), Some(1), Some(1.0)),
        "{r}"
    );
    let (_, r) = report(&k, Some(&zed), "group=dept&dept=support");
    assert_eq!(keys(&r), Vec::<String>::new(), "{r}");
    let (_, r) = report(&k, Some(&zed), "group=agent");
    assert_eq!(keys(&r), ["zed"], "{r}");
    let (_, lines) = csv_lines(&k, &zed, "group=dept");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("Support") || l.contains("销售")),
        "{lines:?}"
    );
    // ... and shop's view never shows the other's rating of 1.
    let (_, r) = report(&k, Some(&boss), "group=agent");
    assert!(
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["rating_avg"].as_f64() != Some(1.0)),
        "{r}"
    );

    // A plain agent of the shop may not read any of it.
    let alice = k.agent_token("shop", "alice");
    assert_eq!(report(&k, Some(&alice), "group=dept").0, 403);
    assert_eq!(csv_lines(&k, &alice, "group=dept").0, 403);
}
