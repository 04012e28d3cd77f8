//! SQL text that differs between SQLite and PostgreSQL.

use sea_orm::{DbBackend, DbErr, Statement, Value};

use super::writer_sql::{FromRow, WriterSql};

/// `(?, ?), (?, ?)` or `($1, $2), ($3, $4)` for `rows` rows of `cols` values.
pub fn row_placeholders(backend: DbBackend, rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * (cols * 4 + 4));
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push(',');
            }
            n += 1;
            push_placeholder(backend, &mut out, n);
        }
        out.push(')');
    }
    out
}

/// `?, ?, ?` or `$1, $2, $3` (numbering from `first`).
pub fn list_placeholders(backend: DbBackend, count: usize, first: usize) -> String {
    let mut out = String::with_capacity(count * 4);
    for i in 0..count {
        if i > 0 {
            out.push(',');
        }
        push_placeholder(backend, &mut out, first + i);
    }
    out
}

fn push_placeholder(backend: DbBackend, out: &mut String, n: usize) {
    match backend {
        DbBackend::Postgres => {
            out.push('$');
            out.push_str(&n.to_string());
        }
        _ => out.push('?'),
    }
}

/// Placeholder number `n` (1-based) in the backend's syntax.
pub fn p(backend: DbBackend, n: usize) -> String {
    let mut s = String::new();
    push_placeholder(backend, &mut s, n);
    s
}

/// `INSERT ... ` that silently skips rows whose key exists.
pub fn insert_ignore(backend: DbBackend, table_and_cols: &str, values: &str) -> String {
    match backend {
        DbBackend::Postgres => {
            format!("INSERT INTO {table_and_cols} VALUES {values} ON CONFLICT DO NOTHING")
        }
        _ => format!("INSERT OR IGNORE INTO {table_and_cols} VALUES {values}"),
    }
}

pub fn stmt(backend: DbBackend, sql: impl Into<String>, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

/// The rows `select` (a query ending in a column, `… WHERE id`) finds for
/// any of `keys`. On SQLite that is one statement however many keys there
/// are, the keys one JSON array: a statement per chunk of keys was a round
/// trip each, and a round trip to SQLite is two thread switches (sqlx runs
/// it on a thread of its own); the writer's group commits made dozens.
/// PostgreSQL asks in chunks (see `chunks`) of `IN ($1, …)`: its prepared
/// statements keep the plan made for the first few calls, and `= ANY($1)`
/// with an array kept the sequential scan made when the table was empty
/// (6 ms a group at 20,000 statements).
pub async fn select_in<K: AsRef<str>, R: FromRow>(
    db: &impl WriterSql,
    select: &str,
    keys: &[K],
) -> Result<Vec<R>, DbErr> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.backend();
    if backend != DbBackend::Postgres {
        let sql_text = format!("{select} IN (SELECT value FROM json_each(?))");
        return db.rows(stmt(backend, sql_text, vec![Value::from(json_array(keys))])).await;
    }
    let mut rows = Vec::new();
    for chunk in chunks(keys) {
        let sql_text = format!("{select} IN ({})", list_placeholders(backend, chunk.len(), 1));
        let values = chunk.iter().map(|k| Value::from(k.as_ref().to_owned())).collect();
        rows.extend(db.rows(stmt(backend, sql_text, values)).await?);
    }
    Ok(rows)
}

/// `select_in` inside the writer's turn (`begin_writer_turn`), where
/// PostgreSQL plans every statement for its own parameters: there the keys
/// go as one array, `= ANY($1)`, one round trip however many there are (the
/// chunks were five or six a group, each a round trip in the writer's
/// serial chain), and the plan sees the array, not a cached guess at it.
pub async fn select_in_writer_turn<K: AsRef<str>, R: FromRow>(
    db: &impl WriterSql,
    select: &str,
    keys: &[K],
) -> Result<Vec<R>, DbErr> {
    if keys.is_empty() || db.backend() != DbBackend::Postgres {
        return select_in(db, select, keys).await;
    }
    let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_owned()).collect();
    db.rows(stmt(DbBackend::Postgres, format!("{select} = ANY($1::text[])"), vec![Value::from(keys)])).await
}

/// `["a","b"]`: strings as one JSON array, for SQLite's `json_each`.
fn json_array<K: AsRef<str>>(keys: &[K]) -> String {
    let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
    // A list of strings serialises without error.
    serde_json::to_string(&keys).unwrap_or_default()
}

/// Most rows in one multi-row statement.
pub const MAX_ROWS: usize = 64;

/// Splits `items` into chunks of `MAX_ROWS`, then of decreasing powers of
/// two. Every distinct row count is a distinct prepared statement in each
/// connection's cache, so this keeps their number (and memory) small and
/// makes them reused.
pub fn chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let size =
            if items.len() >= MAX_ROWS { MAX_ROWS } else { 1 << (usize::BITS - 1 - items.len().leading_zeros()) };
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseArgs;
    use sea_orm::ConnectionTrait;

    async fn sqlite_store() -> sea_orm::DatabaseConnection {
        let db = crate::store::connect(&DatabaseArgs { url: "sqlite::memory:".into(), pool_size: 1 }).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        db
    }

    #[tokio::test]
    async fn select_in_finds_every_key_in_one_statement_through_the_index() {
        let db = sqlite_store().await;
        let ids = ["a\"quoted\\id", "b", "c", "absent"];
        for (seq, id) in ids[..3].iter().enumerate() {
            db.execute_raw(stmt(
                DbBackend::Sqlite,
                "INSERT INTO statement (seq, id, stored_us, object_ref, key_list, body) VALUES (?, ?, 0, ?, '', '{}')",
                vec![Value::from(seq as i64 + 1), Value::from(id.to_string()), Value::from(format!("ref-{id}"))],
            ))
            .await
            .unwrap();
        }
        let rows: Vec<(String,)> = select_in(&db, "SELECT id FROM statement WHERE id", &ids).await.unwrap();
        let mut found: Vec<String> = rows.into_iter().map(|r| r.0).collect();
        found.sort();
        assert_eq!(found, vec!["a\"quoted\\id", "b", "c"]);
        assert!(select_in::<&str, (String,)>(&db, "SELECT id FROM statement WHERE id", &[]).await.unwrap().is_empty());

        // The writer asks by id and by object_ref in every group: a scan of
        // the statement table would cost more the more is stored.
        for (select, index) in [
            ("SELECT id FROM statement WHERE id", "sqlite_autoindex_statement_1"),
            ("SELECT id FROM statement WHERE object_ref", "statement_object_ref"),
        ] {
            let sql_text = format!("EXPLAIN QUERY PLAN {select} IN (SELECT value FROM json_each(?))");
            let plan =
                db.query_all_raw(stmt(DbBackend::Sqlite, sql_text, vec![Value::from(json_array(&ids))])).await.unwrap();
            let plan: Vec<String> = plan.iter().map(|r| r.try_get_by_index::<String>(3).unwrap()).collect();
            assert!(plan.iter().any(|step| step.contains(index)), "{select}: {plan:?}");
            assert!(!plan.iter().any(|step| step.starts_with("SCAN statement")), "{select}: {plan:?}");
        }
    }
}
