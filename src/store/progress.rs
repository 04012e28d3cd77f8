//! The `progress` table: the sums of the statements up to
//! `progress_counted.through_seq`, written in large batches by the writer's
//! fold (`progress_fold.rs`) or read back from the log (`count_log`: what a
//! stopped server left, what another node wrote), corrected when a counted
//! statement is voided (`recount`), and read in pages (`page`). What a
//! statement adds is decided in `xapi/progress.rs`; the upsert below adds
//! tallies exactly as `Tally::add` does.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::LazyLock;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Value};
use serde_json::Value as Json;

use super::filter_index::FilterIndex;
use super::sql::{self, p};
use super::writer_sql::WriterSql;
use crate::error::LrsResult;
use crate::xapi::keys::{KeyKind, key};
use crate::xapi::progress::{
    NO_REGISTRATION, NameKind, RowId, RowKey, Status, Tally, contributions, name_id, registration_id,
};

/// Statements read from the log per transaction.
const LOG_BATCH: i64 = 5_000;

const COLUMNS: &str = "learner, activity, registration, statements, completed, passed, failed, best_score, \
     last_score, last_score_us, last_score_seq, first_us, last_us, last_seq, last_id, attempts, duration_ms";

/// Where a row's new tally is "later" than the stored one: `Tally::add`'s rules.
const MERGE: &str = "ON CONFLICT (learner, registration, activity) DO UPDATE SET \
     statements = progress.statements + excluded.statements, \
     completed = progress.completed OR excluded.completed, \
     passed = progress.passed OR excluded.passed, \
     failed = progress.failed OR excluded.failed, \
     best_score = CASE WHEN progress.best_score IS NULL OR excluded.best_score > progress.best_score \
         THEN excluded.best_score ELSE progress.best_score END, \
     last_score = CASE WHEN {later_score} THEN excluded.last_score ELSE progress.last_score END, \
     last_score_us = CASE WHEN {later_score} THEN excluded.last_score_us ELSE progress.last_score_us END, \
     last_score_seq = CASE WHEN {later_score} THEN excluded.last_score_seq ELSE progress.last_score_seq END, \
     first_us = CASE WHEN excluded.first_us < progress.first_us THEN excluded.first_us ELSE progress.first_us END, \
     last_us = CASE WHEN {later} THEN excluded.last_us ELSE progress.last_us END, \
     last_seq = CASE WHEN {later} THEN excluded.last_seq ELSE progress.last_seq END, \
     last_id = CASE WHEN {later} THEN excluded.last_id ELSE progress.last_id END, \
     attempts = progress.attempts + excluded.attempts, \
     duration_ms = progress.duration_ms + excluded.duration_ms";

const LATER_SCORE: &str = "(excluded.last_score_us IS NOT NULL AND (progress.last_score_us IS NULL \
     OR excluded.last_score_us > progress.last_score_us \
     OR (excluded.last_score_us = progress.last_score_us AND excluded.last_score_seq > progress.last_score_seq)))";
const LATER: &str = "(excluded.last_us > progress.last_us \
     OR (excluded.last_us = progress.last_us AND excluded.last_seq > progress.last_seq))";

/// PostgreSQL's upsert: every row in one statement of column arrays, one
/// round trip however many rows (a JSON array parameter cost the planner a
/// parse of it per group). The arrays cannot hold NULLs as bound here
/// (`Vec<f64>`), so a missing score travels as NaN, which no JSON number
/// is, and its time as 0. Made once: every flush runs it.
fn upsert_arrays_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let types = [
            "bigint", "bigint", "bigint", "bigint", "bool", "bool", "bool", "float8", "float8", "bigint", "bigint",
            "bigint", "bigint", "bigint", "text", "bigint", "bigint",
        ];
        let arrays: Vec<String> = types.iter().enumerate().map(|(i, t)| format!("${}::{t}[]", i + 1)).collect();
        let names: Vec<String> = (0..types.len()).map(|i| format!("c{i}")).collect();
        let mut fields = names.clone();
        fields[7] = "NULLIF(c7, 'NaN')".into();
        fields[8] = "NULLIF(c8, 'NaN')".into();
        fields[9] = "CASE WHEN c8 = 'NaN' THEN NULL ELSE c9 END".into();
        fields[10] = "CASE WHEN c8 = 'NaN' THEN NULL ELSE c10 END".into();
        format!(
            "INSERT INTO progress ({COLUMNS}) SELECT {} FROM unnest({}) AS t({}) {}",
            fields.join(", "),
            arrays.join(", "),
            names.join(", "),
            merge_sql()
        )
    });
    &SQL
}

/// `MERGE` with its conditions written in.
fn merge_sql() -> &'static str {
    static SQL: LazyLock<String> =
        LazyLock::new(|| MERGE.replace("{later_score}", LATER_SCORE).replace("{later}", LATER));
    &SQL
}

/// One row in `COLUMNS` order.
struct Row<'a>(
    i64,
    i64,
    i64,
    i64,
    bool,
    bool,
    bool,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    i64,
    &'a str,
    i64,
    i64,
);

impl<'a> Row<'a> {
    const COLUMNS: usize = 17;

    /// The row as bound values, in `COLUMNS` order.
    fn values(&self) -> [Value; Row::COLUMNS] {
        [
            self.0.into(),
            self.1.into(),
            self.2.into(),
            self.3.into(),
            self.4.into(),
            self.5.into(),
            self.6.into(),
            self.7.into(),
            self.8.into(),
            self.9.into(),
            self.10.into(),
            self.11.into(),
            self.12.into(),
            self.13.into(),
            Value::from(self.14.to_owned()),
            self.15.into(),
            self.16.into(),
        ]
    }

    /// The rows as column arrays, in `COLUMNS` order (`upsert_arrays_sql`).
    fn arrays(rows: &[Row]) -> Vec<Value> {
        let int = |f: fn(&Row) -> i64| Value::from(rows.iter().map(f).collect::<Vec<i64>>());
        let flag = |f: fn(&Row) -> bool| Value::from(rows.iter().map(f).collect::<Vec<bool>>());
        let real = |f: fn(&Row) -> Option<f64>| {
            Value::from(rows.iter().map(|r| f(r).unwrap_or(f64::NAN)).collect::<Vec<f64>>())
        };
        let maybe =
            |f: fn(&Row) -> Option<i64>| Value::from(rows.iter().map(|r| f(r).unwrap_or(0)).collect::<Vec<i64>>());
        vec![
            int(|r| r.0),
            int(|r| r.1),
            int(|r| r.2),
            int(|r| r.3),
            flag(|r| r.4),
            flag(|r| r.5),
            flag(|r| r.6),
            real(|r| r.7),
            real(|r| r.8),
            maybe(|r| r.9),
            maybe(|r| r.10),
            int(|r| r.11),
            int(|r| r.12),
            int(|r| r.13),
            Value::from(rows.iter().map(|r| r.14.to_owned()).collect::<Vec<String>>()),
            int(|r| r.15),
            int(|r| r.16),
        ]
    }

    fn of(key: &RowId, t: &'a Tally) -> Row<'a> {
        let ((last_us, last_seq), last_id) = &t.last;
        let score = t.last_score;
        Row(
            key.learner,
            key.activity,
            key.registration,
            t.statements,
            t.completed,
            t.passed,
            t.failed,
            t.best_score,
            score.map(|(s, _)| s),
            score.map(|(_, (us, _))| us),
            score.map(|(_, (_, seq))| seq),
            t.first_us,
            *last_us,
            *last_seq,
            last_id,
            t.attempts,
            t.duration_ms,
        )
    }
}

/// Tallies by row, and the names the rows' ids stand for: what an upsert
/// writes. Sorted, so that rows are written in the primary key's order.
#[derive(Debug, Default)]
pub(super) struct Sums {
    pub(super) rows: BTreeMap<RowId, Tally>,
    names: BTreeMap<i64, String>,
}

impl Sums {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds a statement's rows and names (`Unplaced::placed`, `names`).
    pub fn add_placed<'a>(
        &mut self,
        rows: impl Iterator<Item = (RowId, Tally)>,
        names: impl Iterator<Item = (i64, &'a str)>,
    ) {
        for (id, tally) in rows {
            match self.rows.entry(id) {
                Entry::Occupied(mut sum) => sum.get_mut().add(&tally),
                Entry::Vacant(row) => {
                    row.insert(tally);
                }
            }
        }
        for (id, name) in names {
            if let Entry::Vacant(new) = self.names.entry(id) {
                new.insert(name.to_owned());
            }
        }
    }

    /// Adds statements as stored, `(seq, stored_us, statement)`.
    pub fn add_stored<'a>(&mut self, statements: impl IntoIterator<Item = (i64, i64, &'a Json)>) {
        for (seq, stored_us, statement) in statements {
            for (key, tally) in contributions(statement, seq, stored_us) {
                let id = key.id();
                self.add_placed([(id, tally)].into_iter(), key.names(id));
            }
        }
    }
}

pub(super) async fn upsert(txn: &impl WriterSql, sums: &Sums) -> anyhow::Result<()> {
    if sums.is_empty() {
        return Ok(());
    }
    let rows: Vec<Row> = sums.rows.iter().map(|(k, t)| Row::of(k, t)).collect();
    let names: Vec<(i64, &str)> = sums.names.iter().map(|(id, name)| (*id, name.as_str())).collect();
    let mut starts: Vec<[i64; 2]> =
        sums.rows.keys().filter(|k| k.registration != NO_REGISTRATION).map(|k| [k.registration, k.learner]).collect();
    starts.sort_unstable();
    starts.dedup();
    match txn.backend() {
        // One statement a table however many rows: a round trip each is what costs.
        DbBackend::Postgres => upsert_arrays(txn, &rows, &names, &starts).await,
        // In process, bound values of rows are what SQLite reads fastest.
        _ => upsert_bound(txn, &rows, &names, &starts).await,
    }
}

async fn upsert_arrays(
    txn: &impl WriterSql,
    rows: &[Row<'_>],
    names: &[(i64, &str)],
    starts: &[[i64; 2]],
) -> anyhow::Result<()> {
    let backend = txn.backend();
    txn.run(sql::stmt(backend, upsert_arrays_sql(), Row::arrays(rows))).await.context("upsert progress")?;
    // A name or pair already there is only looked up: no page is written for it.
    let sql_text = "INSERT INTO progress_name (id, name) SELECT * FROM unnest($1::bigint[], $2::text[]) \
         ON CONFLICT DO NOTHING";
    let values = vec![
        Value::from(names.iter().map(|(id, _)| *id).collect::<Vec<i64>>()),
        Value::from(names.iter().map(|(_, name)| (*name).to_owned()).collect::<Vec<String>>()),
    ];
    txn.run(sql::stmt(backend, sql_text, values)).await.context("progress names")?;
    if starts.is_empty() {
        return Ok(());
    }
    let sql_text = "INSERT INTO progress_registration (registration, learner) \
         SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING";
    let values = vec![
        Value::from(starts.iter().map(|[r, _]| *r).collect::<Vec<i64>>()),
        Value::from(starts.iter().map(|[_, l]| *l).collect::<Vec<i64>>()),
    ];
    txn.run(sql::stmt(backend, sql_text, values)).await.context("progress registrations")?;
    Ok(())
}

async fn upsert_bound(
    txn: &impl WriterSql,
    rows: &[Row<'_>],
    names: &[(i64, &str)],
    starts: &[[i64; 2]],
) -> anyhow::Result<()> {
    let backend = txn.backend();
    let merge = merge_sql();
    for chunk in sql::chunks(rows) {
        let placeholders = sql::row_placeholders(backend, chunk.len(), Row::COLUMNS);
        let sql_text = format!("INSERT INTO progress ({COLUMNS}) VALUES {placeholders} {merge}");
        let values = chunk.iter().flat_map(Row::values).collect();
        txn.run(sql::stmt(backend, sql_text, values)).await.context("upsert progress")?;
    }
    for chunk in sql::chunks(names) {
        let placeholders = sql::row_placeholders(backend, chunk.len(), 2);
        let sql_text = sql::insert_ignore(backend, "progress_name (id, name)", &placeholders);
        let values = chunk.iter().flat_map(|(id, name)| [Value::from(*id), Value::from((*name).to_owned())]).collect();
        txn.run(sql::stmt(backend, sql_text, values)).await.context("progress names")?;
    }
    for chunk in sql::chunks(starts) {
        let placeholders = sql::row_placeholders(backend, chunk.len(), 2);
        let sql_text = sql::insert_ignore(backend, "progress_registration (registration, learner)", &placeholders);
        let values = chunk.iter().flat_map(|pair| pair.map(Value::from)).collect();
        txn.run(sql::stmt(backend, sql_text, values)).await.context("progress registrations")?;
    }
    Ok(())
}

/// Stored rows `(seq, stored_us, body)` with their bodies parsed.
fn parsed(rows: Vec<(i64, i64, String)>) -> anyhow::Result<Vec<(i64, i64, Json)>> {
    rows.into_iter()
        .map(|(seq, us, body)| Ok((seq, us, serde_json::from_str(&body).context("stored body is JSON")?)))
        .collect()
}

/// How far progress counts: every statement up to `through_seq`; and
/// whether it is kept (false while servers run with `--progress false`).
pub(super) async fn counted_through(db: &impl WriterSql) -> anyhow::Result<(i64, bool)> {
    // On PostgreSQL the row stays locked to the transaction's end: counting
    // runs beside the writer's groups (`progress_fold::flush_apart`), and
    // every transaction that counts reads this first, so two never count
    // the same statements. (SQLite has one writer at a time anyway.)
    let select = match db.backend() {
        DbBackend::Postgres => "SELECT through_seq, kept FROM progress_counted FOR UPDATE",
        _ => "SELECT through_seq, kept FROM progress_counted",
    };
    let rows: Vec<(i64, bool)> = db.rows(sql::stmt(db.backend(), select, vec![])).await.context("progress counted")?;
    rows.first().copied().context("progress_counted has no row")
}

async fn set_counted_through(txn: &impl WriterSql, seq: i64) -> anyhow::Result<()> {
    let backend = txn.backend();
    let update = format!("UPDATE progress_counted SET through_seq = {}", p(backend, 1));
    txn.run(sql::stmt(backend, update, vec![seq.into()])).await.context("progress counted")?;
    Ok(())
}

/// Adds `sums`, the sums of the statements after what is counted up to
/// `through`, and counts through it (the fold's write).
pub(super) async fn add_counted(txn: &impl WriterSql, sums: &Sums, through: i64) -> anyhow::Result<()> {
    upsert(txn, sums).await?;
    set_counted_through(txn, through).await
}

/// Counts statements from the log, after `through` and up to `up_to` (no
/// later than the last stored: the transaction holds the writer's lock),
/// at most `LOG_BATCH` at a time. Returns how far it counted and how many
/// statements it read.
pub(super) async fn count_log(txn: &impl WriterSql, through: i64, up_to: i64) -> anyhow::Result<(i64, i64)> {
    let backend = txn.backend();
    let (mut at, mut read) = (through, 0);
    while at < up_to {
        let end = up_to.min(at + LOG_BATCH);
        let select = format!(
            "SELECT seq, stored_us, body FROM statement WHERE seq > {} AND seq <= {} AND voided = FALSE",
            p(backend, 1),
            p(backend, 2)
        );
        let batch = txn.rows(sql::stmt(backend, select, vec![at.into(), end.into()])).await.context("read the log")?;
        let batch = parsed(batch)?;
        let mut sums = Sums::default();
        sums.add_stored(batch.iter().map(|(seq, us, s)| (*seq, *us, s)));
        upsert(txn, &sums).await?;
        read += batch.len() as i64;
        at = end;
    }
    set_counted_through(txn, at).await?;
    Ok((at, read))
}

/// Recomputes, from the statements still counted, every row the voided
/// statements (`seqs`, already marked voided) counted for. Voiding is rare;
/// a row's statements are found through the filter keys of its learner and
/// activity.
pub(super) async fn recount(txn: &impl WriterSql, index: &FilterIndex, seqs: &[i64]) -> anyhow::Result<()> {
    if seqs.is_empty() {
        return Ok(());
    }
    let backend = txn.backend();
    let mut rows: Vec<RowKey> = Vec::new();
    for seq in seqs {
        let select = format!("SELECT seq, stored_us, body FROM statement WHERE seq = {}", p(backend, 1));
        let found = txn.rows(sql::stmt(backend, select, vec![(*seq).into()])).await.context("voided statement")?;
        for (seq, stored_us, statement) in parsed(found)? {
            rows.extend(contributions(&statement, seq, stored_us).into_iter().map(|(k, _)| k));
        }
    }
    rows.sort();
    rows.dedup();
    let (through, _) = counted_through(txn).await?;
    for row in rows {
        let mut sums = Sums::default();
        let counted = parsed(row_statements(txn, index, &row, through).await?)?;
        sums.add_stored(counted.iter().map(|(seq, us, s)| (*seq, *us, s)));
        let id = row.id();
        sums.rows.retain(|k, _| *k == id);
        let delete = format!(
            "DELETE FROM progress WHERE learner = {} AND activity = {} AND registration = {}",
            p(backend, 1),
            p(backend, 2),
            p(backend, 3)
        );
        let values = vec![id.learner.into(), id.activity.into(), id.registration.into()];
        txn.run(sql::stmt(backend, delete, values)).await.context("delete progress row")?;
        upsert(txn, &sums).await?;
    }
    Ok(())
}

/// The counted, non-voided statements by `row.learner` that name
/// `row.activity` (any registration; `contributions` sorts them out):
/// `(seq, stored_us, body)`.
async fn row_statements(
    txn: &impl WriterSql,
    index: &FilterIndex,
    row: &RowKey,
    through: i64,
) -> anyhow::Result<Vec<(i64, i64, String)>> {
    let keys = [key(KeyKind::Agent, &row.learner), key(KeyKind::RelatedActivity, &row.activity)];
    let counted = |seq: &i64| *seq <= through;
    let FilterIndex::Postings(postings) = index else {
        return row_statements_by_key_rows(txn, keys, through).await;
    };
    let (first, last) = postings.blocks();
    let mut out = Vec::new();
    for b in first..=last {
        let mut seqs = postings.matching(txn, b, &keys).await?;
        seqs.retain(counted);
        for chunk in sql::chunks(&seqs) {
            let select = format!(
                "SELECT seq, stored_us, body FROM statement WHERE voided = FALSE AND seq IN ({}) ORDER BY seq",
                sql::list_placeholders(DbBackend::Sqlite, chunk.len(), 1)
            );
            let values = chunk.iter().map(|s| (*s).into()).collect();
            out.extend(txn.rows(sql::stmt(DbBackend::Sqlite, select, values)).await.context("statements")?);
        }
    }
    Ok(out)
}

async fn row_statements_by_key_rows(
    txn: &impl WriterSql,
    [agent, activity]: [i64; 2],
    through: i64,
) -> anyhow::Result<Vec<(i64, i64, String)>> {
    let backend = txn.backend();
    let select = format!(
        "SELECT s.seq, s.stored_us, s.body FROM statement_key k0 JOIN statement s ON s.seq = k0.seq \
         WHERE k0.key = {} AND s.voided = FALSE AND s.seq <= {} AND EXISTS \
         (SELECT 1 FROM statement_key k1 WHERE k1.key = {} AND k1.seq = k0.seq) ORDER BY s.seq",
        p(backend, 1),
        p(backend, 2),
        p(backend, 3)
    );
    let values = vec![agent.into(), through.into(), activity.into()];
    txn.rows(sql::stmt(backend, select, values)).await.context("a progress row's statements")
}

/// Marks progress as not kept (a server runs with `--progress false`): the
/// next server that keeps it counts every statement afresh.
pub async fn stop_keeping(db: &DatabaseConnection) -> anyhow::Result<()> {
    let txn = super::begin_writer_turn(db).await?;
    let mark = "UPDATE progress_counted SET kept = FALSE";
    txn.execute_raw(sql::stmt(db.get_database_backend(), mark, vec![])).await.context("progress mark")?;
    txn.commit().await.context("commit")
}

/// After a time of not keeping progress: forgets the rows, so that every
/// statement stored so far is counted again.
async fn start_afresh(db: &DatabaseConnection) -> anyhow::Result<()> {
    let txn = super::begin_writer_turn(db).await?;
    let (_, kept) = counted_through(&*txn).await?;
    if !kept {
        let backend = db.get_database_backend();
        for text in [
            "DELETE FROM progress",
            "DELETE FROM progress_registration",
            "UPDATE progress_counted SET through_seq = 0, kept = TRUE",
        ] {
            txn.execute_raw(sql::stmt(backend, text, vec![])).await.context("progress reset")?;
        }
        tracing::info!("progress was not kept for a time: counting every statement afresh");
    }
    txn.commit().await.context("commit")
}

/// Counts every statement not counted yet (left by a server that stopped
/// before its fold was written, or stored while progress was not kept), a
/// batch per transaction, each under the writer's lock so that nodes
/// starting together never count a statement twice. Returns how many it
/// counted.
pub async fn backfill(db: &DatabaseConnection) -> anyhow::Result<i64> {
    start_afresh(db).await?;
    let mut counted = 0;
    loop {
        let txn = super::begin_writer_turn(db).await?;
        let (through, _) = counted_through(&*txn).await?;
        let last = super::statements::last_stored(&*txn).await.context("last statement")?.0;
        if through >= last {
            txn.rollback().await.context("rollback")?;
            return Ok(counted);
        }
        let (at, read) = count_log(&*txn, through, last.min(through + LOG_BATCH)).await?;
        txn.commit().await.context("commit")?;
        counted += read;
        tracing::info!(through = at, of = last, "progress: counted statements stored before it was kept");
    }
}

/// The `stored` time (µs) of the last statement progress counts: an answer
/// that could not wait for the writer is consistent through it.
pub async fn counted_through_us(db: &DatabaseConnection) -> LrsResult<i64> {
    let select = "SELECT COALESCE((SELECT s.stored_us FROM statement s JOIN progress_counted c \
         ON s.seq = c.through_seq), 0)";
    let row = db.query_one_raw(sql::stmt(db.get_database_backend(), select, vec![])).await?;
    Ok(match row {
        Some(r) => r.try_get_by_index(0)?,
        None => 0,
    })
}

/// A page request of progress rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProgressQuery {
    pub learner: Option<String>,
    pub activity: Option<String>,
    pub registration: Option<String>,
    pub status: Option<Status>,
    /// Keyset cursor: the last row served.
    pub after: Option<RowKey>,
    pub limit: u32,
}

/// A stored progress row.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressRow {
    pub key: RowKey,
    /// `None` for a learner with no statement on the activity yet.
    pub tally: Option<Tally>,
}

/// Which index a query reads, and so the order its rows come in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    /// The registration's learners (`progress_registration`), then each
    /// one's rows by primary key: (learner, activity).
    Registration,
    /// `progress_activity`: (learner, registration).
    Activity,
    /// The primary key: (learner, registration, activity).
    Key,
}

impl Path {
    fn of(q: &ProgressQuery) -> Path {
        if q.registration.is_some() && q.learner.is_none() {
            Path::Registration
        } else if q.activity.is_some() {
            Path::Activity
        } else {
            Path::Key
        }
    }

    /// The columns rows are ordered by, fixed ones included.
    fn order(self) -> &'static [Column] {
        match self {
            Path::Registration => &[Column::Learner, Column::Activity],
            Path::Activity => &[Column::Learner, Column::Registration],
            Path::Key => &[Column::Learner, Column::Registration, Column::Activity],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Column {
    Learner,
    Registration,
    Activity,
}

impl Column {
    fn name(self, path: Path) -> &'static str {
        match (self, path) {
            // The registration's table is what is read in order.
            (Column::Learner, Path::Registration) => "r.learner",
            (Column::Learner, _) => "p.learner",
            (Column::Registration, _) => "p.registration",
            (Column::Activity, _) => "p.activity",
        }
    }

    /// The id the query fixes the column to.
    fn of(self, q: &ProgressQuery) -> Option<i64> {
        match self {
            Column::Learner => q.learner.as_deref().map(|l| name_id(NameKind::Learner, l)),
            Column::Registration => q.registration.as_deref().map(registration_id),
            Column::Activity => q.activity.as_deref().map(|a| name_id(NameKind::Activity, a)),
        }
    }

    fn of_key(self, k: &RowId) -> i64 {
        match self {
            Column::Learner => k.learner,
            Column::Registration => k.registration,
            Column::Activity => k.activity,
        }
    }
}

/// One page of rows, in the order of the index the query reads (see
/// `Path`), and whether more follow.
pub async fn page(db: &DatabaseConnection, q: &ProgressQuery) -> LrsResult<(Vec<ProgressRow>, bool)> {
    let rows = db.query_all_raw(page_sql(db.get_database_backend(), q)).await?;
    let more = rows.len() > q.limit as usize;
    let out = rows.iter().take(q.limit as usize).map(read_row).collect::<Result<Vec<_>, _>>()?;
    Ok((out, more))
}

fn page_sql(backend: DbBackend, q: &ProgressQuery) -> sea_orm::Statement {
    let path = Path::of(q);
    let mut values: Vec<Value> = Vec::new();
    let mut bind = |v: i64| {
        values.push(v.into());
        p(backend, values.len())
    };
    let mut conditions = Vec::new();
    for column in [Column::Learner, Column::Registration, Column::Activity] {
        if let Some(v) = column.of(q) {
            conditions.push(format!("{} = {}", column.name(path), bind(v)));
        }
    }
    if let Some(status) = q.status {
        conditions.push(status_condition(status).into());
    }
    // The order is the index's with the fixed columns left out; the cursor
    // continues after the last row in it (a row value: one range of the index).
    let free: Vec<Column> = path.order().iter().copied().filter(|c| c.of(q).is_none()).collect();
    let order: Vec<&str> = free.iter().map(|c| c.name(path)).collect();
    if let Some(after) = &q.after
        && !free.is_empty()
    {
        let after = after.id();
        let marks: Vec<String> = free.iter().map(|c| bind(c.of_key(&after))).collect();
        conditions.push(format!("({}) > ({})", order.join(", "), marks.join(", ")));
    }
    values.push((i64::from(q.limit) + 1).into());
    let limit = p(backend, values.len());
    let from = match (path, backend) {
        (Path::Registration, _) => {
            "progress_registration r JOIN progress p ON p.learner = r.learner AND p.registration = r.registration"
        }
        // Without statistics SQLite reads a learner's rows by primary key to
        // find one activity's (thousands of rows for a busy learner); the
        // activity index finds them directly.
        (Path::Activity, DbBackend::Sqlite) => "progress p INDEXED BY progress_activity",
        _ => "progress p",
    };
    let where_clause =
        if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    let order_clause = if order.is_empty() { String::new() } else { format!(" ORDER BY {}", order.join(", ")) };
    // A row's names, each by its id (the absent registration has none).
    let name = |column: &str| format!("COALESCE((SELECT n.name FROM progress_name n WHERE n.id = p.{column}), '')");
    let columns: Vec<String> = COLUMNS
        .split(", ")
        .map(|c| match c {
            "learner" | "activity" | "registration" => name(c),
            _ => format!("p.{c}"),
        })
        .collect();
    let select = format!("SELECT {} FROM {from}{where_clause}{order_clause} LIMIT {limit}", columns.join(", "));
    sql::stmt(backend, select, values)
}

fn status_condition(status: Status) -> &'static str {
    match status {
        Status::Passed => "p.passed = TRUE",
        Status::Failed => "p.failed = TRUE AND p.passed = FALSE",
        Status::Completed => "p.completed = TRUE AND p.passed = FALSE AND p.failed = FALSE",
        Status::InProgress => "p.completed = FALSE AND p.passed = FALSE AND p.failed = FALSE",
        // A stored row has at least one statement.
        Status::NotAttempted => "1 = 0",
    }
}

fn read_row(r: &QueryResult) -> Result<ProgressRow, sea_orm::DbErr> {
    let last_score: Option<f64> = r.try_get_by_index(8)?;
    let last_score_us: Option<i64> = r.try_get_by_index(9)?;
    let last_score_seq: Option<i64> = r.try_get_by_index(10)?;
    Ok(ProgressRow {
        key: RowKey {
            learner: r.try_get_by_index(0)?,
            activity: r.try_get_by_index(1)?,
            registration: r.try_get_by_index(2)?,
        },
        tally: Some(Tally {
            statements: r.try_get_by_index(3)?,
            completed: r.try_get_by_index(4)?,
            passed: r.try_get_by_index(5)?,
            failed: r.try_get_by_index(6)?,
            best_score: r.try_get_by_index(7)?,
            last_score: last_score.zip(last_score_us.zip(last_score_seq)),
            first_us: r.try_get_by_index(11)?,
            last: ((r.try_get_by_index(12)?, r.try_get_by_index(13)?), r.try_get_by_index(14)?),
            attempts: r.try_get_by_index(15)?,
            duration_ms: r.try_get_by_index(16)?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseArgs;

    /// A tally with every field set from `n` (some scores missing, some
    /// times equal), so that merging exercises NULLs and ties.
    fn tally(n: i64) -> Tally {
        let when = ((n % 4) * 1_000, n);
        Tally {
            statements: 1,
            completed: n % 5 == 0,
            passed: n % 7 == 0,
            failed: n % 3 == 0,
            best_score: (n % 2 == 0).then_some((n % 9) as f64 / 10.0),
            last_score: (n % 2 == 0).then_some(((n % 9) as f64 / 10.0, when)),
            first_us: when.0,
            last: (when, format!("id-{n}")),
            attempts: n % 2,
            duration_ms: n * 10,
        }
    }

    /// Each kind of query reads its index in order: no sort, and the cursor
    /// starts where the last page ended.
    #[tokio::test]
    async fn each_query_reads_an_index_in_order() {
        let db = super::super::connect(&DatabaseArgs { url: "sqlite::memory:".into(), pool_size: 1 }).await.unwrap();
        super::super::migrate(&db).await.unwrap();
        let some = |v: &str| Some(v.to_owned());
        let after = RowKey { learner: "l".into(), registration: "r".into(), activity: "a".into() };
        let cases = [
            (ProgressQuery { learner: some("l"), ..Default::default() }, "PRIMARY KEY"),
            (ProgressQuery { learner: some("l"), registration: some("r"), ..Default::default() }, "PRIMARY KEY"),
            (ProgressQuery { activity: some("a"), ..Default::default() }, "progress_activity"),
            (ProgressQuery { activity: some("a"), learner: some("l"), ..Default::default() }, "progress_activity"),
            (
                ProgressQuery { registration: some("r"), ..Default::default() },
                "SEARCH r USING PRIMARY KEY (registration=?",
            ),
            (
                ProgressQuery { registration: some("r"), activity: some("a"), ..Default::default() },
                "SEARCH r USING PRIMARY KEY (registration=?",
            ),
            (ProgressQuery::default(), "PRIMARY KEY"),
        ];
        for (mut q, index) in cases {
            q.limit = 10;
            q.after = Some(after.clone());
            let statement = page_sql(DbBackend::Sqlite, &q);
            let explain = sql::stmt(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {}", statement.sql),
                statement.values.map(|v| v.0).unwrap_or_default(),
            );
            let plan: Vec<String> = db
                .query_all_raw(explain)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get_by_index::<String>(3).unwrap())
                .collect();
            let plan = plan.join(" / ");
            assert!(plan.contains(index), "{q:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{q:?} sorts: {plan}");
            // With a cursor every page starts where the last ended: a search.
            assert!(!plan.contains("SCAN"), "{q:?} scans: {plan}");
        }
    }

    /// The SQL upsert must add tallies exactly as `Tally::add` does: one
    /// upsert per tally (the conflict path every time) against the sum in
    /// Rust, on each database (their upserts are written differently).
    #[tokio::test]
    async fn the_upsert_adds_as_tally_add_does() {
        for db in crate::store::test_databases::each("upsert").await {
            upsert_adds_as_tally_add_does(&db).await;
        }
    }

    async fn upsert_adds_as_tally_add_does(db: &DatabaseConnection) {
        let key =
            RowKey { learner: "mbox:mailto:a@x".into(), activity: "http://a".into(), registration: String::new() };
        let mut expected: Option<Tally> = None;
        for n in [6, 3, 14, 9, 1, 21, 10, 4, 35, 2, 12] {
            let t = tally(n);
            let mut sums = Sums::default();
            sums.add_placed([(key.id(), t.clone())].into_iter(), key.names(key.id()));
            upsert(db, &sums).await.unwrap();
            match &mut expected {
                Some(sum) => sum.add(&t),
                None => expected = Some(t),
            }
            let q = ProgressQuery { learner: Some(key.learner.clone()), limit: 10, ..Default::default() };
            let (rows, _) = page(db, &q).await.unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].tally, expected, "after adding {n} on {:?}", db.get_database_backend());
        }
    }
}
