//! `kefu`: the customer-service app (docs/kefu-protocol.md).
//!
//! Each worker process runs one [`Kefu`]. Shared truth lives in two places: presence
//! (who is online, in which tabs) in the gateway's uids and groups, everything else in the
//! SQLite store. The loop never waits on either: store work is queued to this worker's
//! store threads and finishes in [`App::on_wake`], where replies and pushes go out. Every
//! message is committed before anyone (its sender included) hears of it.
//!
//! Uids: `agent:<bid>:<agent_id>` (all tabs of an agent), `visitor:<bid>:<visitor_id>`.
//! Groups: `agents:<bid>` (every agent connection of a business), `visitors:<bid>` (every
//! visitor connection of a business: presence pushes, see `presence.rs`).

mod agent;
pub mod auth;
pub(crate) mod demo;
mod done;
mod guarded;
pub(crate) mod history;
pub(crate) mod http;
pub(crate) mod limits;
pub(crate) mod login;
mod presence;
mod push;
mod request;
mod revoke;
pub(crate) mod routing;
#[cfg(test)]
mod routing_tests;
pub(crate) mod state;
pub(crate) mod strip;
pub(crate) mod upload;
mod visitor;
pub(crate) mod wire;

use crate::api::{
    AdminEvent, App, ClientId, ClientInfo, Ctx, HttpOutcome, Payload, Reject, Request, StartError,
    TimerId, Transport,
};
use crate::config::{Config, KefuConfig};
use crate::store::runner::{Mode, Runner};
use crate::store::{self, now_ms};
use auth::{Claims, Role as TokenRole, Secret};
use done::{Done, Lane, Origin, Outcome};
use history::Body;
use push::{classify, clip};
use request::{Echo, Me, Refusal, Req, Side};
use routing::Policy;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
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

/// How long a new connection may stay without logging in (the pages log in at once).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Silence after which a client is closed when the config sets no `idle_timeout`.
const IDLE_TIMEOUT: Duration = Duration::from_secs(100);

/// Prefixes of the uids and groups above: only connections this app logged in carry them.
const RESERVED_PREFIXES: [&str; 4] = ["agent:", "visitor:", "agents:", "visitors:"];

/// Where a connection is in logging in.
#[derive(Debug, Clone)]
enum Role {
    /// Connected, not logged in.
    Anon,
    /// Login sent to the store.
    Pending,
    /// Logged in as an agent or a visitor.
    LoggedIn(Me),
}

#[derive(Debug)]
struct Conn {
    role: Role,
    /// The token generation (`pw_ver`) a logged-in agent's row had at login (0 otherwise):
    /// the revocation sweep compares it with the row's current one.
    agent_gen: i64,
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
            agent_gen: 0,
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

impl std::fmt::Debug for Kefu {
    // By hand: the signing secret must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kefu")
            .field("data_dir", &self.data_dir)
            .field("store_open", &self.writer.is_some())
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

/// The customer-service app of one worker.
pub struct Kefu {
    cfg: KefuConfig,
    data_dir: PathBuf,
    secret: Option<Secret>,
    /// Group-commit writer (all SQL of the conversation flow).
    writer: Option<Runner<Done>>,
    /// Slow work off the writer: upload files, the orphan sweep.
    aux: Option<Runner<Done>>,
    /// Password checks (argon2) only.
    login: Option<Runner<Done>>,
    conns: HashMap<ClientId, Conn>,
    drain_timer: Option<TimerId>,
    sweep_timer: Option<TimerId>,
    limits: limits::Limits,
    /// Agents whose last connection closed on this worker, by (bid, agent id): the timer
    /// after which their conversations are requeued.
    away: HashMap<(String, String), TimerId>,
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
            login: None,
            conns: HashMap::new(),
            drain_timer: None,
            sweep_timer: None,
            limits: limits::Limits::new(&cfg.kefu, Instant::now()),
            away: HashMap::new(),
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
        // Runs once at worker start, before the loop serves anyone. Several workers open the
        // same file at once (WAL switch, schema), so a lost race is retried rather than
        // leaving a worker without a store.
        let open = || {
            let mut tries = 0;
            loop {
                match store::open(&self.data_dir, self.cfg.synchronous) {
                    Ok(c) => return Ok(c),
                    Err(e) if tries >= 100 => {
                        return Err(format!("store in {}: {e}", self.data_dir.display()))
                    }
                    Err(_) => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                }
            }
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
        let aux_conn = open()?;
        upload::ensure_table(&aux_conn).map_err(|e| format!("uploads table: {e}"))?;
        let aux = Runner::spawn(
            &format!("kefu-aux-{w}"),
            aux_conn,
            Mode::Plain,
            1024,
            wake.clone(),
        )
        .map_err(|e| e.to_string())?;
        let login = Runner::spawn(
            &format!("kefu-login-{w}"),
            open()?,
            Mode::Plain,
            LOGIN_QUEUE,
            wake,
        )
        .map_err(|e| e.to_string())?;
        self.secret = Some(secret);
        self.writer = Some(writer);
        self.aux = Some(aux);
        self.login = Some(login);
        Ok(())
    }

    /// Queue a job on the store thread its origin calls for ([`Origin::lane`]); answers
    /// busy right away if it cannot be queued.
    fn submit(
        &mut self,
        cx: &mut Ctx<'_>,
        to: Origin,
        work: impl FnOnce(&Connection) -> store::Result<Outcome> + Send + 'static,
    ) {
        if let Origin::Ws(rq) = &to {
            match self.conns.get_mut(&rq.id) {
                Some(c) if c.inflight >= MAX_INFLIGHT => {
                    return rq.fail(cx, &Refusal::TooManyInFlight);
                }
                Some(c) => c.inflight += 1,
                None => return,
            }
        }
        if self.enqueue(to.clone(), work).is_err() {
            self.finish(&to);
            match to {
                Origin::Ws(rq) => rq.fail(cx, &Refusal::ServerBusy),
                Origin::Http(conn, call) => http::reply(cx, conn, call, http::busy()),
                Origin::Drain | Origin::Admin | Origin::Sweep => {}
            }
        }
    }

    /// Queue the job of an HTTP request: `Pending` (answered from `on_wake`), or 503 now.
    /// The busy answer must be the return value: a `respond_http` before `on_http` returned
    /// `Pending` finds no request waiting and is dropped, leaving the client hanging.
    fn submit_http(
        &mut self,
        conn: ClientId,
        call: done::HttpCall,
        work: impl FnOnce(&Connection) -> store::Result<Outcome> + Send + 'static,
    ) -> HttpOutcome {
        match self.enqueue(Origin::Http(conn, call), work) {
            Ok(()) => HttpOutcome::Pending,
            Err(_) if call.cors() => HttpOutcome::Respond(http::busy()),
            Err(_) => HttpOutcome::Respond(http::without_cors(http::busy())),
        }
    }

    /// Hand a job to the store thread of its lane.
    fn enqueue(
        &self,
        to: Origin,
        work: impl FnOnce(&Connection) -> store::Result<Outcome> + Send + 'static,
    ) -> Result<(), store::runner::Busy> {
        let runner = match to.lane() {
            Lane::Writer => &self.writer,
            Lane::Aux => &self.aux,
            Lane::Login => &self.login,
        };
        // Both the job and its failure answer need the origin.
        let fail_to = to.clone();
        match runner {
            Some(r) => r.submit(
                move |c| work(c).map(|o| Done { to, res: Ok(o) }),
                move |e| Done {
                    to: fail_to,
                    res: Err(e),
                },
            ),
            None => Err(store::runner::Busy),
        }
    }

    /// A job of `origin` is over: free its in-flight slot.
    fn finish(&mut self, origin: &Origin) {
        if let Origin::Ws(rq) = origin {
            if let Some(c) = self.conns.get_mut(&rq.id) {
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

    /// One parsed request: logins while anonymous, everything else once logged in.
    fn handle(&mut self, cx: &mut Ctx<'_>, id: ClientId, req: In) {
        let Some(role) = self.role(id).cloned() else {
            return;
        };
        let rq = Req::new(id, &req);
        let r = match (req, role) {
            (In::Beat, _) => Ok(()),
            (In::Login(l), Role::Anon) => self.agent_login(cx, &rq, l),
            (In::VisitorLogin(v), Role::Anon) => self.visitor_login(cx, &rq, v),
            (In::Login(_) | In::VisitorLogin(_), _) => Err(Refusal::AlreadyLoggedIn),
            (_, Role::Anon | Role::Pending) => Err(Refusal::LoginFirst),
            (req, Role::LoggedIn(me)) => self.request(cx, &rq, me, req),
        };
        if let Err(e) = r {
            rq.fail(cx, &e);
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

    /// The client's address: the socket's, or with `trust_forwarded_for` the one the trusted
    /// proxy put in `X-Forwarded-For` (counted from the right: the leftmost entries are
    /// whatever the client sent).
    fn client_ip(&self, cx: &Ctx<'_>, id: ClientId, req: &Request) -> String {
        if self.cfg.trust_forwarded_for {
            if let Some(a) = req.forwarded_client(self.cfg.trusted_hops) {
                return a.to_string();
            }
        }
        cx.remote_addr(id)
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    }

    /// Delete uploads nobody referenced in time (on the aux thread: file removals).
    fn sweep_tick(&mut self, cx: &mut Ctx<'_>) {
        let cutoff = now_ms() - self.cfg.upload_orphan_after.as_millis() as i64;
        let dir = self.data_dir.clone();
        self.submit(cx, Origin::Sweep, move |c| {
            upload::sweep(c, &dir, cutoff).map(Outcome::Swept)
        });
    }

    /// Re-run routing for every business with an agent connected here.
    fn drain_tick(&mut self, cx: &mut Ctx<'_>) {
        let bids: HashSet<String> = self
            .conns
            .values()
            .filter_map(|c| match &c.role {
                Role::LoggedIn(me) if me.side == Side::Agent => Some(me.bid.clone()),
                _ => None,
            })
            .collect();
        let p = self.policy();
        for bid in bids {
            let online = Self::online_agents(cx, &bid);
            self.submit(cx, Origin::Drain, move |c| {
                routing::drain(c, &bid, &online, p, now_ms()).map(Outcome::Routed)
            });
        }
    }
}

impl App for Kefu {
    fn on_worker_start(&mut self, cx: &mut Ctx<'_>) -> Result<(), StartError> {
        // Serving without a store would leave every login unanswered: the worker stops, and
        // the master reports why (at start) or respawns it with back-off.
        self.start(cx)?;
        self.drain_timer = Some(cx.add_timer(DRAIN_EVERY, true, 0));
        let orphan = self.cfg.upload_orphan_after;
        if !orphan.is_zero() {
            // Often enough that an orphan lives at most about a quarter longer than allowed.
            let every = (orphan / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
            self.sweep_timer = Some(cx.add_timer(every, true, 0));
        }
        Ok(())
    }

    fn on_connect(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        let now = cx.now();
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
        let ip = self.client_ip(cx, id, req);
        let ua = clip(req.header("user-agent").unwrap_or("").to_string(), 512);
        self.conns
            .insert(id, Conn::new(ip, ua, cx.now(), self.cfg.rate_burst));
        Ok(())
    }

    fn on_message(&mut self, cx: &mut Ctx<'_>, id: ClientId, msg: Payload<'_>) {
        let now = cx.now();
        let Some(conn) = self.conns.get_mut(&id) else {
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
        let allowed = conn.take(now, self.cfg.rate_per_sec, self.cfg.rate_burst);
        match serde_json::from_str::<In>(t) {
            Ok(req) if !allowed => Req::new(id, &req).fail(cx, &Refusal::RateLimited),
            Ok(req) => self.handle(cx, id, req),
            Err(_) if !allowed => Refusal::RateLimited.send(cx, id, Echo::default()),
            Err(e) => classify(cx, id, t, &e),
        }
    }

    fn on_close(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        let Some(c) = self.conns.remove(&id) else {
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
                self.agent_left(cx, &me.bid, &me.id, &me.name, false);
            }
            Side::Visitor => Self::visitor_presence(cx, &me.bid, &me.id, false, false),
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
            max_http_body: self.cfg.upload_max_bytes.max(MAX_FRAME),
            login_timeout: Some(LOGIN_TIMEOUT),
            // The pages send "beat" every 25 s; four missed beats mean the client is gone.
            idle_timeout: Some(IDLE_TIMEOUT),
        }
    }

    fn reserves_name(&self, name: &str) -> bool {
        RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
    }

    fn on_http(&mut self, cx: &mut Ctx<'_>, conn: ClientId, req: &Request) -> HttpOutcome {
        self.http(cx, conn, req)
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
                    self.agent_left(cx, bid, id, name, true);
                }
                (Some("visitor"), Some(bid)) => {
                    let Some(id) = field("visitor_id") else {
                        continue;
                    };
                    if told.insert(("v", bid, id)) && !cx.is_uid_online(&visitor_uid(bid, id)) {
                        Self::visitor_presence(cx, bid, id, false, true);
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
            let d = self
                .writer
                .as_ref()
                .and_then(Runner::try_recv)
                .or_else(|| self.aux.as_ref().and_then(Runner::try_recv))
                .or_else(|| self.login.as_ref().and_then(Runner::try_recv));
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
            self.sweep(cx);
        } else if Some(timer) == self.sweep_timer {
            self.sweep_tick(cx);
        } else {
            self.away_timer(cx, timer);
        }
    }

    fn on_admin(&mut self, cx: &mut Ctx<'_>, event: &AdminEvent) {
        self.admin(cx, event);
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
        if let Some(l) = &mut self.login {
            l.shutdown();
        }
    }
}
