//! The load harness: drives a fresh `xlrs serve` (a child process, release
//! build) over HTTP with generated statements, scenario by scenario, at a
//! fixed concurrency for a fixed time, and prints a Markdown table of
//! throughput, latency percentiles and the server's memory.
//!
//! `cargo bench --bench load -- [--seconds 10] [--fill 1000000]
//!  [--postgres postgres://postgres@127.0.0.1:5432] [--only name,name] [--smoke]
//!  [--mix real-world|lean] [--progress false]`
//!
//! Each write scenario also gives what a stored statement cost the server:
//! CPU (user + system, /proc/<pid>/stat) and bytes it wrote to storage
//! (/proc/<pid>/io `write_bytes`), over the scenario.
//!
//! `--fill N` stores N statements (batches of 500, c=4) before the read
//! scenarios; `--smoke` runs every scenario for a moment on a small store
//! and fails on any refused request (CI runs it). Method and figures:
//! docs/benchmarks.md.

#[path = "../support/server.rs"]
mod server;

mod generator;
mod scenarios;

use std::future::Future;
use std::time::{Duration, Instant};

pub struct Args {
    pub seconds: f64,
    pub fill: u64,
    pub postgres: Option<String>,
    pub only: Vec<String>,
    pub smoke: bool,
    /// How deep the deep `more` page is (pages of 50).
    pub depth: u32,
    /// The generator's mix: the real-world one unless `--mix lean`.
    pub lean: bool,
    /// The server keeps learner progress (`--progress false`: it does not).
    pub progress: bool,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 10.0,
        fill: 1_000_000,
        postgres: None,
        only: Vec::new(),
        smoke: false,
        depth: 1000,
        lean: false,
        progress: true,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match flag.as_str() {
            "--seconds" => a.seconds = value().parse().expect("--seconds S"),
            "--fill" => a.fill = value().parse().expect("--fill N"),
            "--postgres" => a.postgres = Some(value()),
            "--only" => a.only = value().split(',').map(str::to_owned).collect(),
            "--depth" => a.depth = value().parse().expect("--depth N"),
            "--smoke" => a.smoke = true,
            "--mix" => {
                a.lean = match value().as_str() {
                    "lean" => true,
                    "real-world" => false,
                    other => panic!("--mix real-world|lean, not {other:?}"),
                }
            }
            "--progress" => a.progress = value().parse().expect("--progress true|false"),
            // cargo bench passes --bench; nothing else is ours.
            _ => {}
        }
    }
    if a.smoke {
        (a.seconds, a.fill, a.depth) = (a.seconds.min(1.0), a.fill.min(3_000), a.depth.min(5));
    }
    a
}

/// What one scenario measured.
#[derive(Default)]
pub struct Stats {
    pub requests: u64,
    /// Answers that were not 2xx (or no answer).
    pub errors: u64,
    pub statements: u64,
    pub secs: f64,
    /// Latency of every request, µs.
    pub latencies: Vec<u64>,
    /// The first refusal, to show.
    pub first_error: Option<String>,
    /// The server's peak RSS during the scenario, where it was watched.
    pub peak_rss_mib: Option<f64>,
}

impl Stats {
    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 * q) as usize).min(self.latencies.len() - 1);
        self.latencies[i] as f64 / 1000.0
    }
}

/// What a request did: whether it was answered 2xx, how many statements it
/// carried or returned, and the answer when it was refused.
pub struct Done {
    pub ok: bool,
    pub statements: u64,
    pub error: Option<String>,
    /// Nothing was sent: the worker has done its part (a fill is complete).
    pub stop: bool,
}

impl Done {
    pub fn ok(statements: u64) -> Done {
        Done { ok: true, statements, error: None, stop: false }
    }

    pub fn refused(error: String) -> Done {
        Done { ok: false, statements: 0, error: Some(error), stop: false }
    }

    pub fn stop() -> Done {
        Done { ok: true, statements: 0, error: None, stop: true }
    }
}

/// Runs `request(worker, n)` from `concurrency` workers, each one after
/// another, until `seconds` are up (or the worker is told to stop).
pub async fn drive<F, Fut>(concurrency: usize, seconds: f64, request: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Done> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut n = 0;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let done = request(worker, n).await;
                if done.stop {
                    break;
                }
                stats.latencies.push(sent.elapsed().as_micros() as u64);
                stats.requests += 1;
                stats.statements += done.statements;
                if !done.ok {
                    stats.errors += 1;
                    stats.first_error = stats.first_error.or(done.error);
                }
                n += 1;
            }
            stats
        }));
    }
    let mut all = Stats::default();
    for t in tasks {
        let s = t.await.expect("worker");
        all.requests += s.requests;
        all.errors += s.errors;
        all.statements += s.statements;
        all.latencies.extend(s.latencies);
        all.first_error = all.first_error.or(s.first_error);
    }
    all.secs = start.elapsed().as_secs_f64();
    all.latencies.sort_unstable();
    all
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let backend = if a.postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    generator::use_lean_mix(a.lean);
    let url = server::fresh_database(a.postgres.as_deref(), dir.path(), "load").await;
    let progress = a.progress.to_string();
    let served = server::serve(&url, &[("XLRS_PROGRESS", progress.as_str())]);
    let pid = served.child.id();
    let lrs = scenarios::Lrs::new(served.port, pid);
    let mix = if a.lean { "lean" } else { "real-world" };
    println!(
        "{backend}, the {mix} mix, progress {}, {} s per scenario, read scenarios on {} statements\n",
        if a.progress { "on" } else { "off" },
        a.seconds,
        a.fill
    );
    println!(
        "| scenario | c | requests/s | statements/s | p50 ms | p90 ms | p99 ms | max ms | errors | server RSS MiB | statements per commit | server CPU µs per statement | KB written per statement |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut refused = 0;
    for scenario in scenarios::all(&a) {
        if !a.only.is_empty() && !a.only.iter().any(|o| scenario.name.starts_with(o.as_str())) {
            continue;
        }
        let before = lrs.commits().await;
        let (cpu_before, written_before) = (server::cpu_secs(pid), server::written_bytes(pid));
        let stats = scenario.run(&lrs, &a).await;
        if a.progress && scenario.writes() {
            // Counting may lag the commits: what a stored statement cost
            // includes its counting.
            lrs.progress_counted().await;
        }
        let (cpu, written) =
            (server::cpu_secs(pid) - cpu_before, server::written_bytes(pid).saturating_sub(written_before));
        let after = lrs.commits().await;
        let (cpu_per, written_per) = match (scenario.writes(), stats.statements) {
            (true, n) if n > 0 => {
                (format!("{:.0}", cpu * 1e6 / n as f64), format!("{:.1}", written as f64 / 1024.0 / n as f64))
            }
            _ => ("–".to_owned(), "–".to_owned()),
        };
        let per_commit = match after.1 - before.1 {
            0.0 => "–".to_owned(),
            commits => format!("{:.0}", (after.0 - before.0) / commits),
        };
        let rate = |n: u64| n as f64 / stats.secs.max(1e-9);
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.0} | {per_commit} | {cpu_per} | {written_per} |",
            scenario.name,
            scenario.concurrency,
            rate(stats.requests),
            rate(stats.statements),
            stats.percentile_ms(0.5),
            stats.percentile_ms(0.9),
            stats.percentile_ms(0.99),
            stats.percentile_ms(1.0),
            stats.errors,
            stats.peak_rss_mib.unwrap_or_else(|| server::rss_mib(served.child.id())),
        );
        if let Some(e) = &stats.first_error {
            eprintln!("{}: first refusal: {e}", scenario.name);
        }
        refused += stats.errors;
    }
    let stored = lrs.count().await;
    let bytes = server::database_bytes(a.postgres.as_deref(), &url).await;
    println!(
        "\n{stored} statements stored; database {:.0} MiB, {:.0} bytes per statement; server RSS {:.0} MiB",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / stored.max(1) as f64,
        server::rss_mib(served.child.id())
    );
    drop(served);
    server::drop_database(a.postgres.as_deref(), &url).await;
    if a.smoke && refused > 0 {
        eprintln!("smoke: {refused} requests refused");
        std::process::exit(1);
    }
}
