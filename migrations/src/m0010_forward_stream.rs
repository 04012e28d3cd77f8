//! Targets that take statements as they are stored (another LRS, a webhook)
//! follow the statement table with a cursor instead of an outbox row per
//! statement: `stream_seq` is the last `statement.seq` the target is done
//! with (NULL until the target first runs), `stream_delivered` how many
//! statements went out through it. Outbox rows remain for what needs one:
//! a statement the target refused, a replay.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bigint = crate::column_types(manager)?.bigint;
        let statements = [
            format!("ALTER TABLE forward_target_state ADD COLUMN stream_seq {bigint}"),
            format!("ALTER TABLE forward_target_state ADD COLUMN stream_delivered {bigint} NOT NULL DEFAULT 0"),
        ];
        crate::execute_all(manager, &statements).await
    }
}
