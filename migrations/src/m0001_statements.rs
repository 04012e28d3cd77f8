//! Statements, their filter keys, attachment content, and credentials.
//!
//! Attachment content is stored once per SHA-2 hash, whichever statements
//! refer to it.
//!
//! Every filter of the Statement resource (verb, registration, agent, activity,
//! related agents/activities, authority) is one row in `statement_key`: a 64-bit
//! hash of (kind, value) plus the statement's `seq`. One B-tree keyed
//! `(key, seq)` serves every filter in `seq` order, which is what makes keyset
//! paging cost the same on page 1 and page 10,000. SQLite stores it
//! `WITHOUT ROWID` so the key index *is* the table (one B-tree write per row).
//!
//! `statement.key_list` holds the keys a statement passes on to statements
//! that reference it (StatementRef filter rule), so they are copied without
//! an index on `statement_key.seq`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE: &[&str] = &[
    "CREATE TABLE statement (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        stored_us INTEGER NOT NULL,
        voided BOOLEAN NOT NULL DEFAULT FALSE,
        voiding BOOLEAN NOT NULL DEFAULT FALSE,
        object_ref TEXT,
        key_list TEXT NOT NULL,
        body TEXT NOT NULL
    )",
    "CREATE INDEX statement_stored ON statement (stored_us, seq)",
    "CREATE INDEX statement_object_ref ON statement (object_ref) WHERE object_ref IS NOT NULL",
    "CREATE TABLE statement_key (
        key INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (key, seq)
    ) WITHOUT ROWID",
    "CREATE TABLE attachment (
        sha2 TEXT PRIMARY KEY NOT NULL,
        content_type TEXT NOT NULL,
        length INTEGER NOT NULL,
        content BLOB NOT NULL
    )",
    "CREATE TABLE credential (
        key TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        revoked BOOLEAN NOT NULL DEFAULT FALSE
    )",
];

const POSTGRES: &[&str] = &[
    "CREATE TABLE statement (
        seq BIGINT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        stored_us BIGINT NOT NULL,
        voided BOOLEAN NOT NULL DEFAULT FALSE,
        voiding BOOLEAN NOT NULL DEFAULT FALSE,
        object_ref TEXT,
        key_list TEXT NOT NULL,
        body TEXT NOT NULL
    )",
    "CREATE INDEX statement_stored ON statement (stored_us, seq)",
    "CREATE INDEX statement_object_ref ON statement (object_ref) WHERE object_ref IS NOT NULL",
    "CREATE TABLE statement_key (
        key BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (key, seq)
    )",
    "CREATE TABLE attachment (
        sha2 TEXT PRIMARY KEY NOT NULL,
        content_type TEXT NOT NULL,
        length BIGINT NOT NULL,
        content BYTEA NOT NULL
    )",
    "CREATE TABLE credential (
        key TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_us BIGINT NOT NULL,
        revoked BOOLEAN NOT NULL DEFAULT FALSE
    )",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let ddl = match manager.get_database_backend() {
            DbBackend::Sqlite => SQLITE,
            DbBackend::Postgres => POSTGRES,
            other => {
                return Err(DbErr::Migration(format!("unsupported database backend {other:?}")));
            }
        };
        crate::execute_all(manager, ddl).await
    }
}
