//! `claimed_by`: the node that claimed an outbox row in flight. A node
//! started again under the same id releases its earlier claims at once
//! instead of waiting out their leases (the process that held them is gone).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Only rows in flight are indexed: the release at start reads those.
        let statements = [
            "ALTER TABLE forward_outbox ADD COLUMN claimed_by TEXT".to_owned(),
            "CREATE INDEX forward_outbox_claims ON forward_outbox (claimed_by) WHERE status = 'in_flight'".to_owned(),
        ];
        crate::execute_all(manager, &statements).await
    }
}
