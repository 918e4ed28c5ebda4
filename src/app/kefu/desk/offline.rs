//! Working hours (`GET /api/hours?bid=`, public; `POST /api/hours`, admins) and offline
//! messages (`POST /api/offline`, the visitor's own token).

use super::fields::{contact, text_field, MAX_NAME};
use super::{bad, caller, parse, ready, After};
use crate::api::{Ctx, HttpOutcome};
use crate::app::kefu::auth::Role as TokenRole;
use crate::app::kefu::done::{HttpCall, Outcome};
use crate::app::kefu::hours::{Status, Week, WeekOut};
use crate::app::kefu::http::{json, limited};
use crate::app::kefu::limits::{self, Limit};
use crate::app::kefu::presence::online_agents;
use crate::app::kefu::routing::{self, Policy};
use crate::app::kefu::shared::{business, Shared};
use crate::app::kefu::{history, login, ClientId};
use crate::protocol::http::request::Request;
use crate::store::convo as sql;
use crate::store::{now_ms, valid_id, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursReq {
    tz: Option<String>,
    days: Option<Vec<Vec<[String; 2]>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OfflineReq {
    #[serde(default)]
    name: String,
    contact: String,
    message: String,
    /// The department the page chose (the widget's `data-department`, a signed one, or the
    /// visitor's pick), as `send` carries it: a routing choice, not a right.
    #[serde(default)]
    dept: Option<String>,
}

#[derive(Serialize)]
struct HoursOut {
    #[serde(flatten)]
    status: Status,
    hours: Option<WeekOut>,
}

#[derive(Serialize)]
struct OfflineOut {
    conv_id: i64,
    seq: i64,
    ts: i64,
}

/// `GET /api/hours?bid=`: whether the business is open now, and its hours.
pub(super) fn hours(sh: &mut Shared, conn: ClientId, req: &Request) -> HttpOutcome {
    let bid = match req.query_param("bid") {
        Some(b) if valid_id(&b) => b.to_string(),
        _ => return bad("bid (1..64 of [A-Za-z0-9_.@-]) is required"),
    };
    sh.submit_http(conn, HttpCall::Hours, business(&bid), move |c| {
        if !sql::business_exists(c, &bid)? {
            return Err(StoreError::NotFound);
        }
        let w = sql::hours_get(c, &bid)?.and_then(|(tz, j)| Week::from_stored(&tz, &j));
        answer(w)
    })
}

/// `POST /api/hours`: set or clear the business's hours (admins).
pub(super) fn set_hours(sh: &mut Shared, conn: ClientId, req: &Request) -> HttpOutcome {
    let claims = match caller(sh, req, TokenRole::Agent) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let r: HoursReq = match parse(req, "expected {tz, days} (or {tz: null} for always open)") {
        Ok(r) => r,
        Err(o) => return o,
    };
    let week = match (r.tz, r.days) {
        (Some(tz), Some(days)) => match Week::parse(&tz, &days) {
            Ok(w) => Some(w),
            Err(e) => return bad(e.msg()),
        },
        (None, None) => None,
        _ => return bad("tz and days go together"),
    };
    sh.submit_http(conn, HttpCall::Hours, business(&claims.b), move |c| {
        let a = login::check_agent(c, &claims)?;
        if !sql::is_admin(c, &a)? {
            return Err(StoreError::Forbidden(
                "only the business's admins set its hours",
            ));
        }
        let stored = week.as_ref().map(|w| (w.tz_name.clone(), w.to_stored()));
        sql::hours_set(
            c,
            &a.bid,
            stored.as_ref().map(|(t, j)| (t.as_str(), j.as_str())),
        )?;
        answer(week)
    })
}

/// The hours' answer (GET and POST alike): open now or not, and the week; no hours set is
/// always open.
fn answer(week: Option<Week>) -> crate::store::Result<Outcome> {
    let status = week.as_ref().map_or(
        Status {
            open: true,
            next_change: None,
        },
        |w| w.status(now_ms()),
    );
    ready(json(
        200,
        &HoursOut {
            status,
            hours: week.map(|w| w.out()),
        },
    ))
}

/// `POST /api/offline`: a visitor's message left while the business is offline, with its
/// contact; it opens (or joins) the visitor's conversation like a first message, so agents
/// find it in the queue, and an agent's reply reaches the visitor when it comes back.
pub(super) fn leave(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    conn: ClientId,
    req: &Request,
) -> HttpOutcome {
    let claims = match caller(sh, req, TokenRole::Visitor) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let r: OfflineReq = match parse(req, "expected {name?, contact, message}") {
        Ok(r) => r,
        Err(o) => return o,
    };
    let name = match r.name.trim() {
        "" => String::new(),
        n => match text_field(n, MAX_NAME, "name: at most 64 characters") {
            Ok(n) if !n.contains('\n') => n,
            _ => return bad("name: at most 64 characters, one line"),
        },
    };
    let contact = match contact(&r.contact) {
        Ok(c) => c,
        Err(m) => return bad(m),
    };
    let message = match text_field(
        &r.message,
        sh.cfg.max_text_chars,
        "message: 1 to max_text_chars characters",
    ) {
        Ok(m) => m,
        Err(m) => return bad(m),
    };
    let dept = match r.dept.filter(|d| !d.is_empty()) {
        Some(d) if !valid_id(&d) => return bad("dept: 1..64 of [A-Za-z0-9_.@-]"),
        d => d,
    };
    // Counted like a visitor's message that opens a conversation, per address.
    let ip = limits::ip_key(&sh.client_ip(cx, conn, req));
    let now = cx.now();
    if let Err(l) = limits::take(&mut sh.limits.visitor_msg, Limit::VisitorMsg, &ip, now)
        .and_then(|()| limits::take(&mut sh.limits.conv_new, Limit::ConvNew, &ip, now))
    {
        return HttpOutcome::Respond(limited(&l));
    }
    let online = online_agents(cx, &claims.b);
    let p: Policy = sh.policy();
    sh.submit_http(conn, HttpCall::Offline, business(&claims.b), move |c| {
        let (bid, vid) = (claims.b, claims.s);
        sql::contact_set(c, &bid, &vid, &name, &contact, now_ms())?;
        let me = history::Sender {
            role: "visitor",
            id: &vid,
            name: &name,
        };
        let body = history::Body::Text(message);
        // Like a first message: a department the business does not have (removed since the
        // page loaded, or another business's) leaves it in the line without one, so the
        // message is never lost; an open conversation keeps its own.
        let d = dept.as_deref();
        let sent = routing::visitor_send(c, &bid, me, d, &body, None, &online, p, now_ms())?;
        let out = OfflineOut {
            conv_id: sent.msg.conv_id,
            seq: sent.msg.seq,
            ts: sent.msg.ts,
        };
        Ok(Outcome::HttpDesk(
            json(200, &out),
            After::Offline(bid, vid, Box::new(sent)),
        ))
    })
}
