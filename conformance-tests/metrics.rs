//! `GET /metrics`: forwarding counters and the outbox as it is, in the
//! Prometheus text format, per app (tests run many apps in one process, so
//! exact counts also show no app sees another's).

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::admin::{admin, base, call};
use crate::forwarding::{Forwarding, LRS_SECRETS, WAIT, lrs_target, with_verb};
use crate::helpers::*;
use crate::on_both_backends;
use crate::simulators::Simulator;
use crate::simulators::lrs::Lrs;
use crate::stream::{WAIT as STREAM_WAIT, open, stream_request};

/// One sample: metric name and labels.
pub struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|l| !l.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("label=value");
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        samples.push(Sample { name: name.to_owned(), labels, value: value.parse().expect("a number") });
    }
    samples
}

/// The value of `name` with (at least) these labels, if exposed.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
}

pub async fn scrape(app: &TestApp) -> (String, Vec<Sample>) {
    let res = app.client.get(format!("{}/metrics", base(app))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "unauthenticated scrape");
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = res.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

forwarding_test!(metrics_count_attempts_by_outcome_and_dead_letters);
async fn metrics_count_attempts_by_outcome_and_dead_letters(backend: Backend) {
    let refused = "http://example.com/verbs/refused";
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    sim.behaviour.refused_verbs.lock().unwrap().push(refused.into());
    let config = lrs_target("backup", &sim.url, "delivery = { retry_base_ms = 20, retry_cap_secs = 1 }");
    let Some(f) = Forwarding::start(backend, &config, LRS_SECRETS).await else { return };
    sim.fail(503, None, Duration::from_millis(400));
    f.app.store(&json!([statement(), with_verb(refused), statement()])).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 2).await);
    f.settled().await;

    let (text, m) = scrape(&f.app).await;
    let backup = ("target", "backup");
    let attempts = |outcome| value(&m, "xlrs_forward_attempts_total", &[backup, ("outcome", outcome)]);
    assert_eq!(attempts("delivered"), Some(2.0), "{text}");
    assert_eq!(attempts("permanent"), Some(1.0), "{text}");
    assert!(attempts("transient").unwrap_or(0.0) >= 1.0, "the outage was met: {text}");
    assert_eq!(value(&m, "xlrs_forward_dead_letters_total", &[backup]), Some(1.0), "{text}");
    let depth = |status| value(&m, "xlrs_forward_queue_depth", &[backup, ("status", status)]);
    assert_eq!(depth("dead"), Some(1.0), "{text}");
    assert_eq!(depth("pending"), Some(0.0), "{text}");
    assert_eq!(depth("retry"), Some(0.0), "{text}");
    assert_eq!(value(&m, "xlrs_forward_oldest_pending_age_seconds", &[backup]), Some(0.0));
    assert_eq!(value(&m, "xlrs_forward_target_paused", &[backup]), Some(0.0));
    assert_eq!(value(&m, "xlrs_forward_lag_seconds_count", &[backup]), Some(2.0), "one per row delivered");
    assert!(value(&m, "xlrs_forward_delivery_seconds_count", &[backup]).unwrap() >= 2.0, "{text}");
    assert_eq!(value(&m, "xlrs_statements_stored_total", &[]), Some(3.0), "this app's statements only");
    let posts = value(&m, "xlrs_http_requests_total", &[("route", "/xapi/statements"), ("status", "200")]);
    assert_eq!(posts, Some(1.0), "{text}");
    for secret in ["fwd-secret", ADMIN_SECRET] {
        assert!(!text.contains(secret), "no secret in the metrics");
    }
}

forwarding_test!(metrics_show_a_paused_queue_and_its_age);
async fn metrics_show_a_paused_queue_and_its_age(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let Some(f) = Forwarding::start(backend, &lrs_target("backup", &sim.url, ""), LRS_SECRETS).await else {
        return;
    };
    let (status, _) = call(admin(&f.app, Method::POST, "/admin/forwarders/backup/pause")).await;
    assert_eq!(status, StatusCode::OK);
    f.app.store(&json!([statement(), statement()])).await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    let (text, m) = scrape(&f.app).await;
    let backup = ("target", "backup");
    assert_eq!(value(&m, "xlrs_forward_queue_depth", &[backup, ("status", "pending")]), Some(2.0), "{text}");
    assert_eq!(value(&m, "xlrs_forward_target_paused", &[backup]), Some(1.0), "{text}");
    let age = value(&m, "xlrs_forward_oldest_pending_age_seconds", &[backup]).unwrap();
    assert!((0.5..60.0).contains(&age), "{age}");
    assert_eq!(value(&m, "xlrs_forward_attempts_total", &[backup]), None, "nothing attempted: {text}");
    // Requests are counted by route pattern, not by the path asked.
    let pause = [("route", "/admin/forwarders/{target}/pause"), ("status", "200")];
    assert_eq!(value(&m, "xlrs_http_requests_total", &pause), Some(1.0), "{text}");
    assert!(!text.contains("backup/pause"), "{text}");

    let (status, _) = call(admin(&f.app, Method::POST, "/admin/forwarders/backup/resume")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 2).await);
    f.settled().await;
    let (text, m) = scrape(&f.app).await;
    assert_eq!(value(&m, "xlrs_forward_queue_depth", &[backup, ("status", "pending")]), Some(0.0), "{text}");
    assert_eq!(value(&m, "xlrs_forward_target_paused", &[backup]), Some(0.0), "{text}");
    assert_eq!(value(&m, "xlrs_forward_attempts_total", &[backup, ("outcome", "delivered")]), Some(2.0));
}

forwarding_test!(a_stream_target_takes_what_this_node_just_stored_from_memory);
async fn a_stream_target_takes_what_this_node_just_stored_from_memory(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let Some(f) = Forwarding::start(backend, &lrs_target("backup", &sim.url, ""), LRS_SECRETS).await else {
        return;
    };
    f.app.store(&json!((0..5).map(|_| statement()).collect::<Vec<_>>())).await;
    f.app.store(&statement()).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 6).await);
    let (text, m) = scrape(&f.app).await;
    let reads = |source| value(&m, "xlrs_forward_stream_reads_total", &[("target", "backup"), ("source", source)]);
    // A round that starts between a commit and its statements reaching the
    // feed (a poll) reads them from the database: rare, and still correct.
    let (feed, database) = (reads("feed").unwrap_or(0.0), reads("database").unwrap_or(0.0));
    assert_eq!(feed + database, 6.0, "each statement read once: {text}");
    assert!(feed >= 5.0, "what this node stored is taken from memory: {text}");
}

on_both_backends!(request_latency_is_a_histogram_per_route_and_method);
async fn request_latency_is_a_histogram_per_route_and_method(app: TestApp) {
    app.store(&statement()).await;
    app.store(&statement()).await;
    app.ids("limit=1").await;
    let (text, m) = scrape(&app).await;
    let name = "xlrs_http_request_duration_seconds";
    let posts = [("route", "/xapi/statements"), ("method", "POST")];
    assert_eq!(value(&m, &format!("{name}_count"), &posts), Some(2.0), "{text}");
    let gets = [("route", "/xapi/statements"), ("method", "GET")];
    assert_eq!(value(&m, &format!("{name}_count"), &gets), Some(1.0), "{text}");
    let sum = value(&m, &format!("{name}_sum"), &posts).unwrap();
    assert!(sum > 0.0 && sum < 60.0, "{sum}");
    let everything = [("route", "/xapi/statements"), ("method", "POST"), ("le", "+Inf")];
    assert_eq!(value(&m, &format!("{name}_bucket"), &everything), Some(2.0), "{text}");
}

on_both_backends!(pool_gauges_show_the_database_pool);
async fn pool_gauges_show_the_database_pool(app: TestApp) {
    app.store(&statement()).await;
    let (text, m) = scrape(&app).await;
    // helpers::serve_args sets a pool of 4.
    assert_eq!(value(&m, "xlrs_db_pool_max_connections", &[]), Some(4.0), "{text}");
    let idle = value(&m, "xlrs_db_pool_connections", &[("state", "idle")]).expect("idle connections");
    let in_use = value(&m, "xlrs_db_pool_connections", &[("state", "in_use")]).expect("connections in use");
    assert!(idle >= 0.0 && in_use >= 0.0, "{text}");
    assert!((1.0..=4.0).contains(&(idle + in_use)), "at least one connection open, at most the pool: {text}");
}

on_both_backends!(the_stream_consumer_gauge_follows_consumers);
async fn the_stream_consumer_gauge_follows_consumers(app: TestApp) {
    let consumers = |m: &[Sample]| value(m, "xlrs_stream_consumers", &[]);
    assert_eq!(consumers(&scrape(&app).await.1), Some(0.0));
    let mut first = open(stream_request(&app, "")).await;
    let second = open(stream_request(&app, "")).await;
    assert_eq!(consumers(&scrape(&app).await.1), Some(2.0));
    app.store(&statement()).await;
    first.take(1).await;
    drop(first);
    drop(second);
    // A gone client is noticed when an event to it fails to go out.
    let deadline = std::time::Instant::now() + STREAM_WAIT;
    while consumers(&scrape(&app).await.1) != Some(0.0) {
        assert!(std::time::Instant::now() < deadline, "the consumers were never let go");
        app.store(&statement()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(value(&scrape(&app).await.1, "xlrs_stream_dropped_total", &[]), Some(0.0), "gone, not dropped");
}
