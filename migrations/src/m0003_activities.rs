//! Canonical activity definitions, merged from the statements that carry them.

use sea_orm_migration::prelude::*;

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
        crate::execute_all(manager, &[sql]).await
    }
}
