//! The agents' read-only HTTP views of their business's history: the closed-conversation
//! list, message search, a visitor's profile and the reports (JSON or CSV).
//!
//! Who may call: agents only, with their agent token (`Authorization: Bearer`); the
//! business is always the token's, never one named in the request, so another business's
//! ids find nothing. Visitors get 403, no or a bad token 401. Reports (and webhooks, see
//! `webhook/api.rs`) are for the business's admins only ([`Need::Admin`]): a plain agent
//! gets 403. The role is read from the agent's row in the job, so a demoted admin's token
//! stops at once. Every query runs on the query store thread (reads only, its own queue, off
//! the writer's batches), never on the loop.

use super::auth::{Claims, Role as TokenRole};
use super::done::{HttpCall, Outcome};
use super::http::{bearer_claims, error, json};
use super::login;
use super::shared::{business, Shared};
use super::wire::Code;
use super::ClientId;
use crate::api::HttpOutcome;
use crate::protocol::http::request::Request;
use crate::protocol::http::response::Response;
use crate::store::db::Db;
use crate::store::reports::{self, Group, Range, DAY_MS};
use crate::store::search::{self, Cursor, Query};
use crate::store::tenancy::Agent;
use crate::store::{now_ms, valid_id, StoreError};
use serde::Serialize;

/// Which agents of the business a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Any enabled agent.
    Agent,
    /// Its admins only (reports, webhooks).
    Admin,
}

/// The claims of an agent token on `req`, or the refusal (401 without a valid token, 403
/// for a visitor's).
pub(super) fn agent_claims(sh: &Shared, req: &Request) -> Result<Claims, Response> {
    let c = bearer_claims(sh, req)?;
    if c.r != TokenRole::Agent {
        return Err(error(403, Code::NotLoggedIn, "agents only"));
    }
    Ok(c)
}

/// Queue `f` on `call`'s store thread for the agent `claims` names, once the store says it
/// is still that agent (not removed, disabled or of an older password) and, for
/// [`Need::Admin`], an admin: else 401 or 403, and `f` does not run.
pub(super) fn submit(
    sh: &mut Shared,
    conn: ClientId,
    call: HttpCall,
    claims: Claims,
    need: Need,
    f: impl FnOnce(&Db, &Agent) -> crate::store::Result<Response> + Send + 'static,
) -> HttpOutcome {
    sh.submit_http(conn, call, business(&claims.b), move |c| {
        let a = match need {
            Need::Agent => login::check_agent(c, &claims)?,
            Need::Admin => login::check_admin(c, &claims)?,
        };
        Ok(Outcome::HttpReady(f(c, &a)?))
    })
}

fn bad(msg: &str) -> HttpOutcome {
    HttpOutcome::Respond(error(400, Code::Invalid, msg))
}

/// An optional integer parameter: absent is None, present must parse.
fn int_param(req: &Request, key: &str) -> Result<Option<i64>, ()> {
    match req.query_param(key) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| ()),
    }
}

/// An optional id parameter (`visitor_id`, `agent_id`): absent/empty is None.
fn id_param(req: &Request, key: &str) -> Result<Option<String>, ()> {
    match req.query_param(key) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if valid_id(&v) => Ok(Some(v)),
        Some(_) => Err(()),
    }
}

fn cursor_param(req: &Request) -> Result<Option<Cursor>, HttpOutcome> {
    match req.query_param("before") {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => Cursor::parse(&v)
            .map(Some)
            .map_err(|_| bad("before: expected the next cursor of the previous page")),
    }
}

/// Route `GET /api/conversations/closed`, `/api/search`, `/api/visitor/profile` and
/// `/api/reports`; None if `path` is none of them.
pub(super) fn route(
    sh: &mut Shared,
    conn: ClientId,
    req: &Request,
    path: &str,
) -> Option<HttpOutcome> {
    let handler: fn(&mut Shared, ClientId, &Request, Claims) -> HttpOutcome = match path {
        "/api/conversations/closed" => closed,
        "/api/search" => search,
        "/api/visitor/profile" => profile,
        "/api/reports" => report,
        _ => return None,
    };
    if req.method != "GET" {
        return Some(HttpOutcome::Respond(error(
            405,
            Code::Invalid,
            "method not allowed",
        )));
    }
    Some(match agent_claims(sh, req) {
        Ok(claims) => handler(sh, conn, req, claims),
        Err(r) => HttpOutcome::Respond(r),
    })
}

#[derive(Serialize)]
struct Page<'a, T> {
    items: &'a [T],
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<&'a str>,
}

fn page<T: Serialize>(items: &[T], next: Option<String>) -> Response {
    json(
        200,
        &Page {
            items,
            next: next.as_deref(),
        },
    )
}

/// The narrowing parameters the closed list and the search share.
struct Filters {
    before: Option<Cursor>,
    visitor_id: Option<String>,
    agent_id: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    limit: Option<i64>,
}

fn filters(req: &Request) -> Result<Filters, HttpOutcome> {
    let before = cursor_param(req)?;
    let (Ok(visitor_id), Ok(agent_id)) = (id_param(req, "visitor_id"), id_param(req, "agent_id"))
    else {
        return Err(bad("visitor_id/agent_id: 1..64 of [A-Za-z0-9_.@-]"));
    };
    let (Ok(from), Ok(to), Ok(limit)) = (
        int_param(req, "from"),
        int_param(req, "to"),
        int_param(req, "limit"),
    ) else {
        return Err(bad("from/to (ms) and limit: integers"));
    };
    Ok(Filters {
        before,
        visitor_id,
        agent_id,
        from,
        to,
        limit,
    })
}

fn closed(sh: &mut Shared, conn: ClientId, req: &Request, claims: Claims) -> HttpOutcome {
    let Filters {
        before,
        visitor_id,
        agent_id,
        from,
        to,
        limit,
    } = match filters(req) {
        Ok(f) => f,
        Err(o) => return o,
    };
    let f = search::Closed {
        visitor_id,
        agent_id,
        from,
        to,
    };
    let limit = search::page_size(limit);
    submit(
        sh,
        conn,
        HttpCall::Search,
        claims,
        Need::Agent,
        move |c, a| {
            let (rows, next) = search::closed(c, &a.bid, &f, before, limit)?;
            Ok(page(&rows, next))
        },
    )
}

fn search(sh: &mut Shared, conn: ClientId, req: &Request, claims: Claims) -> HttpOutcome {
    let text = match search::clean_query(&req.query_param("q").unwrap_or_default()) {
        Ok(t) => t,
        Err(StoreError::Invalid(m)) => return bad(m),
        Err(_) => return bad("q"),
    };
    let Filters {
        before,
        visitor_id,
        agent_id,
        from,
        to,
        limit,
    } = match filters(req) {
        Ok(f) => f,
        Err(o) => return o,
    };
    let q = Query {
        text,
        visitor_id,
        agent_id,
        from: from.unwrap_or(0),
        to: to.unwrap_or(i64::MAX),
        before,
        limit: search::page_size(limit),
    };
    submit(
        sh,
        conn,
        HttpCall::Search,
        claims,
        Need::Agent,
        move |c, a| {
            let (hits, next) = search::search(c, &a.bid, &q)?;
            Ok(page(&hits, next))
        },
    )
}

fn profile(sh: &mut Shared, conn: ClientId, req: &Request, claims: Claims) -> HttpOutcome {
    let Ok(Some(vid)) = id_param(req, "visitor_id") else {
        return bad("visitor_id: 1..64 of [A-Za-z0-9_.@-]");
    };
    submit(
        sh,
        conn,
        HttpCall::Search,
        claims,
        Need::Agent,
        move |c, a| {
            let p = search::visitor_profile(c, &a.bid, &vid)?.ok_or(StoreError::NotFound)?;
            Ok(json(200, &p))
        },
    )
}

#[derive(Serialize)]
struct ReportOut<'a> {
    group: &'static str,
    from: i64,
    to: i64,
    tz: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dept: Option<&'a str>,
    rows: &'a [reports::Row],
}

fn report(sh: &mut Shared, conn: ClientId, req: &Request, claims: Claims) -> HttpOutcome {
    let Some(group) = Group::parse(&req.query_param("group").unwrap_or_else(|| "day".into()))
    else {
        return bad("group: day, agent or dept");
    };
    let csv = match req.query_param("format").as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return bad("format: json or csv"),
    };
    let Ok(dept) = id_param(req, "dept") else {
        return bad("dept: 1..64 of [A-Za-z0-9_.@-]");
    };
    let (Ok(from), Ok(to), Ok(tz)) = (
        int_param(req, "from"),
        int_param(req, "to"),
        int_param(req, "tz"),
    ) else {
        return bad("from/to (ms) and tz (minutes east of UTC): integers");
    };
    let to = to.unwrap_or_else(now_ms);
    let from = from.unwrap_or(to.saturating_sub(30 * DAY_MS));
    let range = match Range::new(from, to, tz.unwrap_or(0)) {
        Ok(r) => r,
        Err(StoreError::Invalid(m)) => return bad(m),
        Err(_) => return bad("from/to"),
    };
    submit(
        sh,
        conn,
        HttpCall::Reports,
        claims,
        Need::Admin,
        move |c, a| {
            let rows = reports::report(c, &a.bid, group, range, dept.as_deref())?;
            Ok(if csv {
                csv_answer(group, &rows)
            } else {
                json(
                    200,
                    &ReportOut {
                        group: group.as_str(),
                        from: range.from,
                        to: range.to,
                        tz: range.tz_min,
                        dept: dept.as_deref(),
                        rows: &rows,
                    },
                )
            })
        },
    )
}

fn csv_answer(group: Group, rows: &[reports::Row]) -> Response {
    let mut r = json(200, &());
    r.body = reports::csv(group, rows).into_bytes();
    r.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    r.header("Content-Type", "text/csv; charset=utf-8").header(
        "Content-Disposition",
        &format!(
            "attachment; filename=\"kefu-report-{}.csv\"",
            group.as_str()
        ),
    )
}
