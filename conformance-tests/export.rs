//! The export (docs/export.md): GET /xapi/extensions/export and `xlrs
//! export`: NDJSON and CSV, filters, scopes, gzip, the fixed end, and
//! resuming over HTTP and from the command line.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use flate2::read::MultiGzDecoder;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use xlrs::config::DatabaseArgs;
use xlrs::store::{self, credentials};

use crate::helpers::*;
use crate::on_both_backends;

const CURSOR: &str = "x-xlrs-export-cursor";
const TOTAL: &str = "x-xlrs-export-total";

fn export_as(app: &TestApp, query: &str, key: &str, secret: &str) -> reqwest::RequestBuilder {
    app.client.get(format!("{}/extensions/export?{query}", app.endpoint)).basic_auth(key, Some(secret))
}

async fn export(app: &TestApp, query: &str) -> Response {
    export_as(app, query, ADMIN_KEY, ADMIN_SECRET).send().await.expect("export")
}

/// The export's body as text, expecting 200.
async fn export_text(app: &TestApp, query: &str) -> String {
    let res = export(app, query).await;
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "?{query}: {text}");
    text
}

fn header(res: &Response, name: &str) -> String {
    res.headers().get(name).unwrap_or_else(|| panic!("no {name}")).to_str().unwrap().to_owned()
}

fn ids_of_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line")["id"].as_str().unwrap().into())
        .collect()
}

/// The stored text of a statement, as GET /statements serves it.
async fn stored_text(app: &TestApp, id: &str) -> String {
    let res = app.request(Method::GET, &format!("/statements?statementId={id}")).send().await.unwrap();
    res.text().await.unwrap()
}

/// Stores `n` statements, 500 per request; their ids in stored order.
async fn store_many(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let batch: Vec<Value> = (0..(n - ids.len()).min(500)).map(|_| statement()).collect();
        ids.extend(app.store(&json!(batch)).await);
    }
    ids
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    MultiGzDecoder::new(bytes).read_to_string(&mut text).expect("gzip");
    text
}

on_both_backends!(ndjson_is_the_stored_statements_in_stored_order);
async fn ndjson_is_the_stored_statements_in_stored_order(app: TestApp) {
    let mut ids = app.store_each(&[statement(), statement(), statement(), statement()]).await;
    let voiding = json!({"actor": agent("admin"), "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                         "object": {"objectType": "StatementRef", "id": ids[1]}});
    ids.extend(app.store(&voiding).await);
    ids.remove(1);

    let res = export(&app, "").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), "application/x-ndjson");
    assert!(!header(&res, CURSOR).is_empty());
    let text = res.text().await.unwrap();
    let mut expected = String::new();
    for id in &ids {
        expected.push_str(&stored_text(&app, id).await);
        expected.push('\n');
    }
    assert_eq!(text, expected, "each line the stored statement, byte for byte, the voided one left out");

    let metrics_url = format!("{}/metrics", app.endpoint.trim_end_matches("/xapi"));
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = app.client.get(&metrics_url).send().await.unwrap().text().await.unwrap();
        if metrics.contains("\nxlrs_export_consumers 0\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(metrics.contains("\nxlrs_export_consumers 0\n"), "the finished export is no consumer: {metrics}");
    assert!(metrics.contains("\nxlrs_export_statements_total 4\n"), "{metrics}");
}

on_both_backends!(filters_select_what_get_statements_selects);
async fn filters_select_what_get_statements_selects(app: TestApp) {
    let (a, b) = (agent("exp-a"), agent("exp-b"));
    let st = |actor: &Value, verb: &str| json!({"actor": actor, "verb": {"id": verb}, "object": {"id": "http://example.com/exported"}});
    let (v1, v2) = ("http://example.com/verbs/v1", "http://example.com/verbs/v2");
    let ids = app.store_each(&[st(&a, v1), st(&b, v1), st(&a, v2), st(&b, v2), st(&a, v1)]).await;
    let stored = |i: usize| {
        let ids = &ids;
        let app = &app;
        async move { app.statement(&ids[i]).await["stored"].as_str().unwrap().to_owned() }
    };
    let queries = [
        format!("verb={}", enc(v1)),
        agent_q(&a),
        format!("{}&verb={}", agent_q(&b), enc(v2)),
        format!("since={}", enc(&stored(1).await)),
        format!("until={}", enc(&stored(2).await)),
        format!("since={}&until={}", enc(&stored(0).await), enc(&stored(3).await)),
    ];
    for query in queries {
        let exported = ids_of_lines(&export_text(&app, &query).await);
        let listed = app.ids(&format!("{query}&ascending=true")).await;
        assert_eq!(exported, listed, "?{query}");
        assert!(!exported.is_empty() && exported.len() < ids.len(), "?{query} selects some");
    }
}

on_both_backends!(csv_has_a_header_and_the_chosen_columns_quoted);
async fn csv_has_a_header_and_the_chosen_columns_quoted(app: TestApp) {
    let name = "Ann \"the first\", of\nTwo Lines";
    let s = json!({"actor": {"mbox": "mailto:Ann@Example.com", "name": name},
                   "verb": {"id": "http://example.com/verbs/scored", "display": {"en-US": "scored"}},
                   "object": {"id": "http://example.com/quiz"}, "result": {"score": {"raw": 7, "max": 10}}});
    let id = app.store(&s).await.remove(0);

    let res = export(&app, "format=csv&columns=actor_name,actor,score_raw,completion,verb_display").await;
    assert_eq!(header(&res, "content-type"), "text/csv; charset=utf-8");
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let head: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(head, ["id", "actor_name", "actor", "score_raw", "completion", "verb_display"], "id comes first");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    let row: Vec<&str> = rows[0].iter().collect();
    assert_eq!(row, [id.as_str(), name, "mbox:mailto:ann@example.com", "7", "", "scored"]);

    let default = export_text(&app, "format=csv").await;
    assert!(default.starts_with("id,timestamp,stored,actor,actor_name,verb,"), "{default}");
}

on_both_backends!(bad_parameters_are_400_naming_the_parameter);
async fn bad_parameters_are_400_naming_the_parameter(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    let cursor = header(&export(&app, "").await, CURSOR);
    let cases = [
        ("format=csv&columns=id,nonsense".to_owned(), "columns"),
        ("format=csv&columns=verb,verb".to_owned(), "columns"),
        ("columns=verb".to_owned(), "columns"),
        ("format=xml".to_owned(), "format"),
        ("colour=red".to_owned(), "colour"),
        ("Verb=http://example.com/v".to_owned(), "Verb"),
        ("verb=http://example.com/v&verb=http://example.com/w".to_owned(), "verb"),
        ("verb=not%20an%20iri".to_owned(), "verb"),
        ("since=yesterday".to_owned(), "since"),
        ("count=maybe".to_owned(), "count"),
        (format!("after={id}"), "after"),
        ("cursor=not-a-cursor".to_owned(), "cursor"),
        (format!("cursor={cursor}&verb=http://example.com/v"), "verb"),
        (format!("cursor={cursor}&after=not-an-id"), "after"),
        (format!("cursor={cursor}&after={}", uuid()), "after"),
    ];
    for (query, property) in cases {
        let res = export(&app, &query).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "?{query}");
        assert!(header(&res, "content-type").starts_with("application/json"));
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["property"], property, "?{query}: {body}");
    }
}

on_both_backends!(credentials_and_scopes_apply);
async fn credentials_and_scopes_apply(app: TestApp) {
    let db = store::connect(&DatabaseArgs { url: app.database_url.clone(), pool_size: 2 }).await.unwrap();
    let (writer, writer_secret) = credentials::create(&db, "writer", "statements/write", None).await.unwrap();
    let (mine, mine_secret) =
        credentials::create(&db, "mine", "statements/write,statements/read/mine", None).await.unwrap();
    app.store(&statement()).await;
    let own = json!([statement(), statement()]);
    let res = app
        .client
        .post(format!("{}/statements", app.endpoint))
        .header("X-Experience-API-Version", VERSION)
        .basic_auth(&mine.key, Some(&mine_secret))
        .json(&own)
        .send()
        .await
        .unwrap();
    let own_ids: Vec<String> = res.json().await.unwrap();

    let anonymous = app.client.get(format!("{}/extensions/export", app.endpoint)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = export_as(&app, "", ADMIN_KEY, "wrong secret").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let write_only = export_as(&app, "", &writer.key, &writer_secret).send().await.unwrap();
    assert_eq!(write_only.status(), StatusCode::FORBIDDEN);

    let res = export_as(&app, "", &mine.key, &mine_secret).send().await.unwrap();
    assert_eq!(ids_of_lines(&res.text().await.unwrap()), own_ids, "read/mine exports only its own");
    // An admin's cursor does not widen it either.
    let admin_cursor = header(&export(&app, "").await, CURSOR);
    let res = export_as(&app, &format!("cursor={admin_cursor}"), &mine.key, &mine_secret).send().await.unwrap();
    assert_eq!(ids_of_lines(&res.text().await.unwrap()), own_ids);
}

on_both_backends!(gzip_decodes_to_the_same_lines);
async fn gzip_decodes_to_the_same_lines(app: TestApp) {
    store_many(&app, 30).await;
    let plain = export_text(&app, "").await;

    let res = export_as(&app, "", ADMIN_KEY, ADMIN_SECRET).header("Accept-Encoding", "gzip").send().await.unwrap();
    assert_eq!(header(&res, "content-encoding"), "gzip");
    assert_eq!(gunzip(&res.bytes().await.unwrap()), plain);

    let res = export(&app, "gzip=true").await;
    assert_eq!(header(&res, "content-type"), "application/gzip");
    assert!(res.headers().get("content-encoding").is_none());
    assert_eq!(gunzip(&res.bytes().await.unwrap()), plain);
}

on_both_backends!(a_dropped_export_resumes_with_every_statement_once_and_a_fixed_end);
async fn a_dropped_export_resumes_with_every_statement_once_and_a_fixed_end(app: TestApp) {
    let ids = store_many(&app, 4500).await;
    let res = export(&app, "count=true").await;
    assert_eq!(header(&res, TOTAL), "4500");
    let cursor = header(&res, CURSOR);
    // Statements stored once the export began are not in it, nor in its resumption.
    let late = store_many(&app, 20).await;
    assert_eq!(ids_of_lines(&res.text().await.unwrap()), ids, "the fixed end");
    assert_eq!(ids_of_lines(&export_text(&app, "").await).len(), 4520, "a new export has them");

    // Read part of the stream, then drop the connection mid-transfer.
    let mut res = export(&app, &format!("cursor={cursor}")).await;
    let mut received = Vec::new();
    while received.len() < 1_000_000 {
        received.extend_from_slice(&res.chunk().await.unwrap().expect("more than 1 MB"));
    }
    drop(res);
    let whole_lines = &received[..=received.iter().rposition(|b| *b == b'\n').unwrap()];
    let first = ids_of_lines(std::str::from_utf8(whole_lines).unwrap());
    assert!(first.len() > 100 && first.len() < 4500, "{} statements before the drop", first.len());

    let after = first.last().unwrap();
    let res = export(&app, &format!("cursor={cursor}&after={after}&count=true")).await;
    assert_eq!(header(&res, TOTAL), (4500 - first.len()).to_string());
    let rest = ids_of_lines(&res.text().await.unwrap());
    let all: Vec<String> = first.into_iter().chain(rest).collect();
    assert_eq!(all, ids, "every statement once, in stored order");
    assert!(late.iter().all(|l| !all.contains(l)));
}

fn xlrs_export(endpoint: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xlrs"));
    c.arg("export")
        .args(args)
        .env("XLRS_ENDPOINT", endpoint)
        .env("XLRS_KEY", ADMIN_KEY)
        .env("XLRS_SECRET", ADMIN_SECRET)
        .env("RUST_LOG", "warn");
    c
}

/// Runs a command to its end off the async workers.
async fn output(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("run xlrs")).await.unwrap()
}

/// A proxy for one connection: the request goes through, the first `limit`
/// bytes of the answer come back, then nothing (the connection stays open)
/// until `stop` is sent: a transfer that stalls midway.
fn stalling_proxy(upstream_port: u16, limit: usize) -> (u16, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = TcpStream::connect(("127.0.0.1", upstream_port)).unwrap();
        let (mut from_client, mut to_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_server));
        let mut buf = vec![0; 64 * 1024];
        let mut passed = 0;
        while passed < limit {
            let n = server.read(&mut buf[..(limit - passed).min(64 * 1024)]).unwrap_or(0);
            if n == 0 || client.write_all(&buf[..n]).is_err() {
                break;
            }
            passed += n;
        }
        let _ = stopped.recv_timeout(Duration::from_secs(120));
    });
    (port, stop)
}

fn state_statements(path: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    serde_json::from_str::<Value>(&text).ok().and_then(|v| v["statements"].as_u64()).unwrap_or(0)
}

on_both_backends!(the_cli_resumes_a_killed_export_with_every_statement_once);
async fn the_cli_resumes_a_killed_export_with_every_statement_once(app: TestApp) {
    let ids = store_many(&app, 4500).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.ndjson.gz");
    let state = dir.path().join("all.ndjson.gz.xlrs-export");
    let port: u16 = app.endpoint.rsplit(':').next().unwrap().trim_end_matches("/xapi").parse().unwrap();
    let (proxy, stop) = stalling_proxy(port, 1_200_000);
    let proxied = format!("http://127.0.0.1:{proxy}/xapi");

    let mut child = xlrs_export(&proxied, &["--gzip", "--output", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut waited = 0;
    while state_statements(&state) == 0 {
        assert!(child.try_wait().unwrap().is_none(), "the export ended before it stalled");
        assert!(waited < 600, "no progress recorded in {}", state.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stop_point = state_statements(&state);
    let _ = stop.send(());
    assert!(stop_point < 4500, "interrupted at {stop_point}");

    let again = output(xlrs_export(&app.endpoint, &["--output", file.to_str().unwrap()])).await;
    assert!(!again.status.success(), "an interrupted export is not overwritten without --resume");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    let resumed = output(xlrs_export(&app.endpoint, &["--resume", "--output", file.to_str().unwrap()])).await;
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(!state.exists(), "the state file goes when the export completes");
    let text = gunzip(&std::fs::read(&file).unwrap());
    assert_eq!(ids_of_lines(&text), ids, "every statement once, in stored order");
}

on_both_backends!(the_cli_writes_csv_to_stdout_and_fails_clearly);
async fn the_cli_writes_csv_to_stdout_and_fails_clearly(app: TestApp) {
    let ids = store_many(&app, 3).await;
    let out = output(xlrs_export(&app.endpoint, &["--format", "csv", "--columns", "verb"])).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut reader = csv::Reader::from_reader(&out.stdout[..]);
    assert_eq!(reader.headers().unwrap(), vec!["id", "verb"]);
    let exported: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
    assert_eq!(exported, ids);

    let mut wrong = xlrs_export(&app.endpoint, &[]);
    wrong.env("XLRS_SECRET", "not-the-secret-42");
    let out = output(wrong).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("401") && !stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("not-the-secret-42") && !stderr.contains(ADMIN_SECRET));

    let out = output(xlrs_export("http://127.0.0.1:9/xapi", &[])).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the LRS"));
}
