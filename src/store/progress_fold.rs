//! Learner progress follows the statement log instead of being written in
//! every commit. The writer folds what it commits into one tally per
//! (learner, activity, registration) in memory and writes the sums in one
//! transaction of its own when enough statements are folded, when the
//! oldest has waited `MAX_LAG`, or when a reader of progress asks
//! (`Writer::progress_counted`). A row updated by a hundred statements is
//! then written once, not in a hundred commits: docs/benchmarks.md has the
//! figures.
//!
//! `progress_counted.through_seq` says how far the sums go. A fold is
//! written only when it continues exactly from there; otherwise (another
//! node committed in between, a flush failed and a later one succeeded
//! elsewhere) the statements are read back from the log, which is always
//! right. A server killed with a fold in memory leaves `through_seq`
//! behind, and start-up counts the rest from the log (`progress::backfill`).

use std::time::{Duration, Instant};

use anyhow::Context;
use sea_orm::DatabaseConnection;

use super::progress::{self, Sums};
use super::statements;
use super::writer_sql::WriterSql;
use crate::xapi::statement::PreparedStatement;

/// Writes `fold` on `db` beside the writer's groups, not in its turn: the
/// fold is of statements already committed, and `counted_through` locks
/// the counting row, so counting stays one at a time across nodes and the
/// groups go on committing. (A flush between groups held the writer's turn
/// for 270-400 ms every few seconds on PostgreSQL: most of the batch p99.)
pub async fn flush_apart(db: &DatabaseConnection, fold: &Fold) -> anyhow::Result<i64> {
    let txn = super::begin_write(db).await.context("begin")?;
    let through = fold.flush(&*txn, false).await?;
    txn.commit().await.context("commit")?;
    Ok(through)
}

/// Statements folded before the sums are written whatever their age.
const FOLD_STATEMENTS: usize = 20_000;
/// How long a folded statement waits at most before it is counted.
pub const MAX_LAG: Duration = Duration::from_millis(2_000);

#[derive(Default)]
pub(super) struct Fold {
    sums: Sums,
    /// The first and last `seq` folded.
    span: Option<(i64, i64)>,
    statements: usize,
    /// When the oldest statement not counted yet was committed.
    since: Option<Instant>,
    /// Counting is behind this writer's commits (a flush read the log only
    /// part of the way): nothing is folded until a flush catches up.
    behind: bool,
}

impl Fold {
    /// Folds a commit's statements, `(seq, statement)` in `seq` order,
    /// leaving out those it voided on arrival.
    pub fn add(&mut self, rows: &[(i64, &PreparedStatement)], stored_us: i64, voided: &[i64]) {
        let (Some((first, _)), Some((last, _))) = (rows.first(), rows.last()) else {
            return;
        };
        self.since.get_or_insert_with(Instant::now);
        if self.behind {
            return;
        }
        if let Some((_, end)) = self.span
            && *first != end + 1
        {
            // Another node's statements came between: the log has them all.
            self.behind = true;
            self.sums = Sums::default();
            return;
        }
        for (seq, s) in rows.iter().filter(|(seq, _)| !voided.contains(seq)) {
            match &s.progress {
                Some(unplaced) => self.sums.add_placed(unplaced.placed(*seq, stored_us), unplaced.names()),
                // Prepared by a context that did not keep progress.
                None => self.sums.add_stored([(*seq, stored_us, &s.statement)]),
            }
        }
        self.span = Some((self.span.map_or(*first, |(f, _)| f), *last));
        self.statements += rows.len();
    }

    /// When the sums are to be written; `None` when everything is counted.
    pub fn deadline(&self) -> Option<Instant> {
        let since = self.since?;
        Some(if self.behind || self.statements >= FOLD_STATEMENTS { since } else { since + MAX_LAG })
    }

    pub fn due(&self) -> bool {
        self.deadline().is_some_and(|d| d <= Instant::now())
    }

    /// Counts, inside `txn`, what the fold holds, or what the log holds
    /// after what is counted: everything stored when `all`, else up to
    /// `FOLD_STATEMENTS`. Returns how far counting then goes.
    pub async fn flush(&self, txn: &impl WriterSql, all: bool) -> anyhow::Result<i64> {
        let (mut at, _) = progress::counted_through(txn).await?;
        if let Some((first, last)) = self.span
            && !self.behind
            && first == at + 1
        {
            progress::add_counted(txn, &self.sums, last).await?;
            at = last;
        }
        // What this writer committed is counted (here or by another node).
        let covered = !self.behind && self.span.is_none_or(|(_, last)| at >= last);
        if covered && !all {
            return Ok(at);
        }
        let stored = statements::last_stored(txn).await.context("last statement")?.0;
        let up_to = if all { stored } else { stored.min(at + FOLD_STATEMENTS as i64) };
        if up_to > at {
            at = progress::count_log(txn, at, up_to).await?.0;
        }
        Ok(at)
    }

    /// After the flush's commit: counting goes to `through`, and this
    /// writer last committed `committed`.
    pub fn flushed(&mut self, through: i64, committed: i64) {
        *self = Fold { behind: through < committed, ..Fold::default() };
        if self.behind {
            self.since = Some(Instant::now());
        }
    }

    /// What came before this fold was not all counted (a flush apart
    /// failed, or counted only part of the log): count from the log, after
    /// `retry`.
    pub fn lost(&mut self, retry: Duration) {
        *self = Fold { behind: true, since: Some(Instant::now() + retry), ..Fold::default() };
    }

    /// A flush failed: try again after `MAX_LAG`, folding on.
    pub fn failed(&mut self) {
        self.since = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
    use serde_json::json;

    use super::*;
    use crate::config::DatabaseArgs;
    use crate::forward::{ForwardingConfig, Routing};
    use crate::metrics::Metrics;
    use crate::store::sql;
    use crate::store::writer::Writer;
    use crate::xapi::XapiVersion;
    use crate::xapi::statement::{StoreContext, prepare};

    /// Six statements of two learners on a module of a course, stored by a
    /// writer that does not count them: seqs 1 to 6.
    async fn stored() -> (tempfile::TempDir, DatabaseConnection, Vec<PreparedStatement>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("f.db").display());
        let db = crate::store::connect(&DatabaseArgs { url, pool_size: 2 }).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        let statements = six_statements();
        let routing = Arc::new(Routing::new(&ForwardingConfig::default()));
        let (writer, handle) =
            Writer::spawn(db.clone(), routing, Arc::new(Metrics::new().unwrap()), false).await.unwrap();
        writer.write(statements.clone()).await.unwrap();
        handle.shutdown().await;
        (dir, db, statements)
    }

    /// Six statements of two learners on a module of a course: each counts
    /// for two rows (the module's and the course's).
    fn six_statements() -> Vec<PreparedStatement> {
        let authority = json!({"objectType": "Agent", "account": {"homePage": "http://lrs", "name": "t"}});
        let ctx = StoreContext {
            version: XapiVersion::V1_0,
            authority: &authority,
            credential_key: "t",
            keep_progress: true,
        };
        (0..6)
            .map(|n| {
                let s = json!({
                    "actor": {"mbox": format!("mailto:l{}@example.com", n % 2)},
                    "verb": {"id": if n == 4 { "http://adlnet.gov/expapi/verbs/passed" } else { "http://adlnet.gov/expapi/verbs/experienced" }},
                    "object": {"id": "http://example.com/c/m"},
                    "result": {"score": {"scaled": n as f64 / 10.0}, "duration": "PT1M"},
                    "timestamp": format!("2026-03-01T10:0{n}:00Z"),
                    "context": {"contextActivities": {"parent": [{"id": "http://example.com/c"}]}}
                });
                prepare(s, None, &ctx).unwrap()
            })
            .collect()
    }

    /// On PostgreSQL a fold is written beside the writer's groups: while a
    /// flush waits (here for a test's lock on the counting row, as for a
    /// slow flush or another node's), statements still commit; once it
    /// ends, every statement is counted, each once.
    #[tokio::test]
    async fn groups_commit_while_a_fold_is_written_apart() {
        let Some(db) = crate::store::test_databases::postgres_pooled("fold_apart", 4).await else { return };
        let statements = six_statements();
        let routing = Arc::new(Routing::new(&ForwardingConfig::default()));
        let (writer, handle) =
            Writer::spawn(db.clone(), routing, Arc::new(Metrics::new().unwrap()), true).await.unwrap();
        writer.write(statements[..3].to_vec()).await.unwrap();
        let blocker = crate::store::begin_write(&db).await.unwrap();
        blocker.execute_unprepared("SELECT through_seq FROM progress_counted FOR UPDATE").await.unwrap();
        assert!(!writer.progress_counted(Duration::from_millis(500)).await, "the flush waits for the row");
        let later = writer.write(statements[3..].to_vec());
        tokio::time::timeout(Duration::from_secs(10), later).await.expect("a group commits beside the flush").unwrap();
        blocker.rollback().await.unwrap();
        assert!(writer.progress_counted(Duration::from_secs(10)).await);
        let sum = "SELECT COALESCE(sum(statements), 0)::bigint FROM progress";
        let counted: Vec<(i64,)> = db.rows(sql::stmt(DbBackend::Postgres, sum, vec![])).await.unwrap();
        assert_eq!(counted, vec![(12,)], "six statements, two rows each");
        handle.shutdown().await;
    }

    async fn table(db: &DatabaseConnection) -> Vec<String> {
        let select = "SELECT concat_ws('|', (SELECT name FROM progress_name WHERE id = learner), \
             (SELECT name FROM progress_name WHERE id = activity), statements, completed, passed, quote(best_score), \
             quote(last_score), first_us, last_us, last_id, duration_ms) FROM progress ORDER BY learner, activity";
        let rows = db.query_all_raw(sql::stmt(DbBackend::Sqlite, select, vec![])).await.unwrap();
        rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect()
    }

    async fn flush(db: &DatabaseConnection, fold: &Fold) -> i64 {
        let txn = crate::store::begin_writer_turn(db).await.unwrap();
        let through = fold.flush(&*txn, false).await.unwrap();
        txn.commit().await.unwrap();
        through
    }

    async fn forget(db: &DatabaseConnection) {
        for text in ["DELETE FROM progress", "UPDATE progress_counted SET through_seq = 0"] {
            db.execute_unprepared(text).await.unwrap();
        }
    }

    fn fold_of(statements: &[PreparedStatement], seqs: std::ops::RangeInclusive<i64>) -> Fold {
        let rows: Vec<(i64, &PreparedStatement)> = seqs.map(|seq| (seq, &statements[seq as usize - 1])).collect();
        let mut fold = Fold::default();
        for one in rows.chunks(2) {
            fold.add(one, 0, &[]);
        }
        fold
    }

    /// A fold that continues from what is counted is written as it is, and
    /// sums exactly what reading the log sums; one that does not (a gap:
    /// another node's statements) reads the log instead; one already
    /// counted is not written again.
    #[tokio::test]
    async fn a_fold_counts_what_the_log_counts_once() {
        let (_dir, db, statements) = stored().await;
        assert!(table(&db).await.is_empty());
        let whole = fold_of(&statements, 1..=6);
        assert_eq!(flush(&db, &whole).await, 6);
        let folded = table(&db).await;
        assert_eq!(folded.len(), 4, "two learners, the module and the course: {folded:?}");

        forget(&db).await;
        assert_eq!(crate::store::progress::backfill(&db).await.unwrap(), 6);
        assert_eq!(table(&db).await, folded, "the log's count");

        forget(&db).await;
        let after_a_gap = fold_of(&statements, 4..=6);
        assert_eq!(flush(&db, &after_a_gap).await, 6);
        assert_eq!(table(&db).await, folded, "read from the log, the fold left out");

        assert_eq!(flush(&db, &whole).await, 6);
        assert_eq!(table(&db).await, folded, "counted once");
    }

    /// Commits that do not follow each other (another node's came between)
    /// stop the folding; the flush, due at once, reads the log.
    #[tokio::test]
    async fn a_gap_between_commits_puts_the_fold_behind() {
        let (_dir, db, statements) = stored().await;
        let mut fold = Fold::default();
        assert!(fold.deadline().is_none(), "nothing committed");
        fold.add(&[(1, &statements[0]), (2, &statements[1])], 0, &[]);
        assert!(!fold.due(), "waits up to MAX_LAG");
        fold.add(&[(5, &statements[4]), (6, &statements[5])], 0, &[]);
        assert!(fold.behind && fold.sums.is_empty() && fold.due());
        assert_eq!(flush(&db, &fold).await, 6);
        let from_the_log = table(&db).await;
        forget(&db).await;
        assert_eq!(crate::store::progress::backfill(&db).await.unwrap(), 6);
        assert_eq!(table(&db).await, from_the_log, "all six, each once");
        let mut again = Fold::default();
        again.add(&[(1, &statements[0])], 0, &[]);
        again.flushed(6, 6);
        assert!(again.deadline().is_none() && !again.behind, "caught up");
    }
}
