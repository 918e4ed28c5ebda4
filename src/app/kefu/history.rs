//! Messages: appending with a per-conversation seq, idempotent retries, history pages and
//! resume. Everything here runs on a store thread inside the writer's transaction, so a seq
//! is taken and its row written atomically: no gaps, no duplicates, across processes too
//! (SQLite's write lock serializes the workers).

use super::wire::{Event, MessageOut};
use crate::store::db::{params, Db, OptionalExtension, Row};
use crate::store::{Result, StoreError};

/// Columns read into a [`MessageOut`], in order.
const COLS: &str =
    "conv_id, seq, sender_role, sender_id, sender_name, kind, text, url, event, ts, client_msg_id, args";

/// Most messages in one history page.
pub(crate) const MAX_PAGE: i64 = 100;
/// Page size when the client does not say.
pub(crate) const DEFAULT_PAGE: i64 = 50;

fn row(r: &Row<'_>) -> Result<MessageOut> {
    Ok(MessageOut {
        conv_id: r.get(0)?,
        seq: r.get(1)?,
        from: r.get(2)?,
        sender_id: r.get(3)?,
        sender_name: r.get(4)?,
        kind: r.get(5)?,
        text: r.get(6)?,
        url: r.get(7)?,
        event: r.get(8)?,
        ts: r.get(9)?,
        client_msg_id: r.get(10)?,
        // Rows from before schema 2 (or of a newer server's unknown event) have none: pages
        // show `text` then.
        args: r
            .get::<_, Option<String>>(11)?
            .and_then(|j| serde_json::from_str(&j).ok()),
    })
}

/// Who writes a message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sender<'a> {
    /// `visitor`, `agent` or `system`.
    pub role: &'static str,
    /// Sender id.
    pub id: &'a str,
    /// Sender name.
    pub name: &'a str,
}

/// The server itself (event messages).
pub(crate) const SYSTEM: Sender<'static> = Sender {
    role: "system",
    id: "system",
    name: "",
};

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// Text.
    Text(String),
    /// Uploaded image URL.
    Image(String),
    /// A server event (stored with its English line and its typed fields).
    Event(Event),
}

/// Append a message to a conversation: takes the next seq and writes the row.
pub(crate) fn append(
    conn: &Db,
    conv_id: i64,
    from: Sender<'_>,
    body: &Body,
    client_msg_id: Option<&str>,
    now: i64,
) -> Result<MessageOut> {
    let seq: i64 = conn
        .prepare_cached(
            "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
        )?
        .query_row([conv_id], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    let line = match body {
        Body::Event(e) => Some(e.line()),
        _ => None,
    };
    let (kind, text, url, event, args) = match body {
        Body::Text(t) => ("text", Some(t.as_str()), None, None, None),
        Body::Image(u) => ("image", None, Some(u.as_str()), None, None),
        Body::Event(e) => ("event", line.as_deref(), None, Some(e.name()), Some(e)),
    };
    let args_json = args.and_then(|a| serde_json::to_string(a).ok());
    conn.prepare_cached(
        "INSERT INTO messages (conv_id, seq, sender_role, sender_id, sender_name, kind, text, url, event, ts, client_msg_id, args)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        conv_id,
        seq,
        from.role,
        from.id,
        from.name,
        kind,
        text,
        url,
        event,
        now,
        client_msg_id,
        args_json
    ])?;
    Ok(MessageOut {
        conv_id,
        seq,
        from: from.role.to_string(),
        sender_id: from.id.to_string(),
        sender_name: from.name.to_string(),
        kind: kind.to_string(),
        text: text.map(str::to_owned),
        url: url.map(str::to_owned),
        event: event.map(str::to_owned),
        ts: now,
        client_msg_id: client_msg_id.map(str::to_owned),
        args: args.cloned(),
    })
}

/// A message this sender already stored under `client_msg_id` in this business (a retry),
/// in conversation `conv_id` only when given.
pub(crate) fn find_retry(
    conn: &Db,
    bid: &str,
    from: Sender<'_>,
    client_msg_id: &str,
    conv_id: Option<i64>,
) -> Result<Option<MessageOut>> {
    let sql = format!(
        "SELECT {} FROM messages m JOIN conversations c ON c.id = m.conv_id
         WHERE m.sender_id = ?1 AND m.client_msg_id = ?2 AND m.sender_role = ?3 AND c.bid = ?4
           AND (CAST(?5 AS BIGINT) IS NULL OR m.conv_id = ?5)
         LIMIT 1",
        COLS.split(", ")
            .map(|c| format!("m.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    conn.prepare_cached(&sql)?
        .query_row(
            params![from.id, client_msg_id, from.role, bid, conv_id],
            row,
        )
        .optional()
}

/// The newest message of a conversation.
pub(crate) fn last_message(conn: &Db, conv_id: i64) -> Result<Option<MessageOut>> {
    conn.prepare_cached(&format!(
        "SELECT {COLS} FROM messages WHERE conv_id = ?1 ORDER BY seq DESC LIMIT 1"
    ))?
    .query_row([conv_id], row)
    .optional()
}

/// Messages with `seq < before` (newest first page when None), ascending, plus whether older
/// ones exist.
pub(crate) fn page(
    conn: &Db,
    conv_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<MessageOut>, bool)> {
    let limit = limit.clamp(1, MAX_PAGE);
    let before = before.unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT {COLS} FROM messages WHERE conv_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let mut v: Vec<MessageOut> = st
        .query_map(params![conv_id, before, limit + 1], row)?
        .collect::<Result<_>>()?;
    let more = v.len() as i64 > limit;
    v.truncate(limit as usize);
    v.reverse();
    Ok((v, more))
}

/// What a resume gets.
#[derive(Debug, Clone)]
pub(crate) struct Missed {
    /// Every message after the client's seq, ascending (empty when `reload`).
    pub messages: Vec<MessageOut>,
    /// The conversation's last seq.
    pub last_seq: i64,
    /// Too many missed: reload history instead.
    pub reload: bool,
}

/// The messages after `after` (a resume), or `reload` if more than `max_gap` were missed.
pub(crate) fn since(conn: &Db, conv_id: i64, after: i64, max_gap: i64) -> Result<Missed> {
    let last: i64 = conn
        .prepare_cached("SELECT last_seq FROM conversations WHERE id = ?1")?
        .query_row([conv_id], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    let after = after.max(0);
    if last - after > max_gap {
        return Ok(Missed {
            messages: Vec::new(),
            last_seq: last,
            reload: true,
        });
    }
    let sql = format!(
        "SELECT {COLS} FROM messages WHERE conv_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let messages = st
        .query_map(params![conv_id, after, last], row)?
        .collect::<Result<_>>()?;
    Ok(Missed {
        messages,
        last_seq: last,
        reload: false,
    })
}
