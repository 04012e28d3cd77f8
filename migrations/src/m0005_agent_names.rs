//! The names each agent has been given in statements, for the Agents resource.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bigint = crate::column_types(manager)?.bigint;
        // `names`: a JSON array, in the order the names were first seen.
        let sql = format!(
            "CREATE TABLE agent_name (
                ifi TEXT PRIMARY KEY NOT NULL,
                names TEXT NOT NULL,
                updated_us {bigint} NOT NULL
            )"
        );
        crate::execute_all(manager, &[sql]).await
    }
}
