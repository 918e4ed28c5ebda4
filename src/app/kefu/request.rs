//! One WebSocket request from arrival to the store: its context ([`Req`], built once, echoed
//! by every answer and error), why it may be refused ([`Refusal`]), who sent it ([`Me`]), and
//! the request path agents and visitors share (free functions over the app's [`Shared`]
//! state).

use super::done::{Origin, Outcome};
use super::history::{self, Body, Sender};
use super::limits::Limited;
use super::presence::online_agents;
use super::push::bad_cmid;
use super::routing::{self, Access, Brief, Closer};
use super::shared::{business, Role, Shared};
use super::wire::{Code, ErrorOut, In, Method, Resume};
use super::{agent, agent_uid, upload, visitor_uid, ClientId, Payload};
use crate::api::Ctx;
use crate::store::{self, now_ms, valid_id, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A WebSocket request's context: who asked, which method, and (for `send`) the client's id
/// for it. Made once when the request arrives and carried to its answer, so an error from
/// anywhere on the way (loop, queue, store) echoes the same method and client_msg_id.
#[derive(Debug, Clone)]
pub(super) struct Req {
    /// The asking connection.
    pub(super) id: ClientId,
    /// The request's method.
    pub(super) method: Method,
    /// The `send`'s client_msg_id.
    pub(super) client_msg_id: Option<String>,
}

impl Req {
    /// The context of `req` from `id`.
    pub(super) fn new(id: ClientId, req: &In) -> Req {
        Req {
            id,
            method: req.method(),
            client_msg_id: req.client_msg_id().map(str::to_owned),
        }
    }

    /// A request the server makes for a client (a login's resume list is answered as `sync`s).
    pub(super) fn implied(id: ClientId, method: Method) -> Req {
        Req {
            id,
            method,
            client_msg_id: None,
        }
    }

    /// Where its store job's answer goes.
    pub(super) fn origin(&self) -> Origin {
        Origin::Ws(self.clone())
    }

    /// What its error frames echo.
    pub(super) fn echo(&self) -> Echo<'_> {
        Echo {
            method: Some(self.method.as_str()),
            client_msg_id: self.client_msg_id.as_deref(),
        }
    }

    /// Answer it with an error frame.
    pub(super) fn fail(&self, cx: &mut Ctx<'_>, r: &Refusal) {
        r.send(cx, self.id, self.echo());
    }
}

/// What an error frame echoes of the request it answers (nothing, when it did not parse).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Echo<'a> {
    /// The request's method (as sent, when unknown).
    pub(super) method: Option<&'a str>,
    /// The `send`'s client_msg_id.
    pub(super) client_msg_id: Option<&'a str>,
}

/// Why a WebSocket frame gets an error instead of an answer.
#[derive(Debug)]
pub(super) enum Refusal {
    /// A binary frame (10000).
    Binary,
    /// Text that is not a JSON object (10000).
    NotObject,
    /// An object without `method` (10001).
    NoMethod,
    /// `method` is not a string (10003).
    MethodNotString,
    /// A method nobody knows (10003), as sent.
    UnknownMethod(String),
    /// A known method with fields that do not parse (10002 for logins, else 10005).
    BadFields(Method, String),
    /// A frame over [`super::MAX_FRAME`] (10005).
    FrameTooLarge,
    /// Faster than the connection's token bucket allows (10008).
    RateLimited,
    /// Over a per-IP limit (10008, with `retry_after`).
    Limited(Limited),
    /// Anything but a login before logging in (10004).
    LoginFirst,
    /// A method for agents from a visitor (10004).
    AgentsOnly,
    /// A second login on one connection (10005).
    AlreadyLoggedIn,
    /// The login was refused (10002).
    Login(Cow<'static, str>),
    /// A field is unacceptable (10005).
    Invalid(&'static str),
    /// The transfer target is offline (10010).
    Offline,
    /// The connection already has [`super::MAX_INFLIGHT`] requests at the store (10008).
    TooManyInFlight,
    /// The store's queue is full or the store is not running (10008).
    ServerBusy,
    /// The store refused or failed (code by kind).
    Store(StoreError),
}

impl Refusal {
    /// Its error code.
    pub(super) fn code(&self) -> Code {
        match self {
            Refusal::Binary | Refusal::NotObject => Code::BadJson,
            Refusal::NoMethod => Code::NoMethod,
            Refusal::MethodNotString | Refusal::UnknownMethod(_) => Code::UnknownMethod,
            Refusal::BadFields(m, _) if m.is_login() => Code::LoginFailed,
            Refusal::Login(_) => Code::LoginFailed,
            Refusal::LoginFirst | Refusal::AgentsOnly => Code::NotLoggedIn,
            Refusal::BadFields(..)
            | Refusal::FrameTooLarge
            | Refusal::AlreadyLoggedIn
            | Refusal::Invalid(_) => Code::Invalid,
            Refusal::RateLimited
            | Refusal::Limited(_)
            | Refusal::TooManyInFlight
            | Refusal::ServerBusy => Code::Busy,
            Refusal::Offline => Code::Offline,
            Refusal::Store(e) => store_error(e).0,
        }
    }

    /// Its human-readable message.
    pub(super) fn msg(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            Refusal::Binary => "binary frames are not part of the protocol",
            Refusal::NotObject => "not a JSON object",
            Refusal::NoMethod => "缺少method参数 (missing method)",
            Refusal::MethodNotString => "method must be a string",
            Refusal::UnknownMethod(m) => return format!("unknown method {m:?}").into(),
            Refusal::BadFields(_, e) => return format!("bad fields: {e}").into(),
            Refusal::FrameTooLarge => "frame too large",
            Refusal::RateLimited => "rate limited: slow down",
            Refusal::Limited(l) => l.limit.msg(),
            Refusal::LoginFirst => "login first",
            Refusal::AgentsOnly => "agents only",
            Refusal::AlreadyLoggedIn => "already logged in on this connection",
            Refusal::Login(m) => m,
            Refusal::Invalid(m) => m,
            Refusal::Offline => "that agent is offline",
            Refusal::TooManyInFlight => "too many requests in flight",
            Refusal::ServerBusy => "server busy, retry",
            Refusal::Store(e) => store_error(e).2,
        })
    }

    /// Send it to `id` as an error frame.
    pub(super) fn send(&self, cx: &mut Ctx<'_>, id: ClientId, echo: Echo<'_>) {
        let msg = self.msg();
        let e = ErrorOut {
            code: self.code().as_str(),
            msg: &msg,
            method: echo.method,
            client_msg_id: echo.client_msg_id,
            retry_after: match self {
                Refusal::Limited(l) => Some(l.retry_secs()),
                _ => None,
            },
        };
        if let Ok(s) = serde_json::to_string(&e) {
            cx.send_to_client(id, Payload::Text(&s));
        }
    }
}

/// How a store error reads to clients: code, HTTP status, message. Only refusals say what
/// went wrong; anything else is "nothing was done" (details go to the log, not the client).
pub(super) fn store_error(e: &StoreError) -> (Code, u16, &'static str) {
    match e {
        StoreError::NotFound => (Code::NotFound, 404, "not found"),
        StoreError::Conflict(m) => (Code::Conflict, 409, m),
        StoreError::Invalid(m) => (Code::Invalid, 400, m),
        StoreError::Revoked => (Code::LoginFailed, 401, "token revoked: log in again"),
        StoreError::Forbidden(m) => (Code::NotLoggedIn, 403, m),
        _ => (Code::Storage, 500, "storage error; nothing was done"),
    }
}

/// Which side of a conversation a logged-in connection is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// An agent (all conversations of its business are readable to it).
    Agent,
    /// A visitor (only its own conversations).
    Visitor,
}

impl Side {
    /// The word messages and pushes use for it (`from`, `sender_role`).
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Side::Agent => "agent",
            Side::Visitor => "visitor",
        }
    }
}

/// A logged-in connection's identity: everything the shared request path needs.
#[derive(Debug, Clone)]
pub(super) struct Me {
    /// Agent or visitor.
    pub(super) side: Side,
    /// Business.
    pub(super) bid: String,
    /// Agent or visitor id.
    pub(super) id: String,
    /// Display name.
    pub(super) name: String,
}

impl Me {
    /// The uid of all its connections.
    pub(super) fn uid(&self) -> String {
        match self.side {
            Side::Agent => agent_uid(&self.bid, &self.id),
            Side::Visitor => visitor_uid(&self.bid, &self.id),
        }
    }

    /// What it may read.
    pub(super) fn access(&self) -> Access<'_> {
        match self.side {
            Side::Agent => Access::Agent(&self.bid),
            Side::Visitor => Access::Visitor(&self.bid, &self.id),
        }
    }

    /// It as a message's sender.
    pub(super) fn sender(&self) -> Sender<'_> {
        Sender {
            role: self.side.as_str(),
            id: &self.id,
            name: &self.name,
        }
    }

    /// It as the closer of a conversation.
    pub(super) fn closer(&self) -> Closer<'_> {
        match self.side {
            Side::Agent => Closer::Agent(&self.id, &self.name),
            Side::Visitor => Closer::Visitor(&self.id),
        }
    }

    /// Typing and read receipts: an agent only in conversations assigned to it (a visitor's
    /// own conversation was already checked by [`routing::readable`]).
    fn check_mine(&self, b: &Brief) -> store::Result<()> {
        match self.side {
            Side::Agent if b.phase.agent_id() != Some(self.id.as_str()) => {
                Err(StoreError::Conflict("not your conversation"))
            }
            _ => Ok(()),
        }
    }
}

/// What a logged-in connection keeps in the gateway's session, where every worker can read
/// it (`on_peer_lost` and an agent login's `customer_list` read the agent fields by name), and
/// where a reload's successor finds the login again (`App::on_adopt`, see [`StoredLogin`]).
#[derive(Debug, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum Session<'a> {
    /// An agent, under the seed's names.
    Agent {
        bid: &'a str,
        customer_id: &'a str,
        customer_name: &'a str,
        /// The token generation the agent's row had at login (the revocation sweep's key).
        pw_ver: i64,
        /// The client's address as the app counts it (behind a trusted proxy, the forwarded one).
        ip: &'a str,
    },
    /// A visitor.
    Visitor {
        bid: &'a str,
        visitor_id: &'a str,
        visitor_name: &'a str,
        ip: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        dept: Option<&'a str>,
    },
}

impl<'a> Session<'a> {
    fn of(me: &'a Me, pw_ver: i64, ip: &'a str, dept: Option<&'a str>) -> Session<'a> {
        match me.side {
            Side::Agent => Session::Agent {
                bid: &me.bid,
                customer_id: &me.id,
                customer_name: &me.name,
                pw_ver,
                ip,
            },
            Side::Visitor => Session::Visitor {
                bid: &me.bid,
                visitor_id: &me.id,
                visitor_name: &me.name,
                ip,
                dept,
            },
        }
    }

    fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            // A struct-like enum of strings always serializes to an object.
            _ => Map::new(),
        }
    }
}

/// A login read back from the session [`Session`] wrote (a reload's successor rebuilding
/// its per-connection state).
#[derive(Debug, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub(super) enum StoredLogin {
    /// An agent.
    Agent {
        bid: String,
        customer_id: String,
        customer_name: String,
        #[serde(default)]
        pw_ver: i64,
        #[serde(default)]
        ip: String,
    },
    /// A visitor.
    Visitor {
        bid: String,
        visitor_id: String,
        #[serde(default)]
        visitor_name: String,
        #[serde(default)]
        ip: String,
        #[serde(default)]
        dept: Option<String>,
    },
}

impl StoredLogin {
    /// The login in `session`, if it holds one.
    pub(super) fn read(session: &Map<String, Value>) -> Option<StoredLogin> {
        serde_json::from_value(Value::Object(session.clone())).ok()
    }

    /// Who it is, its token generation (0 for visitors), its address and (visitors) its
    /// department.
    pub(super) fn into_parts(self) -> (Me, i64, String, Option<String>) {
        match self {
            StoredLogin::Agent {
                bid,
                customer_id,
                customer_name,
                pw_ver,
                ip,
            } => (
                Me {
                    side: Side::Agent,
                    bid,
                    id: customer_id,
                    name: customer_name,
                },
                pw_ver,
                ip,
                None,
            ),
            StoredLogin::Visitor {
                bid,
                visitor_id,
                visitor_name,
                ip,
                dept,
            } => (
                Me {
                    side: Side::Visitor,
                    bid,
                    id: visitor_id,
                    name: visitor_name,
                },
                0,
                ip,
                dept,
            ),
        }
    }
}

/// Where a `send` goes.
enum SendTo {
    /// An agent's: the conversation it names.
    Conv(i64),
    /// A visitor's: its open conversation, opened (in this department, and routed among
    /// these online agents) by its first message.
    Open(Vec<String>, Option<String>),
}

/// A logged-in connection's request: the methods both sides have, then the agents' own.
pub(super) fn request(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    rq: &Req,
    me: Me,
    req: In,
) -> Result<(), Refusal> {
    let p = sh.policy();
    match req {
        In::Send {
            conv_id,
            kind,
            text,
            url,
            dept,
            ..
        } => {
            if let Some(m) = bad_cmid(&rq.client_msg_id) {
                return Err(Refusal::Invalid(m));
            }
            let to = match (me.side, conv_id) {
                (Side::Agent, Some(c)) => SendTo::Conv(c),
                (Side::Agent, None) => return Err(Refusal::Invalid("conv_id is required")),
                (Side::Visitor, _) => {
                    let dept = match dept.filter(|d| !d.is_empty()) {
                        Some(d) if !valid_id(&d) => return Err(Refusal::Invalid("bad dept")),
                        Some(d) => Some(d),
                        None => sh.conns.get(&rq.id).and_then(|c| c.dept.clone()),
                    };
                    SendTo::Open(online_agents(cx, &me.bid), dept)
                }
            };
            let body = sh.body(kind, text, url).map_err(Refusal::Invalid)?;
            // A visitor's message counts against its address; whether it may open a new
            // conversation is decided here (a token taken now, given back if it did not
            // open one), so concurrent sends cannot all slip past the limit.
            let may_open = match &to {
                SendTo::Open(..) => sh.visitor_send_limits(rq.id, cx.now())?,
                SendTo::Conv(_) => false,
            };
            let cm = rq.client_msg_id.clone();
            sh.submit(cx, rq.origin(), business(&me.bid), move |c| {
                let (s, cm, now) = (me.sender(), cm.as_deref(), now_ms());
                let out = match to {
                    SendTo::Conv(conv_id) => {
                        routing::agent_send(c, &me.bid, conv_id, s, &body, cm, now)
                            .map(|(m, v)| Outcome::AgentSent(Box::new(m), v))?
                    }
                    SendTo::Open(online, dept) => {
                        if !may_open && routing::open_of_visitor(c, &me.bid, &me.id)?.is_none() {
                            return Ok(Outcome::ConvLimited);
                        }
                        let d = dept.as_deref();
                        routing::visitor_send(c, &me.bid, s, d, &body, cm, &online, p, now)
                            .map(|s| Outcome::VisitorSent(Box::new(s), may_open))?
                    }
                };
                if let Body::Image(u) = &body {
                    // Kept for good once a stored message shows it (see upload::sweep).
                    upload::mark_referenced(c, u)?;
                }
                Ok(out)
            });
        }
        In::History {
            conv_id,
            before_seq,
            limit,
        } => sh.submit(cx, rq.origin(), business(&me.bid), move |c| {
            routing::readable(c, conv_id, me.access())?;
            let limit = limit.unwrap_or(history::DEFAULT_PAGE);
            let (m, more) = history::page(c, conv_id, before_seq, limit)?;
            Ok(Outcome::History(conv_id, m, more))
        }),
        In::Sync { conv_id, last_seq } => sync(sh, cx, rq.clone(), me, conv_id, last_seq),
        In::Typing { conv_id, typing } => {
            // A visitor has one open conversation, so it may leave the id out; an agent
            // has many.
            if me.side == Side::Agent && conv_id.is_none() {
                return Err(Refusal::Invalid("conv_id is required"));
            }
            sh.submit(cx, rq.origin(), business(&me.bid), move |c| {
                let conv_id = match conv_id {
                    Some(i) => i,
                    None => {
                        routing::open_of_visitor(c, &me.bid, &me.id)?.ok_or(StoreError::NotFound)?
                    }
                };
                let b = routing::readable(c, conv_id, me.access())?;
                me.check_mine(&b)?;
                Ok(Outcome::Typing(b, typing, me.side))
            })
        }
        In::Read { conv_id, seq } => sh.submit(cx, rq.origin(), business(&me.bid), move |c| {
            let b = routing::readable(c, conv_id, me.access())?;
            me.check_mine(&b)?;
            let agent = (me.side == Side::Agent).then_some(me.id.as_str());
            Ok(Outcome::Read(
                routing::mark_read(c, &b, agent, seq)?,
                me.side,
            ))
        }),
        In::Close { conv_id } => {
            let online = online_agents(cx, &me.bid);
            sh.submit(cx, rq.origin(), business(&me.bid), move |c| {
                routing::close(c, &me.bid, conv_id, me.closer(), &online, p, now_ms())
                    .map(|c| Outcome::Closed(Box::new(c)))
            })
        }
        In::Claim { .. } | In::Transfer { .. } | In::Conversations => match me.side {
            Side::Agent => return agent::request(sh, cx, rq, me, req),
            Side::Visitor => return Err(Refusal::AgentsOnly),
        },
        // Answered before a connection is logged in (see `Kefu::handle`).
        In::Beat | In::Login(_) | In::VisitorLogin(_) => {}
    }
    Ok(())
}

/// Messages of a conversation after `last_seq` (a `sync`, or one entry of a login's
/// resume list).
pub(super) fn sync(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    rq: Req,
    me: Me,
    conv_id: i64,
    last_seq: i64,
) {
    let gap = sh.cfg.resume_max_gap.min(i64::MAX as u64) as i64;
    sh.submit(cx, rq.origin(), business(&me.bid), move |c| {
        routing::readable(c, conv_id, me.access())?;
        Ok(Outcome::Sync(
            conv_id,
            history::since(c, conv_id, last_seq, gap)?,
        ))
    });
}

/// The store accepted a login: bind the connection to `me`'s uid and session, and mark
/// it logged in.
pub(super) fn bind(sh: &mut Shared, cx: &mut Ctx<'_>, id: ClientId, me: &Me) {
    let _ = cx.bind_uid(id, &me.uid());
    let (pw_ver, ip, dept) = sh
        .conns
        .get(&id)
        .map(|c| (c.agent_gen, c.ip.clone(), c.dept.clone()))
        .unwrap_or_default();
    let session = Session::of(me, pw_ver, &ip, dept.as_deref());
    let _ = cx.set_session(id, session.to_map());
    cx.authenticated(id);
    sh.set_role(id, Role::LoggedIn(me.clone()));
}

/// After a login: answer its resume list as `sync`s.
pub(super) fn resume(sh: &mut Shared, cx: &mut Ctx<'_>, id: ClientId, me: &Me, list: Vec<Resume>) {
    for r in list {
        let rq = Req::implied(id, Method::Sync);
        sync(sh, cx, rq, me.clone(), r.conv_id, r.last_seq);
    }
}
