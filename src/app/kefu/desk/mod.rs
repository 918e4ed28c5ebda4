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

mod canned;
mod fields;
mod offline;

use super::auth::{Claims, Role as TokenRole};
use super::done::{HttpCall, Outcome};
use super::http::{bearer_claims, error, json};
use super::login;
use super::push::{fan_message, push_routed};
use super::routing::VisitorSent;
use super::shared::{business, Shared};
use super::wire::Code;
use super::{agents_group, ClientId};
use crate::api::{Ctx, HttpOutcome, Payload};
use crate::protocol::http::request::Request;
use crate::protocol::http::response::Response;
use crate::store::convo::{self as sql, Note, Rating};
use crate::store::{now_ms, Result};
use fields::{text_field, MAX_COMMENT};
use serde::{Deserialize, Serialize};

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

/// Something happened at the desk that parties outside the app may want to hear of; logged
/// at debug. The webhook events for them (`conversation.rated`, and `message.created` for an
/// offline message) do not start here: triggers queue them in the very transaction that
/// stored the rating or the message (`store/triggers.rs`), so none is lost to a crash
/// between the commit and this call.
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

#[derive(Serialize)]
struct NoteList<'a> {
    conv_id: i64,
    notes: &'a [Note],
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
        ("GET", "/api/canned") => canned::list(sh, conn, req),
        ("POST", "/api/canned") => canned::change(sh, conn, req),
        ("GET", "/api/notes") => {
            let claims = match caller(sh, req, TokenRole::Agent) {
                Ok(c) => c,
                Err(o) => return o,
            };
            let Some(conv_id) = conv_param(req) else {
                return bad("conv_id is required");
            };
            sh.submit_http(conn, HttpCall::Notes, business(&claims.b), move |c| {
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
            sh.submit_http(conn, HttpCall::Notes, business(&claims.b), move |c| {
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
            sh.submit_http(conn, HttpCall::Rating, business(&claims.b), move |c| {
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
        ("GET", "/api/hours") => offline::hours(sh, conn, req),
        ("POST", "/api/hours") => offline::set_hours(sh, conn, req),
        ("POST", "/api/offline") => offline::leave(sh, cx, conn, req),
        _ => HttpOutcome::Respond(error(405, Code::Invalid, "method not allowed")),
    }
}

fn ready(r: Response) -> Result<Outcome> {
    Ok(Outcome::HttpReady(r))
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
