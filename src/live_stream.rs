//! The live stream (`GET /xapi/extensions/stream`): Server-Sent Events of
//! statements as they are stored. Each consumer has a task of its own that
//! follows the statement table after its `seq` cursor (so what other nodes
//! sharing a PostgreSQL database store is streamed too) and writes whole
//! events into a small channel that the response body drains. The writer
//! only sets a watch after each commit; it never waits for a consumer. A
//! consumer that leaves its channel full for longer than the stall limit is
//! dropped: its task ends and its response ends after the last whole event,
//! so `Last-Event-ID` resumes exactly.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::Stream;
use prometheus::{IntCounter, IntGauge};
use sea_orm::{DatabaseConnection, DbBackend};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};

use crate::error::LrsError;
use crate::metrics::Metrics;
use crate::store::filter_index::FilterIndex;
use crate::store::statements::last_stored;
use crate::store::statements::{self, PageQuery};

/// Statements one read takes; a consumer catching up reads again at once.
const READ_BATCH: u32 = 200;
/// Whole events waiting for the response body. Small: the sockets buffer
/// more, and a consumer's backlog belongs in the database, not in memory.
const CHANNEL_EVENTS: usize = 32;
/// However busy ingest is, a consumer reads at most this often (20 times a
/// second) when it is not catching up: the commits in between coalesce.
const MIN_READ_INTERVAL: Duration = Duration::from_millis(50);
/// Commits of other nodes sharing a PostgreSQL database wake nobody here:
/// looked for this often. A SQLite database has one writer, this node's,
/// whose commits wake every consumer; there a consumer only looks again
/// after `KEEP_ALIVE`, to send one.
const POLL_SHARED: Duration = Duration::from_secs(1);
/// An idle stream sends a comment this often, so proxies keep the
/// connection and a client that is gone is noticed (the write fails).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What an operator may set (`--max-stream-consumers`, `--stream-stall-secs`).
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub max_consumers: usize,
    /// How long a consumer may leave its channel full before it is dropped.
    pub stall: Duration,
}

/// Where a consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After the last statement committed when it connects: only new ones.
    Now,
    /// After this event id (a `seq`): what was stored since, then new ones.
    After(i64),
}

impl Start {
    /// A `Last-Event-ID` (header or `lastEventId` parameter): an event id
    /// this stream sent, a non-negative integer.
    pub fn after_event(name: &str, text: &str) -> Result<Start, LrsError> {
        match text.trim().parse::<i64>() {
            Ok(seq) if seq >= 0 => Ok(Start::After(seq)),
            _ => Err(LrsError::invalid(
                name,
                "stream:last-event-id",
                format!("{name} must be the id of an event of this stream (a non-negative integer)"),
            )),
        }
    }
}

/// The live streams of this node: their limits, their count, and the
/// signals that wake and end them.
pub struct LiveStreams {
    db: DatabaseConnection,
    index: FilterIndex,
    committed: watch::Receiver<i64>,
    closing: watch::Sender<bool>,
    open: Arc<AtomicUsize>,
    limits: StreamLimits,
    consumers: IntGauge,
    dropped: IntCounter,
}

impl LiveStreams {
    /// `committed` changes after each of this node's commits and closes
    /// when its writer stops (which ends every stream).
    pub fn new(
        db: DatabaseConnection,
        index: FilterIndex,
        committed: watch::Receiver<i64>,
        limits: StreamLimits,
        metrics: &Metrics,
    ) -> LiveStreams {
        LiveStreams {
            db,
            index,
            committed,
            closing: watch::channel(false).0,
            open: Arc::new(AtomicUsize::new(0)),
            limits,
            consumers: metrics.stream_consumers.clone(),
            dropped: metrics.stream_dropped.clone(),
        }
    }

    /// Ends every stream after its current event and refuses new ones: the
    /// server is stopping, and would otherwise wait for them to end.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Starts a consumer of the statements carrying all of `keys`; the
    /// events to send, as the response body. 503 beyond the consumer cap.
    pub async fn open(&self, keys: Vec<i64>, start: Start) -> Result<Events, LrsError> {
        if *self.closing.borrow() {
            return Err(LrsError::Unavailable("the server is stopping".into()));
        }
        let slot = self.take_slot()?;
        let cursor = match start {
            Start::Now => last_stored(&self.db).await.map_err(LrsError::Internal)?.0,
            Start::After(seq) => seq,
        };
        let query = PageQuery {
            keys,
            ascending: true,
            after_seq: Some(cursor),
            limit: READ_BATCH,
            include_voided: true,
            ..PageQuery::default()
        };
        let (events, body) = mpsc::channel(CHANNEL_EVENTS);
        let shared = self.db.get_database_backend() == DbBackend::Postgres;
        let consumer = Consumer {
            db: self.db.clone(),
            index: self.index.clone(),
            poll: if shared { POLL_SHARED } else { KEEP_ALIVE },
            query,
            committed: self.committed.clone(),
            closing: self.closing.subscribe(),
            stall: self.limits.stall,
            events,
        };
        let dropped = self.dropped.clone();
        tokio::spawn(async move {
            let end = consumer.follow().await;
            end.report(&dropped);
            drop(slot);
        });
        Ok(Events(body))
    }

    fn take_slot(&self) -> Result<Slot, LrsError> {
        let max = self.limits.max_consumers;
        self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).map_err(|_| {
            LrsError::Unavailable(format!("this server already streams to {max} consumers; try again later"))
        })?;
        self.consumers.inc();
        Ok(Slot { open: self.open.clone(), consumers: self.consumers.clone() })
    }
}

/// A consumer's events, as its response body: it ends once the consumer's
/// task ended and the events it queued went out.
pub struct Events(mpsc::Receiver<Bytes>);

impl Stream for Events {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|event| event.map(Ok))
    }
}

/// A consumer's place under the cap, given back when its task ends.
struct Slot {
    open: Arc<AtomicUsize>,
    consumers: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.consumers.dec();
    }
}

/// Why a consumer's task ended.
#[derive(Debug)]
enum End {
    /// The client went away (its response body was dropped).
    Gone,
    /// The client left its events unread for the stall limit.
    Stalled {
        cursor: i64,
    },
    /// The server is stopping.
    Closing,
    Failed(anyhow::Error),
}

impl End {
    fn report(self, dropped: &IntCounter) {
        match self {
            End::Stalled { cursor } => {
                dropped.inc();
                tracing::warn!(last_event_id = cursor, "live stream consumer dropped: it left its events unread");
            }
            End::Failed(e) => tracing::error!(error = ?e, "live stream consumer failed"),
            End::Gone | End::Closing => tracing::debug!(end = ?self, "live stream consumer ended"),
        }
    }
}

/// One consumer's reader: its cursor (`query.after_seq`) and its channel.
struct Consumer {
    db: DatabaseConnection,
    index: FilterIndex,
    poll: Duration,
    query: PageQuery,
    committed: watch::Receiver<i64>,
    closing: watch::Receiver<bool>,
    stall: Duration,
    events: mpsc::Sender<Bytes>,
}

impl Consumer {
    async fn follow(mut self) -> End {
        let mut last_sent = Instant::now();
        loop {
            let read_at = Instant::now();
            let (rows, more) = match statements::page(&self.db, &self.index, &self.query).await {
                Ok(page) => page,
                Err(e) => return End::Failed(e.into()),
            };
            for row in rows {
                if let Err(end) = self.send(event(row.seq, &row.body)).await {
                    return end;
                }
                self.query.after_seq = Some(row.seq);
                last_sent = Instant::now();
            }
            if more {
                continue;
            }
            if last_sent.elapsed() >= KEEP_ALIVE {
                if let Err(end) = self.send(Bytes::from_static(b": keep-alive\n\n")).await {
                    return end;
                }
                last_sent = Instant::now();
            }
            if let Err(end) = self.wait().await {
                return end;
            }
            sleep_until(read_at + MIN_READ_INTERVAL).await;
        }
    }

    /// Until a commit of this node, or the next look for other nodes' commits.
    async fn wait(&mut self) -> Result<(), End> {
        tokio::select! {
            changed = self.committed.changed() => changed.map_err(|_| End::Closing),
            _ = sleep(self.poll) => Ok(()),
            _ = self.closing.wait_for(|c| *c) => Err(End::Closing),
            _ = self.events.closed() => Err(End::Gone),
        }
    }

    /// Queues one whole event; a channel full for the stall limit ends the
    /// consumer (the events already queued still go out).
    async fn send(&mut self, event: Bytes) -> Result<(), End> {
        let cursor = self.query.after_seq.unwrap_or_default();
        tokio::select! {
            sent = self.events.send(event) => sent.map_err(|_| End::Gone),
            _ = sleep(self.stall) => Err(End::Stalled { cursor }),
            _ = self.closing.wait_for(|c| *c) => Err(End::Closing),
        }
    }
}

/// One statement as an event. A stored body is compact JSON, one line; were
/// there a line break, each line would be a `data:` field of its own (the
/// client joins them with line breaks, JSON whitespace).
fn event(seq: i64, body: &str) -> Bytes {
    let mut text = format!("id: {seq}\nevent: statement\n");
    for line in body.split(['\n', '\r']) {
        text.push_str("data: ");
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_id_type_and_one_data_line_per_body_line() {
        assert_eq!(&event(7, r#"{"id":"x"}"#)[..], b"id: 7\nevent: statement\ndata: {\"id\":\"x\"}\n\n");
        assert_eq!(&event(8, "{\n}")[..], b"id: 8\nevent: statement\ndata: {\ndata: }\n\n");
    }

    #[test]
    fn a_last_event_id_is_a_non_negative_integer() {
        assert_eq!(Start::after_event("Last-Event-ID", "42").unwrap(), Start::After(42));
        assert_eq!(Start::after_event("Last-Event-ID", "0").unwrap(), Start::After(0));
        for bad in ["", "-1", "x", "1.5", "99999999999999999999"] {
            assert!(Start::after_event("Last-Event-ID", bad).is_err(), "{bad}");
        }
    }
}
