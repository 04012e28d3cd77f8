//! The names each agent has been given in statements, kept up to date by the
//! writer: what the Agents resource knows of a person beyond its identifier.

use std::collections::HashMap;

use anyhow::Context;
use sea_orm::{DatabaseConnection, Value};

use super::sql;
use super::write_memo::WriteMemo;
use super::writer_sql::WriterSql;
use crate::error::LrsResult;
use crate::xapi::agent::names_in;
use crate::xapi::statement::PreparedStatement;

/// Most names kept per agent; the first ones seen stay.
const MAX_NAMES: usize = 32;

/// The names given to the agent with this canonical IFI, first seen first.
pub async fn names(db: &DatabaseConnection, ifi: &str) -> LrsResult<Vec<String>> {
    Ok(fetch(db, &[ifi], false).await?.remove(ifi).unwrap_or_default())
}

/// `writer_turn`: asked inside the writer's turn (`sql::select_in_writer_turn`).
async fn fetch(
    db: &impl WriterSql,
    ifis: &[&str],
    writer_turn: bool,
) -> Result<HashMap<String, Vec<String>>, sea_orm::DbErr> {
    let mut out = HashMap::new();
    let select = "SELECT ifi, names FROM agent_name WHERE ifi";
    let rows: Vec<(String, String)> = if writer_turn {
        sql::select_in_writer_turn(db, select, ifis).await?
    } else {
        sql::select_in(db, select, ifis).await?
    };
    for (ifi, text) in rows {
        out.insert(ifi, serde_json::from_str(&text).unwrap_or_default());
    }
    Ok(out)
}

/// Adds the names the new statements give their agents (inside the writer's
/// transaction); writes only agents that gain a name. Reads the names
/// `memo` does not know; returns, when there is a memo, what it did not
/// know or changed.
pub(super) async fn merge_in(
    txn: &impl WriterSql,
    statements: &[&PreparedStatement],
    memo: Option<&WriteMemo>,
) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let known = |ifi: &str| memo.and_then(|m| m.names(ifi));
    let gains = |names: &[String], name: &str| names.len() < MAX_NAMES && !names.iter().any(|n| n == name);
    // What the memo says is there already is left out at once.
    let incoming: Vec<(String, &str)> = statements
        .iter()
        .flat_map(|s| names_in(&s.statement))
        .filter(|(ifi, name)| known(ifi).is_none_or(|names| gains(names, name)))
        .collect();
    if incoming.is_empty() {
        return Ok(Vec::new());
    }
    let mut unknown: Vec<&str> = incoming.iter().map(|(ifi, _)| ifi.as_str()).filter(|i| known(i).is_none()).collect();
    unknown.sort_unstable();
    unknown.dedup();
    let mut names =
        if unknown.is_empty() { HashMap::new() } else { fetch(txn, &unknown, true).await.context("agent names")? };
    let mut changed: Vec<&str> = Vec::new();
    for (ifi, name) in &incoming {
        let names = names.entry(ifi.clone()).or_insert_with(|| known(ifi).map(<[String]>::to_vec).unwrap_or_default());
        if gains(names, name) {
            names.push((*name).to_owned());
            changed.push(ifi);
        }
    }
    changed.sort_unstable();
    changed.dedup();
    let backend = txn.backend();
    let now = chrono::Utc::now().timestamp_micros();
    // Many agents per statement: one multi-row upsert per chunk, not one
    // statement per agent (on PostgreSQL that was a round trip each).
    for chunk in sql::chunks(&changed) {
        let sql_text = format!(
            "INSERT INTO agent_name (ifi, names, updated_us) VALUES {} ON CONFLICT (ifi) DO UPDATE SET \
             names = excluded.names, updated_us = excluded.updated_us",
            sql::row_placeholders(backend, chunk.len(), 3)
        );
        let mut values = Vec::with_capacity(chunk.len() * 3);
        for ifi in chunk {
            let names = serde_json::to_string(&names[*ifi]).context("agent names")?;
            values.extend([Value::from((*ifi).to_owned()), Value::from(names), Value::from(now)]);
        }
        txn.run(sql::stmt(backend, sql_text, values)).await.context("upsert agent names")?;
    }
    Ok(if memo.is_some() { names.into_iter().collect() } else { Vec::new() })
}
