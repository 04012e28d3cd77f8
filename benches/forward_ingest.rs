//! Ingest throughput with forwarding on and off: the same load of statement
//! batches against a fresh `xlrs serve` with no forwarders, then with three
//! (a backup LRS taking every statement, a webhook taking completions, a
//! second LRS taking course activities), alternating, several rounds. The
//! targets are sinks in this process that answer at once, so what is measured
//! is what forwarding costs xlrs itself: the dispatchers' reads, calls and
//! cursor moves (and, for a platform target, the outbox rows written in the
//! group commit and their claims and closes) competing with ingest.
//!
//! `cargo bench --bench forward_ingest -- [--seconds 20] [--rounds 3]
//!  [--concurrency 4] [--batch 100] [--split] [--postgres postgres://postgres@127.0.0.1:5432]`
//!
//! `--split` adds a run with every target paused: the statements are stored
//! (and the rows of row targets written) but none is delivered, which
//! separates the writer's share of the cost from the dispatchers'.
//!
//! The three targets are stream targets (another LRS, a webhook): they follow
//! the statement table with a cursor. `--platform` adds a run in which the
//! course LRS is replaced by HiBob Bob Learning, a platform target with an
//! outbox row per course outcome and catalog entry (Bob's own rate limits
//! hold its deliveries to 5/s, so its rows pile up: what is measured is
//! their writing and claiming).
//!
//! Method and figures: docs/benchmarks.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

#[path = "support/server.rs"]
mod server;

use server::{KEY, SECRET, Served, cpu_secs};

struct Args {
    seconds: u64,
    rounds: usize,
    concurrency: usize,
    batch: usize,
    postgres: Option<String>,
    /// Also a run with the targets paused.
    split: bool,
    /// Also a run with a platform target (Bob) in place of the course LRS.
    platform: bool,
}

fn args() -> Args {
    let mut a =
        Args { seconds: 20, rounds: 3, concurrency: 4, batch: 100, postgres: None, split: false, platform: false };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match flag.as_str() {
            "--seconds" => a.seconds = value().parse().expect("--seconds N"),
            "--rounds" => a.rounds = value().parse().expect("--rounds N"),
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency N"),
            "--batch" => a.batch = value().parse().expect("--batch N"),
            "--postgres" => a.postgres = Some(value()),
            "--split" => a.split = true,
            "--platform" => a.platform = true,
            // cargo bench passes --bench; nothing else is ours.
            _ => {}
        }
    }
    a
}

/// Statements of many learners on course and module activities, a fifth of
/// them outcomes (completed / passed / failed), from a seed.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn statement(&mut self) -> Value {
        const VERBS: [(&str, u64); 6] = [
            ("experienced", 40),
            ("attempted", 20),
            ("progressed", 20),
            ("completed", 12),
            ("passed", 6),
            ("failed", 2),
        ];
        let mut pick = self.next() % 100;
        let verb = VERBS
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap()
            .0;
        let activity = self.next() % 200;
        let kind = if activity.is_multiple_of(2) { "course" } else { "module" };
        let mut s = json!({
            "actor": {"objectType": "Agent", "name": "Learner", "mbox": format!("mailto:learner-{}@example.com", self.next() % 5000)},
            "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}"), "display": {"en-US": verb}},
            "object": {"objectType": "Activity", "id": format!("https://lms.example.com/{kind}s/{activity}"),
                       "definition": {"type": format!("http://adlnet.gov/expapi/activities/{kind}"),
                                      "name": {"en-US": format!("{kind} {activity}")}}},
            "context": {"registration": uuid::Uuid::new_v4().to_string(),
                        "contextActivities": {"parent": [{"id": "https://lms.example.com/programmes/1"}]}},
        });
        if matches!(verb, "completed" | "passed" | "failed") {
            let scaled = (self.next() % 101) as f64 / 100.0;
            s["result"] = json!({"score": {"scaled": scaled}, "success": verb != "failed", "completion": true,
                                 "duration": "PT12M30S"});
        }
        s
    }
}

/// The forwarding targets: answers every delivery with success at once.
fn start_sinks() -> (String, Arc<AtomicU64>) {
    let received = Arc::new(AtomicU64::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counter = received.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let counter = counter.clone();
                App::new().app_data(web::PayloadConfig::new(64 << 20)).default_service(web::to(
                    move |req: HttpRequest, body: web::Bytes| {
                        let counter = counter.clone();
                        async move {
                            // A statement has one "actor": count deliveries without parsing them.
                            let n = memchr::memmem::find_iter(&body, b"\"actor\"").count() as u64;
                            counter.fetch_add(n, Ordering::Relaxed);
                            if req.path().ends_with("/training-content") {
                                return HttpResponse::Ok().json(bob_catalog_answer(&body));
                            }
                            if req.method() == "PUT" {
                                HttpResponse::NoContent().finish()
                            } else {
                                HttpResponse::Ok().json(json!([]))
                            }
                        }
                    },
                ))
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap()
        })
    });
    (url, received)
}

/// Bob's answer to a catalog call: every item taken.
fn bob_catalog_answer(body: &[u8]) -> Value {
    let items: Value = serde_json::from_slice(body).unwrap_or_default();
    let ids: Vec<Value> = items["items"]
        .as_array()
        .map(|a| a.iter().map(|i| i["/trainingContent/externalIdentifier"].clone()).collect())
        .unwrap_or_default();
    json!({ "success": ids })
}

/// The backup LRS and the webhook, with Bob taking the course activities.
fn with_platform(sink: &str) -> String {
    let fast = "delivery = { batch_size = 1000, rate_per_sec = 5000.0, burst = 500, linger_ms = 1000 }";
    let three = three_targets(sink);
    let streams = &three[..three.find("[[forwarder]]\n        name = \"courses\"").unwrap()];
    format!(
        r#"{streams}
        [[forwarder]]
        name = "courses"
        kind = "hibob"
        url = "{sink}/bob/v1"
        provider_identifier = "xlrs-bench"
        service_user_id = {{ env = "BENCH_BOB_ID" }}
        service_user_token = {{ env = "BENCH_BOB_TOKEN" }}
        {fast}
        [[forwarder.route]]
        activity_types = ["http://adlnet.gov/expapi/activities/course"]
        "#
    )
}

fn three_targets(sink: &str) -> String {
    let fast = "delivery = { batch_size = 1000, rate_per_sec = 5000.0, burst = 500, linger_ms = 1000 }";
    format!(
        r#"
        [[forwarder]]
        name = "backup"
        kind = "xapi_lrs"
        url = "{sink}/backup/xapi"
        {fast}

        [[forwarder]]
        name = "completions"
        kind = "webhook"
        url = "{sink}/hook"
        {fast}
        [[forwarder.route]]
        verbs = ["completed", "passed", "failed"]

        [[forwarder]]
        name = "courses"
        kind = "xapi_lrs"
        url = "{sink}/courses/xapi"
        {fast}
        [[forwarder.route]]
        activity_types = ["http://adlnet.gov/expapi/activities/course"]
        "#
    )
}

fn serve(database_url: &str, forwarders: Option<&std::path::Path>) -> Served {
    let mut env = vec![("BENCH_BOB_ID", "bench"), ("BENCH_BOB_TOKEN", "bench-token")];
    let path = forwarders.map(|p| p.display().to_string());
    if let Some(path) = &path {
        env.push(("XLRS_FORWARDERS", path.as_str()));
    }
    server::serve(database_url, &env)
}

struct Run {
    statements: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Outbox rows not yet delivered when the load stopped, and how long
    /// until none was left.
    backlog: i64,
    drain_secs: f64,
    /// CPU time per 1,000 statements stored during the load: of `xlrs
    /// serve`, and of this process (load generator and the targets' sinks).
    server_cpu_ms_per_k: f64,
    bench_cpu_ms_per_k: f64,
}

fn own_cpu_secs() -> f64 {
    cpu_secs(std::process::id())
}

async fn load(port: u16, a: &Args, seed: u64) -> (u64, f64, Vec<u64>) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/xapi/statements");
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.concurrency {
        let (client, url, batch) = (client.clone(), url.clone(), a.batch);
        tasks.push(tokio::spawn(async move {
            let mut generator = Generator(seed * 1000 + c as u64);
            let (mut stored, mut latencies) = (0u64, Vec::new());
            while Instant::now() < deadline {
                let body: Vec<Value> = (0..batch).map(|_| generator.statement()).collect();
                let body = serde_json::to_vec(&body).unwrap();
                let sent = Instant::now();
                let res = client
                    .post(&url)
                    .basic_auth(KEY, Some(SECRET))
                    .header("X-Experience-API-Version", "1.0.3")
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("POST");
                assert!(res.status().is_success(), "POST answered {}", res.status());
                res.bytes().await.unwrap();
                latencies.push(sent.elapsed().as_micros() as u64);
                stored += batch as u64;
            }
            (stored, latencies)
        }));
    }
    let (mut stored, mut latencies) = (0, Vec::new());
    for t in tasks {
        let (s, l) = t.await.unwrap();
        stored += s;
        latencies.extend(l);
    }
    (stored, start.elapsed().as_secs_f64(), latencies)
}

async fn open_rows(database_url: &str) -> i64 {
    let db =
        xlrs::store::connect(&xlrs::config::DatabaseArgs { url: database_url.into(), pool_size: 1 }).await.unwrap();
    let counts = xlrs::store::outbox::counts(&db).await.unwrap();
    db.close().await.ok();
    use xlrs::store::outbox::Status;
    counts
        .iter()
        .filter(|c| matches!(c.status, Status::Pending | Status::InFlight | Status::Retry))
        .map(|c| c.rows)
        .sum()
}

async fn fresh_database(a: &Args, dir: &std::path::Path, name: &str) -> String {
    server::fresh_database(a.postgres.as_deref(), dir, name).await
}

async fn drop_database(a: &Args, url: &str) {
    server::drop_database(a.postgres.as_deref(), url).await
}

/// Forwarding off, on, or on with every target paused: outbox rows written
/// with the statements but none delivered (what the writer's share costs).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    None,
    Three,
    ThreePaused,
    Platform,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Three => "3 targets",
            Mode::ThreePaused => "3 targets, paused (stored, none sent)",
            Mode::Platform => "LRS + webhook + Bob (rows)",
        }
    }
}

async fn pause_all(database_url: &str) {
    let db =
        xlrs::store::connect(&xlrs::config::DatabaseArgs { url: database_url.into(), pool_size: 1 }).await.unwrap();
    xlrs::store::migrate(&db).await.unwrap();
    for target in ["backup", "completions", "courses"] {
        xlrs::store::outbox::set_pause(&db, target, Some(i64::MAX), Some("bench"), 0).await.unwrap();
    }
    db.close().await.ok();
}

async fn run(a: &Args, mode: Mode, configs: &Configs, dir: &std::path::Path, name: &str, seed: u64) -> Run {
    let config = if mode == Mode::Platform { &configs.platform } else { &configs.three };
    let url = fresh_database(a, dir, name).await;
    if mode == Mode::ThreePaused {
        pause_all(&url).await;
    }
    let served = serve(&url, (mode != Mode::None).then_some(config.as_path()));
    let (cpu_before, own_before) = (cpu_secs(served.child.id()), own_cpu_secs());
    let (statements, secs, mut latencies) = load(served.port, a, seed).await;
    let server_cpu = cpu_secs(served.child.id()) - cpu_before;
    let bench_cpu = own_cpu_secs() - own_before;
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)] as f64 / 1000.0;
    let (backlog, drain_start) = (open_rows(&url).await, Instant::now());
    let mut left = backlog;
    while mode == Mode::Three && left > 0 && drain_start.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = open_rows(&url).await;
    }
    let drain_secs = drain_start.elapsed().as_secs_f64();
    drop(served);
    drop_database(a, &url).await;
    Run {
        statements,
        secs,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        backlog,
        drain_secs,
        server_cpu_ms_per_k: server_cpu * 1e6 / statements as f64,
        bench_cpu_ms_per_k: bench_cpu * 1e6 / statements as f64,
    }
}

struct Configs {
    three: std::path::PathBuf,
    platform: std::path::PathBuf,
}

#[tokio::main]
async fn main() {
    let a = args();
    let (sink, received) = start_sinks();
    let dir = tempfile::tempdir().unwrap();
    let configs = Configs { three: dir.path().join("three.toml"), platform: dir.path().join("platform.toml") };
    std::fs::write(&configs.three, three_targets(&sink)).unwrap();
    std::fs::write(&configs.platform, with_platform(&sink)).unwrap();
    let backend = if a.postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    println!(
        "ingest, {backend}: POST batches of {} at c={}, {} s per run, {} rounds\n",
        a.batch, a.concurrency, a.seconds, a.rounds
    );
    println!(
        "| round | forwarding | statements/s | p50 ms | p99 ms | backlog at end | drained in s | xlrs CPU ms / 1k | bench CPU ms / 1k |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let (mut off, mut on, mut paused, mut platform) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut modes = vec![Mode::None, Mode::Three];
    if a.split {
        modes.push(Mode::ThreePaused);
    }
    if a.platform {
        modes.push(Mode::Platform);
    }
    for round in 0..a.rounds {
        for (m, mode) in modes.iter().enumerate() {
            let r = run(&a, *mode, &configs, dir.path(), &format!("{round}_{m}"), round as u64).await;
            let rate = r.statements as f64 / r.secs;
            println!(
                "| {} | {} | {rate:.0} | {:.1} | {:.1} | {} | {:.1} | {:.0} | {:.0} |",
                round + 1,
                mode.label(),
                r.p50_ms,
                r.p99_ms,
                r.backlog,
                r.drain_secs,
                r.server_cpu_ms_per_k,
                r.bench_cpu_ms_per_k
            );
            match mode {
                Mode::None => off.push(rate),
                Mode::Three => on.push(rate),
                Mode::ThreePaused => paused.push(rate),
                Mode::Platform => platform.push(rate),
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (off, on) = (median(&mut off), median(&mut on));
    println!(
        "\nmedian: {off:.0} statements/s without forwarding, {on:.0} with three targets: {:.1} % of it \
         ({} deliveries received by the targets)",
        100.0 * on / off,
        received.load(Ordering::Relaxed)
    );
    if !paused.is_empty() {
        let paused = median(&mut paused);
        println!(
            "with three targets paused (stored, none sent): {paused:.0} statements/s, {:.1} %",
            100.0 * paused / off
        );
    }
    if !platform.is_empty() {
        let platform = median(&mut platform);
        println!("with the LRS, the webhook and Bob: {platform:.0} statements/s, {:.1} %", 100.0 * platform / off);
    }
}
