//! `kefu`: the customer-service app (docs/kefu-protocol.md).
//!
//! Each worker process runs one [`Kefu`]. Shared truth lives in two places: presence
//! (who is online, in which tabs) in the gateway's uids and groups, everything else in the
//! SQLite store. The loop never waits on either: store work is queued to this worker's
//! store threads and finishes in [`App::on_wake`], where replies and pushes go out. Every
//! message is committed before anyone (its sender included) hears of it.
//!
//! Uids: `agent:<bid>:<agent_id>` (all tabs of an agent), `visitor:<bid>:<visitor_id>`.
//! Groups: `agents:<bid>` (every agent connection of a business), `dept:<bid>:<dept_id>`
//! (the agent connections of a department: its queue's changes), `visitors:<bid>` (every
//! visitor connection of a business: presence pushes, see `presence.rs`).
//!
//! Layout: [`Kefu`] (this file) takes the app's events and dispatches them. The state every
//! handler works on is one [`Shared`] (`shared.rs`: config, signing key, the store threads of
//! `jobs.rs`, the connections with their roles, the limits, the agents' away timers of
//! `presence.rs`); the handlers are free functions over it, one file per concern: `visitor.rs`
//! and `agent.rs` (logins, what each side hears), `request.rs` (the request path both sides
//! share), `http.rs` and `guarded.rs` (the HTTP API), `done.rs` (store results back to
//! clients), `revoke.rs` (closing revoked sessions). The store side is pure SQL functions
//! (`routing.rs`, `history.rs`, `login.rs`, `upload.rs`).

mod admin;
mod agent;
pub mod auth;
mod carry;
pub(crate) mod demo;
#[cfg(test)]
mod dept_tests;
mod desk;
mod done;
mod face;
mod guarded;
pub(crate) mod history;
pub(crate) mod hours;
pub(crate) mod http;
mod insight;
mod jobs;
pub(crate) mod limits;
pub(crate) mod login;
mod presence;
mod push;
pub(crate) mod queue;
mod request;
mod revoke;
pub(crate) mod routing;
#[cfg(test)]
mod routing_tests;
mod shared;
pub(crate) mod state;
pub(crate) mod strip;
pub(crate) mod transfer;
pub(crate) mod upload;
mod visitor;
pub(crate) mod webhook;
pub(crate) mod wire;

use crate::api::{
    AdminEvent, App, AppState, ClientId, ClientInfo, Ctx, HttpOutcome, Payload, Reject, Request,
    StartError, TimerId, Transport,
};
use crate::config::Config;
use crate::store::now_ms;
use done::{Origin, Outcome};
use presence::{online_agents, visitor_presence};
use push::{classify, clip};
use request::{Echo, Refusal, Req, Side};
use shared::{business, Conn, Role, Scope, Shared};
use std::collections::HashSet;
use std::time::Duration;
use wire::{In, Out};

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
/// Password checks queued per worker beyond the one running: argon2 takes tens of ms, so a
/// longer queue would only answer later than a client waits; the rest get 503 at once.
const LOGIN_QUEUE: usize = 16;

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

/// The group of the agent connections of one department (seed 003's department groups):
/// its queue's changes are broadcast there.
pub fn dept_group(bid: &str, dept: &str) -> String {
    format!("dept:{bid}:{dept}")
}

/// How long a new connection may stay without logging in (the pages log in at once).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Silence after which a client is closed when the config sets no `idle_timeout`.
const IDLE_TIMEOUT: Duration = Duration::from_secs(100);

/// Prefixes of the uids and groups above: only connections this app logged in carry them.
const RESERVED_PREFIXES: [&str; 5] = ["agent:", "visitor:", "agents:", "visitors:", "dept:"];

impl std::fmt::Debug for Kefu {
    // By hand: the signing secret must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kefu")
            .field("data_dir", &self.sh.data_dir)
            .field("store_open", &self.sh.store_open())
            .field("connections", &self.sh.conns.len())
            .finish_non_exhaustive()
    }
}

/// The customer-service app of one worker: the app's events, dispatched to the handlers
/// over its [`Shared`] state.
pub struct Kefu {
    sh: Shared,
    drain_timer: Option<TimerId>,
    sweep_timer: Option<TimerId>,
}

impl Kefu {
    /// The app for `cfg` (the store opens in `on_worker_start`).
    pub fn new(cfg: &Config) -> Kefu {
        Kefu {
            sh: Shared::new(cfg),
            drain_timer: None,
            sweep_timer: None,
        }
    }

    /// One parsed request: logins while anonymous, everything else once logged in.
    fn handle(&mut self, cx: &mut Ctx<'_>, id: ClientId, req: In) {
        let Some(role) = self.sh.role(id).cloned() else {
            return;
        };
        let sh = &mut self.sh;
        let rq = Req::new(id, &req);
        let r = match (req, role) {
            (In::Beat, _) => Ok(()),
            (In::Login(l), Role::Anon) => agent::login(sh, cx, &rq, l),
            (In::VisitorLogin(v), Role::Anon) => visitor::login(sh, cx, &rq, v),
            (In::Login(_) | In::VisitorLogin(_), _) => Err(Refusal::AlreadyLoggedIn),
            (_, Role::Anon | Role::Pending) => Err(Refusal::LoginFirst),
            (req, Role::LoggedIn(me)) => request::request(sh, cx, &rq, me, req),
        };
        if let Err(e) = r {
            rq.fail(cx, &e);
        }
    }

    /// Delete uploads nobody referenced in time (on the aux thread: file removals).
    fn sweep_tick(&mut self, cx: &mut Ctx<'_>) {
        let cutoff = now_ms() - self.sh.cfg.upload_orphan_after.as_millis() as i64;
        let dir = self.sh.data_dir.clone();
        self.sh.submit(cx, Origin::Sweep, Scope::All, move |c| {
            upload::sweep(c, &dir, cutoff).map(Outcome::Swept)
        });
    }

    /// Re-run routing for every business with an agent connected here.
    fn drain_tick(&mut self, cx: &mut Ctx<'_>) {
        let bids: HashSet<String> = self
            .sh
            .conns
            .values()
            .filter_map(|c| match &c.role {
                Role::LoggedIn(me) if me.side == Side::Agent => Some(me.bid.clone()),
                _ => None,
            })
            .collect();
        let p = self.sh.policy();
        for bid in bids {
            let online = online_agents(cx, &bid);
            self.sh.submit(cx, Origin::Drain, business(&bid), move |c| {
                routing::drain(c, &bid, &online, p, now_ms()).map(Outcome::Routed)
            });
        }
    }
}

impl App for Kefu {
    fn on_worker_start(&mut self, cx: &mut Ctx<'_>) -> Result<(), StartError> {
        // Serving without a store would leave every login unanswered: the worker stops, and
        // the master reports why (at start) or respawns it with back-off.
        self.sh.start(cx)?;
        self.drain_timer = Some(cx.add_timer(DRAIN_EVERY, true, 0));
        let orphan = self.sh.cfg.upload_orphan_after;
        if !orphan.is_zero() {
            // Often enough that an orphan lives at most about a quarter longer than allowed.
            let every = (orphan / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
            self.sweep_timer = Some(cx.add_timer(every, true, 0));
        }
        Ok(())
    }

    fn on_connect(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        let now = cx.now();
        let burst = self.sh.cfg.rate_burst;
        self.sh.conns.entry(id).or_insert_with(|| {
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
        let ip = self.sh.client_ip(cx, id, req);
        let ua = clip(req.header("user-agent").unwrap_or("").to_string(), 512);
        let burst = self.sh.cfg.rate_burst;
        self.sh.conns.insert(id, Conn::new(ip, ua, cx.now(), burst));
        Ok(())
    }

    fn on_message(&mut self, cx: &mut Ctx<'_>, id: ClientId, msg: Payload<'_>) {
        let now = cx.now();
        let Some(conn) = self.sh.conns.get_mut(&id) else {
            return;
        };
        let text = match msg {
            Payload::Text(t) => t,
            Payload::Binary(_) => return Refusal::Binary.send(cx, id, Echo::default()),
        };
        if text.len() > MAX_FRAME {
            return Refusal::FrameTooLarge.send(cx, id, Echo::default());
        }
        let t = text.trim();
        if t == "beat" {
            return;
        }
        let allowed = conn.take(now, self.sh.cfg.rate_per_sec, self.sh.cfg.rate_burst);
        match serde_json::from_str::<In>(t) {
            Ok(req) if !allowed => Req::new(id, &req).fail(cx, &Refusal::RateLimited),
            Ok(req) => self.handle(cx, id, req),
            Err(_) if !allowed => Refusal::RateLimited.send(cx, id, Echo::default()),
            Err(e) => classify(cx, id, t, &e),
        }
    }

    fn on_close(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        let Some(c) = self.sh.conns.remove(&id) else {
            return;
        };
        let Role::LoggedIn(me) = c.role else {
            return;
        };
        // The closing connection is still in the registry here: only its other tabs count.
        let others = cx
            .get_client_id_by_uid(&me.uid())
            .into_iter()
            .any(|c| c != id);
        if others {
            return;
        }
        match me.side {
            Side::Agent => {
                let push = Out::LogoutPush {
                    customer_id: &me.id,
                    customer_name: &me.name,
                    timestamp: now_ms() / 1000,
                }
                .to_json();
                cx.send_to_group(&[&agents_group(&me.bid)], Payload::Text(&push), &[id]);
                let grace = self.sh.cfg.agent_away_grace;
                self.sh
                    .away
                    .left(cx, &me.bid, &me.id, &me.name, false, grace);
            }
            Side::Visitor => visitor_presence(cx, &me.bid, &me.id, false, false),
        }
    }

    fn transport(&self) -> Transport {
        Transport {
            // Nothing the protocol accepts is larger than MAX_FRAME. Up to twice that, the
            // client still gets the protocol's own error (10005) and keeps its connection;
            // beyond, the transport refuses (1009) as soon as a frame header declares it,
            // before buffering any of it.
            max_message: 2 * MAX_FRAME,
            // Uploads are the largest bodies (raw bytes); everything else is small JSON.
            max_http_body: self.sh.cfg.upload_max_bytes.max(MAX_FRAME),
            login_timeout: Some(LOGIN_TIMEOUT),
            // The pages send "beat" every 25 s; four missed beats mean the client is gone.
            idle_timeout: Some(IDLE_TIMEOUT),
        }
    }

    fn reserves_name(&self, name: &str) -> bool {
        RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
    }

    fn on_http(&mut self, cx: &mut Ctx<'_>, conn: ClientId, req: &Request) -> HttpOutcome {
        http::serve(&mut self.sh, cx, conn, req)
    }

    fn on_peer_lost(&mut self, cx: &mut Ctx<'_>, gone: &[(ClientId, ClientInfo)]) {
        // Agents whose worker died never ran on_close, so nobody said logout_push for them.
        // Every surviving worker tells its own members of the business group, once per agent
        // (an agent may have had several tabs there) and only if no tab of it is left anywhere.
        let mut told = HashSet::new();
        for (_, info) in gone {
            let s = &info.session;
            let field = |k: &str| s.get(k).and_then(serde_json::Value::as_str);
            match (field("role"), field("bid")) {
                (Some("agent"), Some(bid)) => {
                    let Some(id) = field("customer_id") else {
                        continue;
                    };
                    if !told.insert(("a", bid, id)) || cx.is_uid_online(&agent_uid(bid, id)) {
                        continue;
                    }
                    let name = field("customer_name").unwrap_or(id);
                    let push = Out::LogoutPush {
                        customer_id: id,
                        customer_name: name,
                        timestamp: now_ms() / 1000,
                    }
                    .to_json();
                    cx.send_to_group_local(&[&agents_group(bid)], Payload::Text(&push));
                    // Every survivor arms its own timer: requeuing is idempotent in the store.
                    let grace = self.sh.cfg.agent_away_grace;
                    self.sh.away.left(cx, bid, id, name, true, grace);
                }
                (Some("visitor"), Some(bid)) => {
                    let Some(id) = field("visitor_id") else {
                        continue;
                    };
                    if told.insert(("v", bid, id)) && !cx.is_uid_online(&visitor_uid(bid, id)) {
                        visitor_presence(cx, bid, id, false, true);
                    }
                }
                _ => {}
            }
        }
    }

    fn on_wake(&mut self, cx: &mut Ctx<'_>) {
        // Bounded per wake so a flood of results cannot starve the loop's sockets; the
        // rest are taken on the next turn (the runner wakes again per batch).
        for _ in 0..4096 {
            match self.sh.try_recv() {
                Some(d) => done::deliver(&mut self.sh, cx, d),
                None => return,
            }
        }
        let _ = cx.waker().wake();
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_>, timer: TimerId, _tag: u64) {
        if Some(timer) == self.drain_timer {
            self.drain_tick(cx);
            revoke::sweep(&mut self.sh, cx);
        } else if Some(timer) == self.sweep_timer {
            self.sweep_tick(cx);
        } else if let Some((bid, id)) = self.sh.away.expired(timer) {
            // An agent's away timer.
            presence::requeue(&mut self.sh, cx, bid, id);
        }
    }

    fn on_admin(&mut self, cx: &mut Ctx<'_>, event: &AdminEvent) {
        revoke::admin(&mut self.sh, cx, event);
    }

    fn settled(&self) -> bool {
        // Every store job answers a client or changes what clients are told; at a reload's
        // hand-over those answers must come from the app holding the connections.
        self.sh.in_flight() == 0
    }

    fn on_adopt(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        self.sh.adopt(cx, id);
    }

    fn hand_over(&mut self, cx: &mut Ctx<'_>) -> Option<AppState> {
        carry::hand_over(&self.sh, cx)
    }

    fn take_over(&mut self, cx: &mut Ctx<'_>, state: AppState) {
        carry::take_over(&mut self.sh, cx, state);
    }

    fn on_worker_stop(&mut self, _cx: &mut Ctx<'_>) {
        // Let queued writes commit (and their acks be lost with the connections, which is
        // fine: a client retries with the same client_msg_id and gets the stored seq).
        self.sh.shutdown();
    }
}
