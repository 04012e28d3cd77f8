//! Attachment content moves from one value per hash to chunks of 64 KiB, so
//! that it can be written and served a chunk at a time.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::ColumnTypes;

/// Must equal `xlrs::store::attachments::CHUNK_BYTES`.
const CHUNK_BYTES: i64 = 64 * 1024;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let ColumnTypes { bigint, blob } = crate::column_types(manager)?;
        // Copies chunk (idx, offset, length) of one attachment's content.
        let copy = if backend == DbBackend::Postgres {
            "INSERT INTO attachment_chunk (sha2, idx, data) \
             SELECT sha2, $1::bigint, substring(content from $2::int + 1 for $3::int) FROM attachment WHERE sha2 = $4"
        } else {
            "INSERT INTO attachment_chunk (sha2, idx, data) \
             SELECT sha2, ?, substr(content, ? + 1, ?) FROM attachment WHERE sha2 = ?"
        };
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE TABLE attachment_chunk (
                sha2 TEXT NOT NULL,
                idx {bigint} NOT NULL,
                data {blob} NOT NULL,
                PRIMARY KEY (sha2, idx)
            )"
        ))
        .await?;
        let existing = db.query_all_raw(Statement::from_string(backend, "SELECT sha2, length FROM attachment")).await?;
        for row in existing {
            let sha2: String = row.try_get_by_index(0)?;
            let length: i64 = row.try_get_by_index(1)?;
            for index in 0..(length + CHUNK_BYTES - 1) / CHUNK_BYTES {
                let values = vec![index.into(), (index * CHUNK_BYTES).into(), CHUNK_BYTES.into(), sha2.clone().into()];
                db.execute_raw(Statement::from_sql_and_values(backend, copy, values)).await?;
            }
        }
        db.execute_unprepared("ALTER TABLE attachment DROP COLUMN content").await?;
        Ok(())
    }
}
