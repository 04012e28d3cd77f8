//! The SQL the statement writer speaks, over either of its connections: a
//! sea-orm connection or transaction (PostgreSQL, an in-memory SQLite
//! database), or, for a SQLite file, a connection of the writer's own that
//! runs each statement on the writer's thread.
//!
//! Why the second: sqlx runs every SQLite connection on a thread of its own,
//! so each statement of a group commit was a hand-off to that thread and
//! back, two wake-ups, and a returned connection is pinged (one more) before
//! it can be taken again. Idle, a hand-off took 15–20 µs; with the HTTP
//! workers and the clients on the same two cores, about 190 µs, and a group
//! of 16 single statements spent 0.6 ms waiting to begin and 1.8 ms on nine
//! statements whose SQLite work was a fraction of that. The writer's own
//! connection also keeps its page cache from group to group: SQLite empties
//! a connection's cache when another connection has written, which pooled
//! connections taking turns always had.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, TryGetable, Value};

/// Executes statements for the writer; rows come back as tuples. (Named
/// apart from `ConnectionTrait`'s methods, which sea-orm types also have.)
pub trait WriterSql {
    fn backend(&self) -> DbBackend;

    /// Runs `stmt`; the number of rows it changed.
    fn run(&self, stmt: Statement) -> impl Future<Output = Result<u64, DbErr>>;

    /// Runs `stmt` and reads every row it returns.
    fn rows<R: FromRow>(&self, stmt: Statement) -> impl Future<Output = Result<Vec<R>, DbErr>>;

    /// Sends `rows` to `copy` (a `COPY … FROM STDIN (FORMAT binary)`); the
    /// number of rows stored, or `None` from a connection that has no COPY
    /// (every one but the writer's own on PostgreSQL, `pg_writer.rs`).
    fn copy_in(&self, copy: &str, rows: CopyRows) -> impl Future<Output = Result<Option<u64>, DbErr>> {
        let _ = (copy, rows);
        async { Ok(None) }
    }
}

impl<C: ConnectionTrait> WriterSql for C {
    fn backend(&self) -> DbBackend {
        self.get_database_backend()
    }

    async fn run(&self, stmt: Statement) -> Result<u64, DbErr> {
        Ok(self.execute_raw(stmt).await?.rows_affected())
    }

    async fn rows<R: FromRow>(&self, stmt: Statement) -> Result<Vec<R>, DbErr> {
        self.query_all_raw(stmt).await?.iter().map(R::from_result).collect()
    }
}

/// Rows in COPY's binary format (`COPY … FROM STDIN (FORMAT binary)`): the
/// columns' types must be the table's exactly (`int8`, `bool`, `text`).
pub struct CopyRows {
    data: Vec<u8>,
}

impl CopyRows {
    pub fn new(capacity: usize) -> CopyRows {
        let mut data = Vec::with_capacity(capacity + 21);
        data.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        data.extend_from_slice(&0_i32.to_be_bytes()); // flags
        data.extend_from_slice(&0_i32.to_be_bytes()); // header extension
        CopyRows { data }
    }

    /// Begins a row of `fields` columns.
    pub fn row(&mut self, fields: i16) -> &mut Self {
        self.data.extend_from_slice(&fields.to_be_bytes());
        self
    }

    pub fn int8(&mut self, value: i64) -> &mut Self {
        self.data.extend_from_slice(&8_i32.to_be_bytes());
        self.data.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.data.extend_from_slice(&1_i32.to_be_bytes());
        self.data.push(u8::from(value));
        self
    }

    /// Text, or NULL for `None`. (A field longer than 2 GiB cannot be sent;
    /// a request body is far smaller.)
    pub fn text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(text) => {
                let len = i32::try_from(text.len()).unwrap_or(i32::MAX);
                self.data.extend_from_slice(&len.to_be_bytes());
                self.data.extend_from_slice(text.as_bytes());
            }
            None => self.data.extend_from_slice(&(-1_i32).to_be_bytes()),
        }
        self
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.data.extend_from_slice(&(-1_i16).to_be_bytes());
        self.data
    }
}

/// A row read as a tuple, from either kind of connection.
pub trait FromRow: Sized {
    fn from_result(row: &QueryResult) -> Result<Self, DbErr>;
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: TryGetable + rusqlite::types::FromSql),+> FromRow for ($($t,)+) {
            fn from_result(row: &QueryResult) -> Result<Self, DbErr> {
                Ok(($(row.try_get_by_index::<$t>($i)?,)+))
            }

            fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(($(row.get::<_, $t>($i)?,)+))
            }
        }
    };
}

tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);

/// Page cache of the writer's connection.
const WRITER_CACHE_KIB: u32 = 16 * 1024;

/// The writer's own connection to a SQLite file. Not `Sync`: it lives on
/// the writer's thread.
pub(crate) struct SqliteWriter {
    conn: rusqlite::Connection,
    /// The process's write lock on this file (`store::begin_write`).
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteWriter {
    /// Opens `path` with the pragmas of the request pool's durable
    /// connections (`store::sqlite_pragmas`), and a larger cache, since it
    /// is one connection.
    pub(crate) fn open(path: &Path, lock: Arc<tokio::sync::Mutex<()>>) -> rusqlite::Result<SqliteWriter> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(super::SQLITE_BUSY_TIMEOUT)?;
        let pragmas: String =
            super::sqlite_pragmas(true, WRITER_CACHE_KIB).iter().map(|(k, v)| format!("PRAGMA {k} = {v};")).collect();
        conn.execute_batch(&pragmas)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteWriter { conn, lock })
    }

    /// A write transaction: the process's lock, then `BEGIN IMMEDIATE`.
    pub(crate) async fn begin(&self) -> Result<SqliteTransaction<'_>, DbErr> {
        let guard = self.lock.clone().lock_owned().await;
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        Ok(SqliteTransaction { conn: &self.conn, open: true, _lock: guard })
    }
}

/// A transaction of the writer's connection; rolled back unless committed.
pub(crate) struct SqliteTransaction<'a> {
    conn: &'a rusqlite::Connection,
    open: bool,
    _lock: tokio::sync::OwnedMutexGuard<()>,
}

impl SqliteTransaction<'_> {
    pub(crate) fn commit(mut self) -> Result<(), DbErr> {
        self.open = false;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            // A COMMIT that failed may leave the transaction open.
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(db_err(e));
        }
        Ok(())
    }
}

impl Drop for SqliteTransaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl WriterSql for SqliteTransaction<'_> {
    fn backend(&self) -> DbBackend {
        DbBackend::Sqlite
    }

    async fn run(&self, stmt: Statement) -> Result<u64, DbErr> {
        let params = sqlite_params(stmt.values.map(|v| v.0).unwrap_or_default())?;
        let mut prepared = self.conn.prepare_cached(&stmt.sql).map_err(db_err)?;
        Ok(prepared.execute(rusqlite::params_from_iter(params)).map_err(db_err)? as u64)
    }

    async fn rows<R: FromRow>(&self, stmt: Statement) -> Result<Vec<R>, DbErr> {
        let params = sqlite_params(stmt.values.map(|v| v.0).unwrap_or_default())?;
        let mut prepared = self.conn.prepare_cached(&stmt.sql).map_err(db_err)?;
        let rows = prepared.query_map(rusqlite::params_from_iter(params), |row| R::from_sqlite(row)).map_err(db_err)?;
        rows.collect::<rusqlite::Result<Vec<R>>>().map_err(db_err)
    }
}

fn db_err(e: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("SQLite: {e}"))
}

/// sea-orm values as SQLite's: the kinds the writer binds.
fn sqlite_params(values: Vec<Value>) -> Result<Vec<rusqlite::types::Value>, DbErr> {
    use rusqlite::types::Value as S;
    let int = |i: Option<i64>| i.map_or(S::Null, S::Integer);
    values
        .into_iter()
        .map(|v| {
            Ok(match v {
                Value::Bool(b) => int(b.map(i64::from)),
                Value::TinyInt(i) => int(i.map(i64::from)),
                Value::SmallInt(i) => int(i.map(i64::from)),
                Value::Int(i) => int(i.map(i64::from)),
                Value::BigInt(i) => int(i),
                Value::TinyUnsigned(i) => int(i.map(i64::from)),
                Value::SmallUnsigned(i) => int(i.map(i64::from)),
                Value::Unsigned(i) => int(i.map(i64::from)),
                Value::BigUnsigned(i) => match i.map(i64::try_from).transpose() {
                    Ok(i) => int(i),
                    Err(_) => return Err(DbErr::Custom("an integer above 2^63 for SQLite".into())),
                },
                Value::Float(f) => f.map_or(S::Null, |f| S::Real(f64::from(f))),
                Value::Double(f) => f.map_or(S::Null, S::Real),
                Value::String(s) => s.map_or(S::Null, S::Text),
                Value::Char(c) => c.map_or(S::Null, |c| S::Text(c.to_string())),
                Value::Bytes(b) => b.map_or(S::Null, S::Blob),
                other => return Err(DbErr::Custom(format!("the writer binds no {other:?} on SQLite"))),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &Path) -> SqliteWriter {
        let w = SqliteWriter::open(&dir.join("w.db"), Default::default()).unwrap();
        w.conn.execute_batch("CREATE TABLE t (i INTEGER, s TEXT, b BOOLEAN)").unwrap();
        w
    }

    fn insert(i: i64, s: Option<&str>, b: bool) -> Statement {
        Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO t (i, s, b) VALUES (?, ?, ?)",
            vec![Value::from(i), Value::from(s.map(str::to_owned)), Value::from(b)],
        )
    }

    fn all() -> Statement {
        Statement::from_string(DbBackend::Sqlite, "SELECT i, s, b FROM t ORDER BY i")
    }

    #[tokio::test]
    async fn a_committed_transaction_is_read_back_and_a_dropped_one_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        let txn = w.begin().await.unwrap();
        assert_eq!(txn.run(insert(i64::MIN, Some("a'b"), true)).await.unwrap(), 1);
        txn.run(insert(7, None, false)).await.unwrap();
        txn.commit().unwrap();

        let txn = w.begin().await.unwrap();
        txn.run(insert(8, Some("gone"), true)).await.unwrap();
        drop(txn);

        let txn = w.begin().await.unwrap();
        let rows: Vec<(i64, Option<String>, bool)> = txn.rows(all()).await.unwrap();
        assert_eq!(rows, vec![(i64::MIN, Some("a'b".into()), true), (7, None, false)]);
    }

    #[tokio::test]
    async fn a_transaction_holds_the_process_lock_on_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        let txn = w.begin().await.unwrap();
        assert!(w.lock.try_lock().is_err(), "a document PUT could begin meanwhile");
        drop(txn);
        assert!(w.lock.try_lock().is_ok());
    }

    /// An acknowledged statement is on disk: the writer's connection has
    /// the pool's durable pragmas (one list, `store::sqlite_pragmas`).
    #[test]
    fn the_writers_connection_commits_to_disk_and_leaves_checkpoints_to_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        let pragma = |name: &str| match w.conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).unwrap() {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(pragma("journal_mode"), "wal");
        assert_eq!(pragma("synchronous"), "2", "FULL");
        assert_eq!(pragma("wal_autocheckpoint"), "0");
        assert_eq!(pragma("cache_size"), format!("-{WRITER_CACHE_KIB}"));
    }

    #[test]
    fn values_the_writer_cannot_bind_are_refused_not_dropped() {
        assert!(sqlite_params(vec![Value::from(vec![1_i64, 2])]).is_err());
        assert!(sqlite_params(vec![Value::BigUnsigned(Some(u64::MAX))]).is_err());
        assert_eq!(sqlite_params(vec![Value::Bool(None)]).unwrap(), vec![rusqlite::types::Value::Null]);
    }
}
