//! What the benchmarks share: an `xlrs serve` child process on a fresh
//! database, and what /proc says about a process.

// Each benchmark uses some of these.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const KEY: &str = "bench";
pub const SECRET: &str = "bench-secret";

/// A running `xlrs serve`, killed when dropped.
pub struct Served {
    pub child: Child,
    pub port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the release `xlrs serve` on `database_url` with an admin
/// credential (`KEY`, `SECRET`) and `env`, and waits for its port.
/// `XLRS_BENCH_SERVER` names another build's binary: runs of a change and of
/// what it changes alternate with the same harness.
pub fn serve(database_url: &str, env: &[(&str, &str)]) -> Served {
    let binary = std::env::var_os("XLRS_BENCH_SERVER").unwrap_or_else(|| env!("CARGO_BIN_EXE_xlrs").into());
    let mut cmd = Command::new(binary);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", database_url])
        .env("XLRS_ADMIN_KEY", KEY)
        .env("XLRS_ADMIN_SECRET", SECRET)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn xlrs serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let port = loop {
        let Some(Ok(line)) = lines.next() else { panic!("xlrs serve exited:\n{}", seen.join("\n")) };
        seen.push(line.clone());
        if let Some(p) = line.split("port=").nth(1).and_then(|p| p.split_whitespace().next()) {
            break p.parse().unwrap();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Served { child, port }
}

/// A new, empty database for a run: a SQLite file in `dir`, or a database
/// on the PostgreSQL server at `postgres` (after a checkpoint, so that no
/// earlier run's dirty pages are written during this one).
pub async fn fresh_database(postgres: Option<&str>, dir: &std::path::Path, name: &str) -> String {
    match postgres {
        None => format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
        Some(base) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&format!("{base}/postgres")).await.expect("PostgreSQL");
            let db = format!("xlrs_bench_{}_{name}", std::process::id());
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{db}\"")))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\""))).execute(&mut conn).await.unwrap();
            sqlx::raw_sql("CHECKPOINT").execute(&mut conn).await.unwrap();
            format!("{base}/{db}")
        }
    }
}

/// Removes a run's database, so that runs after it do not share the disk
/// and the checkpoints with it.
pub async fn drop_database(postgres: Option<&str>, url: &str) {
    match postgres {
        None => {
            let path = url.trim_start_matches("sqlite://");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
        Some(base) => {
            use sqlx::Connection;
            let db = url.rsplit('/').next().unwrap();
            let mut conn = sqlx::PgConnection::connect(&format!("{base}/postgres")).await.expect("PostgreSQL");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)")))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// The database's size on disk, in bytes.
pub async fn database_bytes(postgres: Option<&str>, url: &str) -> u64 {
    match postgres {
        None => {
            let path = url.trim_start_matches("sqlite://");
            ["", "-wal"].iter().filter_map(|s| std::fs::metadata(format!("{path}{s}")).ok()).map(|m| m.len()).sum()
        }
        Some(_) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.expect("PostgreSQL");
            let (bytes,): (i64,) =
                sqlx::query_as("SELECT pg_database_size(current_database())").fetch_one(&mut conn).await.unwrap();
            bytes as u64
        }
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (which may hold spaces), utime is the 12th field, stime the 13th.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Bytes a process has caused to be written to storage (`write_bytes` of
/// /proc/<pid>/io: its own writes and the fsyncs' pages, not the page cache's).
pub fn written_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// A process's resident memory, in MiB (`VmRSS`).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}
