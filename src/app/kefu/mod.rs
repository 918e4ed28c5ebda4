//! `kefu`: the customer-service app (docs/kefu-protocol.md).
//!
//! Each worker process runs one [`Kefu`]. Shared truth lives in two places: presence
//! (who is online, in which tabs) in the gateway's uids and groups, everything else in the
//! SQLite store. The loop never waits on either: store work is queued to this worker's
//! store threads and finishes in [`App::on_wake`], where replies and pushes go out. Every
//! message is committed before anyone (its sender included) hears of it.
//!
//! Uids: `agent:<bid>:<agent_id>` (all tabs of an agent), `visitor:<bid>:<visitor_id>`.
//! Group: `agents:<bid>` (every agent connection of a business).

pub mod auth;
pub mod history;
pub mod http;
pub mod login;
pub mod routing;
pub mod upload;
pub mod wire;

use super::{App, ClientId, HttpOutcome, Payload, Reject, TimerId};
use crate::config::{Config, KefuConfig};
use crate::protocol::http::request::Request;
use crate::protocol::http::response::Response;
use crate::store::runner::{Mode, Runner};
use crate::store::tenancy::Agent;
use crate::store::{self, now_ms, valid_id, StoreError};
use crate::worker::ctx::Ctx;
use auth::{Claims, Role as TokenRole, Secret};
use history::{Body, Missed, Sender};
use login::{AgentIn, Ident, Meta, VisitorIn};
use routing::{Access, Brief, Closed, Closer, Policy, ReadMark, Routed, VisitorSent};
use rusqlite::Connection;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::{Code, ConvOut, CustomerEntry, ErrorOut, In, MessageOut, Out, QueueEntry, Resume};

/// Largest frame the app parses (text is limited further by `max_text_chars`).
pub const MAX_FRAME: usize = 64 * 1024;
/// Most store requests one connection may have in flight.
const MAX_INFLIGHT: u32 = 64;
/// Store queue length per worker (requests beyond it are refused with 10008).
const QUEUE_CAP: usize = 8192;
/// Longest client_msg_id, bytes.
const MAX_CLIENT_MSG_ID: usize = 64;
/// Most entries in a login's resume list.
const MAX_RESUME: usize = 100;
/// How often each worker re-runs routing for businesses with agents here (a safety net for
/// presence changes seen late through the gateway's replication).
const DRAIN_EVERY: Duration = Duration::from_secs(5);

/// The uid of an agent (all its tabs).
pub fn agent_uid(bid: &str, id: &str) -> String {
    format!("agent:{bid}:{id}")
}

/// The uid of a visitor (all its tabs).
pub fn visitor_uid(bid: &str, id: &str) -> String {
    format!("visitor:{bid}:{id}")
}

/// The group of a business's agent connections.
pub fn agents_group(bid: &str) -> String {
    format!("agents:{bid}")
}

#[derive(Debug, Clone)]
struct AgentMe {
    bid: String,
    id: String,
    name: String,
}

#[derive(Debug, Clone)]
struct VisitorMe {
    bid: String,
    id: String,
    name: String,
}

#[derive(Debug, Clone)]
enum Role {
    /// Connected, not logged in.
    Anon,
    /// Login sent to the store.
    Pending,
    Agent(AgentMe),
    Visitor(VisitorMe),
}

#[derive(Debug)]
struct Conn {
    role: Role,
    ip: String,
    user_agent: String,
    inflight: u32,
    tokens: f64,
    refill: Instant,
}

impl Conn {
    fn new(ip: String, user_agent: String, now: Instant, burst: f64) -> Conn {
        Conn {
            role: Role::Anon,
            ip,
            user_agent,
            inflight: 0,
            tokens: burst,
            refill: now,
        }
    }

    /// Token bucket: false when the client sends faster than allowed.
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let dt = now.saturating_duration_since(self.refill).as_secs_f64();
        self.refill = now;
        self.tokens = (self.tokens + dt * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Where a store answer goes.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Ws(ClientId),
    Http(ClientId),
    Internal,
}

/// A finished store job.
struct Done {
    origin: Origin,
    method: &'static str,
    client_msg_id: Option<String>,
    res: Result<Outcome, StoreError>,
}

enum Outcome {
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

/// The customer-service app of one worker.
pub struct Kefu {
    cfg: KefuConfig,
    data_dir: PathBuf,
    secret: Option<Secret>,
    /// Group-commit writer (all SQL of the conversation flow).
    writer: Option<Runner<Done>>,
    /// Slow work off the writer: argon2, upload files.
    aux: Option<Runner<Done>>,
    conns: HashMap<ClientId, Conn>,
    drain_timer: Option<TimerId>,
}

impl Kefu {
    /// The app for `cfg` (the store opens in `on_worker_start`).
    pub fn new(cfg: &Config) -> Kefu {
        Kefu {
            cfg: cfg.kefu.clone(),
            data_dir: cfg.data_dir.clone(),
            secret: None,
            writer: None,
            aux: None,
            conns: HashMap::new(),
            drain_timer: None,
        }
    }

    fn policy(&self) -> Policy {
        Policy {
            policy: self.cfg.policy,
            max_per_agent: i64::from(self.cfg.max_per_agent),
        }
    }

    fn start(&mut self, cx: &mut Ctx<'_>) -> Result<(), String> {
        let secret = Secret::load_or_create(&self.data_dir)
            .map_err(|e| format!("secret in {}: {e}", self.data_dir.display()))?;
        let open = || {
            store::open(&self.data_dir, self.cfg.synchronous)
                .map_err(|e| format!("store in {}: {e}", self.data_dir.display()))
        };
        let waker = cx.waker();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let _ = waker.wake();
        });
        let w = cx.worker_id();
        let writer = Runner::spawn(
            &format!("kefu-store-{w}"),
            open()?,
            Mode::Batch,
            QUEUE_CAP,
            wake.clone(),
        )
        .map_err(|e| e.to_string())?;
        let aux = Runner::spawn(&format!("kefu-aux-{w}"), open()?, Mode::Plain, 1024, wake)
            .map_err(|e| e.to_string())?;
        self.secret = Some(secret);
        self.writer = Some(writer);
        self.aux = Some(aux);
        Ok(())
    }

    /// Queue a job on the writer (or `aux`); answers Busy/Storage right away if impossible.
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        cx: &mut Ctx<'_>,
        on_aux: bool,
        origin: Origin,
        method: &'static str,
        client_msg_id: Option<String>,
        work: impl FnOnce(&Connection) -> store::Result<Outcome> + Send + 'static,
    ) {
        if let Origin::Ws(id) = origin {
            match self.conns.get_mut(&id) {
                Some(c) if c.inflight >= MAX_INFLIGHT => {
                    return err(
                        cx,
                        id,
                        Code::Busy,
                        "too many requests in flight",
                        Some(method),
                        client_msg_id.as_deref(),
                    );
                }
                Some(c) => c.inflight += 1,
                None => return,
            }
        }
        let runner = if on_aux { &self.aux } else { &self.writer };
        let cm = client_msg_id.clone();
        let r = match runner {
            Some(r) => r.submit(
                move |c| {
                    work(c).map(|o| Done {
                        origin,
                        method,
                        client_msg_id: cm,
                        res: Ok(o),
                    })
                },
                move |e| Done {
                    origin,
                    method,
                    client_msg_id,
                    res: Err(e),
                },
            ),
            None => Err(store::runner::Busy),
        };
        if r.is_err() {
            self.finish(origin);
            match origin {
                Origin::Ws(id) => err(cx, id, Code::Busy, "server busy, retry", Some(method), None),
                Origin::Http(conn) => {
                    cx.respond_http(conn, &http::error(503, Code::Busy, "server busy"));
                }
                Origin::Internal => {}
            }
        }
    }

    fn finish(&mut self, origin: Origin) {
        if let Origin::Ws(id) = origin {
            if let Some(c) = self.conns.get_mut(&id) {
                c.inflight = c.inflight.saturating_sub(1);
            }
        }
    }

    fn role(&self, id: ClientId) -> Option<&Role> {
        self.conns.get(&id).map(|c| &c.role)
    }

    /// Agent ids of a business online anywhere in the cluster (from the gateway replica).
    fn online_agents(cx: &Ctx<'_>, bid: &str) -> Vec<String> {
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

    // ----- requests -----

    fn handle(&mut self, cx: &mut Ctx<'_>, id: ClientId, req: In) {
        let role = match self.role(id) {
            Some(r) => r.clone(),
            None => return,
        };
        match (req, role) {
            (In::Beat, _) => {}
            (
                In::Login {
                    bid,
                    customer_id,
                    token,
                    resume,
                    ..
                },
                Role::Anon,
            ) => self.agent_login(cx, id, bid, customer_id, token, resume),
            (
                In::VisitorLogin {
                    bid,
                    token,
                    visitor_id,
                    name,
                    ts,
                    sig,
                    page_url,
                    referrer,
                    resume,
                },
                Role::Anon,
            ) => {
                let ident = match (token, visitor_id, ts, sig) {
                    (Some(t), _, _, _) => match self.verify_token(&t, TokenRole::Visitor) {
                        Ok(c) => Ident::Token(c),
                        Err(m) => return login_failed(cx, id, "visitor_login", m),
                    },
                    (None, Some(visitor_id), Some(ts), Some(sig)) => Ident::Signed {
                        visitor_id,
                        name: name.clone().unwrap_or_default(),
                        ts,
                        sig,
                    },
                    (None, None, None, None) => Ident::Anonymous,
                    _ => {
                        return login_failed(
                            cx,
                            id,
                            "visitor_login",
                            "identity needs visitor_id, ts and sig",
                        )
                    }
                };
                let Some(bid) = bid.map(wire::StrOrNum::into_string).filter(|b| valid_id(b)) else {
                    return login_failed(cx, id, "visitor_login", "bid is required");
                };
                let (ip, ua) = self
                    .conns
                    .get(&id)
                    .map(|c| (c.ip.clone(), c.user_agent.clone()))
                    .unwrap_or_default();
                let meta = Meta {
                    ip,
                    user_agent: ua,
                    page_url: clip(page_url.unwrap_or_default(), 1024),
                    referrer: clip(referrer.unwrap_or_default(), 1024),
                    name: clip(name.unwrap_or_default().trim().to_string(), 64),
                };
                self.set_role(id, Role::Pending);
                let max_age = self.cfg.identity_max_age.as_secs() as i64;
                let resume = clip_resume(resume);
                self.submit(cx, false, Origin::Ws(id), "visitor_login", None, move |c| {
                    login::visitor(c, &bid, ident, &meta, max_age, now_ms())
                        .map(|v| Outcome::VisitorLogin(Box::new(v), resume))
                });
            }
            (In::Login { .. } | In::VisitorLogin { .. }, _) => err(
                cx,
                id,
                Code::Invalid,
                "already logged in on this connection",
                Some("login"),
                None,
            ),
            (_, Role::Anon | Role::Pending) => {
                err(cx, id, Code::NotLoggedIn, "login first", None, None)
            }
            (req, Role::Agent(me)) => self.agent_request(cx, id, me, req),
            (req, Role::Visitor(me)) => self.visitor_request(cx, id, me, req),
        }
    }

    fn verify_token(&self, token: &str, want: TokenRole) -> Result<Claims, &'static str> {
        let Some(secret) = &self.secret else {
            return Err("server not ready");
        };
        match secret.verify(token, now_ms()) {
            Ok(c) if c.r == want => Ok(c),
            Ok(_) => Err("wrong kind of token"),
            Err(auth::TokenError::Expired) => Err("token expired"),
            Err(_) => Err("invalid token"),
        }
    }

    fn set_role(&mut self, id: ClientId, role: Role) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.role = role;
        }
    }

    fn agent_login(
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

    /// Validate a send's body.
    fn body(
        &self,
        kind: wire::SendKind,
        text: Option<String>,
        url: Option<String>,
    ) -> Result<Body, &'static str> {
        match kind {
            wire::SendKind::Text => {
                let t = text.ok_or("text is required")?;
                if t.trim().is_empty() {
                    return Err("text is empty");
                }
                if t.chars().count() > self.cfg.max_text_chars {
                    return Err("text too long");
                }
                Ok(Body::Text(t))
            }
            wire::SendKind::Image => {
                let u = url.ok_or("url is required")?;
                if !upload::valid_url(&u) {
                    return Err("url must come from /api/upload");
                }
                Ok(Body::Image(u))
            }
        }
    }

    fn agent_request(&mut self, cx: &mut Ctx<'_>, id: ClientId, me: AgentMe, req: In) {
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

    fn visitor_request(&mut self, cx: &mut Ctx<'_>, id: ClientId, me: VisitorMe, req: In) {
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

    fn sync(&mut self, cx: &mut Ctx<'_>, id: ClientId, who: Access2, conv_id: i64, last_seq: i64) {
        let gap = self.cfg.resume_max_gap.min(i64::MAX as u64) as i64;
        self.submit(cx, false, Origin::Ws(id), "sync", None, move |c| {
            routing::readable(c, conv_id, who.borrow())?;
            Ok(Outcome::Sync(
                conv_id,
                history::since(c, conv_id, last_seq, gap)?,
            ))
        });
    }

    // ----- answers -----

    fn done(&mut self, cx: &mut Ctx<'_>, d: Done) {
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

    fn agent_logged_in(&mut self, cx: &mut Ctx<'_>, id: ClientId, a: AgentIn, resume: Vec<Resume>) {
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

    fn visitor_logged_in(
        &mut self,
        cx: &mut Ctx<'_>,
        id: ClientId,
        v: VisitorIn,
        resume: Vec<Resume>,
    ) {
        if !self.conns.contains_key(&id) {
            return;
        }
        let Some(secret) = &self.secret else { return };
        let exp = now_ms() + self.cfg.visitor_token_ttl.as_millis() as i64;
        let token = secret.sign(&Claims {
            r: TokenRole::Visitor,
            b: v.bid.clone(),
            s: v.visitor_id.clone(),
            exp,
            pv: 0,
            vf: v.verified,
        });
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

    fn drain_tick(&mut self, cx: &mut Ctx<'_>) {
        let bids: HashSet<String> = self
            .conns
            .values()
            .filter_map(|c| match &c.role {
                Role::Agent(a) => Some(a.bid.clone()),
                _ => None,
            })
            .collect();
        let p = self.policy();
        for bid in bids {
            let online = Self::online_agents(cx, &bid);
            self.submit(cx, false, Origin::Internal, "drain", None, move |c| {
                routing::drain(c, &bid, &online, p, now_ms()).map(Outcome::Routed)
            });
        }
    }
}

/// Owned access rights (moved into jobs).
#[derive(Debug, Clone)]
enum Access2 {
    Agent(String),
    Visitor(String, String),
}

impl Access2 {
    fn borrow(&self) -> Access<'_> {
        match self {
            Access2::Agent(b) => Access::Agent(b),
            Access2::Visitor(b, v) => Access::Visitor(b, v),
        }
    }
}

fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut i = max;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
    s
}

fn clip_resume(mut r: Vec<Resume>) -> Vec<Resume> {
    r.truncate(MAX_RESUME);
    r
}

fn bad_cmid(c: &Option<String>) -> Option<&'static str> {
    match c {
        Some(c) if c.is_empty() || c.len() > MAX_CLIENT_MSG_ID => {
            Some("client_msg_id must be 1..64 bytes")
        }
        _ => None,
    }
}

fn send(cx: &mut Ctx<'_>, id: ClientId, o: &Out<'_>) {
    cx.send_to_client(id, Payload::Text(&o.to_json()));
}

fn push_uid(cx: &mut Ctx<'_>, uid: &str, o: &Out<'_>) {
    cx.send_to_uid(&[uid], Payload::Text(&o.to_json()));
}

fn err(
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

fn login_failed(cx: &mut Ctx<'_>, id: ClientId, method: &str, msg: &str) {
    err(cx, id, Code::LoginFailed, msg, Some(method), None)
}

fn mark_online(cx: &Ctx<'_>, convs: &mut [ConvOut]) {
    for c in convs {
        if let Some(v) = &mut c.visitor {
            v.online = cx.is_uid_online(&visitor_uid(&c.bid, &v.visitor_id));
        }
    }
}

/// A stored message to everyone in the conversation (every tab of both sides).
fn fan_message(
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
fn push_routed(cx: &mut Ctx<'_>, r: &Routed) {
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

impl App for Kefu {
    fn on_worker_start(&mut self, cx: &mut Ctx<'_>) {
        if let Err(e) = self.start(cx) {
            crate::error!("kefu: cannot start: {e}");
        }
        self.drain_timer = Some(cx.add_timer(DRAIN_EVERY, true, 0));
    }

    fn on_connect(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        let now = cx.core.now;
        let burst = self.cfg.rate_burst;
        self.conns.entry(id).or_insert_with(|| {
            let ip = cx
                .remote_addr(id)
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            Conn::new(ip, String::new(), now, burst)
        });
    }

    fn on_websocket_connect(
        &mut self,
        cx: &mut Ctx<'_>,
        id: ClientId,
        req: &Request,
    ) -> Result<(), Reject> {
        let mut ip = cx
            .remote_addr(id)
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        if self.cfg.trust_forwarded_for {
            if let Some(f) = req
                .header("x-forwarded-for")
                .and_then(|v| v.split(',').next())
            {
                if let Ok(a) = f.trim().parse::<std::net::IpAddr>() {
                    ip = a.to_string();
                }
            }
        }
        let ua = clip(req.header("user-agent").unwrap_or("").to_string(), 512);
        self.conns
            .insert(id, Conn::new(ip, ua, cx.core.now, self.cfg.rate_burst));
        Ok(())
    }

    fn on_message(&mut self, cx: &mut Ctx<'_>, id: ClientId, msg: Payload<'_>) {
        let now = cx.core.now;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let text = match msg {
            Payload::Text(t) => t,
            Payload::Binary(_) => {
                return err(
                    cx,
                    id,
                    Code::BadJson,
                    "binary frames are not part of the protocol",
                    None,
                    None,
                )
            }
        };
        if text.len() > MAX_FRAME {
            return err(cx, id, Code::Invalid, "frame too large", None, None);
        }
        let t = text.trim();
        if t == "beat" {
            return;
        }
        let allowed = conn.take(now, self.cfg.rate_per_sec, self.cfg.rate_burst);
        match serde_json::from_str::<In>(t) {
            Ok(req) if !allowed => {
                let (m, cm) = req.describe();
                err(cx, id, Code::Busy, "rate limited: slow down", Some(m), cm)
            }
            Ok(req) => self.handle(cx, id, req),
            Err(_) if !allowed => err(cx, id, Code::Busy, "rate limited: slow down", None, None),
            Err(e) => classify(cx, id, t, &e),
        }
    }

    fn on_close(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        if let Role::Agent(me) = c.role {
            let uid = agent_uid(&me.bid, &me.id);
            let others = cx.get_client_id_by_uid(&uid).into_iter().any(|c| c != id);
            if !others {
                let push = Out::LogoutPush {
                    customer_id: &me.id,
                    customer_name: &me.name,
                    timestamp: now_ms() / 1000,
                }
                .to_json();
                cx.send_to_group(&[&agents_group(&me.bid)], Payload::Text(&push), &[id]);
            }
        }
    }

    fn on_http(&mut self, cx: &mut Ctx<'_>, conn: ClientId, req: &Request) -> HttpOutcome {
        self.http(cx, conn, req)
    }

    fn on_wake(&mut self, cx: &mut Ctx<'_>) {
        // Bounded per wake so a flood of results cannot starve the loop's sockets; the
        // rest are taken on the next turn (the runner wakes again per batch).
        for _ in 0..4096 {
            let d = self
                .writer
                .as_ref()
                .and_then(Runner::try_recv)
                .or_else(|| self.aux.as_ref().and_then(Runner::try_recv));
            match d {
                Some(d) => self.done(cx, d),
                None => return,
            }
        }
        let _ = cx.waker().wake();
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_>, timer: TimerId, _tag: u64) {
        if Some(timer) == self.drain_timer {
            self.drain_tick(cx);
        }
    }

    fn on_worker_stop(&mut self, _cx: &mut Ctx<'_>) {
        // Let queued writes commit (and their acks be lost with the connections, which is
        // fine: a client retries with the same client_msg_id and gets the stored seq).
        if let Some(w) = &mut self.writer {
            w.shutdown();
        }
        if let Some(a) = &mut self.aux {
            a.shutdown();
        }
    }
}

/// Answer a frame that did not parse as a request: bad JSON, no method, unknown method,
/// or bad fields for a known method.
fn classify(cx: &mut Ctx<'_>, id: ClientId, t: &str, e: &serde_json::Error) {
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
