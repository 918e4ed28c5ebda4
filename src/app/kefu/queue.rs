//! The waiting line, per department: conversations queue in their department (or in the
//! business's line for conversations without one), oldest first, and a visitor's position
//! counts only the conversations ahead of it in the same line. SQL run on a store thread.

use super::history;
use super::wire::QueueEntry;
use crate::store::db::{params, Db};
use crate::store::{convo, Result};
use std::collections::BTreeMap;

/// Most queue entries loaded (positions are pushed to this many waiting visitors).
pub(crate) const QUEUE_LOAD: i64 = 1000;
/// Queue entries of one line given to agents (with their last message).
pub(crate) const QUEUE_SHOWN: usize = 100;

/// One department's waiting line (`dept_id` None: the conversations without one).
#[derive(Debug, Clone, Default)]
pub(crate) struct DeptQueue {
    /// The department.
    pub dept_id: Option<String>,
    /// Its waiting conversations, oldest first (at most [`QUEUE_LOAD`] of the business).
    pub entries: Vec<QueueEntry>,
    /// How many wait in it.
    pub len: i64,
    /// Whether an agent who may take them is online.
    pub agents_online: bool,
}

/// Queued conversations of a business, oldest first, positions counted per line; with
/// `agent`, only those it may take (its departments' and those without one).
pub(crate) fn entries(conn: &Db, bid: &str, agent: Option<&str>) -> Result<Vec<QueueEntry>> {
    let mut st = conn.prepare_cached(
        "SELECT c.id, c.visitor_id, COALESCE(v.name, ''), c.queued_at, c.dept_id
         FROM conversations c LEFT JOIN visitors v ON v.bid = c.bid AND v.visitor_id = c.visitor_id
         WHERE c.bid = ?1 AND c.state = 'queued'
           AND (CAST(?2 AS TEXT) IS NULL OR c.dept_id IS NULL OR c.dept_id IN
                (SELECT dept_id FROM agent_departments WHERE bid = ?1 AND agent_id = ?2))
         ORDER BY c.queued_at, c.id LIMIT ?3",
    )?;
    let mut v: Vec<QueueEntry> = st
        .query_map(params![bid, agent, QUEUE_LOAD], |r| {
            Ok(QueueEntry {
                conv_id: r.get(0)?,
                position: 0,
                visitor_id: r.get(1)?,
                visitor_name: r.get(2)?,
                queued_at: r.get(3)?,
                dept_id: r.get(4)?,
                last_message: None,
                contact: None,
            })
        })?
        .collect::<Result<_>>()?;
    let mut ahead: BTreeMap<Option<String>, i64> = BTreeMap::new();
    for e in &mut v {
        let n = ahead.entry(e.dept_id.clone()).or_insert(0);
        *n += 1;
        e.position = *n;
        if e.position as usize <= QUEUE_SHOWN {
            e.last_message = history::last_message(conn, e.conv_id)?;
            e.contact = convo::contact_of(conn, bid, &e.visitor_id)?;
        }
    }
    Ok(v)
}

/// The lines of `depts` (None: the line without a department), each with its length and
/// whether one of `online` may take its conversations.
pub(crate) fn lines(
    conn: &Db,
    bid: &str,
    depts: impl IntoIterator<Item = Option<String>>,
    online: &[String],
) -> Result<Vec<DeptQueue>> {
    let mut want: BTreeMap<Option<String>, DeptQueue> = depts
        .into_iter()
        .map(|d| {
            (
                d.clone(),
                DeptQueue {
                    dept_id: d,
                    ..DeptQueue::default()
                },
            )
        })
        .collect();
    if want.is_empty() {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare_cached(
        "SELECT dept_id, COUNT(*) FROM conversations WHERE bid = ?1 AND state = 'queued'
         GROUP BY dept_id",
    )?;
    let counts = st.query_map([bid], |r| Ok((r.get::<_, Option<String>>(0)?, r.get(1)?)))?;
    for c in counts {
        let (d, n) = c?;
        if let Some(q) = want.get_mut(&d) {
            q.len = n;
        }
    }
    for e in entries(conn, bid, None)? {
        if let Some(q) = want.get_mut(&e.dept_id) {
            q.entries.push(e);
        }
    }
    for q in want.values_mut() {
        q.agents_online = match &q.dept_id {
            None => !online.is_empty(),
            Some(d) => {
                let m = crate::store::depts::members(conn, bid, d)?;
                m.iter().any(|a| online.contains(a))
            }
        };
    }
    Ok(want.into_values().collect())
}

/// The lines with anyone waiting, plus `also` (lines a change emptied).
pub(crate) fn busy_lines(
    conn: &Db,
    bid: &str,
    also: impl IntoIterator<Item = Option<String>>,
    online: &[String],
) -> Result<Vec<DeptQueue>> {
    let mut st = conn.prepare_cached(
        "SELECT DISTINCT dept_id FROM conversations WHERE bid = ?1 AND state = 'queued'",
    )?;
    let mut depts: Vec<Option<String>> =
        st.query_map([bid], |r| r.get(0))?.collect::<Result<_>>()?;
    depts.extend(also);
    lines(conn, bid, depts, online)
}

/// A queued conversation's place in its line (1 = next).
pub(crate) fn position(
    conn: &Db,
    bid: &str,
    dept_id: Option<&str>,
    queued_at: i64,
    conv_id: i64,
) -> Result<i64> {
    conn.prepare_cached(
        "SELECT COUNT(*) + 1 FROM conversations WHERE bid = ?1 AND state = 'queued'
             AND ((CAST(?2 AS TEXT) IS NULL AND dept_id IS NULL) OR dept_id = ?2)
             AND (queued_at, id) < (?3, ?4)",
    )?
    .query_row(params![bid, dept_id, queued_at, conv_id], |r| r.get(0))
}
