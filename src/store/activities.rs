//! Canonical activity definitions, kept up to date by the writer.

use std::collections::HashMap;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Value};
use serde_json::{Map, Value as Json};

use super::sql::{self, p};
use super::write_memo::WriteMemo;
use super::writer_sql::WriterSql;
use crate::error::LrsResult;
use crate::xapi::activity::{definition_covers, definitions_in, merge_definition};
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
    Ok(fetch(db, iris, false).await?)
}

/// `writer_turn`: asked inside the writer's turn (`sql::select_in_writer_turn`).
async fn fetch(
    db: &impl WriterSql,
    iris: &[&str],
    writer_turn: bool,
) -> Result<HashMap<String, Map<String, Json>>, sea_orm::DbErr> {
    let mut out = HashMap::new();
    let select = "SELECT iri, definition FROM activity WHERE iri";
    let rows: Vec<(String, String)> = if writer_turn {
        sql::select_in_writer_turn(db, select, iris).await?
    } else {
        sql::select_in(db, select, iris).await?
    };
    for (iri, text) in rows {
        if let Ok(definition) = serde_json::from_str(&text) {
            out.insert(iri, definition);
        }
    }
    Ok(out)
}

/// Merges the definitions the new statements carry into the canonical ones
/// (inside the writer's transaction); writes only those that change. Reads
/// the canonical definitions `memo` does not know; returns, when there is a
/// memo, what it did not know or changed.
pub(super) async fn merge_in(
    txn: &impl WriterSql,
    statements: &[&PreparedStatement],
    memo: Option<&WriteMemo>,
) -> anyhow::Result<Vec<(String, Map<String, Json>)>> {
    let mut incoming: Vec<(&str, &Map<String, Json>)> = Vec::new();
    for s in statements {
        incoming.extend(definitions_in(&s.statement));
    }
    if incoming.is_empty() {
        return Ok(Vec::new());
    }
    let known = |iri: &str| memo.and_then(|m| m.definition(iri));
    let mut unknown: Vec<&str> = incoming.iter().map(|(iri, _)| *iri).filter(|iri| known(iri).is_none()).collect();
    unknown.sort_unstable();
    unknown.dedup();
    let mut stored = if unknown.is_empty() {
        HashMap::new()
    } else {
        fetch(txn, &unknown, true).await.context("activity definitions")?
    };
    // Only the definitions this group changes.
    let mut merged: HashMap<&str, Map<String, Json>> = HashMap::new();
    for (iri, def) in incoming {
        if let Some(canonical) = merged.get_mut(iri) {
            merge_definition(canonical, def);
            continue;
        }
        let before = known(iri).or_else(|| stored.get(iri));
        if before.is_some_and(|c| definition_covers(c, def)) {
            continue;
        }
        let mut canonical = before.cloned().unwrap_or_default();
        merge_definition(&mut canonical, def);
        merged.insert(iri, canonical);
    }
    let now = chrono::Utc::now().timestamp_micros();
    let mut changed = Vec::with_capacity(merged.len());
    for (iri, def) in &merged {
        changed.push((*iri, serde_json::to_string(def).context("activity definition")?));
    }
    // The same order in every group: two writers' upserts never cross.
    changed.sort_unstable();
    for chunk in sql::chunks(&changed) {
        upsert(txn, txn.backend(), chunk, now).await?;
    }
    if memo.is_none() {
        return Ok(Vec::new());
    }
    stored.extend(merged.into_iter().map(|(iri, def)| (iri.to_owned(), def)));
    Ok(stored.into_iter().collect())
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
