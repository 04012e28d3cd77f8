//! On PostgreSQL, statement bodies large enough to be compressed are
//! compressed with lz4 instead of pglz: pglz was 7 % of the backend's time
//! in the writer's group commits (docs/benchmarks.md, design 7). Only new
//! values change; a server built without lz4 keeps pglz.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let statements = ["DO $$ BEGIN \
             IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' \
                 AND 'lz4' = ANY(enumvals)) THEN \
                 ALTER TABLE statement ALTER COLUMN body SET COMPRESSION lz4; \
             END IF; END $$"];
        crate::execute_all(manager, &statements).await
    }
}
