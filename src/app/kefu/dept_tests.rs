//! Departments in the routing SQL (in-memory SQLite with the store's schema, see
//! `routing_tests.rs`): who may take what, a line per department with its own positions, a
//! full department not holding up the others, claims and dismissals by members only,
//! transfer to a department, disabled agents, the business's own policy, and another
//! business never seeing a department.

use super::history::{self, Body, Sender};
use super::queue;
use super::routing::{self, Closer};
use super::routing_tests::{assigned, online, policy, Mem, BID};
use super::state::Phase;
use super::transfer;
use crate::config::RoutingPolicy;
use crate::store::{depts, tenancy, StoreError};

impl Mem {
    fn dept(&self, id: &str, members: &[&str]) {
        depts::upsert(&self.conn, BID, id, &id.to_uppercase()).unwrap();
        for m in members {
            let mut mine: Vec<String> = depts::of_agent(&self.conn, BID, m)
                .unwrap()
                .into_iter()
                .map(|d| d.dept_id)
                .collect();
            mine.push(id.to_string());
            depts::set_of_agent(&self.conn, BID, m, &mine).unwrap();
        }
    }

    fn conv_in(&self, visitor: &str, dept: Option<&str>, at: i64) -> i64 {
        routing::open(&self.conn, BID, visitor, dept, at).unwrap()
    }
}

/// (conv, position) of a line.
fn line(r: &routing::Routed, dept: Option<&str>) -> Vec<(i64, i64)> {
    r.line(dept)
        .map(|q| q.entries.iter().map(|e| (e.conv_id, e.position)).collect())
        .unwrap_or_default()
}

#[test]
fn a_department_conversation_goes_only_to_its_agents() {
    let db = Mem::new();
    for a in ["a", "b", "c"] {
        db.agent(a, Some(2));
    }
    db.dept("sales", &["a"]);
    db.dept("support", &["b"]);
    // c is in no department: it takes only conversations without one.
    let s1 = db.conv_in("v1", Some("sales"), 1);
    let t1 = db.conv_in("v2", Some("support"), 2);
    let n1 = db.conv_in("v3", None, 3);
    let s2 = db.conv_in("v4", Some("sales"), 4);
    let s3 = db.conv_in("v5", Some("sales"), 5);
    let p = policy(RoutingPolicy::LeastBusy, 5);
    let r = routing::drain(&db.conn, BID, &online(&["a", "b", "c"]), p, 10).unwrap();
    // The conversation without a department goes to the idlest of all (c); sales fills a
    // (its maximum is 2) and the third sales visitor waits, first in the sales line,
    // although b and c have room.
    let want = [(s1, "a"), (t1, "b"), (n1, "c"), (s2, "a")];
    assert_eq!(assigned(&r), want.map(|(c, a)| (c, a.to_string())));
    assert_eq!(line(&r, Some("sales")), vec![(s3, 1)]);
    assert_eq!(r.line(Some("sales")).unwrap().len, 1);
    assert!(r.line(Some("sales")).unwrap().agents_online);
    assert_eq!(db.phase(s3), Phase::Queued);
    // The line stays reported empty for the departments that changed.
    assert_eq!(r.line(Some("support")).map(|q| q.len), Some(0));
    // The conversation knows its department.
    let c = routing::load(&db.conn, s1, false).unwrap().unwrap();
    assert_eq!(c.dept_id.as_deref(), Some("sales"));
}

#[test]
fn each_line_counts_its_own_positions_and_a_full_one_holds_up_nobody() {
    let db = Mem::new();
    db.agent("a", Some(1));
    db.agent("b", Some(5));
    db.dept("sales", &["a"]);
    db.dept("support", &["b"]);
    let busy = db.conv_in("v0", Some("sales"), 0);
    routing::claim(&db.conn, BID, busy, "a", "A", 1).unwrap();
    // Sales is full; its visitors queue ahead of a support visitor who came later.
    let s1 = db.conv_in("v1", Some("sales"), 10);
    let s2 = db.conv_in("v2", Some("sales"), 11);
    let t1 = db.conv_in("v3", Some("support"), 12);
    let n1 = db.conv_in("v4", None, 13);
    let all = queue::entries(&db.conn, BID, None).unwrap();
    let pos: Vec<(i64, i64)> = all.iter().map(|e| (e.conv_id, e.position)).collect();
    assert_eq!(pos, vec![(s1, 1), (s2, 2), (t1, 1), (n1, 1)]);
    let (at, dept) = (all[1].queued_at, all[1].dept_id.clone());
    assert_eq!(
        queue::position(&db.conn, BID, dept.as_deref(), at, s2).unwrap(),
        2
    );
    // An agent sees its departments' lines and the one without a department.
    let seen: Vec<i64> = queue::entries(&db.conn, BID, Some("a"))
        .unwrap()
        .iter()
        .map(|e| e.conv_id)
        .collect();
    assert_eq!(seen, vec![s1, s2, n1]);
    let p = policy(RoutingPolicy::LeastBusy, 5);
    let r = routing::drain(&db.conn, BID, &online(&["a", "b"]), p, 20).unwrap();
    // Support and the no-department one are served; sales still waits.
    assert_eq!(
        assigned(&r),
        vec![(t1, "b".to_string()), (n1, "b".to_string())]
    );
    assert_eq!(line(&r, Some("sales")), vec![(s1, 1), (s2, 2)]);
    // Nobody of sales online: its visitors are told so, whoever else is online.
    let r = routing::drain(&db.conn, BID, &online(&["b"]), p, 21).unwrap();
    assert!(!r.line(Some("sales")).unwrap().agents_online);
}

#[test]
fn only_members_claim_or_dismiss_a_department_conversation() {
    let db = Mem::new();
    db.agent("a", None);
    db.agent("b", None);
    db.dept("sales", &["a"]);
    let s1 = db.conv_in("v1", Some("sales"), 1);
    let s2 = db.conv_in("v2", Some("sales"), 2);
    let r = routing::claim(&db.conn, BID, s1, "b", "B", 3);
    assert!(
        matches!(r, Err(StoreError::Conflict(m)) if m.contains("department")),
        "{r:?}"
    );
    assert_eq!(db.phase(s1), Phase::Queued);
    let won = routing::claim(&db.conn, BID, s1, "a", "A", 4).unwrap();
    assert_eq!(assigned(&won), vec![(s1, "a".to_string())]);
    assert_eq!(line(&won, Some("sales")), vec![(s2, 1)]);
    let p = policy(RoutingPolicy::LeastBusy, 5);
    let none = online(&[]);
    let r = routing::close(
        &db.conn,
        BID,
        Some(s2),
        Closer::Agent("b", "B"),
        &none,
        p,
        5,
    );
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    let c = routing::close(
        &db.conn,
        BID,
        Some(s2),
        Closer::Agent("a", "A"),
        &none,
        p,
        6,
    );
    // The emptied line is reported, so its agents clear it.
    let c = c.unwrap();
    assert_eq!(c.routed.line(Some("sales")).map(|q| q.len), Some(0));
}

#[test]
fn transfer_to_a_department_goes_to_another_of_its_agents_or_waits() {
    let db = Mem::new();
    for a in ["a", "b", "c"] {
        db.agent(a, Some(1));
    }
    db.dept("sales", &["a"]);
    db.dept("vip", &["a", "b"]);
    let p = policy(RoutingPolicy::LeastBusy, 5);
    let all = online(&["a", "b", "c"]);
    let c1 = db.conv_in("v1", Some("sales"), 1);
    routing::claim(&db.conn, BID, c1, "a", "A", 2).unwrap();
    let me = Sender {
        role: "visitor",
        id: "v1",
        name: "",
    };
    history::append(&db.conn, c1, me, &Body::Text("hi".into()), None, 3).unwrap();
    // Refusals: a department that does not exist, a conversation not yours.
    let r = transfer::to_dept(&db.conn, BID, c1, ("a", "A"), "nope", &all, p, 4);
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let r = transfer::to_dept(&db.conn, BID, c1, ("b", "B"), "vip", &all, p, 4);
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    // a is in vip too, but lets it go: b takes it.
    let t = transfer::to_dept(&db.conn, BID, c1, ("a", "A"), "vip", &all, p, 5).unwrap();
    assert_eq!(assigned(&t.routed), vec![(c1, "b".to_string())]);
    assert_eq!(
        t.event.text.as_deref(),
        Some("A transferred the conversation to VIP")
    );
    let conv = routing::load(&db.conn, c1, false).unwrap().unwrap();
    assert_eq!(conv.dept_id.as_deref(), Some("vip"));
    assert_eq!(conv.queued_at, 1, "its place in line is kept");
    // a takes another visitor and is full; b lets it go: nobody else of vip, it waits.
    let c2 = db.conv_in("v2", Some("sales"), 6);
    routing::claim(&db.conn, BID, c2, "a", "A", 7).unwrap();
    let t = transfer::to_dept(&db.conn, BID, c1, ("b", "B"), "vip", &all, p, 8).unwrap();
    assert!(t.routed.assigned.is_empty(), "{:?}", assigned(&t.routed));
    assert_eq!(db.phase(c1), Phase::Queued);
    assert_eq!(line(&t.routed, Some("vip")), vec![(c1, 1)]);
    // Only that transfer skips b: the next drain may give it back to b.
    let r = routing::drain(&db.conn, BID, &all, p, 9).unwrap();
    assert_eq!(assigned(&r), vec![(c1, "b".to_string())]);
}

#[test]
fn disabled_agents_get_nothing_and_the_business_policy_wins() {
    let db = Mem::new();
    for a in ["a", "b", "c"] {
        db.agent(a, Some(5));
    }
    tenancy::agent_set_disabled(&db.conn, BID, "a", true).unwrap();
    let convs: Vec<i64> = (0..4).map(|i| db.conv(&format!("v{i}"), i)).collect();
    // The config says least-busy; the business says round-robin: b, c, b, c either way
    // here, so give b a head start that only least-busy would respect.
    let old = db.conv("old", -1);
    routing::claim(&db.conn, BID, old, "b", "B", 100).unwrap();
    depts::set_policy(&db.conn, BID, Some(RoutingPolicy::RoundRobin)).unwrap();
    assert_eq!(
        depts::policy(&db.conn, BID).unwrap(),
        Some(RoutingPolicy::RoundRobin)
    );
    let p = policy(RoutingPolicy::LeastBusy, 5);
    let r = routing::drain(&db.conn, BID, &online(&["a", "b", "c"]), p, 200).unwrap();
    let want = [
        (convs[0], "c"),
        (convs[1], "b"),
        (convs[2], "c"),
        (convs[3], "b"),
    ];
    assert_eq!(assigned(&r), want.map(|(c, a)| (c, a.to_string())));
    // Back to the config's policy.
    depts::set_policy(&db.conn, BID, None).unwrap();
    assert_eq!(depts::policy(&db.conn, BID).unwrap(), None);
    // A disabled agent cannot be the target of a transfer either.
    let r = transfer::to_agent(
        &db.conn,
        BID,
        convs[0],
        ("c", "C"),
        "a",
        &online(&["a", "c"]),
        p,
        201,
    );
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
}

#[test]
fn removing_a_department_frees_its_waiting_visitors() {
    let db = Mem::new();
    db.agent("a", None);
    db.dept("sales", &["a"]);
    let s1 = db.conv_in("v1", Some("sales"), 1);
    depts::remove(&db.conn, BID, "sales").unwrap();
    assert!(depts::of_agent(&db.conn, BID, "a").unwrap().is_empty());
    let c = routing::load(&db.conn, s1, false).unwrap().unwrap();
    assert_eq!(c.dept_id, None);
    assert!(matches!(
        depts::remove(&db.conn, BID, "sales"),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn another_business_never_sees_a_department() {
    let db = Mem::new();
    db.agent("a", None);
    db.dept("sales", &["a"]);
    tenancy::agent_add(&db.conn, "other", "z", "Z", "hash", None).unwrap();
    assert!(depts::list(&db.conn, "other").unwrap().is_empty());
    assert!(depts::get(&db.conn, "other", "sales").unwrap().is_none());
    assert!(depts::members(&db.conn, "other", "sales")
        .unwrap()
        .is_empty());
    // Its agent cannot join our department, nor can it remove or rename it.
    let r = depts::set_of_agent(&db.conn, "other", "z", &["sales".to_string()]);
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    assert!(matches!(
        depts::remove(&db.conn, "other", "sales"),
        Err(StoreError::NotFound)
    ));
    depts::upsert(&db.conn, "other", "sales", "Their sales").unwrap();
    assert_eq!(
        depts::get(&db.conn, BID, "sales").unwrap().unwrap().name,
        "SALES"
    );
    // Our agent is not a member of theirs, and their line is theirs.
    assert!(depts::members(&db.conn, "other", "sales")
        .unwrap()
        .is_empty());
    let ours = db.conv_in("v1", Some("sales"), 1);
    let theirs = routing::open(&db.conn, "other", "w", Some("sales"), 2).unwrap();
    let seen = queue::entries(&db.conn, "other", Some("z")).unwrap();
    assert!(seen.is_empty(), "z is in no department of its own");
    let all: Vec<i64> = queue::entries(&db.conn, BID, None)
        .unwrap()
        .iter()
        .map(|e| e.conv_id)
        .collect();
    assert_eq!(all, vec![ours]);
    let p = policy(RoutingPolicy::LeastBusy, 5);
    let r = routing::drain(&db.conn, "other", &online(&["a", "z"]), p, 3).unwrap();
    assert!(
        r.assigned.is_empty(),
        "a is not of that business, z not of that dept"
    );
    assert_eq!(db.phase(theirs), Phase::Queued);
    // Bad names and ids are refused.
    for (id, name) in [
        ("a b", "X"),
        ("ok", ""),
        ("ok", "\u{7}"),
        ("ok", &"n".repeat(41)),
    ] {
        assert!(matches!(
            depts::upsert(&db.conn, BID, id, name),
            Err(StoreError::Invalid(_))
        ));
    }
}
