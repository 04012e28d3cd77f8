//! Canonical activity definitions, merged from the statements that carry them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bigint = crate::column_types(manager)?.bigint;
        let sql = format!(
            "CREATE TABLE activity (
                iri TEXT PRIMARY KEY NOT NULL,
                definition TEXT NOT NULL,
                updated_us {bigint} NOT NULL
            )"
        );
        manager.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }
}
