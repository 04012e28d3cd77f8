//! A credential may name the xAPI version its clients speak, for the
//! responses to requests that do not say (they are refused, but the refusal
//! still states a version).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute_all(manager, &["ALTER TABLE credential ADD COLUMN default_version TEXT"]).await
    }
}
