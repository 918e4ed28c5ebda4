//! Frames out to clients (replies, errors, pushes to uids and groups) and the small input helpers.

use super::queue::{DeptQueue, QUEUE_SHOWN};
use super::request::{Echo, Refusal};
use super::routing::Routed;
use super::transfer::ToDept;
use super::wire::{ConvOut, MessageOut, Method, Out, Resume};
use super::{
    agent_uid, agents_group, dept_group, visitor_uid, ClientId, Payload, MAX_CLIENT_MSG_ID,
    MAX_RESUME,
};
use crate::api::Ctx;
use serde_json::{Map, Value};

/// `s` cut to at most `max` bytes on a char boundary.
pub(super) fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut i = max;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
    s
}

/// A login's resume list cut to [`MAX_RESUME`] entries.
pub(super) fn clip_resume(mut r: Vec<Resume>) -> Vec<Resume> {
    r.truncate(MAX_RESUME);
    r
}

/// Why a send's client_msg_id is unacceptable, if it is.
pub(super) fn bad_cmid(c: &Option<String>) -> Option<&'static str> {
    match c {
        Some(c) if c.is_empty() || c.len() > MAX_CLIENT_MSG_ID => {
            Some("client_msg_id must be 1..64 bytes")
        }
        _ => None,
    }
}

/// A frame to one connection.
pub(super) fn send(cx: &mut Ctx<'_>, id: ClientId, o: &Out<'_>) {
    cx.send_to_client(id, Payload::Text(&o.to_json()));
}

/// A frame to every connection of a uid.
pub(super) fn push_uid(cx: &mut Ctx<'_>, uid: &str, o: &Out<'_>) {
    cx.send_to_uid(&[uid], Payload::Text(&o.to_json()));
}

/// Set each conversation's visitor `online` from the gateway's presence.
pub(super) fn mark_online(cx: &Ctx<'_>, convs: &mut [ConvOut]) {
    for c in convs {
        if let Some(v) = &mut c.visitor {
            v.online = cx.is_uid_online(&visitor_uid(&c.bid, &v.visitor_id));
        }
    }
}

/// A stored message to everyone in the conversation (every tab of both sides).
pub(super) fn fan_message(
    cx: &mut Ctx<'_>,
    bid: &str,
    visitor_id: &str,
    agent_id: Option<&str>,
    m: &MessageOut,
) {
    let v = visitor_uid(bid, visitor_id);
    let a = agent_id.map(|a| agent_uid(bid, a));
    let mut uids: Vec<&str> = vec![&v];
    if let Some(a) = &a {
        uids.push(a);
    }
    cx.send_to_uid(&uids, Payload::Text(&Out::Message(m).to_json()));
}

/// Tell everyone about routing: assignments (agent, visitor, event message), then the
/// queue to the business's agents and each waiting visitor's position.
pub(super) fn push_routed(cx: &mut Ctx<'_>, r: &Routed) {
    for a in &r.assigned {
        let c = &a.conv;
        let Some(agent) = c.agent_id.as_deref() else {
            continue;
        };
        let vid = c
            .visitor
            .as_ref()
            .map(|v| v.visitor_id.clone())
            .unwrap_or_default();
        if let Some(prev) = &a.previous {
            push_uid(
                cx,
                &agent_uid(&r.bid, prev),
                &Out::Unassigned {
                    conv_id: c.conv_id,
                    reason: "transferred",
                    to: Some(agent),
                },
            );
            push_uid(cx, &agent_uid(&r.bid, prev), &Out::Message(&a.event));
        }
        let mut conv = c.clone();
        mark_online(cx, std::slice::from_mut(&mut conv));
        push_uid(
            cx,
            &agent_uid(&r.bid, agent),
            &Out::AgentAssigned { conv: &conv },
        );
        push_uid(
            cx,
            &visitor_uid(&r.bid, &vid),
            &Out::VisitorAssigned {
                conv_id: c.conv_id,
                agent_id: agent,
                agent_name: c.agent_name.as_deref().unwrap_or(agent),
            },
        );
        fan_message(cx, &r.bid, &vid, Some(agent), &a.event);
    }
    push_queues(cx, &r.bid, &r.queues);
}

/// Each changed line to the agents who may take from it (a department's to its group, the
/// line without a department to every agent of the business), and each waiting visitor
/// its place.
pub(super) fn push_queues(cx: &mut Ctx<'_>, bid: &str, queues: &[DeptQueue]) {
    for q in queues {
        let shown = &q.entries[..q.entries.len().min(QUEUE_SHOWN)];
        let upd = Out::QueueUpdate {
            dept_id: q.dept_id.as_deref(),
            queue: shown,
            queue_len: q.len,
        }
        .to_json();
        let group = match &q.dept_id {
            Some(d) => dept_group(bid, d),
            None => agents_group(bid),
        };
        cx.send_to_group(&[&group], Payload::Text(&upd), &[]);
        for e in &q.entries {
            push_uid(
                cx,
                &visitor_uid(bid, &e.visitor_id),
                &Out::Waiting {
                    conv_id: e.conv_id,
                    position: e.position,
                    agents_online: q.agents_online,
                },
            );
        }
    }
}

/// A transfer to a department: the agent who let it go loses it and sees the event line,
/// the visitor sees it, then the routing that followed.
pub(super) fn push_to_dept(cx: &mut Ctx<'_>, t: &ToDept) {
    let bid = &t.routed.bid;
    push_uid(
        cx,
        &agent_uid(bid, &t.from),
        &Out::Unassigned {
            conv_id: t.conv_id,
            reason: "transferred",
            to: None,
        },
    );
    fan_message(cx, bid, &t.visitor_id, Some(&t.from), &t.event);
    push_routed(cx, &t.routed);
}

/// Answer a frame that did not parse as a request: bad JSON, no method, unknown method,
/// or bad fields for a known method (echoing the method and a send's client_msg_id when
/// the frame has them).
pub(super) fn classify(cx: &mut Ctx<'_>, id: ClientId, t: &str, e: &serde_json::Error) {
    let Ok(obj) = serde_json::from_str::<Map<String, Value>>(t) else {
        return Refusal::NotObject.send(cx, id, Echo::default());
    };
    match obj.get("method") {
        None => Refusal::NoMethod.send(cx, id, Echo::default()),
        Some(Value::String(m)) => match Method::parse(m) {
            Some(method) => {
                let client_msg_id = match (method, obj.get("client_msg_id")) {
                    (Method::Send, Some(Value::String(c))) => Some(c.as_str()),
                    _ => None,
                };
                let echo = Echo {
                    method: Some(method.as_str()),
                    client_msg_id,
                };
                Refusal::BadFields(method, e.to_string()).send(cx, id, echo)
            }
            None => {
                let m = clip(m.clone(), 64);
                let echo = Echo {
                    method: Some(&m),
                    client_msg_id: None,
                };
                Refusal::UnknownMethod(m.clone()).send(cx, id, echo)
            }
        },
        Some(_) => Refusal::MethodNotString.send(cx, id, Echo::default()),
    }
}
