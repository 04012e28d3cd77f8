//! Storage: the only module that knows SQL. SQLite (WAL) and PostgreSQL run
//! the same code; where their SQL differs, `sql.rs` holds one version of each.

pub mod activities;
pub mod agent_names;
pub mod attachments;
mod checkpoint;
pub mod credentials;
pub mod documents;
pub mod feed;
pub mod filter_index;
pub mod forward_stream;
pub mod identities;
pub mod outbox;
mod pg_nodelay;
mod pg_writer;
pub mod progress;
mod progress_fold;
mod sql;
pub mod statements;
#[cfg(test)]
pub(crate) mod test_databases;
mod write_memo;
pub mod writer;
mod writer_sql;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::config::DatabaseArgs;

/// Opens the pool for `DATABASE_URL` (creating a SQLite file if missing).
pub async fn connect(args: &DatabaseArgs) -> anyhow::Result<DatabaseConnection> {
    open(args, true).await
}

/// A pool whose commits do not wait for the disk: for the forwarding
/// dispatchers' claims and closes, whose loss in a crash only means a row is
/// delivered again (at least once; targets make that harmless). Their write
/// transactions then cost the statement writer no flush. Statements and the
/// outbox rows written with them always go through the durable pool; a later
/// durable commit flushes the relaxed ones before it. An in-memory SQLite
/// database has only the one connection: `None`, use it.
pub async fn connect_relaxed(args: &DatabaseArgs) -> anyhow::Result<Option<DatabaseConnection>> {
    if in_memory(&args.url) {
        return Ok(None);
    }
    open(&DatabaseArgs { url: args.url.clone(), pool_size: 2 }, false).await.map(Some)
}

async fn open(args: &DatabaseArgs, durable: bool) -> anyhow::Result<DatabaseConnection> {
    let url = args.url.as_str();
    if url.starts_with("sqlite:") {
        let in_memory = in_memory(url);
        let mut options = SqliteConnectOptions::from_str(url)
            .with_context(|| "invalid SQLite DATABASE_URL")?
            .create_if_missing(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        for (name, value) in sqlite_pragmas(durable, POOL_CACHE_KIB) {
            options = options.pragma(name, value);
        }
        // An in-memory database lives in its one connection.
        let pool_size = if in_memory { 1 } else { args.pool_size.max(2) };
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size)
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory { None } else { Some(Duration::from_secs(600)) })
            .max_lifetime(if in_memory { None } else { Some(Duration::from_secs(3600)) })
            .connect_with(options)
            .await
            .with_context(|| "cannot open the SQLite database")?;
        Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let options = PgConnectOptions::from_str(url).with_context(|| "invalid PostgreSQL DATABASE_URL")?;
        let servers = pg_nodelay::server_addresses(options.get_host(), options.get_port());
        let pool = PgPoolOptions::new()
            .max_connections(args.pool_size.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                pg_nodelay::set_nodelay_to_server(&servers);
                Box::pin(async move {
                    if !durable {
                        sqlx::Executor::execute(&mut *conn, "SET synchronous_commit = off").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| "cannot connect to PostgreSQL")?;
        Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
    } else {
        anyhow::bail!("DATABASE_URL must start with sqlite: or postgres:")
    }
}

/// How long a SQLite connection waits for another process's write lock.
pub(super) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Page cache of each pooled SQLite connection. The operating system caches
/// the file too; at 1M statements 4 MiB read as fast as 8 MiB did, and the
/// eight connections' caches held 32 MiB less of the server's memory.
const POOL_CACHE_KIB: u32 = 4 * 1024;

/// What every SQLite connection of xlrs runs with: the request pools'
/// (sqlx) and the statement writer's own (`writer_sql.rs`). `durable`:
/// `synchronous = FULL`, so a commit is on disk when it returns (the
/// forwarders' relaxed pool has NORMAL).
pub(super) fn sqlite_pragmas(durable: bool, cache_kib: u32) -> [(&'static str, String); 6] {
    [
        ("journal_mode", "WAL".into()),
        ("synchronous", if durable { "FULL" } else { "NORMAL" }.into()),
        // Index inserts touch pages all over the file: keep more of them in
        // SQLite's cache (the OS caches the rest of the file). The file is
        // read, not mapped: mapped pages count in the server's memory, and
        // at a million statements they were most of it (480 MiB of RSS).
        ("cache_size", format!("-{cache_kib}")),
        ("temp_store", "memory".into()),
        // The writer's checkpoint task checkpoints, off its commits
        // (`checkpoint.rs`); the WAL file is cut back to this size when it
        // starts over.
        ("wal_autocheckpoint", "0".into()),
        ("journal_size_limit", "67108864".into()),
    ]
}

/// An in-memory SQLite database: one connection, no WAL, no file.
fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// A transaction that writes. On SQLite it takes the write lock at BEGIN
/// (IMMEDIATE), since a transaction that has read cannot wait for it later,
/// and it first queues for this process's lock on the database file: SQLite
/// makes a writer that finds the lock taken sleep and retry (1 ms, then up
/// to 100 ms at a time), so concurrent document PUTs and the statement
/// writer would wait on sleeps rather than on each other.
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTransaction, sea_orm::DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    let lock = match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => Some(sqlite_write_lock(db).lock_owned().await),
        _ => None,
    };
    let options =
        TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() };
    Ok(WriteTransaction { txn: db.begin_with_options(options).await?, _lock: lock })
}

/// Takes the statement writer's turn on PostgreSQL: an advisory lock
/// (2020373107 is 0x786c7273, "xlrs") that serialises the writer's commits
/// across `xlrs serve` nodes sharing a database, so `seq` order is commit
/// order (keyset paging relies on it); and custom plans for the turn's
/// statements (`sql::select_in_writer_turn`) in the same round trip
/// (`true`: for this transaction only).
const WRITER_TURN_SQL: &str =
    "SELECT pg_advisory_xact_lock(2020373107), set_config('plan_cache_mode', 'force_custom_plan', true)";

/// A write transaction in the statement writer's turn: on SQLite the file's
/// write lock is that already; on PostgreSQL every node's writer also takes
/// an advisory lock for the transaction.
pub(super) async fn begin_writer_turn(db: &DatabaseConnection) -> anyhow::Result<WriteTransaction> {
    use sea_orm::ConnectionTrait;
    let txn = begin_write(db).await.context("begin")?;
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        txn.execute_raw(sql::stmt(sea_orm::DbBackend::Postgres, WRITER_TURN_SQL, vec![]))
            .await
            .context("writer lock")?;
    }
    Ok(txn)
}

/// A write transaction from `begin_write`, holding its lock until it ends.
pub struct WriteTransaction {
    txn: sea_orm::DatabaseTransaction,
    _lock: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTransaction {
    pub async fn commit(self) -> Result<(), sea_orm::DbErr> {
        self.txn.commit().await
    }

    pub async fn rollback(self) -> Result<(), sea_orm::DbErr> {
        self.txn.rollback().await
    }
}

impl std::ops::Deref for WriteTransaction {
    type Target = sea_orm::DatabaseTransaction;

    fn deref(&self) -> &Self::Target {
        &self.txn
    }
}

/// The file of the SQLite database `db` opens; `None` for PostgreSQL and
/// for an in-memory database, for which SQLite names no file. (Asked of
/// SQLite: sqlx's options cannot say, and turning an in-memory database's
/// options into a URL panics.)
pub(crate) async fn sqlite_file(db: &DatabaseConnection) -> anyhow::Result<Option<std::path::PathBuf>> {
    use sea_orm::ConnectionTrait;
    if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return Ok(None);
    }
    let list = sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, "PRAGMA database_list");
    for row in db.query_all_raw(list).await.context("the SQLite database's file")? {
        let (name, file): (String, String) = (row.try_get_by_index(1)?, row.try_get_by_index(2)?);
        if name == "main" {
            return Ok((!file.is_empty()).then(|| file.into()));
        }
    }
    Ok(None)
}

/// The lock of the SQLite file `db` opens, shared by every pool of this
/// process on that file (and by the statement writer's own connection).
fn sqlite_write_lock(db: &DatabaseConnection) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::{Arc, LazyLock, Mutex};
    static LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = LazyLock::new(Default::default);
    let file = db.get_sqlite_connection_pool().connect_options().get_filename().to_path_buf();
    LOCKS.lock().unwrap_or_else(|e| e.into_inner()).entry(file).or_default().clone()
}

pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await.with_context(|| "applying migrations")
}
