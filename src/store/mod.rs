//! The store of the kefu app: by default one embedded SQLite file under the data dir, shared
//! by every worker process (WAL mode; writers serialized by SQLite's lock with a busy
//! timeout); with `[kefu] database = "postgres://..."` a PostgreSQL server shared by every
//! node of a cluster. App code sees one [`db::Db`] either way.
//!
//! The event loop never touches it: each worker runs its queries on its own threads
//! ([`runner::Runner`]), and the CLI opens it directly for admin commands.

pub(crate) mod convo;
pub(crate) mod db;
#[cfg(test)]
mod db_tests;
pub(crate) mod depts;
pub(crate) mod files;
pub(crate) mod profile;
pub(crate) mod reports;
pub(crate) mod runner;
pub(crate) mod search;
pub(crate) mod tenancy;
mod triggers;
pub(crate) mod webhooks;

use crate::config::SyncMode;
use db::{Db, Kind};
use rusqlite::Connection;
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the database inside the data dir.
pub(crate) const DB_FILE: &str = "kefu.db";

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a store operation failed.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// SQLite said no.
    Sql(rusqlite::Error),
    /// PostgreSQL said no (or its connection broke).
    Pg(postgres::Error),
    /// PostgreSQL cannot be reached now (the connection is down; a later call reconnects).
    Unavailable,
    /// A query that must return a row returned none.
    NoRow,
    /// A stored value is not what the code reads it as.
    Row(String),
    /// File system error (data dir, uploads, secret).
    Io(std::io::Error),
    /// The row asked for does not exist (or belongs to someone else).
    NotFound,
    /// A conditional change lost (already taken, not yours, closed).
    Conflict(&'static str),
    /// A request field is unacceptable.
    Invalid(&'static str),
    /// A credential no longer matches the store (agent removed, password changed).
    Revoked,
    /// The caller is who it says but may not do this (not an admin, agent disabled).
    Forbidden(&'static str),
    /// The batch's transaction could not begin or commit: nothing of it was stored.
    Commit(String),
    /// The job panicked (a bug); the transaction part was rolled back.
    Panic,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Sql(e) => write!(f, "database error: {e}"),
            StoreError::Pg(e) => match e.as_db_error() {
                Some(d) => write!(f, "postgresql error: {}: {}", d.code().code(), d.message()),
                None => write!(f, "postgresql error: {e}"),
            },
            StoreError::Unavailable => f.write_str("postgresql unavailable"),
            StoreError::NoRow => f.write_str("query returned no row"),
            StoreError::Row(m) => write!(f, "bad stored value: {m}"),
            StoreError::Io(e) => write!(f, "file error: {e}"),
            StoreError::NotFound => f.write_str("not found"),
            StoreError::Conflict(m) => write!(f, "conflict: {m}"),
            StoreError::Invalid(m) => write!(f, "invalid: {m}"),
            StoreError::Revoked => f.write_str("token revoked"),
            StoreError::Forbidden(m) => write!(f, "forbidden: {m}"),
            StoreError::Commit(m) => write!(f, "commit failed: {m}"),
            StoreError::Panic => f.write_str("internal error"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(e)
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e)
    }
}

/// Result of store operations.
pub(crate) type Result<T> = std::result::Result<T, StoreError>;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Busy handler: retry every millisecond for up to [`BUSY_TIMEOUT`].
fn busy_wait(tries: i32) -> bool {
    if (tries as u128) * 1000 >= BUSY_TIMEOUT.as_micros() {
        return false;
    }
    std::thread::sleep(Duration::from_millis(1));
    true
}

/// Path of the database file.
pub(crate) fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Where the store is: PostgreSQL when `database` is set, else SQLite under `data_dir`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The data dir (the SQLite file, uploads).
    pub data_dir: &'a Path,
    /// SQLite durability.
    pub sync: SyncMode,
    /// PostgreSQL URL.
    pub database: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// The store `cfg` names, with `data_dir` for SQLite and uploads.
    pub(crate) fn of(cfg: &'a crate::config::KefuConfig, data_dir: &'a Path) -> Target<'a> {
        Target {
            data_dir,
            sync: cfg.synchronous,
            database: cfg.database.as_deref(),
        }
    }
}

/// Open (creating the schema if needed) one connection to the configured store.
pub(crate) fn open_target(t: Target<'_>) -> Result<Db> {
    match t.database {
        Some(url) => {
            let db = Db::postgres(url)?;
            migrate(&db)?;
            Ok(db)
        }
        None => open(t.data_dir, t.sync),
    }
}

/// Open (creating the data dir and schema if needed) one connection to the SQLite store.
pub(crate) fn open(data_dir: &Path, sync: SyncMode) -> Result<Db> {
    let db = db_path(data_dir);
    files::secure(data_dir, &db)?;
    let mut conn = Connection::open(&db)?;
    // SQLite's default busy handler backs off up to 100 ms between tries, so a worker whose
    // neighbour commits back to back can starve for seconds. Poll every millisecond instead
    // (the writer leaves a gap after each commit, see runner.rs).
    conn.busy_handler(Some(busy_wait))?;
    // Switching to WAL needs a moment of exclusive access; several workers start at once,
    // so retry instead of failing a worker on a lost race.
    let mut tries = 0;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(m) if m.eq_ignore_ascii_case("wal") => break,
            _ if tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(_) => return Err(StoreError::Invalid("cannot enable WAL")),
            Err(e) => return Err(e.into()),
        }
    }
    let sync = match sync {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
    ))?;
    let db = Db::sqlite(conn);
    migrate(&db)?;
    Ok(db)
}

/// Current schema version (SQLite's `PRAGMA user_version`, PostgreSQL's `kefu_schema`).
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Every schema version and the DDL that reaches it from the one before, oldest first. The
/// DDL is written once, for SQLite; [`ddl`] adapts it for PostgreSQL. A new version is one
/// more entry here; what a version adds in one store's own dialect (triggers, full-text
/// indexes) is in `triggers.rs`. Version 8 is such a version only: the rating event on both
/// stores and, on PostgreSQL, everything version 7 added to SQLite alone.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, SCHEMA_V1),
    (2, SCHEMA_V2),
    (3, SCHEMA_V3),
    (4, SCHEMA_V4),
    (5, SCHEMA_V5),
    (6, SCHEMA_V6),
    (7, SCHEMA_V7),
    (8, ""),
    (9, SCHEMA_V9),
];

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS businesses (
    bid TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    bid TEXT NOT NULL REFERENCES businesses(bid) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    pw_hash TEXT NOT NULL,
    pw_ver INTEGER NOT NULL DEFAULT 1,
    max_concurrent INTEGER,
    last_assigned_at INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (bid, agent_id)
);
CREATE TABLE IF NOT EXISTS visitors (
    bid TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    verified INTEGER NOT NULL DEFAULT 0,
    ip TEXT NOT NULL DEFAULT '',
    page_url TEXT NOT NULL DEFAULT '',
    referrer TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (bid, visitor_id)
);
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bid TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'active', 'closed')),
    agent_id TEXT,
    created_at INTEGER NOT NULL,
    queued_at INTEGER NOT NULL,
    assigned_at INTEGER,
    closed_at INTEGER,
    last_seq INTEGER NOT NULL DEFAULT 0,
    agent_read_seq INTEGER NOT NULL DEFAULT 0,
    visitor_read_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS conv_queue ON conversations (bid, state, queued_at, id);
CREATE INDEX IF NOT EXISTS conv_agent ON conversations (bid, agent_id, state);
CREATE UNIQUE INDEX IF NOT EXISTS conv_open_visitor
    ON conversations (bid, visitor_id) WHERE state != 'closed';
CREATE INDEX IF NOT EXISTS conv_visitor ON conversations (bid, visitor_id, id);
CREATE TABLE IF NOT EXISTS messages (
    conv_id INTEGER NOT NULL REFERENCES conversations(id),
    seq INTEGER NOT NULL,
    sender_role TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT,
    url TEXT,
    event TEXT,
    client_msg_id TEXT,
    ts INTEGER NOT NULL,
    PRIMARY KEY (conv_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS msg_client ON messages (sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
";

/// Version 2: counters that survive the rows they number. `agent_gen` hands out agents'
/// token generations (`pw_ver`, see `tenancy::next_generation`), so a re-added agent never
/// gets a generation an old token of its earlier self carries.
const SCHEMA_V2: &str =
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);";

/// Version 3: event messages keep their typed fields (JSON of the app's event enum), so pages
/// can render them in their own language; `text` keeps the English line for other clients.
const SCHEMA_V3: &str = "ALTER TABLE messages ADD COLUMN args TEXT;";

/// Version 4: a business's face for its visitors (logo, colour, welcome and offline
/// messages; the display name is `businesses.name`) and each agent's avatar. Empty means
/// "not set": the pages fall back to their defaults. See `profile.rs`.
const SCHEMA_V4: &str = "
ALTER TABLE businesses ADD COLUMN logo TEXT NOT NULL DEFAULT '';
ALTER TABLE businesses ADD COLUMN color TEXT NOT NULL DEFAULT '';
ALTER TABLE businesses ADD COLUMN welcome TEXT NOT NULL DEFAULT '';
ALTER TABLE businesses ADD COLUMN offline_msg TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN avatar TEXT NOT NULL DEFAULT '';
";

/// Version 5: roles and departments. An agent is a business `admin` or a plain `agent`, and
/// may be `disabled` (no login, no routing); departments (skill groups) hold agents, and a
/// conversation may belong to one (`dept_id` NULL: none, any agent takes it). `routing` is
/// the business's policy (`least_busy`, `round_robin`; "" follows the config).
const SCHEMA_V5: &str = "
ALTER TABLE agents ADD COLUMN role TEXT NOT NULL DEFAULT 'agent' CHECK (role IN ('admin', 'agent'));
ALTER TABLE agents ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE businesses ADD COLUMN routing TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN dept_id TEXT;
CREATE TABLE IF NOT EXISTS departments (
    bid TEXT NOT NULL REFERENCES businesses(bid) ON DELETE CASCADE,
    dept_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (bid, dept_id)
);
CREATE TABLE IF NOT EXISTS agent_departments (
    bid TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    dept_id TEXT NOT NULL,
    PRIMARY KEY (bid, agent_id, dept_id),
    FOREIGN KEY (bid, agent_id) REFERENCES agents(bid, agent_id) ON DELETE CASCADE,
    FOREIGN KEY (bid, dept_id) REFERENCES departments(bid, dept_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS agent_dept_by_dept ON agent_departments (bid, dept_id);
";

/// Version 6: the agents' desk (`convo.rs`): canned replies (`agent_id` "" for the
/// business's own), internal notes (never messages: they take no seq of the conversation),
/// one rating per closed conversation, working hours, and the contact a visitor left with an
/// offline message. (Version 5 is the departments' schema.)
const SCHEMA_V6: &str = "
CREATE TABLE IF NOT EXISTS canned (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bid TEXT NOT NULL,
    agent_id TEXT NOT NULL DEFAULT '',
    shortcut TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (bid, agent_id, shortcut)
);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conv_id INTEGER NOT NULL REFERENCES conversations(id),
    bid TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    agent_name TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_conv ON notes (bid, conv_id, id);
CREATE TABLE IF NOT EXISTS ratings (
    conv_id INTEGER PRIMARY KEY REFERENCES conversations(id),
    bid TEXT NOT NULL,
    score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment TEXT NOT NULL DEFAULT '',
    ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ratings_bid ON ratings (bid, ts);
CREATE TABLE IF NOT EXISTS hours (
    bid TEXT PRIMARY KEY,
    tz TEXT NOT NULL,
    week TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contacts (
    bid TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    contact TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (bid, visitor_id)
);
";

/// Version 7: search, reports and webhooks (issue 18). On both stores: two indexes for the
/// closed list and the reports' date ranges, `visits` (a visitor's visits), `webhooks` /
/// `webhook_queue` (registered endpoints and the events still to deliver). On SQLite only,
/// `triggers::SQLITE_V7` adds the full-text index and the triggers that fill `visits` and the
/// webhook queue; PostgreSQL has them from version 8 on (`triggers.rs`).
const SCHEMA_V7: &str = "
CREATE INDEX IF NOT EXISTS conv_closed ON conversations (bid, state, closed_at, id);
CREATE INDEX IF NOT EXISTS conv_created ON conversations (bid, created_at);
CREATE TABLE IF NOT EXISTS visits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bid TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    page_url TEXT NOT NULL,
    referrer TEXT NOT NULL,
    ip TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS visits_of ON visits (bid, visitor_id, id);
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bid TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhooks_of ON webhooks (bid, id);
CREATE TABLE IF NOT EXISTS webhook_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS webhook_due ON webhook_queue (hook_id, state, id);
";

/// Version 9: the rest of the widget's look and texts (`profile.rs`), beside version 4's
/// colour, welcome and offline message: the chat window's title, the launcher's side of the
/// page (`right`, `left`; "" is right) and the leave-a-message form's prompt. Empty means
/// "not set": the pages fall back to their defaults.
const SCHEMA_V9: &str = "
ALTER TABLE businesses ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE businesses ADD COLUMN widget_side TEXT NOT NULL DEFAULT '';
ALTER TABLE businesses ADD COLUMN leave_prompt TEXT NOT NULL DEFAULT '';
";

/// The schema DDL as `kind` spells it. PostgreSQL differs only in types: integers are
/// 64-bit (`BIGINT`; SQLite's INTEGER already is), an `AUTOINCREMENT` key is an identity
/// column, and there is no `WITHOUT ROWID`.
pub(crate) fn ddl(kind: Kind, sql: &str) -> Cow<'_, str> {
    match kind {
        Kind::Sqlite => Cow::Borrowed(sql),
        Kind::Postgres => Cow::Owned(
            sql.replace(
                "INTEGER PRIMARY KEY AUTOINCREMENT",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            )
            .replace("INTEGER", "BIGINT")
            .replace(") WITHOUT ROWID", ")"),
        ),
    }
}

/// The advisory lock PostgreSQL migrations hold, so nodes starting at once migrate once.
const MIGRATE_LOCK: i64 = 0x6b65_6676;

/// Run DDL outside the versions (`CREATE ... IF NOT EXISTS` of a module's own table), as
/// `kind` spells it. On PostgreSQL concurrent `CREATE TABLE IF NOT EXISTS` can still collide
/// in the catalog, so it runs under the migration lock.
pub(crate) fn ensure(db: &Db, sql: &str) -> Result<()> {
    match db.kind() {
        Kind::Sqlite => db.execute_batch(sql),
        Kind::Postgres => {
            let r = db.execute_batch(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({MIGRATE_LOCK}); {}; COMMIT;",
                ddl(Kind::Postgres, sql)
            ));
            if r.is_err() {
                let _ = db.execute_batch("ROLLBACK");
            }
            r
        }
    }
}

/// Bring the schema to [`SCHEMA_VERSION`], one version at a time, in one transaction.
pub(crate) fn migrate(db: &Db) -> Result<()> {
    if schema_version(db)? >= SCHEMA_VERSION {
        return Ok(());
    }
    // SQLite: IMMEDIATE, so two workers migrating at once serialize on the write lock.
    // PostgreSQL: DDL is transactional; the advisory lock serializes nodes likewise.
    match db.kind() {
        Kind::Sqlite => db.execute_batch("BEGIN IMMEDIATE")?,
        Kind::Postgres => db.execute_batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({MIGRATE_LOCK});
             CREATE TABLE IF NOT EXISTS kefu_schema (version BIGINT NOT NULL);"
        ))?,
    }
    // Read again under the lock: another process may have migrated meanwhile, and ALTER
    // TABLE (unlike CREATE ... IF NOT EXISTS) must not run twice.
    let r = schema_version(db).and_then(|v| {
        for (n, sql) in MIGRATIONS {
            if v < *n {
                if !sql.is_empty() {
                    db.execute_batch(&ddl(db.kind(), sql))?;
                }
                triggers::apply(db, *n)?;
            }
        }
        match db.kind() {
            Kind::Sqlite => db.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}")),
            Kind::Postgres => db.execute_batch(&format!(
                "DELETE FROM kefu_schema; INSERT INTO kefu_schema (version) VALUES ({SCHEMA_VERSION});"
            )),
        }
    });
    match r {
        Ok(()) => db.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = db.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(())
}

/// The schema version a store is at (0: empty).
pub(crate) fn schema_version(db: &Db) -> Result<i64> {
    match db.kind() {
        Kind::Sqlite => db.query_row("PRAGMA user_version", [], |r| r.get(0)),
        Kind::Postgres => {
            let exists: bool =
                db.query_row("SELECT to_regclass('kefu_schema') IS NOT NULL", [], |r| {
                    r.get(0)
                })?;
            if !exists {
                return Ok(0);
            }
            db.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM kefu_schema",
                [],
                |r| r.get(0),
            )
        }
    }
}

/// Whether `s` is an acceptable id (bid, agent id, visitor id): 1..64 bytes of
/// `[A-Za-z0-9_.@-]`, so ids can be embedded in uids and group names unambiguously.
pub(crate) fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_twice_and_validates_ids() {
        let dir = std::env::temp_dir().join(format!("kefu-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = open(&dir, SyncMode::Normal).unwrap();
        let b = open(&dir, SyncMode::Full).unwrap();
        let n: i64 = a
            .query_row("SELECT COUNT(*) FROM conversations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        drop((a, b));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(valid_id("shop-1_a.b@c"));
        assert!(!valid_id(""));
        assert!(!valid_id("a:b"));
        assert!(!valid_id(&"x".repeat(65)));
    }

    /// A version-1 store (no `messages.args`) is migrated once, keeping its rows.
    #[test]
    fn migrates_a_version_1_store() {
        let dir = std::env::temp_dir().join(format!("kefu-store-v1-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let c = Connection::open(dir.join(DB_FILE)).unwrap();
            c.execute_batch(SCHEMA_V1).unwrap();
            c.execute_batch("PRAGMA user_version=1").unwrap();
            c.execute_batch(
                "INSERT INTO conversations (bid, visitor_id, state, created_at, queued_at)
                 VALUES ('b', 'v', 'queued', 1, 1);
                 INSERT INTO messages (conv_id, seq, sender_role, sender_id, sender_name, kind,
                                       text, event, ts)
                 VALUES (1, 1, 'system', 'system', '', 'event', 'A joined', 'assigned', 1);",
            )
            .unwrap();
        }
        let a = open(&dir, SyncMode::Normal).unwrap();
        let b = open(&dir, SyncMode::Normal).unwrap();
        let (text, args): (String, Option<String>) = b
            .query_row("SELECT text, args FROM messages", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((text.as_str(), args), ("A joined", None));
        // ... and the version-4 columns, empty for the old rows.
        b.execute_batch("INSERT INTO businesses (bid, secret, created_at) VALUES ('b', 's', 1)")
            .unwrap();
        let face = profile::get(&b, "b").unwrap().unwrap();
        assert_eq!((face.logo.as_str(), face.color.as_str()), ("", ""));
        // ... and version 9's: no title, no prompt, the launcher on the right.
        assert_eq!(
            (face.title.as_str(), face.leave_prompt.as_str(), face.side),
            ("", "", profile::Side::Right)
        );
        // ... and version 5's: the old conversation has no department, a new agent is a
        // plain, enabled agent, and the business follows the config's routing.
        let dept: Option<String> = b
            .query_row("SELECT dept_id FROM conversations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(dept, None);
        b.execute_batch(
            "INSERT INTO agents (bid, agent_id, name, pw_hash, created_at) VALUES ('b', 'a', 'A', 'h', 1)",
        )
        .unwrap();
        let ag = tenancy::agent_get(&b, "b", "a").unwrap().unwrap();
        assert_eq!((ag.role, ag.disabled), (tenancy::AgentRole::Agent, false));
        assert_eq!(depts::policy(&b, "b").unwrap(), None);
        assert!(b.execute_batch("UPDATE agents SET role = 'root'").is_err());
        let v: i64 = a
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        drop((a, b));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
