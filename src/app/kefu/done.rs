//! What comes back from the store: finished jobs, their outcomes, and where they go.

use super::history::Missed;
use super::login::{AgentIn, VisitorIn};
use super::push::{err, fan_message, login_failed, mark_online, push_routed, push_uid, send};
use super::routing::{self, Brief, Closed, ReadMark, Routed, VisitorSent};
use super::wire::{Code, ConvOut, MessageOut, Out, QueueEntry, Resume};
use super::{agent_uid, http, upload, visitor_uid, ClientId, Kefu, Role};
use crate::api::Ctx;
use crate::protocol::http::response::Response;
use crate::store::tenancy::Agent;
use crate::store::StoreError;

/// Where a store answer goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin {
    Ws(ClientId),
    Http(ClientId),
    Internal,
}

/// A finished store job.
pub(super) struct Done {
    pub(super) origin: Origin,
    pub(super) method: &'static str,
    pub(super) client_msg_id: Option<String>,
    pub(super) res: Result<Outcome, StoreError>,
}

pub(super) enum Outcome {
    HttpAgentLogin(Agent),
    HttpVisitorToken(Box<VisitorIn>),
    HttpHistory(i64, Vec<MessageOut>, bool),
    HttpUploaded(String, upload::ImageType, usize),
    HttpFile(Response),
    AgentLogin(Box<AgentIn>, Vec<Resume>),
    VisitorLogin(Box<VisitorIn>, Vec<Resume>),
    VisitorSent(Box<VisitorSent>),
    AgentSent(Box<MessageOut>, String),
    History(i64, Vec<MessageOut>, bool),
    Sync(i64, Missed),
    Typing(Brief, bool),
    Read(ReadMark, bool),
    Routed(Routed),
    Closed(Box<Closed>),
    Conversations(Vec<ConvOut>, Vec<QueueEntry>),
}

impl Kefu {
    pub(super) fn done(&mut self, cx: &mut Ctx<'_>, d: Done) {
        self.finish(d.origin);
        let Done {
            origin,
            method,
            client_msg_id,
            res,
        } = d;
        let out = match res {
            Ok(o) => o,
            Err(e) => return self.failed(cx, origin, method, client_msg_id.as_deref(), e),
        };
        match (origin, out) {
            (Origin::Http(conn), o) => self.http_done(cx, conn, o),
            (_, Outcome::Routed(r)) if matches!(origin, Origin::Internal) => {
                if !r.assigned.is_empty() {
                    push_routed(cx, &r);
                }
            }
            (Origin::Ws(id), o) => self.ws_done(cx, id, method, client_msg_id, o),
            (Origin::Internal, _) => {}
        }
    }

    fn failed(
        &mut self,
        cx: &mut Ctx<'_>,
        origin: Origin,
        method: &'static str,
        cm: Option<&str>,
        e: StoreError,
    ) {
        let (code, status) = match &e {
            StoreError::NotFound => (Code::NotFound, 404),
            StoreError::Conflict(_) => (Code::Conflict, 409),
            StoreError::Invalid(_) => (Code::Invalid, 400),
            _ => {
                crate::warn!("kefu {method}: {e}");
                (Code::Storage, 500)
            }
        };
        let msg = match &e {
            StoreError::NotFound => "not found".to_string(),
            StoreError::Conflict(m) | StoreError::Invalid(m) => m.to_string(),
            _ => "storage error; nothing was done".to_string(),
        };
        match origin {
            Origin::Ws(id) => {
                if matches!(method, "login" | "visitor_login") {
                    // Back to anonymous: the client may try again.
                    self.set_role(id, Role::Anon);
                    return login_failed(cx, id, method, &format!("登录失败: {msg}"));
                }
                err(cx, id, code, &msg, Some(method), cm)
            }
            Origin::Http(conn) => {
                let (status, msg) = match (method, &e) {
                    ("agent_login_http", StoreError::NotFound) => {
                        (401, "wrong bid, agent id or password".to_string())
                    }
                    ("visitor_token_http", StoreError::Invalid(m)) => (401, m.to_string()),
                    _ => (status, msg),
                };
                cx.respond_http(conn, &http::error(status, code, &msg));
            }
            Origin::Internal => crate::warn!("kefu {method}: {e}"),
        }
    }

    fn ws_done(
        &mut self,
        cx: &mut Ctx<'_>,
        id: ClientId,
        method: &'static str,
        cm: Option<String>,
        o: Outcome,
    ) {
        match o {
            Outcome::AgentLogin(a, resume) => self.agent_logged_in(cx, id, *a, resume),
            Outcome::VisitorLogin(v, resume) => self.visitor_logged_in(cx, id, *v, resume),
            Outcome::VisitorSent(s) => {
                if let Some(r) = &s.routed {
                    push_routed(cx, r);
                }
                send(
                    cx,
                    id,
                    &Out::Ack {
                        client_msg_id: cm.as_deref(),
                        conv_id: s.msg.conv_id,
                        seq: s.msg.seq,
                        ts: s.msg.ts,
                    },
                );
                let Some(Role::Visitor(me)) = self.role(id).cloned() else {
                    return;
                };
                fan_message(cx, &me.bid, &me.id, s.agent_id.as_deref(), &s.msg);
            }
            Outcome::AgentSent(m, visitor_id) => {
                send(
                    cx,
                    id,
                    &Out::Ack {
                        client_msg_id: cm.as_deref(),
                        conv_id: m.conv_id,
                        seq: m.seq,
                        ts: m.ts,
                    },
                );
                let Some(Role::Agent(me)) = self.role(id).cloned() else {
                    return;
                };
                fan_message(cx, &me.bid, &visitor_id, Some(&me.id), &m);
            }
            Outcome::History(conv_id, messages, has_more) => send(
                cx,
                id,
                &Out::History {
                    conv_id,
                    messages: &messages,
                    has_more,
                },
            ),
            Outcome::Sync(conv_id, m) => send(
                cx,
                id,
                &Out::Sync {
                    conv_id,
                    messages: &m.messages,
                    last_seq: m.last_seq,
                    reload: m.reload,
                },
            ),
            Outcome::Typing(b, typing) => {
                let (from, to) = match self.role(id) {
                    Some(Role::Agent(_)) => ("agent", Some(visitor_uid(&b.bid, &b.visitor_id))),
                    _ => (
                        "visitor",
                        b.agent_id.as_deref().map(|a| agent_uid(&b.bid, a)),
                    ),
                };
                if let Some(to) = to {
                    push_uid(
                        cx,
                        &to,
                        &Out::Typing {
                            conv_id: b.id,
                            from,
                            typing,
                        },
                    );
                }
            }
            Outcome::Read(r, by_agent) => {
                let b = &r.brief;
                if by_agent {
                    push_uid(
                        cx,
                        &visitor_uid(&b.bid, &b.visitor_id),
                        &Out::Read {
                            conv_id: b.id,
                            by: "agent",
                            seq: r.seq,
                        },
                    );
                    if let Some(a) = &b.agent_id {
                        push_uid(
                            cx,
                            &agent_uid(&b.bid, a),
                            &Out::Unread {
                                conv_id: b.id,
                                unread: r.unread,
                            },
                        );
                    }
                } else if let Some(a) = &b.agent_id {
                    push_uid(
                        cx,
                        &agent_uid(&b.bid, a),
                        &Out::Read {
                            conv_id: b.id,
                            by: "visitor",
                            seq: r.seq,
                        },
                    );
                }
            }
            Outcome::Routed(r) => push_routed(cx, &r),
            Outcome::Closed(c) => {
                let b = &c.brief;
                fan_message(cx, &b.bid, &b.visitor_id, b.agent_id.as_deref(), &c.event);
                if let Some(a) = &b.agent_id {
                    push_uid(
                        cx,
                        &agent_uid(&b.bid, a),
                        &Out::Unassigned {
                            conv_id: b.id,
                            reason: "closed",
                            to: None,
                        },
                    );
                }
                push_routed(cx, &c.routed);
            }
            Outcome::Conversations(mut convs, queue) => {
                mark_online(cx, &mut convs);
                send(
                    cx,
                    id,
                    &Out::Conversations {
                        conversations: &convs,
                        queue: &queue[..queue.len().min(routing::QUEUE_SHOWN)],
                    },
                )
            }
            Outcome::HttpAgentLogin(_)
            | Outcome::HttpVisitorToken(_)
            | Outcome::HttpHistory(..)
            | Outcome::HttpUploaded(..)
            | Outcome::HttpFile(_) => {
                crate::warn!("kefu: http outcome for websocket request {method}");
            }
        }
    }
}
