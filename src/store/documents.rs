//! Documents: one row per (kind, activity, agent, registration, id).

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Value};

use super::sql::{self, p};
use crate::error::LrsResult;
use crate::xapi::document::{DocKind, etag};

/// Which document (or, with `doc_id` empty, which set of documents).
#[derive(Debug, Clone)]
pub struct DocKey {
    pub kind: DocKind,
    /// '' for Agent Profile documents.
    pub activity_id: String,
    /// Canonical IFI; '' for Activity Profile documents.
    pub agent_key: String,
    /// Lower-cased UUID; '' without one (and for profiles).
    pub registration: String,
    pub doc_id: String,
}

#[derive(Debug, Clone)]
pub struct Document {
    pub content_type: String,
    pub content: Vec<u8>,
    pub etag: String,
    pub updated_us: i64,
}

const SCOPE: &str = "kind = {1} AND activity_id = {2} AND agent_key = {3} AND registration = {4}";

fn scope_sql(backend: DbBackend) -> String {
    SCOPE
        .replace("{1}", &p(backend, 1))
        .replace("{2}", &p(backend, 2))
        .replace("{3}", &p(backend, 3))
        .replace("{4}", &p(backend, 4))
}

fn scope_values(key: &DocKey) -> Vec<Value> {
    vec![
        Value::from(key.kind.code()),
        Value::from(key.activity_id.clone()),
        Value::from(key.agent_key.clone()),
        Value::from(key.registration.clone()),
    ]
}

async fn read(db: &impl ConnectionTrait, key: &DocKey, lock: bool) -> Result<Option<Document>, sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let lock = if lock && backend == DbBackend::Postgres { " FOR UPDATE" } else { "" };
    let sql_text = format!(
        "SELECT content_type, content, etag, updated_us FROM document WHERE {} AND doc_id = {}{lock}",
        scope_sql(backend),
        p(backend, 5)
    );
    let mut values = scope_values(key);
    values.push(Value::from(key.doc_id.clone()));
    let row = db.query_one_raw(sql::stmt(backend, sql_text, values)).await?;
    Ok(match row {
        Some(r) => Some(Document {
            content_type: r.try_get_by_index(0)?,
            content: r.try_get_by_index(1)?,
            etag: r.try_get_by_index(2)?,
            updated_us: r.try_get_by_index(3)?,
        }),
        None => None,
    })
}

pub async fn get(db: &DatabaseConnection, key: &DocKey) -> LrsResult<Option<Document>> {
    Ok(read(db, key, false).await?)
}

/// Ids (and update times) of the documents in `key`'s scope updated after `since_us`.
pub async fn ids(db: &DatabaseConnection, key: &DocKey, since_us: Option<i64>) -> LrsResult<Vec<(String, i64)>> {
    let backend = db.get_database_backend();
    let mut sql_text = format!("SELECT doc_id, updated_us FROM document WHERE {}", scope_sql(backend));
    let mut values = scope_values(key);
    if let Some(since) = since_us {
        sql_text.push_str(&format!(" AND updated_us > {}", p(backend, 5)));
        values.push(Value::from(since));
    }
    sql_text.push_str(" ORDER BY doc_id");
    let mut out = Vec::new();
    for r in db.query_all_raw(sql::stmt(backend, sql_text, values)).await? {
        out.push((r.try_get_by_index(0)?, r.try_get_by_index(1)?));
    }
    Ok(out)
}

/// What a write does, given the current document (if any).
pub enum Change {
    Store { content_type: String, content: Vec<u8> },
    Delete,
    Nothing,
}

/// Reads the current document and applies `decide` to it in one
/// transaction, so a precondition holds for the version it was checked on.
pub async fn update<E: From<sea_orm::DbErr>>(
    db: &DatabaseConnection,
    key: &DocKey,
    decide: impl FnOnce(Option<&Document>) -> Result<Change, E>,
) -> Result<(), E> {
    let txn = super::begin_write(db).await?;
    let current = read(&*txn, key, true).await?;
    match decide(current.as_ref())? {
        Change::Store { content_type, content } => store(&txn, key, &content_type, &content).await?,
        Change::Delete => delete_where(&*txn, key, true).await?,
        Change::Nothing => {}
    }
    txn.commit().await?;
    Ok(())
}

async fn store(
    txn: &DatabaseTransaction,
    key: &DocKey,
    content_type: &str,
    content: &[u8],
) -> Result<(), sea_orm::DbErr> {
    let backend = txn.get_database_backend();
    let updated = chrono::Utc::now().timestamp_micros();
    let conflict = "ON CONFLICT (kind, activity_id, agent_key, registration, doc_id) DO UPDATE SET \
         content_type = excluded.content_type, content = excluded.content, etag = excluded.etag, \
         updated_us = excluded.updated_us";
    let sql_text = format!(
        "INSERT INTO document (kind, activity_id, agent_key, registration, doc_id, content_type, content, etag, updated_us) \
         VALUES {} {conflict}",
        sql::row_placeholders(backend, 1, 9)
    );
    let mut values = scope_values(key);
    values.extend([
        Value::from(key.doc_id.clone()),
        Value::from(content_type.to_owned()),
        Value::from(content.to_vec()),
        Value::from(etag(content)),
        Value::from(updated),
    ]);
    txn.execute_raw(sql::stmt(backend, sql_text, values)).await?;
    Ok(())
}

async fn delete_where(db: &impl ConnectionTrait, key: &DocKey, one: bool) -> Result<(), sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let mut sql_text = format!("DELETE FROM document WHERE {}", scope_sql(backend));
    let mut values = scope_values(key);
    if one {
        sql_text.push_str(&format!(" AND doc_id = {}", p(backend, 5)));
        values.push(Value::from(key.doc_id.clone()));
    }
    db.execute_raw(sql::stmt(backend, sql_text, values)).await?;
    Ok(())
}

/// Deletes every document in `key`'s scope (DELETE of all states of a context).
pub async fn delete_all(db: &DatabaseConnection, key: &DocKey) -> LrsResult<()> {
    delete_where(db, key, false).await?;
    Ok(())
}
