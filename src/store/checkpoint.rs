//! SQLite WAL checkpoints, mostly off the statement writer's path.
//!
//! By default SQLite checkpoints in the commit that takes the WAL past 1,000
//! pages: the statement writer would copy every page into the database file
//! and wait for its fsync while every request of its group waits too. The
//! connections are opened with `wal_autocheckpoint = 0` instead, and a task
//! of the writer's checkpoints (PASSIVE: it never blocks the writer or
//! readers) a few times a second, so the copying runs beside the commits.
//!
//! A checkpoint beside a busy writer never finishes, though: by the time it
//! has copied the WAL, the writer has appended to it, so the WAL can never
//! start over and grows without end. When it has grown past `RESTART_FRAMES`,
//! the task asks the writer to checkpoint right after its next commit. Only
//! the frames since the task's last checkpoint are left to copy then, and
//! the writer's next transaction starts the WAL over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::sync::oneshot;

/// How often the task copies the WAL into the database file.
const INTERVAL: Duration = Duration::from_millis(250);
/// WAL frames (pages, about 4 KiB each) past which the writer is asked to
/// let the WAL start over: 32 MiB.
const RESTART_FRAMES: i64 = 8_192;

pub(super) struct Checkpointer {
    /// A connection of the pool, for the writer's own checkpoints.
    db: DatabaseConnection,
    stop: oneshot::Sender<()>,
    join: tokio::task::JoinHandle<()>,
    restart: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts checkpointing `db`, a SQLite file: the caller knows (an
    /// in-memory database has no WAL, and its one connection is better left
    /// to the requests than taken four times a second for nothing).
    pub(super) fn spawn(db: &DatabaseConnection) -> Checkpointer {
        Checkpointer::spawn_with(db, RESTART_FRAMES)
    }

    fn spawn_with(db: &DatabaseConnection, restart_frames: i64) -> Checkpointer {
        let (stop, mut stopped) = oneshot::channel();
        let restart = Arc::new(AtomicBool::new(false));
        let (task_db, wanted) = (db.clone(), restart.clone());
        let join = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(INTERVAL) => {
                        if checkpoint(&task_db).await.is_some_and(|frames| frames > restart_frames) {
                            wanted.store(true, Ordering::Relaxed);
                        }
                    }
                    _ = &mut stopped => break,
                }
            }
        });
        Checkpointer { db: db.clone(), stop, join, restart }
    }

    /// Called by the writer after each commit: checkpoints when the WAL
    /// should start over.
    pub(super) async fn after_commit(&self) {
        if self.restart.swap(false, Ordering::Relaxed) {
            checkpoint(&self.db).await;
        }
    }

    /// Stops the task, after a last checkpoint of everything committed.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.join.await;
        checkpoint(&self.db).await;
    }
}

/// A PASSIVE checkpoint; the WAL's size in frames after it.
async fn checkpoint(db: &DatabaseConnection) -> Option<i64> {
    // All rows read: a statement left before its end would hold a read
    // transaction open, and the WAL could not start over.
    let sql = Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_checkpoint(PASSIVE)");
    match db.query_all_raw(sql).await {
        Ok(rows) => rows.first().and_then(|r| r.try_get_by_index::<i64>(1).ok()),
        Err(e) => {
            // The next one retries; a WAL that grows meanwhile loses nothing.
            tracing::warn!(error = %e, "SQLite checkpoint failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseArgs;

    async fn frames_in_wal(db: &DatabaseConnection) -> i64 {
        checkpoint(db).await.expect("a checkpoint answers")
    }

    /// Commits one after another, as a busy writer does, must not make the
    /// WAL grow without end: the writer's checkpoint lets it start over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_a_writer_that_never_pauses() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("wal.db").display());
        let db = crate::store::connect(&DatabaseArgs { url, pool_size: 4 }).await.unwrap();
        let run = |sql: &str| db.execute_raw(Statement::from_string(DbBackend::Sqlite, sql.to_owned()));
        run("CREATE TABLE t (x BLOB)").await.unwrap();
        let checkpointer = Checkpointer::spawn_with(&db, 200);
        let (mut written, mut largest) = (0, 0);
        let began = std::time::Instant::now();
        while began.elapsed() < Duration::from_secs(3) {
            // 20 rows of 4 KiB: at least 20 frames per commit.
            run("INSERT INTO t SELECT randomblob(4096) FROM (SELECT 1 UNION ALL SELECT 2) a, \
                 (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5) b, \
                 (SELECT 1 UNION ALL SELECT 2) c")
            .await
            .unwrap();
            written += 20;
            checkpointer.after_commit().await;
        }
        for _ in 0..3 {
            largest = largest.max(frames_in_wal(&db).await);
        }
        checkpointer.stop().await;
        assert!(written > 5_000, "only {written} frames written: the test proves nothing");
        // Between two starts over it grows by what a check interval brings.
        assert!(
            largest < written / 5,
            "the WAL holds {largest} frames of the {written} written: it never started over"
        );
    }
}
