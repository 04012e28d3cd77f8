//! Reading statements: by id, and filtered pages in `seq` order.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Value};

use super::sql::{self, p};
use crate::error::LrsResult;

/// A stored statement as read back.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub seq: i64,
    pub stored_us: i64,
    pub voided: bool,
    pub body: String,
}

pub async fn by_id(db: &DatabaseConnection, id: &str) -> LrsResult<Option<StoredRow>> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(sql::stmt(
            backend,
            format!("SELECT seq, stored_us, voided, body FROM statement WHERE id = {}", p(backend, 1)),
            vec![Value::from(id.to_lowercase())],
        ))
        .await?;
    Ok(match row {
        Some(r) => Some(StoredRow {
            seq: r.try_get_by_index(0)?,
            stored_us: r.try_get_by_index(1)?,
            voided: r.try_get_by_index(2)?,
            body: r.try_get_by_index(3)?,
        }),
        None => None,
    })
}

/// Whether the statement at `seq` carries `key`.
pub async fn has_key(db: &DatabaseConnection, seq: i64, key: i64) -> LrsResult<bool> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(sql::stmt(
            backend,
            format!("SELECT 1 FROM statement_key WHERE key = {} AND seq = {}", p(backend, 1), p(backend, 2)),
            vec![Value::from(key), Value::from(seq)],
        ))
        .await?;
    Ok(row.is_some())
}

/// A filtered page request, in storage terms.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    /// Keys a statement must all carry, most selective first (the first one
    /// drives the index scan).
    pub keys: Vec<i64>,
    /// Only statements stored after this instant (µs, exclusive).
    pub since_us: Option<i64>,
    /// Only statements stored at or before this instant (µs, inclusive).
    pub until_us: Option<i64>,
    pub ascending: bool,
    /// Keyset cursor: continue after this `seq` (in the query's direction).
    pub after_seq: Option<i64>,
    pub limit: u32,
    /// Voided statements too: the live stream is the log of what was
    /// stored, where a voided statement keeps its place (its voiding
    /// statement follows it). Statement queries never set it.
    pub include_voided: bool,
}

/// A `seq` range, both ends inclusive and optional; `None` as a whole when
/// the time range holds no statement.
pub type SeqBounds = (Option<i64>, Option<i64>);

/// One page of statements matching `q` (non-voided ones unless
/// `include_voided`), plus whether more follow.
pub async fn page(db: &DatabaseConnection, q: &PageQuery) -> LrsResult<(Vec<StoredRow>, bool)> {
    match seq_bounds(db, q).await? {
        Some(bounds) => page_within(db, q, bounds).await,
        None => Ok((Vec::new(), false)),
    }
}

/// `page` for a caller that resolved `q`'s time range once (an export reads
/// many pages of one range).
pub async fn page_within(
    db: &DatabaseConnection,
    q: &PageQuery,
    bounds: SeqBounds,
) -> LrsResult<(Vec<StoredRow>, bool)> {
    let backend = db.get_database_backend();
    let rows = db.query_all_raw(filtered_sql(backend, q, bounds, Select::Page)).await?;
    let more = rows.len() > q.limit as usize;
    let mut out = Vec::with_capacity(rows.len().min(q.limit as usize));
    for r in rows.into_iter().take(q.limit as usize) {
        out.push(StoredRow {
            seq: r.try_get_by_index(0)?,
            stored_us: r.try_get_by_index(1)?,
            voided: r.try_get_by_index(3)?,
            body: r.try_get_by_index(2)?,
        });
    }
    Ok((out, more))
}

/// How many non-voided statements match `q` within `bounds` (after `q.after_seq`).
pub async fn count_within(db: &DatabaseConnection, q: &PageQuery, bounds: SeqBounds) -> LrsResult<i64> {
    let backend = db.get_database_backend();
    let row = db.query_one_raw(filtered_sql(backend, q, bounds, Select::Count)).await?;
    Ok(match row {
        Some(r) => r.try_get_by_index(0)?,
        None => 0,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Select {
    /// Rows in `seq` order, one more than the limit.
    Page,
    Count,
}

/// The filtered query: a scan of the first key's `(key, seq)` range (or of
/// `statement` by `seq` without keys), the other keys checked by primary-key
/// lookups; a page reads one row more than the limit to know whether more follow.
fn filtered_sql(backend: DbBackend, q: &PageQuery, (lo, hi): SeqBounds, select: Select) -> sea_orm::Statement {
    let mut values: Vec<Value> = Vec::new();
    let mut bind = |v: i64| {
        values.push(Value::from(v));
        p(backend, values.len())
    };
    let seq_col = if q.keys.is_empty() { "s.seq" } else { "k0.seq" };
    let mut conditions = Vec::new();
    if !q.include_voided {
        conditions.push("s.voided = FALSE".to_owned());
    }
    let mut from = match q.keys.first() {
        Some(first) => {
            conditions.push(format!("k0.key = {}", bind(*first)));
            // SQLite: CROSS JOIN fixes the key scan as the outer loop.
            let join = if backend == DbBackend::Sqlite { "CROSS JOIN" } else { "JOIN" };
            format!("statement_key k0 {join} statement s ON s.seq = k0.seq")
        }
        None => "statement s".to_owned(),
    };
    if let Some(lo) = lo {
        conditions.push(format!("{seq_col} >= {}", bind(lo)));
    }
    if let Some(hi) = hi {
        conditions.push(format!("{seq_col} <= {}", bind(hi)));
    }
    if let Some(after) = q.after_seq {
        let op = if q.ascending { ">" } else { "<" };
        conditions.push(format!("{seq_col} {op} {}", bind(after)));
    }
    for (i, key) in q.keys.iter().enumerate().skip(1) {
        let ph = bind(*key);
        let probe = format!("SELECT 1 FROM statement_key k{i} WHERE k{i}.key = {ph} AND k{i}.seq = k0.seq");
        match backend {
            // PostgreSQL turns EXISTS into a semi-join and may hash the
            // whole range of a common key (a verb: 150,000 rows at 1M
            // stored) to find one statement; a LATERAL probe with LIMIT
            // cannot be flattened, so each candidate is one index lookup,
            // and the scan stops at the page's last row.
            DbBackend::Postgres => from.push_str(&format!(" CROSS JOIN LATERAL ({probe} LIMIT 1) e{i}")),
            _ => conditions.push(format!("EXISTS ({probe})")),
        }
    }
    // Without keys, bounds or voided ones left out there is no condition.
    let where_clause =
        if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    if select == Select::Count {
        return sql::stmt(backend, format!("SELECT COUNT(*) FROM {from}{where_clause}"), values);
    }
    let order = if q.ascending { "ASC" } else { "DESC" };
    let limit = bind(i64::from(q.limit) + 1);
    let sql_text = format!(
        "SELECT s.seq, s.stored_us, s.body, s.voided FROM {from}{where_clause} ORDER BY {seq_col} {order} LIMIT {limit}"
    );
    sql::stmt(backend, sql_text, values)
}

/// `since`/`until` as a `seq` range (`stored` grows with `seq`, so a time
/// range is a seq range). `None` when the range holds no statement at all.
pub async fn seq_bounds(db: &DatabaseConnection, q: &PageQuery) -> LrsResult<Option<SeqBounds>> {
    let backend = db.get_database_backend();
    let mut lo = None;
    let mut hi = None;
    if let Some(since) = q.since_us {
        let sql_text = format!(
            "SELECT seq FROM statement WHERE stored_us > {} ORDER BY stored_us ASC, seq ASC LIMIT 1",
            p(backend, 1)
        );
        match db.query_one_raw(sql::stmt(backend, sql_text, vec![Value::from(since)])).await? {
            Some(r) => lo = Some(r.try_get_by_index::<i64>(0)?),
            None => return Ok(None),
        }
    }
    if let Some(until) = q.until_us {
        let sql_text = format!(
            "SELECT seq FROM statement WHERE stored_us <= {} ORDER BY stored_us DESC, seq DESC LIMIT 1",
            p(backend, 1)
        );
        match db.query_one_raw(sql::stmt(backend, sql_text, vec![Value::from(until)])).await? {
            Some(r) => hi = Some(r.try_get_by_index::<i64>(0)?),
            None => return Ok(None),
        }
    }
    Ok(Some((lo, hi)))
}

/// Statements stored in `[since_us, until_us]` after `after_seq`, oldest
/// first, at most `limit`: `(seq, id, body)`.
pub async fn stored_between(
    db: &DatabaseConnection,
    since_us: i64,
    until_us: i64,
    after_seq: i64,
    limit: u32,
) -> anyhow::Result<Vec<(i64, String, String)>> {
    let backend = db.get_database_backend();
    let select = format!(
        "SELECT seq, id, body FROM statement WHERE seq > {} AND stored_us >= {} AND stored_us <= {} ORDER BY seq LIMIT {}",
        p(backend, 1),
        p(backend, 2),
        p(backend, 3),
        p(backend, 4)
    );
    let values = vec![after_seq.into(), since_us.into(), until_us.into(), i64::from(limit).into()];
    let mut out = Vec::new();
    for r in db.query_all_raw(sql::stmt(backend, select, values)).await? {
        out.push((r.try_get_by_index(0)?, r.try_get_by_index(1)?, r.try_get_by_index(2)?));
    }
    Ok(out)
}
