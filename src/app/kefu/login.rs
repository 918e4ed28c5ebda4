//! Login jobs run on a store thread: agents (token already verified on the loop; the row
//! must still exist with the same password version) and visitors (token, integrator
//! signature, or a new anonymous id), plus the visitor metadata they record.

use super::auth::{self, Claims, Role};
use super::queue;
use super::routing::{self, Policy, Routed};
use super::state::ConvState;
use super::wire::{ConvOut, QueueEntry};
use crate::store::db::{params, Db};
use crate::store::depts::{self, Dept};
use crate::store::tenancy::{self, random_hex, Agent, AgentRole};
use crate::store::{valid_id, Result, StoreError};

/// A successful agent login.
#[derive(Debug)]
pub(crate) struct AgentIn {
    /// The agent row.
    pub agent: Agent,
    /// Its departments.
    pub depts: Vec<Dept>,
    /// Its active conversations (after the drain below).
    pub conversations: Vec<ConvOut>,
    /// The queue as the agent sees it: its departments' lines and the one without.
    pub queue: Vec<QueueEntry>,
    /// The queue drained into the newcomer's free slots.
    pub routed: Routed,
}

/// Check an agent token against the store and route waiting conversations to it.
pub(crate) fn agent(
    conn: &Db,
    claims: &Claims,
    online: &[String],
    p: Policy,
    now: i64,
) -> Result<AgentIn> {
    let agent = check_agent(conn, claims)?;
    let routed = routing::drain(conn, &agent.bid, online, p, now)?;
    let conversations = routing::agent_conversations(conn, &agent.bid, &agent.agent_id)?;
    let queue = queue::entries(conn, &agent.bid, Some(&agent.agent_id))?;
    Ok(AgentIn {
        depts: depts::of_agent(conn, &agent.bid, &agent.agent_id)?,
        agent,
        conversations,
        queue,
        routed,
    })
}

/// The agent an agent token names, if the token is still good: the row exists (not removed)
/// and carries the token's generation (no password change since, no remove and re-add), and
/// the agent is not disabled. Every use of an agent token comes here, on a store thread,
/// after the signature check.
pub(crate) fn check_agent(conn: &Db, claims: &Claims) -> Result<Agent> {
    match tenancy::agent_get(conn, &claims.b, &claims.s)? {
        Some(a) if claims.r == Role::Agent && a.pw_ver == claims.pv && !a.disabled => Ok(a),
        _ => Err(StoreError::Revoked),
    }
}

/// [`check_agent`], and the agent must be an admin of its business: every admin action
/// comes here (the business acted on is always the token's).
pub(crate) fn check_admin(conn: &Db, claims: &Claims) -> Result<Agent> {
    let a = check_agent(conn, claims)?;
    if a.role != AgentRole::Admin {
        return Err(StoreError::Forbidden("admins only"));
    }
    Ok(a)
}

/// Which of these agent sessions `(bid, agent_id, generation)` are no longer backed by their
/// agent row (removed, or a newer generation).
pub(crate) fn revoked(
    conn: &Db,
    sessions: &[(String, String, i64)],
) -> Result<Vec<(String, String, i64)>> {
    let mut gone = Vec::new();
    for (bid, id, pv) in sessions {
        match tenancy::agent_get(conn, bid, id)? {
            Some(a) if a.pw_ver == *pv && !a.disabled => {}
            _ => gone.push((bid.clone(), id.clone(), *pv)),
        }
    }
    Ok(gone)
}

/// Verify a password (slow: argon2) for the HTTP login.
pub(crate) fn agent_password(conn: &Db, bid: &str, agent_id: &str, pw: &str) -> Result<Agent> {
    let a = tenancy::agent_get(conn, bid, agent_id)?;
    match a {
        Some(a) if auth::verify_password(pw, &a.pw_hash) => {
            if a.disabled {
                return Err(StoreError::Forbidden("this agent is disabled"));
            }
            Ok(a)
        }
        Some(_) => Err(StoreError::NotFound),
        None => {
            // Spend the same time as a real check so a wrong agent id is not distinguishable
            // from a wrong password by timing.
            let _ = auth::verify_password(pw, dummy_hash());
            Err(StoreError::NotFound)
        }
    }
}

/// An argon2id hash of a random string (made once), for equal-time failures.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| auth::hash_password(&random_hex(16)).unwrap_or_default())
}

/// How a visitor proves who it is.
#[derive(Debug, Clone)]
pub(crate) enum Ident {
    /// A visitor token we issued (already verified on the loop).
    Token(Claims),
    /// An integrator-signed identity (checked here against the business secret).
    Signed {
        /// Integrator's user id.
        visitor_id: String,
        /// Name.
        name: String,
        /// Signing time, seconds.
        ts: i64,
        /// Hex HMAC.
        sig: String,
    },
    /// Nobody yet: a new anonymous visitor.
    Anonymous,
}

/// What the connection tells about the visitor.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    /// Client IP.
    pub ip: String,
    /// User agent.
    pub user_agent: String,
    /// Page URL.
    pub page_url: String,
    /// Referrer.
    pub referrer: String,
    /// Self-declared name (anonymous visitors).
    pub name: String,
    /// Department chosen by the page (with a signed identity: signed with it).
    pub dept: Option<String>,
}

/// A logged-in visitor.
#[derive(Debug, Clone)]
pub(crate) struct VisitorIn {
    /// Business.
    pub bid: String,
    /// Visitor id.
    pub visitor_id: String,
    /// Name.
    pub name: String,
    /// Integrator-verified.
    pub verified: bool,
    /// Open conversation.
    pub conv: Option<ConvOut>,
    /// Its queue position when queued.
    pub position: Option<i64>,
    /// The department its next conversation goes to.
    pub dept: Option<String>,
}

/// Resolve a visitor identity, record its metadata, and find its open conversation.
pub(crate) fn visitor(
    conn: &Db,
    bid: &str,
    ident: Ident,
    meta: &Meta,
    max_age_s: i64,
    now: i64,
) -> Result<VisitorIn> {
    let biz = tenancy::business_get(conn, bid)?.ok_or(StoreError::NotFound)?;
    let (vid, name, verified) = match ident {
        Ident::Token(c) => {
            if c.r != Role::Visitor || c.b != bid {
                return Err(StoreError::Invalid("token is for another business"));
            }
            // A verified visitor's name is the one its integrator signed: an empty name
            // keeps the stored one (see the upsert below), whatever the page now claims.
            let name = if c.vf {
                String::new()
            } else {
                meta.name.clone()
            };
            (c.s, name, c.vf)
        }
        Ident::Signed {
            visitor_id,
            name,
            ts,
            sig,
        } => {
            // Anonymous ids live in the v_ namespace: an integrator id there could collide.
            if !valid_id(&visitor_id) || visitor_id.starts_with("v_") {
                return Err(StoreError::Invalid("bad visitor_id"));
            }
            auth::verify_identity(
                &biz.secret,
                bid,
                &visitor_id,
                &name,
                meta.dept.as_deref(),
                ts,
                &sig,
                now / 1000,
                max_age_s,
            )
            .map_err(StoreError::Invalid)?;
            (visitor_id, name, true)
        }
        Ident::Anonymous => (format!("v_{}", random_hex(8)), meta.name.clone(), false),
    };
    conn.prepare_cached(
        "INSERT INTO visitors (bid, visitor_id, name, verified, ip, page_url, referrer, user_agent, first_seen, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
         ON CONFLICT(bid, visitor_id) DO UPDATE SET
            name = CASE WHEN excluded.name != '' AND (excluded.verified != 0 OR visitors.verified = 0)
                        THEN excluded.name ELSE visitors.name END,
            verified = CASE WHEN excluded.verified != 0 THEN 1 ELSE visitors.verified END,
            ip = CASE WHEN excluded.ip != '' THEN excluded.ip ELSE visitors.ip END,
            page_url = CASE WHEN excluded.page_url != '' THEN excluded.page_url ELSE visitors.page_url END,
            referrer = CASE WHEN excluded.referrer != '' THEN excluded.referrer ELSE visitors.referrer END,
            user_agent = CASE WHEN excluded.user_agent != '' THEN excluded.user_agent ELSE visitors.user_agent END,
            last_seen = excluded.last_seen",
    )?
    .execute(params![
        bid,
        vid,
        name,
        verified,
        meta.ip,
        meta.page_url,
        meta.referrer,
        meta.user_agent,
        now
    ])?;
    let name: String = conn
        .prepare_cached("SELECT name FROM visitors WHERE bid = ?1 AND visitor_id = ?2")?
        .query_row([bid, &vid], |r| r.get(0))?;
    let conv = match routing::open_of_visitor(conn, bid, &vid)? {
        Some(id) => routing::load(conn, id, false)?,
        None => None,
    };
    let position = match &conv {
        Some(c) if c.state == ConvState::Queued => Some(queue::position(
            conn,
            bid,
            c.dept_id.as_deref(),
            c.queued_at,
            c.conv_id,
        )?),
        _ => None,
    };
    // A routing choice, not a right: any visitor may pick any department that exists.
    if let Some(d) = &meta.dept {
        if depts::get(conn, bid, d)?.is_none() {
            return Err(StoreError::Invalid("no such department"));
        }
    }
    Ok(VisitorIn {
        bid: bid.to_string(),
        visitor_id: vid,
        name,
        verified,
        conv,
        position,
        dept: meta.dept.clone(),
    })
}
