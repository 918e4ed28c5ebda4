//! Webhook endpoints of a business and the durable queue of events to deliver to them.
//!
//! Events are queued by triggers (`triggers.rs`: SQLite since schema version 7, PostgreSQL
//! since 8) inside the transaction of the change they report, one row per endpoint. Delivery threads (one per worker, see
//! `app/kefu/webhook/`) take the oldest pending row of each endpoint with a lease, so each
//! endpoint receives its events in order, one at a time, and two workers never send the same
//! row at once; a row leaves the queue when the endpoint answers 2xx, and after
//! [`MAX_ATTEMPTS`] failures it is kept as `dead` (shown in the list) and the next one goes.
//! Row ids follow commit order because the changes that queue events are made by the writers,
//! one transaction at a time (SQLite's write lock, PostgreSQL's advisory lock, `db.rs`): a
//! row with a smaller id is never committed after a larger one a sender already took.

use super::db::{params, Db};
use super::{Result, StoreError};
use serde::Serialize;

/// Endpoints one business may register.
pub(crate) const MAX_PER_BUSINESS: i64 = 10;
/// Longest endpoint URL.
pub(crate) const MAX_URL: usize = 512;
/// Tries before an event is given up (back-off doubles from 1 s: about 4 minutes in all).
pub(crate) const MAX_ATTEMPTS: i64 = 8;
/// Longest single back-off.
const MAX_BACKOFF_MS: i64 = 5 * 60_000;
/// How long a taken row is reserved for its sender (longer than any delivery's timeouts).
pub(crate) const LEASE_MS: i64 = 60_000;
/// Dead rows kept per endpoint (the oldest go first).
const DEAD_KEPT: i64 = 100;

/// A registered endpoint as the list shows it (never its secret).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Hook {
    /// Id.
    pub id: i64,
    /// URL.
    pub url: String,
    /// Registered, ms.
    pub created_at: i64,
    /// Events waiting.
    pub pending: i64,
    /// Events given up.
    pub dead: i64,
    /// The last failure's reason ('' if none).
    pub last_error: String,
}

/// Register `url` for `bid` with `secret`; returns its id.
pub(crate) fn add(conn: &Db, bid: &str, url: &str, secret: &str, now: i64) -> Result<i64> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM webhooks WHERE bid = ?1")?
        .query_row([bid], |r| r.get(0))?;
    if n >= MAX_PER_BUSINESS {
        return Err(StoreError::Conflict("at most 10 webhooks per business"));
    }
    let id = conn
        .prepare_cached(
            "INSERT INTO webhooks (bid, url, secret, created_at) VALUES (?1, ?2, ?3, ?4) \
             RETURNING id",
        )?
        .query_row(params![bid, url, secret, now], |r| r.get(0))?;
    Ok(id)
}

/// The endpoints of `bid`.
pub(crate) fn list(conn: &Db, bid: &str) -> Result<Vec<Hook>> {
    let rows = conn
        .prepare_cached(
            "SELECT w.id, w.url, w.created_at,
                (SELECT COUNT(*) FROM webhook_queue q WHERE q.hook_id = w.id AND q.state = 'pending'),
                (SELECT COUNT(*) FROM webhook_queue q WHERE q.hook_id = w.id AND q.state = 'dead'),
                COALESCE((SELECT q.last_error FROM webhook_queue q WHERE q.hook_id = w.id
                          AND q.last_error != '' ORDER BY q.id DESC LIMIT 1), '')
             FROM webhooks w WHERE w.bid = ?1 ORDER BY w.id",
        )?
        .query_map([bid], |r| {
            Ok(Hook {
                id: r.get(0)?,
                url: r.get(1)?,
                created_at: r.get(2)?,
                pending: r.get(3)?,
                dead: r.get(4)?,
                last_error: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>>>()?;
    Ok(rows)
}

/// Remove endpoint `id` of `bid` and its queue (NotFound if it is not theirs).
pub(crate) fn remove(conn: &Db, bid: &str, id: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM webhook_queue WHERE hook_id = (SELECT id FROM webhooks WHERE id = ?1 AND bid = ?2)")?
        .execute(params![id, bid])?;
    let n = conn
        .prepare_cached("DELETE FROM webhooks WHERE id = ?1 AND bid = ?2")?
        .execute(params![id, bid])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// An event taken for delivery.
#[derive(Debug, Clone)]
pub(crate) struct Due {
    /// Queue row.
    pub id: i64,
    /// Endpoint.
    pub hook_id: i64,
    /// Its URL.
    pub url: String,
    /// Its signing secret.
    pub secret: String,
    /// Event name.
    pub event: String,
    /// JSON body.
    pub body: String,
    /// This try's number (1 for the first).
    pub attempt: i64,
}

/// Take up to `max` due events, the oldest pending one of each endpoint whose earlier
/// events are done, each leased for [`LEASE_MS`]. One index probe per endpoint (the
/// `webhook_due` index), however long a failing endpoint's backlog has grown. The lease is
/// checked again on the row being updated: on PostgreSQL two nodes' delivery threads may
/// pick the same row from their snapshots, and the second, re-reading the row once the
/// first committed, then finds it leased and leaves it.
pub(crate) fn take_due(conn: &Db, now: i64, max: i64) -> Result<Vec<Due>> {
    let rows = conn
        .prepare_cached(
            "UPDATE webhook_queue SET lease_until = ?2, attempts = attempts + 1
             WHERE lease_until <= ?1 AND id IN (
                SELECT q.id FROM webhooks w JOIN webhook_queue q ON q.id =
                    (SELECT MIN(p.id) FROM webhook_queue p
                     WHERE p.hook_id = w.id AND p.state = 'pending')
                WHERE q.next_at <= ?1 AND q.lease_until <= ?1
                LIMIT ?3)
             RETURNING id, hook_id, event, body, attempts",
        )?
        .query_map(params![now, now + LEASE_MS, max], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    let mut hook = conn.prepare_cached("SELECT url, secret FROM webhooks WHERE id = ?1")?;
    for (id, hook_id, event, body, attempt) in rows {
        let (url, secret) = hook.query_row([hook_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        out.push(Due {
            id,
            hook_id,
            url,
            secret,
            event,
            body,
            attempt,
        });
    }
    Ok(out)
}

/// The endpoint took event `id`: it leaves the queue.
pub(crate) fn delivered(conn: &Db, id: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM webhook_queue WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Back-off before try `attempt + 1`: 1 s, 2 s, 4 s ... at most 5 minutes.
pub(crate) fn backoff_ms(attempt: i64) -> i64 {
    (1000i64 << (attempt - 1).clamp(0, 20)).min(MAX_BACKOFF_MS)
}

/// Event `d` failed with `why`: retry later, or give it up after [`MAX_ATTEMPTS`].
pub(crate) fn failed(conn: &Db, d: &Due, why: &str, now: i64) -> Result<()> {
    let why: String = why.chars().take(200).collect();
    if d.attempt >= MAX_ATTEMPTS {
        conn.prepare_cached(
            "UPDATE webhook_queue SET state = 'dead', lease_until = 0, last_error = ?2 WHERE id = ?1",
        )?
        .execute(params![d.id, why])?;
        conn.prepare_cached(
            "DELETE FROM webhook_queue WHERE hook_id = ?1 AND state = 'dead' AND id <=
                (SELECT id FROM webhook_queue WHERE hook_id = ?1 AND state = 'dead'
                 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )?
        .execute(params![d.hook_id, DEAD_KEPT])?;
    } else {
        conn.prepare_cached(
            "UPDATE webhook_queue SET next_at = ?2, lease_until = 0, last_error = ?3 WHERE id = ?1",
        )?
        .execute(params![d.id, now + backoff_ms(d.attempt), why])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(1), 1000);
        assert_eq!(backoff_ms(2), 2000);
        assert_eq!(backoff_ms(4), 8000);
        assert_eq!(backoff_ms(30), MAX_BACKOFF_MS);
    }

    /// Triggers queue events per endpoint of the right business only, in order, and a
    /// failing event holds back the later ones of its endpoint.
    #[test]
    fn triggers_queue_in_order_per_business() {
        let dir = std::env::temp_dir().join(format!("kefu-hooks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = super::super::open(&dir, crate::config::SyncMode::Normal).unwrap();
        let h = add(&c, "a", "http://x/", "s", 1).unwrap();
        add(&c, "b", "http://y/", "t", 1).unwrap();
        c.execute_batch(
            "INSERT INTO conversations (bid, visitor_id, state, created_at, queued_at)
             VALUES ('a', 'v', 'queued', 10, 10);
             INSERT INTO messages (conv_id, seq, sender_role, sender_id, sender_name, kind, text, ts)
             VALUES (1, 1, 'visitor', 'v', '', 'text', 'hello', 11);
             UPDATE conversations SET state = 'closed', closed_at = 12 WHERE id = 1;",
        )
        .unwrap();
        let d = take_due(&c, 100, 10).unwrap();
        assert_eq!(d.len(), 1, "only the oldest of the one endpoint of 'a'");
        assert_eq!(
            (d[0].hook_id, d[0].event.as_str()),
            (h, "conversation.created")
        );
        assert!(take_due(&c, 100, 10).unwrap().is_empty(), "leased");
        failed(&c, &d[0], "HTTP 500", 100).unwrap();
        assert!(take_due(&c, 100, 10).unwrap().is_empty(), "backing off");
        let d = take_due(&c, 1100, 10).unwrap();
        assert_eq!(
            (d[0].event.as_str(), d[0].attempt),
            ("conversation.created", 2)
        );
        delivered(&c, d[0].id).unwrap();
        let d = take_due(&c, 1100, 10).unwrap();
        let body: serde_json::Value = serde_json::from_str(&d[0].body).unwrap();
        assert_eq!(
            (body["event"].as_str(), body["text"].as_str()),
            (Some("message.created"), Some("hello"))
        );
        assert_eq!(list(&c, "b").unwrap()[0].pending, 0);
        assert_eq!(list(&c, "a").unwrap()[0].pending, 2);
        assert!(matches!(remove(&c, "b", h), Err(StoreError::NotFound)));
        remove(&c, "a", h).unwrap();
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
