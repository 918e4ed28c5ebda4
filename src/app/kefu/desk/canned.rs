//! Canned replies: `GET /api/canned` (the business's and the caller's own) and `POST
//! /api/canned` (add, update, delete; the business's need an admin).

use super::fields::{shortcut, text_field};
use super::{bad, caller, parse, ready};
use crate::api::HttpOutcome;
use crate::app::kefu::auth::{Claims, Role as TokenRole};
use crate::app::kefu::done::{HttpCall, Outcome};
use crate::app::kefu::http::json;
use crate::app::kefu::login;
use crate::app::kefu::shared::{business, Shared};
use crate::app::kefu::ClientId;
use crate::protocol::http::request::Request;
use crate::store::convo::{self as sql, Canned, Owner};
use crate::store::db::Db;
use crate::store::tenancy::Agent;
use crate::store::{now_ms, Result, StoreError};
use serde::{Deserialize, Serialize};

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

#[derive(Serialize)]
struct CannedList<'a> {
    canned: &'a [Canned],
}

#[derive(Serialize)]
struct Okay {
    ok: bool,
}

/// `GET /api/canned`.
pub(super) fn list(sh: &mut Shared, conn: ClientId, req: &Request) -> HttpOutcome {
    let claims = match caller(sh, req, TokenRole::Agent) {
        Ok(c) => c,
        Err(o) => return o,
    };
    sh.submit_http(conn, HttpCall::Canned, business(&claims.b), move |c| {
        let a = login::check_agent(c, &claims)?;
        let list = sql::canned_list(c, &a.bid, &a.agent_id)?;
        ready(json(200, &CannedList { canned: &list }))
    })
}

/// `POST /api/canned`.
pub(super) fn change(sh: &mut Shared, conn: ClientId, req: &Request) -> HttpOutcome {
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
    sh.submit_http(conn, HttpCall::Canned, business(&claims.b), move |c| {
        canned(c, &claims, r, fields)
    })
}

/// Store job of `POST /api/canned`.
fn canned(
    c: &Db,
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

fn admin_of(c: &Db, a: &Agent) -> Result<()> {
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
fn owner_of<'a>(c: &Db, a: &'a Agent, id: i64) -> Result<Owner<'a>> {
    match sql::canned_owner(c, &a.bid, id)?.as_deref() {
        Some("") => admin_of(c, a).map(|()| Owner::Business),
        Some(o) if o == a.agent_id => Ok(Owner::Agent(&a.agent_id)),
        _ => Err(StoreError::NotFound),
    }
}
