//! The query seam of `db.rs` on SQLite: placeholders, parameters of every kind, rows and
//! the "no row" case.

use super::db::*;
use super::Result;

#[test]
fn placeholders_and_values_round_trip_on_sqlite() {
    let db = Db::sqlite(rusqlite::Connection::open_in_memory().unwrap());
    db.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c BLOB)")
        .unwrap();
    let none: Option<&str> = None;
    db.execute(
        "INSERT INTO t VALUES (?1, ?2, ?3)",
        params![7i64, "x", vec![1u8, 2]],
    )
    .unwrap();
    db.execute("INSERT INTO t VALUES (?1, ?2, NULL)", params![true, none])
        .unwrap();
    let rows: Vec<(i64, Option<String>)> = db
        .query_map("SELECT a, b FROM t ORDER BY a DESC", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(rows, vec![(7, Some("x".into())), (1, None)]);
    let missing = db
        .query_row("SELECT a FROM t WHERE a = ?1", [9i64], |r| {
            r.get::<_, i64>(0)
        })
        .optional()
        .unwrap();
    assert_eq!(missing, None);
    assert_eq!(pg_sql("a = ?1 AND b = ?12"), "a = $1 AND b = $12");
}
