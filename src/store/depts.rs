//! Departments (skill groups), which agents belong to them, and a business's routing policy
//! (schema version 5). Every query names its business: a department id means nothing
//! outside it, and no function here reads or changes another business's rows.

use super::{now_ms, valid_id, Result, StoreError};
use crate::config::RoutingPolicy;
use crate::store::db::{params, Db, OptionalExtension};
use serde::Serialize;

/// Longest department name, characters.
pub(crate) const MAX_DEPT_NAME: usize = 40;
/// Most departments a business may have (each is a gateway group and a queue).
pub(crate) const MAX_DEPTS: i64 = 100;

/// One department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Dept {
    /// Id (`[A-Za-z0-9_.@-]`, 1..64), what the widget's `data-department` names.
    pub dept_id: String,
    /// Display name.
    pub name: String,
}

/// A department name, trimmed: 1..=[`MAX_DEPT_NAME`] characters, no control characters.
pub(crate) fn clean_name(s: &str) -> Result<String> {
    let s = s.trim();
    let n = s.chars().count();
    if n == 0 || n > MAX_DEPT_NAME || s.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "department name must be 1..40 characters, no control characters",
        ));
    }
    Ok(s.to_string())
}

/// Create a department, or rename it if it exists.
pub(crate) fn upsert(conn: &Db, bid: &str, dept_id: &str, name: &str) -> Result<()> {
    if !valid_id(dept_id) {
        return Err(StoreError::Invalid(
            "dept_id must be 1..64 of [A-Za-z0-9_.@-]",
        ));
    }
    let name = clean_name(name)?;
    if get(conn, bid, dept_id)?.is_none() && list(conn, bid)?.len() as i64 >= MAX_DEPTS {
        return Err(StoreError::Invalid("too many departments (at most 100)"));
    }
    conn.prepare_cached(
        "INSERT INTO departments (bid, dept_id, name, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(bid, dept_id) DO UPDATE SET name = excluded.name",
    )?
    .execute(params![bid, dept_id, name, now_ms()])?;
    Ok(())
}

/// Remove a department: its members leave it (cascade) and its open conversations become
/// conversations without a department (any agent may take them), so none waits in a
/// queue nobody serves.
pub(crate) fn remove(conn: &Db, bid: &str, dept_id: &str) -> Result<()> {
    let n = conn
        .prepare_cached("DELETE FROM departments WHERE bid = ?1 AND dept_id = ?2")?
        .execute([bid, dept_id])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    conn.prepare_cached(
        "UPDATE conversations SET dept_id = NULL
         WHERE bid = ?1 AND dept_id = ?2 AND state != 'closed'",
    )?
    .execute([bid, dept_id])?;
    Ok(())
}

/// One department of a business.
pub(crate) fn get(conn: &Db, bid: &str, dept_id: &str) -> Result<Option<Dept>> {
    conn.prepare_cached("SELECT dept_id, name FROM departments WHERE bid = ?1 AND dept_id = ?2")?
        .query_row([bid, dept_id], |r| {
            Ok(Dept {
                dept_id: r.get(0)?,
                name: r.get(1)?,
            })
        })
        .optional()
}

/// A business's departments, by id.
pub(crate) fn list(conn: &Db, bid: &str) -> Result<Vec<Dept>> {
    let mut st = conn
        .prepare_cached("SELECT dept_id, name FROM departments WHERE bid = ?1 ORDER BY dept_id")?;
    let rows = st.query_map([bid], |r| {
        Ok(Dept {
            dept_id: r.get(0)?,
            name: r.get(1)?,
        })
    })?;
    rows.collect::<Result<_>>()
}

/// The departments an agent belongs to, by id.
pub(crate) fn of_agent(conn: &Db, bid: &str, agent_id: &str) -> Result<Vec<Dept>> {
    let mut st = conn.prepare_cached(
        "SELECT d.dept_id, d.name FROM agent_departments m
         JOIN departments d ON d.bid = m.bid AND d.dept_id = m.dept_id
         WHERE m.bid = ?1 AND m.agent_id = ?2 ORDER BY d.dept_id",
    )?;
    let rows = st.query_map([bid, agent_id], |r| {
        Ok(Dept {
            dept_id: r.get(0)?,
            name: r.get(1)?,
        })
    })?;
    rows.collect::<Result<_>>()
}

/// The agent ids of a department.
pub(crate) fn members(conn: &Db, bid: &str, dept_id: &str) -> Result<Vec<String>> {
    let mut st = conn.prepare_cached(
        "SELECT agent_id FROM agent_departments WHERE bid = ?1 AND dept_id = ?2 ORDER BY agent_id",
    )?;
    let rows = st.query_map([bid, dept_id], |r| r.get(0))?;
    rows.collect::<Result<_>>()
}

/// Make an agent's departments exactly `depts` (each must exist in the business).
pub(crate) fn set_of_agent(conn: &Db, bid: &str, agent_id: &str, depts: &[String]) -> Result<()> {
    if super::tenancy::agent_get(conn, bid, agent_id)?.is_none() {
        return Err(StoreError::NotFound);
    }
    for d in depts {
        if get(conn, bid, d)?.is_none() {
            return Err(StoreError::Invalid("no such department"));
        }
    }
    conn.prepare_cached("DELETE FROM agent_departments WHERE bid = ?1 AND agent_id = ?2")?
        .execute([bid, agent_id])?;
    for d in depts {
        conn.prepare_cached(
            "INSERT INTO agent_departments (bid, agent_id, dept_id) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![bid, agent_id, d])?;
    }
    Ok(())
}

/// The business's own routing policy (None: the config's).
pub(crate) fn policy(conn: &Db, bid: &str) -> Result<Option<RoutingPolicy>> {
    let s: Option<String> = conn
        .prepare_cached("SELECT routing FROM businesses WHERE bid = ?1")?
        .query_row([bid], |r| r.get(0))
        .optional()?;
    Ok(s.and_then(|s| RoutingPolicy::parse(&s)))
}

/// Set (Some) or reset to the config's (None) the business's routing policy.
pub(crate) fn set_policy(conn: &Db, bid: &str, p: Option<RoutingPolicy>) -> Result<()> {
    let word = p.map_or("", RoutingPolicy::as_str);
    let n = conn
        .prepare_cached("UPDATE businesses SET routing = ?2 WHERE bid = ?1")?
        .execute([bid, word])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
