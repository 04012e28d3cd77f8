//! The forwarding outbox: one row per (target, statement, operation), written
//! in the statement's own transaction, delivered at least once.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bigint = crate::column_types(manager)?.bigint;
        let id = match manager.get_database_backend() {
            sea_orm_migration::sea_orm::DbBackend::Postgres => "BIGSERIAL PRIMARY KEY",
            _ => "INTEGER PRIMARY KEY AUTOINCREMENT",
        };
        // `next_attempt_us` is when an open row (pending, retry, in_flight) is
        // next due; for a claimed row it is the end of its lease, so a row
        // whose deliverer died is due again when the lease runs out.
        let statements = [
            format!(
                "CREATE TABLE forward_outbox (
                    id {id},
                    target TEXT NOT NULL,
                    op TEXT NOT NULL,
                    statement_seq {bigint} NOT NULL,
                    statement_id TEXT NOT NULL,
                    dedupe_key TEXT NOT NULL,
                    order_key TEXT NOT NULL,
                    status TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_us {bigint} NOT NULL,
                    last_http_status INTEGER,
                    last_error TEXT,
                    created_us {bigint} NOT NULL,
                    updated_us {bigint} NOT NULL,
                    UNIQUE (target, dedupe_key)
                )"
            ),
            "CREATE INDEX forward_outbox_due ON forward_outbox (target, next_attempt_us, id)
                WHERE status IN ('pending', 'retry', 'in_flight')"
                .to_owned(),
            "CREATE INDEX forward_outbox_status ON forward_outbox (target, status, id)".to_owned(),
            format!(
                "CREATE TABLE forward_target_state (
                    target TEXT PRIMARY KEY NOT NULL,
                    paused_until_us {bigint},
                    pause_reason TEXT,
                    updated_us {bigint} NOT NULL
                )"
            ),
        ];
        crate::execute_all(manager, &statements).await
    }
}
