//! The outbox, leaner to write: a row is unique by its dedupe key only when
//! it has one (a catalog entry per activity, an enrollment per learner and
//! activity); a row per statement needs no key, since the writer enqueues a
//! statement's rows once, when it is first stored. The learner-and-activity
//! index covers only the platform rows that coalescing and 360's stable
//! firstActivityAt ask about. Both indexes had an entry per row at a random
//! place in the tree (a UUID, an actor), which cost the group commit more
//! page writes than the rest of the outbox row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: &str = "id, target, op, statement_seq, statement_id, dedupe_key, order_key, status, attempts, \
                       next_attempt_us, last_http_status, last_error, created_us, updated_us";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bigint = crate::column_types(manager)?.bigint;
        let mut statements: Vec<String> = match manager.get_database_backend() {
            DbBackend::Postgres => vec![
                "ALTER TABLE forward_outbox DROP CONSTRAINT forward_outbox_target_dedupe_key_key".into(),
                "ALTER TABLE forward_outbox ALTER COLUMN dedupe_key DROP NOT NULL".into(),
                "UPDATE forward_outbox SET dedupe_key = NULL WHERE dedupe_key = op || ':' || statement_id".into(),
                "DROP INDEX forward_outbox_order".into(),
            ],
            // SQLite cannot drop a table's UNIQUE constraint: the table is
            // built again (under its own name: renaming a new table to the
            // name of one dropped in the same transaction is refused).
            _ => vec![
                "ALTER TABLE forward_outbox RENAME TO forward_outbox_old".into(),
                "DROP INDEX forward_outbox_due".into(),
                "DROP INDEX forward_outbox_status".into(),
                "DROP INDEX forward_outbox_order".into(),
                format!(
                    "CREATE TABLE forward_outbox (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        target TEXT NOT NULL,
                        op TEXT NOT NULL,
                        statement_seq {bigint} NOT NULL,
                        statement_id TEXT NOT NULL,
                        dedupe_key TEXT,
                        order_key TEXT NOT NULL,
                        status TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        next_attempt_us {bigint} NOT NULL,
                        last_http_status INTEGER,
                        last_error TEXT,
                        created_us {bigint} NOT NULL,
                        updated_us {bigint} NOT NULL
                    )"
                ),
                format!(
                    "INSERT INTO forward_outbox ({COLUMNS}) SELECT id, target, op, statement_seq, statement_id, \
                     CASE WHEN dedupe_key = op || ':' || statement_id THEN NULL ELSE dedupe_key END, order_key, status, \
                     attempts, next_attempt_us, last_http_status, last_error, created_us, updated_us FROM forward_outbox_old"
                ),
                "DROP TABLE forward_outbox_old".into(),
                "CREATE INDEX forward_outbox_due ON forward_outbox (target, next_attempt_us, id)
                    WHERE status IN ('pending', 'retry', 'in_flight')"
                    .into(),
                "CREATE INDEX forward_outbox_status ON forward_outbox (target, status, id)".into(),
            ],
        };
        statements.extend([
            "CREATE UNIQUE INDEX forward_outbox_dedupe ON forward_outbox (target, dedupe_key)
                WHERE dedupe_key IS NOT NULL"
                .to_owned(),
            "CREATE INDEX forward_outbox_order ON forward_outbox (target, order_key) WHERE op <> 'statement'"
                .to_owned(),
        ]);
        crate::execute_all(manager, &statements).await
    }
}
