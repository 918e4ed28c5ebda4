//! Visitor connections: requests, and what a visitor hears once logged in.

use super::auth::{Claims, Role as TokenRole};
use super::done::{Origin, Outcome};
use super::history::{self, Sender};
use super::login::VisitorIn;
use super::push::{bad_cmid, err, send};
use super::routing::{self, Access, Closer};
use super::wire::{Code, In, Out, Resume};
use super::{visitor_uid, Access2, ClientId, Kefu, Role};
use crate::api::Ctx;
use crate::store::{now_ms, StoreError};
use serde_json::{Map, Value};

/// A logged-in visitor connection.
#[derive(Debug, Clone)]
pub(super) struct VisitorMe {
    pub(super) bid: String,
    pub(super) id: String,
    pub(super) name: String,
}

impl Kefu {
    pub(super) fn visitor_request(
        &mut self,
        cx: &mut Ctx<'_>,
        id: ClientId,
        me: VisitorMe,
        req: In,
    ) {
        let o = Origin::Ws(id);
        let p = self.policy();
        match req {
            In::Send {
                client_msg_id,
                kind,
                text,
                url,
                ..
            } => {
                if let Some(m) = bad_cmid(&client_msg_id) {
                    return err(cx, id, Code::Invalid, m, Some("send"), None);
                }
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
                let online = Self::online_agents(cx, &me.bid);
                let cm = client_msg_id.clone();
                self.submit(cx, false, o, "send", client_msg_id, move |c| {
                    let s = Sender {
                        role: "visitor",
                        id: &me.id,
                        name: &me.name,
                    };
                    routing::visitor_send(c, &me.bid, s, &body, cm.as_deref(), &online, p, now_ms())
                        .map(|s| Outcome::VisitorSent(Box::new(s)))
                });
            }
            In::History {
                conv_id,
                before_seq,
                limit,
            } => self.submit(cx, false, o, "history", None, move |c| {
                routing::readable(c, conv_id, Access::Visitor(&me.bid, &me.id))?;
                let (m, more) = history::page(
                    c,
                    conv_id,
                    before_seq,
                    limit.unwrap_or(history::DEFAULT_PAGE),
                )?;
                Ok(Outcome::History(conv_id, m, more))
            }),
            In::Sync { conv_id, last_seq } => {
                self.sync(cx, id, Access2::Visitor(me.bid, me.id), conv_id, last_seq)
            }
            In::Typing { conv_id, typing } => self.submit(cx, false, o, "typing", None, move |c| {
                let conv_id = match conv_id {
                    Some(i) => i,
                    None => {
                        routing::open_of_visitor(c, &me.bid, &me.id)?.ok_or(StoreError::NotFound)?
                    }
                };
                let b = routing::readable(c, conv_id, Access::Visitor(&me.bid, &me.id))?;
                Ok(Outcome::Typing(b, typing))
            }),
            In::Read { conv_id, seq } => self.submit(cx, false, o, "read", None, move |c| {
                let b = routing::readable(c, conv_id, Access::Visitor(&me.bid, &me.id))?;
                Ok(Outcome::Read(routing::mark_read(c, &b, None, seq)?, false))
            }),
            In::Close { conv_id } => {
                let online = Self::online_agents(cx, &me.bid);
                self.submit(cx, false, o, "close", None, move |c| {
                    routing::close(
                        c,
                        &me.bid,
                        conv_id,
                        Closer::Visitor(&me.id),
                        &online,
                        p,
                        now_ms(),
                    )
                    .map(|c| Outcome::Closed(Box::new(c)))
                })
            }
            In::Claim { .. } | In::Transfer { .. } | In::Conversations => {
                err(cx, id, Code::NotLoggedIn, "agents only", None, None)
            }
            In::Beat | In::Login { .. } | In::VisitorLogin { .. } => {}
        }
    }

    /// A signed visitor token for `v` and its expiry (ms); `None` before the app started.
    pub(super) fn visitor_token(&self, v: &VisitorIn) -> Option<(String, i64)> {
        let secret = self.secret.as_ref()?;
        let exp = now_ms() + self.cfg.visitor_token_ttl.as_millis() as i64;
        let token = secret.sign(&Claims {
            r: TokenRole::Visitor,
            b: v.bid.clone(),
            s: v.visitor_id.clone(),
            exp,
            pv: 0,
            vf: v.verified,
        });
        Some((token, exp))
    }

    pub(super) fn visitor_logged_in(
        &mut self,
        cx: &mut Ctx<'_>,
        id: ClientId,
        v: VisitorIn,
        resume: Vec<Resume>,
    ) {
        if !self.conns.contains_key(&id) {
            return;
        }
        let Some((token, exp)) = self.visitor_token(&v) else {
            return;
        };
        let _ = cx.bind_uid(id, &visitor_uid(&v.bid, &v.visitor_id));
        let mut s = Map::new();
        s.insert("role".into(), Value::from("visitor"));
        s.insert("bid".into(), Value::from(v.bid.as_str()));
        s.insert("visitor_id".into(), Value::from(v.visitor_id.as_str()));
        let _ = cx.set_session(id, s);
        self.set_role(
            id,
            Role::Visitor(VisitorMe {
                bid: v.bid.clone(),
                id: v.visitor_id.clone(),
                name: v.name.clone(),
            }),
        );
        let agents_online = !Self::online_agents(cx, &v.bid).is_empty();
        send(
            cx,
            id,
            &Out::VisitorLogin {
                visitor_id: &v.visitor_id,
                token: &token,
                verified: v.verified,
                expires_at: exp,
                conv: v.conv.as_ref(),
                agents_online,
            },
        );
        if let (Some(c), Some(pos)) = (&v.conv, v.position) {
            send(
                cx,
                id,
                &Out::Waiting {
                    conv_id: c.conv_id,
                    position: pos,
                    agents_online,
                },
            );
        }
        let me = Access2::Visitor(v.bid.clone(), v.visitor_id.clone());
        for r in resume {
            self.sync(cx, id, me.clone(), r.conv_id, r.last_seq);
        }
    }
}
