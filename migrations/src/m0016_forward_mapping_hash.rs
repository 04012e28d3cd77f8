//! `mapping_hash`: a digest of the learner and course rules a target was
//! last started with. A node starting with other rules (the forwarders file
//! was edited) sends the target's parked rows, which waited for a mapping,
//! back to pending.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = ["ALTER TABLE forward_target_state ADD COLUMN mapping_hash TEXT".to_owned()];
        crate::execute_all(manager, &statements).await
    }
}
