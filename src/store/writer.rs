//! The group-commit writer: one task per database takes the validated
//! statements of every request waiting for it and stores them in one
//! transaction, then answers each request. One commit (one fsync) serves many
//! requests, and a request is answered only after its statements committed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use sea_orm::{DatabaseConnection, DbBackend, Value};
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot, watch};

use super::checkpoint::Checkpointer;
use super::filter_index::{FilterIndex, Postings, encode_keys};
use super::forward_stream::Streamed;
use super::pg_writer::PgWriterTransaction;
use super::progress_fold::{self, Fold};
use super::sql;
use super::write_memo::{Learned, WriteMemo};
use super::writer_sql::{CopyRows, SqliteWriter, WriterSql};
use super::{activities, agent_names, outbox, progress, statements};
use crate::forward::Routing;
use crate::metrics::Metrics;
use crate::xapi::formats::format_timestamp;
use crate::xapi::same::same_statement;
use crate::xapi::statement::PreparedStatement;

/// Largest number of statements one transaction takes before it commits.
const MAX_GROUP_STATEMENTS: usize = 5_000;
/// Requests that may wait for the writer before senders are held back.
const QUEUE_DEPTH: usize = 4_096;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A statement of the request has the id of a different stored statement.
    #[error("statement {0} already exists with different content")]
    Conflict(String),
    #[error("the statement writer has stopped")]
    Closed,
    #[error("storing statements failed")]
    Storage(#[source] anyhow::Error),
}

struct Job {
    statements: Vec<PreparedStatement>,
    reply: oneshot::Sender<Answer>,
}

/// The outcome, and the statements given back: freeing their JSON trees is
/// the request's worker's work, not the writer's (it took a tenth of the
/// writer's time).
type Answer = (Result<(), WriteError>, Vec<PreparedStatement>);

/// Handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    in_flight: Arc<AtomicI64>,
    /// The last `seq` this writer committed (0 before its first commit);
    /// it changes after every commit that stored statements, and its sender
    /// is gone once the writer stopped.
    committed: watch::Receiver<i64>,
    /// How far learner progress counts (`progress_fold.rs`).
    counted: watch::Receiver<i64>,
    /// A reader of progress wants the fold written now.
    flush_wanted: mpsc::Sender<()>,
    index: FilterIndex,
}

/// No commit is under way.
const IDLE: i64 = i64::MAX;

impl Writer {
    /// Starts the writer on `db`. For a SQLite file it runs on a thread of
    /// its own with a connection of its own (`writer_sql.rs` says why); on
    /// PostgreSQL and in-memory SQLite it is a task using `db`'s pool.
    /// `routing` decides which statements are forwarded; `keep_progress`
    /// whether each commit counts its statements into learner progress.
    pub async fn spawn(
        db: DatabaseConnection,
        routing: Arc<Routing>,
        metrics: Arc<Metrics>,
        keep_progress: bool,
    ) -> anyhow::Result<(Writer, WriterHandle)> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let (stop, stopped) = oneshot::channel();
        let (done, finished) = oneshot::channel();
        let in_flight = Arc::new(AtomicI64::new(IDLE));
        let (commits, committed) = watch::channel(0);
        let (counts, counted) = watch::channel(0);
        let (flush_wanted, flush_requests) = mpsc::channel(1);
        let file = super::sqlite_file(&db).await?;
        let checkpointer = file.as_ref().map(|_| Checkpointer::spawn(&db));
        let index = FilterIndex::for_backend(db.get_database_backend());
        let derived = Derived { routing, index: index.clone() };
        let progress = keep_progress.then(|| Progress { fold: Fold::default(), counts, requests: flush_requests });
        let task =
            Task { checkpointer, derived, progress, metrics, rx, stop: stopped, in_flight: in_flight.clone(), commits };
        match file {
            Some(path) => {
                let sqlite = SqliteWriter::open(&path, super::sqlite_write_lock(&db))
                    .context("cannot open the statement writer's SQLite connection")?;
                let own = SoleWriter { sqlite, memo: WriteMemo::default() };
                own.load_index(&task.derived.index).await.context("cannot read the filter index")?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("cannot build the statement writer's runtime")?;
                std::thread::Builder::new()
                    .name("xlrs-writer".into())
                    .spawn(move || {
                        runtime.block_on(run(own, task));
                        let _ = done.send(());
                    })
                    .context("cannot start the statement writer's thread")?;
            }
            None => {
                db.load_index(&task.derived.index).await.context("cannot read the filter index")?;
                tokio::spawn(async move {
                    run(db, task).await;
                    let _ = done.send(());
                });
            }
        }
        Ok((Writer { tx, in_flight, committed, counted, flush_wanted, index }, WriterHandle { stop, finished }))
    }

    /// The filter index its commits keep, for reading statements.
    pub fn filter_index(&self) -> &FilterIndex {
        &self.index
    }

    /// Follows this writer's commits (the live stream's wake-up): setting a
    /// watch never waits for whoever reads it.
    pub fn committed(&self) -> watch::Receiver<i64> {
        self.committed.clone()
    }

    /// A time (µs) up to which every statement with an earlier `stored` is
    /// committed: now, unless a commit is under way, whose statements carry a
    /// `stored` no earlier than when it began.
    pub fn consistent_through_us(&self) -> i64 {
        let now = Utc::now().timestamp_micros();
        match self.in_flight.load(Ordering::Acquire) {
            IDLE => now,
            began => now.min(began - 1),
        }
    }

    /// Waits, at most `wait`, until learner progress counts every statement
    /// this writer had committed when called (asking it to write its fold
    /// now); false if the time ran out or the writer stopped.
    pub async fn progress_counted(&self, wait: Duration) -> bool {
        let target = *self.committed.borrow();
        let mut counted = self.counted.clone();
        if *counted.borrow() >= target {
            return true;
        }
        // One request pending is enough: the flush covers every waiter.
        let _ = self.flush_wanted.try_send(());
        matches!(tokio::time::timeout(wait, counted.wait_for(|c| *c >= target)).await, Ok(Ok(_)))
    }

    /// Stores the statements (all or none) and returns once they are
    /// committed. Their attachment content is stored before.
    pub async fn write(&self, statements: Vec<PreparedStatement>) -> Result<(), WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Job { statements, reply }).await.map_err(|_| WriteError::Closed)?;
        let (result, statements) = answer.await.map_err(|_| WriteError::Closed)?;
        drop(statements);
        result
    }
}

/// Stops the writer once what is queued is committed.
pub struct WriterHandle {
    stop: oneshot::Sender<()>,
    finished: oneshot::Receiver<()>,
}

impl WriterHandle {
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if self.finished.await.is_err() {
            tracing::error!("statement writer failed");
        }
    }
}

/// Where the writer's transactions go: the pool's (PostgreSQL, in-memory
/// SQLite), or the writer's own SQLite connection, on the writer's thread.
trait Store {
    /// `stage` in one transaction, committed.
    async fn transact<'a>(
        &mut self,
        derived: &'a Derived,
        fold: Option<&Fold>,
        batches: &[&'a [PreparedStatement]],
    ) -> anyhow::Result<Staged<'a>>;

    /// Reads the filter index's memory from the store, in a transaction.
    async fn load_index(&self, index: &FilterIndex) -> anyhow::Result<()>;

    /// Writes the fold (or counts from the log), in a transaction of its
    /// own; returns how far progress then counts.
    async fn flush_progress(&self, fold: &Fold) -> anyhow::Result<i64>;

    /// Where a fold can be written beside the groups' commits, not between
    /// them: on PostgreSQL, another connection of the pool. (A SQLite file
    /// has one writer at a time whatever the connection.)
    fn apart(&self) -> Option<DatabaseConnection> {
        None
    }
}

impl Store for DatabaseConnection {
    async fn transact<'a>(
        &mut self,
        derived: &'a Derived,
        fold: Option<&Fold>,
        batches: &[&'a [PreparedStatement]],
    ) -> anyhow::Result<Staged<'a>> {
        // Other nodes may write too: every row merged into is read.
        if self.get_database_backend() == DbBackend::Postgres {
            let txn = PgWriterTransaction::begin(self).await.context("begin")?;
            let staged = stage(&txn, derived, fold, None, batches).await?;
            txn.commit().await.context("commit")?;
            return Ok(staged);
        }
        let txn = super::begin_writer_turn(self).await?;
        let staged = stage(&*txn, derived, fold, None, batches).await?;
        txn.commit().await.context("commit")?;
        Ok(staged)
    }

    async fn flush_progress(&self, fold: &Fold) -> anyhow::Result<i64> {
        let txn = super::begin_writer_turn(self).await?;
        let through = fold.flush(&*txn, false).await?;
        txn.commit().await.context("commit")?;
        Ok(through)
    }

    fn apart(&self) -> Option<DatabaseConnection> {
        (self.get_database_backend() == DbBackend::Postgres).then(|| self.clone())
    }

    async fn load_index(&self, index: &FilterIndex) -> anyhow::Result<()> {
        let FilterIndex::Postings(postings) = index else {
            return Ok(());
        };
        let txn = super::begin_writer_turn(self).await?;
        postings.load(&*txn).await?;
        txn.commit().await.context("commit")?;
        Ok(())
    }
}

/// The writer's own connection to a SQLite file, the file's only writer,
/// and what it knows the file holds (`write_memo.rs`).
struct SoleWriter {
    sqlite: SqliteWriter,
    memo: WriteMemo,
}

impl Store for SoleWriter {
    async fn transact<'a>(
        &mut self,
        derived: &'a Derived,
        fold: Option<&Fold>,
        batches: &[&'a [PreparedStatement]],
    ) -> anyhow::Result<Staged<'a>> {
        let txn = self.sqlite.begin().await.context("begin")?;
        let mut staged = stage(&txn, derived, fold, Some(&self.memo), batches).await?;
        txn.commit().context("commit")?;
        self.memo.learn(std::mem::take(&mut staged.learned));
        Ok(staged)
    }

    async fn flush_progress(&self, fold: &Fold) -> anyhow::Result<i64> {
        let txn = self.sqlite.begin().await.context("begin")?;
        let through = fold.flush(&txn, false).await?;
        txn.commit().context("commit")?;
        Ok(through)
    }

    async fn load_index(&self, index: &FilterIndex) -> anyhow::Result<()> {
        let FilterIndex::Postings(postings) = index else {
            return Ok(());
        };
        let txn = self.sqlite.begin().await.context("begin")?;
        postings.load(&txn).await?;
        txn.commit().context("commit")?;
        Ok(())
    }
}

/// What a commit writes beside the statements and their keys.
struct Derived {
    /// Outbox rows (and the stream targets' feed).
    routing: Arc<Routing>,
    index: FilterIndex,
}

/// Learner progress, when it is kept: the fold of what was committed and
/// not counted yet, how far counting goes (for readers), and readers'
/// requests to count now.
struct Progress {
    fold: Fold,
    counts: watch::Sender<i64>,
    requests: mpsc::Receiver<()>,
}

impl Progress {
    /// Writes the fold in a transaction of its own.
    async fn flush(&mut self, store: &impl Store, committed: i64) {
        match store.flush_progress(&self.fold).await {
            Ok(through) => {
                self.fold.flushed(through, committed);
                self.counts.send_replace(through);
            }
            Err(e) => {
                tracing::warn!(error = ?e, "cannot count learner progress; trying again shortly");
                self.fold.failed();
            }
        }
    }

    /// Hands the fold to a task that writes it on `db` while the writer
    /// goes on committing groups into a new fold (`progress_fold.rs`);
    /// `committed` is the writer's last commit, which the fold reaches.
    fn flush_apart(&mut self, db: DatabaseConnection, committed: i64) -> Apart {
        let fold = std::mem::take(&mut self.fold);
        let task = tokio::spawn(async move { progress_fold::flush_apart(&db, &fold).await });
        Apart { task, last: committed }
    }

    /// A flush apart of everything through `last` ended: readers learn how
    /// far it counted; if not that far (it read part of the log, or
    /// failed), what came after is counted from the log.
    fn flushed_apart(&mut self, result: anyhow::Result<i64>, last: i64) {
        match result {
            Ok(through) => {
                self.publish(through);
                if through < last {
                    self.fold.lost(Duration::ZERO);
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e, "cannot count learner progress; trying again shortly");
                self.fold.lost(progress_fold::MAX_LAG);
            }
        }
    }

    /// Readers learn that counting reached `through`; a flush apart that
    /// ends after a later count never takes it back.
    fn publish(&self, through: i64) {
        self.counts.send_if_modified(|c| {
            let later = through > *c;
            *c = (*c).max(through);
            later
        });
    }

    /// After a group's commit: its statements join the fold (`flushed`: the
    /// group's transaction counted everything before them first).
    fn committed(&mut self, staged: &Staged) {
        if let Some(through) = staged.flushed {
            self.fold.flushed(through, through);
            self.publish(through);
        }
        self.fold.add(&staged.rows, staged.stored_us, &staged.voided);
    }
}

/// A fold being written beside the groups (`Store::apart`), and the
/// writer's last commit when it began, which it is to count through.
struct Apart {
    task: tokio::task::JoinHandle<anyhow::Result<i64>>,
    last: i64,
}

/// The flush apart ended with `result`: it is gone, and the fold learns how.
fn ended_apart(apart: &mut Option<Apart>, progress: &mut Option<Progress>, result: anyhow::Result<i64>) {
    let last = apart.take().map_or(0, |a| a.last);
    if let Some(p) = progress {
        p.flushed_apart(result, last);
    }
}

/// The end of the flush apart, if one runs; never ready otherwise.
async fn apart_done(apart: &mut Option<Apart>) -> anyhow::Result<i64> {
    match apart {
        Some(a) => (&mut a.task).await.unwrap_or_else(|e| Err(anyhow::anyhow!("progress flush task: {e}"))),
        None => std::future::pending().await,
    }
}

/// What the writer's loop runs with.
struct Task {
    /// A SQLite file's checkpoints.
    checkpointer: Option<Checkpointer>,
    derived: Derived,
    progress: Option<Progress>,
    metrics: Arc<Metrics>,
    rx: mpsc::Receiver<Job>,
    stop: oneshot::Receiver<()>,
    in_flight: Arc<AtomicI64>,
    commits: watch::Sender<i64>,
}

async fn run(mut store: impl Store, task: Task) {
    let Task { checkpointer, derived, mut progress, metrics, mut rx, mut stop, in_flight, commits } = task;
    if let Some(p) = &mut progress {
        // Readers learn how far counting goes before the first commit.
        p.flush(&store, 0).await;
    }
    let mut stopping = false;
    let (mut apart, mut wanted) = (None::<Apart>, false);
    loop {
        // One flush apart at a time; the next when it ends.
        let deadline = progress.as_ref().filter(|_| apart.is_none()).and_then(|p| p.fold.deadline());
        let first = tokio::select! {
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
            _ = &mut stop, if !stopping => {
                // No new requests; the queued ones still commit.
                rx.close();
                stopping = true;
                continue;
            }
            // The fold's lag runs out, or a reader wants it counted now.
            _ = sleep_until(deadline), if deadline.is_some() => {
                flush_when_due(&store, &mut progress, &mut apart, &commits, true).await;
                continue;
            }
            Some(()) = recv_request(&mut progress) => {
                // A flush apart under way may have begun before what the
                // reader waits for: another follows it.
                wanted = apart.is_some();
                flush_when_due(&store, &mut progress, &mut apart, &commits, true).await;
                continue;
            }
            result = apart_done(&mut apart) => {
                ended_apart(&mut apart, &mut progress, result);
                flush_when_due(&store, &mut progress, &mut apart, &commits, wanted).await;
                wanted = false;
                continue;
            }
        };
        let mut count = first.statements.len();
        let mut group = vec![first];
        // Whatever queued while the last commit ran joins this one.
        while count < MAX_GROUP_STATEMENTS {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.statements.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        // Published before `stored` is chosen, so it is never later than it.
        in_flight.store(Utc::now().timestamp_micros(), Ordering::Release);
        let replies = commit_group(&mut store, &derived, &mut progress, &metrics, &commits, group).await;
        // Idle before anyone hears of the commit: a client that stored a
        // statement and then asks (an export's fixed end, Consistent-Through)
        // must get a time that covers it.
        in_flight.store(IDLE, Ordering::Release);
        for (job, result) in replies {
            let _ = job.reply.send((result, job.statements));
        }
        if let Some(c) = &checkpointer {
            c.after_commit().await;
        }
        flush_when_due(&store, &mut progress, &mut apart, &commits, false).await;
    }
    // A clean stop leaves nothing for the next start to count.
    if apart.is_some() {
        let result = apart_done(&mut apart).await;
        ended_apart(&mut apart, &mut progress, result);
    }
    flush_progress(&store, &mut progress, &commits).await;
    if let Some(c) = checkpointer {
        c.stop().await;
    }
}

/// Writes the fold when it is due (or `now`), apart where the store can
/// (unless a flush apart still runs: the next begins when it ends), else
/// between the groups.
async fn flush_when_due(
    store: &impl Store,
    progress: &mut Option<Progress>,
    apart: &mut Option<Apart>,
    commits: &watch::Sender<i64>,
    now: bool,
) {
    let Some(p) = progress else { return };
    if apart.is_some() || !(now || p.fold.due()) {
        return;
    }
    match store.apart() {
        Some(db) => *apart = Some(p.flush_apart(db, *commits.borrow())),
        None => flush_progress(store, progress, commits).await,
    }
}

/// Writes the fold's sums, when progress is kept, through the last commit.
async fn flush_progress(store: &impl Store, progress: &mut Option<Progress>, commits: &watch::Sender<i64>) {
    if let Some(p) = progress {
        let committed = *commits.borrow();
        p.flush(store, committed).await;
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d.into()).await;
    }
}

/// A reader's request to count now; never ready when progress is not kept.
async fn recv_request(progress: &mut Option<Progress>) -> Option<()> {
    match progress {
        Some(p) => p.requests.recv().await,
        None => std::future::pending().await,
    }
}

/// Commits the group; the answer to each request, to send once the commit is over.
async fn commit_group(
    store: &mut impl Store,
    derived: &Derived,
    progress: &mut Option<Progress>,
    metrics: &Metrics,
    commits: &watch::Sender<i64>,
    group: Vec<Job>,
) -> Vec<Reply> {
    let batches: Vec<&[PreparedStatement]> = group.iter().map(|j| j.statements.as_slice()).collect();
    match write_group(store, derived, progress, &batches, metrics, commits).await {
        Ok(results) => group.into_iter().zip(results).collect(),
        Err(e) if group.len() > 1 => {
            // One request may have poisoned the group: give each its own transaction.
            tracing::warn!(error = ?e, requests = group.len(), "group commit failed; retrying requests one by one");
            let mut replies = Vec::with_capacity(group.len());
            for job in group {
                let result = match write_group(store, derived, progress, &[&job.statements], metrics, commits).await {
                    Ok(mut r) => r.pop().unwrap_or(Err(WriteError::Closed)),
                    Err(e) => Err(WriteError::Storage(e)),
                };
                replies.push((job, result));
            }
            replies
        }
        Err(e) => group.into_iter().map(|job| (job, Err(WriteError::Storage(anyhow::anyhow!("{e:#}"))))).collect(),
    }
}

type Reply = (Job, Result<(), WriteError>);

/// One transaction for all `batches`; a batch with a conflicting id is left
/// out (and answered 409) without failing the others.
async fn write_group(
    store: &mut impl Store,
    derived: &Derived,
    progress: &mut Option<Progress>,
    batches: &[&[PreparedStatement]],
    metrics: &Metrics,
    commits: &watch::Sender<i64>,
) -> anyhow::Result<Vec<Result<(), WriteError>>> {
    let staged = match store.transact(derived, progress.as_ref().map(|p| &p.fold), batches).await {
        Ok(staged) => staged,
        Err(e) => {
            // The index's memory took the group's keys before the commit.
            if let Err(reload) = store.load_index(&derived.index).await {
                tracing::error!(error = ?reload, "cannot reread the filter index after a failed commit");
            }
            return Err(e);
        }
    };
    if let FilterIndex::Postings(postings) = &derived.index {
        postings.committed();
    }
    if let Some(p) = progress {
        p.committed(&staged);
    }
    let routing = &derived.routing;
    let Staged { results, rows, bodies, stored_us, forward, .. } = staged;
    metrics.statements_stored.inc_by(rows.len() as u64);
    metrics.group_statements.observe(rows.len() as f64);
    if let Some((last_seq, _)) = rows.last() {
        commits.send_replace(*last_seq);
    }
    if let Some(feed) = routing.feed() {
        let committed =
            rows.iter().zip(bodies).map(|((seq, s), body)| Streamed { seq: *seq, id: s.id.clone(), stored_us, body });
        feed.push(committed);
    }
    if !rows.is_empty() {
        routing.wake_streams();
    }
    routing.wake(&forward);
    Ok(results)
}

/// What a group's transaction wrote, for what follows its commit.
struct Staged<'a> {
    results: Vec<Result<(), WriteError>>,
    rows: Vec<(i64, &'a PreparedStatement)>,
    bodies: Vec<String>,
    stored_us: i64,
    forward: Vec<outbox::NewRow<'a>>,
    /// The `seq`s of statements it voided.
    voided: Vec<i64>,
    /// How far progress counts, when the transaction counted it.
    flushed: Option<i64>,
    /// What the transaction read or wrote of the rows it merged into.
    learned: Learned,
}

/// Everything a group writes, inside its transaction.
async fn stage<'a>(
    txn: &impl WriterSql,
    derived: &'a Derived,
    fold: Option<&Fold>,
    memo: Option<&WriteMemo>,
    batches: &[&'a [PreparedStatement]],
) -> anyhow::Result<Staged<'a>> {
    let routing = &derived.routing;
    let existing = existing_bodies(txn, batches).await?;
    let (accepted, results) = admit(batches, &existing);

    let (last_seq, last_stored) = statements::last_stored(txn).await.context("last statement")?;
    let stored_us = Utc::now().timestamp_micros().max(last_stored);
    let stored = format_timestamp(chrono::DateTime::from_timestamp_micros(stored_us).unwrap_or_else(Utc::now));
    let rows: Vec<(i64, &PreparedStatement)> =
        accepted.iter().enumerate().map(|(i, s)| (last_seq + 1 + i as i64, *s)).collect();
    // Forwarding is decided with the statement, in its transaction: a
    // stored statement is never without its outbox rows.
    let forward = routing.rows(&rows);
    let bodies: Vec<String> = rows.iter().map(|(_, s)| s.body(&stored)).collect();
    let (mut voided, mut flushed, mut learned) = (Vec::new(), None, Learned::default());
    if !rows.is_empty() {
        // A voided statement must be counted before it is taken out; the
        // fold cannot take one out. Everything stored before is counted
        // first (voiding is rare), under this transaction's lock.
        if let Some(fold) = fold
            && rows.iter().any(|(_, s)| s.voiding)
        {
            flushed = Some(fold.flush(txn, true).await?);
        }
        insert_statements(txn, &rows, &bodies, stored_us).await?;
        match &derived.index {
            FilterIndex::KeyRows => insert_keys(txn, &rows).await?,
            FilterIndex::Postings(postings) => add_postings(txn, postings, &rows).await?,
        }
        learned.definitions = activities::merge_in(txn, &accepted, memo).await?;
        learned.names = agent_names::merge_in(txn, &accepted, memo).await?;
        voided = resolve_references(txn, &derived.index, &rows).await?;
        if fold.is_some() {
            progress::recount(txn, &derived.index, &voided).await?;
        }
        outbox::enqueue(txn, &forward, stored_us).await?;
    }
    Ok(Staged { results, rows, bodies, stored_us, forward, voided, flushed, learned })
}

/// Bodies of already stored statements whose ids the batches use (ids the
/// LRS generated cannot collide and are not looked up).
async fn existing_bodies(
    txn: &impl WriterSql,
    batches: &[&[PreparedStatement]],
) -> anyhow::Result<HashMap<String, Json>> {
    let ids: Vec<&str> =
        batches.iter().flat_map(|b| b.iter()).filter(|s| !s.id_generated).map(|s| s.id.as_str()).collect();
    let mut found = HashMap::new();
    let rows: Vec<(String, String)> = sql::select_in_writer_turn(txn, "SELECT id, body FROM statement WHERE id", &ids)
        .await
        .context("existing ids")?;
    for (id, body) in rows {
        found.insert(id, serde_json::from_str(&body).context("stored body is JSON")?);
    }
    Ok(found)
}

/// Decides, batch by batch, which statements are new, which restate a stored
/// one (skipped), and which batches conflict (refused whole).
fn admit<'a>(
    batches: &[&'a [PreparedStatement]],
    existing: &HashMap<String, Json>,
) -> (Vec<&'a PreparedStatement>, Vec<Result<(), WriteError>>) {
    let mut accepted: Vec<&PreparedStatement> = Vec::new();
    let mut in_group: HashMap<&str, &Json> = HashMap::new();
    let mut results = Vec::with_capacity(batches.len());
    for batch in batches {
        let mut fresh = Vec::new();
        let mut conflict = None;
        for s in batch.iter() {
            let earlier = existing.get(&s.id).or_else(|| in_group.get(s.id.as_str()).copied());
            match earlier {
                Some(previous) if same_statement(&s.statement, previous) => {}
                Some(_) => {
                    conflict = Some(s.id.clone());
                    break;
                }
                None => fresh.push(s),
            }
        }
        match conflict {
            Some(id) => results.push(Err(WriteError::Conflict(id))),
            None => {
                results.push(Ok(()));
                for s in &fresh {
                    in_group.insert(s.id.as_str(), &s.statement);
                }
                accepted.extend(fresh);
            }
        }
    }
    (accepted, results)
}

async fn insert_statements(
    txn: &impl WriterSql,
    rows: &[(i64, &PreparedStatement)],
    bodies: &[String],
    stored_us: i64,
) -> anyhow::Result<()> {
    let backend = txn.backend();
    if backend == DbBackend::Postgres {
        return insert_statements_copy(txn, rows, bodies, stored_us).await;
    }
    const COLS: usize = 8;
    let rows: Vec<(&(i64, &PreparedStatement), &String)> = rows.iter().zip(bodies).collect();
    for chunk in sql::chunks(&rows) {
        let mut values = Vec::with_capacity(chunk.len() * COLS);
        for ((seq, s), body) in chunk {
            values.push(Value::from(*seq));
            values.push(Value::from(s.id.clone()));
            values.push(Value::from(stored_us));
            values.push(Value::from(s.voiding));
            values.push(Value::from(s.object_ref.clone()));
            values.push(Value::from(key_list(s.keys.iter().filter(|k| k.heritable).map(|k| k.key))));
            values.push(Value::from(encode_keys(s.keys.iter().map(|k| k.key))));
            values.push(Value::from((*body).clone()));
        }
        let sql_text = format!(
            "INSERT INTO statement (seq, id, stored_us, voiding, object_ref, key_list, filter_keys, body) VALUES {}",
            sql::row_placeholders(backend, chunk.len(), COLS)
        );
        txn.run(sql::stmt(backend, sql_text, values)).await.context("insert statements")?;
    }
    Ok(())
}

/// PostgreSQL: all the rows in one binary COPY (`pg_writer.rs` says why).
async fn insert_statements_copy(
    txn: &impl WriterSql,
    rows: &[(i64, &PreparedStatement)],
    bodies: &[String],
    stored_us: i64,
) -> anyhow::Result<()> {
    let size: usize = bodies.iter().map(|b| b.len() + 200).sum();
    let mut copy = CopyRows::new(size);
    for ((seq, s), body) in rows.iter().zip(bodies) {
        let key_list = key_list(s.keys.iter().filter(|k| k.heritable).map(|k| k.key));
        copy.row(7).int8(*seq).text(Some(&s.id)).int8(stored_us).bool(s.voiding);
        copy.text(s.object_ref.as_deref()).text(Some(&key_list)).text(Some(body));
    }
    let sql_text =
        "COPY statement (seq, id, stored_us, voiding, object_ref, key_list, body) FROM STDIN (FORMAT binary)";
    copy_in(txn, sql_text, copy).await.context("insert statements")
}

/// Sends `copy`, which only the writer's own PostgreSQL transaction can.
async fn copy_in(txn: &impl WriterSql, sql_text: &str, copy: CopyRows) -> anyhow::Result<()> {
    match txn.copy_in(sql_text, copy).await? {
        Some(_) => Ok(()),
        None => anyhow::bail!("COPY needs the writer's PostgreSQL transaction"),
    }
}

async fn insert_keys(txn: &impl WriterSql, rows: &[(i64, &PreparedStatement)]) -> anyhow::Result<()> {
    let count: usize = rows.iter().map(|(_, s)| s.keys.len()).sum();
    if count == 0 {
        return Ok(());
    }
    // New seqs cannot conflict (a statement's keys are distinct): no ON
    // CONFLICT, which on PostgreSQL made each row a speculative insertion
    // and took most of a group's time.
    let mut copy = CopyRows::new(count * 26);
    for (seq, s) in rows {
        for key in &s.keys {
            copy.row(2).int8(key.key).int8(*seq);
        }
    }
    copy_in(txn, "COPY statement_key (key, seq) FROM STDIN (FORMAT binary)", copy).await.context("insert keys")
}

async fn add_postings(
    txn: &impl WriterSql,
    postings: &Postings,
    rows: &[(i64, &PreparedStatement)],
) -> anyhow::Result<()> {
    let keys: Vec<Vec<i64>> = rows.iter().map(|(_, s)| s.keys.iter().map(|k| k.key).collect()).collect();
    let rows: Vec<(i64, &[i64])> = rows.iter().zip(&keys).map(|((seq, _), k)| (*seq, k.as_slice())).collect();
    postings.add(txn, &rows).await
}

/// All `(key, seq)` rows in one statement of column arrays (PostgreSQL;
/// chunks of 64 rows were a round trip each: 63 for a group of 400
/// statements). `skip_existing` for keys a referrer inherits, some of which
/// it may have.
async fn insert_key_pairs(txn: &impl WriterSql, pairs: &[(i64, i64)], skip_existing: bool) -> anyhow::Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let sql_text = format!(
        "INSERT INTO statement_key (key, seq) SELECT * FROM unnest($1::bigint[], $2::bigint[]){}",
        if skip_existing { " ON CONFLICT DO NOTHING" } else { "" }
    );
    let values = vec![
        Value::from(pairs.iter().map(|(k, _)| *k).collect::<Vec<i64>>()),
        Value::from(pairs.iter().map(|(_, s)| *s).collect::<Vec<i64>>()),
    ];
    txn.run(sql::stmt(DbBackend::Postgres, sql_text, values)).await.context("insert keys")?;
    Ok(())
}

fn key_list(keys: impl Iterator<Item = i64>) -> String {
    keys.map(|k| k.to_string()).collect::<Vec<_>>().join(",")
}

fn parse_key_list(text: &str) -> Vec<i64> {
    text.split(',').filter_map(|k| k.parse().ok()).collect()
}

/// A statement whose object is a StatementRef.
struct Referrer {
    seq: i64,
    id: String,
    voiding: bool,
    target: String,
}

/// Applies the StatementRef rules for the new rows, in both directions: a new
/// statement referencing a stored one, and stored statements referencing a
/// new one (they arrived first). A referrer takes over its target's filter
/// keys, transitively; a voiding referrer voids its target unless the target
/// is itself a voiding statement. Returns the `seq`s of the statements voided.
async fn resolve_references(
    txn: &impl WriterSql,
    index: &FilterIndex,
    rows: &[(i64, &PreparedStatement)],
) -> anyhow::Result<Vec<i64>> {
    let backend = txn.backend();
    let mut work: Vec<Referrer> = rows
        .iter()
        .filter_map(|(seq, s)| {
            s.object_ref.as_ref().map(|t| Referrer {
                seq: *seq,
                id: s.id.clone(),
                voiding: s.voiding,
                target: t.clone(),
            })
        })
        .collect();
    // No statement stored before can name an id the LRS has just made up.
    let new_ids: Vec<&str> = rows.iter().filter(|(_, s)| !s.id_generated).map(|(_, s)| s.id.as_str()).collect();
    work.extend(referrers_of(txn, &new_ids).await?);
    let mut done: HashSet<(i64, String)> = HashSet::new();
    let mut voided = Vec::new();
    while let Some(r) = work.pop() {
        if !done.insert((r.seq, r.target.clone())) {
            continue;
        }
        let Some((target_seq, target_keys, target_voiding)) = statement_by_id(txn, &r.target).await? else {
            continue;
        };
        if r.voiding && !target_voiding {
            txn.run(sql::stmt(
                backend,
                format!("UPDATE statement SET voided = TRUE WHERE seq = {}", sql::p(backend, 1)),
                vec![Value::from(target_seq)],
            ))
            .await
            .context("void")?;
            voided.push(target_seq);
        }
        if !inherit_keys(txn, index, &r, target_keys).await? {
            continue;
        }
        // What this referrer gained, statements referencing it gain too.
        work.extend(referrers_of(txn, &[r.id.as_str()]).await?);
    }
    Ok(voided)
}

/// Gives the referrer the target's keys it lacks; true when it gained any.
async fn inherit_keys(
    txn: &impl WriterSql,
    index: &FilterIndex,
    r: &Referrer,
    target_keys: Vec<i64>,
) -> anyhow::Result<bool> {
    let Some((_, own_keys, _)) = statement_by_id(txn, &r.id).await? else {
        return Ok(false);
    };
    let missing: Vec<i64> = target_keys.into_iter().filter(|k| !own_keys.contains(k)).collect();
    if missing.is_empty() {
        return Ok(false);
    }
    match index {
        FilterIndex::KeyRows => {
            let pairs: Vec<(i64, i64)> = missing.iter().map(|k| (*k, r.seq)).collect();
            insert_key_pairs(txn, &pairs, true).await?;
        }
        FilterIndex::Postings(postings) => {
            postings.add_keys(txn, r.seq, &missing).await?;
            add_filter_keys(txn, r.seq, &missing).await?;
        }
    }
    let all = key_list(own_keys.into_iter().chain(missing));
    let backend = txn.backend();
    txn.run(sql::stmt(
        backend,
        format!("UPDATE statement SET key_list = {} WHERE seq = {}", sql::p(backend, 1), sql::p(backend, 2)),
        vec![Value::from(all), Value::from(r.seq)],
    ))
    .await
    .context("update key list")?;
    Ok(true)
}

/// Appends `keys` to the `filter_keys` of the statement at `seq` (SQLite).
async fn add_filter_keys(txn: &impl WriterSql, seq: i64, keys: &[i64]) -> anyhow::Result<()> {
    let select = "SELECT filter_keys FROM statement WHERE seq = ?";
    let rows: Vec<(Vec<u8>,)> =
        txn.rows(sql::stmt(DbBackend::Sqlite, select, vec![seq.into()])).await.context("filter keys")?;
    let mut all = rows.into_iter().next().map(|(k,)| k).unwrap_or_default();
    all.extend(encode_keys(keys.iter().copied()));
    let update = "UPDATE statement SET filter_keys = ? WHERE seq = ?";
    txn.run(sql::stmt(DbBackend::Sqlite, update, vec![all.into(), seq.into()])).await.context("update filter keys")?;
    Ok(())
}

async fn referrers_of(txn: &impl WriterSql, ids: &[&str]) -> anyhow::Result<Vec<Referrer>> {
    let select = "SELECT seq, id, voiding, object_ref FROM statement WHERE object_ref";
    let rows: Vec<(i64, String, bool, String)> =
        sql::select_in_writer_turn(txn, select, ids).await.context("referrers")?;
    Ok(rows.into_iter().map(|(seq, id, voiding, target)| Referrer { seq, id, voiding, target }).collect())
}

async fn statement_by_id(txn: &impl WriterSql, id: &str) -> anyhow::Result<Option<(i64, Vec<i64>, bool)>> {
    let backend = txn.backend();
    let rows: Vec<(i64, String, bool)> = txn
        .rows(sql::stmt(
            backend,
            format!("SELECT seq, key_list, voiding FROM statement WHERE id = {}", sql::p(backend, 1)),
            vec![Value::from(id.to_owned())],
        ))
        .await
        .context("statement by id")?;
    Ok(rows.into_iter().next().map(|(seq, keys, voiding)| (seq, parse_key_list(&keys), voiding)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistent_through_stops_before_an_in_flight_commit() {
        let (tx, _rx) = mpsc::channel(1);
        let writer = Writer {
            tx,
            in_flight: Arc::new(AtomicI64::new(IDLE)),
            committed: watch::channel(0).1,
            counted: watch::channel(0).1,
            flush_wanted: mpsc::channel(1).0,
            index: FilterIndex::KeyRows,
        };
        let before = Utc::now().timestamp_micros();
        assert!(writer.consistent_through_us() >= before);
        writer.in_flight.store(before - 5_000_000, Ordering::Release);
        assert_eq!(writer.consistent_through_us(), before - 5_000_001);
    }

    async fn store_one_and_count(url: &str) -> (Option<std::path::PathBuf>, i64) {
        use crate::config::DatabaseArgs;
        use crate::xapi::XapiVersion;
        use crate::xapi::statement::{StoreContext, prepare};
        let db = crate::store::connect(&DatabaseArgs { url: url.to_owned(), pool_size: 2 }).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        let file = crate::store::sqlite_file(&db).await.unwrap();
        let routing = Arc::new(Routing::new(&crate::forward::ForwardingConfig::default()));
        let (writer, handle) =
            Writer::spawn(db.clone(), routing, Arc::new(Metrics::new().unwrap()), true).await.unwrap();
        let authority = serde_json::json!({"objectType": "Agent", "account": {"homePage": "http://lrs", "name": "t"}});
        let ctx = StoreContext {
            version: XapiVersion::V1_0,
            authority: &authority,
            credential_key: "t",
            keep_progress: true,
        };
        let statement = serde_json::json!({
            "actor": {"mbox": "mailto:a@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
            "object": {"id": "http://example.com/a"}
        });
        writer.write(vec![prepare(statement, None, &ctx).unwrap()]).await.unwrap();
        handle.shutdown().await;
        let rows: Vec<(i64,)> =
            db.rows(sql::stmt(DbBackend::Sqlite, "SELECT count(*) FROM statement", vec![])).await.unwrap();
        (file, rows[0].0)
    }

    /// An in-memory database lives in the pool's one connection: the writer
    /// must use it, not a connection of its own (which would open another,
    /// empty database), and nothing may panic telling the two apart.
    #[tokio::test]
    async fn the_writer_stores_in_an_in_memory_database_and_in_a_file() {
        assert_eq!(store_one_and_count("sqlite::memory:").await, (None, 1));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let (file, count) = store_one_and_count(&format!("sqlite://{}", path.display())).await;
        assert_eq!(count, 1);
        assert_eq!(file.map(|f| f.canonicalize().unwrap()), Some(path.canonicalize().unwrap()));
    }

    /// The writer's turn asks for many keys in one statement (`= ANY`) and
    /// finds each row, and PostgreSQL compresses new bodies with lz4 where
    /// the server has it (m0015).
    #[tokio::test]
    async fn the_writer_turn_finds_rows_by_many_keys_and_bodies_compress_with_lz4() {
        for db in crate::store::test_databases::each("writer_turn").await {
            let txn = crate::store::begin_writer_turn(&db).await.unwrap();
            let ids: Vec<String> = (0..150).map(|i| format!("0000{i:04}-0000-4000-8000-000000000000")).collect();
            for (seq, id) in ids.iter().enumerate().filter(|(seq, _)| seq % 3 == 0) {
                let insert = format!(
                    "INSERT INTO statement (seq, id, stored_us, key_list, body) VALUES ({seq}, '{id}', 0, '', '{{}}')"
                );
                (*txn).run(sql::stmt(db.get_database_backend(), insert, vec![])).await.unwrap();
            }
            let found: Vec<(String, String)> =
                sql::select_in_writer_turn(&*txn, "SELECT id, body FROM statement WHERE id", &ids).await.unwrap();
            let mut found: Vec<String> = found.into_iter().map(|(id, _)| id).collect();
            found.sort();
            assert_eq!(found, ids.iter().step_by(3).cloned().collect::<Vec<_>>());
            txn.rollback().await.unwrap();
            if db.get_database_backend() == DbBackend::Postgres {
                let lz4 = "SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' \
                     AND 'lz4' = ANY(enumvals)";
                let method = "SELECT count(*) FROM pg_attribute WHERE attrelid = 'statement'::regclass \
                     AND attname = 'body' AND attcompression = 'l'";
                let has: Vec<(i64,)> = db.rows(sql::stmt(DbBackend::Postgres, lz4, vec![])).await.unwrap();
                let uses: Vec<(i64,)> = db.rows(sql::stmt(DbBackend::Postgres, method, vec![])).await.unwrap();
                assert_eq!(uses[0].0, has[0].0);
            }
        }
    }

    #[test]
    fn key_lists_round_trip() {
        let keys = vec![-5_i64, 0, i64::MAX, i64::MIN];
        assert_eq!(parse_key_list(&key_list(keys.iter().copied())), keys);
        assert!(parse_key_list("").is_empty());
    }
}
