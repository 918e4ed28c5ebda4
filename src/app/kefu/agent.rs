//! Agent connections: login, requests, and what an agent hears once logged in.

use super::auth::Role as TokenRole;
use super::done::{Origin, Outcome};
use super::history::{self, Sender};
use super::login::{self, AgentIn};
use super::push::{bad_cmid, clip_resume, err, login_failed, mark_online, push_routed, send};
use super::routing::{self, Access, Closer};
use super::wire::{self, Code, CustomerEntry, In, Out, Resume};
use super::{agent_uid, agents_group, Access2, ClientId, Kefu, Payload, Role};
use crate::api::Ctx;
use crate::store::{now_ms, valid_id, StoreError};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// A logged-in agent connection.
#[derive(Debug, Clone)]
pub(super) struct AgentMe {
    pub(super) bid: String,
    pub(super) id: String,
    pub(super) name: String,
}

impl Kefu {
    pub(super) fn agent_login(
        &mut self,
        cx: &mut Ctx<'_>,
        id: ClientId,
        bid: Option<wire::StrOrNum>,
        customer_id: Option<wire::StrOrNum>,
        token: Option<String>,
        resume: Vec<Resume>,
    ) {
        let (Some(bid), Some(cid), Some(token)) = (
            bid.map(wire::StrOrNum::into_string),
            customer_id.map(wire::StrOrNum::into_string),
            token,
        ) else {
            return login_failed(
                cx,
                id,
                "login",
                "登录失败，参数不正确 (bid, customer_id, token)",
            );
        };
        let claims = match self.verify_token(&token, TokenRole::Agent) {
            Ok(c) => c,
            Err(m) => return login_failed(cx, id, "login", m),
        };
        if claims.b != bid || claims.s != cid {
            return login_failed(cx, id, "login", "token does not match bid/customer_id");
        }
        let mut online = Self::online_agents(cx, &bid);
        online.push(cid);
        self.set_role(id, Role::Pending);
        let p = self.policy();
        let resume = clip_resume(resume);
        self.submit(cx, false, Origin::Ws(id), "login", None, move |c| {
            login::agent(c, &claims, &online, p, now_ms())
                .map(|a| Outcome::AgentLogin(Box::new(a), resume))
        });
    }

    pub(super) fn agent_request(&mut self, cx: &mut Ctx<'_>, id: ClientId, me: AgentMe, req: In) {
        let o = Origin::Ws(id);
        let p = self.policy();
        match req {
            In::Send {
                conv_id,
                client_msg_id,
                kind,
                text,
                url,
            } => {
                if let Some(m) = bad_cmid(&client_msg_id) {
                    return err(cx, id, Code::Invalid, m, Some("send"), None);
                }
                let Some(conv_id) = conv_id else {
                    return err(
                        cx,
                        id,
                        Code::Invalid,
                        "conv_id is required",
                        Some("send"),
                        client_msg_id.as_deref(),
                    );
                };
                let body = match self.body(kind, text, url) {
                    Ok(b) => b,
                    Err(m) => {
                        return err(
                            cx,
                            id,
                            Code::Invalid,
                            m,
                            Some("send"),
                            client_msg_id.as_deref(),
                        )
                    }
                };
                let cm = client_msg_id.clone();
                self.submit(cx, false, o, "send", client_msg_id, move |c| {
                    let s = Sender {
                        role: "agent",
                        id: &me.id,
                        name: &me.name,
                    };
                    routing::agent_send(c, &me.bid, conv_id, s, &body, cm.as_deref(), now_ms())
                        .map(|(m, v)| Outcome::AgentSent(Box::new(m), v))
                });
            }
            In::History {
                conv_id,
                before_seq,
                limit,
            } => self.submit(cx, false, o, "history", None, move |c| {
                routing::readable(c, conv_id, Access::Agent(&me.bid))?;
                let (m, more) = history::page(
                    c,
                    conv_id,
                    before_seq,
                    limit.unwrap_or(history::DEFAULT_PAGE),
                )?;
                Ok(Outcome::History(conv_id, m, more))
            }),
            In::Sync { conv_id, last_seq } => {
                self.sync(cx, id, Access2::Agent(me.bid), conv_id, last_seq)
            }
            In::Typing { conv_id, typing } => {
                let Some(conv_id) = conv_id else {
                    return err(
                        cx,
                        id,
                        Code::Invalid,
                        "conv_id is required",
                        Some("typing"),
                        None,
                    );
                };
                self.submit(cx, false, o, "typing", None, move |c| {
                    let b = routing::readable(c, conv_id, Access::Agent(&me.bid))?;
                    if b.agent_id.as_deref() != Some(me.id.as_str()) {
                        return Err(StoreError::Conflict("not your conversation"));
                    }
                    Ok(Outcome::Typing(b, typing))
                })
            }
            In::Read { conv_id, seq } => self.submit(cx, false, o, "read", None, move |c| {
                let b = routing::readable(c, conv_id, Access::Agent(&me.bid))?;
                if b.agent_id.as_deref() != Some(me.id.as_str()) {
                    return Err(StoreError::Conflict("not your conversation"));
                }
                Ok(Outcome::Read(
                    routing::mark_read(c, &b, Some(&me.id), seq)?,
                    true,
                ))
            }),
            In::Claim { conv_id } => self.submit(cx, false, o, "claim", None, move |c| {
                routing::claim(c, &me.bid, conv_id, &me.id, &me.name, now_ms()).map(Outcome::Routed)
            }),
            In::Transfer { conv_id, to } => {
                let to = to.into_string();
                if !valid_id(&to) {
                    return err(
                        cx,
                        id,
                        Code::Invalid,
                        "bad agent id",
                        Some("transfer"),
                        None,
                    );
                }
                if !cx.is_uid_online(&agent_uid(&me.bid, &to)) {
                    return err(
                        cx,
                        id,
                        Code::Offline,
                        "that agent is offline",
                        Some("transfer"),
                        None,
                    );
                }
                let online = Self::online_agents(cx, &me.bid);
                self.submit(cx, false, o, "transfer", None, move |c| {
                    routing::transfer(
                        c,
                        &me.bid,
                        conv_id,
                        (&me.id, &me.name),
                        &to,
                        &online,
                        p,
                        now_ms(),
                    )
                    .map(Outcome::Routed)
                })
            }
            In::Close { conv_id } => {
                let online = Self::online_agents(cx, &me.bid);
                self.submit(cx, false, o, "close", None, move |c| {
                    routing::close(
                        c,
                        &me.bid,
                        conv_id,
                        Closer::Agent(&me.id, &me.name),
                        &online,
                        p,
                        now_ms(),
                    )
                    .map(|c| Outcome::Closed(Box::new(c)))
                })
            }
            In::Conversations => self.submit(cx, false, o, "conversations", None, move |c| {
                let convs = routing::agent_conversations(c, &me.bid, &me.id)?;
                let (q, _) = routing::queue(c, &me.bid)?;
                Ok(Outcome::Conversations(convs, q))
            }),
            In::Beat | In::Login { .. } | In::VisitorLogin { .. } => {}
        }
    }

    pub(super) fn agent_logged_in(
        &mut self,
        cx: &mut Ctx<'_>,
        id: ClientId,
        a: AgentIn,
        resume: Vec<Resume>,
    ) {
        if !self.conns.contains_key(&id) {
            // Gone while the store worked: nothing to bind. The drain may have assigned
            // conversations to an agent now offline; they wait for the agent's return.
            return;
        }
        let ag = &a.agent;
        let uid = agent_uid(&ag.bid, &ag.agent_id);
        let group = agents_group(&ag.bid);
        let was_online = cx.is_uid_online(&uid);
        let _ = cx.bind_uid(id, &uid);
        let mut s = Map::new();
        s.insert("role".into(), Value::from("agent"));
        s.insert("bid".into(), Value::from(ag.bid.as_str()));
        s.insert("customer_id".into(), Value::from(ag.agent_id.as_str()));
        s.insert("customer_name".into(), Value::from(ag.name.as_str()));
        let _ = cx.set_session(id, s);
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
        let _ = cx.join_group(id, &group);
        self.set_role(
            id,
            Role::Agent(AgentMe {
                bid: ag.bid.clone(),
                id: ag.agent_id.clone(),
                name: ag.name.clone(),
            }),
        );
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
        let q = &a.routed.queue;
        send(
            cx,
            id,
            &Out::Login {
                customer_id: &ag.agent_id,
                customer_name: &ag.name,
                timestamp: ts,
                customer_list: &list,
                conversations: &convs,
                queue: &q[..q.len().min(routing::QUEUE_SHOWN)],
            },
        );
        // Only what changed: conversations assigned to this agent are already in its list,
        // but visitors and colleagues need to hear about them.
        if !a.routed.assigned.is_empty() {
            push_routed(cx, &a.routed);
        }
        let me = Access2::Agent(ag.bid.clone());
        for r in resume {
            self.sync(cx, id, me.clone(), r.conv_id, r.last_seq);
        }
    }
}
