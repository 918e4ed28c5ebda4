//! What every handler of the app works on ([`Shared`]): the config, the signing key, the
//! store threads, the table of connections with their roles and rates, and the per-address
//! limits. The handlers themselves are free functions over it, one file per concern
//! (`visitor.rs`, `agent.rs`, `request.rs`, `http.rs`, `guarded.rs`, `done.rs`, `revoke.rs`);
//! `presence.rs` keeps the agents' away timers.

use super::auth::{self, Claims, Role as TokenRole, Secret};
use super::done::{HttpCall, Origin, Outcome};
use super::history::Body;
use super::jobs::Jobs;
use super::limits::{self, Limit, Limited};
use super::login::VisitorIn;
use super::presence::Away;
use super::request::{Me, Refusal};
use super::routing::Policy;
use super::{http, upload, wire, ClientId, Ctx, HttpOutcome, Request, MAX_INFLIGHT};
use crate::api::{instant_ago, ms_since};
use crate::config::KefuConfig;
use crate::store::db::Db;
pub(super) use crate::store::runner::Scope;
use crate::store::{self, now_ms};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// Where a connection is in logging in.
#[derive(Debug, Clone)]
pub(super) enum Role {
    /// Connected, not logged in.
    Anon,
    /// Login sent to the store.
    Pending,
    /// Logged in as an agent or a visitor.
    LoggedIn(Me),
}

/// A connection crossing a reload: user agent, tokens, milliseconds since the last refill.
pub(super) type CarriedConn = (String, f64, u64);

/// One client connection as the app sees it.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) role: Role,
    /// The token generation (`pw_ver`) a logged-in agent's row had at login (0 otherwise):
    /// the revocation sweep compares it with the row's current one.
    pub(super) agent_gen: i64,
    pub(super) ip: String,
    pub(super) user_agent: String,
    /// A visitor's department for the conversation its next message opens.
    pub(super) dept: Option<String>,
    inflight: u32,
    tokens: f64,
    refill: Instant,
}

impl Conn {
    /// A connection from `ip`, not logged in, with a full bucket.
    pub(super) fn new(ip: String, user_agent: String, now: Instant, burst: f64) -> Conn {
        Conn {
            role: Role::Anon,
            agent_gen: 0,
            ip,
            user_agent,
            dept: None,
            inflight: 0,
            tokens: burst,
            refill: now,
        }
    }

    /// What crosses a reload beyond the login (which the session keeps): the user agent
    /// and the connection's message bucket.
    pub(super) fn carry(&self, now: Instant) -> CarriedConn {
        (
            self.user_agent.clone(),
            self.tokens,
            ms_since(self.refill, now),
        )
    }

    /// Go on from the predecessor's bucket (never fuller than `burst`).
    pub(super) fn restore(&mut self, c: CarriedConn, now: Instant, burst: f64) {
        let (ua, tokens, ago) = c;
        self.user_agent = ua;
        if tokens.is_finite() {
            self.tokens = tokens.clamp(0.0, burst);
            self.refill = instant_ago(ago, now);
        }
    }

    /// Token bucket: false when the client sends faster than allowed.
    pub(super) fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
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

/// The scope of a job on business `bid`'s rows (see [`Scope`]).
pub(super) fn business(bid: &str) -> Scope {
    Scope::Business(bid.to_string())
}

/// The app's state in one worker, shared by its handlers.
pub(super) struct Shared {
    pub(super) cfg: KefuConfig,
    pub(super) data_dir: PathBuf,
    /// The token signing key (None before the worker started).
    pub(super) secret: Option<Secret>,
    /// The store threads (None before the worker started).
    jobs: Option<Jobs>,
    /// This worker's connections.
    pub(super) conns: HashMap<ClientId, Conn>,
    pub(super) limits: limits::Limits,
    /// Agents whose last connection closed on this worker.
    pub(super) away: Away,
}

impl Shared {
    /// The state for `cfg`; the key and the store come with [`Shared::start`].
    pub(super) fn new(cfg: &crate::config::Config) -> Shared {
        Shared {
            cfg: cfg.kefu.clone(),
            data_dir: cfg.data_dir.clone(),
            secret: None,
            jobs: None,
            conns: HashMap::new(),
            limits: limits::Limits::new(&cfg.kefu, Instant::now()),
            away: Away::default(),
        }
    }

    /// Start the store threads and load the signing key (from the store's side: see
    /// [`Secret::load`]).
    pub(super) fn start(&mut self, cx: &mut Ctx<'_>) -> Result<(), String> {
        let (jobs, secret) = Jobs::open(cx, &self.cfg, &self.data_dir)?;
        self.secret = Some(secret);
        self.jobs = Some(jobs);
        Ok(())
    }

    /// Whether the store threads run.
    pub(super) fn store_open(&self) -> bool {
        self.jobs.is_some()
    }

    /// A finished store job, if any.
    pub(super) fn try_recv(&self) -> Option<super::done::Done> {
        self.jobs.as_ref().and_then(Jobs::try_recv)
    }

    /// Store jobs whose answers are still owed to clients.
    pub(super) fn in_flight(&self) -> usize {
        self.jobs.as_ref().map_or(0, Jobs::in_flight)
    }

    /// A connection moved here at a reload: rebuild its state from the login kept in its
    /// session (see `request::StoredLogin`); one without a login starts anew, as after
    /// `on_connect`.
    pub(super) fn adopt(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        let login = cx
            .get_session(id)
            .and_then(super::request::StoredLogin::read);
        let remote = cx
            .remote_addr(id)
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let mut c = Conn::new(remote, String::new(), cx.now(), self.cfg.rate_burst);
        if let Some(login) = login {
            let (me, pw_ver, ip, dept) = login.into_parts();
            if !ip.is_empty() {
                c.ip = ip;
            }
            c.dept = dept;
            c.agent_gen = pw_ver;
            c.role = Role::LoggedIn(me);
        }
        self.conns.insert(id, c);
    }

    /// Let queued writes commit and stop the store threads.
    pub(super) fn shutdown(&mut self) {
        if let Some(j) = &mut self.jobs {
            j.shutdown();
        }
    }

    /// The routing policy of the config.
    pub(super) fn policy(&self) -> Policy {
        Policy {
            policy: self.cfg.policy,
            max_per_agent: i64::from(self.cfg.max_per_agent),
        }
    }

    /// Queue a job on the store thread its origin calls for ([`Origin::lane`]); answers
    /// busy right away if it cannot be queued.
    pub(super) fn submit(
        &mut self,
        cx: &mut Ctx<'_>,
        to: Origin,
        scope: Scope,
        work: impl FnOnce(&Db) -> store::Result<Outcome> + Send + 'static,
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
        if self.enqueue(to.clone(), scope, work).is_err() {
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
    pub(super) fn submit_http(
        &mut self,
        conn: ClientId,
        call: HttpCall,
        scope: Scope,
        work: impl FnOnce(&Db) -> store::Result<Outcome> + Send + 'static,
    ) -> HttpOutcome {
        match self.enqueue(Origin::Http(conn, call), scope, work) {
            Ok(()) => HttpOutcome::Pending,
            Err(_) if call.cors() => HttpOutcome::Respond(http::busy()),
            Err(_) => HttpOutcome::Respond(http::without_cors(http::busy())),
        }
    }

    fn enqueue(
        &self,
        to: Origin,
        scope: Scope,
        work: impl FnOnce(&Db) -> store::Result<Outcome> + Send + 'static,
    ) -> Result<(), store::runner::Busy> {
        match &self.jobs {
            Some(j) => j.enqueue(to, scope, work),
            None => Err(store::runner::Busy),
        }
    }

    /// A job of `origin` is over: free its in-flight slot.
    pub(super) fn finish(&mut self, origin: &Origin) {
        if let Origin::Ws(rq) = origin {
            if let Some(c) = self.conns.get_mut(&rq.id) {
                c.inflight = c.inflight.saturating_sub(1);
            }
        }
    }

    /// The role of connection `id`, if the app knows it.
    pub(super) fn role(&self, id: ClientId) -> Option<&Role> {
        self.conns.get(&id).map(|c| &c.role)
    }

    /// Set the role of connection `id`.
    pub(super) fn set_role(&mut self, id: ClientId, role: Role) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.role = role;
        }
    }

    /// Check one of our tokens of kind `want`; the error is the client's message.
    pub(super) fn verify_token(
        &self,
        token: &str,
        want: TokenRole,
    ) -> Result<Claims, &'static str> {
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

    /// Validate a send's body.
    pub(super) fn body(
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
    pub(super) fn client_ip(&self, cx: &Ctx<'_>, id: ClientId, req: &Request) -> String {
        if self.cfg.trust_forwarded_for {
            if let Some(a) = req.forwarded_client(self.cfg.trusted_hops) {
                return a.to_string();
            }
        }
        cx.remote_addr(id)
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    }

    /// A visitor's send against its address's limits: `Err` over the message limit, else
    /// whether it may open a new conversation (a token of that limit is then held for it).
    pub(super) fn visitor_send_limits(
        &mut self,
        id: ClientId,
        now: Instant,
    ) -> Result<bool, Refusal> {
        let Some(c) = self.conns.get(&id) else {
            return Ok(false);
        };
        let ip = limits::ip_key(&c.ip);
        let l = &mut self.limits;
        limits::take(&mut l.visitor_msg, Limit::VisitorMsg, &ip, now).map_err(Refusal::Limited)?;
        Ok(l.conv_new.take(&ip, now).is_ok())
    }

    /// Give back the new-conversation token of `id`'s address.
    pub(super) fn refund_conv(&mut self, id: ClientId) {
        if let Some(c) = self.conns.get(&id) {
            self.limits.conv_new.refund(&limits::ip_key(&c.ip));
        }
    }

    /// The refusal of a conversation `id`'s address may not open yet.
    pub(super) fn conv_limited(&mut self, id: ClientId, now: Instant) -> Limited {
        let ip = self
            .conns
            .get(&id)
            .map(|c| limits::ip_key(&c.ip))
            .unwrap_or_default();
        let retry = self.limits.conv_new.wait(&ip, now);
        Limited {
            limit: Limit::ConvNew,
            retry,
        }
    }
}
