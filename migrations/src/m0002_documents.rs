//! Documents of the State, Activity Profile and Agent Profile resources.
//!
//! One table for the three kinds; columns a kind does not use hold ''. The
//! content is stored byte-exact with its content type; `etag` is the quoted
//! SHA-1 of the content.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn ddl(blob: &str, bigint: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE document (
                kind SMALLINT NOT NULL,
                activity_id TEXT NOT NULL,
                agent_key TEXT NOT NULL,
                registration TEXT NOT NULL,
                doc_id TEXT NOT NULL,
                content_type TEXT NOT NULL,
                content {blob} NOT NULL,
                etag TEXT NOT NULL,
                updated_us {bigint} NOT NULL,
                PRIMARY KEY (kind, activity_id, agent_key, registration, doc_id)
            )"
        ),
        "CREATE INDEX document_updated ON document (kind, activity_id, agent_key, registration, updated_us)".to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let types = crate::column_types(manager)?;
        crate::execute_all(manager, &ddl(types.blob, types.bigint)).await
    }
}
