//! Conversations and routing, as SQL run on a store thread inside the writer's transaction.
//!
//! The database is the shared truth across worker processes: every decision (which agent
//! gets a conversation, who wins a claim) is a read-then-conditional-write inside one
//! `BEGIN IMMEDIATE` transaction, which SQLite serializes across processes. Presence (which
//! agents are online) comes from the gateway and is passed in by the loop.
//!
//! Departments: a conversation with a `dept_id` goes only to agents of that department, one
//! without goes to any agent; each department is its own waiting line (`queue.rs`). A
//! disabled agent is never picked. The per-agent maximum counts all of an agent's
//! conversations, whatever their department.

use super::history::{self, Body, Sender, SYSTEM};
use super::queue::{self, DeptQueue, QUEUE_LOAD};
use super::state::Phase;
use super::wire::{ClosedBy, ConvOut, Event, MessageOut, VisitorOut};
use crate::config::RoutingPolicy;
use crate::store::db::{params, Db, OptionalExtension};
use crate::store::{convo, depts, Result, StoreError};

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
    /// Its department (None: none).
    pub dept_id: Option<String>,
}

/// The conversation's essentials.
pub(crate) fn brief(conn: &Db, id: i64) -> Result<Option<Brief>> {
    conn.prepare_cached(
        "SELECT id, bid, visitor_id, state, agent_id, last_seq, dept_id
             FROM conversations WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(Brief {
            id: r.get(0)?,
            bid: r.get(1)?,
            visitor_id: r.get(2)?,
            phase: Phase::from_row(r, 3, 4)?,
            last_seq: r.get(5)?,
            dept_id: r.get(6)?,
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
                    c.visitor_id, c.dept_id
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
                    dept_id: r.get(13)?,
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
    /// The waiting lines afterwards: those with anyone in them, and those the change
    /// emptied (their agents must hear it).
    pub queues: Vec<DeptQueue>,
}

impl Routed {
    /// The line of `dept` (tests).
    #[cfg(test)]
    pub(crate) fn line(&self, dept: Option<&str>) -> Option<&DeptQueue> {
        self.queues.iter().find(|q| q.dept_id.as_deref() == dept)
    }
}

struct Cand {
    id: String,
    name: String,
    max: i64,
    last: i64,
    active: i64,
    depts: Vec<String>,
}

impl Cand {
    /// Whether it may take a conversation of `dept` now.
    fn fits(&self, dept: Option<&str>) -> bool {
        self.active < self.max && dept.is_none_or(|d| self.depts.iter().any(|x| x == d))
    }
}

/// Whether `agent_id` may take a conversation of `dept` (None: anyone may).
pub(crate) fn in_dept(conn: &Db, bid: &str, agent_id: &str, dept: Option<&str>) -> Result<bool> {
    let Some(d) = dept else { return Ok(true) };
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM agent_departments WHERE bid = ?1 AND agent_id = ?2 AND dept_id = ?3",
        )?
        .query_row([bid, agent_id, d], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Assign queued conversations (oldest first) to online agents with free slots who may take
/// them, by the business's policy (or `p`'s), until the queue or the capacity is exhausted.
/// A conversation nobody free may take (its department is full or absent) waits without
/// holding up the ones behind it.
pub(crate) fn drain(
    conn: &Db,
    bid: &str,
    online: &[String],
    p: Policy,
    now: i64,
) -> Result<Routed> {
    drain_but(conn, bid, online, p, now, None, [])
}

/// [`drain`], but `skip` = (conversation, agent) is not given back to that agent (a
/// transfer to a department), and the lines in `also` are reported even if empty.
pub(crate) fn drain_but(
    conn: &Db,
    bid: &str,
    online: &[String],
    p: Policy,
    now: i64,
    skip: Option<(i64, &str)>,
    also: impl IntoIterator<Item = Option<String>>,
) -> Result<Routed> {
    let mut cands: Vec<Cand> = conn
        .prepare_cached(
            "SELECT a.agent_id, a.name, a.max_concurrent, a.last_assigned_at,
                    (SELECT COUNT(*) FROM conversations c
                     WHERE c.bid = a.bid AND c.agent_id = a.agent_id AND c.state = 'active')
             FROM agents a WHERE a.bid = ?1 AND a.disabled = 0",
        )?
        .query_map([bid], |r| {
            Ok(Cand {
                id: r.get(0)?,
                name: r.get(1)?,
                max: r.get::<_, Option<i64>>(2)?.unwrap_or(p.max_per_agent),
                last: r.get(3)?,
                active: r.get(4)?,
                depts: Vec::new(),
            })
        })?
        .filter(|c| c.as_ref().map_or(true, |c| online.contains(&c.id)))
        .collect::<Result<_>>()?;
    for c in &mut cands {
        c.depts = depts::of_agent(conn, bid, &c.id)?
            .into_iter()
            .map(|d| d.dept_id)
            .collect();
    }
    let policy = depts::policy(conn, bid)?.unwrap_or(p.policy);
    let mut routed = Routed {
        bid: bid.to_string(),
        ..Default::default()
    };
    let mut touched: Vec<Option<String>> = also.into_iter().collect();
    // Strictly increasing stamps so round-robin never ties within one millisecond.
    let mut stamp = cands.iter().map(|c| c.last + 1).max().unwrap_or(0).max(now);
    let waiting: Vec<(i64, Option<String>)> = if !cands.iter().any(|c| c.active < c.max) {
        // Nobody has room: nothing to read.
        Vec::new()
    } else {
        conn.prepare_cached(
            "SELECT id, dept_id FROM conversations WHERE bid = ?1 AND state = 'queued'
             ORDER BY queued_at, id LIMIT ?2",
        )?
        .query_map(params![bid, QUEUE_LOAD], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_>>()?
    };
    for (conv_id, dept) in waiting {
        if !cands.iter().any(|c| c.active < c.max) {
            break;
        }
        let free = cands.iter_mut().filter(|c| {
            c.fits(dept.as_deref()) && skip.is_none_or(|(sc, sa)| sc != conv_id || sa != c.id)
        });
        let pick = match policy {
            RoutingPolicy::LeastBusy => {
                free.min_by(|a, b| (a.active, a.last, &a.id).cmp(&(b.active, b.last, &b.id)))
            }
            RoutingPolicy::RoundRobin => free.min_by(|a, b| (a.last, &a.id).cmp(&(b.last, &b.id))),
        };
        let Some(agent) = pick else { continue };
        agent.active += 1;
        agent.last = stamp;
        let (id, name) = (agent.id.clone(), agent.name.clone());
        routed
            .assigned
            .push(assign(conn, bid, conv_id, &id, &name, stamp, now)?);
        touched.push(dept);
        stamp += 1;
    }
    routed.queues = queue::busy_lines(conn, bid, touched, online)?;
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

/// Open a queued conversation for a visitor, in department `dept` (None: none).
pub(crate) fn open(conn: &Db, bid: &str, vid: &str, dept: Option<&str>, now: i64) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO conversations (bid, visitor_id, state, created_at, queued_at, dept_id)
             VALUES (?1, ?2, 'queued', ?3, ?3, ?4) RETURNING id",
    )?
    .query_row(params![bid, vid, now, dept], |r| r.get(0))
}

/// Take a queued conversation: exactly one concurrent claimer wins (conditional UPDATE),
/// and only an agent who may take its department.
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
             WHERE id = ?1 AND bid = ?2 AND state = 'queued'
               AND (dept_id IS NULL OR dept_id IN
                    (SELECT dept_id FROM agent_departments WHERE bid = ?2 AND agent_id = ?3))",
        )?
        .execute(params![conv_id, bid, agent_id, now])?;
    let dept = match brief(conn, conv_id)? {
        Some(b) if b.bid == bid => b.dept_id,
        _ => return Err(StoreError::NotFound),
    };
    if n == 0 {
        return Err(if in_dept(conn, bid, agent_id, dept.as_deref())? {
            StoreError::Conflict("conversation is not in the queue")
        } else {
            StoreError::Conflict("conversation is for another department")
        });
    }
    let (event, conv) = stamp_and_announce(conn, bid, agent_id, agent_name, conv_id, now, now)?;
    Ok(Routed {
        bid: bid.to_string(),
        assigned: vec![Assignment {
            conv,
            event,
            previous: None,
        }],
        queues: queue::lines(conn, bid, [dept], &[agent_id.to_string()])?,
    })
}

/// Who closes a conversation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Closer<'a> {
    /// An agent (its own active conversation, or a queued one it could take).
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
        // An agent may dismiss a queued conversation it could take (of its departments or
        // of none), but close only its own active one; the visitor may close its
        // conversation while it is open.
        (Phase::Queued, Closer::Agent(aid, _)) => in_dept(conn, bid, aid, b.dept_id.as_deref())?,
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
    let routed = drain_but(conn, bid, online, p, now, None, [b.dept_id.clone()])?;
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
    dept: Option<&str>,
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
            // The department chosen at login, unless removed since (then: none).
            let dept = match dept {
                Some(d) if depts::get(conn, bid, d)?.is_some() => Some(d),
                _ => None,
            };
            let id = open(conn, bid, me.id, dept, now)?;
            let also = [dept.map(str::to_owned)];
            (id, Some(drain_but(conn, bid, online, p, now, None, also)?))
        }
    };
    let msg = history::append(conn, id, me, body, client_msg_id, now)?;
    conn.prepare_cached("UPDATE visitors SET last_seen = ?3 WHERE bid = ?1 AND visitor_id = ?2")?
        .execute(params![bid, me.id, now])?;
    let agent_id = brief(conn, id)?.and_then(|b| b.phase.agent_id().map(str::to_owned));
    if let (Some(r), None) = (&mut routed, &agent_id) {
        // Still waiting: reload the lines so agents see this first message as its preview.
        let also = r
            .queues
            .iter()
            .map(|q| q.dept_id.clone())
            .collect::<Vec<_>>();
        r.queues = queue::busy_lines(conn, bid, also, online)?;
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
