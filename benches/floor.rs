//! The storage floor: what the database itself allows for the rows a
//! statement becomes, so that every ingest figure of the load harness can be
//! given as a fraction of it.
//!
//! The load generator's statements are prepared (validated, keyed, their
//! JSON text made) before the clock starts. Then, timed:
//! - `storage`: the `statement` rows and their filter keys (postings per
//!   block on SQLite, `statement_key` rows on PostgreSQL) go straight into the
//!   database in durable transactions of `--group` statements, with no HTTP,
//!   no JSON, and no writer: prepared single-row INSERTs through rusqlite on
//!   SQLite (in-process, no thread hop per statement: the fastest way in);
//!   one COPY per table per transaction on PostgreSQL (its bulk path);
//! - `writer`: the same statements through xlrs's group-commit writer
//!   (`Writer::write`, batches of 100 from 4 tasks), still with no HTTP and no
//!   JSON parsing.
//!
//! `cargo bench --bench floor -- [--statements 200000] [--group 400]
//!  [--postgres postgres://postgres@127.0.0.1:5432]`

#[path = "load/generator.rs"]
#[allow(dead_code)]
mod generator;
#[path = "support/server.rs"]
mod server;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use sqlx::{Connection, Executor};
use xlrs::config::DatabaseArgs;
use xlrs::forward::{ForwardingConfig, Routing};
use xlrs::metrics::Metrics;
use xlrs::store::filter_index::{BLOCK_BITS, encode_keys, encode_offsets};
use xlrs::store::writer::Writer;
use xlrs::xapi::XapiVersion;
use xlrs::xapi::formats::format_timestamp;
use xlrs::xapi::statement::{PreparedStatement, StoreContext, prepare};

struct Args {
    statements: usize,
    group: usize,
    postgres: Option<String>,
}

fn args() -> Args {
    let mut a = Args { statements: 200_000, group: 400, postgres: None };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match flag.as_str() {
            "--statements" => a.statements = value().parse().expect("--statements N"),
            "--group" => a.group = value().parse().expect("--group N"),
            "--postgres" => a.postgres = Some(value()),
            _ => {}
        }
    }
    a
}

fn prepared(n: usize, seed: u64) -> Vec<PreparedStatement> {
    let authority = json!({"objectType": "Agent", "account": {"homePage": "http://lrs", "name": "bench"}});
    let ctx = StoreContext {
        version: XapiVersion::V1_0,
        authority: &authority,
        credential_key: "bench",
        keep_progress: true,
    };
    let mut g = generator::Generator::new(seed);
    (0..n).map(|_| prepare(g.statement(), None, &ctx).expect("generated statements are valid")).collect()
}

#[tokio::main]
async fn main() {
    let a = args();
    let backend = if a.postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    let dir = tempfile::tempdir().unwrap();
    println!("{backend}: {} statements each, prepared before the clock starts\n", a.statements);
    println!("| path | statements/s | keys per statement | database bytes per statement |");
    println!("|---|---|---|---|");

    let statements = prepared(a.statements, 1);
    let keys = statements.iter().map(|s| s.keys.len()).sum::<usize>() as f64 / statements.len() as f64;
    let url = server::fresh_database(a.postgres.as_deref(), dir.path(), "floor").await;
    let db = open(&url).await;
    let began = Instant::now();
    match &a.postgres {
        None => storage_sqlite(&url, &statements, a.group),
        Some(_) => storage_postgres(&db, &statements, a.group).await,
    }
    let rate = statements.len() as f64 / began.elapsed().as_secs_f64();
    let bytes = server::database_bytes(a.postgres.as_deref(), &url).await as f64 / statements.len() as f64;
    println!("| storage, transactions of {} | {rate:.0} | {keys:.1} | {bytes:.0} |", a.group);
    db.close().await.ok();
    server::drop_database(a.postgres.as_deref(), &url).await;

    drop(statements);
    let statements = prepared(a.statements, 2);
    let url = server::fresh_database(a.postgres.as_deref(), dir.path(), "floor_writer").await;
    let db = open(&url).await;
    let rate = through_writer(&db, statements).await;
    let bytes = server::database_bytes(a.postgres.as_deref(), &url).await as f64 / a.statements as f64;
    println!("| xlrs writer, batches of 100, 4 tasks | {rate:.0} | {keys:.1} | {bytes:.0} |");
    db.close().await.ok();
    server::drop_database(a.postgres.as_deref(), &url).await;
}

/// The store as `xlrs serve` opens it (pragmas, migrations).
async fn open(url: &str) -> sea_orm::DatabaseConnection {
    let db = xlrs::store::connect(&DatabaseArgs { url: url.to_owned(), pool_size: 8 }).await.unwrap();
    xlrs::store::migrate(&db).await.unwrap();
    db
}

fn stored_now() -> (i64, String) {
    let now = chrono::Utc::now();
    (now.timestamp_micros(), format_timestamp(now))
}

fn key_list(s: &PreparedStatement) -> String {
    s.keys.iter().filter(|k| k.heritable).map(|k| k.key.to_string()).collect::<Vec<_>>().join(",")
}

fn storage_sqlite(url: &str, statements: &[PreparedStatement], group: usize) {
    let mut conn = rusqlite::Connection::open(url.trim_start_matches("sqlite://")).unwrap();
    // As `xlrs serve` opens it: WAL, a commit is on disk when it returns.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -16384;").unwrap();
    let mut seq = 0_i64;
    // The open block's postings, written when the block is full.
    let mut block: HashMap<i64, Vec<u16>> = HashMap::new();
    for chunk in statements.chunks(group) {
        let (stored_us, stored) = stored_now();
        let tx = conn.transaction().unwrap();
        {
            let mut statement = tx
                .prepare_cached(
                    "INSERT INTO statement (seq, id, stored_us, voiding, object_ref, key_list, filter_keys, body) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .unwrap();
            let mut posting =
                tx.prepare_cached("INSERT INTO statement_posting (block, key, seqs) VALUES (?, ?, ?)").unwrap();
            for s in chunk {
                seq += 1;
                let filter_keys = encode_keys(s.keys.iter().map(|k| k.key));
                let row = (seq, &s.id, stored_us, s.voiding, &s.object_ref, key_list(s), filter_keys, s.body(&stored));
                statement.execute(row).unwrap();
                let offset = (seq & ((1 << BLOCK_BITS) - 1)) as u16;
                for k in &s.keys {
                    block.entry(k.key).or_default().push(offset);
                }
                if offset == (1 << BLOCK_BITS) - 1 {
                    let mut keys: Vec<_> = block.drain().collect();
                    keys.sort_unstable_by_key(|(k, _)| *k);
                    for (k, offsets) in keys {
                        posting.execute((seq >> BLOCK_BITS, k, encode_offsets(&offsets))).unwrap();
                    }
                }
            }
        }
        tx.commit().unwrap();
    }
}

async fn storage_postgres(db: &sea_orm::DatabaseConnection, statements: &[PreparedStatement], group: usize) {
    // A connection of xlrs's own pool: it has TCP_NODELAY set (see
    // store/pg_nodelay.rs), without which each COPY waited 40 ms for an ACK.
    let mut conn = db.get_postgres_connection_pool().acquire().await.unwrap();
    conn.execute("SET synchronous_commit = on").await.unwrap();
    let mut seq = 0_i64;
    for chunk in statements.chunks(group) {
        let (stored_us, stored) = stored_now();
        let (mut rows, mut keys) = (String::new(), String::new());
        for s in chunk {
            seq += 1;
            let object_ref = s.object_ref.as_deref().map_or("\\N".to_owned(), copy_text);
            let line = [
                seq.to_string(),
                copy_text(&s.id),
                stored_us.to_string(),
                s.voiding.to_string(),
                object_ref,
                key_list(s),
                copy_text(&s.body(&stored)),
            ];
            rows.push_str(&line.join("\t"));
            rows.push('\n');
            for k in &s.keys {
                keys.push_str(&format!("{}\t{seq}\n", k.key));
            }
        }
        let mut tx = conn.begin().await.unwrap();
        for (copy, data) in [
            ("COPY statement (seq, id, stored_us, voiding, object_ref, key_list, body) FROM STDIN", rows),
            ("COPY statement_key (key, seq) FROM STDIN", keys),
        ] {
            let mut sink = tx.copy_in_raw(copy).await.unwrap();
            sink.send(data.into_bytes()).await.unwrap();
            sink.finish().await.unwrap();
        }
        tx.commit().await.unwrap();
    }
}

/// A value in COPY's text format.
fn copy_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r")
}

async fn through_writer(db: &sea_orm::DatabaseConnection, statements: Vec<PreparedStatement>) -> f64 {
    let routing = Arc::new(Routing::new(&ForwardingConfig::default()));
    let (writer, handle) = Writer::spawn(db.clone(), routing, Arc::new(Metrics::new().unwrap()), true).await.unwrap();
    let mut batches: Vec<Vec<PreparedStatement>> = Vec::new();
    let mut rest = statements.into_iter();
    loop {
        let batch: Vec<PreparedStatement> = rest.by_ref().take(100).collect();
        if batch.is_empty() {
            break;
        }
        batches.push(batch);
    }
    let total: usize = batches.iter().map(Vec::len).sum();
    let queue = Arc::new(std::sync::Mutex::new(batches));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (writer, queue) = (writer.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(batch) = queue.lock().unwrap().pop() else { break };
                writer.write(batch).await.expect("stored");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = total as f64 / began.elapsed().as_secs_f64();
    handle.shutdown().await;
    rate
}
