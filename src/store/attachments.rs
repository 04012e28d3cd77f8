//! Attachment content, stored once per hash.

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Value};

use super::sql;
use crate::error::LrsResult;
use crate::xapi::attachment::AttachmentContent;

/// Stores content not stored yet (inside the writer's transaction).
pub(super) async fn insert(txn: &DatabaseTransaction, parts: &[&AttachmentContent]) -> anyhow::Result<()> {
    let backend = txn.get_database_backend();
    for a in parts {
        let sql_text = sql::insert_ignore(
            backend,
            "attachment (sha2, content_type, length, content)",
            &sql::row_placeholders(backend, 1, 4),
        );
        let values = vec![
            Value::from(a.sha2.clone()),
            Value::from(a.content_type.clone()),
            Value::from(a.content.len() as i64),
            Value::from(a.content.to_vec()),
        ];
        txn.execute_raw(sql::stmt(backend, sql_text, values)).await.context("insert attachment")?;
    }
    Ok(())
}

/// The stored content for these hashes (those the LRS holds).
pub async fn by_hashes(db: &DatabaseConnection, hashes: &[String]) -> LrsResult<Vec<AttachmentContent>> {
    let backend = db.get_database_backend();
    let mut out = Vec::new();
    for chunk in sql::chunks(hashes) {
        let sql_text = format!(
            "SELECT sha2, content_type, content FROM attachment WHERE sha2 IN ({})",
            sql::list_placeholders(backend, chunk.len(), 1)
        );
        let values = chunk.iter().map(|h| Value::from(h.clone())).collect();
        for row in db.query_all_raw(sql::stmt(backend, sql_text, values)).await? {
            let content: Vec<u8> = row.try_get_by_index(2)?;
            out.push(AttachmentContent {
                sha2: row.try_get_by_index(0)?,
                content_type: row.try_get_by_index(1)?,
                content: content.into(),
            });
        }
    }
    Ok(out)
}
