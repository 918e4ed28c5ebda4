//! The HTTP API (`/api/*`, `/uploads/*`): agent login, visitor tokens, history, uploads.
//! Anything slow (argon2, SQL, files) is answered later with `respond_http`. The agent login
//! and uploads, which need limits, are in `guarded.rs`. Free functions over the app's
//! [`Shared`] state.

use super::auth::{Claims, Role as TokenRole};
use super::done::HttpCall;
use super::limits::{self, Limit, Limited};
use super::login::{self, Ident, Meta};
use super::presence::online_agents;
use super::routing::{self, Access};
use super::shared::{business, Scope, Shared};
use super::wire::{Code, MessageOut};
use super::{admin, desk, face, guarded, history, insight, upload, webhook, ClientId, Outcome};
use crate::api::Ctx;
use crate::api::HttpOutcome;
use crate::protocol::http::request::Request;
use crate::protocol::http::response::Response;
use crate::store::{now_ms, valid_id};
use serde::{Deserialize, Serialize};

/// CORS headers on every API answer (the widget runs on the integrator's origin).
fn cors(r: Response) -> Response {
    r.header("Access-Control-Allow-Origin", "*")
        .header(
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type",
        )
        .header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        .header("Cache-Control", "no-store")
}

/// `r` without CORS headers (answers of the agent login).
pub(crate) fn without_cors(mut r: Response) -> Response {
    r.headers.retain(|(k, _)| !k.starts_with("Access-Control-"));
    r
}

/// Send `r` as the answer of `call` (without CORS headers where the call has none).
pub(super) fn reply(cx: &mut Ctx<'_>, conn: ClientId, call: HttpCall, r: Response) {
    let r = if call.cors() { r } else { without_cors(r) };
    cx.respond_http(conn, &r);
}

/// A JSON answer.
pub(crate) fn json<T: Serialize>(status: u16, v: &T) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    cors(Response {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body,
    })
}

#[derive(Serialize)]
struct ErrBody<'a> {
    code: &'static str,
    msg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

/// A JSON error answer.
pub(crate) fn error(status: u16, code: Code, msg: &str) -> Response {
    json(
        status,
        &ErrBody {
            code: code.as_str(),
            msg,
            retry_after: None,
        },
    )
}

/// 503: the store's queue for this call is full.
pub(crate) fn busy() -> Response {
    error(503, Code::Busy, "server busy, retry").header("Retry-After", "1")
}

/// 429 for a request over a limit: `Retry-After` and the same seconds in the body, which the
/// pages show.
pub(crate) fn limited(l: &Limited) -> Response {
    let secs = l.retry_secs();
    json(
        429,
        &ErrBody {
            code: Code::Busy.as_str(),
            msg: l.limit.msg(),
            retry_after: Some(secs),
        },
    )
    .header("Retry-After", &secs.to_string())
}

#[derive(Deserialize)]
struct VisitorTokenReq {
    bid: String,
    visitor_id: Option<String>,
    name: Option<String>,
    ts: Option<i64>,
    sig: Option<String>,
    /// A department signed with the identity.
    dept: Option<String>,
}

#[derive(Serialize)]
struct VisitorTokenResp<'a> {
    token: &'a str,
    visitor_id: &'a str,
    verified: bool,
    expires_at: i64,
}

#[derive(Serialize)]
struct HistoryResp<'a> {
    conv_id: i64,
    messages: &'a [MessageOut],
    has_more: bool,
}

fn bearer(req: &Request) -> Option<&str> {
    let h = req.header("authorization")?;
    h.strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .map(str::trim)
}

pub(super) fn bearer_claims(sh: &Shared, req: &Request) -> Result<Claims, Response> {
    let Some(t) = bearer(req) else {
        return Err(error(
            401,
            Code::LoginFailed,
            "Authorization: Bearer <token> required",
        ));
    };
    let Some(secret) = &sh.secret else {
        return Err(error(503, Code::Busy, "server not ready"));
    };
    secret
        .verify(t, now_ms())
        .map_err(|e| error(401, Code::LoginFailed, &e.to_string()))
}

/// Route one HTTP request.
pub(super) fn serve(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    conn: ClientId,
    req: &Request,
) -> HttpOutcome {
    let path = req.path.as_str();
    if !path.starts_with("/api/") && !path.starts_with(upload::URL_PREFIX) {
        // The web pages (index, visitor chat, console, widget.js, /static/*).
        return crate::web::serve(req).map_or(HttpOutcome::NotMine, HttpOutcome::Respond);
    }
    match route(sh, cx, conn, req) {
        // No CORS on the login, its preflight included: no other site's script may make
        // its visitors' browsers guess passwords and read the answer.
        HttpOutcome::Respond(r) if path == "/api/agent/login" => {
            HttpOutcome::Respond(without_cors(r))
        }
        o => o,
    }
}

fn route(sh: &mut Shared, cx: &mut Ctx<'_>, conn: ClientId, req: &Request) -> HttpOutcome {
    let path = req.path.as_str();
    if req.method == "OPTIONS" {
        return HttpOutcome::Respond(cors(Response::new(204)));
    }
    if let Some(o) = insight::route(sh, conn, req, path) {
        return o;
    }
    if let Some(o) = webhook::api::route(sh, conn, req, path) {
        return o;
    }
    match (req.method.as_str(), path) {
        ("POST", "/api/agent/login") => guarded::agent_login(sh, cx, conn, req),
        ("POST", "/api/visitor/token") => {
            let Ok(r) = serde_json::from_slice::<VisitorTokenReq>(&req.body) else {
                return HttpOutcome::Respond(error(400, Code::Invalid, "expected {bid, ...}"));
            };
            if !valid_id(&r.bid) {
                return HttpOutcome::Respond(error(404, Code::NotFound, "unknown bid"));
            }
            let ident = match (r.visitor_id, r.ts, r.sig) {
                (None, None, None) => Ident::Anonymous,
                (Some(visitor_id), Some(ts), Some(sig)) => Ident::Signed {
                    visitor_id,
                    name: r.name.clone().unwrap_or_default(),
                    ts,
                    sig,
                },
                _ => {
                    return HttpOutcome::Respond(error(
                        400,
                        Code::Invalid,
                        "identity needs visitor_id, ts and sig",
                    ))
                }
            };
            let ip = sh.client_ip(cx, conn, req);
            if matches!(ident, Ident::Anonymous) {
                // Each anonymous token is a new visitor row: limited per address.
                let now = cx.now();
                let key = limits::ip_key(&ip);
                if let Err(l) =
                    limits::take(&mut sh.limits.visitor_new, Limit::VisitorNew, &key, now)
                {
                    return HttpOutcome::Respond(limited(&l));
                }
            }
            if r.dept.as_deref().is_some_and(|d| !valid_id(d)) {
                return HttpOutcome::Respond(error(400, Code::Invalid, "bad dept"));
            }
            let meta = Meta {
                ip,
                user_agent: super::clip(req.header("user-agent").unwrap_or("").to_string(), 512),
                name: super::clip(r.name.unwrap_or_default(), 64),
                dept: r.dept,
                ..Meta::default()
            };
            let max_age = sh.cfg.identity_max_age.as_secs() as i64;
            let bid = r.bid;
            sh.submit_http(conn, HttpCall::VisitorToken, business(&bid), move |c| {
                login::visitor(c, &bid, ident, &meta, max_age, now_ms())
                    .map(|v| Outcome::HttpVisitorToken(Box::new(v)))
            })
        }
        ("GET", "/api/history") => {
            let claims = match bearer_claims(sh, req) {
                Ok(c) => c,
                Err(r) => return HttpOutcome::Respond(r),
            };
            let Some(conv_id) = req
                .query_param("conv_id")
                .and_then(|v| v.parse::<i64>().ok())
            else {
                return HttpOutcome::Respond(error(400, Code::Invalid, "conv_id is required"));
            };
            let before = req
                .query_param("before_seq")
                .and_then(|v| v.parse::<i64>().ok());
            let limit = req
                .query_param("limit")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(history::DEFAULT_PAGE);
            sh.submit_http(conn, HttpCall::History, business(&claims.b), move |c| {
                if claims.r == TokenRole::Agent {
                    login::check_agent(c, &claims)?;
                }
                let who = match claims.r {
                    TokenRole::Agent => Access::Agent(&claims.b),
                    TokenRole::Visitor => Access::Visitor(&claims.b, &claims.s),
                };
                routing::readable(c, conv_id, who)?;
                let (m, more) = history::page(c, conv_id, before, limit)?;
                Ok(Outcome::HttpHistory(conv_id, m, more))
            })
        }
        ("POST", "/api/upload") => guarded::upload(sh, cx, conn, req),
        (_, p) if desk::owns(p) => desk::route(sh, cx, conn, req),
        ("GET", "/api/business/profile") => match face::profile_bid(req) {
            Ok(bid) => sh.submit_http(conn, HttpCall::Profile, business(&bid), move |c| {
                face::profile(c, &bid)
            }),
            Err(r) => HttpOutcome::Respond(r),
        },
        ("POST", "/api/business/settings") => {
            let settings =
                bearer_claims(sh, req).and_then(|c| face::settings_req(&c, req).map(|s| (c, s)));
            match settings {
                Ok((claims, s)) => {
                    sh.submit_http(conn, HttpCall::Settings, business(&claims.b), move |c| {
                        face::settings(c, &claims, s)
                    })
                }
                Err(r) => HttpOutcome::Respond(r),
            }
        }
        ("POST", "/api/admin") => {
            let call = bearer_claims(sh, req).and_then(|c| admin::parse(&c, req).map(|r| (c, r)));
            match call {
                Ok((claims, r)) => {
                    let online = online_agents(cx, &claims.b);
                    let p = sh.policy();
                    sh.submit_http(conn, r.call(), business(&claims.b), move |c| {
                        admin::run(c, &claims, r, &online, p)
                    })
                }
                Err(r) => HttpOutcome::Respond(r),
            }
        }
        ("GET" | "HEAD", p) if p.starts_with(upload::URL_PREFIX) => {
            let name = p[upload::URL_PREFIX.len()..].to_string();
            if upload::parse_name(&name).is_none() {
                return HttpOutcome::Respond(Response::error(404));
            }
            let dir = sh.data_dir.clone();
            let head = req.method == "HEAD";
            // Any business's file: the lane is the plain aux thread, which takes no lock.
            sh.submit_http(conn, HttpCall::File, Scope::All, move |c| {
                let mut r = upload::serve(c, &dir, &name);
                if head {
                    r.body.clear();
                }
                Ok(Outcome::HttpFile(r))
            })
        }
        (
            _,
            "/api/agent/login"
            | "/api/visitor/token"
            | "/api/history"
            | "/api/upload"
            | "/api/business/profile"
            | "/api/business/settings"
            | "/api/admin",
        ) => HttpOutcome::Respond(error(405, Code::Invalid, "method not allowed")),
        _ => HttpOutcome::Respond(error(404, Code::NotFound, "no such endpoint")),
    }
}

/// Answer an HTTP request whose store work finished.
pub(super) fn done(sh: &mut Shared, cx: &mut Ctx<'_>, conn: ClientId, call: HttpCall, o: Outcome) {
    let resp = match o {
        Outcome::HttpAgentLogin(t) => guarded::agent_login_done(sh, cx, *t),
        Outcome::HttpVisitorToken(v) => {
            let Some((token, exp)) = sh.visitor_token(&v) else {
                return;
            };
            json(
                200,
                &VisitorTokenResp {
                    token: &token,
                    visitor_id: &v.visitor_id,
                    verified: v.verified,
                    expires_at: exp,
                },
            )
        }
        Outcome::HttpHistory(conv_id, messages, has_more) => json(
            200,
            &HistoryResp {
                conv_id,
                messages: &messages,
                has_more,
            },
        ),
        Outcome::HttpUploaded(s) => guarded::uploaded(&s),
        Outcome::HttpUploadRefused(r) => guarded::upload_refused(r),
        Outcome::HttpFile(r) | Outcome::HttpReady(r) => r,
        Outcome::Admin(d) => admin::done(cx, *d),
        Outcome::HttpDesk(r, after) => {
            desk::after(sh, cx, after);
            r
        }
        _ => error(500, Code::Storage, "unexpected answer"),
    };
    reply(cx, conn, call, resp);
}
