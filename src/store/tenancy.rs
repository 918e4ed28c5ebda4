//! Businesses and agents: the rows the admin CLI manages and logins read.

use super::{now_ms, valid_id, Result, StoreError};
use crate::store::db::{params, Db, FromCol, OptionalExtension, Param, Row, Val};
use serde::{Deserialize, Serialize};

/// What an agent may do in its business (the `agents.role` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AgentRole {
    /// Chats with visitors.
    #[default]
    Agent,
    /// Also manages the business: agents, departments, the widget, routing.
    Admin,
}

impl AgentRole {
    /// The word in the column (and on the wire).
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            AgentRole::Agent => "agent",
            AgentRole::Admin => "admin",
        }
    }

    /// The role a word names.
    pub(crate) fn parse(s: &str) -> Option<AgentRole> {
        [AgentRole::Agent, AgentRole::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

impl Param for AgentRole {
    fn val(&self) -> Val<'_> {
        Val::Text(self.as_str())
    }
}

impl FromCol for AgentRole {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self> {
        let s: String = FromCol::lite(r, i)?;
        AgentRole::parse(&s).ok_or_else(|| StoreError::Row(format!("role {s:?}")))
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        let s: String = FromCol::pg(r, i)?;
        AgentRole::parse(&s).ok_or_else(|| StoreError::Row(format!("role {s:?}")))
    }
}

/// One business (tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Business {
    /// Business id (`bid`).
    pub bid: String,
    /// Display name.
    pub name: String,
    /// Hex secret integrators sign visitor identities with.
    pub secret: String,
    /// Creation time, ms.
    pub created_at: i64,
}

/// One agent (客服).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Agent {
    /// Business id.
    pub bid: String,
    /// Agent id (the seed's `customer_id`).
    pub agent_id: String,
    /// Display name.
    pub name: String,
    /// Argon2 PHC string.
    pub pw_hash: String,
    /// Token generation: new on every add and password change, never reused (see
    /// [`next_generation`]); tokens carry it, so older tokens die.
    pub pw_ver: i64,
    /// Per-agent cap on concurrent conversations (None: the config default).
    pub max_concurrent: Option<i64>,
    /// Admin or agent.
    pub role: AgentRole,
    /// Disabled by an admin: no login, no routing.
    pub disabled: bool,
}

/// A fresh random hex secret (32 bytes).
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // getrandom only fails when the OS has no entropy source at all; a zero key would be
    // worse than dying, so fall back to failing loudly.
    getrandom::fill(&mut b).expect("OS random source");
    hex(&b)
}

/// Lower-case hex of `b`.
pub(crate) fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// Create a business (its secret is random unless given); `Conflict` if it exists.
pub(crate) fn business_add(conn: &Db, bid: &str, name: &str) -> Result<Business> {
    if !valid_id(bid) {
        return Err(StoreError::Invalid("bid must be 1..64 of [A-Za-z0-9_.@-]"));
    }
    let b = Business {
        bid: bid.to_string(),
        name: name.to_string(),
        secret: random_hex(32),
        created_at: now_ms(),
    };
    let n = conn.execute(
        "INSERT INTO businesses (bid, name, secret, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(bid) DO NOTHING",
        params![b.bid, b.name, b.secret, b.created_at],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict("business exists"));
    }
    Ok(b)
}

/// One business.
pub(crate) fn business_get(conn: &Db, bid: &str) -> Result<Option<Business>> {
    conn.prepare_cached("SELECT bid, name, secret, created_at FROM businesses WHERE bid = ?1")?
        .query_row([bid], |r| {
            Ok(Business {
                bid: r.get(0)?,
                name: r.get(1)?,
                secret: r.get(2)?,
                created_at: r.get(3)?,
            })
        })
        .optional()
}

/// Every business, by id.
pub(crate) fn business_list(conn: &Db) -> Result<Vec<Business>> {
    let mut st =
        conn.prepare("SELECT bid, name, secret, created_at FROM businesses ORDER BY bid")?;
    let rows = st.query_map([], |r| {
        Ok(Business {
            bid: r.get(0)?,
            name: r.get(1)?,
            secret: r.get(2)?,
            created_at: r.get(3)?,
        })
    })?;
    rows.collect::<Result<_>>()
}

/// Replace a business's secret with a fresh one.
pub(crate) fn business_rotate_secret(conn: &Db, bid: &str) -> Result<String> {
    let s = random_hex(32);
    let n = conn.execute(
        "UPDATE businesses SET secret = ?2 WHERE bid = ?1",
        params![bid, s],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(s)
}

/// Add a plain agent (creating its business if needed); `Conflict` if the id is taken.
#[cfg(test)]
pub(crate) fn agent_add(
    conn: &Db,
    bid: &str,
    agent_id: &str,
    name: &str,
    pw_hash: &str,
    max_concurrent: Option<i64>,
) -> Result<()> {
    agent_add_as(
        conn,
        bid,
        agent_id,
        name,
        pw_hash,
        max_concurrent,
        AgentRole::Agent,
    )
}

/// [`agent_add`] with a role.
pub(crate) fn agent_add_as(
    conn: &Db,
    bid: &str,
    agent_id: &str,
    name: &str,
    pw_hash: &str,
    max_concurrent: Option<i64>,
    role: AgentRole,
) -> Result<()> {
    if !valid_id(agent_id) {
        return Err(StoreError::Invalid(
            "agent id must be 1..64 of [A-Za-z0-9_.@-]",
        ));
    }
    if name.trim().is_empty() || name.chars().count() > 64 {
        return Err(StoreError::Invalid("name must be 1..64 characters"));
    }
    if business_get(conn, bid)?.is_none() {
        business_add(conn, bid, bid)?;
    }
    let n = conn.execute(
        "INSERT INTO agents (bid, agent_id, name, pw_hash, pw_ver, max_concurrent, created_at, role)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(bid, agent_id) DO NOTHING",
        params![
            bid,
            agent_id,
            name.trim(),
            pw_hash,
            next_generation(conn)?,
            max_concurrent,
            now_ms(),
            role
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict("agent exists"));
    }
    Ok(())
}

fn agent_row(r: &Row<'_>) -> Result<Agent> {
    Ok(Agent {
        bid: r.get(0)?,
        agent_id: r.get(1)?,
        name: r.get(2)?,
        pw_hash: r.get(3)?,
        pw_ver: r.get(4)?,
        max_concurrent: r.get(5)?,
        role: r.get(6)?,
        disabled: r.get(7)?,
    })
}

const AGENT_COLS: &str = "bid, agent_id, name, pw_hash, pw_ver, max_concurrent, role, disabled";

/// One agent.
pub(crate) fn agent_get(conn: &Db, bid: &str, agent_id: &str) -> Result<Option<Agent>> {
    conn.prepare_cached(&format!(
        "SELECT {AGENT_COLS} FROM agents WHERE bid = ?1 AND agent_id = ?2"
    ))?
    .query_row([bid, agent_id], agent_row)
    .optional()
}

/// Agents of one business, or of all.
pub(crate) fn agent_list(conn: &Db, bid: Option<&str>) -> Result<Vec<Agent>> {
    let sql = format!(
        "SELECT {AGENT_COLS} FROM agents WHERE CAST(?1 AS TEXT) IS NULL OR bid = ?1
         ORDER BY bid, agent_id"
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map([bid], agent_row)?;
    rows.collect::<Result<_>>()
}

/// Remove an agent; its active conversations go back to the queue (front, by age).
pub(crate) fn agent_remove(conn: &Db, bid: &str, agent_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE conversations SET state = 'queued', agent_id = NULL
         WHERE bid = ?1 AND agent_id = ?2 AND state = 'active'",
        [bid, agent_id],
    )?;
    let n = conn.execute(
        "DELETE FROM agents WHERE bid = ?1 AND agent_id = ?2",
        [bid, agent_id],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// A token generation never handed out before, in this store, to any agent: removing an
/// agent and adding it again cannot bring back a generation its old tokens carry. The
/// counter starts at the clock in ms: stores from before it numbered generations from 1 per
/// agent, and the numbers of agents deleted since are not known any more.
pub(crate) fn next_generation(conn: &Db) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO counters (name, value) VALUES ('agent_gen', ?1)
             ON CONFLICT(name) DO UPDATE SET value = counters.value + 1 RETURNING value",
    )?
    .query_row([now_ms()], |r| r.get(0))
}

/// Set a new password hash (invalidating the agent's tokens).
pub(crate) fn agent_set_password(
    conn: &Db,
    bid: &str,
    agent_id: &str,
    pw_hash: &str,
) -> Result<()> {
    let n = conn.execute(
        "UPDATE agents SET pw_hash = ?3, pw_ver = ?4 WHERE bid = ?1 AND agent_id = ?2",
        params![bid, agent_id, pw_hash, next_generation(conn)?],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Make an agent an admin or a plain agent (its tokens stay good: every admin action
/// reads the role from the row).
pub(crate) fn agent_set_role(conn: &Db, bid: &str, agent_id: &str, role: AgentRole) -> Result<()> {
    let n = conn.execute(
        "UPDATE agents SET role = ?3 WHERE bid = ?1 AND agent_id = ?2",
        params![bid, agent_id, role],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Disable or enable an agent. Disabling also gives it a new token generation, so every
/// token it holds stops working (and the revocation sweep closes its sessions); its active
/// conversations are the caller's to requeue.
pub(crate) fn agent_set_disabled(
    conn: &Db,
    bid: &str,
    agent_id: &str,
    disabled: bool,
) -> Result<()> {
    let n = if disabled {
        conn.execute(
            "UPDATE agents SET disabled = 1, pw_ver = ?3 WHERE bid = ?1 AND agent_id = ?2",
            params![bid, agent_id, next_generation(conn)?],
        )?
    } else {
        conn.execute(
            "UPDATE agents SET disabled = 0 WHERE bid = ?1 AND agent_id = ?2",
            params![bid, agent_id],
        )?
    };
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Set an agent's own maximum of concurrent conversations (None: the config default).
pub(crate) fn agent_set_max(conn: &Db, bid: &str, agent_id: &str, max: Option<i64>) -> Result<()> {
    if matches!(max, Some(m) if !(0..=1000).contains(&m)) {
        return Err(StoreError::Invalid("max must be 0..1000"));
    }
    let n = conn.execute(
        "UPDATE agents SET max_concurrent = ?3 WHERE bid = ?1 AND agent_id = ?2",
        params![bid, agent_id, max],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// How many enabled admins a business has (the last one may not be demoted or disabled).
pub(crate) fn admin_count(conn: &Db, bid: &str) -> Result<i64> {
    conn.prepare_cached(
        "SELECT COUNT(*) FROM agents WHERE bid = ?1 AND role = 'admin' AND disabled = 0",
    )?
    .query_row([bid], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_never_reused_across_remove_and_add() {
        let dir = std::env::temp_dir().join(format!("kefu-tenancy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let conn = crate::store::open(&dir, crate::config::SyncMode::Normal).unwrap();
        let ver = |c: &Db| agent_get(c, "b", "a").unwrap().unwrap().pw_ver;
        agent_add(&conn, "b", "a", "A", "h", None).unwrap();
        let first = ver(&conn);
        agent_set_password(&conn, "b", "a", "h2").unwrap();
        let second = ver(&conn);
        agent_remove(&conn, "b", "a").unwrap();
        agent_add(&conn, "b", "a", "A", "h", None).unwrap();
        let third = ver(&conn);
        assert!(first < second && second < third, "{first} {second} {third}");
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
