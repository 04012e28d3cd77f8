//! The statements this node committed last, in `seq` order, kept in memory
//! for readers that follow the statement table (stream targets): while what
//! follows a reader's cursor is here, it needs no database read. Only a run
//! of consecutive `seq`s from the cursor on is handed out, so a statement
//! another node committed in between (not here) sends the reader to the
//! database, never past it.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::forward_stream::Streamed;

/// How many statements are kept (about a kilobyte each).
pub const CAPACITY: usize = 16_384;

#[derive(Default)]
pub struct Feed {
    recent: Mutex<VecDeque<Streamed>>,
}

impl Feed {
    /// Adds statements just committed (in `seq` order), dropping the oldest
    /// beyond `CAPACITY`.
    pub fn push(&self, committed: impl IntoIterator<Item = Streamed>) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for s in committed {
            // Commits are numbered under the writer's lock, so `seq`s only
            // grow; were one not to, the lookup's order would still hold.
            while recent.back().is_some_and(|last| last.seq >= s.seq) {
                recent.pop_back();
            }
            recent.push_back(s);
        }
        let excess = recent.len().saturating_sub(CAPACITY);
        recent.drain(..excess);
    }

    /// Up to `limit` statements from `cursor + 1` on, while their `seq`s
    /// follow each other; `None` when `cursor + 1` is not here.
    pub fn after(&self, cursor: i64, limit: usize) -> Option<Vec<Streamed>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let start = recent.binary_search_by_key(&(cursor + 1), |s| s.seq).ok()?;
        let mut out: Vec<Streamed> = Vec::with_capacity(limit.min(recent.len() - start));
        for s in recent.range(start..) {
            if out.len() == limit || out.last().is_some_and(|last| last.seq + 1 != s.seq) {
                break;
            }
            out.push(s.clone());
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(seq: i64) -> Streamed {
        Streamed { seq, id: format!("id-{seq}"), stored_us: seq, body: format!("{{\"n\":{seq}}}") }
    }

    fn seqs(v: Option<Vec<Streamed>>) -> Option<Vec<i64>> {
        v.map(|v| v.iter().map(|s| s.seq).collect())
    }

    #[test]
    fn hands_out_only_consecutive_statements_after_the_cursor() {
        let feed = Feed::default();
        feed.push((1..=5).map(statement));
        // 6 and 7 were committed by another node.
        feed.push((8..=9).map(statement));
        assert_eq!(seqs(feed.after(0, 100)), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(seqs(feed.after(2, 2)), Some(vec![3, 4]));
        assert_eq!(seqs(feed.after(5, 100)), None, "6 is not here: read the database");
        assert_eq!(seqs(feed.after(7, 100)), Some(vec![8, 9]));
        assert_eq!(seqs(feed.after(9, 100)), None);
    }

    #[test]
    fn keeps_the_newest_and_replaces_a_renumbered_commit() {
        let feed = Feed::default();
        feed.push((1..=(CAPACITY as i64 + 10)).map(statement));
        assert_eq!(seqs(feed.after(0, 1)), None, "the oldest are dropped");
        assert_eq!(seqs(feed.after(10, 1)), Some(vec![11]));
        // Should a seq come again, it replaces what followed it.
        let feed = Feed::default();
        feed.push((1..=8).map(statement));
        let mut again = statement(5);
        again.id = "other".into();
        feed.push([again]);
        let after = feed.after(4, 100).unwrap();
        assert_eq!((after.len(), after[0].id.as_str()), (1, "other"));
    }
}
