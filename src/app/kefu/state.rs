//! A conversation's state: an enum everywhere in Rust, a word only at the SQL edge.
//!
//! The `state` column holds `queued`, `active` or `closed`. [`ConvState`]'s `Param`/`FromCol`
//! below are the one place that maps between the two. SQL text still spells the words as
//! literals (`WHERE state = 'queued'`): the schema's CHECK constraint and the partial index
//! `conv_open_visitor` (`WHERE state != 'closed'`) are written that way, and SQLite uses a
//! partial index only when the query's condition matches its literal, not a bound parameter.
//! The tests below keep the literals and [`ConvState::as_sql`] in step.

use crate::store::db::{FromCol, Param, Row, Val};
use crate::store::{Result, StoreError};
use serde::Serialize;

/// Where a conversation is in its life (the `state` column; `state` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConvState {
    /// Waiting for an agent (or a message left while nobody was online).
    Queued,
    /// Assigned to an agent.
    Active,
    /// Over; a visitor's next message opens a new conversation.
    Closed,
}

impl ConvState {
    /// Every state, in lifecycle order.
    pub(crate) const ALL: [ConvState; 3] =
        [ConvState::Queued, ConvState::Active, ConvState::Closed];

    /// The word stored in the `state` column (and sent to clients).
    pub(crate) const fn as_sql(self) -> &'static str {
        match self {
            ConvState::Queued => "queued",
            ConvState::Active => "active",
            ConvState::Closed => "closed",
        }
    }

    /// The state a stored word names.
    pub(crate) fn from_sql_str(s: &str) -> Option<ConvState> {
        ConvState::ALL.into_iter().find(|c| c.as_sql() == s)
    }
}

impl Param for ConvState {
    fn val(&self) -> Val<'_> {
        Val::Text(self.as_sql())
    }
}

impl FromCol for ConvState {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self> {
        let s: String = FromCol::lite(r, i)?;
        ConvState::from_sql_str(&s).ok_or_else(|| StoreError::Row(format!("state {s:?}")))
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        let s: String = FromCol::pg(r, i)?;
        ConvState::from_sql_str(&s).ok_or_else(|| StoreError::Row(format!("state {s:?}")))
    }
}

/// A conversation's state with the agent that goes with it: an active conversation always
/// has one, a queued one never does, a closed one keeps whoever had it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting in the queue.
    Queued,
    /// Assigned to `agent_id`.
    Active {
        /// The assigned agent.
        agent_id: String,
    },
    /// Closed (by either side), from the queue (`None`) or from an agent.
    Closed {
        /// The agent it had when closed.
        agent_id: Option<String>,
    },
}

impl Phase {
    /// Read the `state` and `agent_id` columns (indexes `state`, `agent`) of a row; a row
    /// that breaks the invariant above is an error rather than a guess.
    pub(crate) fn from_row(r: &Row<'_>, state: usize, agent: usize) -> Result<Phase> {
        let agent_id: Option<String> = r.get(agent)?;
        match (r.get::<_, ConvState>(state)?, agent_id) {
            (ConvState::Queued, None) => Ok(Phase::Queued),
            (ConvState::Active, Some(agent_id)) => Ok(Phase::Active { agent_id }),
            (ConvState::Closed, agent_id) => Ok(Phase::Closed { agent_id }),
            (s, a) => Err(StoreError::Row(format!(
                "{} conversation with agent {a:?}",
                s.as_sql()
            ))),
        }
    }

    /// The bare state.
    #[cfg(test)]
    pub(crate) fn state(&self) -> ConvState {
        match self {
            Phase::Queued => ConvState::Queued,
            Phase::Active { .. } => ConvState::Active,
            Phase::Closed { .. } => ConvState::Closed,
        }
    }

    /// The agent it is (or was last) assigned to.
    pub(crate) fn agent_id(&self) -> Option<&str> {
        match self {
            Phase::Queued => None,
            Phase::Active { agent_id } => Some(agent_id),
            Phase::Closed { agent_id } => agent_id.as_deref(),
        }
    }

    /// Whether it is `agent_id`'s active conversation.
    pub(crate) fn is_active_with(&self, agent_id: &str) -> bool {
        matches!(self, Phase::Active { agent_id: a } if a == agent_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::{params, Db};

    /// The schema's CHECK accepts exactly the words `as_sql` writes, and they read back.
    #[test]
    fn sql_words_round_trip_through_the_schema_check() {
        let conn = Db::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch(
            "CREATE TABLE t (state TEXT NOT NULL CHECK (state IN ('queued', 'active', 'closed')))",
        )
        .unwrap();
        for s in ConvState::ALL {
            conn.execute("INSERT INTO t (state) VALUES (?1)", [s])
                .unwrap();
        }
        let back: Vec<ConvState> = conn
            .prepare("SELECT state FROM t ORDER BY rowid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(back, ConvState::ALL);
        assert!(conn
            .execute("INSERT INTO t (state) VALUES ('open')", [])
            .is_err());
        assert_eq!(
            serde_json::to_string(&ConvState::Queued).unwrap(),
            r#""queued""#
        );
    }

    #[test]
    fn phase_keeps_the_agent_invariant() {
        let conn = Db::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        let phase = |state: &str, agent: Option<&str>| {
            conn.query_row("SELECT ?1, ?2", params![state, agent], |r| {
                Phase::from_row(r, 0, 1)
            })
        };
        assert_eq!(phase("queued", None).unwrap(), Phase::Queued);
        let a = phase("active", Some("al")).unwrap();
        assert!(a.is_active_with("al") && !a.is_active_with("bo"));
        assert_eq!(phase("closed", None).unwrap().agent_id(), None);
        assert_eq!(phase("closed", Some("al")).unwrap().agent_id(), Some("al"));
        assert!(phase("active", None).is_err());
        assert!(phase("queued", Some("al")).is_err());
        assert!(phase("gone", None).is_err());
    }
}
