//! Forwarders end to end: statements in through the xAPI API, calls out
//! checked on a simulator of the target.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use xlrs::config::DatabaseArgs;
use xlrs::store::outbox::{self, Status};
use xlrs::store::{self};
use xlrs::store::{forward_stream, statements};

use crate::helpers::*;
use crate::simulators::bob::Bob;
use crate::simulators::lrs::Lrs;
use crate::simulators::webhook::Receiver;
use crate::simulators::{Simulator, basic};

pub const WAIT: Duration = Duration::from_secs(15);

/// A running app forwarding as `config` (TOML) says, with the files its
/// secrets are read from.
pub struct Forwarding {
    pub app: TestApp,
    /// The app's database, to look at its outbox.
    pub db: DatabaseConnection,
    pub dir: tempfile::TempDir,
}

impl Forwarding {
    pub async fn start(backend: Backend, config: &str, secrets: &[(&str, &str)]) -> Option<Forwarding> {
        let dir = tempfile::tempdir().unwrap();
        for (name, value) in secrets {
            std::fs::write(dir.path().join(name), value).unwrap();
        }
        let config = config.replace("$DIR", &dir.path().display().to_string());
        let path = dir.path().join("forwarders.toml");
        std::fs::write(&path, config).unwrap();
        let app = spawn_app_with(backend, |args| args.forwarders = Some(path)).await?;
        let db = store::connect(&DatabaseArgs { url: app.database_url.clone(), pool_size: 1 }).await.unwrap();
        Some(Forwarding { app, db, dir })
    }

    /// Runs `xlrs forward <args>` on this app's database.
    pub async fn cli(&self, args: &[&str]) {
        let mut argv = vec!["xlrs", "forward", "--database-url", &self.app.database_url];
        argv.extend(args);
        xlrs::cli::run(<xlrs::cli::Cli as clap::Parser>::parse_from(argv)).await.expect("xlrs forward");
    }

    pub async fn statuses(&self) -> Vec<(String, Status, i64)> {
        statuses(&self.db).await
    }

    pub async fn settled(&self) -> Vec<(String, Status, i64)> {
        settled(&self.db).await
    }
}

/// Outbox rows per status, over every target.
pub async fn statuses(db: &DatabaseConnection) -> Vec<(String, Status, i64)> {
    outbox::counts(db).await.unwrap().into_iter().map(|c| (c.target, c.status, c.rows)).collect()
}

/// The statuses once no row is open any more (waits up to `WAIT`).
pub async fn settled(db: &DatabaseConnection) -> Vec<(String, Status, i64)> {
    let open = [Status::Pending, Status::InFlight, Status::Retry];
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let statuses = statuses(db).await;
        if !statuses.iter().any(|(_, s, _)| open.contains(s)) || std::time::Instant::now() > deadline {
            return statuses;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `$name` (an `async fn(Backend)`) once per backend.
macro_rules! forwarding_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await;
            }
        }
    };
}

pub fn lrs_target(name: &str, sim_url: &str, extra: &str) -> String {
    format!(
        r#"
        [[forwarder]]
        name = "{name}"
        kind = "xapi_lrs"
        url = "{sim_url}/xapi"
        username = {{ file = "$DIR/lrs-user" }}
        password = {{ file = "$DIR/lrs-password" }}
        {extra}
        "#
    )
}

pub const LRS_SECRETS: &[(&str, &str)] = &[("lrs-user", "fwd-key"), ("lrs-password", "fwd-secret\n")];

pub fn with_verb(verb: &str) -> Value {
    let mut s = statement();
    s["verb"]["id"] = json!(verb);
    s
}

forwarding_test!(statements_reach_another_lrs_as_stored);
async fn statements_reach_another_lrs_as_stored(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let config = lrs_target("backup", &sim.url, "delivery = { batch_size = 8 }");
    let Some(f) = Forwarding::start(backend, &config, LRS_SECRETS).await else { return };
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.extend(f.app.store(&statement()).await);
    }
    let batch: Vec<Value> = (0..20).map(|_| statement()).collect();
    ids.extend(f.app.store(&json!(batch)).await);
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 23).await, "forwarded: {}", sim.behaviour.count());
    for id in &ids {
        let ours = f.app.statement(id).await;
        let theirs = sim.behaviour.stored.lock().unwrap()[id].clone();
        assert_eq!(theirs, ours, "forwarded exactly as stored");
    }
    let requests = sim.requests();
    assert!(requests.iter().all(|r| r.header("authorization") == Some(basic("fwd-key", "fwd-secret").as_str())));
    assert!(requests.iter().all(|r| r.header("x-experience-api-version") == Some("1.0.3")));
    assert!(requests.len() < 23, "batched: {} requests for 23 statements", requests.len());
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, 23)]);
}

forwarding_test!(another_lrs_follows_the_statements_with_a_cursor_not_rows);
async fn another_lrs_follows_the_statements_with_a_cursor_not_rows(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let Some(f) = Forwarding::start(backend, &lrs_target("backup", &sim.url, ""), LRS_SECRETS).await else { return };
    f.app.store(&json!((0..6).map(|_| statement()).collect::<Vec<_>>())).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 6).await);
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, 6)]);
    // Delivered through the cursor: no outbox row; the cursor at the last statement.
    assert!(outbox::list(&f.db, "backup", None, 0, 10).await.unwrap().is_empty());
    let last = statements::last_stored(&f.db).await.unwrap().0;
    assert_eq!(forward_stream::cursor(&f.db, "backup").await.unwrap(), Some(last));
    // A target new to this store starts at the last statement (the past goes
    // out only by a replay); starting it again (a restart, a second node)
    // leaves its cursor where it is.
    forward_stream::start(&f.db, "later", 0).await.unwrap();
    assert_eq!(forward_stream::cursor(&f.db, "later").await.unwrap(), Some(last));
    f.app.store(&statement()).await;
    forward_stream::start(&f.db, "later", 0).await.unwrap();
    assert_eq!(forward_stream::cursor(&f.db, "later").await.unwrap(), Some(last));
    let later = forward_stream::backlogs(&f.db, Some("later")).await.unwrap();
    assert_eq!((later[0].waiting, later[0].delivered), (1, 0), "{later:?}");
    assert!(later[0].oldest_stored_us.is_some());
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 7).await, "the running target goes on");
}

/// Two `xlrs serve` nodes on one PostgreSQL database, both taking
/// statements and both running the same stream target: one node at a time
/// follows the cursor, so every statement is sent once, not once per node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_send_each_statement_to_a_stream_target_once() {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let config = lrs_target("backup", &sim.url, "delivery = { batch_size = 20, linger_ms = 10 }");
    let Some(f) = Forwarding::start(Backend::Postgres, &config, LRS_SECRETS).await else { return };
    let path = f.dir.path().join("forwarders.toml");
    let mut second =
        crate::cli::serve_with_env(&f.app.database_url, Some(KILLER), &[("XLRS_FORWARDERS", path.to_str().unwrap())]);
    let endpoint = format!("http://127.0.0.1:{}/xapi/statements", second.port);
    let client = reqwest::Client::new();
    let mut stored = 0;
    for round in 0..20 {
        let batch: Vec<Value> = (0..5).map(|_| statement()).collect();
        if round % 2 == 0 {
            f.app.store(&json!(batch)).await;
        } else {
            let res = client
                .post(&endpoint)
                .header("X-Experience-API-Version", VERSION)
                .basic_auth(KILLER.0, Some(KILLER.1))
                .json(&batch)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        }
        stored += batch.len();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == stored).await, "{} of {stored}", sim.behaviour.count());
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, stored as i64)]);
    let sent: usize = sim
        .requests()
        .iter()
        .map(|r| match serde_json::from_slice::<Value>(&r.body).unwrap() {
            Value::Array(a) => a.len(),
            _ => 1,
        })
        .sum();
    assert_eq!(sent, stored, "each statement sent once over both nodes");
    crate::cli::sigterm(&second.child);
    crate::cli::wait_exit(&mut second.child);
}

forwarding_test!(routes_choose_what_each_target_gets);
async fn routes_choose_what_each_target_gets(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let config = lrs_target(
        "completions",
        &sim.url,
        r#"
        [[forwarder.route]]
        verbs = ["completed", "passed"]
        "#,
    );
    let Some(f) = Forwarding::start(backend, &config, LRS_SECRETS).await else { return };
    let completed = f.app.store(&with_verb("http://adlnet.gov/expapi/verbs/completed")).await.remove(0);
    f.app.store(&with_verb("http://adlnet.gov/expapi/verbs/experienced")).await;
    let passed = f.app.store(&with_verb("http://adlnet.gov/expapi/verbs/passed")).await.remove(0);
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 2).await);
    let stored = sim.behaviour.stored.lock().unwrap().clone();
    assert!(stored.contains_key(&completed) && stored.contains_key(&passed));
    assert_eq!(f.settled().await, vec![("completions".to_owned(), Status::Succeeded, 2)], "no row for the rest");
}

forwarding_test!(a_refused_statement_is_dead_lettered_alone);
async fn a_refused_statement_is_dead_lettered_alone(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    sim.behaviour.refused_verbs.lock().unwrap().push("http://example.com/verbs/refused".into());
    let Some(f) = Forwarding::start(backend, &lrs_target("backup", &sim.url, ""), LRS_SECRETS).await else { return };
    let mut batch: Vec<Value> = (0..5).map(|_| statement()).collect();
    batch[2] = with_verb("http://example.com/verbs/refused");
    f.app.store(&json!(batch)).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 4).await);
    assert_eq!(
        f.settled().await,
        vec![("backup".to_owned(), Status::Dead, 1), ("backup".to_owned(), Status::Succeeded, 4)]
    );
    // Mended at the target, the dead letter goes out on an operator's word.
    sim.behaviour.refused_verbs.lock().unwrap().clear();
    f.cli(&["retry", "--target", "backup"]).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 5).await);
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, 5)]);
}

forwarding_test!(retry_after_is_honoured_then_everything_arrives);
async fn retry_after_is_honoured_then_everything_arrives(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let config = lrs_target("backup", &sim.url, "delivery = { retry_base_ms = 20, batch_size = 5 }");
    let Some(f) = Forwarding::start(backend, &config, LRS_SECRETS).await else { return };
    sim.fail(503, Some(1), Duration::from_millis(2500));
    let batch: Vec<Value> = (0..12).map(|_| statement()).collect();
    f.app.store(&json!(batch)).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 12).await, "delivered after the outage");
    let requests = sim.requests();
    let refused: Vec<_> = requests.iter().filter(|r| r.status == 503).collect();
    assert!(refused.len() >= 2, "the outage was met: {} refusals", refused.len());
    for pair in requests.windows(2) {
        if pair[0].status == 503 {
            let gap = pair[1].at - pair[0].at;
            assert!(gap >= Duration::from_millis(990), "asked to wait 1 s, came back after {gap:?}");
        }
    }
}

forwarding_test!(refused_credentials_pause_the_target);
async fn refused_credentials_pause_the_target(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "other-secret"));
    let Some(f) = Forwarding::start(backend, &lrs_target("backup", &sim.url, ""), LRS_SECRETS).await else { return };
    f.app.store(&statement()).await;
    f.app.store(&statement()).await;
    assert!(sim.wait_until(WAIT, |_| !sim.requests().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sim.requests().len(), 1, "no second try with credentials the target refused");
    assert_eq!(f.statuses().await, vec![("backup".to_owned(), Status::Pending, 2)], "kept for when it resumes");
    let (until, reason) = outbox::paused_until(&f.db, "backup").await.unwrap().expect("paused");
    assert_eq!(until, i64::MAX);
    assert!(reason.contains("401"), "{reason}");
    // The credentials mended, an operator resumes the target: all goes out.
    *sim.behaviour.authorization.lock().unwrap() = basic("fwd-key", "fwd-secret");
    f.cli(&["resume", "backup"]).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 2).await);
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, 2)]);
}

forwarding_test!(replay_routes_stored_statements_again);
async fn replay_routes_stored_statements_again(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let routed = lrs_target("backup", &sim.url, "[[forwarder.route]]\nverbs = [\"completed\"]");
    let Some(f) = Forwarding::start(backend, &routed, LRS_SECRETS).await else { return };
    let since = chrono::Utc::now().to_rfc3339();
    f.app.store(&with_verb("http://adlnet.gov/expapi/verbs/completed")).await;
    f.app.store(&json!([statement(), statement()])).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 1).await);
    // Replayed under routes that take everything: the two others go out, and
    // the completion again, which the target takes as the same statement.
    let everything = f.dir.path().join("everything.toml");
    std::fs::write(
        &everything,
        lrs_target("backup", &sim.url, "").replace("$DIR", &f.dir.path().display().to_string()),
    )
    .unwrap();
    f.cli(&["replay", "backup", "--since", &since, "--forwarders", everything.to_str().unwrap()]).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 3).await);
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, 4)]);
}

forwarding_test!(webhooks_are_signed_and_delivered_once_each);
async fn webhooks_are_signed_and_delivered_once_each(backend: Backend) {
    let sim = Simulator::start(Receiver::new("hook-secret"));
    let config = format!(
        r#"
        [[forwarder]]
        name = "hook"
        kind = "webhook"
        url = "{}/hooks/xapi"
        secret = {{ file = "$DIR/hook" }}
        "#,
        sim.url
    );
    let Some(f) = Forwarding::start(backend, &config, &[("hook", "hook-secret")]).await else { return };
    let ids = f.app.store(&json!((0..4).map(|_| statement()).collect::<Vec<_>>())).await;
    assert!(sim.wait_until(WAIT, |r| r.count() == 4).await);
    assert_eq!(*sim.behaviour.bad_signatures.lock().unwrap(), 0);
    let mut got: Vec<String> =
        sim.behaviour.received.lock().unwrap().values().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    let res = f.app.post_statements(&json!({"not": "a statement"})).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "refused statements are not forwarded");
    assert_eq!(f.settled().await, vec![("hook".to_owned(), Status::Succeeded, 4)]);
}

forwarding_test!(bob_gets_the_course_then_progress_by_work_email);
async fn bob_gets_the_course_then_progress_by_work_email(backend: Backend) {
    let sim = Simulator::start(Bob::new("svc-1", "bob-token", &["ann@example.com"]));
    let config = format!(
        r#"
        [[forwarder]]
        name = "bob"
        kind = "hibob"
        url = "{}/v1"
        provider_identifier = "xlrs-test"
        service_user_id = {{ file = "$DIR/bob-id" }}
        service_user_token = {{ file = "$DIR/bob-token" }}
        [[forwarder.route]]
        activity_types = ["http://adlnet.gov/expapi/activities/course"]
        "#,
        sim.url
    );
    let Some(f) = Forwarding::start(backend, &config, &[("bob-id", "svc-1"), ("bob-token", "bob-token")]).await else {
        return;
    };
    let course = json!({"objectType": "Activity", "id": format!("https://lms.example.com/courses/{}", uuid()),
                        "definition": {"type": "http://adlnet.gov/expapi/activities/course",
                                       "name": {"en-US": "Fire safety"}}});
    let by = |actor: Value, verb: &str| {
        json!({"actor": actor, "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")}, "object": course,
               "result": {"score": {"scaled": 0.8}}})
    };
    let ann = json!({"mbox": "mailto:Ann@Example.com", "name": "Ann"});
    let completed = f.app.store(&by(ann.clone(), "completed")).await.remove(0);
    let passed = f.app.store(&by(ann.clone(), "passed")).await.remove(0);
    f.app.store(&by(ann.clone(), "experienced")).await;
    f.app.store(&by(json!({"account": {"homePage": "https://sso.example.com", "name": "bo"}}), "completed")).await;
    let mut elsewhere = with_verb("http://adlnet.gov/expapi/verbs/completed");
    elsewhere["actor"] = ann.clone();
    f.app.store(&elsewhere).await;

    assert!(sim.wait_until(WAIT, |bob| bob.state.lock().unwrap().progress.len() == 2).await);
    let settled = f.settled().await;
    assert_eq!(settled, vec![("bob".to_owned(), Status::Parked, 1), ("bob".to_owned(), Status::Succeeded, 3)]);
    {
        let state = sim.behaviour.state.lock().unwrap();
        assert_eq!(state.integrations.len(), 1);
        let item = &state.courses[course["id"].as_str().unwrap()];
        assert_eq!(item["/trainingContent/title"], "Fire safety");
        assert_eq!(item["/trainingContent/sourceLink"], course["id"]);
        let sent = &state.progress[&completed];
        assert_eq!(sent["actor"], json!({"objectType": "Agent", "mbox": "mailto:ann@example.com"}));
        assert_eq!(sent["object"]["id"], course["id"]);
        assert_eq!(sent["result"]["score"]["scaled"], 0.8);
        assert_eq!(state.progress[&passed]["verb"]["display"]["en-US"], "passed");
    }
    let catalog_calls = sim.requests().iter().filter(|r| r.path.ends_with("/training-content")).count();
    assert_eq!(catalog_calls, 1, "one course, pushed once");

    // A replay sends it all again: the course is patched (Bob has it), and
    // Bob takes the statements as the duplicates they are (409).
    let path = f.dir.path().join("forwarders.toml");
    f.cli(&["replay", "bob", "--since", "2000-01-01T00:00:00Z", "--forwarders", path.to_str().unwrap()]).await;
    let settled = f.settled().await;
    assert_eq!(settled, vec![("bob".to_owned(), Status::Parked, 2), ("bob".to_owned(), Status::Succeeded, 6)]);
    assert_eq!(sim.behaviour.state.lock().unwrap().progress.len(), 2, "no second effect");
    let patches = sim.requests().iter().filter(|r| r.method == "PATCH" && r.status == 200).count();
    assert_eq!(patches, 1);
}

/// The credential the SIGKILL tests' servers are started with.
pub const KILLER: (&str, &str) = ("killer", "kill-secret");

/// Starts `xlrs serve` on `url` (a child process, with `env`), POSTs
/// batches from four threads (`batch(writer, round)` makes each, with what
/// to remember of it once acknowledged) for 1.5 s, then kills it with
/// SIGKILL. Returns what the acknowledged batches carried.
pub async fn ingest_then_kill<T: Send + 'static>(
    url: &str,
    env: &[(&str, &str)],
    batch: fn(usize, usize) -> (Vec<Value>, Vec<T>),
) -> Vec<T> {
    let mut first = crate::cli::serve_with_env(url, Some(KILLER), env);
    let endpoint = format!("http://127.0.0.1:{}/xapi/statements", first.port);
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (endpoint, acknowledged) = (endpoint.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                for round in 0.. {
                    let (body, remembered) = batch(writer, round);
                    let res = client
                        .post(&endpoint)
                        .header("X-Experience-API-Version", VERSION)
                        .basic_auth(KILLER.0, Some(KILLER.1))
                        .json(&body)
                        .send();
                    match res {
                        Ok(r) if r.status() == StatusCode::OK => acknowledged.lock().unwrap().extend(remembered),
                        _ => break,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    for w in writers {
        w.join().unwrap();
    }
    std::mem::take(&mut *acknowledged.lock().unwrap())
}

fn with_id(mut statement: Value) -> Value {
    statement["id"] = json!(uuid());
    statement
}

/// Acknowledged = forwarded, even across a SIGKILL: `xlrs serve` is killed
/// while it ingests and forwards to a slow LRS; after a restart on the same
/// database every acknowledged statement reaches the LRS, and none twice
/// over (the LRS keeps one of each id; our outbox closes each row once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_forwarded_statement() {
    use crate::cli::serve_with_env;
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    sim.slow(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in LRS_SECRETS {
        std::fs::write(dir.path().join(name), value).unwrap();
    }
    let config = lrs_target(
        "backup",
        &sim.url,
        "delivery = { batch_size = 50, rate_per_sec = 1000.0, lease_secs = 2, retry_base_ms = 50 }",
    )
    .replace("$DIR", &dir.path().display().to_string());
    let config_path = dir.path().join("forwarders.toml");
    std::fs::write(&config_path, config).unwrap();
    let url = format!("sqlite://{}", dir.path().join("kill.db").display());
    let env = [("XLRS_FORWARDERS", config_path.to_str().unwrap())];
    let acknowledged = ingest_then_kill(&url, &env, |_, _| {
        let batch: Vec<Value> = (0..5).map(|_| with_id(statement())).collect();
        let ids = batch.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
        (batch, ids)
    })
    .await;
    let before_restart = sim.behaviour.count();
    assert!(
        before_restart < acknowledged.len(),
        "killed with deliveries to go: {before_restart} of {}",
        acknowledged.len()
    );

    sim.slow(Duration::ZERO);
    let mut second = serve_with_env(&url, Some(KILLER), &env);
    let all = sim
        .wait_until(Duration::from_secs(60), |lrs| {
            let stored = lrs.stored.lock().unwrap();
            acknowledged.iter().all(|id| stored.contains_key(id))
        })
        .await;
    assert!(all, "every acknowledged statement forwarded: {} of {}", sim.behaviour.count(), acknowledged.len());
    let db = store::connect(&DatabaseArgs { url: url.clone(), pool_size: 1 }).await.unwrap();
    let counts = settled(&db).await;
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(counts[0].1, Status::Succeeded);
    // Statements committed but not acknowledged (the kill cut the answer) are forwarded too.
    assert_eq!(counts[0].2 as usize, sim.behaviour.count());
    assert!(sim.behaviour.count() >= acknowledged.len());
    crate::cli::sigterm(&second.child);
    crate::cli::wait_exit(&mut second.child);
}

forwarding_test!(the_circuit_opens_after_failed_rounds);
async fn the_circuit_opens_after_failed_rounds(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let config = lrs_target(
        "backup",
        &sim.url,
        "delivery = { retry_base_ms = 10, retry_cap_secs = 1, breaker_failures = 3, breaker_open_secs = 2 }",
    );
    let Some(f) = Forwarding::start(backend, &config, LRS_SECRETS).await else { return };
    sim.fail(503, None, Duration::from_millis(1500));
    f.app.store(&json!((0..10).map(|_| statement()).collect::<Vec<_>>())).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 10).await);
    let requests = sim.requests();
    let failed: Vec<_> = requests.iter().filter(|r| r.status == 503).collect();
    assert!(failed.len() >= 3, "{} failures", failed.len());
    // Three failed rounds (not three failed rows: a batch is one) open the
    // circuit: then nothing for two seconds, then one row, then the rest.
    let third = failed[2].at;
    let next = requests.iter().find(|r| r.at > third).expect("a request after the circuit closes");
    assert!(next.at - third >= Duration::from_millis(1990), "rested {:?}", next.at - third);
    assert_eq!(failed.len(), 3, "no request while open");
    let first_after: Vec<Value> = serde_json::from_slice(&next.body)
        .map(|v: Value| match v {
            Value::Array(a) => a,
            one => vec![one],
        })
        .unwrap();
    assert_eq!(first_after.len(), 1, "half-open: one row goes first");
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, 10)]);
}

mod attachments;
mod docebo;
mod learning360;
mod learnworlds;
mod mobieus;
mod outage;
mod probe;
mod restart;
