//! SQL text that differs between SQLite and PostgreSQL.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, Value};

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

/// The rows `select` (a query ending in `… IN`) finds for any of `keys`,
/// asked in chunks (see `chunks`).
pub async fn select_in<K: AsRef<str>>(
    db: &impl ConnectionTrait,
    select: &str,
    keys: &[K],
) -> Result<Vec<QueryResult>, DbErr> {
    let backend = db.get_database_backend();
    let mut rows = Vec::new();
    for chunk in chunks(keys) {
        let sql_text = format!("{select} ({})", list_placeholders(backend, chunk.len(), 1));
        let values = chunk.iter().map(|k| Value::from(k.as_ref().to_owned())).collect();
        rows.extend(db.query_all_raw(stmt(backend, sql_text, values)).await?);
    }
    Ok(rows)
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

    #[test]
    fn chunks_are_powers_of_two_up_to_the_maximum() {
        let items: Vec<u32> = (0..(MAX_ROWS * 2 + 13) as u32).collect();
        let sizes: Vec<usize> = chunks(&items).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![MAX_ROWS, MAX_ROWS, 8, 4, 1]);
        assert_eq!(chunks(&items).flatten().count(), items.len());
        assert_eq!(chunks::<u32>(&[]).count(), 0);
    }
}
