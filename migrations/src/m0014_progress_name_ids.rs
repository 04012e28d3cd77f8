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

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bigint = crate::column_types(manager)?.bigint;
        let mut statements = vec!["DROP TABLE progress".to_owned(), "DROP TABLE progress_registration".to_owned()];
        statements.extend(crate::m0011_progress::progress_tables(manager, bigint)?);
        statements.extend([
            // On SQLite an INTEGER PRIMARY KEY is the row id: one B-tree.
            format!("CREATE TABLE progress_name (id {bigint} PRIMARY KEY, name TEXT NOT NULL)"),
            "UPDATE progress_counted SET through_seq = 0".to_owned(),
        ]);
        crate::execute_all(manager, &statements).await
    }
}
