//! Progress rows keyed by 64-bit ids instead of text. A row named its
//! learner's IFI, its activity's IRI and its registration in full, in the
//! table and again in the activity index (about 130 bytes a row and as much
//! an index entry, compared byte by byte at every B-tree step); now each
//! name is stored once, in `progress_name`, and rows hold its id: a hash of
//! the name (`xapi::progress::name_id`), which the request's worker works
//! out, so no writer looks one up. Registration id 0 means none.
//!
//! The ids are SHA-256 hashes, which SQL here cannot compute: the rows are
//! not converted but counted again from the statement log at start-up
//! (`through_seq` goes back to 0; `progress::backfill`), as after a time
//! without progress.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bigint = crate::column_types(manager)?.bigint;
        let (real, storage, without_rowid) = match manager.get_database_backend() {
            // The primary key is the table: one B-tree write per row.
            DbBackend::Sqlite => ("REAL", " WITHOUT ROWID", " WITHOUT ROWID"),
            // Room on each page for HOT updates (m0011).
            _ => ("DOUBLE PRECISION", " WITH (fillfactor = 80)", ""),
        };
        let statements = [
            "DROP TABLE progress".to_owned(),
            "DROP TABLE progress_registration".to_owned(),
            format!(
                "CREATE TABLE progress (
                    learner {bigint} NOT NULL,
                    activity {bigint} NOT NULL,
                    registration {bigint} NOT NULL,
                    statements {bigint} NOT NULL,
                    completed BOOLEAN NOT NULL,
                    passed BOOLEAN NOT NULL,
                    failed BOOLEAN NOT NULL,
                    best_score {real},
                    last_score {real},
                    last_score_us {bigint},
                    last_score_seq {bigint},
                    first_us {bigint} NOT NULL,
                    last_us {bigint} NOT NULL,
                    last_seq {bigint} NOT NULL,
                    last_id TEXT NOT NULL,
                    attempts {bigint} NOT NULL,
                    duration_ms {bigint} NOT NULL,
                    PRIMARY KEY (learner, registration, activity)
                ){storage}"
            ),
            "CREATE INDEX progress_activity ON progress (activity, learner, registration)".to_owned(),
            format!(
                "CREATE TABLE progress_registration (
                    registration {bigint} NOT NULL,
                    learner {bigint} NOT NULL,
                    PRIMARY KEY (registration, learner)
                ){without_rowid}"
            ),
            // On SQLite an INTEGER PRIMARY KEY is the row id: one B-tree.
            format!("CREATE TABLE progress_name (id {bigint} PRIMARY KEY, name TEXT NOT NULL)"),
            "UPDATE progress_counted SET through_seq = 0".to_owned(),
        ];
        // One batch, so one connection: on SQLite, statements spread over
        // the pool's connections met a schema another one had just changed
        // ("index progress_activity already exists" after the DROP TABLE).
        crate::execute_all(manager, &[statements.join(";\n")]).await
    }
}
