//! Forwarders: statements, once stored, delivered to other systems at least
//! once without ever holding up ingest.
//!
//! The writer asks `Routing` which targets each new statement goes to and
//! writes one outbox row per (target, operation) in the statement's own
//! transaction. A dispatcher per target (`dispatch`) claims due rows under a
//! lease, hands them to the target's adapter (`adapters`), and records each
//! outcome: delivered, retried with backoff (honouring `Retry-After`),
//! parked, dead-lettered, or the target paused.
//!
//! Targets that take statements as stored (another LRS, a webhook) get no
//! rows from the writer: their dispatcher follows the statement table with
//! a cursor (`dispatch::stream`, `store::forward_stream`), and only a
//! statement they refuse, or a replay, becomes a row.

pub mod adapters;
pub mod config;
pub mod courses;
pub mod dispatch;
pub mod identity;
pub mod operations;
pub mod outcome;
pub mod rate;
pub mod replay;
pub mod router;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::store::feed::Feed;
use crate::store::outbox::NewRow;
use crate::xapi::statement::PreparedStatement;
pub use config::ForwardingConfig;
use router::Router;

/// The routes, and a way to wake each target's dispatcher once rows for it
/// are committed.
#[derive(Default)]
pub struct Routing {
    router: Router,
    wakers: HashMap<String, Arc<Notify>>,
    /// The stream targets' wakers: any new statement may be theirs.
    streams: Vec<Arc<Notify>>,
    /// What the writer committed last, for the stream targets (when any).
    feed: Option<Arc<Feed>>,
}

impl Routing {
    pub fn new(config: &ForwardingConfig) -> Routing {
        let wakers: HashMap<String, Arc<Notify>> =
            config.targets.iter().map(|t| (t.name.clone(), Arc::new(Notify::new()))).collect();
        let streams: Vec<Arc<Notify>> =
            config.targets.iter().filter(|t| t.enabled && t.kind.streams()).map(|t| wakers[&t.name].clone()).collect();
        let feed = (!streams.is_empty()).then(Arc::default);
        Routing { router: Router::for_rows(config), wakers, streams, feed }
    }

    /// The outbox rows for statements about to be stored with these `seq`s.
    pub fn rows<'a>(&'a self, statements: &[(i64, &'a PreparedStatement)]) -> Vec<NewRow<'a>> {
        if self.router.is_empty() {
            return Vec::new();
        }
        let mut rows = Vec::new();
        for (seq, s) in statements {
            for planned in self.router.plan(&s.statement) {
                rows.push(NewRow {
                    target: planned.target,
                    op: planned.op.as_str(),
                    statement_seq: *seq,
                    statement_id: &s.id,
                    order_key: planned.order_key,
                    dedupe_key: planned.dedupe_key,
                    replay: None,
                });
            }
        }
        rows
    }

    /// Where the writer puts the statements it committed, when a stream
    /// target reads them.
    pub fn feed(&self) -> Option<&Arc<Feed>> {
        self.feed.as_ref()
    }

    /// Wakes the dispatchers of the stream targets (statements were stored).
    pub fn wake_streams(&self) {
        for w in &self.streams {
            w.notify_one();
        }
    }

    /// Wakes the dispatchers of the targets these rows were written for.
    pub fn wake(&self, rows: &[NewRow<'_>]) {
        let mut last = "";
        for row in rows {
            if row.target != last {
                if let Some(w) = self.wakers.get(row.target) {
                    w.notify_one();
                }
                last = row.target;
            }
        }
    }

    pub fn waker(&self, target: &str) -> Arc<Notify> {
        self.wakers.get(target).cloned().unwrap_or_default()
    }
}
