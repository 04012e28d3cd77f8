//! Databases for the store's own tests: SQLite in memory always, and
//! PostgreSQL when `XLRS_TEST_POSTGRES` names a server, a fresh database
//! there named as the conformance tests name theirs (`xlrs_t_<pid>_…`), so
//! that a killed run's is cleaned up by the next.

use sea_orm::DatabaseConnection;
use sqlx::Connection;

use crate::config::DatabaseArgs;

/// A migrated SQLite database, and a migrated PostgreSQL one when reachable.
pub async fn each(name: &str) -> Vec<DatabaseConnection> {
    let sqlite = super::connect(&DatabaseArgs { url: "sqlite::memory:".into(), pool_size: 1 }).await.unwrap();
    super::migrate(&sqlite).await.unwrap();
    let mut out = vec![sqlite];
    out.extend(postgres(name).await);
    out
}

/// A fresh, migrated PostgreSQL database, or `None` without `XLRS_TEST_POSTGRES`.
pub async fn postgres(name: &str) -> Option<DatabaseConnection> {
    postgres_pooled(name, 1).await
}

/// `postgres` with a pool of `pool_size` connections.
pub async fn postgres_pooled(name: &str, pool_size: u32) -> Option<DatabaseConnection> {
    let base = std::env::var("XLRS_TEST_POSTGRES").ok()?;
    let mut admin = sqlx::PgConnection::connect(&format!("{base}/postgres")).await.unwrap();
    let db = format!("xlrs_t_{}_{name}", std::process::id());
    for text in [format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"), format!("CREATE DATABASE \"{db}\"")] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(text)).execute(&mut admin).await.unwrap();
    }
    let conn = super::connect(&DatabaseArgs { url: format!("{base}/{db}"), pool_size }).await.unwrap();
    super::migrate(&conn).await.unwrap();
    Some(conn)
}
