//! Forwarding to learning platforms: who a learner is on each target (set by
//! an operator, or a platform lookup cached, found or not), the target-wide
//! lease of platforms that allow one call at a time, and the index that
//! finds a learner's earlier rows on an activity (coalescing).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bigint = crate::column_types(manager)?.bigint;
        // `remote_id` NULL with `expires_us` set: looked up and not found
        // (negative cache). `source` is 'operator' (never expires) or 'lookup'.
        let statements = [
            format!(
                "CREATE TABLE forward_identity (
                    target TEXT NOT NULL,
                    actor_key TEXT NOT NULL,
                    remote_id TEXT,
                    source TEXT NOT NULL,
                    expires_us {bigint},
                    updated_us {bigint} NOT NULL,
                    PRIMARY KEY (target, actor_key)
                )"
            ),
            "ALTER TABLE forward_target_state ADD COLUMN busy_node TEXT".to_owned(),
            format!("ALTER TABLE forward_target_state ADD COLUMN busy_until_us {bigint}"),
            "CREATE INDEX forward_outbox_order ON forward_outbox (target, order_key)".to_owned(),
        ];
        crate::execute_all(manager, &statements).await
    }
}
