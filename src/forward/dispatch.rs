//! One dispatcher task per target: claim due rows, deliver them through the
//! adapter, record each outcome. A row is closed only after the target has
//! answered, so a crash in between redelivers it when its lease runs out
//! (at least once; each adapter makes a redelivery harmless).

mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::Routing;
use super::adapters::{Adapter, Channel, Ctx, Job};
use super::config::{DeliveryConfig, ForwardingConfig, TargetConfig};
use super::courses::Courses;
use super::identity::Identities;
use super::outcome::{Outcome, backoff};
use super::rate::RateLimiter;
use super::router::Router;
use crate::metrics::Metrics;
use crate::store::feed::Feed;
use crate::store::outbox::{self, Claimed, Close, Status};

/// Longest sleep between looks at the outbox when nothing woke the
/// dispatcher (rows written by other nodes, retries falling due).
const POLL: Duration = Duration::from_secs(1);

/// The running dispatchers.
pub struct Dispatchers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Dispatchers {
    /// Starts a dispatcher for every enabled target (adapters are built, and
    /// their secrets read, before any starts).
    /// `node` is this node's name in claims and target leases (see `release_claims`).
    pub fn start(
        db: &DatabaseConnection,
        config: &ForwardingConfig,
        routing: &Routing,
        metrics: &Arc<Metrics>,
        node: &str,
    ) -> anyhow::Result<Dispatchers> {
        let (stop, stopped) = watch::channel(false);
        let node = node.to_owned();
        let mut dispatchers = Vec::new();
        for target in config.targets.iter().filter(|t| t.enabled) {
            let waker = routing.waker(&target.name);
            let (stopped, node, metrics) = (stopped.clone(), node.clone(), metrics.clone());
            let mut d = Dispatcher::new(db.clone(), target, waker, stopped, node, metrics)?;
            d.feed = routing.feed().filter(|_| d.stream.is_some()).cloned();
            dispatchers.push(d);
        }
        let mut tasks = JoinSet::new();
        for d in dispatchers {
            tasks.spawn(d.run());
        }
        Ok(Dispatchers { stop, tasks })
    }

    /// Stops every dispatcher, giving a delivery under way a few seconds to
    /// finish; rows still in flight are redelivered after their lease.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let drained =
            tokio::time::timeout(Duration::from_secs(5), async { while self.tasks.join_next().await.is_some() {} });
        if drained.await.is_err() {
            self.tasks.abort_all();
        }
    }
}

/// Releases what `node` claimed before it was started again (a crash, a
/// kill, a restart): those rows are due now, not when their leases end.
pub async fn release_claims(db: &DatabaseConnection, node: &str) -> anyhow::Result<()> {
    let rows = outbox::release_claims(db, node, Utc::now().timestamp_micros()).await?;
    if rows > 0 {
        tracing::info!(node, rows, "rows this node claimed before it was started again are due now");
    }
    Ok(())
}

/// This node's default name: the host's, and the port it listens on (two
/// nodes on one host cannot share one). With port 0 (any free port) it
/// changes each start, so an earlier claim waits out its lease.
pub fn default_node_id(port: u16) -> String {
    format!("{}:{port}", hostname())
}

fn hostname() -> String {
    let mut name = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let ok = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } == 0;
    let len = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    let name = String::from_utf8_lossy(&name[..len]).into_owned();
    if ok && !name.is_empty() { name } else { "localhost".to_owned() }
}

/// A target started with other learner or course rules than last time (the
/// forwarders file was edited) gets its parked rows back as pending: the
/// mapping they waited for may be there now. Nodes starting with the same
/// rules change nothing.
pub async fn reexamine_parked_on_new_mappings(
    db: &DatabaseConnection,
    config: &ForwardingConfig,
) -> anyhow::Result<()> {
    let now_us = Utc::now().timestamp_micros();
    for target in config.targets.iter().filter(|t| t.enabled) {
        if outbox::note_mapping(db, &target.name, &target.mapping_hash(), now_us).await? {
            let rows = outbox::unpark(db, &target.name, None, now_us).await?;
            if rows > 0 {
                tracing::info!(target_name = %target.name, rows, "new mapping rules: parked rows are pending again");
            }
        }
    }
    Ok(())
}

/// The channel `adapter` sends through: an HTTP client with the target's
/// timeouts, paced by its limiter and the platform's buckets.
pub fn channel(d: &DeliveryConfig, adapter: &Adapter) -> anyhow::Result<Channel> {
    let timeout = Duration::from_secs(d.timeout_secs.max(1));
    let client = reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(15)))
        .timeout(timeout)
        .user_agent(concat!("xlrs/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(Channel::new(client, RateLimiter::new(d.rate_per_sec, d.burst), adapter.buckets()))
}

struct Dispatcher {
    db: DatabaseConnection,
    name: String,
    adapter: Adapter,
    channel: Channel,
    identities: Identities,
    courses: Courses,
    node: String,
    delivery: DeliveryConfig,
    waker: Arc<Notify>,
    stopped: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    /// A stream target's routes: it follows the statement table with a
    /// cursor (rows are only its refused statements and replays).
    stream: Option<Router>,
    /// What this node's writer committed last (stream targets).
    feed: Option<Arc<Feed>>,
    /// Consecutive rounds whose deliveries all failed transiently (the
    /// circuit breaker).
    failures: u32,
}

impl Dispatcher {
    fn new(
        db: DatabaseConnection,
        target: &TargetConfig,
        waker: Arc<Notify>,
        stopped: watch::Receiver<bool>,
        node: String,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Dispatcher> {
        let d = &target.delivery;
        let adapter = Adapter::new(target)?;
        Ok(Dispatcher {
            db,
            name: target.name.clone(),
            channel: channel(d, &adapter)?,
            adapter,
            identities: Identities::new(&target.name, &target.identity),
            courses: Courses::new(&target.courses)?,
            node,
            delivery: d.clone(),
            waker,
            stopped,
            metrics,
            stream: target.kind.streams().then(|| Router::new(&ForwardingConfig { targets: vec![target.clone()] })),
            feed: None,
            failures: 0,
        })
    }

    async fn run(mut self) {
        tracing::info!(target_name = %self.name, "forwarder started");
        while !*self.stopped.borrow() {
            let next = self.next_round().await.unwrap_or_else(|e| {
                tracing::error!(target_name = %self.name, error = format!("{e:#}"), "forwarder round failed");
                Next::Poll(POLL)
            });
            let mut stopped = self.stopped.clone();
            match next {
                Next::Now => {}
                // New rows wake the dispatcher before the poll is up.
                Next::Poll(wait) => tokio::select! {
                    _ = self.waker.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped.changed() => {}
                },
                // The target asked for quiet (Retry-After) or the circuit is
                // open: new rows wait too. A linger lets more rows come.
                Next::Hold(hold) | Next::Linger(hold) => tokio::select! {
                    _ = tokio::time::sleep(hold) => {}
                    _ = stopped.changed() => {}
                },
            }
        }
    }

    /// A stream target's statements after its cursor, then (unless the
    /// target asked for quiet) its due rows; others only the rows.
    async fn next_round(&mut self) -> anyhow::Result<Next> {
        if self.stream.is_none() {
            return self.round().await;
        }
        let streamed = self.stream_round().await?;
        if let Next::Hold(_) = streamed {
            return Ok(streamed);
        }
        Ok(streamed.sooner(self.round().await?))
    }

    /// Delivers one claim of due rows, and says when to look again.
    async fn round(&mut self) -> anyhow::Result<Next> {
        let now_us = Utc::now().timestamp_micros();
        if let Some((until, _)) = outbox::paused_until(&self.db, &self.name).await?
            && until > now_us
        {
            // Looked at again in a second; what is stored meanwhile does
            // not wake it (a query per commit, for nothing).
            return Ok(Next::Hold(POLL));
        }
        // Claim (a write transaction) only when a row is due: an idle target
        // costs one read, and a retry due before the next poll is not kept
        // waiting for it.
        match outbox::next_due(&self.db, &self.name).await? {
            Some(due) if due <= now_us => {}
            Some(due) => return Ok(Next::Poll(Duration::from_micros((due - now_us) as u64).min(POLL))),
            None => return Ok(Next::Poll(POLL)),
        }
        let limit = if self.breaker_open() { 1 } else { self.delivery.batch_size };
        let lease_us = self.delivery.lease().as_micros() as i64;
        let exclusive = self.adapter.exclusive();
        if exclusive && !outbox::acquire_target(&self.db, &self.name, &self.node, now_us + lease_us, now_us).await? {
            // Another node is calling the target; it allows one call at a time.
            return Ok(Next::Poll(POLL));
        }
        let claimed = outbox::claim(&self.db, &self.name, &self.node, limit, now_us, lease_us).await?;
        if claimed.is_empty() {
            if exclusive {
                outbox::release_target(&self.db, &self.name, &self.node).await?;
            }
            // Another node was first.
            return Ok(Next::Poll(POLL));
        }
        let full = claimed.len() >= limit;
        let (jobs, mut closes) = self.jobs(claimed, now_us);
        let jobs = if self.adapter.coalesces() { self.coalesce(jobs, now_us, &mut closes).await? } else { jobs };
        let outcomes = self.deliver(&jobs).await;
        if exclusive {
            outbox::release_target(&self.db, &self.name, &self.node).await?;
        }
        let now_us = Utc::now().timestamp_micros();
        let mut hold = Duration::ZERO;
        let mut pause = None;
        // The breaker counts rounds, not rows: one refused batch is one failure.
        let mut transient = !jobs.is_empty();
        for (job, outcome) in jobs.iter().zip(outcomes) {
            tracing::debug!(target_name = %self.name, outbox_id = job.outbox_id, outcome = outcome.label(), "delivery");
            if let Outcome::Retry { after: Some(after), .. } | Outcome::NotSent { after } = &outcome {
                hold = hold.max(*after);
            }
            if let Outcome::PauseTarget { reason, .. } = &outcome {
                pause.get_or_insert_with(|| reason.clone());
            }
            transient &= matches!(outcome, Outcome::Retry { .. } | Outcome::NotSent { .. });
            self.count(job, &outcome, now_us);
            closes.push(self.close(job, outcome, now_us));
        }
        outbox::close(&self.db, &closes, now_us).await?;
        warn_of_rows_for_an_operator(&self.name, &closes);
        let dead = closes.iter().filter(|c| c.status == Status::Dead).count();
        self.metrics.forward_dead_letters.with_label_values(&[self.name.as_str()]).inc_by(dead as u64);
        self.failures = if transient { self.failures.saturating_add(1) } else { 0 };
        if let Some(reason) = pause {
            tracing::warn!(target_name = %self.name, reason = %reason, "forwarder paused: the target refuses us");
            outbox::set_pause(&self.db, &self.name, Some(i64::MAX), Some(&reason), now_us).await?;
            return Ok(Next::Poll(POLL));
        }
        if self.breaker_open() {
            hold = hold.max(Duration::from_secs(self.delivery.breaker_open_secs));
            tracing::warn!(target_name = %self.name, failures = self.failures, ?hold, "forwarder circuit open");
        }
        Ok(if hold > Duration::ZERO {
            Next::Hold(hold)
        } else if full {
            Next::Now
        } else {
            Next::Linger(Duration::from_millis(self.delivery.linger_ms))
        })
    }

    /// One round of `jobs` through the adapter.
    async fn deliver(&self, jobs: &[Job]) -> Vec<Outcome> {
        if jobs.is_empty() {
            return Vec::new();
        }
        self.channel.begin_round();
        let ctx = Ctx {
            target: &self.name,
            channel: &self.channel,
            db: &self.db,
            identities: &self.identities,
            courses: &self.courses,
        };
        let started = Instant::now();
        let outcomes = self.adapter.deliver(&ctx, jobs).await;
        self.metrics.delivery(&self.name, started.elapsed());
        outcomes
    }

    fn count(&self, job: &Job, outcome: &Outcome, now_us: i64) {
        if let Outcome::NotSent { .. } = outcome {
            // Not an attempt: nothing reached the target.
            return;
        }
        let m = &self.metrics;
        m.forward_attempts.with_label_values(&[self.name.as_str(), outcome.label()]).inc();
        if let Outcome::Delivered { .. } = outcome {
            let lag = (now_us - job.created_us).max(0) as f64 / 1e6;
            m.forward_lag.with_label_values(&[self.name.as_str()]).observe(lag);
        }
    }

    fn breaker_open(&self) -> bool {
        self.failures >= self.delivery.breaker_failures
    }

    /// The claimed rows as jobs; a row that cannot be one is dead at once.
    fn jobs(&self, claimed: Vec<Claimed>, now_us: i64) -> (Vec<Job>, Vec<Close>) {
        let mut jobs = Vec::with_capacity(claimed.len());
        let mut closes = Vec::new();
        for c in claimed {
            let id = c.id;
            match Job::from_claimed(c) {
                Ok(job) => jobs.push(job),
                Err(reason) => closes.push(close_as(id, Status::Dead, now_us, None, Some(reason))),
            }
        }
        (jobs, closes)
    }

    /// A status target keeps one state per learner and activity: of a
    /// claim's rows for one, only the furthest (the last of its rank) goes;
    /// nor does a lower state go after an outcome was sent. The others are
    /// closed `superseded`.
    async fn coalesce(&self, jobs: Vec<Job>, now_us: i64, closes: &mut Vec<Close>) -> anyhow::Result<Vec<Job>> {
        let lower: Vec<&str> =
            jobs.iter().filter(|j| (1..3).contains(&j.op.rank())).map(|j| j.order_key.as_str()).collect();
        let decided = if lower.is_empty() {
            Default::default()
        } else {
            outbox::keys_with_outcome(&self.db, &self.name, &lower).await?
        };
        let mut furthest: std::collections::HashMap<&str, (u8, usize)> = Default::default();
        for (i, job) in jobs.iter().enumerate().filter(|(_, j)| j.op.rank() > 0) {
            let entry = furthest.entry(job.order_key.as_str()).or_insert((0, i));
            if job.op.rank() >= entry.0 {
                *entry = (job.op.rank(), i);
            }
        }
        let keep: Vec<bool> = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| {
                let rank = j.op.rank();
                rank == 0 || (furthest[j.order_key.as_str()].1 == i && (rank == 3 || !decided.contains(&j.order_key)))
            })
            .collect();
        let mut kept = Vec::with_capacity(jobs.len());
        for (job, keep) in jobs.into_iter().zip(keep) {
            if keep {
                kept.push(job);
            } else {
                let reason = "a later or further state of this learner on this activity was sent instead".to_owned();
                closes.push(close_as(job.outbox_id, Status::Superseded, now_us, None, Some(reason)));
            }
        }
        Ok(kept)
    }

    /// How a row is recorded after `outcome`.
    fn close(&self, row: &Job, outcome: Outcome, now_us: i64) -> Close {
        let d = &self.delivery;
        match outcome {
            Outcome::Delivered { http_status } => close_as(row.outbox_id, Status::Succeeded, now_us, http_status, None),
            Outcome::Skipped { http_status, reason } => {
                close_as(row.outbox_id, Status::Skipped, now_us, http_status, Some(reason))
            }
            Outcome::Unsupported { reason } => close_as(row.outbox_id, Status::Unsupported, now_us, None, Some(reason)),
            Outcome::Park { http_status, reason } => {
                close_as(row.outbox_id, Status::Parked, now_us, http_status, Some(reason))
            }
            Outcome::Dead { http_status, reason } => {
                close_as(row.outbox_id, Status::Dead, now_us, http_status, Some(reason))
            }
            // Never tried: still pending, due after the hold (or a first backoff).
            Outcome::NotSent { after } => {
                let after = after.max(Duration::from_millis(d.retry_base_ms));
                let error = "not sent: the target asked for quiet, or an earlier request of the round failed".into();
                let next = now_us + after.as_micros() as i64;
                Close { uncount: true, ..close_as(row.outbox_id, Status::Pending, next, None, Some(error)) }
            }
            Outcome::PauseTarget { http_status, reason } => {
                Close { uncount: true, ..close_as(row.outbox_id, Status::Pending, now_us, http_status, Some(reason)) }
            }
            Outcome::Retry { http_status, error, after, .. } => {
                let age_hours = (now_us - row.created_us) / 3_600_000_000;
                if row.attempts >= d.max_attempts || age_hours >= d.max_age_hours as i64 {
                    let reason = format!("gave up after {} attempts: {error}", row.attempts);
                    return close_as(row.outbox_id, Status::Dead, now_us, http_status, Some(reason));
                }
                let base = Duration::from_millis(d.retry_base_ms);
                let delay = backoff(row.attempts, base, Duration::from_secs(d.retry_cap_secs), after);
                close_as(row.outbox_id, Status::Retry, now_us + delay.as_micros() as i64, http_status, Some(error))
            }
        }
    }
}

enum Next {
    Now,
    /// Look again after this, or when new rows are written.
    Poll(Duration),
    /// The target asked for quiet, or the circuit is open: nothing goes.
    Hold(Duration),
    /// Wait this long for more to deliver (a partial round).
    Linger(Duration),
}

impl Next {
    /// Of two rounds' answers (a stream's and the rows'), the one to follow.
    fn sooner(self, other: Next) -> Next {
        match (self, other) {
            (Next::Hold(h), _) | (_, Next::Hold(h)) => Next::Hold(h),
            (Next::Now, _) | (_, Next::Now) => Next::Now,
            (a, b) => {
                if a.wait() <= b.wait() {
                    a
                } else {
                    b
                }
            }
        }
    }

    fn wait(&self) -> Duration {
        match self {
            Next::Now => Duration::ZERO,
            Next::Poll(d) | Next::Hold(d) | Next::Linger(d) => *d,
        }
    }
}

/// Dead and parked rows wait for an operator, so each is said at WARN with
/// what the target answered (the reason holds the start of its answer,
/// `HTTP 422: …`; answers are the target's words about our request, never
/// our credentials). Other closes stay at debug: they need no one.
fn warn_of_rows_for_an_operator(target: &str, closes: &[Close]) {
    for c in closes.iter().filter(|c| matches!(c.status, Status::Dead | Status::Parked)) {
        tracing::warn!(
            target_name = %target,
            outbox_id = c.id,
            status = c.status.as_str(),
            http_status = ?c.http_status,
            reason = c.error.as_deref().unwrap_or(""),
            "forwarder row needs an operator"
        );
    }
}

fn close_as(id: i64, status: Status, next_attempt_us: i64, http_status: Option<u16>, error: Option<String>) -> Close {
    Close { id, status, next_attempt_us, http_status, error, uncount: false }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use actix_web::{HttpRequest, HttpResponse, web};
    use sea_orm::ConnectionTrait;

    use super::*;

    /// What a tracing subscriber wrote, for a test to read.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A school that mints tokens and refuses every other call as the real
    /// one refuses an empty unit id.
    async fn refusing_school(request: HttpRequest) -> HttpResponse {
        if request.path().ends_with("/oauth2/access_token") {
            return HttpResponse::Ok()
                .json(serde_json::json!({"tokenData": {"access_token": "tok-never-logged-42", "expires_in": 8000}}));
        }
        HttpResponse::UnprocessableEntity().json(serde_json::json!({"error": "Invalid learning activity id(s)"}))
    }

    /// A stored statement of `actor` completing `activity`, and its outbox row.
    async fn row(db: &DatabaseConnection, seq: i64, activity: &str) {
        let statement = serde_json::json!({"actor": {"mbox": "mailto:ann@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"}, "object": {"id": activity}});
        let id = format!("00000000-0000-4000-8000-{seq:012}");
        let key = crate::forward::router::order_key(&statement);
        let backend = db.get_database_backend();
        for text in [
            format!(
                "INSERT INTO statement (seq, id, stored_us, key_list, body) VALUES ({seq}, '{id}', 0, '', '{statement}')"
            ),
            format!(
                "INSERT INTO forward_outbox (target, op, statement_seq, statement_id, order_key, status, attempts, \
                 next_attempt_us, created_us, updated_us) VALUES ('lw', 'complete', {seq}, '{id}', '{key}', 'pending', \
                 0, 0, 0, 0)"
            ),
        ] {
            db.execute_raw(sea_orm::Statement::from_string(backend, text)).await.unwrap();
        }
    }

    #[actix_web::test]
    async fn dead_and_parked_rows_are_warned_of_with_their_reason() {
        let school = serve_school(refusing_school);
        let dir = tempfile::tempdir().unwrap();
        let course = "activity = \"https://lms.example.com/courses/fire\"\ncourse = \"fire\"";
        let config = learnworlds(dir.path(), &school, "lw-secret-never-logged", course);
        for db in crate::store::test_databases::each("dispatch_warns").await {
            row(&db, 1, "https://lms.example.com/courses/fire").await;
            row(&db, 2, "https://other.example.com/unmapped").await;
            let stop = watch::channel(false).1;
            let metrics = Arc::new(Metrics::new().unwrap());
            let target = &config.targets[0];
            let mut d = Dispatcher::new(db.clone(), target, Default::default(), stop, "n".into(), metrics).unwrap();

            let log = Log::default();
            let writer = log.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            let guard = tracing::subscriber::set_default(subscriber);
            d.round().await.unwrap();
            drop(guard);

            let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
            let warned: Vec<&str> = log.lines().filter(|l| l.contains("WARN xlrs::forward")).collect();
            assert_eq!(warned.len(), 2, "{log}");
            let (dead, parked) = (warned[0], warned[1]);
            for expected in ["target_name=lw", "outbox_id=1", "status=\"dead\"", "http_status=Some(422)"] {
                assert!(dead.contains(expected), "{expected} in {dead}");
            }
            assert!(dead.contains(r#"HTTP 422: {\"error\":\"Invalid learning activity id(s)\"}"#), "{dead}");
            for expected in ["target_name=lw", "outbox_id=2", "status=\"parked\"", "http_status=None"] {
                assert!(parked.contains(expected), "{expected} in {parked}");
            }
            assert!(parked.contains("no course is mapped for the activity https://other.example.com/unmapped"));
            assert!(!log.contains("lw-secret-never-logged") && !log.contains("tok-never-logged"), "{log}");
        }
    }

    /// A school that mints tokens and takes every completion.
    async fn accepting_school(request: HttpRequest) -> HttpResponse {
        if request.path().ends_with("/oauth2/access_token") {
            return HttpResponse::Ok()
                .json(serde_json::json!({"tokenData": {"access_token": "tok", "expires_in": 8000}}));
        }
        HttpResponse::Ok().json(serde_json::json!({"success": true}))
    }

    /// A LearnWorlds school answering every request with `handler`; its URL.
    fn serve_school<H, Args>(handler: H) -> String
    where
        H: actix_web::Handler<Args> + Clone + Send + 'static,
        Args: actix_web::FromRequest + 'static,
        H::Output: actix_web::Responder + 'static,
    {
        let server =
            actix_web::HttpServer::new(move || actix_web::App::new().default_service(web::to(handler.clone())))
                .workers(1)
                .bind(("127.0.0.1", 0))
                .unwrap();
        let school = format!("http://{}", server.addrs()[0]);
        actix_web::rt::spawn(server.run());
        school
    }

    /// A target `lw` on the LearnWorlds `school`, its credentials `secret`
    /// in a file of `dir`, with one `[[forwarder.course]]` rule (`course`).
    fn learnworlds(dir: &std::path::Path, school: &str, secret: &str, course: &str) -> ForwardingConfig {
        let file = dir.join("secret");
        std::fs::write(&file, secret).unwrap();
        ForwardingConfig::parse(&format!(
            "[[forwarder]]\nname = \"lw\"\nkind = \"learnworlds\"\nschool_url = \"{school}\"\n\
             client_id = {{ file = {file:?} }}\nclient_secret = {{ file = {file:?} }}\n\
             [[forwarder.course]]\n{course}\n"
        ))
        .unwrap()
    }

    async fn status_of(db: &DatabaseConnection, id: i64) -> Status {
        outbox::get(db, "lw", id).await.unwrap().expect("the row").status
    }

    #[actix_web::test]
    async fn parked_rows_are_pending_again_when_a_node_starts_with_new_course_rules() {
        let school = serve_school(accepting_school);
        let dir = tempfile::tempdir().unwrap();
        let config = |course: &str| {
            let rule = format!("activity = \"https://lms.example.com/courses/{course}\"\ncourse = \"{course}\"");
            learnworlds(dir.path(), &school, "s", &rule)
        };
        let (before, after) = (config("fire"), config("water"));
        for db in crate::store::test_databases::each("dispatch_remaps").await {
            row(&db, 1, "https://lms.example.com/courses/water").await;
            let run = |config: &ForwardingConfig| {
                let metrics = Arc::new(Metrics::new().unwrap());
                let stop = watch::channel(false).1;
                Dispatcher::new(db.clone(), &config.targets[0], Default::default(), stop, "n".into(), metrics).unwrap()
            };
            reexamine_parked_on_new_mappings(&db, &before).await.unwrap();
            run(&before).round().await.unwrap();
            assert_eq!(status_of(&db, 1).await, Status::Parked, "no rule maps the activity");
            // Started again with the same rules: the row stays parked.
            reexamine_parked_on_new_mappings(&db, &before).await.unwrap();
            assert_eq!(status_of(&db, 1).await, Status::Parked);
            // With a rule for it: pending, and delivered by the next round.
            reexamine_parked_on_new_mappings(&db, &after).await.unwrap();
            assert_eq!(status_of(&db, 1).await, Status::Pending);
            run(&after).round().await.unwrap();
            assert_eq!(status_of(&db, 1).await, Status::Succeeded);
        }
    }

    #[actix_web::test]
    async fn a_node_started_again_releases_its_own_claims_at_once() {
        let school = serve_school(accepting_school);
        let dir = tempfile::tempdir().unwrap();
        let course = "pattern = \"^https://lms.example.com/courses/(?P<c>.+)$\"\ncourse = \"$c\"";
        let config = learnworlds(dir.path(), &school, "s", course);
        let lease_us = 60_000_000;
        for db in crate::store::test_databases::each("dispatch_reclaims").await {
            // Two nodes each claimed a row under a 60 s lease, then died.
            row(&db, 1, "https://lms.example.com/courses/a").await;
            let now_us = Utc::now().timestamp_micros();
            assert_eq!(outbox::claim(&db, "lw", "node-a", 1, now_us, lease_us).await.unwrap().len(), 1);
            row(&db, 2, "https://lms.example.com/courses/b").await;
            assert_eq!(outbox::claim(&db, "lw", "node-b", 1, now_us, lease_us).await.unwrap().len(), 1);

            // node-a starts again: its claim is due now and delivered; node-b's waits out its lease.
            release_claims(&db, "node-a").await.unwrap();
            let stop = watch::channel(false).1;
            let metrics = Arc::new(Metrics::new().unwrap());
            let target = &config.targets[0];
            let mut d =
                Dispatcher::new(db.clone(), target, Default::default(), stop, "node-a".into(), metrics).unwrap();
            d.round().await.unwrap();
            assert_eq!(status_of(&db, 1).await, Status::Succeeded);
            assert_eq!(status_of(&db, 2).await, Status::InFlight, "another node's claim is left alone");
        }
    }
}
