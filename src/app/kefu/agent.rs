//! Agent connections: login, the agents-only requests, and what an agent hears once logged in
//! (free functions over the app's [`Shared`] state).

use super::auth::Role as TokenRole;
use super::done::Outcome;
use super::login::{self, AgentIn};
use super::presence::online_agents;
use super::push::{clip_resume, mark_online, push_routed, send};
use super::queue::{self, QUEUE_SHOWN};
use super::request::{self, Me, Refusal, Req, Side};
use super::routing;
use super::shared::{business, Role, Shared};
use super::transfer;
use super::wire::{self, CustomerEntry, In, LoginIn, Out, QueueEntry, Resume};
use super::{agent_uid, agents_group, dept_group, ClientId, Payload};
use crate::api::Ctx;
use crate::store::{now_ms, valid_id};
use serde_json::Value;
use std::collections::HashSet;

/// An agent's WebSocket login: the token is checked here, the agent row by the store.
pub(super) fn login(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    rq: &Req,
    l: LoginIn,
) -> Result<(), Refusal> {
    let (Some(bid), Some(cid), Some(token)) = (
        l.bid.map(wire::StrOrNum::into_string),
        l.customer_id.map(wire::StrOrNum::into_string),
        l.token,
    ) else {
        return Err(Refusal::Login(
            "登录失败，参数不正确 (bid, customer_id, token)".into(),
        ));
    };
    let claims = sh
        .verify_token(&token, TokenRole::Agent)
        .map_err(|m| Refusal::Login(m.into()))?;
    if claims.b != bid || claims.s != cid {
        return Err(Refusal::Login(
            "token does not match bid/customer_id".into(),
        ));
    }
    let mut online = online_agents(cx, &bid);
    online.push(cid);
    sh.set_role(rq.id, Role::Pending);
    let p = sh.policy();
    let resume = clip_resume(l.resume);
    sh.submit(cx, rq.origin(), business(&claims.b), move |c| {
        login::agent(c, &claims, &online, p, now_ms())
            .map(|a| Outcome::AgentLogin(Box::new(a), resume))
    });
    Ok(())
}

/// The methods only agents have: claim, transfer, conversations.
pub(super) fn request(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    rq: &Req,
    me: Me,
    req: In,
) -> Result<(), Refusal> {
    let p = sh.policy();
    match req {
        In::Claim { conv_id } => sh.submit(cx, rq.origin(), business(&me.bid), move |c| {
            routing::claim(c, &me.bid, conv_id, &me.id, &me.name, now_ms()).map(Outcome::Routed)
        }),
        In::Transfer {
            conv_id,
            to: Some(to),
            dept: None,
        } => {
            let to = to.into_string();
            if !valid_id(&to) {
                return Err(Refusal::Invalid("bad agent id"));
            }
            if !cx.is_uid_online(&agent_uid(&me.bid, &to)) {
                return Err(Refusal::Offline);
            }
            let online = online_agents(cx, &me.bid);
            sh.submit(cx, rq.origin(), business(&me.bid), move |c| {
                let from = (me.id.as_str(), me.name.as_str());
                transfer::to_agent(c, &me.bid, conv_id, from, &to, &online, p, now_ms())
                    .map(Outcome::Routed)
            })
        }
        In::Transfer {
            conv_id,
            to: None,
            dept: Some(dept),
        } => {
            if !valid_id(&dept) {
                return Err(Refusal::Invalid("bad dept"));
            }
            let online = online_agents(cx, &me.bid);
            sh.submit(cx, rq.origin(), business(&me.bid), move |c| {
                let from = (me.id.as_str(), me.name.as_str());
                transfer::to_dept(c, &me.bid, conv_id, from, &dept, &online, p, now_ms())
                    .map(|t| Outcome::ToDept(Box::new(t)))
            })
        }
        In::Transfer { .. } => {
            return Err(Refusal::Invalid("transfer needs either to or dept"));
        }
        In::Conversations => sh.submit(cx, rq.origin(), business(&me.bid), move |c| {
            let convs = routing::agent_conversations(c, &me.bid, &me.id)?;
            let q = queue::entries(c, &me.bid, Some(&me.id))?;
            Ok(Outcome::Conversations(convs, q))
        }),
        // The shared path (`request::request`) answers the rest.
        _ => {}
    }
    Ok(())
}

/// The store accepted an agent's login: bind it, tell its colleagues, answer it.
pub(super) fn logged_in(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    id: ClientId,
    a: AgentIn,
    resume: Vec<Resume>,
) {
    if !sh.conns.contains_key(&id) {
        // Gone while the store worked: nothing to bind. The drain may have assigned
        // conversations to an agent now offline; they wait for the agent's return.
        return;
    }
    let ag = &a.agent;
    let me = Me {
        side: Side::Agent,
        bid: ag.bid.clone(),
        id: ag.agent_id.clone(),
        name: ag.name.clone(),
    };
    if let Some(c) = sh.conns.get_mut(&id) {
        c.agent_gen = ag.pw_ver;
    }
    let group = agents_group(&ag.bid);
    // Colleagues hear of the agent's first tab only.
    let was_online = cx.is_uid_online(&me.uid());
    request::bind(sh, cx, id, &me);
    let ts = now_ms() / 1000;
    if !was_online {
        let push = Out::LoginPush {
            customer_id: &ag.agent_id,
            customer_name: &ag.name,
            timestamp: ts,
        }
        .to_json();
        cx.send_to_group(&[&group], Payload::Text(&push), &[id]);
    }
    // Visitors hear every first tab (not only the business's first agent): the agent
    // may be the one they were talking to.
    if !was_online {
        sh.away.arrived(cx, &ag.bid, &ag.agent_id, &ag.name);
    }
    let _ = cx.join_group(id, &group);
    for d in &a.depts {
        let _ = cx.join_group(id, &dept_group(&ag.bid, &d.dept_id));
    }
    let mut seen = HashSet::new();
    let mut list = Vec::new();
    for (_, sess) in cx.get_client_sessions_by_group(&group) {
        let (Some(cid), Some(name)) = (
            sess.get("customer_id").and_then(Value::as_str),
            sess.get("customer_name").and_then(Value::as_str),
        ) else {
            continue;
        };
        if seen.insert(cid.to_string()) {
            list.push(CustomerEntry {
                customer_id: cid.to_string(),
                customer_name: name.to_string(),
                status: 1,
            });
        }
    }
    if seen.insert(ag.agent_id.clone()) {
        list.push(CustomerEntry {
            customer_id: ag.agent_id.clone(),
            customer_name: ag.name.clone(),
            status: 1,
        });
    }
    let mut convs = a.conversations;
    mark_online(cx, &mut convs);
    let q = shown(&a.queue);
    send(
        cx,
        id,
        &Out::Login {
            customer_id: &ag.agent_id,
            customer_name: &ag.name,
            timestamp: ts,
            customer_list: &list,
            conversations: &convs,
            queue: &q,
            role: ag.role,
            departments: &a.depts,
        },
    );
    // Only what changed: conversations assigned to this agent are already in its list,
    // but visitors and colleagues need to hear about them.
    if !a.routed.assigned.is_empty() {
        push_routed(cx, &a.routed);
    }
    request::resume(sh, cx, id, &me, resume);
}

/// An agent's view of the queue as sent: at most [`QUEUE_SHOWN`] entries of each line.
pub(super) fn shown(q: &[QueueEntry]) -> Vec<QueueEntry> {
    q.iter()
        .filter(|e| e.position as usize <= QUEUE_SHOWN)
        .cloned()
        .collect()
}
