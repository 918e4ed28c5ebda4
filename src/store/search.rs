//! Lists and search over a business's history: closed conversations page by page, full-text
//! search over its messages, and one visitor's profile (conversations and visits).
//!
//! Every query takes the business id and filters on it in SQL: an id of another business
//! (conversation, visitor) simply finds nothing. Pages are keyset pages (a cursor, never an
//! OFFSET) with a bounded size, so a deep page costs what the first one does.
//!
//! Full-text search uses SQLite FTS5 with the trigram tokenizer (substring matches, which
//! also serve Chinese text that has no spaces between words); on PostgreSQL, `ILIKE` over the
//! pg_trgm trigram index (the same substring semantics). Every path is one call of [`find`]
//! with its own match clause. `messages` is a WITHOUT ROWID table, which an FTS5
//! external-content table cannot point at, so `msg_fts` keeps its own copy of each text
//! message (filled by a trigger in the writer's transaction).

use super::db::{params, Db, Kind, OptionalExtension, Row};
use super::{Result, StoreError};
use serde::Serialize;

/// Most rows in one page of any list here.
pub(crate) const MAX_PAGE: i64 = 100;
/// Page size when the client does not say.
pub(crate) const DEFAULT_PAGE: i64 = 20;
/// Longest search text, in characters.
pub(crate) const MAX_QUERY_CHARS: usize = 100;
/// Conversations and visits shown on a visitor's profile (newest first).
const PROFILE_ROWS: i64 = 50;

/// A page size the client asked for, clamped to `1..=MAX_PAGE`.
pub(crate) fn page_size(asked: Option<i64>) -> i64 {
    asked.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// One conversation in a list.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConvRow {
    /// Id.
    pub conv_id: i64,
    /// Visitor id.
    pub visitor_id: String,
    /// Visitor's name ('' if none).
    pub visitor_name: String,
    /// `queued`, `active` or `closed`.
    pub state: String,
    /// Agent it ended with (None: never assigned).
    pub agent_id: Option<String>,
    /// Opened, ms.
    pub created_at: i64,
    /// Closed, ms.
    pub closed_at: Option<i64>,
    /// Messages (events included).
    pub messages: i64,
}

fn conv_row(r: &Row<'_>) -> Result<ConvRow> {
    Ok(ConvRow {
        conv_id: r.get(0)?,
        visitor_id: r.get(1)?,
        visitor_name: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        state: r.get(3)?,
        agent_id: r.get(4)?,
        created_at: r.get(5)?,
        closed_at: r.get(6)?,
        messages: r.get(7)?,
    })
}

const CONV_COLS: &str = "c.id, c.visitor_id, v.name, c.state, c.agent_id, c.created_at, \
     c.closed_at, c.last_seq FROM conversations c LEFT JOIN visitors v \
     ON v.bid = c.bid AND v.visitor_id = c.visitor_id";

/// A position in a list ordered newest first: the row's time and id(s), printed as
/// `time.id[.seq]`. A cursor that does not parse is refused, not ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Time of the last row shown, ms.
    pub at: i64,
    /// Its conversation id.
    pub id: i64,
    /// Its seq (search hits only).
    pub seq: i64,
}

impl Cursor {
    /// Parse `time.id` or `time.id.seq`.
    pub(crate) fn parse(s: &str) -> Result<Cursor> {
        let bad = StoreError::Invalid("before: expected the next cursor of the previous page");
        let mut it = s.split('.').map(|p| p.parse::<i64>());
        let (Some(Ok(at)), Some(Ok(id))) = (it.next(), it.next()) else {
            return Err(bad);
        };
        let seq = match it.next() {
            None => i64::MAX,
            Some(Ok(q)) => q,
            Some(Err(_)) => return Err(bad),
        };
        if it.next().is_some() {
            return Err(bad);
        }
        Ok(Cursor { at, id, seq })
    }

    fn end() -> Cursor {
        Cursor {
            at: i64::MAX,
            id: i64::MAX,
            seq: i64::MAX,
        }
    }
}

/// Which closed conversations a list shows (every one by default).
#[derive(Debug, Clone, Default)]
pub(crate) struct Closed {
    /// Only this visitor's.
    pub visitor_id: Option<String>,
    /// Only those this agent ended with.
    pub agent_id: Option<String>,
    /// Closed at or after, ms.
    pub from: Option<i64>,
    /// Closed before, ms.
    pub to: Option<i64>,
}

/// Closed conversations of `bid` that `f` lets through, most recently closed first, after
/// `before`.
pub(crate) fn closed(
    conn: &Db,
    bid: &str,
    f: &Closed,
    before: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<ConvRow>, Option<String>)> {
    let b = before.unwrap_or(Cursor::end());
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {CONV_COLS} WHERE c.bid = ?1 AND c.state = 'closed' \
             AND (CAST(?5 AS TEXT) IS NULL OR c.visitor_id = ?5) \
             AND (CAST(?6 AS TEXT) IS NULL OR c.agent_id = ?6) \
             AND c.closed_at >= ?7 AND c.closed_at < ?8 \
             AND (c.closed_at, c.id) < (?2, ?3) ORDER BY c.closed_at DESC, c.id DESC LIMIT ?4"
        ))?
        .query_map(
            params![
                bid,
                b.at,
                b.id,
                limit,
                f.visitor_id,
                f.agent_id,
                f.from.unwrap_or(0),
                f.to.unwrap_or(i64::MAX)
            ],
            conv_row,
        )?
        .collect::<Result<Vec<_>>>()?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last())
        .flatten()
        .map(|r| format!("{}.{}", r.closed_at.unwrap_or(0), r.conv_id));
    Ok((rows, next))
}

/// What a search asks for. Text is required; the other filters narrow it.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    /// Text to find (a literal substring: no query syntax).
    pub text: String,
    /// Only this visitor's conversations.
    pub visitor_id: Option<String>,
    /// Only conversations this agent handled or messages it sent.
    pub agent_id: Option<String>,
    /// Messages at or after, ms.
    pub from: i64,
    /// Messages before, ms.
    pub to: i64,
    /// Page position.
    pub before: Option<Cursor>,
    /// Page size (already clamped).
    pub limit: i64,
}

/// A message that matched.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Hit {
    /// Conversation.
    pub conv_id: i64,
    /// Seq in it.
    pub seq: i64,
    /// `visitor` or `agent`.
    pub from: String,
    /// Sender id.
    pub sender_id: String,
    /// Sender name.
    pub sender_name: String,
    /// The message text.
    pub text: String,
    /// Sent, ms.
    pub ts: i64,
    /// The conversation's visitor.
    pub visitor_id: String,
    /// The conversation's agent.
    pub agent_id: Option<String>,
}

/// Check a search text: trimmed, 1..=[`MAX_QUERY_CHARS`] characters, no control characters.
pub(crate) fn clean_query(q: &str) -> Result<String> {
    let q = q.trim();
    if q.is_empty() || q.chars().count() > MAX_QUERY_CHARS {
        return Err(StoreError::Invalid("q: 1 to 100 characters"));
    }
    if q.chars().any(char::is_control) {
        return Err(StoreError::Invalid("q: no control characters"));
    }
    Ok(q.to_string())
}

/// Messages of `bid` matching `q`, newest first, and the cursor of the next page.
pub(crate) fn search(conn: &Db, bid: &str, q: &Query) -> Result<(Vec<Hit>, Option<String>)> {
    let found = match (conn.kind(), q.text.chars().count() >= 3) {
        // The text is passed as one quoted phrase (inner quotes doubled), so FTS5 operators,
        // column filters and `*` in it are plain characters.
        (Kind::Sqlite, true) => find(
            conn,
            bid,
            q,
            "FROM msg_fts f JOIN conversations c ON c.id = f.conv_id \
             JOIN messages m ON m.conv_id = f.conv_id AND m.seq = f.seq WHERE msg_fts MATCH ?1",
            &format!("\"{}\"", q.text.replace('"', "\"\"")),
        )?,
        // Trigrams cannot index one or two characters (common two-character Chinese words
        // included): scan the business's messages in the date range instead.
        (Kind::Sqlite, false) => find(
            conn,
            bid,
            q,
            "FROM conversations c JOIN messages m ON m.conv_id = c.id \
             WHERE m.kind = 'text' AND m.text LIKE ?1 ESCAPE '\\'",
            &like_pattern(&q.text),
        )?,
        // PostgreSQL: ILIKE (case-insensitive like FTS5's trigrams), served for three
        // characters or more by the pg_trgm GIN index `msg_trgm` where the extension could be
        // created (schema version 8), a scan of the business's messages otherwise.
        (Kind::Postgres, _) => find(
            conn,
            bid,
            q,
            "FROM conversations c JOIN messages m ON m.conv_id = c.id \
             WHERE m.kind = 'text' AND m.text ILIKE ?1 ESCAPE '\\'",
            &like_pattern(&q.text),
        )?,
    };
    let next = (found.len() as i64 == q.limit)
        .then(|| found.last())
        .flatten()
        .map(|h| format!("{}.{}.{}", h.ts, h.conv_id, h.seq));
    Ok((found, next))
}

fn hit(r: &Row<'_>) -> Result<Hit> {
    Ok(Hit {
        conv_id: r.get(0)?,
        seq: r.get(1)?,
        from: r.get(2)?,
        sender_id: r.get(3)?,
        sender_name: r.get(4)?,
        text: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
        ts: r.get(6)?,
        visitor_id: r.get(7)?,
        agent_id: r.get(8)?,
    })
}

/// `%text%` with LIKE's own characters escaped (`\` is the escape).
fn like_pattern(text: &str) -> String {
    let mut pat = String::with_capacity(text.len() + 2);
    pat.push('%');
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pat.push('\\');
        }
        pat.push(ch);
    }
    pat.push('%');
    pat
}

/// The one search statement: `source` is its FROM and the match condition on `?1` (bound
/// to `matcher`); the business, filters, cursor and page size are the same for every store
/// and path (parameters ?2..?10).
fn find(conn: &Db, bid: &str, q: &Query, source: &str, matcher: &str) -> Result<Vec<Hit>> {
    let b = q.before.unwrap_or(Cursor::end());
    let rows = conn
        .prepare_cached(&format!(
            "SELECT m.conv_id, m.seq, m.sender_role, m.sender_id, m.sender_name, m.text, m.ts, \
             c.visitor_id, c.agent_id {source} AND c.bid = ?2 \
             AND (CAST(?3 AS TEXT) IS NULL OR c.visitor_id = ?3) \
             AND (CAST(?4 AS TEXT) IS NULL OR c.agent_id = ?4 \
                  OR (m.sender_role = 'agent' AND m.sender_id = ?4)) \
             AND m.ts >= ?5 AND m.ts < ?6 AND (m.ts, m.conv_id, m.seq) < (?7, ?8, ?9) \
             ORDER BY m.ts DESC, m.conv_id DESC, m.seq DESC LIMIT ?10"
        ))?
        .query_map(
            params![
                matcher,
                bid,
                q.visitor_id,
                q.agent_id,
                q.from,
                q.to,
                b.at,
                b.id,
                b.seq,
                q.limit
            ],
            hit,
        )?
        .collect::<Result<Vec<_>>>()?;
    Ok(rows)
}

/// One visit of a visitor (a sign-in after 30 minutes or more away).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Visit {
    /// When, ms.
    pub ts: i64,
    /// Page it came from.
    pub page_url: String,
    /// Its referrer.
    pub referrer: String,
}

/// A visitor as its business sees it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VisitorProfile {
    /// Id.
    pub visitor_id: String,
    /// Name ('' if none).
    pub name: String,
    /// Identity signed by the integrator.
    pub verified: bool,
    /// Last client address.
    pub ip: String,
    /// Last page.
    pub page_url: String,
    /// Last referrer.
    pub referrer: String,
    /// Last browser.
    pub user_agent: String,
    /// First seen, ms.
    pub first_seen: i64,
    /// Last seen, ms.
    pub last_seen: i64,
    /// Its conversations, newest first (at most 50).
    pub conversations: Vec<ConvRow>,
    /// Its visits, newest first (at most 50).
    pub visits: Vec<Visit>,
}

/// The profile of visitor `vid` of `bid` (None: no such visitor in this business).
pub(crate) fn visitor_profile(conn: &Db, bid: &str, vid: &str) -> Result<Option<VisitorProfile>> {
    let p = conn
        .prepare_cached(
            "SELECT visitor_id, name, verified, ip, page_url, referrer, user_agent, first_seen, \
             last_seen FROM visitors WHERE bid = ?1 AND visitor_id = ?2",
        )?
        .query_row(params![bid, vid], |r| {
            Ok(VisitorProfile {
                visitor_id: r.get(0)?,
                name: r.get(1)?,
                verified: r.get::<_, i64>(2)? != 0,
                ip: r.get(3)?,
                page_url: r.get(4)?,
                referrer: r.get(5)?,
                user_agent: r.get(6)?,
                first_seen: r.get(7)?,
                last_seen: r.get(8)?,
                conversations: Vec::new(),
                visits: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut p) = p else {
        return Ok(None);
    };
    p.conversations = conn
        .prepare_cached(&format!(
            "SELECT {CONV_COLS} WHERE c.bid = ?1 AND c.visitor_id = ?2 ORDER BY c.id DESC LIMIT ?3"
        ))?
        .query_map(params![bid, vid, PROFILE_ROWS], conv_row)?
        .collect::<Result<Vec<_>>>()?;
    p.visits = conn
        .prepare_cached(
            "SELECT ts, page_url, referrer FROM visits WHERE bid = ?1 AND visitor_id = ?2 \
             ORDER BY id DESC LIMIT ?3",
        )?
        .query_map(params![bid, vid, PROFILE_ROWS], |r| {
            Ok(Visit {
                ts: r.get(0)?,
                page_url: r.get(1)?,
                referrer: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_strictly() {
        assert_eq!(
            Cursor::parse("5.7").unwrap(),
            Cursor {
                at: 5,
                id: 7,
                seq: i64::MAX
            }
        );
        assert_eq!(Cursor::parse("5.7.2").unwrap().seq, 2);
        for bad in ["", "5", "5.x", "5.7.2.1", "a.b", "5.7.x"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(page_size(Some(1_000_000)), MAX_PAGE);
        assert_eq!(page_size(Some(-3)), 1);
        assert!(clean_query(&"x".repeat(101)).is_err());
        assert!(clean_query("  ").is_err());
        assert!(clean_query("a\u{0}b").is_err());
    }
}
