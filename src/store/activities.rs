//! Canonical activity definitions, kept up to date by the writer.

use std::collections::HashMap;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Value};
use serde_json::{Map, Value as Json};

use super::sql::{self, p};
use super::writer_sql::WriterSql;
use crate::error::LrsResult;
use crate::xapi::activity::{definitions_in, merge_definition};
use crate::xapi::statement::PreparedStatement;

/// The canonical definition of `iri`, if any statement gave one.
pub async fn definition(db: &DatabaseConnection, iri: &str) -> LrsResult<Option<Map<String, Json>>> {
    let backend = db.get_database_backend();
    let sql_text = format!("SELECT definition FROM activity WHERE iri = {}", p(backend, 1));
    let row = db.query_one_raw(sql::stmt(backend, sql_text, vec![Value::from(iri.to_owned())])).await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let text: String = row.try_get_by_index(0)?;
    Ok(serde_json::from_str(&text).ok())
}

/// The canonical definitions of these activities (those the LRS has).
pub async fn definitions(db: &DatabaseConnection, iris: &[&str]) -> LrsResult<HashMap<String, Map<String, Json>>> {
    Ok(fetch(db, iris).await?)
}

async fn fetch(db: &impl WriterSql, iris: &[&str]) -> Result<HashMap<String, Map<String, Json>>, sea_orm::DbErr> {
    let mut out = HashMap::new();
    let select = "SELECT iri, definition FROM activity WHERE iri";
    for (iri, text) in sql::select_in::<_, (String, String)>(db, select, iris).await? {
        if let Ok(definition) = serde_json::from_str(&text) {
            out.insert(iri, definition);
        }
    }
    Ok(out)
}

/// Merges the definitions the new statements carry into the canonical ones
/// (inside the writer's transaction); writes only those that change.
pub(super) async fn merge_in(txn: &impl WriterSql, statements: &[&PreparedStatement]) -> anyhow::Result<()> {
    let mut incoming: Vec<(&str, &Map<String, Json>)> = Vec::new();
    for s in statements {
        incoming.extend(definitions_in(&s.statement));
    }
    if incoming.is_empty() {
        return Ok(());
    }
    let backend = txn.backend();
    let mut iris: Vec<&str> = incoming.iter().map(|(iri, _)| *iri).collect();
    iris.sort_unstable();
    iris.dedup();
    let stored = fetch(txn, &iris).await.context("activity definitions")?;
    let mut merged: HashMap<&str, Map<String, Json>> = HashMap::new();
    for (iri, def) in incoming {
        let canonical = merged.entry(iri).or_insert_with(|| stored.get(iri).cloned().unwrap_or_default());
        merge_definition(canonical, def);
    }
    let now = chrono::Utc::now().timestamp_micros();
    let mut changed: Vec<(&str, String)> = merged
        .into_iter()
        .filter(|(iri, def)| stored.get(*iri) != Some(def))
        .map(|(iri, def)| (iri, Json::Object(def).to_string()))
        .collect();
    // The same order in every group: two writers' upserts never cross.
    changed.sort_unstable();
    for chunk in sql::chunks(&changed) {
        upsert(txn, backend, chunk, now).await?;
    }
    Ok(())
}

/// One multi-row upsert of `(iri, definition)` rows.
async fn upsert(txn: &impl WriterSql, backend: DbBackend, rows: &[(&str, String)], now: i64) -> anyhow::Result<()> {
    let sql_text = format!(
        "INSERT INTO activity (iri, definition, updated_us) VALUES {} ON CONFLICT (iri) DO UPDATE SET \
         definition = excluded.definition, updated_us = excluded.updated_us",
        sql::row_placeholders(backend, rows.len(), 3)
    );
    let values = rows
        .iter()
        .flat_map(|(iri, definition)| {
            [Value::from((*iri).to_owned()), Value::from(definition.clone()), Value::from(now)]
        })
        .collect();
    txn.run(sql::stmt(backend, sql_text, values)).await.context("upsert activity")?;
    Ok(())
}
