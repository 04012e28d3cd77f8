//! SQLite: the filter keys as postings per block of statements, instead of
//! one `statement_key` row per (key, statement).
//!
//! `statement_key`'s `(key, seq)` B-tree took a new entry under each of a
//! statement's ~11 keys, so a group of 200 statements dirtied ~2,000 leaf
//! pages scattered over the index, each written to the WAL and again by
//! the checkpoint: 18 KB written and ~60 µs of the writer per statement.
//! `statement_posting` holds, per block of 16,384 `seq`s and key, the
//! statements of the block that carry the key (2 bytes each). Its primary
//! key leads with the block, so a block's rows are appended together, once,
//! when the block is full; until then the open block is held in memory
//! (`src/store/filter_index.rs`), rebuilt at start from `filter_keys`, the
//! statement's keys (8 bytes each, big-endian).
//!
//! PostgreSQL keeps `statement_key`: several processes may write to it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE: &[&str] = &[
    "ALTER TABLE statement ADD COLUMN filter_keys BLOB NOT NULL DEFAULT x''",
    // Temporary: `statement_key` is keyed (key, seq); this reads it by seq.
    "CREATE INDEX statement_key_by_seq ON statement_key (seq, key)",
    "UPDATE statement SET filter_keys = COALESCE((SELECT unhex(group_concat(printf('%016x', k.key), '')) \
        FROM statement_key k WHERE k.seq = statement.seq), x'')",
    "DROP TABLE statement_key",
    // Blocks are written by the server at start (from `filter_keys`).
    "CREATE TABLE statement_posting (
        block INTEGER NOT NULL,
        key INTEGER NOT NULL,
        seqs BLOB NOT NULL,
        PRIMARY KEY (block, key)
    ) WITHOUT ROWID",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Sqlite => crate::execute_all(manager, SQLITE).await,
            _ => Ok(()),
        }
    }
}
