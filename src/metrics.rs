//! Prometheus metrics, in one registry per app (tests run many apps in one
//! process; a global registry would mix their counts). Counters and
//! histograms are updated where things happen (writer, dispatchers, the
//! request middleware, live streams); the outbox gauges are read from the
//! database when `/metrics` is scraped, so every node reports the shared
//! queue as it is, and the pool gauges from the pool at that moment.
//!
//! Labels are target names, outcome and status words, and route patterns:
//! never credentials, actors or raw paths.

use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use sea_orm::{DatabaseConnection, DbBackend};

use crate::store::outbox;

pub struct Metrics {
    registry: Registry,
    /// Deliveries per target and outcome (`Outcome::label`).
    pub forward_attempts: IntCounterVec,
    /// Time of each adapter delivery call (one claim of rows).
    pub forward_delivery: HistogramVec,
    /// From a row's creation (its statement stored) to its delivery.
    pub forward_lag: HistogramVec,
    pub forward_dead_letters: IntCounterVec,
    /// Statements a stream target read after its cursor, by where from:
    /// `feed` (this node's last commits, in memory) or `database`.
    pub forward_stream_reads: IntCounterVec,
    pub statements_stored: IntCounter,
    /// Statements per group commit (one transaction of the writer).
    pub group_statements: Histogram,
    /// Requests per route pattern and status.
    pub http_requests: IntCounterVec,
    /// Time to the response head, per route pattern and method.
    pub http_duration: HistogramVec,
    /// Live-stream consumers connected now.
    pub stream_consumers: IntGauge,
    /// Live-stream consumers dropped for leaving their events unread.
    pub stream_dropped: IntCounter,
    /// Exports being streamed now.
    pub export_consumers: IntGauge,
    /// Statements sent by exports.
    pub export_statements: IntCounter,
}

impl Metrics {
    pub fn new() -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| -> anyhow::Result<HistogramVec> {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), &["target"])?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let seconds = |from: f64, factor: f64, count: usize| prometheus::exponential_buckets(from, factor, count);
        let statements_stored = IntCounter::new("xlrs_statements_stored_total", "Statements committed to the store")?;
        registry.register(Box::new(statements_stored.clone()))?;
        let group_statements = Histogram::with_opts(
            HistogramOpts::new("xlrs_writer_group_statements", "Statements stored by one group commit")
                .buckets(prometheus::exponential_buckets(1.0, 2.0, 14)?),
        )?;
        registry.register(Box::new(group_statements.clone()))?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "xlrs_http_request_duration_seconds",
                "Time from a request's arrival to its response head, by route pattern and method (for a \
                 streamed body, such as the live stream, an export or attachments, the head comes before the body)",
            )
            .buckets(seconds(0.001, 2.0, 15)?),
            &["route", "method"],
        )?;
        registry.register(Box::new(http_duration.clone()))?;
        let stream_consumers = IntGauge::new("xlrs_stream_consumers", "Live-stream consumers connected")?;
        registry.register(Box::new(stream_consumers.clone()))?;
        let stream_dropped = IntCounter::new(
            "xlrs_stream_dropped_total",
            "Live-stream consumers dropped because they left their events unread too long",
        )?;
        registry.register(Box::new(stream_dropped.clone()))?;
        let export_consumers = IntGauge::new("xlrs_export_consumers", "Exports being streamed now")?;
        registry.register(Box::new(export_consumers.clone()))?;
        let export_statements = IntCounter::new("xlrs_export_statements_total", "Statements sent by exports")?;
        registry.register(Box::new(export_statements.clone()))?;
        Ok(Metrics {
            forward_attempts: counter(
                "xlrs_forward_attempts_total",
                "Outbox rows delivered to a target, by outcome",
                &["target", "outcome"],
            )?,
            forward_delivery: histogram(
                "xlrs_forward_delivery_seconds",
                "Time of one delivery call to a target (a claim of rows)",
                seconds(0.005, 2.0, 14)?,
            )?,
            forward_lag: histogram(
                "xlrs_forward_lag_seconds",
                "From a statement stored to its row delivered",
                seconds(0.01, 3.0, 14)?,
            )?,
            forward_dead_letters: counter(
                "xlrs_forward_dead_letters_total",
                "Outbox rows that failed for good",
                &["target"],
            )?,
            forward_stream_reads: counter(
                "xlrs_forward_stream_reads_total",
                "Statements a stream target read after its cursor, from the feed (memory) or the database",
                &["target", "source"],
            )?,
            statements_stored,
            group_statements,
            http_requests: counter(
                "xlrs_http_requests_total",
                "HTTP requests by route pattern and status",
                &["route", "status"],
            )?,
            http_duration,
            stream_consumers,
            stream_dropped,
            export_consumers,
            export_statements,
            registry,
        })
    }

    /// Records one delivery call of `target` that took `took`.
    pub fn delivery(&self, target: &str, took: Duration) {
        self.forward_delivery.with_label_values(&[target]).observe(took.as_secs_f64());
    }

    /// The exposition text: the counters and histograms, then the outbox
    /// gauges of `targets` as the database holds them now.
    pub async fn render(&self, db: &DatabaseConnection, targets: &[&str]) -> anyhow::Result<String> {
        let mut families = self.registry.gather();
        families.extend(outbox_gauges(db, targets).await?.gather());
        families.extend(pool_gauges(db)?.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out)?;
        Ok(String::from_utf8(out)?)
    }
}

/// A registry of its own per scrape: labels of a target that is gone never
/// linger, and concurrent scrapes cannot see each other's half-set values.
async fn outbox_gauges(db: &DatabaseConnection, targets: &[&str]) -> anyhow::Result<Registry> {
    let registry = Registry::new();
    let depth = IntGaugeVec::new(
        Opts::new("xlrs_forward_queue_depth", "Outbox rows waiting, per target and status"),
        &["target", "status"],
    )?;
    let oldest = GaugeVec::new(
        Opts::new(
            "xlrs_forward_oldest_pending_age_seconds",
            "Age of the oldest row not delivered yet (pending, in flight, retry); 0 when none",
        ),
        &["target"],
    )?;
    let paused = IntGaugeVec::new(
        Opts::new("xlrs_forward_target_paused", "1 while a target is paused (by an operator or a refusal)"),
        &["target"],
    )?;
    registry.register(Box::new(depth.clone()))?;
    registry.register(Box::new(oldest.clone()))?;
    registry.register(Box::new(paused.clone()))?;
    let now_us = chrono::Utc::now().timestamp_micros();
    let pauses = outbox::pauses(db).await?;
    for target in targets {
        let (rows, oldest_us) = outbox::queue(db, target).await?;
        for status in outbox::WAITING {
            let n = rows.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
            depth.with_label_values(&[*target, status.as_str()]).set(n);
        }
        let age = oldest_us.map_or(0.0, |created| (now_us - created).max(0) as f64 / 1e6);
        oldest.with_label_values(&[*target]).set(age);
        let is_paused = pauses.iter().any(|(t, until, _)| t == target && *until > now_us);
        paused.with_label_values(&[*target]).set(i64::from(is_paused));
    }
    Ok(registry)
}

/// The request pool of `db` as it is now (the SQLite writer's own
/// connection and the forwarders' pool are not in it).
fn pool_gauges(db: &DatabaseConnection) -> anyhow::Result<Registry> {
    let (size, idle, max) = match db.get_database_backend() {
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle(), pool.options().get_max_connections())
        }
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle(), pool.options().get_max_connections())
        }
        _ => return Ok(Registry::new()),
    };
    let registry = Registry::new();
    let connections = IntGaugeVec::new(
        Opts::new("xlrs_db_pool_connections", "Open connections of the database pool, idle or in use"),
        &["state"],
    )?;
    let most = IntGauge::new("xlrs_db_pool_max_connections", "Connections the database pool may open")?;
    registry.register(Box::new(connections.clone()))?;
    registry.register(Box::new(most.clone()))?;
    // Read one after the other, the two can disagree for a moment.
    let idle = (idle as i64).min(i64::from(size));
    connections.with_label_values(&["idle"]).set(idle);
    connections.with_label_values(&["in_use"]).set(i64::from(size) - idle);
    most.set(i64::from(max));
    Ok(registry)
}
