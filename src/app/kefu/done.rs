//! What comes back from the store: finished jobs, their outcomes, and where they go
//! ([`deliver`], over the app's [`Shared`] state).

use super::auth::Secret;
use super::history::Missed;
use super::login::{AgentIn, VisitorIn};
use super::presence::{push_requeued, Requeued};
use super::push::{fan_message, mark_online, push_routed, push_to_dept, push_uid, send};
use super::request::{store_error, Refusal, Req, Side};
use super::routing::{Brief, Closed, ReadMark, Routed, VisitorSent};
use super::shared::{Role, Shared};
use super::transfer::ToDept;
use super::wire::{Code, ConvOut, MessageOut, Out, QueueEntry, Resume};
use super::{admin, agent, agent_uid, desk, http, revoke, upload, visitor, visitor_uid, ClientId};
use crate::api::Ctx;
use crate::protocol::http::response::Response;
use crate::store::tenancy::Agent;
use crate::store::StoreError;

/// Where a store answer goes.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    /// A WebSocket request.
    Ws(Req),
    /// An HTTP request on connection `.0`.
    Http(ClientId, HttpCall),
    /// The periodic drain (nobody waits for it).
    Drain,
    /// The app's own upkeep after an admin change: key reload, revocation sweep.
    Admin,
    /// The periodic removal of unreferenced uploads (nobody waits for it).
    Sweep,
}

/// Which store thread runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// The group-commit writer: all SQL of the conversation flow.
    Writer,
    /// The plain thread for slow work that would hold up the writer's batches.
    Aux,
    /// Password checks (argon2): their own thread and short queue, so a flood of logins
    /// cannot delay uploads, served files or anything else.
    Login,
    /// Search, lists and reports: reads that may scan, on their own thread and short queue,
    /// so a heavy report delays no upload, served file or conversation.
    Query,
}

impl Origin {
    /// The thread its jobs run on.
    pub(super) fn lane(&self) -> Lane {
        match self {
            Origin::Http(_, c) => c.lane(),
            Origin::Ws(_) | Origin::Drain => Lane::Writer,
            // Reads only: no need to wait for (or hold up) the writer's batches.
            Origin::Admin => Lane::Aux,
            Origin::Sweep => Lane::Aux,
        }
    }
}

/// The HTTP API's calls that go to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HttpCall {
    /// `POST /api/agent/login`.
    AgentLogin,
    /// `POST /api/visitor/token`.
    VisitorToken,
    /// `GET /api/history`.
    History,
    /// `POST /api/upload`.
    Upload,
    /// `GET /uploads/*`.
    File,
    /// `GET /api/business/profile`.
    Profile,
    /// `POST /api/business/settings`.
    Settings,
    /// `POST /api/admin` (on the writer).
    Admin,
    /// `POST /api/admin` calls that hash a password.
    AdminHash,
    /// `GET|POST /api/canned`.
    Canned,
    /// `GET|POST /api/notes`.
    Notes,
    /// `POST /api/rating`.
    Rating,
    /// `GET|POST /api/hours`.
    Hours,
    /// `POST /api/offline`.
    Offline,
    /// The closed list, search and visitor profiles (`insight.rs`).
    Search,
    /// `GET /api/reports`.
    Reports,
    /// `/api/webhooks*`.
    Webhooks,
}

impl HttpCall {
    /// Argon2 and file I/O take milliseconds: on the writer they would delay every batch.
    fn lane(self) -> Lane {
        match self {
            HttpCall::AgentLogin | HttpCall::AdminHash => Lane::Login,
            HttpCall::Upload | HttpCall::File | HttpCall::Profile => Lane::Aux,
            HttpCall::Search | HttpCall::Reports => Lane::Query,
            // Small reads and rare small writes: off the writer's batches.
            HttpCall::Webhooks => Lane::Aux,
            HttpCall::VisitorToken
            | HttpCall::History
            | HttpCall::Settings
            | HttpCall::Admin
            | HttpCall::Canned
            | HttpCall::Notes
            | HttpCall::Rating
            | HttpCall::Hours
            | HttpCall::Offline => Lane::Writer,
        }
    }

    /// Whether its answers carry CORS headers: the widget's calls do; the agent login does
    /// not, so no other site can guess passwords from its visitors' browsers.
    pub(super) fn cors(self) -> bool {
        self != HttpCall::AgentLogin
    }

    /// Its name in the log.
    fn as_str(self) -> &'static str {
        match self {
            HttpCall::AgentLogin => "agent_login_http",
            HttpCall::VisitorToken => "visitor_token_http",
            HttpCall::History => "history_http",
            HttpCall::Upload => "upload",
            HttpCall::File => "file",
            HttpCall::Profile => "profile_http",
            HttpCall::Settings => "settings_http",
            HttpCall::Admin | HttpCall::AdminHash => "admin_http",
            HttpCall::Canned => "canned_http",
            HttpCall::Notes => "notes_http",
            HttpCall::Rating => "rating_http",
            HttpCall::Hours => "hours_http",
            HttpCall::Offline => "offline_http",
            HttpCall::Search => "search_http",
            HttpCall::Reports => "reports_http",
            HttpCall::Webhooks => "webhooks_http",
        }
    }
}

/// A finished store job.
pub(super) struct Done {
    /// Where its answer goes.
    pub(super) to: Origin,
    /// Its result.
    pub(super) res: Result<Outcome, StoreError>,
}

/// A password check: who tried from where, and the agent if the password was right.
#[derive(Debug)]
pub(super) struct LoginTry {
    /// Business.
    pub(super) bid: String,
    /// Agent id.
    pub(super) agent_id: String,
    /// The client's address key (limits).
    pub(super) ip: String,
    /// The agent, when the password matched.
    pub(super) agent: Option<Agent>,
}

/// What a store job found or did.
pub(super) enum Outcome {
    HttpAgentLogin(Box<LoginTry>),
    HttpVisitorToken(Box<VisitorIn>),
    HttpHistory(i64, Vec<MessageOut>, bool),
    HttpUploaded(upload::Stored),
    HttpUploadRefused(upload::Refused),
    HttpFile(Response),
    /// An HTTP answer the job built itself (`face.rs`).
    HttpReady(Response),
    /// An admin call (`admin.rs`).
    Admin(Box<admin::Done>),
    /// A desk answer and what goes out live after it (`desk.rs`).
    HttpDesk(Response, desk::After),
    AgentLogin(Box<AgentIn>, Vec<Resume>),
    VisitorLogin(Box<VisitorIn>, Vec<Resume>),
    /// A visitor's message; `true` if a new-conversation token was taken for it.
    VisitorSent(Box<VisitorSent>, bool),
    /// A visitor's message that would open a conversation over its IP's limit.
    ConvLimited,
    /// Unreferenced uploads removed.
    Swept(usize),
    AgentSent(Box<MessageOut>, String),
    History(i64, Vec<MessageOut>, bool),
    Sync(i64, Missed),
    Typing(Brief, bool, Side),
    Read(ReadMark, Side),
    Routed(Routed),
    /// A transfer to a department's line.
    ToDept(Box<ToDept>),
    Closed(Box<Closed>),
    Conversations(Vec<ConvOut>, Vec<QueueEntry>),
    /// The signing key as now stored (None: the cluster's key did not change).
    Key(Option<Secret>),
    /// Agent sessions `(bid, agent_id, generation)` whose row is gone or newer.
    Revoked(Vec<(String, String, i64)>),
    Requeued(Box<Requeued>),
}

/// Deliver a finished job's answer.
pub(super) fn deliver(sh: &mut Shared, cx: &mut Ctx<'_>, d: Done) {
    sh.finish(&d.to);
    let out = match d.res {
        Ok(o) => o,
        Err(e) => return failed(sh, cx, d.to, e),
    };
    match (d.to, out) {
        (Origin::Http(conn, call), o) => http::done(sh, cx, conn, call, o),
        (Origin::Drain, Outcome::Requeued(r)) => push_requeued(cx, &r),
        (Origin::Drain, Outcome::Routed(r)) => {
            if !r.assigned.is_empty() {
                push_routed(cx, &r);
            }
        }
        (Origin::Admin, o) => revoke::admin_done(sh, cx, o),
        (Origin::Sweep, Outcome::Swept(n)) if n > 0 => {
            crate::info!("kefu: removed {n} uploads no message referenced in time");
        }
        (Origin::Drain | Origin::Sweep, _) => {}
        (Origin::Ws(rq), o) => ws_done(sh, cx, &rq, o),
    }
}

fn failed(sh: &mut Shared, cx: &mut Ctx<'_>, to: Origin, e: StoreError) {
    let (code, status, msg) = store_error(&e);
    // Refusals are the client's business; anything else, and any failed drain, is ours.
    if code == Code::Storage || matches!(to, Origin::Drain | Origin::Admin | Origin::Sweep) {
        let what = match &to {
            Origin::Ws(rq) => rq.method.as_str(),
            Origin::Http(_, call) => call.as_str(),
            Origin::Drain => "drain",
            Origin::Admin => "admin",
            Origin::Sweep => "upload sweep",
        };
        crate::warn!("kefu {what}: {e}");
    }
    match to {
        Origin::Ws(rq) if rq.method.is_login() => {
            // Back to anonymous: the client may try again.
            sh.set_role(rq.id, Role::Anon);
            rq.fail(cx, &Refusal::Login(format!("登录失败: {msg}").into()));
        }
        Origin::Ws(rq) => rq.fail(cx, &Refusal::Store(e)),
        Origin::Http(conn, call) => {
            let (status, msg) = match (call, &e) {
                (HttpCall::AgentLogin, StoreError::NotFound) => {
                    (401, "wrong bid, agent id or password")
                }
                (HttpCall::VisitorToken, StoreError::Invalid(m)) => (401, *m),
                _ => (status, msg),
            };
            http::reply(cx, conn, call, http::error(status, code, msg));
        }
        Origin::Drain | Origin::Admin | Origin::Sweep => {}
    }
}

fn ws_done(sh: &mut Shared, cx: &mut Ctx<'_>, rq: &Req, o: Outcome) {
    let (id, cm) = (rq.id, &rq.client_msg_id);
    match o {
        Outcome::AgentLogin(a, resume) => agent::logged_in(sh, cx, id, *a, resume),
        Outcome::VisitorLogin(v, resume) => visitor::logged_in(sh, cx, id, *v, resume),
        Outcome::VisitorSent(s, took) => {
            if took && s.routed.is_none() {
                // No conversation was opened after all: give the token back.
                sh.refund_conv(id);
            }
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
            let Some(Role::LoggedIn(me)) = sh.role(id).cloned() else {
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
            let Some(Role::LoggedIn(me)) = sh.role(id).cloned() else {
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
        Outcome::Typing(b, typing, from) => {
            let to = match from {
                Side::Agent => Some(visitor_uid(&b.bid, &b.visitor_id)),
                Side::Visitor => b.phase.agent_id().map(|a| agent_uid(&b.bid, a)),
            };
            let from = from.as_str();
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
        Outcome::Read(r, by) => {
            let b = &r.brief;
            if by == Side::Agent {
                push_uid(
                    cx,
                    &visitor_uid(&b.bid, &b.visitor_id),
                    &Out::Read {
                        conv_id: b.id,
                        by: "agent",
                        seq: r.seq,
                    },
                );
                if let Some(a) = b.phase.agent_id() {
                    push_uid(
                        cx,
                        &agent_uid(&b.bid, a),
                        &Out::Unread {
                            conv_id: b.id,
                            unread: r.unread,
                        },
                    );
                }
            } else if let Some(a) = b.phase.agent_id() {
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
        Outcome::ConvLimited => {
            let l = sh.conv_limited(id, cx.now());
            rq.fail(cx, &Refusal::Limited(l));
        }
        Outcome::Routed(r) => push_routed(cx, &r),
        Outcome::Closed(c) => {
            let b = &c.brief;
            fan_message(cx, &b.bid, &b.visitor_id, b.phase.agent_id(), &c.event);
            if let Some(a) = b.phase.agent_id() {
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
                    queue: &agent::shown(&queue),
                },
            )
        }
        Outcome::ToDept(t) => push_to_dept(cx, &t),
        Outcome::HttpAgentLogin(_)
        | Outcome::HttpVisitorToken(_)
        | Outcome::HttpHistory(..)
        | Outcome::HttpUploaded(..)
        | Outcome::HttpUploadRefused(_)
        | Outcome::HttpFile(_)
        | Outcome::HttpReady(_)
        | Outcome::Admin(_)
        | Outcome::HttpDesk(..)
        | Outcome::Key(_)
        | Outcome::Revoked(_)
        | Outcome::Swept(_)
        | Outcome::Requeued(_) => {
            crate::warn!(
                "kefu: unexpected outcome for websocket request {}",
                rq.method.as_str()
            );
        }
    }
}
