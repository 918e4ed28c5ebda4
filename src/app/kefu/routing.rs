//! Conversations and routing, as SQL run on a store thread inside the writer's transaction.
//!
//! The database is the shared truth across worker processes: every decision (which agent
//! gets a conversation, who wins a claim) is a read-then-conditional-write inside one
//! `BEGIN IMMEDIATE` transaction, which SQLite serializes across processes. Presence (which
//! agents are online) comes from the gateway and is passed in by the loop.

use super::history::{self, Body, Sender, SYSTEM};
use super::state::Phase;
use super::wire::{ClosedBy, ConvOut, Event, MessageOut, QueueEntry, VisitorOut};
use crate::config::RoutingPolicy;
use crate::store::db::{params, Db, OptionalExtension};
use crate::store::{convo, Result, StoreError};

/// Most queue entries loaded (positions are pushed to this many waiting visitors).
pub(crate) const QUEUE_LOAD: i64 = 1000;
/// Queue entries given to agents (with their last message).
pub(crate) const QUEUE_SHOWN: usize = 100;

/// The routing settings a job needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// least-busy or round-robin.
    pub policy: RoutingPolicy,
    /// Default per-agent cap.
    pub max_per_agent: i64,
}

/// The essentials of a conversation (authorization and fan-out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Brief {
    /// Id.
    pub id: i64,
    /// Business.
    pub bid: String,
    /// Visitor.
    pub visitor_id: String,
    /// State and agent.
    pub phase: Phase,
    /// Last seq.
    pub last_seq: i64,
}

/// The conversation's essentials.
pub(crate) fn brief(conn: &Db, id: i64) -> Result<Option<Brief>> {
    conn.prepare_cached(
        "SELECT id, bid, visitor_id, state, agent_id, last_seq FROM conversations WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(Brief {
            id: r.get(0)?,
            bid: r.get(1)?,
            visitor_id: r.get(2)?,
            phase: Phase::from_row(r, 3, 4)?,
            last_seq: r.get(5)?,
        })
    })
    .optional()
}

/// After a conversation went to an agent: stamp the agent's last assignment (round-robin
/// order), append the "joined" event, and load the conversation as agents see it.
fn stamp_and_announce(
    conn: &Db,
    bid: &str,
    agent_id: &str,
    agent_name: &str,
    conv_id: i64,
    stamp: i64,
    now: i64,
) -> Result<(MessageOut, ConvOut)> {
    conn.prepare_cached(
        "UPDATE agents SET last_assigned_at = ?3 WHERE bid = ?1 AND agent_id = ?2",
    )?
    .execute(params![bid, agent_id, stamp])?;
    let event = history::append(
        conn,
        conv_id,
        SYSTEM,
        &Body::Event(Event::Assigned {
            agent_id: agent_id.to_string(),
            agent_name: agent_name.to_string(),
        }),
        None,
        now,
    )?;
    let conv = load(conn, conv_id, true)?.ok_or(StoreError::NotFound)?;
    Ok((event, conv))
}

/// A conversation in full (visitor details only if `with_visitor`).
pub(crate) fn load(conn: &Db, id: i64, with_visitor: bool) -> Result<Option<ConvOut>> {
    let c = conn
        .prepare_cached(
            "SELECT c.id, c.bid, c.state, c.agent_id, a.name, c.created_at, c.queued_at,
                    c.assigned_at, c.closed_at, c.last_seq, c.agent_read_seq, c.visitor_read_seq,
                    c.visitor_id
             FROM conversations c LEFT JOIN agents a ON a.bid = c.bid AND a.agent_id = c.agent_id
             WHERE c.id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                ConvOut {
                    conv_id: r.get(0)?,
                    bid: r.get(1)?,
                    state: r.get(2)?,
                    agent_id: r.get(3)?,
                    agent_name: r.get(4)?,
                    visitor: None,
                    created_at: r.get(5)?,
                    queued_at: r.get(6)?,
                    assigned_at: r.get(7)?,
                    closed_at: r.get(8)?,
                    last_seq: r.get(9)?,
                    agent_read_seq: r.get(10)?,
                    visitor_read_seq: r.get(11)?,
                    unread: 0,
                    last_message: None,
                    rating: None,
                },
                r.get::<_, String>(12)?,
            ))
        })
        .optional()?;
    let Some((mut c, vid)) = c else {
        return Ok(None);
    };
    c.unread = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM messages WHERE conv_id = ?1 AND seq > ?2 AND sender_role = 'visitor'",
        )?
        .query_row(params![id, c.agent_read_seq], |r| r.get(0))?;
    c.last_message = history::last_message(conn, id)?;
    c.rating = convo::rating_of(conn, id)?;
    if with_visitor {
        c.visitor = visitor(conn, &c.bid, &vid)?;
    }
    Ok(Some(c))
}

/// A visitor's details.
pub(crate) fn visitor(conn: &Db, bid: &str, vid: &str) -> Result<Option<VisitorOut>> {
    let mut v = conn
        .prepare_cached(
            "SELECT visitor_id, name, verified, ip, page_url, referrer, user_agent, first_seen, last_seen
             FROM visitors WHERE bid = ?1 AND visitor_id = ?2",
        )?
        .query_row([bid, vid], |r| {
            Ok(VisitorOut {
                visitor_id: r.get(0)?,
                name: r.get(1)?,
                verified: r.get(2)?,
                online: false,
                ip: r.get(3)?,
                page_url: r.get(4)?,
                referrer: r.get(5)?,
                user_agent: r.get(6)?,
                first_seen: r.get(7)?,
                last_seen: r.get(8)?,
                contact: None,
            })
        })
        .optional()?;
    if let Some(v) = &mut v {
        v.contact = convo::contact_of(conn, bid, vid)?;
    }
    Ok(v)
}

/// The waiting conversations of a business, oldest first, and how many there are.
pub(crate) fn queue(conn: &Db, bid: &str) -> Result<(Vec<QueueEntry>, i64)> {
    let total: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM conversations WHERE bid = ?1 AND state = 'queued'")?
        .query_row([bid], |r| r.get(0))?;
    let mut st = conn.prepare_cached(
        "SELECT c.id, c.visitor_id, COALESCE(v.name, ''), c.queued_at
         FROM conversations c LEFT JOIN visitors v ON v.bid = c.bid AND v.visitor_id = c.visitor_id
         WHERE c.bid = ?1 AND c.state = 'queued' ORDER BY c.queued_at, c.id LIMIT ?2",
    )?;
    let mut v: Vec<QueueEntry> = st
        .query_map(params![bid, QUEUE_LOAD], |r| {
            Ok(QueueEntry {
                conv_id: r.get(0)?,
                position: 0,
                visitor_id: r.get(1)?,
                visitor_name: r.get(2)?,
                queued_at: r.get(3)?,
                last_message: None,
                contact: None,
            })
        })?
        .collect::<Result<_>>()?;
    for (i, e) in v.iter_mut().enumerate() {
        e.position = i as i64 + 1;
        if i < QUEUE_SHOWN {
            e.last_message = history::last_message(conn, e.conv_id)?;
            e.contact = convo::contact_of(conn, bid, &e.visitor_id)?;
        }
    }
    Ok((v, total))
}

/// An agent's active conversations.
pub(crate) fn agent_conversations(conn: &Db, bid: &str, agent_id: &str) -> Result<Vec<ConvOut>> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM conversations WHERE bid = ?1 AND agent_id = ?2 AND state = 'active' ORDER BY id",
        )?
        .query_map([bid, agent_id], |r| r.get(0))?
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(c) = load(conn, id, true)? {
            out.push(c);
        }
    }
    Ok(out)
}

/// A conversation just given to an agent.
#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    /// The conversation after the change (with visitor details).
    pub conv: ConvOut,
    /// The event message written for it.
    pub event: MessageOut,
    /// Agent who had it before (transfer).
    pub previous: Option<String>,
}

/// The outcome of routing in a business.
#[derive(Debug, Clone, Default)]
pub(crate) struct Routed {
    /// Business.
    pub bid: String,
    /// Conversations assigned, in queue order.
    pub assigned: Vec<Assignment>,
    /// The queue afterwards.
    pub queue: Vec<QueueEntry>,
    /// Its full length.
    pub queue_len: i64,
    /// Whether any agent of the business is online.
    pub agents_online: bool,
}

struct Cand {
    id: String,
    name: String,
    max: i64,
    last: i64,
    active: i64,
}

/// Assign queued conversations (oldest first) to online agents with free slots, by policy,
/// until the queue or the capacity is exhausted.
pub(crate) fn drain(
    conn: &Db,
    bid: &str,
    online: &[String],
    p: Policy,
    now: i64,
) -> Result<Routed> {
    let mut cands: Vec<Cand> = conn
        .prepare_cached(
            "SELECT a.agent_id, a.name, a.max_concurrent, a.last_assigned_at,
                    (SELECT COUNT(*) FROM conversations c
                     WHERE c.bid = a.bid AND c.agent_id = a.agent_id AND c.state = 'active')
             FROM agents a WHERE a.bid = ?1",
        )?
        .query_map([bid], |r| {
            Ok(Cand {
                id: r.get(0)?,
                name: r.get(1)?,
                max: r.get::<_, Option<i64>>(2)?.unwrap_or(p.max_per_agent),
                last: r.get(3)?,
                active: r.get(4)?,
            })
        })?
        .filter(|c| c.as_ref().map_or(true, |c| online.contains(&c.id)))
        .collect::<Result<_>>()?;
    let mut routed = Routed {
        bid: bid.to_string(),
        agents_online: !cands.is_empty(),
        ..Default::default()
    };
    // Strictly increasing stamps so round-robin never ties within one millisecond.
    let mut stamp = cands.iter().map(|c| c.last + 1).max().unwrap_or(0).max(now);
    loop {
        let next: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM conversations WHERE bid = ?1 AND state = 'queued'
                 ORDER BY queued_at, id LIMIT 1",
            )?
            .query_row([bid], |r| r.get(0))
            .optional()?;
        let Some(conv_id) = next else { break };
        let free = cands.iter_mut().filter(|c| c.active < c.max);
        let pick = match p.policy {
            RoutingPolicy::LeastBusy => {
                free.min_by(|a, b| (a.active, a.last, &a.id).cmp(&(b.active, b.last, &b.id)))
            }
            RoutingPolicy::RoundRobin => free.min_by(|a, b| (a.last, &a.id).cmp(&(b.last, &b.id))),
        };
        let Some(agent) = pick else { break };
        agent.active += 1;
        agent.last = stamp;
        let (id, name) = (agent.id.clone(), agent.name.clone());
        routed
            .assigned
            .push(assign(conn, bid, conv_id, &id, &name, stamp, now)?);
        stamp += 1;
    }
    let (q, n) = queue(conn, bid)?;
    routed.queue = q;
    routed.queue_len = n;
    Ok(routed)
}

fn assign(
    conn: &Db,
    bid: &str,
    conv_id: i64,
    agent_id: &str,
    agent_name: &str,
    stamp: i64,
    now: i64,
) -> Result<Assignment> {
    conn.prepare_cached(
        "UPDATE conversations SET state = 'active', agent_id = ?2, assigned_at = ?3
         WHERE id = ?1 AND state = 'queued'",
    )?
    .execute(params![conv_id, agent_id, now])?;
    let (event, conv) = stamp_and_announce(conn, bid, agent_id, agent_name, conv_id, stamp, now)?;
    Ok(Assignment {
        conv,
        event,
        previous: None,
    })
}

/// The open (queued or active) conversation of a visitor.
pub(crate) fn open_of_visitor(conn: &Db, bid: &str, vid: &str) -> Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT id FROM conversations WHERE bid = ?1 AND visitor_id = ?2 AND state != 'closed'",
    )?
    .query_row([bid, vid], |r| r.get(0))
    .optional()
}

/// Open a queued conversation for a visitor.
pub(crate) fn open(conn: &Db, bid: &str, vid: &str, now: i64) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO conversations (bid, visitor_id, state, created_at, queued_at)
             VALUES (?1, ?2, 'queued', ?3, ?3) RETURNING id",
    )?
    .query_row(params![bid, vid, now], |r| r.get(0))
}

/// Take a queued conversation: exactly one concurrent claimer wins (conditional UPDATE).
pub(crate) fn claim(
    conn: &Db,
    bid: &str,
    conv_id: i64,
    agent_id: &str,
    agent_name: &str,
    now: i64,
) -> Result<Routed> {
    let n = conn
        .prepare_cached(
            "UPDATE conversations SET state = 'active', agent_id = ?3, assigned_at = ?4
             WHERE id = ?1 AND bid = ?2 AND state = 'queued'",
        )?
        .execute(params![conv_id, bid, agent_id, now])?;
    if n == 0 {
        return Err(match brief(conn, conv_id)? {
            Some(b) if b.bid == bid => StoreError::Conflict("conversation is not in the queue"),
            _ => StoreError::NotFound,
        });
    }
    let (event, conv) = stamp_and_announce(conn, bid, agent_id, agent_name, conv_id, now, now)?;
    let (queue, queue_len) = queue(conn, bid)?;
    Ok(Routed {
        bid: bid.to_string(),
        assigned: vec![Assignment {
            conv,
            event,
            previous: None,
        }],
        queue,
        queue_len,
        agents_online: true,
    })
}

/// Hand an active conversation from `from` to `to` (who must exist in the business; the loop
/// checked presence). Then drain the queue into the freed slot.
#[allow(clippy::too_many_arguments)]
pub(crate) fn transfer(
    conn: &Db,
    bid: &str,
    conv_id: i64,
    from: (&str, &str),
    to: &str,
    online: &[String],
    p: Policy,
    now: i64,
) -> Result<Routed> {
    let to_name: String = conn
        .prepare_cached("SELECT name FROM agents WHERE bid = ?1 AND agent_id = ?2")?
        .query_row([bid, to], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    if to == from.0 {
        return Err(StoreError::Invalid("cannot transfer to yourself"));
    }
    let n = conn
        .prepare_cached(
            "UPDATE conversations SET agent_id = ?4, assigned_at = ?5, agent_read_seq = 0
             WHERE id = ?1 AND bid = ?2 AND agent_id = ?3 AND state = 'active'",
        )?
        .execute(params![conv_id, bid, from.0, to, now])?;
    if n == 0 {
        return Err(StoreError::Conflict("not your active conversation"));
    }
    let event = history::append(
        conn,
        conv_id,
        SYSTEM,
        &Body::Event(Event::Transferred {
            from_id: from.0.to_string(),
            from_name: from.1.to_string(),
            to_id: to.to_string(),
            to_name,
        }),
        None,
        now,
    )?;
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

/// Who closes a conversation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Closer<'a> {
    /// An agent (its own active conversation, or any queued one of its business).
    Agent(&'a str, &'a str),
    /// The visitor (its open conversation).
    Visitor(&'a str),
}

/// A closed conversation.
#[derive(Debug, Clone)]
pub(crate) struct Closed {
    /// The conversation before closing.
    pub brief: Brief,
    /// The `closed` event message.
    pub event: MessageOut,
    /// Routing into the freed slot.
    pub routed: Routed,
}

/// Close a conversation, then drain the queue.
pub(crate) fn close(
    conn: &Db,
    bid: &str,
    conv_id: Option<i64>,
    by: Closer<'_>,
    online: &[String],
    p: Policy,
    now: i64,
) -> Result<Closed> {
    let id = match (conv_id, by) {
        (Some(id), _) => id,
        (None, Closer::Visitor(vid)) => {
            open_of_visitor(conn, bid, vid)?.ok_or(StoreError::NotFound)?
        }
        (None, Closer::Agent(..)) => return Err(StoreError::Invalid("conv_id is required")),
    };
    let b = brief(conn, id)?.ok_or(StoreError::NotFound)?;
    let mine = match by {
        Closer::Agent(..) => b.bid == bid,
        Closer::Visitor(vid) => b.bid == bid && b.visitor_id == vid,
    };
    if !mine {
        return Err(StoreError::NotFound);
    }
    let allowed = match (&b.phase, by) {
        // An agent may dismiss any queued conversation of its business, but close only its
        // own active one; the visitor may close its conversation while it is open.
        (Phase::Queued, _) | (Phase::Active { .. }, Closer::Visitor(_)) => true,
        (Phase::Active { .. }, Closer::Agent(aid, _)) => b.phase.is_active_with(aid),
        (Phase::Closed { .. }, _) => false,
    };
    if !allowed {
        return Err(StoreError::Conflict("conversation is not open for you"));
    }
    conn.prepare_cached(
        "UPDATE conversations SET state = 'closed', closed_at = ?2 WHERE id = ?1 AND state != 'closed'",
    )?
    .execute(params![id, now])?;
    let closed = match by {
        Closer::Agent(aid, name) => Event::Closed {
            by: ClosedBy::Agent,
            agent_id: Some(aid.to_string()),
            agent_name: Some(name.to_string()),
        },
        Closer::Visitor(_) => Event::Closed {
            by: ClosedBy::Visitor,
            agent_id: None,
            agent_name: None,
        },
    };
    let event = history::append(conn, id, SYSTEM, &Body::Event(closed), None, now)?;
    let routed = drain(conn, bid, online, p, now)?;
    Ok(Closed {
        brief: b,
        event,
        routed,
    })
}

/// A read receipt after it was recorded.
#[derive(Debug, Clone)]
pub(crate) struct ReadMark {
    /// The conversation.
    pub brief: Brief,
    /// Read up to (clamped to the last seq).
    pub seq: i64,
    /// Unread visitor messages left for the agent.
    pub unread: i64,
}

/// Record that the agent (`Some(agent_id)`) or the visitor read up to `seq`.
pub(crate) fn mark_read(conn: &Db, b: &Brief, agent: Option<&str>, seq: i64) -> Result<ReadMark> {
    let seq = seq.clamp(0, b.last_seq);
    let sql = if agent.is_some() {
        "UPDATE conversations SET agent_read_seq = CASE WHEN agent_read_seq > ?2 THEN agent_read_seq ELSE ?2 END
         WHERE id = ?1"
    } else {
        "UPDATE conversations SET visitor_read_seq = CASE WHEN visitor_read_seq > ?2 THEN visitor_read_seq ELSE ?2 END
         WHERE id = ?1"
    };
    conn.prepare_cached(sql)?.execute(params![b.id, seq])?;
    let unread: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conv_id
             WHERE m.conv_id = ?1 AND m.seq > c.agent_read_seq AND m.sender_role = 'visitor'",
        )?
        .query_row([b.id], |r| r.get(0))?;
    Ok(ReadMark {
        brief: b.clone(),
        seq,
        unread,
    })
}

/// The visitor side of a message send: the visitor's open conversation (opened and routed
/// first if there is none, so an assignment's event precedes the message), then the message.
pub(crate) struct VisitorSent {
    /// The stored (or, on a retry, previously stored) message.
    pub msg: MessageOut,
    /// The conversation's agent after routing.
    pub agent_id: Option<String>,
    /// Routing done because the conversation was opened.
    pub routed: Option<Routed>,
}

/// Store a visitor message (see [`VisitorSent`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn visitor_send(
    conn: &Db,
    bid: &str,
    me: Sender<'_>,
    body: &Body,
    client_msg_id: Option<&str>,
    online: &[String],
    p: Policy,
    now: i64,
) -> Result<VisitorSent> {
    if let Some(cm) = client_msg_id {
        if let Some(msg) = history::find_retry(conn, bid, me, cm, None)? {
            let agent_id =
                brief(conn, msg.conv_id)?.and_then(|b| b.phase.agent_id().map(str::to_owned));
            return Ok(VisitorSent {
                msg,
                agent_id,
                routed: None,
            });
        }
    }
    let (id, mut routed) = match open_of_visitor(conn, bid, me.id)? {
        Some(id) => (id, None),
        None => {
            let id = open(conn, bid, me.id, now)?;
            (id, Some(drain(conn, bid, online, p, now)?))
        }
    };
    let msg = history::append(conn, id, me, body, client_msg_id, now)?;
    conn.prepare_cached("UPDATE visitors SET last_seen = ?3 WHERE bid = ?1 AND visitor_id = ?2")?
        .execute(params![bid, me.id, now])?;
    let agent_id = brief(conn, id)?.and_then(|b| b.phase.agent_id().map(str::to_owned));
    if let (Some(r), None) = (&mut routed, &agent_id) {
        // Still waiting: reload the queue so agents see this first message as its preview.
        (r.queue, r.queue_len) = queue(conn, bid)?;
    }
    Ok(VisitorSent {
        msg,
        agent_id,
        routed,
    })
}

/// Store an agent message in one of its active conversations; returns it and the visitor id.
pub(crate) fn agent_send(
    conn: &Db,
    bid: &str,
    conv_id: i64,
    me: Sender<'_>,
    body: &Body,
    client_msg_id: Option<&str>,
    now: i64,
) -> Result<(MessageOut, String)> {
    let b = brief(conn, conv_id)?
        .filter(|b| b.bid == bid)
        .ok_or(StoreError::NotFound)?;
    if let Some(cm) = client_msg_id {
        // A retry only of what this agent sent into this very conversation: an earlier
        // message of another conversation under the same id must not be acked here and
        // pushed into this visitor's chat.
        if let Some(msg) = history::find_retry(conn, bid, me, cm, Some(conv_id))? {
            return Ok((msg, b.visitor_id));
        }
    }
    if !b.phase.is_active_with(me.id) {
        return Err(StoreError::Conflict("not your active conversation"));
    }
    let msg = history::append(conn, conv_id, me, body, client_msg_id, now)?;
    Ok((msg, b.visitor_id))
}

/// Who reads a conversation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access<'a> {
    /// Any agent of the business.
    Agent(&'a str),
    /// The conversation's own visitor.
    Visitor(&'a str, &'a str),
}

/// The conversation if `who` may read it (a foreign one is reported as absent).
pub(crate) fn readable(conn: &Db, conv_id: i64, who: Access<'_>) -> Result<Brief> {
    let b = brief(conn, conv_id)?.ok_or(StoreError::NotFound)?;
    let ok = match who {
        Access::Agent(bid) => b.bid == bid,
        Access::Visitor(bid, vid) => b.bid == bid && b.visitor_id == vid,
    };
    if ok {
        Ok(b)
    } else {
        Err(StoreError::NotFound)
    }
}
