//! The routing SQL of `routing.rs` against in-memory SQLite databases with the store's own
//! schema: least-busy, round-robin, the per-agent maximum, queue order, the claim race,
//! transfer and close.
//!
//! Each test gets its own database in SQLite's `memdb` VFS. Unlike `:memory:`, a memdb
//! database named with a leading `/` is shared by every connection of the process that opens
//! it, with real locks, so two connections can stand in for two worker processes.

use super::history::{self, Body, Sender};
use super::queue;
use super::routing::{self, Access, Closer, Policy, Routed};
use super::state::{ConvState, Phase};
use super::transfer;
use crate::config::{RoutingPolicy, SyncMode};
use crate::store::db::Db;
use crate::store::{self, tenancy, StoreError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

pub(super) const BID: &str = "shop";

/// The store's schema as SQL, read once from a store opened the normal way (so these tests
/// follow `store::open`'s schema rather than a copy of it).
fn schema() -> &'static [String] {
    static DDL: OnceLock<Vec<String>> = OnceLock::new();
    DDL.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kefu-routing-schema-{}", std::process::id()));
        let conn = store::open(&dir, SyncMode::Normal).unwrap();
        // Tables before their indexes (rowid order is creation order); SQLite's own tables
        // (sqlite_sequence) are made by SQLite itself.
        let ddl = conn
            // FTS5's shadow tables (`msg_fts_data`, ...) are made by its CREATE VIRTUAL TABLE.
            .prepare(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
                 AND NOT (type = 'table' AND name LIKE 'msg_fts_%') ORDER BY rowid",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<store::Result<Vec<String>>>()
            .unwrap();
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
        ddl
    })
}

/// A fresh in-memory database with the schema; `join` opens more connections to it.
pub(super) struct Mem {
    uri: String,
    pub(super) conn: Db,
}

impl Mem {
    pub(super) fn new() -> Mem {
        static N: AtomicUsize = AtomicUsize::new(0);
        let uri = format!(
            "file:/kefu-routing-{}-{}?vfs=memdb",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let conn = Mem::connect(&uri);
        for sql in schema() {
            conn.execute_batch(sql).unwrap();
        }
        Mem { uri, conn }
    }

    fn connect(uri: &str) -> Db {
        let c = rusqlite::Connection::open(uri).unwrap();
        c.execute_batch("PRAGMA foreign_keys=ON").unwrap();
        // Another connection's write transaction makes this one wait, as between workers.
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        Db::sqlite(c)
    }

    /// Another connection to the same database (another worker).
    pub(super) fn join(&self) -> Db {
        Mem::connect(&self.uri)
    }

    /// An agent named by its id in upper case, with an optional own maximum.
    pub(super) fn agent(&self, id: &str, max: Option<i64>) {
        tenancy::agent_add(&self.conn, BID, id, &id.to_uppercase(), "hash", max).unwrap();
    }

    /// A visitor's new queued conversation, entered into the queue at `at`.
    pub(super) fn conv(&self, visitor: &str, at: i64) -> i64 {
        routing::open(&self.conn, BID, visitor, None, at).unwrap()
    }

    pub(super) fn phase(&self, conv: i64) -> Phase {
        routing::brief(&self.conn, conv).unwrap().unwrap().phase
    }

    /// The event messages of a conversation (name, text), oldest first.
    pub(super) fn events(&self, conv: i64) -> Vec<(String, String)> {
        let (m, _) = history::page(&self.conn, conv, None, history::MAX_PAGE).unwrap();
        m.into_iter()
            .filter_map(|m| Some((m.event?, m.text?)))
            .collect()
    }
}

pub(super) fn policy(policy: RoutingPolicy, max_per_agent: i64) -> Policy {
    Policy {
        policy,
        max_per_agent,
    }
}

pub(super) fn online(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// (conversation, agent) of each assignment, in order.
pub(super) fn assigned(r: &Routed) -> Vec<(i64, String)> {
    r.assigned
        .iter()
        .map(|a| (a.conv.conv_id, a.conv.agent_id.clone().unwrap()))
        .collect()
}

/// Agents a, b, c; a already has two conversations it claimed (so it was assigned last, at
/// 11, but is the busiest); then four conversations wait.
fn busy_a(db: &Mem) -> Vec<i64> {
    for id in ["a", "b", "c"] {
        db.agent(id, None);
    }
    for (i, v) in ["old1", "old2"].into_iter().enumerate() {
        let conv = db.conv(v, i as i64 + 1);
        routing::claim(&db.conn, BID, conv, "a", "A", 10 + i as i64).unwrap();
    }
    (0..4).map(|i| db.conv(&format!("v{i}"), 20 + i)).collect()
}

#[test]
fn least_busy_fills_the_idlest_agent_first() {
    let db = Mem::new();
    let q = busy_a(&db);
    let p = policy(RoutingPolicy::LeastBusy, 5);
    let r = routing::drain(&db.conn, BID, &online(&["a", "b", "c"]), p, 100).unwrap();
    // b and c have nothing; ties go to who was assigned longest ago, then by id; a (two
    // conversations) gets none while b and c have one each.
    let want = [(q[0], "b"), (q[1], "c"), (q[2], "b"), (q[3], "c")];
    assert_eq!(assigned(&r), want.map(|(c, a)| (c, a.to_string())));
    assert!(r.queues.iter().all(|q| q.len == 0 && q.agents_online));
    for (conv, agent) in want {
        assert!(db.phase(conv).is_active_with(agent));
        assert_eq!(db.events(conv)[0].0, "assigned");
    }
}

#[test]
fn round_robin_ignores_load() {
    let db = Mem::new();
    let q = busy_a(&db);
    let p = policy(RoutingPolicy::RoundRobin, 5);
    let r = routing::drain(&db.conn, BID, &online(&["a", "b", "c"]), p, 100).unwrap();
    // Whoever was assigned longest ago goes next: b and c (never), a (at 11), then b again,
    // although a is the busiest.
    let want = [(q[0], "b"), (q[1], "c"), (q[2], "a"), (q[3], "b")];
    assert_eq!(assigned(&r), want.map(|(c, a)| (c, a.to_string())));
    // The stamps are distinct even within one millisecond, so the order carries on.
    let q5 = db.conv("v5", 30);
    let r = routing::drain(&db.conn, BID, &online(&["a", "b", "c"]), p, 100).unwrap();
    assert_eq!(assigned(&r), vec![(q5, "c".to_string())]);
}

#[test]
fn max_per_agent_caps_and_the_rest_queues() {
    let db = Mem::new();
    db.agent("a", None); // the default maximum: 2
    db.agent("b", Some(1)); // its own maximum
    db.agent("c", None); // offline
    let q: Vec<i64> = (0..5).map(|i| db.conv(&format!("v{i}"), i)).collect();
    let p = policy(RoutingPolicy::LeastBusy, 2);
    let r = routing::drain(&db.conn, BID, &online(&["a", "b"]), p, 100).unwrap();
    let want = [(q[0], "a"), (q[1], "b"), (q[2], "a")];
    assert_eq!(assigned(&r), want.map(|(c, a)| (c, a.to_string())));
    let line = r.line(None).unwrap();
    let waiting: Vec<(i64, i64)> = line
        .entries
        .iter()
        .map(|e| (e.conv_id, e.position))
        .collect();
    assert_eq!(waiting, vec![(q[3], 1), (q[4], 2)]);
    assert_eq!(line.len, 2);
    assert_eq!(db.phase(q[3]), Phase::Queued);
    // Full agents stay full; nobody online means nothing moves and visitors are told so.
    let r = routing::drain(&db.conn, BID, &online(&["a", "b"]), p, 101).unwrap();
    assert!(r.assigned.is_empty());
    let r = routing::drain(&db.conn, BID, &[], p, 102).unwrap();
    assert!(r.assigned.is_empty() && !r.line(None).unwrap().agents_online);
    assert_eq!(r.line(None).unwrap().len, 2);
}

#[test]
fn queue_is_oldest_first_then_by_id() {
    let db = Mem::new();
    db.agent("a", Some(1));
    let c30 = db.conv("v1", 30);
    let c10 = db.conv("v2", 10);
    let c20 = db.conv("v3", 20);
    let c10b = db.conv("v4", 10); // same time as c10, opened later
    let q = queue::entries(&db.conn, BID, None).unwrap();
    let order: Vec<(i64, i64)> = q.iter().map(|e| (e.conv_id, e.position)).collect();
    assert_eq!(order, vec![(c10, 1), (c10b, 2), (c20, 3), (c30, 4)]);
    assert_eq!(q[0].visitor_id.as_str(), "v2");
    // The oldest goes first; everyone behind moves up.
    let p = policy(RoutingPolicy::LeastBusy, 5);
    let r = routing::drain(&db.conn, BID, &online(&["a"]), p, 100).unwrap();
    assert_eq!(assigned(&r), vec![(c10, "a".to_string())]);
    let line = r.line(None).unwrap();
    let order: Vec<(i64, i64)> = line
        .entries
        .iter()
        .map(|e| (e.conv_id, e.position))
        .collect();
    assert_eq!(order, vec![(c10b, 1), (c20, 2), (c30, 3)]);
    assert_eq!(line.len, 3);
    // Another business's queue is its own.
    assert!(queue::entries(&db.conn, "other", None).unwrap().is_empty());
}

#[test]
fn claim_race_has_exactly_one_winner() {
    let db = Mem::new();
    db.agent("a", None);
    db.agent("b", None);
    let conv = db.conv("v", 1);
    let other_worker = db.join();
    // Both workers show the conversation as waiting; both agents click "claim".
    assert_eq!(
        queue::entries(&db.conn, BID, None).unwrap()[0].conv_id,
        conv
    );
    assert_eq!(
        queue::entries(&other_worker, BID, None).unwrap()[0].conv_id,
        conv
    );
    let won = routing::claim(&db.conn, BID, conv, "a", "A", 5).unwrap();
    let lost = routing::claim(&other_worker, BID, conv, "b", "B", 5);
    assert_eq!(assigned(&won), vec![(conv, "a".to_string())]);
    assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
    assert!(db.phase(conv).is_active_with("a"));
    assert_eq!(db.events(conv).len(), 1, "one assignment, one event");
    // Claims of what is not there, or not this business's, find nothing.
    assert!(matches!(
        routing::claim(&db.conn, BID, conv + 100, "a", "A", 6),
        Err(StoreError::NotFound)
    ));
    let foreign = routing::open(&db.conn, "other", "v", None, 1).unwrap();
    assert!(matches!(
        routing::claim(&db.conn, BID, foreign, "a", "A", 6),
        Err(StoreError::NotFound)
    ));
}

/// The premise of the race below: a second connection cannot start a write transaction
/// while another holds one (it would wait, as a worker does for another's commit).
#[test]
fn memdb_connections_lock_each_other_out() {
    let db = Mem::new();
    let other = db.join();
    other
        .as_sqlite()
        .unwrap()
        .busy_timeout(Duration::ZERO)
        .unwrap();
    db.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert!(other.execute_batch("BEGIN IMMEDIATE").is_err());
    db.conn.execute_batch("COMMIT").unwrap();
    other.execute_batch("BEGIN IMMEDIATE; COMMIT").unwrap();
}

#[test]
fn claim_race_between_threads_has_exactly_one_winner() {
    let db = Mem::new();
    let agents = ["a", "b", "c", "d"];
    for id in agents {
        db.agent(id, None);
    }
    let conv = db.conv("v", 1);
    // Every claimer starts at once, each in its own transaction on its own connection, as
    // the writers of several workers do.
    let start = Arc::new(Barrier::new(agents.len()));
    let claims: Vec<_> = agents
        .map(|id| {
            let (conn, start) = (db.join(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                let r = routing::claim(&conn, BID, conv, id, "X", 5);
                conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })
                    .unwrap();
                r.is_ok()
            })
        })
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(claims.iter().filter(|&&won| won).count(), 1, "{claims:?}");
    let winner = agents[claims.iter().position(|&w| w).unwrap()];
    assert!(db.phase(conv).is_active_with(winner));
    assert_eq!(db.events(conv).len(), 1);
}

#[test]
fn transfer_moves_the_conversation_and_drains_the_freed_slot() {
    let db = Mem::new();
    db.agent("a", Some(1));
    db.agent("b", None);
    let c1 = db.conv("v1", 1);
    routing::claim(&db.conn, BID, c1, "a", "A", 2).unwrap();
    let visitor = Sender {
        role: "visitor",
        id: "v1",
        name: "",
    };
    history::append(&db.conn, c1, visitor, &Body::Text("hi".into()), None, 3).unwrap();
    let b = routing::readable(&db.conn, c1, Access::Agent(BID)).unwrap();
    routing::mark_read(&db.conn, &b, Some("a"), 2).unwrap();
    let c2 = db.conv("v2", 4); // waits: a is full
    let p = policy(RoutingPolicy::LeastBusy, 5);
    let all = online(&["a", "b"]);

    // Refusals first: to yourself, to nobody, someone else's conversation.
    let r = transfer::to_agent(&db.conn, BID, c1, ("a", "A"), "a", &all, p, 5);
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    let r = transfer::to_agent(&db.conn, BID, c1, ("a", "A"), "zed", &all, p, 5);
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let r = transfer::to_agent(&db.conn, BID, c1, ("b", "B"), "a", &all, p, 5);
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert!(db.phase(c1).is_active_with("a"));

    let r = transfer::to_agent(&db.conn, BID, c1, ("a", "A"), "b", &all, p, 6).unwrap();
    // The transfer itself, then the queue drained into the slot it freed.
    assert_eq!(
        assigned(&r),
        vec![(c1, "b".to_string()), (c2, "a".to_string())]
    );
    assert_eq!(r.assigned[0].previous.as_deref(), Some("a"));
    assert_eq!(r.assigned[1].previous, None);
    assert_eq!(
        r.assigned[0].conv.agent_read_seq, 0,
        "b has read nothing yet"
    );
    assert_eq!(r.assigned[0].conv.unread, 1);
    assert_eq!(
        r.assigned[0].event.text.as_deref(),
        Some("A transferred the conversation to B")
    );
    assert!(db.phase(c1).is_active_with("b"));
    // a no longer has it.
    let r = transfer::to_agent(&db.conn, BID, c1, ("a", "A"), "b", &all, p, 7);
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
}

#[test]
fn close_by_either_side() {
    let db = Mem::new();
    db.agent("a", Some(1));
    db.agent("b", None);
    let p = policy(RoutingPolicy::LeastBusy, 5);
    let a_only = online(&["a"]);
    let c1 = db.conv("v1", 1);
    routing::claim(&db.conn, BID, c1, "a", "A", 2).unwrap();
    let c2 = db.conv("v2", 3); // waits: a is full
    let close = |conv, by, now| routing::close(&db.conn, BID, conv, by, &a_only, p, now);

    // Only its agent closes an active conversation.
    let r = close(Some(c1), Closer::Agent("b", "B"), 4);
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    let r = close(None, Closer::Agent("a", "A"), 4);
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    let closed = close(Some(c1), Closer::Agent("a", "A"), 5).unwrap();
    assert_eq!(closed.brief.phase.state(), ConvState::Active, "as it was");
    assert_eq!(
        db.phase(c1),
        Phase::Closed {
            agent_id: Some("a".into())
        }
    );
    assert_eq!(closed.event.event.as_deref(), Some("closed"));
    assert_eq!(
        closed.event.text.as_deref(),
        Some("Conversation closed by A")
    );
    // The freed slot took the waiting conversation.
    assert_eq!(assigned(&closed.routed), vec![(c2, "a".to_string())]);
    let r = close(Some(c1), Closer::Agent("a", "A"), 6);
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");

    // Any agent of the business may dismiss a queued one.
    let c3 = db.conv("v3", 7);
    close(Some(c3), Closer::Agent("b", "B"), 8).unwrap();
    assert_eq!(db.phase(c3), Phase::Closed { agent_id: None });

    // A visitor closes its open conversation without naming it, and only its own.
    let c4 = db.conv("v4", 9);
    let r = close(Some(c4), Closer::Visitor("v1"), 10);
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let closed = close(None, Closer::Visitor("v4"), 10).unwrap();
    assert_eq!(closed.brief.id, c4);
    assert_eq!(
        closed.event.text.as_deref(),
        Some("Conversation closed by the visitor")
    );
    let r = close(None, Closer::Visitor("v4"), 11);
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    // Another business's conversation is not found.
    let foreign = routing::open(&db.conn, "other", "v5", None, 12).unwrap();
    let r = close(Some(foreign), Closer::Agent("a", "A"), 12);
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
}
