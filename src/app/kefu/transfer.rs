//! Transfers: an agent hands its active conversation to a colleague, or to a department
//! (where it waits for, or goes at once to, a free agent of that department other than the
//! one who let it go). SQL run on a store thread.

use super::history::{self, Body, SYSTEM};
use super::routing::{self, drain, drain_but, load, Assignment, Policy, Routed};
use super::wire::{Event, MessageOut};
use crate::store::db::{params, Db, OptionalExtension};
use crate::store::{depts, Result, StoreError};

/// Hand an active conversation from `from` to `to` (who must exist in the business and be
/// enabled; the loop checked presence). Then drain the queue into the freed slot.
#[allow(clippy::too_many_arguments)]
pub(crate) fn to_agent(
    conn: &Db,
    bid: &str,
    conv_id: i64,
    from: (&str, &str),
    to: &str,
    online: &[String],
    p: Policy,
    now: i64,
) -> Result<Routed> {
    let (to_name, disabled): (String, bool) = conn
        .prepare_cached("SELECT name, disabled FROM agents WHERE bid = ?1 AND agent_id = ?2")?
        .query_row([bid, to], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    if to == from.0 {
        return Err(StoreError::Invalid("cannot transfer to yourself"));
    }
    if disabled {
        return Err(StoreError::Conflict("that agent is disabled"));
    }
    let n = conn
        .prepare_cached(
            "UPDATE conversations SET agent_id = ?4, assigned_at = ?5, agent_read_seq = 0
             WHERE id = ?1 AND bid = ?2 AND agent_id = ?3 AND state = 'active'",
        )?
        .execute(params![conv_id, bid, from.0, to, now])?;
    let event = Event::Transferred {
        from_id: from.0.to_string(),
        from_name: from.1.to_string(),
        to_id: to.to_string(),
        to_name,
    };
    let event = let_go(conn, n, conv_id, event, now)?;
    let conv = load(conn, conv_id, true)?.ok_or(StoreError::NotFound)?;
    let mut routed = drain(conn, bid, online, p, now)?;
    routed.assigned.insert(
        0,
        Assignment {
            conv,
            event,
            previous: Some(from.0.to_string()),
        },
    );
    Ok(routed)
}

/// What a transfer to a department did: the event line (to the visitor and the agent who
/// let it go), and the routing that followed (the conversation is assigned in it if a free
/// agent of the department took it, else it waits in that department's line).
#[derive(Debug, Clone)]
pub(crate) struct ToDept {
    /// The conversation.
    pub conv_id: i64,
    /// Its visitor.
    pub visitor_id: String,
    /// The agent who let it go.
    pub from: String,
    /// The `transferred` event.
    pub event: MessageOut,
    /// Routing afterwards.
    pub routed: Routed,
}

/// Put `from`'s active conversation into department `dept`'s line, then route.
#[allow(clippy::too_many_arguments)]
pub(crate) fn to_dept(
    conn: &Db,
    bid: &str,
    conv_id: i64,
    from: (&str, &str),
    dept: &str,
    online: &[String],
    p: Policy,
    now: i64,
) -> Result<ToDept> {
    let d = depts::get(conn, bid, dept)?.ok_or(StoreError::NotFound)?;
    let b = routing::brief(conn, conv_id)?
        .filter(|b| b.bid == bid)
        .ok_or(StoreError::NotFound)?;
    // Back in the line with its first place kept (queued_at), so the visitor does not start
    // waiting over.
    let n = conn
        .prepare_cached(
            "UPDATE conversations SET state = 'queued', agent_id = NULL, assigned_at = NULL,
                    agent_read_seq = 0, dept_id = ?4
             WHERE id = ?1 AND bid = ?2 AND agent_id = ?3 AND state = 'active'",
        )?
        .execute(params![conv_id, bid, from.0, d.dept_id])?;
    let event = Event::TransferredDept {
        from_id: from.0.to_string(),
        from_name: from.1.to_string(),
        dept_id: d.dept_id.clone(),
        dept_name: d.name,
    };
    let event = let_go(conn, n, conv_id, event, now)?;
    let routed = drain_but(
        conn,
        bid,
        online,
        p,
        now,
        Some((conv_id, from.0)),
        [Some(d.dept_id), b.dept_id],
    )?;
    Ok(ToDept {
        conv_id,
        visitor_id: b.visitor_id,
        from: from.0.to_string(),
        event,
        routed,
    })
}

/// After the row change of a transfer (`changed` rows): none means the conversation was not
/// the agent's active one (closed, taken or transferred meanwhile); else its event line.
fn let_go(conn: &Db, changed: usize, conv_id: i64, event: Event, now: i64) -> Result<MessageOut> {
    if changed == 0 {
        return Err(StoreError::Conflict("not your active conversation"));
    }
    history::append(conn, conv_id, SYSTEM, &Body::Event(event), None, now)
}
