//! Reports over a business's conversations: per day, per agent or per department, the
//! number of conversations, how many were missed (closed while still queued: the visitor
//! left before any agent took it), the mean first-response time (first agent message minus
//! opening), the mean resolution time (closing minus opening, over conversations an agent
//! took) and the visitors' ratings (how many, their mean score). A report may be limited to
//! one department.
//!
//! One SQL statement computes every figure from a per-conversation `base`; the grouping is
//! one of a fixed set of expressions (never text from the request). A conversation counts in
//! the day (or for the agent, or department) it was opened, with the agent it ended with; its
//! rating counts with it. The range is bounded ([`MAX_RANGE_MS`]) and served by the
//! `conv_created` index.

use super::db::{params, Db, Row as DbRow};
use super::{Result, StoreError};
use serde::Serialize;
use std::collections::HashMap;

/// Longest range one report covers.
pub(crate) const MAX_RANGE_MS: i64 = 366 * DAY_MS;
/// One day in ms.
pub(crate) const DAY_MS: i64 = 86_400_000;
/// Largest time-zone offset accepted, minutes (UTC-14 .. UTC+14).
pub(crate) const MAX_TZ_MIN: i64 = 14 * 60;

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// One row per calendar day (in the asked time zone), every day of the range.
    Day,
    /// One row per agent the conversations ended with ('' for never assigned).
    Agent,
    /// One row per department the conversations were in ('' for none).
    Dept,
}

impl Group {
    /// Parse `day` / `agent` / `dept`.
    pub(crate) fn parse(s: &str) -> Option<Group> {
        match s {
            "day" => Some(Group::Day),
            "agent" => Some(Group::Agent),
            "dept" => Some(Group::Dept),
            _ => None,
        }
    }

    /// Its name (CSV header, JSON).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Group::Day => "day",
            Group::Agent => "agent",
            Group::Dept => "dept",
        }
    }

    fn key_sql(self) -> &'static str {
        match self {
            // The day number in the reader's zone; `report` names it (YYYY-MM-DD).
            Group::Day => "CAST((created_at + ?5) / 86400000 AS TEXT)",
            Group::Agent => "COALESCE(agent_id, '')",
            Group::Dept => "COALESCE(dept_id, '')",
        }
    }

    /// The statement naming this group's keys (its own business only), if they have names.
    fn names_sql(self) -> Option<&'static str> {
        match self {
            Group::Day => None,
            Group::Agent => Some("SELECT agent_id, name FROM agents WHERE bid = ?1"),
            Group::Dept => Some("SELECT dept_id, name FROM departments WHERE bid = ?1"),
        }
    }
}

/// What a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    /// Conversations opened at or after, ms.
    pub from: i64,
    /// ... and before, ms.
    pub to: i64,
    /// The reader's offset from UTC, minutes (days are its calendar days).
    pub tz_min: i64,
}

impl Range {
    /// Check a range: `from < to`, at most [`MAX_RANGE_MS`], a sane offset.
    pub(crate) fn new(from: i64, to: i64, tz_min: i64) -> Result<Range> {
        if from < 0 || to <= from {
            return Err(StoreError::Invalid("from/to: from must be before to"));
        }
        if to - from > MAX_RANGE_MS {
            return Err(StoreError::Invalid("from/to: at most 366 days"));
        }
        if tz_min.abs() > MAX_TZ_MIN {
            return Err(StoreError::Invalid("tz: minutes east of UTC, -840..840"));
        }
        Ok(Range { from, to, tz_min })
    }
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Row {
    /// Day (`YYYY-MM-DD`), agent id or department id ('' for none).
    pub key: String,
    /// The agent's or department's name (absent for days, and for an id no longer there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conversations opened.
    pub conversations: i64,
    /// Closed while still queued (nobody took them).
    pub missed: i64,
    /// Conversations with at least one agent message.
    pub answered: i64,
    /// Mean time to the first agent message, ms.
    pub first_response_ms: Option<i64>,
    /// Conversations an agent took that are closed.
    pub resolved: i64,
    /// Mean time from opening to closing of those, ms.
    pub resolution_ms: Option<i64>,
    /// Conversations the visitor rated.
    pub rated: i64,
    /// Their mean score (1 to 5, two decimals).
    pub rating_avg: Option<f64>,
}

impl Row {
    /// A row with nothing counted.
    fn empty(key: String) -> Row {
        Row {
            key,
            name: None,
            conversations: 0,
            missed: 0,
            answered: 0,
            first_response_ms: None,
            resolved: 0,
            resolution_ms: None,
            rated: 0,
            rating_avg: None,
        }
    }
}

/// The report of `bid` over `range`, grouped by `group`, of department `dept` only if given.
pub(crate) fn report(
    conn: &Db,
    bid: &str,
    group: Group,
    range: Range,
    dept: Option<&str>,
) -> Result<Vec<Row>> {
    let sql = format!(
        "WITH base AS (
            SELECT c.agent_id, c.dept_id, c.state, c.created_at, c.assigned_at, c.closed_at,
                   (SELECT m.ts FROM messages m WHERE m.conv_id = c.id
                        AND m.sender_role = 'agent' ORDER BY m.seq LIMIT 1) AS first_reply,
                   r.score
            FROM conversations c LEFT JOIN ratings r ON r.conv_id = c.id AND r.bid = c.bid
            WHERE c.bid = ?1 AND c.created_at >= ?2 AND c.created_at < ?3
              AND (CAST(?4 AS TEXT) IS NULL OR c.dept_id = ?4)
        )
        SELECT {key} AS k, COUNT(*),
               CAST(SUM(CASE WHEN state = 'closed' AND assigned_at IS NULL THEN 1 ELSE 0 END)
                    AS BIGINT),
               COUNT(first_reply),
               CAST(SUM(first_reply - created_at) AS BIGINT),
               CAST(SUM(CASE WHEN state = 'closed' AND assigned_at IS NOT NULL THEN 1 ELSE 0 END)
                    AS BIGINT),
               CAST(SUM(CASE WHEN state = 'closed' AND assigned_at IS NOT NULL
                        THEN closed_at - created_at END) AS BIGINT),
               COUNT(score),
               CAST(SUM(score) AS BIGINT)
        FROM base GROUP BY k",
        key = group.key_sql()
    );
    let tz_ms = range.tz_min * 60_000;
    let mut stmt = conn.prepare_cached(&sql)?;
    // Sums and counts, divided here: integers read the same from either store.
    let mean = |sum: Option<i64>, n: i64| sum.filter(|_| n > 0).map(|s| s / n);
    let map = |r: &DbRow<'_>| {
        let (answered, resolved, rated): (i64, i64, i64) = (r.get(3)?, r.get(5)?, r.get(7)?);
        let score_sum: Option<i64> = r.get(8)?;
        Ok(Row {
            key: r.get(0)?,
            name: None,
            conversations: r.get(1)?,
            missed: r.get(2)?,
            answered,
            first_response_ms: mean(r.get(4)?, answered),
            resolved,
            resolution_ms: mean(r.get(6)?, resolved),
            rated,
            rating_avg: score_sum
                .filter(|_| rated > 0)
                .map(|s| (s as f64 * 100.0 / rated as f64).round() / 100.0),
        })
    };
    let mut rows = match group {
        Group::Day => stmt.query_map(params![bid, range.from, range.to, dept, tz_ms], map)?,
        // ?5 is not in the statement.
        Group::Agent | Group::Dept => {
            stmt.query_map(params![bid, range.from, range.to, dept], map)?
        }
    }
    .collect::<Result<Vec<_>>>()?;
    if let Some(names) = group.names_sql() {
        let names: HashMap<String, String> = conn
            .prepare_cached(names)?
            .query_map([bid], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_>>()?;
        for r in &mut rows {
            r.name = names.get(&r.key).cloned();
        }
    }
    Ok(match group {
        Group::Day => {
            // Day numbers as keys: order them as numbers, then fill the calendar.
            let mut days: Vec<(i64, Row)> = rows
                .drain(..)
                .filter_map(|r| Some((r.key.parse::<i64>().ok()?, r)))
                .collect();
            days.sort_by_key(|(d, _)| *d);
            every_day(days, range)
        }
        Group::Agent | Group::Dept => {
            rows.sort_by(|a, b| a.key.cmp(&b.key));
            rows
        }
    })
}

/// The rows of a day report with the days that had no conversation filled in as zeros, so
/// a chart's x axis is the calendar.
fn every_day(days: Vec<(i64, Row)>, range: Range) -> Vec<Row> {
    let tz_ms = range.tz_min * 60_000;
    let first = (range.from + tz_ms).div_euclid(DAY_MS);
    let last = (range.to - 1 + tz_ms).div_euclid(DAY_MS);
    let mut out = Vec::with_capacity((last - first + 1) as usize);
    let mut it = days.into_iter().peekable();
    for d in first..=last {
        let key = civil(d);
        match it.peek() {
            Some((n, _)) if *n == d => {
                let (_, mut r) = it.next().expect("peeked");
                r.key = key;
                out.push(r);
            }
            _ => out.push(Row::empty(key)),
        }
    }
    out
}

/// `YYYY-MM-DD` of day number `d` since 1970-01-01 (proleptic Gregorian; Howard Hinnant's
/// days-to-civil algorithm).
fn civil(d: i64) -> String {
    let z = d + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The report as CSV (RFC 4180; a cell that a spreadsheet would run as a formula is
/// prefixed with `'`). Agent and department reports have a `name` column after the key.
pub(crate) fn csv(group: Group, rows: &[Row]) -> String {
    let named = group.names_sql().is_some();
    let mut s = format!(
        "{}{},conversations,missed,answered,first_response_s,resolved,resolution_s,rated,rating_avg\r\n",
        group.as_str(),
        if named { ",name" } else { "" }
    );
    let secs = |v: Option<i64>| v.map(|ms| format!("{:.1}", ms as f64 / 1000.0));
    for r in rows {
        s.push_str(&cell(&r.key));
        if named {
            s.push(',');
            s.push_str(&cell(r.name.as_deref().unwrap_or("")));
        }
        for v in [
            Some(r.conversations.to_string()),
            Some(r.missed.to_string()),
            Some(r.answered.to_string()),
            secs(r.first_response_ms),
            Some(r.resolved.to_string()),
            secs(r.resolution_ms),
            Some(r.rated.to_string()),
            r.rating_avg.map(|a| format!("{a:.2}")),
        ] {
            s.push(',');
            s.push_str(v.as_deref().unwrap_or(""));
        }
        s.push_str("\r\n");
    }
    s
}

fn cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_and_ranges() {
        assert_eq!(civil(0), "1970-01-01");
        assert_eq!(civil(19_723), "2024-01-01");
        assert_eq!(civil(11_016), "2000-02-29");
        assert!(Range::new(10, 5, 0).is_err());
        assert!(Range::new(0, MAX_RANGE_MS + 1, 0).is_err());
        assert!(Range::new(0, DAY_MS, 900).is_err());
        let r = Range::new(0, 3 * DAY_MS, 0).unwrap();
        let rows = every_day(Vec::new(), r);
        let keys: Vec<_> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["1970-01-01", "1970-01-02", "1970-01-03"]);
    }

    /// Exact figures from known rows: means, missed, ratings, the time zone's day, names,
    /// departments and the department filter, other businesses left out (one of them has a
    /// department and an agent of the same ids, and rated conversations).
    #[test]
    fn figures_from_known_rows() {
        let dir = std::env::temp_dir().join(format!("kefu-reports-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = super::super::open(&dir, crate::config::SyncMode::Normal).unwrap();
        let d = 20_000 * DAY_MS; // a midnight, UTC
        c.execute_batch(&format!(
            "INSERT INTO businesses (bid, secret, created_at) VALUES ('b', 's', 1), ('other', 's', 1);
             INSERT INTO agents (bid, agent_id, name, pw_hash, created_at)
             VALUES ('b', 'a', 'Alice', 'h', 1), ('other', 'a', 'Other Alice', 'h', 1);
             INSERT INTO departments (bid, dept_id, name, created_at)
             VALUES ('b', 'sales', 'Sales', 1), ('other', 'sales', 'Their sales', 1);
             INSERT INTO conversations (id, bid, visitor_id, state, agent_id, dept_id, created_at,
                                        queued_at, assigned_at, closed_at)
             VALUES (1, 'b', 'v1', 'closed', 'a', 'sales', {t1}, {t1}, {t1}, {t1c}),
                    (2, 'b', 'v2', 'closed', 'a', NULL, {t2}, {t2}, {t2}, {t2c}),
                    (3, 'b', 'v3', 'closed', NULL, 'sales', {t3}, {t3}, NULL, {t3c}),
                    (4, 'b', 'v4', 'active', 'z', 'gone', {t4}, {t4}, {t4}, NULL),
                    (5, 'other', 'v5', 'closed', 'a', 'sales', {t1}, {t1}, {t1}, {t1c});
             INSERT INTO messages (conv_id, seq, sender_role, sender_id, sender_name, kind, text, ts)
             VALUES (1, 1, 'visitor', 'v1', '', 'text', 'q', {t1}),
                    (1, 2, 'agent', 'a', 'A', 'text', 'r', {t1r}),
                    (1, 3, 'agent', 'a', 'A', 'text', 'r2', {t1c}),
                    (2, 1, 'agent', 'a', 'A', 'text', 'r', {t2r}),
                    (5, 1, 'agent', 'a', 'A', 'text', 'r', {t1});
             INSERT INTO ratings (conv_id, bid, score, comment, ts)
             VALUES (1, 'b', 5, '', {t1c}), (2, 'b', 2, 'slow', {t2c}), (5, 'other', 1, '', {t1c});",
            t1 = d + 1_000,
            t1r = d + 4_000,
            t1c = d + 61_000,
            t2 = d + 2_000,
            t2r = d + 3_000,
            t2c = d + 122_000,
            t3 = d + 5_000,
            t3c = d + 9_000,
            // 23:30 UTC: the next day at UTC+1.
            t4 = d + DAY_MS - 1_800_000,
        ))
        .unwrap();
        let day = Range::new(d, d + DAY_MS, 0).unwrap();
        let r = report(&c, "b", Group::Agent, day, None).unwrap();
        let keys: Vec<_> = r.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["", "a", "z"]);
        assert_eq!(
            r[1],
            Row {
                key: "a".into(),
                name: Some("Alice".into()),
                conversations: 2,
                missed: 0,
                answered: 2,
                first_response_ms: Some((3_000 + 1_000) / 2),
                resolved: 2,
                resolution_ms: Some((60_000 + 120_000) / 2),
                rated: 2,
                rating_avg: Some(3.5),
            }
        );
        assert_eq!(
            (r[0].missed, r[0].resolved, r[0].resolution_ms, r[0].rated),
            (1, 0, None, 0)
        );
        assert_eq!(
            (r[2].answered, r[2].resolved, r[2].name.as_deref()),
            (0, 0, None)
        );

        let r = report(&c, "b", Group::Dept, day, None).unwrap();
        let got: Vec<_> = r
            .iter()
            .map(|x| (x.key.as_str(), x.name.as_deref(), x.conversations, x.missed))
            .collect();
        // 'gone' is a department id with no row (removed): counted, without a name.
        assert_eq!(
            got,
            [
                ("", None, 1, 0),
                ("gone", None, 1, 0),
                ("sales", Some("Sales"), 2, 1)
            ]
        );
        assert_eq!((r[2].rated, r[2].rating_avg), (1, Some(5.0)));
        assert_eq!((r[0].rated, r[0].rating_avg), (1, Some(2.0)));

        // One department only, per agent and per day.
        let r = report(&c, "b", Group::Agent, day, Some("sales")).unwrap();
        let got: Vec<_> = r
            .iter()
            .map(|x| (x.key.as_str(), x.conversations))
            .collect();
        assert_eq!(got, [("", 1), ("a", 1)]);
        let r = report(&c, "b", Group::Day, day, Some("sales")).unwrap();
        assert_eq!((r.len(), r[0].conversations, r[0].rated), (1, 2, 1));
        assert!(report(&c, "b", Group::Day, day, Some("nope")).unwrap()[0].conversations == 0);

        // The other business: its own department, agent and rating only.
        let r = report(&c, "other", Group::Dept, day, None).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].name.as_deref(), r[0].conversations, r[0].rating_avg),
            (Some("Their sales"), 1, Some(1.0))
        );

        let days = report(
            &c,
            "b",
            Group::Day,
            Range::new(d, d + DAY_MS, 60).unwrap(),
            None,
        )
        .unwrap();
        let got: Vec<_> = days
            .iter()
            .map(|x| (x.key.clone(), x.conversations))
            .collect();
        assert_eq!(got, [(civil(20_000), 3), (civil(20_001), 1)]);
        assert_eq!(days[0].name, None);
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn csv_cells_cannot_become_formulas() {
        let mut row = Row::empty("=HYPERLINK(\"x\")".into());
        row.name = Some("@SUM(A1)".into());
        row.conversations = 1;
        row.answered = 1;
        row.first_response_ms = Some(1500);
        row.rated = 3;
        row.rating_avg = Some(4.67);
        let c = csv(Group::Agent, &[row.clone()]);
        assert!(
            c.ends_with("\"'=HYPERLINK(\"\"x\"\")\",'@SUM(A1),1,0,1,1.5,0,,3,4.67\r\n"),
            "{c}"
        );
        assert!(c.starts_with("agent,name,conversations,"));
        row.key = "2024-01-01".into();
        let c = csv(Group::Day, &[row]);
        assert!(c.starts_with("day,conversations,"), "{c}");
        assert!(c.ends_with("\r\n2024-01-01,1,0,1,1.5,0,,3,4.67\r\n"), "{c}");
    }
}
