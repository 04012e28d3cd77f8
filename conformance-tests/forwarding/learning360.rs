//! 360Learning end to end: statements in, bulk stats jobs out, polled to
//! completion, each row closed by its result; attempts checked on the simulator.

use std::time::Duration;

use serde_json::{Value, json};
use xlrs::store::outbox::Status;

use super::{Forwarding, WAIT};
use crate::helpers::*;
use crate::simulators::learning360::Learning360;
use crate::simulators::{Recorded, Simulator};

const SECRETS: &[(&str, &str)] = &[("l360-id", "client-7"), ("l360-secret", "s3cret\n")];
const T0: &str = "2026-11-20T09:00:00Z";
const T1: &str = "2026-11-20T09:30:00Z";
const PROGRESS: &str = "https://w3id.org/xapi/cmi5/result/extensions/progress";

struct Setup {
    sim: Simulator<Learning360>,
    f: Forwarding,
    course: String,
    iri: String,
}

/// A 360 tenant knowing ann, bob, cat and dan (by mail) and one course, and
/// an app forwarding to it (`delivery` as given).
async fn setup(backend: Backend, delivery: &str) -> Option<Setup> {
    let course = format!("c-{}", uuid());
    let users = [
        ("ann@example.com", "u-ann"),
        ("bob@example.com", "u-bob"),
        ("cat@example.com", "u-cat"),
        ("dan@example.com", "u-dan"),
    ];
    let sim = Simulator::start(Learning360::new(("client-7", "s3cret"), "int-1", &users, &[&course]));
    let config = target_config(&sim.url, delivery);
    let f = Forwarding::start(backend, &config, SECRETS).await?;
    let iri = format!("https://lms.example.com/courses/{course}");
    Some(Setup { sim, f, course, iri })
}

/// The 360 target at `url` (secrets in `$DIR`), with `delivery` settings.
fn target_config(url: &str, delivery: &str) -> String {
    format!(
        r#"
        [[forwarder]]
        name = "l360"
        kind = "360learning"
        url = "{url}"
        integration_id = "int-1"
        client_id = {{ file = "$DIR/l360-id" }}
        client_secret = {{ file = "$DIR/l360-secret" }}
        company_id = "acme"
        delivery = {delivery}
        [forwarder.identity]
        account_home_pages = ["https://sso.example.com"]
        [[forwarder.course]]
        pattern = "^https://lms\\.example\\.com/courses/(?P<code>[^/]+)$"
        course = "$code"
        "#
    )
}

fn mbox(name: &str) -> Value {
    json!({"mbox": format!("mailto:{name}@example.com")})
}

fn said(actor: Value, verb: &str, iri: &str, timestamp: &str, result: Value) -> Value {
    let mut s = json!({"actor": actor, "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
                       "object": {"id": iri}, "timestamp": timestamp});
    if !result.is_null() {
        s["result"] = result;
    }
    s
}

fn is_stats(r: &Recorded) -> bool {
    r.method == "POST" && r.path == "/api/v2/bulk/integrations/int-1/stats"
}

/// The rows of every stats job submitted (and accepted), by user.
fn submitted(sim: &Simulator<Learning360>) -> Vec<Vec<Value>> {
    sim.requests()
        .iter()
        .filter(|r| is_stats(r) && r.status == 202)
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["input"].as_array().unwrap().clone())
        .collect()
}

fn row_of<'a>(rows: &'a [Value], user: &str) -> &'a Value {
    rows.iter().find(|r| r["userIdentifier"]["value"] == user).unwrap_or_else(|| panic!("no row for {user}"))
}

fn statuses(pairs: &[(Status, i64)]) -> Vec<(String, Status, i64)> {
    pairs.iter().map(|(s, n)| ("l360".to_owned(), *s, *n)).collect()
}

forwarding_test!(learning360_gets_one_bulk_job_whose_results_close_the_rows);
async fn learning360_gets_one_bulk_job_whose_results_close_the_rows(backend: Backend) {
    let Some(Setup { sim, f, course, iri }) = setup(backend, "{ retry_base_ms = 100 }").await else { return };
    let batch = json!([
        said(mbox("ann"), "progressed", &iri, T0, json!({"extensions": {PROGRESS: 50}})),
        said(mbox("ann"), "completed", &iri, T1, json!({"duration": "PT10M"})),
        said(mbox("bob"), "passed", &iri, T1, json!({"score": {"scaled": 0.8}})),
        said(
            mbox("cat"),
            "failed",
            &iri,
            T1,
            json!({"completion": false, "score": {"raw": 3, "max": 10}, "extensions": {PROGRESS: 30}})
        ),
        said(
            json!({"account": {"homePage": "https://sso.example.com", "name": "u-dan"}}),
            "progressed",
            &iri,
            T1,
            json!({"extensions": {PROGRESS: 40}})
        ),
        said(mbox("eve"), "completed", &iri, T1, Value::Null),
        said(mbox("ann"), "completed", "https://elsewhere.example.com/x", T1, Value::Null),
        said(mbox("fay"), "progressed", &iri, T1, Value::Null),
    ]);
    f.app.store(&batch).await;
    assert!(sim.wait_until(WAIT, |s| s.state.lock().unwrap().operations.iter().any(|o| o.results.is_some())).await);
    let settled = f.settled().await;
    assert_eq!(
        settled,
        statuses(&[(Status::Parked, 2), (Status::Skipped, 1), (Status::Succeeded, 4), (Status::Superseded, 1)])
    );
    let jobs = submitted(&sim);
    assert_eq!(jobs.len(), 1, "one bulk job");
    let rows = &jobs[0];
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let ann = row_of(rows, "ann@example.com");
    assert_eq!(
        *ann,
        json!({"courseIdentifier": {"type": "externalId", "value": course},
               "userIdentifier": {"type": "mail", "value": "ann@example.com"},
               "progress": 100, "timeSpent": 600_000,
               "firstActivityAt": "2026-11-20T09:00:00.000Z", "lastActivityAt": "2026-11-20T09:30:00.000Z"}),
        "firstActivityAt from ann's first row on the course"
    );
    let bob = row_of(rows, "bob@example.com");
    assert_eq!(
        (&bob["progress"], &bob["score"], &bob["result"], &bob["timeSpent"]),
        (&json!(100), &json!(80.0), &json!("success"), &json!(1))
    );
    assert_eq!(bob["firstActivityAt"], "2026-11-20T09:30:00.000Z");
    let cat = row_of(rows, "cat@example.com");
    assert_eq!((&cat["progress"], &cat["score"], &cat["result"]), (&json!(30), &json!(30.0), &json!("failed")));
    let dan = row_of(rows, "u-dan");
    assert_eq!((&dan["userIdentifier"]["type"], &dan["progress"]), (&json!("internalId"), &json!(40)));
    assert!(dan.get("result").is_none() && dan.get("score").is_none());
    assert!(rows.iter().all(|r| r.get("forceNew").is_none()));

    let requests = sim.requests();
    let api: Vec<&Recorded> = requests.iter().filter(|r| r.path != "/api/v2/oauth2/token").collect();
    assert!(api.iter().all(|r| r.header("360-api-version") == Some("v2.0")));
    assert!(api.iter().all(|r| r.header("authorization").is_some_and(|a| a.starts_with("Bearer token-"))));
    let token: Value =
        serde_json::from_slice(&requests.iter().find(|r| r.path.ends_with("/token")).unwrap().body).unwrap();
    assert_eq!(token["company_id"], "acme");
    {
        let state = sim.behaviour.state.lock().unwrap();
        assert_eq!(state.operations[0].seen, ["queued", "running", "completed"], "polled to completion");
    }
    assert_eq!(requests.iter().filter(|r| r.path.ends_with("/results")).count(), 1);

    let parked = parked_reasons(&f).await;
    assert!(parked.iter().any(|r| r.contains("User not found: eve@example.com")), "{parked:?}");
    assert!(parked.iter().any(|r| r.contains("no course is mapped")), "{parked:?}");
    let ann = sim.behaviour.attempts(&course, "u-ann");
    assert_eq!(ann.len(), 1);
    assert_eq!((ann[0].progress, ann[0].time_spent), (100.0, 600_000));
    let bob = sim.behaviour.attempts(&course, "u-bob");
    assert_eq!((bob[0].score, bob[0].result.as_deref()), (Some(80.0), Some("success")));
    assert_eq!(sim.behaviour.attempts(&course, "u-cat")[0].result.as_deref(), Some("failed"));
    assert_eq!(sim.behaviour.attempts(&course, "u-dan")[0].progress, 40.0);
}

async fn parked_reasons(f: &Forwarding) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    let rows =
        f.db.query_all_raw(sea_orm::Statement::from_string(
            f.db.get_database_backend(),
            "SELECT last_error FROM forward_outbox WHERE status = 'parked'",
        ))
        .await
        .unwrap();
    rows.iter().map(|r| r.try_get_by_index::<Option<String>>(0).unwrap().unwrap_or_default()).collect()
}

forwarding_test!(a_replay_to_learning360_updates_the_same_attempt);
async fn a_replay_to_learning360_updates_the_same_attempt(backend: Backend) {
    let Some(Setup { sim, f, course, iri }) = setup(backend, "{ retry_base_ms = 100 }").await else { return };
    *sim.behaviour.run_time.lock().unwrap() = Duration::from_millis(200);
    f.app.store(&said(mbox("ann"), "progressed", &iri, T0, json!({"extensions": {PROGRESS: 50}}))).await;
    assert_eq!(f.settled().await, statuses(&[(Status::Succeeded, 1)]));
    f.app
        .store(&json!([
            said(mbox("ann"), "completed", &iri, T1, Value::Null),
            said(mbox("bob"), "passed", &iri, T1, json!({"score": {"scaled": 0.9}})),
        ]))
        .await;
    assert_eq!(f.settled().await, statuses(&[(Status::Succeeded, 3)]));
    let before = (sim.behaviour.attempts(&course, "u-ann"), sim.behaviour.attempts(&course, "u-bob"));
    assert_eq!((before.0.len(), before.1.len()), (1, 1));
    assert_eq!(before.0[0].progress, 100.0, "the progress attempt was completed, not a second one opened");

    // The token is no longer good: one 401, a new token, then the replay.
    sim.behaviour.revoke_tokens();
    let path = f.dir.path().join("forwarders.toml");
    f.cli(&["replay", "l360", "--since", "2000-01-01T00:00:00Z", "--forwarders", path.to_str().unwrap()]).await;
    let settled = f.settled().await;
    assert_eq!(settled, statuses(&[(Status::Succeeded, 5), (Status::Superseded, 1)]));
    let jobs = submitted(&sim);
    assert_eq!(jobs.len(), 3);
    let (first, replayed) = (&jobs[1], &jobs[2]);
    for user in ["ann@example.com", "bob@example.com"] {
        assert_eq!(row_of(replayed, user), row_of(first, user), "the replay sends the same row");
    }
    assert_eq!(row_of(replayed, "ann@example.com")["firstActivityAt"], "2026-11-20T09:00:00.000Z");
    let after = (sim.behaviour.attempts(&course, "u-ann"), sim.behaviour.attempts(&course, "u-bob"));
    assert_eq!(after, before, "no second effect");
    assert_eq!(sim.behaviour.state.lock().unwrap().tokens_minted, 2);
    assert_eq!(sim.requests().iter().filter(|r| r.status == 401).count(), 1);
}

forwarding_test!(slow_and_refused_learning360_jobs_are_sent_again_without_duplicates);
async fn slow_and_refused_learning360_jobs_are_sent_again_without_duplicates(backend: Backend) {
    let delivery = "{ lease_secs = 2, retry_base_ms = 1000 }";
    let Some(Setup { sim, f, course, iri }) = setup(backend, delivery).await else { return };
    // Slower than the lease: given up in time, and retried.
    *sim.behaviour.run_time.lock().unwrap() = Duration::from_secs(3);
    f.app.store(&said(mbox("ann"), "completed", &iri, T1, Value::Null)).await;
    let deadline = std::time::Instant::now() + WAIT;
    while !f.statuses().await.iter().any(|(_, s, _)| *s == Status::Retry) {
        assert!(std::time::Instant::now() < deadline, "no retry: {:?}", f.statuses().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    *sim.behaviour.run_time.lock().unwrap() = Duration::from_millis(200);
    assert_eq!(f.settled().await, statuses(&[(Status::Succeeded, 1)]));
    assert!(sim.wait_until(WAIT, |s| s.idle()).await, "the abandoned job ran too");
    let jobs = submitted(&sim);
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0], jobs[1], "the same rows again");
    let ann = sim.behaviour.attempts(&course, "u-ann");
    assert_eq!(ann.len(), 1, "both jobs ran, one attempt: {ann:?}");
    assert_eq!(ann[0].progress, 100.0);

    // Three other jobs of the company run: 429, then delivered once they end.
    sim.behaviour.occupy(3, Duration::from_millis(1500));
    f.app.store(&said(mbox("bob"), "passed", &iri, T1, Value::Null)).await;
    assert_eq!(f.settled().await, statuses(&[(Status::Succeeded, 2)]));
    let refused = sim.requests().iter().filter(|r| is_stats(r) && r.status == 429).count();
    assert!(refused >= 1, "the concurrency limit was met");
    assert_eq!(sim.behaviour.attempts(&course, "u-bob").len(), 1);
}

forwarding_test!(an_unknown_learning360_integration_pauses_the_target);
async fn an_unknown_learning360_integration_pauses_the_target(backend: Backend) {
    let Some(Setup { sim, f, iri, .. }) = setup(backend, "{ retry_base_ms = 100 }").await else { return };
    sim.behaviour.set_integration("int-2");
    f.app.store(&said(mbox("ann"), "completed", &iri, T1, Value::Null)).await;
    assert!(sim.wait_until(WAIT, |_| sim.requests().iter().any(is_stats)).await);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(sim.requests().iter().filter(|r| is_stats(r)).count(), 1, "not sent again while paused");
    assert_eq!(f.statuses().await, statuses(&[(Status::Pending, 1)]), "kept for when it resumes");
    let (_, reason) = xlrs::store::outbox::paused_until(&f.db, "l360").await.unwrap().expect("paused");
    assert!(reason.contains("int-1"), "{reason}");
    // The integration mended, an operator resumes the target.
    sim.behaviour.set_integration("int-1");
    f.cli(&["resume", "l360"]).await;
    assert_eq!(f.settled().await, statuses(&[(Status::Succeeded, 1)]));
}

/// Acknowledged = delivered, with no second effect, across a SIGKILL:
/// `xlrs serve` is killed while it ingests completions and has 360 bulk jobs
/// under way (some submitted and run at 360, their answers never read).
/// After a restart every learner with an acknowledged completion has it on
/// 360, in exactly one attempt: the resubmitted rows carry the same
/// firstActivityAt, so 360 updates instead of adding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_completion_sent_to_360learning() {
    use crate::cli::serve_with_env;
    let mails: Vec<String> = (0..20).map(|n| format!("l{n}@example.com")).collect();
    let users: Vec<(&str, String)> = mails.iter().enumerate().map(|(n, m)| (m.as_str(), format!("u-{n}"))).collect();
    let users: Vec<(&str, &str)> = users.iter().map(|(m, id)| (*m, id.as_str())).collect();
    let courses = ["k0", "k1", "k2", "k3"];
    let sim = Simulator::start(Learning360::new(("client-7", "s3cret"), "int-1", &users, &courses));
    *sim.behaviour.run_time.lock().unwrap() = Duration::from_millis(300);
    sim.slow(Duration::from_millis(150));
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in SECRETS {
        std::fs::write(dir.path().join(name), value).unwrap();
    }
    let delivery = "{ batch_size = 40, lease_secs = 2, retry_base_ms = 50, rate_per_sec = 1000.0, burst = 100 }";
    let config = target_config(&sim.url, delivery).replace("$DIR", &dir.path().display().to_string());
    let config_path = dir.path().join("forwarders.toml");
    std::fs::write(&config_path, config).unwrap();
    let url = format!("sqlite://{}", dir.path().join("kill.db").display());
    let env = [("XLRS_FORWARDERS", config_path.to_str().unwrap())];
    // Each writer's batches: five completions of learners on courses (20 x 4 pairs).
    let pairs: Vec<(usize, usize)> = super::ingest_then_kill(&url, &env, |w, round| {
        let pairs: Vec<(usize, usize)> = (0..5).map(|k| ((w * 5 + round * 3 + k) % 20, (round + k) % 4)).collect();
        let batch = pairs
            .iter()
            .map(|(l, c)| {
                said(
                    mbox(&format!("l{l}")),
                    "completed",
                    &format!("https://lms.example.com/courses/k{c}"),
                    T0,
                    Value::Null,
                )
            })
            .collect();
        (batch, pairs)
    })
    .await;
    let acknowledged: std::collections::HashSet<(usize, usize)> = pairs.into_iter().collect();
    let on_360 = |(l, c): &(usize, usize)| {
        let attempts = sim.behaviour.attempts(&format!("k{c}"), &format!("u-{l}"));
        (attempts.len(), attempts.iter().all(|a| a.progress >= 100.0))
    };
    let missing_at_kill = acknowledged.iter().filter(|p| on_360(p).0 == 0).count();
    assert!(missing_at_kill > 0, "killed with completions to go ({} acknowledged pairs)", acknowledged.len());

    sim.slow(Duration::ZERO);
    let mut second = serve_with_env(&url, Some(super::KILLER), &env);
    let all = sim.wait_until(Duration::from_secs(60), |_| acknowledged.iter().all(|p| on_360(p).0 > 0)).await;
    assert!(all, "every acknowledged completion on 360: {missing_at_kill} missing at the kill");
    for pair in &acknowledged {
        assert_eq!(on_360(pair), (1, true), "{pair:?}: one completed attempt, no second effect");
    }
    crate::cli::sigterm(&second.child);
    crate::cli::wait_exit(&mut second.child);
}
