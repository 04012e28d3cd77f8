//! Learner progress follows the statement log: every statement up to
//! `progress_counted.through_seq` is counted, none after it. The writer
//! folds what it commits in memory and writes the sums in large batches,
//! advancing `through_seq` in the same transaction (`src/store/progress_fold.rs`);
//! start-up counts what a stopped server left uncounted.
//!
//! `progress_backfill` said: counted are the statements up to `through_seq`
//! and those after `to_seq` (the writer counted those in each commit), and
//! `to_seq = -1` meant progress was not kept. Where the backfill had
//! finished, every statement is counted; where it had not, the rows are
//! dropped and every statement is counted afresh (the rule above has two
//! ranges, the new one one).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bigint = crate::column_types(manager)?.bigint;
        let unfinished = "(SELECT to_seq <> -1 AND through_seq < to_seq FROM progress_backfill)";
        let statements = [
            format!("CREATE TABLE progress_counted (through_seq {bigint} NOT NULL, kept BOOLEAN NOT NULL)"),
            format!("DELETE FROM progress WHERE {unfinished}"),
            format!("DELETE FROM progress_registration WHERE {unfinished}"),
            "INSERT INTO progress_counted (through_seq, kept) SELECT CASE \
                 WHEN to_seq <> -1 AND through_seq >= to_seq THEN (SELECT COALESCE(MAX(seq), 0) FROM statement) \
                 ELSE 0 END, to_seq <> -1 FROM progress_backfill"
                .to_owned(),
            "DROP TABLE progress_backfill".to_owned(),
        ];
        crate::execute_all(manager, &statements).await
    }
}
