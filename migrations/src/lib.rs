//! Schema history of xlrs, for SQLite and PostgreSQL.
//!
//! Migrations are applied by `xlrs serve` at start-up and by `xlrs migrate`.

pub use sea_orm_migration::prelude::*;

mod m0001_statements;
mod m0002_documents;
mod m0003_activities;
mod m0004_attachment_chunks;
mod m0005_agent_names;
mod m0006_credential_version;
mod m0007_forwarding;
mod m0008_forward_mapping;
mod m0009_outbox_lean_indexes;
mod m0010_forward_stream;
mod m0011_progress;
mod m0012_filter_postings;
mod m0013_progress_follows_log;
mod m0014_progress_name_ids;
mod m0015_statement_body_lz4;
mod m0016_forward_mapping_hash;
mod m0017_outbox_claimed_by;

pub struct Migrator;

/// The column types that are spelled differently by each backend.
struct ColumnTypes {
    bigint: &'static str,
    blob: &'static str,
}

fn column_types(manager: &SchemaManager) -> Result<ColumnTypes, DbErr> {
    use sea_orm_migration::sea_orm::DbBackend;
    match manager.get_database_backend() {
        DbBackend::Sqlite => Ok(ColumnTypes { bigint: "INTEGER", blob: "BLOB" }),
        DbBackend::Postgres => Ok(ColumnTypes { bigint: "BIGINT", blob: "BYTEA" }),
        other => Err(DbErr::Migration(format!("unsupported database backend {other:?}"))),
    }
}

/// Runs `statements` in order, as one batch: on SQLite the manager's
/// connection is a pool, and statements spread over its connections met a
/// schema another had just changed (m0014's CREATE INDEX failed with "index
/// progress_activity already exists" after its DROP TABLE).
async fn execute_all(manager: &SchemaManager<'_>, statements: &[impl AsRef<str>]) -> Result<(), DbErr> {
    use sea_orm_migration::sea_orm::ConnectionTrait;
    let batch: Vec<&str> = statements.iter().map(AsRef::as_ref).collect();
    manager.get_connection().execute_unprepared(&batch.join(";\n")).await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_statements::Migration),
            Box::new(m0002_documents::Migration),
            Box::new(m0003_activities::Migration),
            Box::new(m0004_attachment_chunks::Migration),
            Box::new(m0005_agent_names::Migration),
            Box::new(m0006_credential_version::Migration),
            Box::new(m0007_forwarding::Migration),
            Box::new(m0008_forward_mapping::Migration),
            Box::new(m0009_outbox_lean_indexes::Migration),
            Box::new(m0010_forward_stream::Migration),
            Box::new(m0011_progress::Migration),
            Box::new(m0012_filter_postings::Migration),
            Box::new(m0013_progress_follows_log::Migration),
            Box::new(m0014_progress_name_ids::Migration),
            Box::new(m0015_statement_body_lz4::Migration),
            Box::new(m0016_forward_mapping_hash::Migration),
            Box::new(m0017_outbox_claimed_by::Migration),
        ]
    }
}
