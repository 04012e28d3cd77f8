//! Reading statements: by id, and filtered pages in `seq` order.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Value};

use super::filter_index::{FilterIndex, Postings};
use super::sql::{self, p};
use super::writer_sql::WriterSql;
use crate::error::{LrsError, LrsResult};

/// A stored statement as read back.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub seq: i64,
    pub stored_us: i64,
    pub voided: bool,
    pub body: String,
}

/// The last statement stored: its `seq` and `stored_us` ((0, 0) when none).
pub async fn last_stored(conn: &impl WriterSql) -> anyhow::Result<(i64, i64)> {
    let select = "SELECT seq, stored_us FROM statement ORDER BY seq DESC LIMIT 1";
    let rows: Vec<(i64, i64)> = conn.rows(sql::stmt(conn.backend(), select, vec![])).await?;
    Ok(rows.first().copied().unwrap_or((0, 0)))
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
pub async fn has_key(db: &DatabaseConnection, index: &FilterIndex, seq: i64, key: i64) -> LrsResult<bool> {
    if let FilterIndex::Postings(postings) = index {
        return postings.has(db, seq, key).await.map_err(LrsError::Internal);
    }
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
pub async fn page(db: &DatabaseConnection, index: &FilterIndex, q: &PageQuery) -> LrsResult<(Vec<StoredRow>, bool)> {
    match seq_bounds(db, q).await? {
        Some(bounds) => page_within(db, index, q, bounds).await,
        None => Ok((Vec::new(), false)),
    }
}

/// `page` for a caller that resolved `q`'s time range once (an export reads
/// many pages of one range).
pub async fn page_within(
    db: &DatabaseConnection,
    index: &FilterIndex,
    q: &PageQuery,
    bounds: SeqBounds,
) -> LrsResult<(Vec<StoredRow>, bool)> {
    let mut rows = match index {
        FilterIndex::Postings(postings) if !q.keys.is_empty() => page_by_postings(db, postings, q, bounds).await?,
        FilterIndex::KeyRows if q.keys.len() > 1 => page_by_fenced_probes(db, q, bounds).await?,
        _ => {
            let backend = db.get_database_backend();
            let rows = db.query_all_raw(filtered_sql(backend, q, bounds, Select::Page)).await?;
            rows.iter().map(stored_row).collect::<Result<Vec<_>, _>>()?
        }
    };
    let more = rows.len() > q.limit as usize;
    rows.truncate(q.limit as usize);
    Ok((rows, more))
}

/// A page of several keys on the key rows (PostgreSQL) through
/// `Select::Matches`: joining each candidate of the first key to its
/// statement row before the other keys are probed read hundreds of cold heap
/// pages for a page of a few matches. The voided statements among the
/// matches are left out here, and a batch of matches that loses some asks
/// again after its last `seq` until the page (one row more than the limit)
/// is full or the matches run out.
async fn page_by_fenced_probes(db: &DatabaseConnection, q: &PageQuery, bounds: SeqBounds) -> LrsResult<Vec<StoredRow>> {
    let backend = db.get_database_backend();
    let wanted = q.limit as usize + 1;
    let mut rows = Vec::with_capacity(wanted);
    let mut batch_query = q.clone();
    loop {
        let batch = db.query_all_raw(filtered_sql(backend, &batch_query, bounds, Select::Matches)).await?;
        let batch = batch.iter().map(stored_row).collect::<Result<Vec<_>, _>>()?;
        let exhausted = batch.len() < wanted;
        let Some(last) = batch.last().map(|r| r.seq) else { break };
        rows.extend(batch.into_iter().filter(|r| q.include_voided || !r.voided));
        if exhausted || rows.len() >= wanted {
            break;
        }
        batch_query.after_seq = Some(last);
    }
    rows.truncate(wanted);
    Ok(rows)
}

fn stored_row(r: &QueryResult) -> Result<StoredRow, sea_orm::DbErr> {
    Ok(StoredRow {
        seq: r.try_get_by_index(0)?,
        stored_us: r.try_get_by_index(1)?,
        body: r.try_get_by_index(2)?,
        voided: r.try_get_by_index(3)?,
    })
}

/// `q`'s seq range with its cursor, both ends inclusive.
fn seq_range(q: &PageQuery, (lo, hi): SeqBounds) -> (i64, i64) {
    let mut lo = lo.unwrap_or(i64::MIN);
    let mut hi = hi.unwrap_or(i64::MAX);
    match (q.after_seq, q.ascending) {
        (Some(after), true) => lo = lo.max(after.saturating_add(1)),
        (Some(after), false) => hi = hi.min(after.saturating_sub(1)),
        (None, _) => {}
    }
    (lo, hi)
}

/// The blocks of `range` in `q`'s direction.
fn blocks_in(postings: &Postings, q: &PageQuery, (lo, hi): (i64, i64)) -> Vec<i64> {
    let (first, last) = postings.blocks();
    let first = first.max(postings.block_of(lo.max(0)));
    let last = last.min(postings.block_of(hi.max(0)));
    if q.ascending { (first..=last).collect() } else { (first..=last).rev().collect() }
}

/// A page (one row more than the limit) through the postings: blocks in
/// the query's direction, the matching rows read a few more than still
/// wanted at a time (some may be voided, or not yet committed).
async fn page_by_postings(
    db: &DatabaseConnection,
    postings: &Postings,
    q: &PageQuery,
    bounds: SeqBounds,
) -> LrsResult<Vec<StoredRow>> {
    let want = q.limit as usize + 1;
    let range = seq_range(q, bounds);
    let mut out = Vec::with_capacity(want.min(1_024));
    let blocks = blocks_in(postings, q, range);
    // One block first (a common key fills a page there), then twice as
    // many each time: a rare key's page reads every block in a few queries.
    let mut step = 1;
    let mut rest_blocks = blocks.as_slice();
    while !rest_blocks.is_empty() {
        let (batch, later) = rest_blocks.split_at(step.min(rest_blocks.len()));
        rest_blocks = later;
        step *= 2;
        let mut seqs = postings.matching_in(db, batch, &q.keys).await.map_err(LrsError::Internal)?;
        seqs.retain(|s| (range.0..=range.1).contains(s));
        if !q.ascending {
            seqs.reverse();
        }
        let mut rest = seqs.as_slice();
        while !rest.is_empty() && out.len() < want {
            let take = rest.len().min((want - out.len()).clamp(16, MAX_IN));
            let (chunk, tail) = rest.split_at(take);
            rest = tail;
            out.extend(rows_at(db, chunk, q.ascending, q.include_voided).await?);
        }
        if out.len() >= want {
            break;
        }
    }
    Ok(out)
}

/// Most `seq`s in one `IN (…)`.
const MAX_IN: usize = 500;

/// The rows at `seqs` (non-voided ones unless `include_voided`), in `seq` order.
async fn rows_at(
    db: &DatabaseConnection,
    seqs: &[i64],
    ascending: bool,
    include_voided: bool,
) -> LrsResult<Vec<StoredRow>> {
    let select = format!(
        "SELECT seq, stored_us, body, voided FROM statement WHERE seq IN ({}){} ORDER BY seq {}",
        sql::list_placeholders(DbBackend::Sqlite, seqs.len(), 1),
        if include_voided { "" } else { " AND voided = FALSE" },
        if ascending { "ASC" } else { "DESC" }
    );
    let values = seqs.iter().map(|s| Value::from(*s)).collect();
    let rows = db.query_all_raw(sql::stmt(DbBackend::Sqlite, select, values)).await?;
    Ok(rows.iter().map(stored_row).collect::<Result<Vec<_>, _>>()?)
}

/// `count_within` through the postings.
async fn count_by_postings(
    db: &DatabaseConnection,
    postings: &Postings,
    q: &PageQuery,
    bounds: SeqBounds,
) -> LrsResult<i64> {
    let range = seq_range(q, bounds);
    let mut total = 0;
    // A few blocks a query: a query per block was a round trip each, and
    // all of them at once would hold every matching seq in memory.
    for blocks in blocks_in(postings, q, range).chunks(8) {
        let mut seqs = postings.matching_in(db, blocks, &q.keys).await.map_err(LrsError::Internal)?;
        seqs.retain(|s| (range.0..=range.1).contains(s));
        for chunk in seqs.chunks(MAX_IN) {
            let select = format!(
                "SELECT COUNT(*) FROM statement WHERE seq IN ({}){}",
                sql::list_placeholders(DbBackend::Sqlite, chunk.len(), 1),
                if q.include_voided { "" } else { " AND voided = FALSE" },
            );
            let values = chunk.iter().map(|s| Value::from(*s)).collect();
            if let Some(r) = db.query_one_raw(sql::stmt(DbBackend::Sqlite, select, values)).await? {
                total += r.try_get_by_index::<i64>(0)?;
            }
        }
    }
    Ok(total)
}

/// How many non-voided statements match `q` within `bounds` (after `q.after_seq`).
pub async fn count_within(
    db: &DatabaseConnection,
    index: &FilterIndex,
    q: &PageQuery,
    bounds: SeqBounds,
) -> LrsResult<i64> {
    if let FilterIndex::Postings(postings) = index
        && !q.keys.is_empty()
    {
        return count_by_postings(db, postings, q, bounds).await;
    }
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
    /// As `Page`, voided statements included: the keys are matched in a
    /// subquery whose `LIMIT` fences it off, so no statement row is read
    /// before all the keys of its `seq` matched.
    Matches,
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
    if !q.include_voided && select != Select::Matches {
        conditions.push("s.voided = FALSE".to_owned());
    }
    let mut from = match q.keys.first() {
        Some(first) => {
            conditions.push(format!("k0.key = {}", bind(*first)));
            // SQLite: CROSS JOIN fixes the key scan as the outer loop.
            let join = if backend == DbBackend::Sqlite { "CROSS JOIN" } else { "JOIN" };
            match select {
                Select::Matches => "statement_key k0".to_owned(),
                _ => format!("statement_key k0 {join} statement s ON s.seq = k0.seq"),
            }
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
    let sql_text = match select {
        Select::Matches => format!(
            "SELECT s.seq, s.stored_us, s.body, s.voided FROM (SELECT {seq_col} AS seq FROM {from}{where_clause} \
             ORDER BY {seq_col} {order} LIMIT {limit}) m JOIN statement s ON s.seq = m.seq ORDER BY s.seq {order}"
        ),
        _ => format!(
            "SELECT s.seq, s.stored_us, s.body, s.voided FROM {from}{where_clause} ORDER BY {seq_col} {order} LIMIT {limit}"
        ),
    };
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::DatabaseArgs;
    use crate::store::filter_index::encode_keys;
    use crate::store::writer_sql::WriterSql;

    const A: i64 = 11;
    const B: i64 = -22;

    /// Statement `seq` carries key A when even, B when divisible by 3.
    fn keys_of(seq: i64) -> Vec<i64> {
        let mut keys = vec![7];
        if seq % 2 == 0 {
            keys.push(A);
        }
        if seq % 3 == 0 {
            keys.push(B);
        }
        keys
    }

    /// Statements 1..=n stored through the postings (blocks of 4), `voided`
    /// marked, one group per `group` statements, as the writer does.
    async fn store(n: i64, group: i64, voided: &[i64]) -> (sea_orm::DatabaseConnection, Arc<Postings>) {
        let db = crate::store::connect(&DatabaseArgs { url: "sqlite::memory:".into(), pool_size: 1 }).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        let postings = Arc::new(Postings::with_block_bits(2));
        postings.load(&db).await.unwrap();
        let mut seq = 1;
        while seq <= n {
            let last = (seq + group - 1).min(n);
            let keys: Vec<(i64, Vec<i64>)> = (seq..=last).map(|s| (s, keys_of(s))).collect();
            for (s, k) in &keys {
                let insert = "INSERT INTO statement (seq, id, stored_us, voided, key_list, filter_keys, body) \
                    VALUES (?, ?, ?, ?, '', ?, '{}')";
                let values = vec![
                    (*s).into(),
                    format!("id-{s}").into(),
                    (*s).into(),
                    voided.contains(s).into(),
                    encode_keys(k.iter().copied()).into(),
                ];
                db.execute_raw(sql::stmt(DbBackend::Sqlite, insert, values)).await.unwrap();
            }
            let rows: Vec<(i64, &[i64])> = keys.iter().map(|(s, k)| (*s, k.as_slice())).collect();
            postings.add(&db, &rows).await.unwrap();
            postings.committed();
            seq = last + 1;
        }
        (db, postings)
    }

    fn expected(n: i64, keys: &[i64], voided: &[i64]) -> Vec<i64> {
        (1..=n).filter(|s| keys.iter().all(|k| keys_of(*s).contains(k)) && !voided.contains(s)).collect()
    }

    /// Every page of `keys` at `limit`, ascending and descending, finds `want`.
    async fn assert_pages_both_ways(
        db: &sea_orm::DatabaseConnection,
        index: &FilterIndex,
        keys: &[i64],
        limit: u32,
        want: &[i64],
    ) {
        let q = PageQuery { keys: keys.to_vec(), ascending: true, limit, ..PageQuery::default() };
        assert_eq!(all_pages(db, index, q.clone()).await, want, "{keys:?} limit {limit}");
        let desc = PageQuery { ascending: false, ..q };
        let mut back = all_pages(db, index, desc).await;
        back.reverse();
        assert_eq!(back, want, "{keys:?} limit {limit} descending");
    }

    async fn all_pages(db: &sea_orm::DatabaseConnection, index: &FilterIndex, mut q: PageQuery) -> Vec<i64> {
        let mut seen = Vec::new();
        loop {
            let (rows, more) = page(db, index, &q).await.unwrap();
            assert!(rows.len() <= q.limit as usize);
            seen.extend(rows.iter().map(|r| r.seq));
            match rows.last() {
                Some(last) if more => q.after_seq = Some(last.seq),
                _ => return seen,
            }
        }
    }

    #[tokio::test]
    async fn pages_through_written_blocks_and_the_open_one_in_either_direction() {
        let voided = [6, 12, 13];
        let (db, postings) = store(29, 3, &voided).await;
        let index = FilterIndex::Postings(postings.clone());
        let on_disk: Vec<(i64,)> = db
            .rows(sql::stmt(DbBackend::Sqlite, "SELECT COUNT(DISTINCT block) FROM statement_posting", vec![]))
            .await
            .unwrap();
        assert_eq!(on_disk[0].0, 7, "blocks 0 to 6 written, 7 open");
        for keys in [vec![A], vec![B], vec![A, B], vec![7, B, A]] {
            let want = expected(29, &keys, &voided);
            for limit in [1, 2, 5, 50] {
                assert_pages_both_ways(&db, &index, &keys, limit, &want).await;
            }
            let q = PageQuery { keys: keys.clone(), ..PageQuery::default() };
            assert_eq!(count_within(&db, &index, &q, (Some(5), Some(27))).await.unwrap(), {
                want.iter().filter(|s| (5..=27).contains(*s)).count() as i64
            });
        }
        // A key no statement has, and the other store kind's plain SQL for no keys.
        let none = PageQuery { keys: vec![A, 99], limit: 10, ..PageQuery::default() };
        assert!(page(&db, &index, &none).await.unwrap().0.is_empty());
        assert!(has_key(&db, &index, 4, A).await.unwrap());
        assert!(!has_key(&db, &index, 5, A).await.unwrap());
        assert!(has_key(&db, &index, 28, A).await.unwrap(), "in the open block");
    }

    /// The key-rows index (PostgreSQL): statements 1..=n with `keys_of`
    /// as `statement_key` rows. Without `XLRS_TEST_POSTGRES` there is none.
    async fn store_key_rows(n: i64, voided: &[i64]) -> Option<sea_orm::DatabaseConnection> {
        let db = crate::store::test_databases::postgres("key_rows_pages").await?;
        for s in 1..=n {
            let insert = "INSERT INTO statement (seq, id, stored_us, voided, key_list, body) \
                VALUES ($1, $2, $3, $4, '', '{}')";
            let values = vec![s.into(), format!("id-{s}").into(), s.into(), voided.contains(&s).into()];
            db.execute_raw(sql::stmt(DbBackend::Postgres, insert, values)).await.unwrap();
            for key in keys_of(s) {
                let insert = "INSERT INTO statement_key (key, seq) VALUES ($1, $2)";
                db.execute_raw(sql::stmt(DbBackend::Postgres, insert, vec![key.into(), s.into()])).await.unwrap();
            }
        }
        Some(db)
    }

    /// Pages of several keys match on the keys first and leave the voided
    /// statements out after: a batch of matches that loses some to voiding
    /// must ask again, or a page comes back short, or `more` lies.
    #[tokio::test]
    async fn key_rows_pages_of_several_keys_skip_voided_matches() {
        // Matches of A and B are the multiples of 6; most of them voided.
        let voided = [6, 12, 18, 30, 36, 42, 48, 60];
        let Some(db) = store_key_rows(70, &voided).await else { return };
        let index = FilterIndex::KeyRows;
        for keys in [vec![A, B], vec![7, B, A], vec![A, 99]] {
            let want = expected(70, &keys, &voided);
            for limit in [1, 2, 3, 50] {
                assert_pages_both_ways(&db, &index, &keys, limit, &want).await;
            }
        }
        // The live stream's pages keep the voided ones.
        let q = PageQuery { keys: vec![A, B], ascending: true, limit: 2, include_voided: true, ..PageQuery::default() };
        let (rows, more) = page(&db, &index, &q).await.unwrap();
        assert_eq!((rows.iter().map(|r| r.seq).collect::<Vec<_>>(), more), (vec![6, 12], true));
    }

    #[tokio::test]
    async fn a_reload_and_added_keys_keep_what_queries_find() {
        let (db, postings) = store(22, 5, &[]).await;
        // Statement 5 (written block 1) and 21 (open block 5) gain key A.
        for seq in [5, 21] {
            postings.add_keys(&db, seq, &[A]).await.unwrap();
        }
        let mut want = expected(22, &[A], &[]);
        want.extend([5, 21]);
        want.sort();
        let q = PageQuery { keys: vec![A], ascending: true, limit: 100, ..PageQuery::default() };
        let index = FilterIndex::Postings(postings.clone());
        assert_eq!(all_pages(&db, &index, q.clone()).await, want);
        // Rebuilt from the store (statement 21's own filter_keys lack A: a
        // reload reads what the rows say).
        let reloaded = Arc::new(Postings::with_block_bits(2));
        reloaded.load(&db).await.unwrap();
        let mut after_reload = want.clone();
        after_reload.retain(|s| *s != 21);
        assert_eq!(all_pages(&db, &FilterIndex::Postings(reloaded), q).await, after_reload);
    }
}
