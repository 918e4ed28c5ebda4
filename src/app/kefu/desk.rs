//! The agents' desk over HTTP (docs/kefu-protocol.md "Desk"): canned replies, internal
//! notes, satisfaction ratings, working hours and offline messages.
//!
//! Who may call what: canned replies and notes need an agent token (the business is always
//! the token's); the business's canned replies and its working hours only its admins
//! (`store::convo::is_admin`); a rating and an offline message need the visitor's own token.
//! The working hours' status is public (`?bid=`), like the business's profile. Everything a
//! caller sends is bounded here before any SQL runs (`store/convo.rs`).
//!
//! What changes live goes out when the store job is over ([`after`]): a note and a rating to
//! the business's agents (never to a visitor), an offline message like any visitor message.

use super::auth::{Claims, Role as TokenRole};
use super::done::{HttpCall, Outcome};
use super::hours::{Status, Week, WeekOut};
use super::http::{bearer_claims, error, json, limited};
use super::limits::{self, Limit};
use super::login;
use super::presence::online_agents;
use super::push::{fan_message, push_routed};
use super::routing::{self, Policy, VisitorSent};
use super::shared::Shared;
use super::wire::Code;
use super::{agents_group, history, ClientId};
use crate::api::{Ctx, HttpOutcome, Payload};
use crate::protocol::http::request::Request;
use crate::protocol::http::response::Response;
use crate::store::convo::{self as sql, Canned, Note, Owner, Rating};
use crate::store::tenancy::Agent;
use crate::store::{now_ms, valid_id, Result, StoreError};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

/// Longest canned shortcut, characters.
const MAX_SHORTCUT: usize = 32;
/// Longest rating comment, characters.
const MAX_COMMENT: usize = 500;
/// Longest contact (an email address or a phone number), characters.
const MAX_CONTACT: usize = 100;
/// Longest name a visitor gives with an offline message, characters.
const MAX_NAME: usize = 64;

/// What to do once a desk job is stored.
pub(super) enum After {
    /// Tell the business's agents about a new note.
    Note(String, Note),
    /// Tell the business's agents about a rating.
    Rated(String, Rating),
    /// An offline message: routing and the message, as for any visitor message.
    Offline(String, String, Box<VisitorSent>),
}

/// What the desk pushes to agents' connections.
#[derive(Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
enum Push<'a> {
    /// A note was added.
    Note { note: &'a Note },
    /// A visitor rated a closed conversation.
    Rated {
        #[serde(flatten)]
        rating: &'a Rating,
    },
}

/// Something happened at the desk that parties outside the app may want to hear of. This is
/// where outgoing webhooks (issue 18 point 8) attach; until they do, it is logged at debug.
pub(super) enum DeskEvent<'a> {
    /// A visitor rated a conversation.
    Rated { bid: &'a str, rating: &'a Rating },
    /// A visitor left a message while the business was offline.
    OfflineMessage {
        bid: &'a str,
        visitor_id: &'a str,
        conv_id: i64,
    },
}

/// The hook point for [`DeskEvent`]s.
pub(super) fn announce(_sh: &mut Shared, e: &DeskEvent<'_>) {
    match e {
        DeskEvent::Rated { bid, rating } => {
            crate::debug!(
                "kefu {bid}: conversation {} rated {}",
                rating.conv_id,
                rating.score
            )
        }
        DeskEvent::OfflineMessage {
            bid,
            visitor_id,
            conv_id,
        } => crate::debug!("kefu {bid}: offline message from {visitor_id} in {conv_id}"),
    }
}

/// Whether `path` is one of the desk's.
pub(super) fn owns(path: &str) -> bool {
    matches!(
        path,
        "/api/canned" | "/api/notes" | "/api/rating" | "/api/hours" | "/api/offline"
    )
}

fn bad(msg: &str) -> HttpOutcome {
    HttpOutcome::Respond(error(400, Code::Invalid, msg))
}

fn forbidden(msg: &str) -> HttpOutcome {
    HttpOutcome::Respond(error(403, Code::NotLoggedIn, msg))
}

/// The caller's claims if it is `role`, else the answer refusing it.
fn caller(sh: &Shared, req: &Request, role: TokenRole) -> std::result::Result<Claims, HttpOutcome> {
    let c = bearer_claims(sh, req).map_err(HttpOutcome::Respond)?;
    if c.r != role {
        return Err(forbidden(match role {
            TokenRole::Agent => "agents only",
            TokenRole::Visitor => "the conversation's visitor only",
        }));
    }
    Ok(c)
}

/// A text field: trimmed, 1..=max characters, no control characters but line breaks.
fn text_field(
    s: &str,
    max: usize,
    what: &'static str,
) -> std::result::Result<String, &'static str> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max {
        return Err(what);
    }
    if t.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(what);
    }
    Ok(t.to_string())
}

fn shortcut(s: &str) -> std::result::Result<String, &'static str> {
    let ok = !s.is_empty()
        && s.chars().count() <= MAX_SHORTCUT
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err("shortcut: 1..32 letters, digits, _ - . (no spaces)")
    }
}

/// An email address or a phone number, loosely: what a person can be reached at.
fn contact(s: &str) -> std::result::Result<String, &'static str> {
    const MSG: &str = "contact: an email address or a phone number";
    let c = s.trim();
    if c.is_empty() || c.chars().count() > MAX_CONTACT || c.chars().any(char::is_control) {
        return Err(MSG);
    }
    let email = match c.split_once('@') {
        Some((user, host)) => {
            !user.is_empty()
                && host.contains('.')
                && !host.starts_with('.')
                && !host.ends_with('.')
                && !c.chars().any(char::is_whitespace)
                && !host.contains('@')
        }
        None => false,
    };
    let digits = c.chars().filter(char::is_ascii_digit).count();
    let phone = (5..=20).contains(&digits)
        && c.chars()
            .all(|ch| ch.is_ascii_digit() || matches!(ch, '+' | '-' | ' ' | '(' | ')'));
    if email || phone {
        Ok(c.to_string())
    } else {
        Err(MSG)
    }
}

/// `POST /api/canned` bodies.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum CannedReq {
    /// A new reply, the business's (admins) or the caller's own.
    Add {
        scope: Scope,
        shortcut: String,
        text: String,
    },
    /// Change one (its scope is the stored one).
    Update {
        id: i64,
        shortcut: String,
        text: String,
    },
    /// Remove one.
    Delete { id: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Scope {
    Business,
    Agent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteReq {
    conv_id: i64,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingReq {
    conv_id: i64,
    score: i64,
    #[serde(default)]
    comment: String,
}

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
}

#[derive(Serialize)]
struct CannedList<'a> {
    canned: &'a [Canned],
}

#[derive(Serialize)]
struct NoteList<'a> {
    conv_id: i64,
    notes: &'a [Note],
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

#[derive(Serialize)]
struct Okay {
    ok: bool,
}

fn parse<T: serde::de::DeserializeOwned>(
    req: &Request,
    shape: &str,
) -> std::result::Result<T, HttpOutcome> {
    serde_json::from_slice(&req.body).map_err(|_| bad(shape))
}

fn conv_param(req: &Request) -> Option<i64> {
    req.query_param("conv_id").and_then(|v| v.parse().ok())
}

/// Route a desk request (`owns(path)` holds).
pub(super) fn route(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    conn: ClientId,
    req: &Request,
) -> HttpOutcome {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/api/canned") => {
            let claims = match caller(sh, req, TokenRole::Agent) {
                Ok(c) => c,
                Err(o) => return o,
            };
            sh.submit_http(conn, HttpCall::Canned, move |c| {
                let a = login::check_agent(c, &claims)?;
                let list = sql::canned_list(c, &a.bid, &a.agent_id)?;
                ready(json(200, &CannedList { canned: &list }))
            })
        }
        ("POST", "/api/canned") => {
            let claims = match caller(sh, req, TokenRole::Agent) {
                Ok(c) => c,
                Err(o) => return o,
            };
            let r: CannedReq = match parse(req, "expected {op: add|update|delete, ...}") {
                Ok(r) => r,
                Err(o) => return o,
            };
            let max = sh.cfg.max_text_chars;
            let fields = match &r {
                CannedReq::Add {
                    shortcut: s, text, ..
                }
                | CannedReq::Update {
                    shortcut: s, text, ..
                } => {
                    match (
                        shortcut(s),
                        text_field(text, max, "text: 1 to max_text_chars characters"),
                    ) {
                        (Ok(s), Ok(t)) => Some((s, t)),
                        (Err(m), _) | (_, Err(m)) => return bad(m),
                    }
                }
                CannedReq::Delete { .. } => None,
            };
            sh.submit_http(conn, HttpCall::Canned, move |c| {
                canned(c, &claims, r, fields)
            })
        }
        ("GET", "/api/notes") => {
            let claims = match caller(sh, req, TokenRole::Agent) {
                Ok(c) => c,
                Err(o) => return o,
            };
            let Some(conv_id) = conv_param(req) else {
                return bad("conv_id is required");
            };
            sh.submit_http(conn, HttpCall::Notes, move |c| {
                let a = login::check_agent(c, &claims)?;
                let notes = sql::notes(c, &a.bid, conv_id)?;
                ready(json(
                    200,
                    &NoteList {
                        conv_id,
                        notes: &notes,
                    },
                ))
            })
        }
        ("POST", "/api/notes") => {
            let claims = match caller(sh, req, TokenRole::Agent) {
                Ok(c) => c,
                Err(o) => return o,
            };
            let r: NoteReq = match parse(req, "expected {conv_id, text}") {
                Ok(r) => r,
                Err(o) => return o,
            };
            let text = match text_field(
                &r.text,
                sh.cfg.max_text_chars,
                "text: 1 to max_text_chars characters",
            ) {
                Ok(t) => t,
                Err(m) => return bad(m),
            };
            sh.submit_http(conn, HttpCall::Notes, move |c| {
                let a = login::check_agent(c, &claims)?;
                let note = sql::note_add(c, &a, r.conv_id, &text, now_ms())?;
                Ok(Outcome::HttpDesk(
                    json(200, &note),
                    After::Note(a.bid, note),
                ))
            })
        }
        ("POST", "/api/rating") => {
            let claims = match caller(sh, req, TokenRole::Visitor) {
                Ok(c) => c,
                Err(o) => return o,
            };
            let r: RatingReq = match parse(req, "expected {conv_id, score, comment?}") {
                Ok(r) => r,
                Err(o) => return o,
            };
            if !(1..=5).contains(&r.score) {
                return bad("score: 1 to 5");
            }
            let comment = r.comment.trim();
            let comment = if comment.is_empty() {
                String::new()
            } else {
                match text_field(comment, MAX_COMMENT, "comment: at most 500 characters") {
                    Ok(t) => t,
                    Err(m) => return bad(m),
                }
            };
            sh.submit_http(conn, HttpCall::Rating, move |c| {
                let rating = sql::rate(
                    c,
                    &claims.b,
                    &claims.s,
                    r.conv_id,
                    r.score,
                    &comment,
                    now_ms(),
                )?;
                Ok(Outcome::HttpDesk(
                    json(200, &rating),
                    After::Rated(claims.b, rating),
                ))
            })
        }
        ("GET", "/api/hours") => {
            let bid = match req.query_param("bid") {
                Some(b) if valid_id(&b) => b.to_string(),
                _ => return bad("bid (1..64 of [A-Za-z0-9_.@-]) is required"),
            };
            sh.submit_http(conn, HttpCall::Hours, move |c| {
                if !sql::business_exists(c, &bid)? {
                    return Err(StoreError::NotFound);
                }
                let w = sql::hours_get(c, &bid)?.and_then(|(tz, j)| Week::from_stored(&tz, &j));
                let status = w.as_ref().map_or(
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
                        hours: w.map(|w| w.out()),
                    },
                ))
            })
        }
        ("POST", "/api/hours") => {
            let claims = match caller(sh, req, TokenRole::Agent) {
                Ok(c) => c,
                Err(o) => return o,
            };
            let r: HoursReq =
                match parse(req, "expected {tz, days} (or {tz: null} for always open)") {
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
            sh.submit_http(conn, HttpCall::Hours, move |c| {
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
            })
        }
        ("POST", "/api/offline") => offline(sh, cx, conn, req),
        _ => HttpOutcome::Respond(error(405, Code::Invalid, "method not allowed")),
    }
}

fn ready(r: Response) -> Result<Outcome> {
    Ok(Outcome::HttpReady(r))
}

/// Store job of `POST /api/canned`.
fn canned(
    c: &Connection,
    claims: &Claims,
    r: CannedReq,
    fields: Option<(String, String)>,
) -> Result<Outcome> {
    let a = login::check_agent(c, claims)?;
    let admin = || admin_of(c, &a);
    let (s, t) = fields.unwrap_or_default();
    match r {
        CannedReq::Add { scope, .. } => {
            let owner = match scope {
                Scope::Business => admin().map(|()| Owner::Business)?,
                Scope::Agent => Owner::Agent(&a.agent_id),
            };
            ready(json(
                200,
                &sql::canned_add(c, &a.bid, owner, &s, &t, now_ms())?,
            ))
        }
        CannedReq::Update { id, .. } => {
            let owner = owner_of(c, &a, id)?;
            ready(json(
                200,
                &sql::canned_update(c, &a.bid, owner, id, &s, &t)?,
            ))
        }
        CannedReq::Delete { id } => {
            let owner = owner_of(c, &a, id)?;
            sql::canned_delete(c, &a.bid, owner, id)?;
            ready(json(200, &Okay { ok: true }))
        }
    }
}

fn admin_of(c: &Connection, a: &Agent) -> Result<()> {
    if sql::is_admin(c, a)? {
        Ok(())
    } else {
        Err(StoreError::Forbidden(
            "only the business's admins manage its canned replies",
        ))
    }
}

/// The owner of stored reply `id`, if `a` may change it: the business's for its admins, an
/// agent's own for itself; another agent's is as good as absent.
fn owner_of<'a>(c: &Connection, a: &'a Agent, id: i64) -> Result<Owner<'a>> {
    match sql::canned_owner(c, &a.bid, id)?.as_deref() {
        Some("") => admin_of(c, a).map(|()| Owner::Business),
        Some(o) if o == a.agent_id => Ok(Owner::Agent(&a.agent_id)),
        _ => Err(StoreError::NotFound),
    }
}

/// `POST /api/offline`: a visitor's message left while the business is offline, with its
/// contact; it opens (or joins) the visitor's conversation like a first message, so agents
/// find it in the queue, and an agent's reply reaches the visitor when it comes back.
fn offline(sh: &mut Shared, cx: &mut Ctx<'_>, conn: ClientId, req: &Request) -> HttpOutcome {
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
    sh.submit_http(conn, HttpCall::Offline, move |c| {
        let (bid, vid) = (claims.b, claims.s);
        sql::contact_set(c, &bid, &vid, &name, &contact, now_ms())?;
        let me = history::Sender {
            role: "visitor",
            id: &vid,
            name: &name,
        };
        let body = history::Body::Text(message);
        let sent = routing::visitor_send(c, &bid, me, &body, None, &online, p, now_ms())?;
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

/// After a desk job's commit: the live pushes and the hook.
pub(super) fn after(sh: &mut Shared, cx: &mut Ctx<'_>, a: After) {
    match a {
        After::Note(bid, note) => {
            let push = serde_json::to_string(&Push::Note { note: &note }).unwrap_or_default();
            cx.send_to_group(&[&agents_group(&bid)], Payload::Text(&push), &[]);
        }
        After::Rated(bid, rating) => {
            let push = serde_json::to_string(&Push::Rated { rating: &rating }).unwrap_or_default();
            cx.send_to_group(&[&agents_group(&bid)], Payload::Text(&push), &[]);
            announce(
                sh,
                &DeskEvent::Rated {
                    bid: &bid,
                    rating: &rating,
                },
            );
        }
        After::Offline(bid, vid, sent) => {
            if let Some(r) = &sent.routed {
                push_routed(cx, r);
            }
            fan_message(cx, &bid, &vid, sent.agent_id.as_deref(), &sent.msg);
            announce(
                sh,
                &DeskEvent::OfflineMessage {
                    bid: &bid,
                    visitor_id: &vid,
                    conv_id: sent.msg.conv_id,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_and_shortcuts() {
        for ok in [
            "a@b.co",
            "张三@例子.中国",
            "+86 138-0013-8000",
            "(010) 1234 5678",
        ] {
            assert!(contact(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a@b",
            "@b.co",
            "a b@c.de",
            "1234",
            "call me",
            "a@.co",
            "x\u{0}@y.z",
            &"9".repeat(101),
        ] {
            assert!(contact(bad).is_err(), "{bad:?}");
        }
        assert!(shortcut("hi").is_ok() && shortcut("退款-1").is_ok());
        for bad in ["", "a b", "/x", "<b>", &"x".repeat(33)] {
            assert!(shortcut(bad).is_err(), "{bad:?}");
        }
        assert!(text_field(" x ", 5, "e").is_ok());
        assert!(text_field("   ", 5, "e").is_err());
        assert!(text_field("abcdef", 5, "e").is_err());
        assert!(text_field("a\u{7}b", 5, "e").is_err());
    }
}
