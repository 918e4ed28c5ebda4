//! Frames out to clients (replies, errors, pushes to uids and groups) and the small input helpers.

use super::routing::{self, Routed};
use super::wire::{self, Code, ConvOut, ErrorOut, MessageOut, Out, Resume};
use super::{
    agent_uid, agents_group, visitor_uid, ClientId, Payload, MAX_CLIENT_MSG_ID, MAX_RESUME,
};
use crate::api::Ctx;
use serde_json::{Map, Value};

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

pub(super) fn clip_resume(mut r: Vec<Resume>) -> Vec<Resume> {
    r.truncate(MAX_RESUME);
    r
}

pub(super) fn bad_cmid(c: &Option<String>) -> Option<&'static str> {
    match c {
        Some(c) if c.is_empty() || c.len() > MAX_CLIENT_MSG_ID => {
            Some("client_msg_id must be 1..64 bytes")
        }
        _ => None,
    }
}

pub(super) fn send(cx: &mut Ctx<'_>, id: ClientId, o: &Out<'_>) {
    cx.send_to_client(id, Payload::Text(&o.to_json()));
}

pub(super) fn push_uid(cx: &mut Ctx<'_>, uid: &str, o: &Out<'_>) {
    cx.send_to_uid(&[uid], Payload::Text(&o.to_json()));
}

pub(super) fn err(
    cx: &mut Ctx<'_>,
    id: ClientId,
    code: Code,
    msg: &str,
    method: Option<&str>,
    cm: Option<&str>,
) {
    let e = ErrorOut {
        code: code.as_str(),
        msg,
        method,
        client_msg_id: cm,
    };
    if let Ok(s) = serde_json::to_string(&e) {
        cx.send_to_client(id, Payload::Text(&s));
    }
}

pub(super) fn login_failed(cx: &mut Ctx<'_>, id: ClientId, method: &str, msg: &str) {
    err(cx, id, Code::LoginFailed, msg, Some(method), None)
}

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
    let shown = &r.queue[..r.queue.len().min(routing::QUEUE_SHOWN)];
    let upd = Out::QueueUpdate {
        queue: shown,
        queue_len: r.queue_len,
    }
    .to_json();
    cx.send_to_group(&[&agents_group(&r.bid)], Payload::Text(&upd), &[]);
    for e in &r.queue {
        push_uid(
            cx,
            &visitor_uid(&r.bid, &e.visitor_id),
            &Out::Waiting {
                conv_id: e.conv_id,
                position: e.position,
                agents_online: r.agents_online,
            },
        );
    }
}

/// Answer a frame that did not parse as a request: bad JSON, no method, unknown method,
/// or bad fields for a known method.
pub(super) fn classify(cx: &mut Ctx<'_>, id: ClientId, t: &str, e: &serde_json::Error) {
    let obj = match serde_json::from_str::<Map<String, Value>>(t) {
        Ok(o) => o,
        Err(_) => return err(cx, id, Code::BadJson, "not a JSON object", None, None),
    };
    match obj.get("method") {
        None => err(
            cx,
            id,
            Code::NoMethod,
            "缺少method参数 (missing method)",
            None,
            None,
        ),
        Some(Value::String(m)) if wire::METHODS.contains(&m.as_str()) => {
            let msg = format!("bad fields: {e}");
            let code = if m == "login" || m == "visitor_login" {
                Code::LoginFailed
            } else {
                Code::Invalid
            };
            err(cx, id, code, &msg, Some(m), None)
        }
        Some(Value::String(m)) => {
            let m = clip(m.clone(), 64);
            err(
                cx,
                id,
                Code::UnknownMethod,
                &format!("unknown method {m:?}"),
                Some(&m),
                None,
            )
        }
        Some(_) => err(
            cx,
            id,
            Code::UnknownMethod,
            "method must be a string",
            None,
            None,
        ),
    }
}
