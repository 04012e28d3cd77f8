//! A stream target's round: the statements after its cursor, through the
//! adapter, then the cursor moved past what is done. A crash before the
//! cursor moves sends the round again (at least once: another LRS keeps one
//! statement per id, a webhook receiver has the delivery id).

use std::time::Duration;

use chrono::Utc;
use sea_orm::DbBackend;

use super::{Dispatcher, Next, POLL};
use crate::forward::adapters::Job;
use crate::forward::outcome::{Outcome, backoff};
use crate::store::forward_stream::{self, Advance, Refused};
use crate::store::outbox::{self, Status};
use crate::store::statements;

impl Dispatcher {
    /// Delivers the next statements after the cursor, and says when to look
    /// again. `Next::Hold` means the target asked for quiet (or the circuit
    /// is open): its rows wait too.
    pub(super) async fn stream_round(&mut self) -> anyhow::Result<Next> {
        let Some(router) = &self.stream else { return Ok(Next::Poll(POLL)) };
        let now_us = Utc::now().timestamp_micros();
        if let Some((until, _)) = outbox::paused_until(&self.db, &self.name).await?
            && until > now_us
        {
            // Looked at again in a second; what is stored meanwhile does
            // not wake it (a query per commit, for nothing).
            return Ok(Next::Hold(POLL));
        }
        let Some(cursor) = forward_stream::cursor(&self.db, &self.name).await? else {
            forward_stream::start(&self.db, &self.name, now_us).await?;
            return Ok(Next::Now);
        };
        // Read first: an idle target costs a read, not a write transaction.
        if statements::last_stored(&self.db).await?.0 <= cursor {
            return Ok(Next::Poll(POLL));
        }
        let limit = if self.breaker_open() { 1 } else { self.delivery.batch_size };
        let lease_us = self.delivery.lease().as_micros() as i64;
        // One node follows the cursor at a time (`start` made its state
        // row). A SQLite database is one
        // node's: no lease, one write transaction fewer per round between
        // the writer's group commits.
        let shared = self.db.get_database_backend() == DbBackend::Postgres;
        if shared && !outbox::lease_target(&self.db, &self.name, &self.node, now_us + lease_us, now_us).await? {
            return Ok(Next::Poll(POLL));
        }
        let Some(cursor) = forward_stream::cursor(&self.db, &self.name).await? else { return Ok(Next::Now) };
        // What this node just committed is in memory; what another node
        // wrote, or what is older, is read.
        let (statements, source) =
            match self.feed.as_ref().and_then(|f| f.after(cursor, limit)).filter(|s| !s.is_empty()) {
                Some(statements) => (statements, "feed"),
                None => (forward_stream::read(&self.db, cursor, limit).await?, "database"),
            };
        let reads = self.metrics.forward_stream_reads.with_label_values(&[self.name.as_str(), source]);
        reads.inc_by(statements.len() as u64);
        let Some(last) = statements.last() else {
            if shared {
                outbox::release_target(&self.db, &self.name, &self.node).await?;
            }
            return Ok(Next::Poll(POLL));
        };
        let (last_seq, full) = (last.seq, statements.len() >= limit);
        let everything = router.takes_everything();
        let jobs: Vec<Job> =
            statements.into_iter().filter(|s| everything || router.selects(&s.body)).map(Job::from_streamed).collect();
        let outcomes = self.deliver(&jobs).await;
        let now_us = Utc::now().timestamp_micros();
        let mut round = StreamRound::new(last_seq);
        for (job, outcome) in jobs.iter().zip(outcomes) {
            self.count(job, &outcome, now_us);
            round.record(job, outcome);
        }
        let advance = Advance {
            target: &self.name,
            node: &self.node,
            from: cursor,
            to: round.to,
            delivered: round.delivered,
            refused: &round.refused,
        };
        forward_stream::advance(&self.db, &advance, now_us).await?;
        warn_of_refused_statements(&self.name, &round.refused);
        let dead = round.refused.iter().filter(|r| r.status == Status::Dead).count();
        self.metrics.forward_dead_letters.with_label_values(&[self.name.as_str()]).inc_by(dead as u64);
        self.after_stream_round(round, full, now_us).await
    }

    /// The breaker, a pause, the backoff and what comes next, from how the
    /// round went.
    async fn after_stream_round(&mut self, round: StreamRound, full: bool, now_us: i64) -> anyhow::Result<Next> {
        if let Some(reason) = round.pause {
            tracing::warn!(target_name = %self.name, reason = %reason, "forwarder paused: the target refuses us");
            outbox::set_pause(&self.db, &self.name, Some(i64::MAX), Some(&reason), now_us).await?;
            return Ok(Next::Poll(POLL));
        }
        if !round.stopped {
            // Only an answer closes the circuit, not a round the routes
            // left nothing to send in.
            if round.delivered > 0 || !round.refused.is_empty() {
                self.failures = 0;
            }
            return Ok(if full { Next::Now } else { Next::Linger(Duration::from_millis(self.delivery.linger_ms)) });
        }
        // The round stopped at a statement the target did not take for now:
        // from it on, everything is sent again after a backoff.
        self.failures = self.failures.saturating_add(1);
        let d = &self.delivery;
        let base = Duration::from_millis(d.retry_base_ms);
        let mut hold = backoff(self.failures, base, Duration::from_secs(d.retry_cap_secs), round.after);
        if self.breaker_open() {
            hold = hold.max(Duration::from_secs(d.breaker_open_secs));
            tracing::warn!(target_name = %self.name, failures = self.failures, ?hold, "forwarder circuit open");
        }
        Ok(Next::Hold(hold))
    }
}

/// What a round's outcomes make of the cursor.
struct StreamRound {
    /// Where the cursor goes: past every statement read, or to just before
    /// the first one the target did not take for now.
    to: i64,
    delivered: u64,
    refused: Vec<Refused>,
    /// A statement was not taken for now (a failure, a refusal to talk).
    stopped: bool,
    /// The longest wait the target asked for.
    after: Option<Duration>,
    pause: Option<String>,
}

impl StreamRound {
    fn new(last_read: i64) -> StreamRound {
        StreamRound { to: last_read, delivered: 0, refused: Vec::new(), stopped: false, after: None, pause: None }
    }

    fn record(&mut self, job: &Job, outcome: Outcome) {
        let seq = job.stream_seq.unwrap_or_default();
        if self.stopped {
            // After the first statement not taken, the cursor stays before
            // it: what follows goes again, whatever became of it.
            return;
        }
        let refused = |status, http_status, error| Refused {
            seq,
            statement_id: job.statement_id.clone(),
            status,
            http_status,
            error,
        };
        match outcome {
            Outcome::Delivered { .. } => self.delivered += 1,
            Outcome::Skipped { http_status, reason } => {
                self.refused.push(refused(Status::Skipped, http_status, reason))
            }
            Outcome::Unsupported { reason } => self.refused.push(refused(Status::Unsupported, None, reason)),
            Outcome::Park { http_status, reason } => self.refused.push(refused(Status::Parked, http_status, reason)),
            Outcome::Dead { http_status, reason } => self.refused.push(refused(Status::Dead, http_status, reason)),
            Outcome::Retry { after, .. } => self.stop(seq, after),
            Outcome::NotSent { after } => self.stop(seq, Some(after)),
            Outcome::PauseTarget { reason, .. } => {
                self.pause = Some(reason);
                self.stop(seq, None);
            }
        }
    }

    fn stop(&mut self, seq: i64, after: Option<Duration>) {
        // "Not sent" without a wait asked for is no wait asked for.
        let after = after.filter(|d| !d.is_zero());
        self.stopped = true;
        self.to = seq - 1;
        self.after = match (self.after, after) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// A statement the target refused for good (dead) or that waits for an
/// operator (parked) became a row in `advance`: said at WARN like a row's
/// close (`warn_of_rows_for_an_operator`), by its statement id, which
/// `forward rows` shows beside the row's.
fn warn_of_refused_statements(target: &str, refused: &[Refused]) {
    for r in refused.iter().filter(|r| matches!(r.status, Status::Dead | Status::Parked)) {
        tracing::warn!(
            target_name = %target,
            statement_id = %r.statement_id,
            status = r.status.as_str(),
            http_status = ?r.http_status,
            reason = %r.error,
            "forwarder statement needs an operator"
        );
    }
}
