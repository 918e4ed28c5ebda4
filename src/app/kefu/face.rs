//! A business's face over HTTP: `GET /api/business/profile?bid=` (public: the visitor page
//! and the widget show it, and its departments for the visitor to pick from) and `POST
//! /api/business/settings` (the business's own agents). The face is the widget's whole look
//! and texts: colour, side, title, welcome, offline text, leave-a-message prompt, logo, name.
//!
//! Who may change a business's settings: an admin of that business, with its agent token;
//! any agent may change its own display name and avatar. The business is the token's,
//! never one named in the request (an unknown field, `bid` included, is refused). Visitors
//! and plain agents asking for business fields get 403, callers without a valid token 401,
//! and an admin of another business can only ever change its own. The host's operator uses
//! `kefu business set` (src/cli/). The fields are checked in `store/profile.rs` whoever
//! sets them.

use super::auth::{Claims, Role as TokenRole};
use super::done::Outcome;
use super::http::{error, json};
use super::wire::Code;
use super::{login, upload};
use crate::protocol::http::request::Request;
use crate::protocol::http::response::Response;
use crate::store::db::Db;
use crate::store::depts::{self, Dept};
use crate::store::profile::{self, Face, Patch, Profile, Side};
use crate::store::{valid_id, Result, StoreError};
use serde::{Deserialize, Serialize};

/// `POST /api/business/settings` body: every field optional (absent: unchanged).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsReq {
    name: Option<String>,
    logo: Option<String>,
    color: Option<String>,
    welcome: Option<String>,
    offline: Option<String>,
    /// The chat window's title.
    title: Option<String>,
    /// The launcher's side, `right` or `left`.
    position: Option<Side>,
    /// The leave-a-message form's heading.
    leave_prompt: Option<String>,
    /// The calling agent's own avatar (an agent sets no one else's).
    avatar: Option<String>,
    /// The calling agent's own display name.
    agent_name: Option<String>,
}

#[derive(Serialize)]
struct FaceOut<'a> {
    id: &'a str,
    name: &'a str,
    avatar: &'a str,
}

#[derive(Serialize)]
struct ProfileOut<'a> {
    bid: &'a str,
    name: &'a str,
    logo: &'a str,
    color: &'a str,
    welcome: &'a str,
    offline: &'a str,
    title: &'a str,
    position: Side,
    leave_prompt: &'a str,
    agents: Vec<FaceOut<'a>>,
    /// The departments a visitor may pick (the visitor page's choice).
    departments: &'a [Dept],
}

fn answer(p: &Profile, faces: &[Face], departments: &[Dept]) -> Response {
    json(
        200,
        &ProfileOut {
            bid: &p.bid,
            name: &p.name,
            logo: &p.logo,
            color: &p.color,
            welcome: &p.welcome,
            offline: &p.offline,
            title: &p.title,
            position: p.side,
            leave_prompt: &p.leave_prompt,
            agents: faces
                .iter()
                .map(|f| FaceOut {
                    id: &f.agent_id,
                    name: &f.name,
                    avatar: &f.avatar,
                })
                .collect(),
            departments,
        },
    )
}

/// The `bid` of a profile request, or the answer refusing it.
pub(super) fn profile_bid(req: &Request) -> std::result::Result<String, Response> {
    match req.query_param("bid") {
        Some(b) if valid_id(&b) => Ok(b.to_string()),
        _ => Err(error(
            400,
            Code::Invalid,
            "bid (1..64 of [A-Za-z0-9_.@-]) is required",
        )),
    }
}

/// Store job of `GET /api/business/profile`.
pub(super) fn profile(conn: &Db, bid: &str) -> Result<Outcome> {
    let p = profile::get(conn, bid)?.ok_or(StoreError::NotFound)?;
    let faces = profile::faces(conn, bid)?;
    Ok(Outcome::HttpReady(answer(
        &p,
        &faces,
        &depts::list(conn, bid)?,
    )))
}

/// Who is calling `POST /api/business/settings` and what it asks, or the refusal.
pub(super) fn settings_req(
    claims: &Claims,
    req: &Request,
) -> std::result::Result<SettingsReq, Response> {
    if claims.r != TokenRole::Agent {
        return Err(error(
            403,
            Code::NotLoggedIn,
            "only the business's agents (its admins, for business fields) may change its settings",
        ));
    }
    serde_json::from_slice::<SettingsReq>(&req.body).map_err(|_| {
        error(
            400,
            Code::Invalid,
            "expected {name?, logo?, color?, welcome?, offline?, title?, position?, leave_prompt?, avatar?, agent_name?}",
        )
    })
}

/// An image URL must be an upload of this business (anyone's image URL is public, but a
/// business shows only what it uploaded itself).
fn owned(conn: &Db, bid: &str, url: &Option<String>) -> Result<()> {
    match url.as_deref().map(str::trim) {
        None | Some("") => Ok(()),
        Some(u) => {
            profile::clean_image(u)?;
            if upload::uploaded_by(conn, u, bid)? {
                upload::mark_referenced(conn, u)
            } else {
                Err(StoreError::Invalid(
                    "logo/avatar: upload it first with POST /api/upload",
                ))
            }
        }
    }
}

/// Store job of `POST /api/business/settings` (on the writer: its savepoint makes it all or
/// nothing).
pub(super) fn settings(conn: &Db, claims: &Claims, r: SettingsReq) -> Result<Outcome> {
    let business = r.name.is_some()
        || r.logo.is_some()
        || r.color.is_some()
        || r.welcome.is_some()
        || r.offline.is_some()
        || r.title.is_some()
        || r.position.is_some()
        || r.leave_prompt.is_some();
    let agent = if business {
        login::check_admin(conn, claims)?
    } else {
        login::check_agent(conn, claims)?
    };
    let bid = agent.bid.as_str();
    let patch = Patch {
        name: r.name,
        logo: r.logo,
        color: r.color,
        welcome: r.welcome,
        offline: r.offline,
        title: r.title,
        side: r.position,
        leave_prompt: r.leave_prompt,
    };
    // Validate everything before writing anything.
    profile::clean(&patch)?;
    if let Some(a) = &r.avatar {
        profile::clean_image(a)?;
    }
    if let Some(n) = &r.agent_name {
        profile::clean_agent_name(n)?;
    }
    owned(conn, bid, &patch.logo)?;
    owned(conn, bid, &r.avatar)?;
    let p = profile::set(conn, bid, &patch)?;
    if r.avatar.is_some() || r.agent_name.is_some() {
        let (name, avatar) = (r.agent_name.as_deref(), r.avatar.as_deref());
        profile::set_agent(conn, bid, &agent.agent_id, name, avatar)?;
    }
    let faces = profile::faces(conn, bid)?;
    Ok(Outcome::HttpReady(answer(
        &p,
        &faces,
        &depts::list(conn, bid)?,
    )))
}
