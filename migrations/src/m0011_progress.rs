//! Learner progress, kept by the writer in each group's transaction: one row
//! per (learner, activity, registration), where `learner` is the actor's
//! canonical IFI, `registration` is '' for statements without one, and
//! `activity` is the statement's object or one of its context parents (a
//! course row sums what its children's statements say).
//!
//! The primary key leads with the learner and the registration, so a
//! statement's rows (its object and its parents) share a page. Every other
//! index costs a page write for each new row, so there are only two ways
//! in besides it: by activity (an index), and by registration through
//! `progress_registration`, which gains a row only when a learner starts a
//! registration (an index on `progress.registration` would have been written
//! for every new row).
//!
//! `progress_backfill` says which statements stored before this table
//! existed are counted yet: those up to `through_seq`, out of those up to
//! `to_seq` (the last statement when the table was made). The writer counts
//! every statement after `to_seq`; start-up counts the rest in batches.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn table(key: &str, bigint: &str, real: &str, storage: &str) -> String {
    format!(
        "CREATE TABLE progress (
            learner {key} NOT NULL,
            activity {key} NOT NULL,
            registration {key} NOT NULL,
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
    )
}

/// The progress table, its activity index and `progress_registration`, with
/// the learner, activity and registration columns of type `key` (text
/// here; 64-bit name ids from m0014 on).
pub(crate) fn progress_tables(manager: &SchemaManager, key: &str) -> Result<[String; 3], DbErr> {
    let bigint = crate::column_types(manager)?.bigint;
    let (create, without_rowid) = match manager.get_database_backend() {
        // The primary key is the table: one B-tree write per row.
        DbBackend::Sqlite => (table(key, bigint, "REAL", " WITHOUT ROWID"), " WITHOUT ROWID"),
        // Room on each page for HOT updates: a row's update (its key
        // never changes) then writes no index.
        _ => (table(key, bigint, "DOUBLE PRECISION", " WITH (fillfactor = 80)"), ""),
    };
    Ok([
        create,
        "CREATE INDEX progress_activity ON progress (activity, learner, registration)".to_owned(),
        format!(
            "CREATE TABLE progress_registration (
                    registration {key} NOT NULL,
                    learner {key} NOT NULL,
                    PRIMARY KEY (registration, learner)
                ){without_rowid}"
        ),
    ])
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bigint = crate::column_types(manager)?.bigint;
        let mut statements = progress_tables(manager, "TEXT")?.to_vec();
        statements.extend([
            format!("CREATE TABLE progress_backfill (through_seq {bigint} NOT NULL, to_seq {bigint} NOT NULL)"),
            "INSERT INTO progress_backfill (through_seq, to_seq) SELECT 0, COALESCE(MAX(seq), 0) FROM statement"
                .to_owned(),
        ]);
        crate::execute_all(manager, &statements).await
    }
}
