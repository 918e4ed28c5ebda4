//! Revocation of live sessions. Tokens are re-checked against the store at every use (login,
//! `/api/history`, `/api/upload`); what this adds is the sessions already open:
//! - `kefu agent remove|passwd` tells the running workers ([`AdminEvent::AgentRevoked`]),
//!   which close that agent's connections here at once;
//! - `kefu key rotate` ([`AdminEvent::KeyRotated`]): the new key is read on a store thread,
//!   then every connection that logged in (under the old key) is closed; on PostgreSQL the
//!   other nodes, which were not told, notice the key's new version within a sweep;
//! - a sweep every [`super::DRAIN_EVERY`] compares each logged-in agent's token generation
//!   with its row, for changes the server was not told of (no master reachable from the CLI).

use super::auth::Secret;
use super::done::{Origin, Outcome};
use super::login;
use super::request::{Echo, Refusal, Side};
use super::shared::{Role, Scope, Shared};
use super::ClientId;
use crate::api::{AdminEvent, Ctx};
use std::collections::BTreeSet;

/// An admin change reached this worker.
pub(super) fn admin(sh: &mut Shared, cx: &mut Ctx<'_>, event: &AdminEvent) {
    match event {
        AdminEvent::AgentRevoked { bid, agent_id } => {
            let ids = agent_conns(sh, |b, a, _| b == bid && a == agent_id);
            revoke(cx, &ids);
        }
        AdminEvent::KeyRotated => {
            // A file or database read: on the store thread, not the loop.
            let dir = sh.data_dir.clone();
            sh.submit(cx, Origin::Admin, Scope::All, move |c| {
                Secret::load(c, &dir).map(|s| Outcome::Key(Some(s)))
            });
        }
    }
}

/// Check every agent logged in here against its row (a safety net behind the admin
/// events: a CLI that could not reach the master still takes effect within seconds).
pub(super) fn sweep(sh: &mut Shared, cx: &mut Ctx<'_>) {
    if sh.cfg.database.is_some() {
        key_check(sh, cx);
    }
    let sessions: BTreeSet<(String, String, i64)> = sh
        .conns
        .values()
        .filter_map(|c| match &c.role {
            Role::LoggedIn(me) if me.side == Side::Agent => {
                Some((me.bid.clone(), me.id.clone(), c.agent_gen))
            }
            _ => None,
        })
        .collect();
    if sessions.is_empty() {
        return;
    }
    let sessions: Vec<_> = sessions.into_iter().collect();
    sh.submit(cx, Origin::Admin, Scope::All, move |c| {
        login::revoked(c, &sessions).map(Outcome::Revoked)
    });
}

/// Whether the cluster's key (PostgreSQL) is still the one this worker holds: `kefu key
/// rotate` run on another node tells only that node's workers.
fn key_check(sh: &mut Shared, cx: &mut Ctx<'_>) {
    let Some(have) = sh.secret.as_ref().map(Secret::version) else {
        return;
    };
    let dir = sh.data_dir.clone();
    sh.submit(cx, Origin::Admin, Scope::All, move |c| {
        let stored = Secret::version_in(c)?;
        if stored.is_some_and(|v| v != have) {
            Secret::load(c, &dir).map(|s| Outcome::Key(Some(s)))
        } else {
            Ok(Outcome::Key(None))
        }
    });
}

/// The answer of an admin job.
pub(super) fn admin_done(sh: &mut Shared, cx: &mut Ctx<'_>, o: Outcome) {
    match o {
        Outcome::Key(Some(secret)) => {
            sh.secret = Some(secret);
            // Every login so far (and every one in flight) was checked with the old key.
            let ids: Vec<ClientId> = sh
                .conns
                .iter()
                .filter(|(_, c)| !matches!(c.role, Role::Anon))
                .map(|(id, _)| *id)
                .collect();
            crate::info!("kefu: signing key reloaded");
            revoke(cx, &ids);
        }
        Outcome::Revoked(gone) => {
            let ids = agent_conns(sh, |b, a, g| {
                gone.iter()
                    .any(|(gb, ga, gg)| gb == b && ga == a && *gg == g)
            });
            revoke(cx, &ids);
        }
        _ => {}
    }
}

/// Local agent connections whose `(bid, agent_id, generation)` match.
fn agent_conns(sh: &Shared, pick: impl Fn(&str, &str, i64) -> bool) -> Vec<ClientId> {
    sh.conns
        .iter()
        .filter(|(_, c)| match &c.role {
            Role::LoggedIn(me) => me.side == Side::Agent && pick(&me.bid, &me.id, c.agent_gen),
            _ => false,
        })
        .map(|(id, _)| *id)
        .collect()
}

/// Close these connections, saying why first: the client then asks for a new login
/// (its stored token is refused) instead of retrying.
pub(super) fn revoke(cx: &mut Ctx<'_>, ids: &[ClientId]) {
    let why = Refusal::Login("session revoked: log in again".into());
    for &id in ids {
        why.send(cx, id, Echo::default());
        let _ = cx.close_client(id, None);
    }
    if !ids.is_empty() {
        crate::info!("kefu: closed {} revoked sessions", ids.len());
    }
}
