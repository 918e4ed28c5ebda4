//! Live presence for both sides, and what happens to an absent agent's conversations.
//!
//! Presence itself lives in the gateway (uids and groups, replicated to every worker); this
//! file only turns its changes into pushes: the business's availability and each agent's
//! state to the business's visitors (group `visitors:<bid>`), each visitor's state to the
//! business's agents (group `agents:<bid>`). When an agent's last connection closes, the
//! worker that saw it arms a timer (`agent_away_grace`); if the agent is still offline when
//! it fires, its active conversations go back to the queue (and to a colleague with a free
//! slot, if any) instead of waiting for someone who left.

use super::done::{Origin, Outcome};
use super::history::{self, Body, SYSTEM};
use super::push::{fan_message, push_routed, push_uid};
use super::routing::{self, Policy, Routed};
use super::shared::{business, Shared};
use super::wire::{Event, MessageOut, Out};
use super::{agent_uid, agents_group, Payload};
use crate::api::{ms_until, Ctx, TimerId};
use crate::store::db::{params, Db};
use crate::store::{self, now_ms};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The group of a business's visitor connections.
pub(crate) fn visitors_group(bid: &str) -> String {
    format!("visitors:{bid}")
}

/// An agent's active conversations put back in the queue because it stayed away.
#[derive(Debug, Clone)]
pub(crate) struct Requeued {
    /// The absent agent.
    pub agent_id: String,
    /// Each requeued conversation: its visitor and the event message written for it.
    pub convs: Vec<(String, MessageOut)>,
    /// Routing afterwards (colleagues with free slots take them at once).
    pub routed: Routed,
}

/// Requeue every active conversation of `agent_id` (offline for the grace period, or
/// `disabled` by an admin), then drain the queue to the agents online now. `queued_at` is
/// kept, so a visitor who already waited is not sent to the back of the line.
pub(crate) fn requeue_absent(
    conn: &Db,
    bid: &str,
    agent_id: &str,
    online: &[String],
    p: Policy,
    now: i64,
    disabled: bool,
) -> store::Result<Requeued> {
    let ids: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, visitor_id FROM conversations
             WHERE bid = ?1 AND agent_id = ?2 AND state = 'active' ORDER BY id",
        )?
        .query_map([bid, agent_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<store::Result<_>>()?;
    let name: String = conn
        .prepare_cached("SELECT name FROM agents WHERE bid = ?1 AND agent_id = ?2")?
        .query_row([bid, agent_id], |r| r.get(0))
        .unwrap_or_else(|_| agent_id.to_string());
    let mut convs = Vec::with_capacity(ids.len());
    for (id, visitor_id) in ids {
        // Conditional: a transfer or close that won the race leaves the row alone.
        let n = conn
            .prepare_cached(
                "UPDATE conversations SET state = 'queued', agent_id = NULL, assigned_at = NULL,
                        agent_read_seq = 0
                 WHERE id = ?1 AND agent_id = ?2 AND state = 'active'",
            )?
            .execute(params![id, agent_id])?;
        if n == 0 {
            continue;
        }
        let (agent_id, agent_name) = (agent_id.to_string(), name.clone());
        let why = if disabled {
            Event::AgentDisabled {
                agent_id,
                agent_name,
            }
        } else {
            Event::Requeued {
                agent_id,
                agent_name,
            }
        };
        let event = history::append(conn, id, SYSTEM, &Body::Event(why), None, now)?;
        convs.push((visitor_id, event));
    }
    let routed = routing::drain(conn, bid, online, p, now)?;
    Ok(Requeued {
        agent_id: agent_id.to_string(),
        convs,
        routed,
    })
}

/// Agents whose last connection closed on this worker, by (bid, agent id), each with the
/// timer after which their conversations are requeued.
#[derive(Debug, Default)]
pub(super) struct Away {
    timers: HashMap<(String, String), (TimerId, Instant)>,
}

/// An away timer crossing a reload: bid, agent id, milliseconds left.
pub(super) type CarriedAway = (String, String, u64);

impl Away {
    /// An agent's first connection is up: its business's visitors hear it.
    pub(super) fn arrived(&mut self, cx: &mut Ctx<'_>, bid: &str, id: &str, name: &str) {
        // Back before the grace period ended: nothing to requeue.
        if let Some((t, _)) = self.timers.remove(&(bid.to_string(), id.to_string())) {
            cx.del_timer(t);
        }
        let push = Out::AgentPresence {
            agent_id: id,
            agent_name: name,
            online: true,
            agents_online: true,
        }
        .to_json();
        cx.send_to_group(&[&visitors_group(bid)], Payload::Text(&push), &[]);
    }

    /// An agent's last connection is gone (`closing` is that connection when it is still in
    /// the registry, during `on_close`): tell the visitors, and arm the grace timer (none when
    /// `grace` is zero). `local`: the agent's worker died, and every surviving worker tells
    /// its own members.
    pub(super) fn left(
        &mut self,
        cx: &mut Ctx<'_>,
        bid: &str,
        id: &str,
        name: &str,
        local: bool,
        grace: Duration,
    ) {
        let agents_online = online_agents(cx, bid).iter().any(|a| a != id);
        let push = Out::AgentPresence {
            agent_id: id,
            agent_name: name,
            online: false,
            agents_online,
        }
        .to_json();
        let group = visitors_group(bid);
        if local {
            cx.send_to_group_local(&[&group], Payload::Text(&push));
        } else {
            cx.send_to_group(&[&group], Payload::Text(&push), &[]);
        }
        if grace.is_zero() {
            return;
        }
        self.arm(cx, bid.to_string(), id.to_string(), grace);
    }

    fn arm(&mut self, cx: &mut Ctx<'_>, bid: String, id: String, after: Duration) {
        let key = (bid, id);
        if let Some((t, _)) = self.timers.remove(&key) {
            cx.del_timer(t);
        }
        let t = cx.add_timer(after, false, 0);
        self.timers.insert(key, (t, cx.now() + after));
    }

    /// The timers as they cross a reload (the successor re-arms them for what is left).
    pub(super) fn carry(&self, now: Instant) -> Vec<CarriedAway> {
        self.timers
            .iter()
            .map(|((bid, id), (_, due))| (bid.clone(), id.clone(), ms_until(*due, now)))
            .collect()
    }

    /// Re-arm timers carried from the predecessor, each for at most `grace`: an agent away
    /// there is away here, and its conversations are requeued when its time is up.
    pub(super) fn restore(&mut self, cx: &mut Ctx<'_>, timers: Vec<CarriedAway>, grace: Duration) {
        if grace.is_zero() {
            return;
        }
        for (bid, id, left) in timers {
            let after = Duration::from_millis(left).min(grace);
            self.arm(cx, bid, id, after);
        }
    }

    /// If `timer` is an away timer: forget it and say whose it was, `(bid, agent id)`.
    pub(super) fn expired(&mut self, timer: TimerId) -> Option<(String, String)> {
        let key = self
            .timers
            .iter()
            .find(|(_, (t, _))| *t == timer)
            .map(|(k, _)| k.clone())?;
        self.timers.remove(&key);
        Some(key)
    }
}

/// Agent ids of a business online anywhere in the cluster (from the gateway replica).
pub(super) fn online_agents(cx: &Ctx<'_>, bid: &str) -> Vec<String> {
    let prefix = format!("agent:{bid}:");
    let mut v: Vec<String> = cx
        .get_uid_list_by_group(&agents_group(bid))
        .into_iter()
        .filter_map(|u| u.strip_prefix(&prefix).map(str::to_owned))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A visitor's first connection is up, or its last one is gone: its agents hear it.
pub(super) fn visitor_presence(
    cx: &mut Ctx<'_>,
    bid: &str,
    visitor_id: &str,
    online: bool,
    local: bool,
) {
    let push = Out::VisitorPresence { visitor_id, online }.to_json();
    let group = agents_group(bid);
    if local {
        cx.send_to_group_local(&[&group], Payload::Text(&push));
    } else {
        cx.send_to_group(&[&group], Payload::Text(&push), &[]);
    }
}

/// An agent's away timer fired: requeue its conversations unless it came back (on any
/// worker) in the meantime.
pub(super) fn requeue(sh: &mut Shared, cx: &mut Ctx<'_>, bid: String, id: String) {
    if cx.is_uid_online(&agent_uid(&bid, &id)) {
        return;
    }
    let online = online_agents(cx, &bid);
    let p = sh.policy();
    sh.submit(cx, Origin::Drain, business(&bid), move |c| {
        requeue_absent(c, &bid, &id, &online, p, now_ms(), false)
            .map(|r| Outcome::Requeued(Box::new(r)))
    });
}

/// Tell everyone about requeued conversations: the event line to the visitor (and the
/// absent agent's tabs, should one have come back), then the routing that followed.
pub(super) fn push_requeued(cx: &mut Ctx<'_>, r: &Requeued) {
    let bid = &r.routed.bid;
    for (visitor_id, event) in &r.convs {
        fan_message(cx, bid, visitor_id, Some(&r.agent_id), event);
        push_uid(
            cx,
            &agent_uid(bid, &r.agent_id),
            &Out::Unassigned {
                conv_id: event.conv_id,
                reason: "requeued",
                to: None,
            },
        );
    }
    push_routed(cx, &r.routed);
}
