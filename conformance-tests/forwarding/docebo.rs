//! Docebo end to end: statements in through the xAPI API, enrollments out
//! through the batch import of a simulated Docebo.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use xlrs::store::outbox::Status;

use super::{Forwarding, WAIT};
use crate::helpers::*;
use crate::simulators::Simulator;
use crate::simulators::docebo::{Docebo, User};

const SECRETS: &[(&str, &str)] =
    &[("client-id", "xlrs-app"), ("client-secret", "app-secret\n"), ("api-user", "api-admin"), ("api-password", "pw")];

/// A Docebo target with `settings` (keys of the `[[forwarder]]` table);
/// courses `https://lms.example.com/courses/<code>`, accounts of
/// `https://sso.example.com` named by their Docebo user id.
fn target(sim_url: &str, settings: &str) -> String {
    format!(
        r#"
        [[forwarder]]
        name = "docebo"
        kind = "docebo"
        url = "{sim_url}"
        client_id = {{ file = "$DIR/client-id" }}
        client_secret = {{ file = "$DIR/client-secret" }}
        {settings}
        [forwarder.identity]
        account_home_pages = ["https://sso.example.com"]
        [[forwarder.course]]
        pattern = '^https://lms\.example\.com/courses/(?P<code>[^/]+)$'
        course = "$code"
        "#
    )
}

const PASSWORD_GRANT: &str = r#"username = { file = "$DIR/api-user" }
        password = { file = "$DIR/api-password" }"#;

fn mbox(name: &str) -> Value {
    json!({"mbox": format!("mailto:{name}@example.com")})
}

/// `actor` `verb`s the course `code` (an IRI outside the mapping when
/// `code` is one), at `timestamp`, with `result` unless it is null.
fn said(actor: Value, verb: &str, code: &str, result: Value, timestamp: &str) -> Value {
    let object = if code.contains(':') { code.to_owned() } else { format!("https://lms.example.com/courses/{code}") };
    let mut s = json!({"actor": actor, "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
                       "object": {"objectType": "Activity", "id": object}, "timestamp": timestamp});
    if !result.is_null() {
        s["result"] = result;
    }
    s
}

const AT: &str = "2026-03-04T05:06:07.891+02:00";
const AT_UTC: &str = "2026-03-04 03:06:07";

/// Statuses sorted, for comparing.
async fn settled(f: &Forwarding) -> Vec<(Status, i64)> {
    let mut s: Vec<(Status, i64)> = f.settled().await.into_iter().map(|(_, s, n)| (s, n)).collect();
    s.sort_by_key(|(s, _)| s.as_str());
    s
}

fn sorted(mut s: Vec<(Status, i64)>) -> Vec<(Status, i64)> {
    s.sort_by_key(|(s, _)| s.as_str());
    s
}

/// `last_error` of the target's rows in `status`.
async fn errors(db: &DatabaseConnection, status: Status) -> Vec<String> {
    let sql = format!("SELECT last_error FROM forward_outbox WHERE status = '{}'", status.as_str());
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|r| r.try_get_by_index::<Option<String>>(0).unwrap().unwrap_or_default()).collect()
}

fn batch_items(sim: &Simulator<Docebo>, call: usize) -> Vec<Value> {
    sim.behaviour.state.lock().unwrap().batches[call]["items"].as_array().unwrap().clone()
}

forwarding_test!(docebo_records_outcomes_in_one_batch_with_looked_up_users);
async fn docebo_records_outcomes_in_one_batch_with_looked_up_users(backend: Backend) {
    let users = Docebo::users(&["ann", "joann", "bob", "cat", "dan", "eve", "fay", "gus"], 101);
    let docebo =
        Docebo::new(("xlrs-app", "app-secret"), Some(("api-admin", "pw")), users, &["c1", "c2", "c3", "archived"]);
    docebo.state.lock().unwrap().refusing.insert("archived".into(), "The course is archived".into());
    let sim = Simulator::start(docebo);
    let Some(f) = Forwarding::start(backend, &target(&sim.url, PASSWORD_GRANT), SECRETS).await else { return };
    let ann = json!({"mbox": "mailto:Ann@Example.com"});
    let first = vec![
        said(ann.clone(), "completed", "c1", json!({"score": {"scaled": 0.85}}), AT),
        said(ann.clone(), "passed", "c2", json!({"score": {"raw": 18, "max": 20}}), AT),
        said(mbox("bob"), "failed", "c1", json!({"completion": false, "score": {"scaled": 0.4}}), AT),
        said(mbox("cat"), "failed", "c2", json!({"completion": true}), AT),
        said(mbox("dan"), "progressed", "c1", Value::Null, AT),
        said(mbox("nobody"), "completed", "c1", Value::Null, AT),
        said(mbox("eve"), "completed", "https://elsewhere.example.com/x", Value::Null, AT),
        said(mbox("fay"), "completed", "archived", Value::Null, AT),
    ];
    f.app.store(&json!(first)).await;
    assert_eq!(settled(&f).await, sorted(vec![(Status::Dead, 1), (Status::Parked, 2), (Status::Succeeded, 5)]));

    let d = &sim.behaviour;
    assert_eq!(d.batch_calls(), 1, "one claim, one batch call");
    let items = batch_items(&sim, 0);
    assert_eq!(items.len(), 6, "parked rows are not sent: {items:?}");
    assert!(items.iter().all(|i| i["level"] == "student" && i["batch_item_id"].is_string()));
    assert_eq!(
        sim.behaviour.state.lock().unwrap().batches[0]["options"],
        json!({"timezone": "UTC", "trigger_notifications": false, "trigger_certifications": true,
               "duplicates_as_recertification": false})
    );
    assert_eq!(
        d.enrollment("c1", "101"),
        Some(json!({"status": "completed", "score": 85.0, "completion_date": AT_UTC})),
        "ann, not joann whom the search finds too"
    );
    assert_eq!(
        d.enrollment("c2", "101"),
        Some(json!({"status": "completed", "score": 90.0, "passed": true,
                                                      "completion_date": AT_UTC}))
    );
    assert_eq!(d.enrollment("c1", "103"), Some(json!({"status": "in_progress", "score": 40.0, "passed": false})));
    assert_eq!(
        d.enrollment("c2", "104"),
        Some(json!({"status": "completed", "passed": false,
                                                      "completion_date": AT_UTC}))
    );
    assert_eq!(d.enrollment("c1", "105"), Some(json!({"status": "in_progress"})));
    assert_eq!(d.enrollment("archived", "107"), None);
    for learner in ["ann", "bob", "cat", "dan", "nobody", "fay"] {
        assert_eq!(d.searches_for(&format!("{learner}@example.com")), 1, "{learner} looked up once");
    }
    assert_eq!(d.searches_for("eve@example.com"), 0, "an unmapped course parks before any lookup");
    let dead = errors(&f.db, Status::Dead).await;
    assert!(dead[0].contains("The course is archived"), "{dead:?}");
    let parked = errors(&f.db, Status::Parked).await.join(" | ");
    assert!(parked.contains("nobody@example.com") && parked.contains("elsewhere.example.com"), "{parked}");

    // The identity table answers now: no search for ann, none for nobody
    // (remembered as not found); an account of the SSO is a user id.
    let second = vec![
        said(ann.clone(), "completed", "c3", Value::Null, AT),
        said(mbox("nobody"), "passed", "c2", Value::Null, AT),
        said(
            json!({"account": {"homePage": "https://sso.example.com", "name": "108"}}),
            "completed",
            "c3",
            Value::Null,
            AT,
        ),
    ];
    f.app.store(&json!(second)).await;
    assert_eq!(settled(&f).await, sorted(vec![(Status::Dead, 1), (Status::Parked, 3), (Status::Succeeded, 7)]));
    assert_eq!(d.batch_calls(), 2);
    assert_eq!(d.enrollment("c3", "101").unwrap()["status"], "completed");
    assert_eq!(d.enrollment("c3", "108").unwrap()["status"], "completed");
    assert_eq!((d.searches_for("ann@example.com"), d.searches_for("nobody@example.com")), (1, 1));
    assert_eq!(d.state.lock().unwrap().searches.len(), 6, "no other search");
    assert_eq!(d.tokens_minted(), 1, "the token is kept");
    let token_calls: Vec<_> = sim.requests().into_iter().filter(|r| r.path == "/oauth2/token").collect();
    let form = String::from_utf8(token_calls[0].body.clone()).unwrap();
    assert!(form.contains("grant_type=password") && form.contains("username=api-admin"), "{form}");
}

forwarding_test!(docebo_gets_only_the_furthest_state);
async fn docebo_gets_only_the_furthest_state(backend: Backend) {
    let ann = User { user_id: "201".into(), username: "ann@example.com".into(), email: "ann@example.com".into() };
    let sim = Simulator::start(Docebo::new(("xlrs-app", "app-secret"), None, vec![ann], &["c1", "c2"]));
    let config = target(&sim.url, "username_is_email = true\nenroll_on_launch = true");
    let Some(f) = Forwarding::start(backend, &config, SECRETS).await else { return };
    let d = &sim.behaviour;
    f.app
        .store(&json!([
            said(mbox("ann"), "progressed", "c1", Value::Null, AT),
            said(mbox("ann"), "completed", "c1", Value::Null, AT),
            said(mbox("ann"), "launched", "c2", Value::Null, AT),
        ]))
        .await;
    assert_eq!(settled(&f).await, sorted(vec![(Status::Succeeded, 2), (Status::Superseded, 1)]));
    assert_eq!(d.batch_calls(), 1);
    let items = batch_items(&sim, 0);
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        (items[0]["username"].as_str(), items[0]["status"].as_str()),
        (Some("ann@example.com"), Some("completed"))
    );
    assert_eq!(d.enrollment("c1", "201").unwrap()["status"], "completed");
    assert_eq!(d.enrollment("c2", "201"), Some(json!({"status": "subscribed", "enrollment_date": AT_UTC})));

    // After a delivered completion, a progress or a launch says less: not sent.
    f.app.store(&said(mbox("ann"), "progressed", "c1", Value::Null, AT)).await;
    f.app.store(&said(mbox("ann"), "launched", "c1", Value::Null, AT)).await;
    assert_eq!(settled(&f).await, sorted(vec![(Status::Succeeded, 2), (Status::Superseded, 3)]));
    assert_eq!(d.batch_calls(), 1, "nothing sent for them");
    assert_eq!(d.enrollment("c1", "201").unwrap()["status"], "completed");
    // A second launch enrolls no more; progress where nothing was decided goes.
    f.app.store(&said(mbox("ann"), "launched", "c2", Value::Null, AT)).await;
    f.app.store(&said(mbox("ann"), "progressed", "c2", Value::Null, AT)).await;
    assert_eq!(settled(&f).await, sorted(vec![(Status::Succeeded, 3), (Status::Superseded, 3)]));
    assert_eq!(d.batch_calls(), 2);
    assert_eq!(d.enrollment("c2", "201").unwrap()["status"], "in_progress");
    assert!(d.state.lock().unwrap().searches.is_empty(), "usernames are e-mails: no lookup");
    let form = String::from_utf8(sim.requests()[0].body.clone()).unwrap();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
}

forwarding_test!(docebo_gets_one_batch_call_at_a_time);
async fn docebo_gets_one_batch_call_at_a_time(backend: Backend) {
    let names: Vec<String> = (0..150).map(|n| format!("u{n}@example.com")).collect();
    let users = names
        .iter()
        .enumerate()
        .map(|(n, e)| User { user_id: (1000 + n).to_string(), username: e.clone(), email: e.clone() })
        .collect();
    let sim = Simulator::start(Docebo::new(("xlrs-app", "app-secret"), None, users, &["c1", "c2", "c3"]));
    *sim.behaviour.batch_processing.lock().unwrap() = Duration::from_millis(200);
    sim.slow(Duration::from_millis(50));
    let config = target(
        &sim.url,
        "username_is_email = true\ndelivery = { batch_size = 150, rate_per_sec = 100.0, burst = 20, retry_base_ms = 20 }",
    );
    let Some(f) = Forwarding::start(backend, &config, SECRETS).await else { return };
    let d = &sim.behaviour;
    let learner = |n: usize| json!({"mbox": format!("mailto:{}", names[n])});
    // 120 rows in one claim: two batch calls, the second after the first.
    let burst: Vec<Value> = (0..120).map(|n| said(learner(n), "completed", "c1", Value::Null, AT)).collect();
    f.app.store(&json!(burst)).await;
    // More keep coming while those calls are under way; the token is
    // revoked on the way (one refresh).
    for n in 0..8 {
        let more: Vec<Value> =
            (0..3).map(|k| said(learner(120 + n * 3 + k), "passed", "c2", Value::Null, AT)).collect();
        f.app.store(&json!(more)).await;
        if n == 3 {
            // Revoked once one is in use (on a slow start none may be yet).
            assert!(sim.wait_until(WAIT, |d| d.tokens_minted() >= 1).await, "a token was minted");
            d.revoke_tokens();
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let want = 120 + 8 * 3;
    assert!(
        sim.wait_until(WAIT, |d| d.state.lock().unwrap().enrollments.len() == want).await,
        "delivered: {} of {want}",
        d.state.lock().unwrap().enrollments.len()
    );
    let calls = d.batch_calls();
    assert!(calls >= 3, "{calls} batch calls");
    assert_eq!(d.state.lock().unwrap().max_in_progress, 1, "never two batch calls at once");
    assert!((0..calls).all(|c| batch_items(&sim, c).len() <= 100));
    let unauthorized = sim.requests().iter().filter(|r| r.status == 401).count();
    assert_eq!((unauthorized, d.tokens_minted()), (1, 2), "one refused token, one refresh");

    // An outage with Retry-After: asked to wait, then delivered.
    sim.slow(Duration::ZERO);
    sim.fail(503, Some(1), Duration::from_millis(1200));
    f.app.store(&said(learner(0), "completed", "c3", Value::Null, AT)).await;
    assert!(sim.wait_until(WAIT, |d| d.enrollment("c3", "1000").is_some()).await, "delivered after the outage");
    let requests = sim.requests();
    let refused = requests.iter().position(|r| r.status == 503).expect("the outage was met");
    let gap = requests[refused + 1].at - requests[refused].at;
    assert!(gap >= Duration::from_millis(990), "asked to wait 1 s, came back after {gap:?}");
    assert!(f.settled().await.iter().all(|(_, s, _)| *s == Status::Succeeded));
}
