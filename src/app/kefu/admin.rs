//! The business admin's API, `POST /api/admin` (docs/kefu-protocol.md "Admin API"): agents
//! (add, disable, reset password, role, departments, maximum), departments and the routing
//! policy, for the console's settings area.
//!
//! Who may call it: an agent of role `admin`, with its agent token, on its own business
//! only: the business is always the token's (a `bid` field is refused as unknown), and
//! every call re-reads the caller's row on the store thread (`login::check_admin`), so a
//! demoted, disabled, removed or re-passworded admin is refused at once. Visitors' tokens
//! get 403, no token or a bad one 401.
//!
//! Every answer is the business's whole admin view ([`State`]), so the console just
//! redraws. What a change means for live connections (sessions to close, groups to join or
//! leave, conversations to requeue or route) is done on the loop from [`Effect`].

use super::agent;
use super::auth::{self, Claims, Role as TokenRole};
use super::done::{HttpCall, Outcome};
use super::http::{error, json};
use super::login;
use super::presence::{push_requeued, requeue_absent, Requeued};
use super::push::{mark_online, push_routed, push_uid};
use super::queue;
use super::revoke;
use super::routing::{self, Policy, Routed};
use super::wire::Out;
use super::wire::{Code, ConvOut, QueueEntry};
use super::{agent_uid, dept_group};
use crate::api::Ctx;
use crate::config::RoutingPolicy;
use crate::protocol::http::request::Request;
use crate::protocol::http::response::Response;
use crate::store::db::{Db, WriteLock};
use crate::store::depts::{self, Dept};
use crate::store::tenancy::{self, AgentRole};
use crate::store::{now_ms, profile, Result, StoreError};
use serde::{Deserialize, Deserializer, Serialize};

/// Shortest password an admin may set (as `kefu agent add` asks).
const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password (argon2 hashes any length; a bound keeps a request's cost bounded).
const MAX_PASSWORD_CHARS: usize = 256;

/// `"max": null` (back to the config's default) is not the same as no `max` (unchanged).
fn some_option<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// One admin call, tagged by `op`.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum AdminReq {
    /// The admin view, unchanged (a struct variant: a unit one would ignore extra fields).
    State {},
    /// A new agent of the business.
    AgentAdd {
        agent_id: String,
        name: String,
        password: String,
        #[serde(default)]
        role: AgentRole,
        max: Option<i64>,
        #[serde(default)]
        depts: Vec<String>,
    },
    /// Change an agent: each field given is set.
    AgentUpdate {
        agent_id: String,
        name: Option<String>,
        role: Option<AgentRole>,
        #[serde(default, deserialize_with = "some_option")]
        max: Option<Option<i64>>,
        depts: Option<Vec<String>>,
    },
    /// Disable (sessions closed, conversations requeued, no routing) or enable an agent.
    AgentDisable { agent_id: String, disabled: bool },
    /// A new password for an agent (its sessions are closed).
    AgentPassword { agent_id: String, password: String },
    /// Create or rename a department.
    DeptSave { dept_id: String, name: String },
    /// Remove a department (its waiting visitors go to the line without one).
    DeptRemove { dept_id: String },
    /// The business's routing policy (null: the config's).
    Routing { policy: Option<RoutingPolicy> },
}

impl AdminReq {
    /// Argon2 takes tens of milliseconds: calls that hash run on the login thread, the
    /// rest on the writer (whose savepoint makes each all or nothing).
    pub(super) fn call(&self) -> HttpCall {
        match self {
            AdminReq::AgentAdd { .. } | AdminReq::AgentPassword { .. } => HttpCall::AdminHash,
            _ => HttpCall::Admin,
        }
    }
}

/// An agent as its admin sees it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AgentRow {
    agent_id: String,
    name: String,
    role: AgentRole,
    disabled: bool,
    /// Its own maximum (null: the config's default).
    max: Option<i64>,
    /// Its departments' ids.
    depts: Vec<String>,
    /// Any connection of it is open (set on the loop).
    online: bool,
}

/// The business's admin view.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct State {
    bid: String,
    /// The business's own policy (null: the config's, `default_routing`).
    routing: Option<RoutingPolicy>,
    default_routing: RoutingPolicy,
    default_max: i64,
    agents: Vec<AgentRow>,
    departments: Vec<Dept>,
}

/// What a change means for live connections.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Nothing live changes.
    None,
    /// An agent's tokens died (disabled or new password): close its sessions; a disabled
    /// one's conversations were requeued.
    Revoked {
        agent_id: String,
        requeued: Option<Box<Requeued>>,
    },
    /// An agent's departments changed: move its connections between department groups and
    /// send it its new queue view.
    Depts {
        agent_id: String,
        left: Vec<String>,
        joined: Vec<String>,
        conversations: Vec<ConvOut>,
        queue: Vec<QueueEntry>,
        routed: Routed,
    },
    /// A department is gone: its (now empty) line is announced, then its group dissolved.
    DeptRemoved { dept_id: String, routed: Routed },
    /// More room (a maximum, a policy): routing ran.
    Routed(Routed),
}

/// A finished admin call.
#[derive(Debug)]
pub(crate) struct Done {
    /// The view to answer with.
    pub(crate) state: State,
    /// What to do on the loop.
    pub(crate) effect: Effect,
}

/// Who is calling and what it asks, or the refusal (before any store work).
pub(super) fn parse(claims: &Claims, req: &Request) -> std::result::Result<AdminReq, Response> {
    if claims.r != TokenRole::Agent {
        return Err(error(403, Code::NotLoggedIn, "admins only"));
    }
    serde_json::from_slice::<AdminReq>(&req.body)
        .map_err(|e| error(400, Code::Invalid, &format!("bad admin request: {e}")))
}

fn check_password(pw: &str) -> Result<()> {
    let n = pw.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(StoreError::Invalid("password must be 8..256 characters"));
    }
    Ok(())
}

fn check_max(max: Option<i64>) -> Result<()> {
    match max {
        Some(m) if !(0..=1000).contains(&m) => Err(StoreError::Invalid("max must be 0..1000")),
        _ => Ok(()),
    }
}

/// The admin view of `bid`.
pub(crate) fn state(conn: &Db, bid: &str, p: Policy) -> Result<State> {
    let mut agents = Vec::new();
    for a in tenancy::agent_list(conn, Some(bid))? {
        let depts = depts::of_agent(conn, bid, &a.agent_id)?
            .into_iter()
            .map(|d| d.dept_id)
            .collect();
        agents.push(AgentRow {
            agent_id: a.agent_id,
            name: a.name,
            role: a.role,
            disabled: a.disabled,
            max: a.max_concurrent,
            depts,
            online: false,
        });
    }
    Ok(State {
        bid: bid.to_string(),
        routing: depts::policy(conn, bid)?,
        default_routing: p.policy,
        default_max: p.max_per_agent,
        agents,
        departments: depts::list(conn, bid)?,
    })
}

/// The store job of one admin call (`online`: the business's agents online, from the loop).
pub(super) fn run(
    conn: &Db,
    claims: &Claims,
    r: AdminReq,
    online: &[String],
    p: Policy,
) -> Result<Outcome> {
    let hashing = r.call() == HttpCall::AdminHash;
    // The login thread has no batch transaction of its own: hash first (slow, no lock held),
    // then one short write transaction under the business's lock. The writer's savepoint
    // already wraps the rest.
    let hash = match &r {
        AdminReq::AgentAdd { password, .. } | AdminReq::AgentPassword { password, .. } => {
            check_password(password)?;
            // The caller must be an admin before anything costly is done for it.
            login::check_admin(conn, claims)?;
            Some(auth::hash_password(password).map_err(|_| StoreError::Invalid("bad password"))?)
        }
        _ => None,
    };
    let done = if hashing {
        conn.begin_write_for(&WriteLock::Businesses(&[claims.b.as_str()]))?;
        match apply(conn, claims, r, hash, online, p) {
            Ok(d) => {
                conn.commit()?;
                d
            }
            Err(e) => {
                conn.rollback();
                return Err(e);
            }
        }
    } else {
        apply(conn, claims, r, hash, online, p)?
    };
    Ok(Outcome::Admin(Box::new(done)))
}

fn apply(
    conn: &Db,
    claims: &Claims,
    r: AdminReq,
    hash: Option<String>,
    online: &[String],
    p: Policy,
) -> Result<Done> {
    let me = login::check_admin(conn, claims)?;
    let bid = me.bid.as_str();
    let now = now_ms();
    let exists = |id: &str| -> Result<tenancy::Agent> {
        tenancy::agent_get(conn, bid, id)?.ok_or(StoreError::NotFound)
    };
    let effect = match r {
        AdminReq::State {} => Effect::None,
        AdminReq::AgentAdd {
            agent_id,
            name,
            role,
            max,
            depts: ds,
            ..
        } => {
            check_max(max)?;
            let name = profile::clean_agent_name(&name)?;
            let hash = hash.ok_or(StoreError::Invalid("password is required"))?;
            tenancy::agent_add_as(conn, bid, &agent_id, &name, &hash, max, role)?;
            depts::set_of_agent(conn, bid, &agent_id, &ds)?;
            Effect::None
        }
        AdminReq::AgentUpdate {
            agent_id,
            name,
            role,
            max,
            depts: ds,
        } => {
            let a = exists(&agent_id)?;
            if let Some(n) = &name {
                profile::set_agent(conn, bid, &agent_id, Some(n), None)?;
            }
            if let Some(role) = role {
                if role != AgentRole::Admin && a.role == AgentRole::Admin && !a.disabled {
                    last_admin_guard(conn, bid)?;
                }
                tenancy::agent_set_role(conn, bid, &agent_id, role)?;
            }
            if let Some(m) = max {
                check_max(m)?;
                tenancy::agent_set_max(conn, bid, &agent_id, m)?;
            }
            match ds {
                Some(ds) => {
                    let old: Vec<String> = depts::of_agent(conn, bid, &agent_id)?
                        .into_iter()
                        .map(|d| d.dept_id)
                        .collect();
                    depts::set_of_agent(conn, bid, &agent_id, &ds)?;
                    let new: Vec<String> = depts::of_agent(conn, bid, &agent_id)?
                        .into_iter()
                        .map(|d| d.dept_id)
                        .collect();
                    let left = old.iter().filter(|d| !new.contains(d)).cloned().collect();
                    let joined = new.iter().filter(|d| !old.contains(d)).cloned().collect();
                    Effect::Depts {
                        routed: routing::drain(conn, bid, online, p, now)?,
                        conversations: routing::agent_conversations(conn, bid, &agent_id)?,
                        queue: queue::entries(conn, bid, Some(&agent_id))?,
                        agent_id,
                        left,
                        joined,
                    }
                }
                None if max.is_some() => Effect::Routed(routing::drain(conn, bid, online, p, now)?),
                None => Effect::None,
            }
        }
        AdminReq::AgentDisable { agent_id, disabled } => {
            let a = exists(&agent_id)?;
            if disabled && a.agent_id == me.agent_id {
                return Err(StoreError::Conflict("you cannot disable yourself"));
            }
            if disabled && a.role == AgentRole::Admin && !a.disabled {
                last_admin_guard(conn, bid)?;
            }
            tenancy::agent_set_disabled(conn, bid, &agent_id, disabled)?;
            if disabled {
                let others: Vec<String> =
                    online.iter().filter(|o| **o != agent_id).cloned().collect();
                let rq = requeue_absent(conn, bid, &agent_id, &others, p, now, true)?;
                Effect::Revoked {
                    agent_id,
                    requeued: Some(Box::new(rq)),
                }
            } else {
                Effect::None
            }
        }
        AdminReq::AgentPassword { agent_id, .. } => {
            exists(&agent_id)?;
            let hash = hash.ok_or(StoreError::Invalid("password is required"))?;
            tenancy::agent_set_password(conn, bid, &agent_id, &hash)?;
            Effect::Revoked {
                agent_id,
                requeued: None,
            }
        }
        AdminReq::DeptSave { dept_id, name } => {
            depts::upsert(conn, bid, &dept_id, &name)?;
            Effect::None
        }
        AdminReq::DeptRemove { dept_id } => {
            depts::remove(conn, bid, &dept_id)?;
            let also = [Some(dept_id.clone()), None];
            let routed = routing::drain_but(conn, bid, online, p, now, None, also)?;
            Effect::DeptRemoved { dept_id, routed }
        }
        AdminReq::Routing { policy } => {
            depts::set_policy(conn, bid, policy)?;
            Effect::Routed(routing::drain(conn, bid, online, p, now)?)
        }
    };
    Ok(Done {
        state: state(conn, bid, p)?,
        effect,
    })
}

/// A business keeps at least one enabled admin: the last may not be demoted or disabled.
fn last_admin_guard(conn: &Db, bid: &str) -> Result<()> {
    if tenancy::admin_count(conn, bid)? <= 1 {
        return Err(StoreError::Conflict("a business keeps at least one admin"));
    }
    Ok(())
}

/// A finished call back on the loop: make its effect on live connections, and answer
/// with the view (agents' presence filled in from the gateway).
pub(super) fn done(cx: &mut Ctx<'_>, d: Done) -> Response {
    let Done { mut state, effect } = d;
    let bid = state.bid.clone();
    match effect {
        Effect::None => {}
        Effect::Revoked { agent_id, requeued } => {
            let ids = cx.get_client_id_by_uid(&agent_uid(&bid, &agent_id));
            revoke::revoke(cx, &ids);
            if let Some(r) = requeued {
                push_requeued(cx, &r);
            }
        }
        Effect::Depts {
            agent_id,
            left,
            joined,
            mut conversations,
            queue,
            routed,
        } => {
            let uid = agent_uid(&bid, &agent_id);
            for c in cx.get_client_id_by_uid(&uid) {
                for d in &left {
                    let _ = cx.leave_group(c, &dept_group(&bid, d));
                }
                for d in &joined {
                    let _ = cx.join_group(c, &dept_group(&bid, d));
                }
            }
            mark_online(cx, &mut conversations);
            push_uid(
                cx,
                &uid,
                &Out::Conversations {
                    conversations: &conversations,
                    queue: &agent::shown(&queue),
                },
            );
            push_routed(cx, &routed);
        }
        Effect::DeptRemoved { dept_id, routed } => {
            // The empty line reaches the department's agents before the group goes.
            push_routed(cx, &routed);
            let _ = cx.ungroup(&dept_group(&bid, &dept_id));
        }
        Effect::Routed(r) => push_routed(cx, &r),
    }
    for a in &mut state.agents {
        a.online = cx.is_uid_online(&agent_uid(&bid, &a.agent_id));
    }
    json(200, &state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The business is always the token's: a `bid` (or any unknown field) is refused in
    /// every call, and `max: null` differs from no `max`.
    #[test]
    fn requests_parse_strictly() {
        let p = |s: &str| serde_json::from_str::<AdminReq>(s);
        assert!(matches!(p(r#"{"op":"state"}"#), Ok(AdminReq::State {})));
        for bad in [
            r#"{"op":"state","bid":"other"}"#,
            r#"{"op":"agent_disable","agent_id":"a","disabled":true,"bid":"x"}"#,
            r#"{"op":"agent_add","agent_id":"a","name":"A","password":"12345678","role":"root"}"#,
            r#"{"op":"routing","policy":"random"}"#,
            r#"{"op":"nope"}"#,
            r#"{"agent_id":"a"}"#,
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        let max = |s: &str| match p(s) {
            Ok(AdminReq::AgentUpdate { max, .. }) => max,
            other => panic!("{other:?}"),
        };
        assert_eq!(max(r#"{"op":"agent_update","agent_id":"a"}"#), None);
        assert_eq!(
            max(r#"{"op":"agent_update","agent_id":"a","max":null}"#),
            Some(None)
        );
        assert_eq!(
            max(r#"{"op":"agent_update","agent_id":"a","max":3}"#),
            Some(Some(3))
        );
        assert!(matches!(
            p(r#"{"op":"routing","policy":null}"#),
            Ok(AdminReq::Routing { policy: None })
        ));
    }
}
