//! The seam between the kefu app's SQL and its two stores: one [`Db`] connection that is
//! either the embedded SQLite file or a PostgreSQL server, with one small query API.
//!
//! App code writes its SQL once, in the dialect both share, with numbered placeholders
//! (`?1`, `?2`, ...); on PostgreSQL they are rewritten to `$1`, `$2` once per statement text
//! and the prepared statement is cached. Parameters go in as [`Param`]s (integers, text,
//! bytes, NULL), rows come out through [`Row::get`] into [`FromCol`] types, so the code that
//! reads a row is the same for both. Where the dialects really differ (schema DDL, locking)
//! the caller asks [`Db::kind`] and says it twice, side by side.
//!
//! PostgreSQL is spoken with the blocking `postgres` client, only on store threads (the
//! event loop never holds a `Db`). A lost server connection is reopened by the next call made
//! outside a transaction; inside one the call fails, so a batch never half-runs on a fresh
//! connection (see `runner.rs`).

use super::{Result, StoreError};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Which store a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// How long a connection attempt to PostgreSQL may take.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// After a failed connection attempt, calls fail at once for this long (no connect storm
/// while the server is down; the next call after it tries again).
const PG_RETRY_AFTER: Duration = Duration::from_millis(250);
/// Prepared statements kept per PostgreSQL connection (the app has a few dozen texts).
const PG_STMT_CACHE: usize = 512;

/// One connection to the store.
pub(crate) enum Db {
    /// SQLite (rusqlite).
    Sqlite(rusqlite::Connection),
    /// PostgreSQL.
    Pg(Box<PgConn>),
}

/// A PostgreSQL connection that reopens itself (outside transactions).
pub(crate) struct PgConn {
    url: String,
    client: RefCell<Option<postgres::Client>>,
    stmts: RefCell<HashMap<String, postgres::Statement>>,
    in_tx: Cell<bool>,
    failed_at: Cell<Option<Instant>>,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    /// SQL NULL.
    Null,
    /// An integer (stored as INTEGER / BIGINT).
    Int(i64),
    /// Text.
    Text(&'a str),
    /// Bytes (BLOB / BYTEA).
    Bytes(&'a [u8]),
}

/// Something that can be bound to a placeholder.
pub(crate) trait Param: Sync {
    /// The value to bind.
    fn val(&self) -> Val<'_>;
}

impl Param for i64 {
    fn val(&self) -> Val<'_> {
        Val::Int(*self)
    }
}
impl Param for i32 {
    fn val(&self) -> Val<'_> {
        Val::Int(i64::from(*self))
    }
}
impl Param for u32 {
    fn val(&self) -> Val<'_> {
        Val::Int(i64::from(*self))
    }
}
impl Param for bool {
    fn val(&self) -> Val<'_> {
        Val::Int(i64::from(*self))
    }
}
impl Param for str {
    fn val(&self) -> Val<'_> {
        Val::Text(self)
    }
}
impl Param for String {
    fn val(&self) -> Val<'_> {
        Val::Text(self)
    }
}
impl Param for [u8] {
    fn val(&self) -> Val<'_> {
        Val::Bytes(self)
    }
}
impl Param for Vec<u8> {
    fn val(&self) -> Val<'_> {
        Val::Bytes(self)
    }
}
impl<T: Param + ?Sized> Param for &T {
    fn val(&self) -> Val<'_> {
        (**self).val()
    }
}
impl<T: Param> Param for Option<T> {
    fn val(&self) -> Val<'_> {
        match self {
            Some(v) => v.val(),
            None => Val::Null,
        }
    }
}

/// The parameters of one statement.
pub(crate) trait Params {
    /// The values, in placeholder order.
    fn vals(&self) -> Vec<Val<'_>>;
}

impl Params for &[&dyn Param] {
    fn vals(&self) -> Vec<Val<'_>> {
        self.iter().map(|p| p.val()).collect()
    }
}

impl Params for [&dyn Param; 0] {
    fn vals(&self) -> Vec<Val<'_>> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: Param> Params for [T; $n] {
            fn vals(&self) -> Vec<Val<'_>> {
                self.iter().map(|p| p.val()).collect()
            }
        }
    )*};
}
array_params!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);

/// Parameters of mixed types: `params![a, b, c]`.
macro_rules! params {
    () => { [] as [&dyn $crate::store::db::Param; 0] };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::store::db::Param),+] as &[&dyn $crate::store::db::Param]
    };
}
pub(crate) use params;

/// A column type a row can be read into.
pub(crate) trait FromCol: Sized {
    /// From a SQLite row.
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self>;
    /// From a PostgreSQL row.
    fn pg(r: &postgres::Row, i: usize) -> Result<Self>;
}

fn pg_int(r: &postgres::Row, i: usize) -> Result<Option<i64>> {
    use postgres::types::Type;
    let t = r.columns().get(i).map(|c| c.type_().clone());
    Ok(match t {
        Some(Type::INT8) => r.try_get::<_, Option<i64>>(i)?,
        Some(Type::INT4) => r.try_get::<_, Option<i32>>(i)?.map(i64::from),
        Some(Type::INT2) => r.try_get::<_, Option<i16>>(i)?.map(i64::from),
        Some(Type::BOOL) => r.try_get::<_, Option<bool>>(i)?.map(i64::from),
        _ => return Err(StoreError::Row(format!("column {i} is not an integer"))),
    })
}

impl FromCol for Option<i64> {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self> {
        Ok(r.get(i)?)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        pg_int(r, i)
    }
}
impl FromCol for i64 {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self> {
        Ok(r.get(i)?)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        pg_int(r, i)?.ok_or_else(|| StoreError::Row(format!("column {i} is NULL")))
    }
}
impl FromCol for bool {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self> {
        Ok(r.get(i)?)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        Ok(i64::pg(r, i)? != 0)
    }
}
impl FromCol for Option<String> {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self> {
        Ok(r.get(i)?)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        Ok(r.try_get(i)?)
    }
}
impl FromCol for String {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self> {
        Ok(r.get(i)?)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        Ok(r.try_get(i)?)
    }
}
impl FromCol for Vec<u8> {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self> {
        Ok(r.get(i)?)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self> {
        Ok(r.try_get(i)?)
    }
}

/// A column index (only `usize`, so a bare literal `0` is one).
pub(crate) trait ColIdx {
    /// The index.
    fn idx(self) -> usize;
}

impl ColIdx for usize {
    fn idx(self) -> usize {
        self
    }
}

/// One result row.
pub(crate) enum Row<'a> {
    /// From SQLite.
    Lite(&'a rusqlite::Row<'a>),
    /// From PostgreSQL.
    Pg(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `i` (from 0) as a `T`. The unused first type parameter keeps rusqlite's
    /// `get::<_, T>` spelling working.
    pub(crate) fn get<I: ColIdx, T: FromCol>(&self, i: I) -> Result<T> {
        let i = i.idx();
        match self {
            Row::Lite(r) => T::lite(r, i),
            Row::Pg(r) => T::pg(r, i),
        }
    }
}

/// Turns "no row" into `None` (like rusqlite's `OptionalExtension`).
pub(crate) trait OptionalExtension<T> {
    /// `Ok(None)` for [`StoreError::NoRow`].
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NoRow) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A statement of one connection (prepared, and cached, when first run).
pub(crate) struct Stmt<'c> {
    db: &'c Db,
    sql: &'c str,
}

impl Stmt<'_> {
    /// Run it; the number of rows changed.
    pub(crate) fn execute<P: Params>(&mut self, p: P) -> Result<usize> {
        self.db.execute(self.sql, p)
    }
    /// The first row through `f`, or [`StoreError::NoRow`].
    pub(crate) fn query_row<P: Params, T>(
        &mut self,
        p: P,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.db.query_row(self.sql, p, f)
    }
    /// Every row through `f`.
    pub(crate) fn query_map<P: Params, T>(
        &mut self,
        p: P,
        f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        self.db.query_map(self.sql, p, f)
    }
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Val::Null => ValueRef::Null,
            Val::Int(i) => ValueRef::Integer(i),
            Val::Text(s) => ValueRef::Text(s.as_bytes()),
            Val::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

impl postgres::types::ToSql for Val<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use postgres::types::{IsNull, Type};
        match *self {
            Val::Null => Ok(IsNull::Yes),
            // The server decides a placeholder's type from its context; an integer goes in as
            // whatever width it asked for, refusing what does not fit.
            Val::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                _ => i.to_string().as_str().to_sql(ty, out),
            },
            Val::Text(s) => s.to_sql(ty, out),
            Val::Bytes(b) => b.to_sql(ty, out),
        }
    }
    fn accepts(ty: &postgres::types::Type) -> bool {
        use postgres::types::Type;
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::BOOL
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
                | Type::BYTEA
        )
    }
    postgres::types::to_sql_checked!();
}

/// `?N` placeholders to PostgreSQL's `$N` (the SQL of this app has no `?` in literals).
pub(super) fn pg_sql(sql: &str) -> String {
    sql.replace('?', "$")
}

impl Db {
    /// Open SQLite (already configured by the caller).
    pub(crate) fn sqlite(c: rusqlite::Connection) -> Db {
        Db::Sqlite(c)
    }

    /// Connect to PostgreSQL at `url` (`postgres://user:pass@host:port/db` or key=value form).
    pub(crate) fn postgres(url: &str) -> Result<Db> {
        let pg = PgConn {
            url: url.to_string(),
            client: RefCell::new(None),
            stmts: RefCell::new(HashMap::new()),
            in_tx: Cell::new(false),
            failed_at: Cell::new(None),
        };
        pg.connect()?;
        Ok(Db::Pg(Box::new(pg)))
    }

    /// Which store this is.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Db::Sqlite(_) => Kind::Sqlite,
            Db::Pg(_) => Kind::Postgres,
        }
    }

    /// The SQLite connection (SQLite-only settings in tests).
    #[cfg(test)]
    pub(crate) fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Db::Sqlite(c) => Some(c),
            Db::Pg(_) => None,
        }
    }

    /// A statement to run (the name keeps rusqlite's spelling; both stores cache it).
    pub(crate) fn prepare_cached<'c>(&'c self, sql: &'c str) -> Result<Stmt<'c>> {
        Ok(Stmt { db: self, sql })
    }

    /// Same as [`Self::prepare_cached`].
    pub(crate) fn prepare<'c>(&'c self, sql: &'c str) -> Result<Stmt<'c>> {
        self.prepare_cached(sql)
    }

    /// Run one statement; the number of rows changed.
    pub(crate) fn execute<P: Params>(&self, sql: &str, p: P) -> Result<usize> {
        let vals = p.vals();
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(vals.iter()))?)
            }
            Db::Pg(pg) => pg.with(sql, |client, st| {
                Ok(client.execute(st, &pg_refs(&vals))? as usize)
            }),
        }
    }

    /// The first row of a query through `f`, or [`StoreError::NoRow`].
    pub(crate) fn query_row<P: Params, T>(
        &self,
        sql: &str,
        p: P,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        let vals = p.vals();
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let mut rows = st.query(rusqlite::params_from_iter(vals.iter()))?;
                match rows.next()? {
                    Some(r) => f(&Row::Lite(r)),
                    None => Err(StoreError::NoRow),
                }
            }
            Db::Pg(pg) => {
                let rows = pg.with(sql, |client, st| Ok(client.query(st, &pg_refs(&vals))?))?;
                match rows.first() {
                    Some(r) => f(&Row::Pg(r)),
                    None => Err(StoreError::NoRow),
                }
            }
        }
    }

    /// Every row of a query through `f` (each row's own result, like rusqlite's iterator).
    pub(crate) fn query_map<P: Params, T>(
        &self,
        sql: &str,
        p: P,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let vals = p.vals();
        let mut out = Vec::new();
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let mut rows = st.query(rusqlite::params_from_iter(vals.iter()))?;
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Lite(r)));
                }
            }
            Db::Pg(pg) => {
                let rows = pg.with(sql, |client, st| Ok(client.query(st, &pg_refs(&vals))?))?;
                out.extend(rows.iter().map(|r| f(&Row::Pg(r))));
            }
        }
        Ok(out.into_iter())
    }

    /// Run statements with no parameters (DDL, transaction control), `;`-separated.
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Pg(pg) => pg.batch(sql),
        }
    }

    /// Begin the writer's transaction holding `lock`. SQLite takes its database-wide write
    /// lock at once (IMMEDIATE) whatever `lock` says. PostgreSQL takes transaction-scoped
    /// advisory locks: [`WriteLock::All`] the writers' lock exclusively; a set of businesses
    /// that lock shared, then one lock per business, in ascending key order, so two
    /// transactions never wait on each other in a circle and writers of different
    /// businesses run in parallel (see docs/architecture.md).
    pub(crate) fn begin_write_for(&self, lock: &WriteLock<'_>) -> Result<()> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch("BEGIN IMMEDIATE")?),
            Db::Pg(pg) => {
                // One round trip for BEGIN and the writers' lock; a closed connection is
                // reopened first (no transaction is open yet).
                let how = match lock {
                    WriteLock::All => "pg_advisory_xact_lock",
                    WriteLock::Businesses(_) => "pg_advisory_xact_lock_shared",
                };
                let began = pg.batch(&format!("BEGIN; SELECT {how}({WRITE_LOCK})"));
                pg.in_tx.set(true);
                let locked = began.and_then(|()| match lock {
                    WriteLock::All => Ok(()),
                    WriteLock::Businesses(bids) => pg.lock_businesses(bids),
                });
                if let Err(e) = locked {
                    let _ = pg.batch("ROLLBACK");
                    pg.in_tx.set(false);
                    return Err(e);
                }
                Ok(())
            }
        }
    }

    /// Commit the writer's transaction.
    pub(crate) fn commit(&self) -> Result<()> {
        let r = self.execute_batch("COMMIT");
        if let Db::Pg(pg) = self {
            pg.in_tx.set(false);
        }
        r
    }

    /// Roll the writer's transaction back (errors ignored: it is being abandoned).
    pub(crate) fn rollback(&self) {
        let _ = self.execute_batch("ROLLBACK");
        if let Db::Pg(pg) = self {
            pg.in_tx.set(false);
        }
    }
}

/// The advisory lock key of the writers' transactions (any constant; "kefu" in ASCII):
/// exclusive for [`WriteLock::All`], shared under per-business locks.
const WRITE_LOCK: i64 = 0x6b65_6675;

/// The first half of a business's advisory lock key, `(BUSINESS_LOCK, hashtext(bid))`. The
/// two-integer keys are a space of their own in PostgreSQL, apart from the one-bigint keys
/// above and the migrations', so no business can ever share a lock with them.
pub(crate) const BUSINESS_LOCK: i32 = 0x6b65_6675;

/// What a write transaction locks on PostgreSQL (SQLite has one lock for everything).
#[derive(Debug, Clone, Copy)]
pub(crate) enum WriteLock<'a> {
    /// Everything: waits for every other writer (admin commands, jobs of no one business).
    All,
    /// The rows of these businesses only (any order, repeats allowed; at least one).
    Businesses(&'a [&'a str]),
}

fn pg_refs<'a>(vals: &'a [Val<'a>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    vals.iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

impl PgConn {
    fn connect(&self) -> Result<()> {
        if let Some(at) = self.failed_at.get() {
            if at.elapsed() < PG_RETRY_AFTER {
                return Err(StoreError::Unavailable);
            }
        }
        let mut cfg: postgres::Config = self
            .url
            .parse()
            .map_err(|_| StoreError::Invalid("kefu.database is not a PostgreSQL URL"))?;
        cfg.connect_timeout(PG_CONNECT_TIMEOUT);
        match cfg.connect(postgres::NoTls) {
            Ok(c) => {
                self.failed_at.set(None);
                self.stmts.borrow_mut().clear();
                *self.client.borrow_mut() = Some(c);
                Ok(())
            }
            Err(e) => {
                self.failed_at.set(Some(Instant::now()));
                Err(StoreError::Pg(e))
            }
        }
    }

    /// The live client: a closed one is reopened unless a transaction was under way (its
    /// work is gone with the old connection; the caller must fail, not carry on).
    fn ready(&self) -> Result<()> {
        let closed = self
            .client
            .borrow()
            .as_ref()
            .is_none_or(postgres::Client::is_closed);
        if closed {
            *self.client.borrow_mut() = None;
            if self.in_tx.get() {
                return Err(StoreError::Unavailable);
            }
            self.connect()?;
        }
        Ok(())
    }

    fn with<T>(
        &self,
        sql: &str,
        f: impl FnOnce(&mut postgres::Client, &postgres::Statement) -> Result<T>,
    ) -> Result<T> {
        self.ready()?;
        let mut guard = self.client.borrow_mut();
        let client = guard.as_mut().ok_or(StoreError::Unavailable)?;
        let st = {
            let cached = self.stmts.borrow().get(sql).cloned();
            match cached {
                Some(st) => st,
                None => {
                    let st = client.prepare(&pg_sql(sql))?;
                    let mut stmts = self.stmts.borrow_mut();
                    if stmts.len() >= PG_STMT_CACHE {
                        stmts.clear();
                    }
                    stmts.insert(sql.to_string(), st.clone());
                    st
                }
            }
        };
        f(client, &st)
    }

    /// Lock these businesses in the open transaction. The keys are hashed by the server
    /// (`hashtext`), so every node computes the same key for a business; two businesses
    /// whose hashes collide merely share a lock. The lock calls run after the sort:
    /// PostgreSQL evaluates output expressions that ORDER BY does not use once the rows are
    /// sorted (SELECT's documentation), so every transaction locks in ascending key order.
    fn lock_businesses(&self, bids: &[&str]) -> Result<()> {
        const SQL: &str = "SELECT pg_advisory_xact_lock($1, k.h)
             FROM (SELECT DISTINCT hashtext(b) AS h FROM unnest($2::text[]) AS b) AS k
             ORDER BY k.h";
        self.with(SQL, |client, st| {
            client.execute(st, &[&BUSINESS_LOCK, &bids])?;
            Ok(())
        })
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.ready()?;
        let mut guard = self.client.borrow_mut();
        let client = guard.as_mut().ok_or(StoreError::Unavailable)?;
        Ok(client.batch_execute(sql)?)
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Pg(e)
    }
}
