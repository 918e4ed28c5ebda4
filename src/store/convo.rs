//! The agents' desk (schema version 6): canned replies, internal notes, satisfaction ratings,
//! working hours and the contacts visitors leave with an offline message.
//!
//! Every query names the business (`bid`) it runs for, taken from the caller's token, never
//! from the request: a row of another business is "not found", whatever its id. The fields
//! are checked by the caller (`app/kefu/convo.rs`); these functions only bound what a
//! business may pile up.

use super::db::{params, Db, OptionalExtension, Row};
use super::tenancy::{Agent, AgentRole};
use super::{Result, StoreError};
use serde::Serialize;

/// Most canned replies one owner (the business, or one agent) may keep.
pub(crate) const MAX_CANNED: i64 = 200;
/// Most notes on one conversation.
pub(crate) const MAX_NOTES: i64 = 500;

/// Whether `a` may manage its business's shared settings (canned replies of the business,
/// working hours): its role, read from the row on every call (`login::check_agent` loaded
/// it), so a demoted admin's token stops managing at once.
pub(crate) fn is_admin(_conn: &Db, a: &Agent) -> Result<bool> {
    Ok(a.role == AgentRole::Admin)
}

/// Who owns a canned reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner<'a> {
    /// The whole business (admins manage it).
    Business,
    /// One agent (its own).
    Agent(&'a str),
}

impl Owner<'_> {
    /// The `agent_id` column's value: "" for the business.
    fn id(&self) -> &str {
        match self {
            Owner::Business => "",
            Owner::Agent(a) => a,
        }
    }
}

/// A canned reply as an agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Canned {
    /// Id.
    pub id: i64,
    /// `business` or `agent` (the caller's own).
    pub scope: &'static str,
    /// What follows `/` in the composer.
    pub shortcut: String,
    /// The reply, with `{visitor_name}` and `{agent_name}` left for the console to fill in.
    pub text: String,
}

fn canned_row(r: &Row<'_>) -> Result<Canned> {
    let owner: String = r.get(1)?;
    Ok(Canned {
        id: r.get(0)?,
        scope: if owner.is_empty() {
            "business"
        } else {
            "agent"
        },
        shortcut: r.get(2)?,
        text: r.get(3)?,
    })
}

/// The business's canned replies and `agent_id`'s own, by shortcut.
pub(crate) fn canned_list(conn: &Db, bid: &str, agent_id: &str) -> Result<Vec<Canned>> {
    let mut st = conn.prepare_cached(
        "SELECT id, agent_id, shortcut, text FROM canned
         WHERE bid = ?1 AND (agent_id = '' OR agent_id = ?2) ORDER BY shortcut, agent_id DESC, id",
    )?;
    let v = st
        .query_map(params![bid, agent_id], canned_row)?
        .collect::<Result<_>>()?;
    Ok(v)
}

/// Add a canned reply (a shortcut is unique per owner).
pub(crate) fn canned_add(
    conn: &Db,
    bid: &str,
    owner: Owner<'_>,
    shortcut: &str,
    text: &str,
    now: i64,
) -> Result<Canned> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM canned WHERE bid = ?1 AND agent_id = ?2")?
        .query_row(params![bid, owner.id()], |r| r.get(0))?;
    if n >= MAX_CANNED {
        return Err(StoreError::Invalid("too many canned replies (200 at most)"));
    }
    let id = conn
        .prepare_cached(
            "INSERT INTO canned (bid, agent_id, shortcut, text, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING RETURNING id",
        )?
        .query_row(params![bid, owner.id(), shortcut, text, now], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::Conflict("that shortcut is already used"))?;
    canned_get(conn, bid, id)
}

fn canned_get(conn: &Db, bid: &str, id: i64) -> Result<Canned> {
    conn.prepare_cached(
        "SELECT id, agent_id, shortcut, text FROM canned WHERE id = ?1 AND bid = ?2",
    )?
    .query_row(params![id, bid], canned_row)
    .optional()?
    .ok_or(StoreError::NotFound)
}

/// Change one of `owner`'s canned replies.
pub(crate) fn canned_update(
    conn: &Db,
    bid: &str,
    owner: Owner<'_>,
    id: i64,
    shortcut: &str,
    text: &str,
) -> Result<Canned> {
    let taken: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM canned
                            WHERE bid = ?1 AND agent_id = ?2 AND shortcut = ?3 AND id != ?4)",
        )?
        .query_row(params![bid, owner.id(), shortcut, id], |r| r.get(0))?;
    if taken {
        return Err(StoreError::Conflict("that shortcut is already used"));
    }
    let n = conn
        .prepare_cached(
            "UPDATE canned SET shortcut = ?4, text = ?5 WHERE id = ?1 AND bid = ?2 AND agent_id = ?3",
        )?
        .execute(params![id, bid, owner.id(), shortcut, text])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    canned_get(conn, bid, id)
}

/// Remove one of `owner`'s canned replies.
pub(crate) fn canned_delete(conn: &Db, bid: &str, owner: Owner<'_>, id: i64) -> Result<()> {
    let n = conn
        .prepare_cached("DELETE FROM canned WHERE id = ?1 AND bid = ?2 AND agent_id = ?3")?
        .execute(params![id, bid, owner.id()])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The scope a stored canned reply belongs to, for the admin check before a change.
pub(crate) fn canned_owner(conn: &Db, bid: &str, id: i64) -> Result<Option<String>> {
    conn.prepare_cached("SELECT agent_id FROM canned WHERE id = ?1 AND bid = ?2")?
        .query_row(params![id, bid], |r| r.get(0))
        .optional()
}

/// An internal note: agents only, never a message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Note {
    /// Id (notes are ordered by it).
    pub id: i64,
    /// Conversation.
    pub conv_id: i64,
    /// Author.
    pub agent_id: String,
    /// Author's name when writing it.
    pub agent_name: String,
    /// Text.
    pub text: String,
    /// Written, ms.
    pub ts: i64,
}

/// The visitor of conversation `conv_id` of `bid` (NotFound for another business's).
fn conv_visitor(conn: &Db, bid: &str, conv_id: i64) -> Result<String> {
    conn.prepare_cached("SELECT visitor_id FROM conversations WHERE id = ?1 AND bid = ?2")?
        .query_row(params![conv_id, bid], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)
}

/// Add a note to a conversation of `agent`'s business.
pub(crate) fn note_add(
    conn: &Db,
    agent: &Agent,
    conv_id: i64,
    text: &str,
    now: i64,
) -> Result<Note> {
    conv_visitor(conn, &agent.bid, conv_id)?;
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM notes WHERE bid = ?1 AND conv_id = ?2")?
        .query_row(params![agent.bid, conv_id], |r| r.get(0))?;
    if n >= MAX_NOTES {
        return Err(StoreError::Invalid("too many notes on this conversation"));
    }
    let id = conn
        .prepare_cached(
            "INSERT INTO notes (conv_id, bid, agent_id, agent_name, text, ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )?
        .query_row(
            params![conv_id, agent.bid, agent.agent_id, agent.name, text, now],
            |r| r.get(0),
        )?;
    Ok(Note {
        id,
        conv_id,
        agent_id: agent.agent_id.clone(),
        agent_name: agent.name.clone(),
        text: text.to_string(),
        ts: now,
    })
}

/// The notes of a conversation of `bid`, oldest first.
pub(crate) fn notes(conn: &Db, bid: &str, conv_id: i64) -> Result<Vec<Note>> {
    conv_visitor(conn, bid, conv_id)?;
    let mut st = conn.prepare_cached(
        "SELECT id, conv_id, agent_id, agent_name, text, ts FROM notes
         WHERE bid = ?1 AND conv_id = ?2 ORDER BY id LIMIT ?3",
    )?;
    let v = st
        .query_map(params![bid, conv_id, MAX_NOTES], |r| {
            Ok(Note {
                id: r.get(0)?,
                conv_id: r.get(1)?,
                agent_id: r.get(2)?,
                agent_name: r.get(3)?,
                text: r.get(4)?,
                ts: r.get(5)?,
            })
        })?
        .collect::<Result<_>>()?;
    Ok(v)
}

/// A visitor's rating of a closed conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Rating {
    /// Conversation.
    pub conv_id: i64,
    /// 1..=5.
    pub score: i64,
    /// The visitor's words ("" none).
    pub comment: String,
    /// Given, ms.
    pub ts: i64,
    /// The agent who had the conversation when it closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// Store the rating of conversation `conv_id` by its own visitor: only once, only closed.
pub(crate) fn rate(
    conn: &Db,
    bid: &str,
    visitor_id: &str,
    conv_id: i64,
    score: i64,
    comment: &str,
    now: i64,
) -> Result<Rating> {
    let (vid, state, agent_id): (String, String, Option<String>) = conn
        .prepare_cached(
            "SELECT visitor_id, state, agent_id FROM conversations WHERE id = ?1 AND bid = ?2",
        )?
        .query_row(params![conv_id, bid], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?
        .ok_or(StoreError::NotFound)?;
    if vid != visitor_id {
        // Someone else's conversation is no business of this visitor's, not even its id.
        return Err(StoreError::NotFound);
    }
    if state != "closed" {
        return Err(StoreError::Conflict(
            "a conversation is rated after it closed",
        ));
    }
    let n = conn
        .prepare_cached(
            "INSERT INTO ratings (conv_id, bid, score, comment, ts) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![conv_id, bid, score, comment, now])?;
    if n == 0 {
        return Err(StoreError::Conflict("this conversation is already rated"));
    }
    Ok(Rating {
        conv_id,
        score,
        comment: comment.to_string(),
        ts: now,
        agent_id,
    })
}

/// The rating of a conversation, if it has one.
pub(crate) fn rating_of(conn: &Db, conv_id: i64) -> Result<Option<Rating>> {
    conn.prepare_cached("SELECT score, comment, ts FROM ratings WHERE conv_id = ?1")?
        .query_row([conv_id], |r| {
            Ok(Rating {
                conv_id,
                score: r.get(0)?,
                comment: r.get(1)?,
                ts: r.get(2)?,
                agent_id: None,
            })
        })
        .optional()
}

/// A business's working hours as stored: its time zone and the week as JSON (see
/// `app/kefu/hours.rs`). None: no hours set (always open).
pub(crate) fn hours_get(conn: &Db, bid: &str) -> Result<Option<(String, String)>> {
    conn.prepare_cached("SELECT tz, week FROM hours WHERE bid = ?1")?
        .query_row([bid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Set (Some) or clear (None) a business's working hours.
pub(crate) fn hours_set(conn: &Db, bid: &str, h: Option<(&str, &str)>) -> Result<()> {
    match h {
        Some((tz, week)) => conn
            .prepare_cached(
                "INSERT INTO hours (bid, tz, week) VALUES (?1, ?2, ?3)
                 ON CONFLICT (bid) DO UPDATE SET tz = excluded.tz, week = excluded.week",
            )?
            .execute(params![bid, tz, week])?,
        None => conn
            .prepare_cached("DELETE FROM hours WHERE bid = ?1")?
            .execute([bid])?,
    };
    Ok(())
}

/// Whether business `bid` exists.
pub(crate) fn business_exists(conn: &Db, bid: &str) -> Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM businesses WHERE bid = ?1)")?
        .query_row([bid], |r| r.get(0))
}

/// Remember how to reach a visitor (left with an offline message), and its name if given.
pub(crate) fn contact_set(
    conn: &Db,
    bid: &str,
    visitor_id: &str,
    name: &str,
    contact: &str,
    now: i64,
) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE visitors SET name = CASE WHEN ?3 = '' THEN name ELSE ?3 END
             WHERE bid = ?1 AND visitor_id = ?2",
        )?
        .execute(params![bid, visitor_id, name])?;
    if n == 0 {
        return Err(StoreError::Revoked);
    }
    conn.prepare_cached(
        "INSERT INTO contacts (bid, visitor_id, contact, ts) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (bid, visitor_id) DO UPDATE SET contact = excluded.contact, ts = excluded.ts",
    )?
    .execute(params![bid, visitor_id, contact, now])?;
    Ok(())
}

/// The contact a visitor left, if any.
pub(crate) fn contact_of(conn: &Db, bid: &str, visitor_id: &str) -> Result<Option<String>> {
    conn.prepare_cached("SELECT contact FROM contacts WHERE bid = ?1 AND visitor_id = ?2")?
        .query_row([bid, visitor_id], |r| r.get(0))
        .optional()
}
