//! LearnWorlds end to end: statements in through the xAPI API, calls checked
//! on the simulated school.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use xlrs::store::outbox::{self, Status};

use super::{Forwarding, WAIT};
use crate::helpers::*;
use crate::simulators::Simulator;
use crate::simulators::learnworlds::{LearnWorlds, Progress, TOKEN_PATH};

const CLIENT: &str = "lw-client-1";
const SECRET: &str = "lw-secret-1";
const SLEEP: &str = "https://lms.example.com/courses/sleep";
const FIRE_U1: &str = "https://lms.example.com/courses/fire/units/u1";

fn school() -> Simulator<LearnWorlds> {
    let users = [("u-ann", "ann@example.com"), ("u-bo", "bo@example.com"), ("u-cy", "cy@example.com")];
    let sim = Simulator::start(LearnWorlds::new(CLIENT, SECRET, &users, &["secrets-of-sleep", "fire"]));
    sim.behaviour.enroll("u-ann", "secrets-of-sleep");
    sim.behaviour.enroll("u-ann", "fire");
    sim.behaviour.enroll("u-bo", "fire");
    sim
}

/// A LearnWorlds target on `sim`: one course by its IRI, units of `fire`
/// by a pattern, and account actors of the school known by their user id.
fn config(sim: &Simulator<LearnWorlds>, extra: &str) -> String {
    format!(
        r#"
        [[forwarder]]
        name = "lw"
        kind = "learnworlds"
        school_url = "{url}"
        client_id = {{ file = "$DIR/lw-id" }}
        client_secret = {{ file = "$DIR/lw-secret" }}
        {extra}
        [forwarder.identity]
        account_home_pages = ["https://school.example.com"]
        [[forwarder.course]]
        activity = "{SLEEP}"
        course = "secrets-of-sleep"
        [[forwarder.course]]
        pattern = "^https://lms.example.com/courses/(?P<code>[^/]+)/units/(?P<unit>[^/]+)$"
        course = "$code"
        unit = "$unit"
        "#,
        url = sim.url
    )
}

async fn start(backend: Backend, sim: &Simulator<LearnWorlds>, extra: &str, secret: &str) -> Option<Forwarding> {
    Forwarding::start(backend, &config(sim, extra), &[("lw-id", CLIENT), ("lw-secret", &format!("{secret}\n"))]).await
}

fn ann() -> Value {
    json!({"objectType": "Agent", "mbox": "mailto:Ann@Example.com"})
}

fn account(home: &str, name: &str) -> Value {
    json!({"objectType": "Agent", "account": {"homePage": home, "name": name}})
}

fn did(actor: Value, verb: &str, activity: &str) -> Value {
    json!({"actor": actor, "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
           "object": {"objectType": "Activity", "id": activity}})
}

fn voiding(actor: Value, voided: &str) -> Value {
    json!({"actor": actor, "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
           "object": {"objectType": "StatementRef", "id": voided}})
}

fn progress(user: &str, course: &str, units: &[&str]) -> Progress {
    Progress { user: user.into(), course: course.into(), units: units.iter().map(|u| u.to_string()).collect() }
}

/// Every outbox row: operation, status and last error, oldest first.
async fn rows(f: &Forwarding) -> Vec<(String, String, Option<String>)> {
    let backend = f.db.get_database_backend();
    let select = "SELECT op, status, last_error FROM forward_outbox ORDER BY id";
    let found = f.db.query_all_raw(sea_orm::Statement::from_string(backend, select)).await.unwrap();
    found
        .iter()
        .map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap(), r.try_get_by_index(2).unwrap()))
        .collect()
}

fn reasons(rows: &[(String, String, Option<String>)], status: &str) -> Vec<String> {
    rows.iter().filter(|r| r.1 == status).map(|r| r.2.clone().unwrap_or_default()).collect()
}

fn body(r: &crate::simulators::Recorded) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

forwarding_test!(learnworlds_marks_courses_complete_and_enrolls);
async fn learnworlds_marks_courses_complete_and_enrolls(backend: Backend) {
    let sim = school();
    let Some(f) = start(backend, &sim, "enroll_on_launch = true", SECRET).await else { return };
    let school_bo = account("https://school.example.com", "u-bo");
    f.app.store(&did(ann(), "completed", SLEEP)).await;
    f.app.store(&did(school_bo.clone(), "passed", "https://lms.example.com/courses/fire/units/quiz-1")).await;
    f.app.store(&did(ann(), "completed", "https://other.example.com/x")).await;
    f.app.store(&did(json!({"mbox": "mailto:zed@example.com"}), "completed", SLEEP)).await;
    f.app.store(&did(account("https://elsewhere.example.com", "u-ann"), "completed", SLEEP)).await;
    f.app.store(&did(json!({"mbox": "mailto:cy@example.com"}), "launched", SLEEP)).await;
    f.app.store(&did(json!({"mbox": "mailto:cy@example.com"}), "launched", SLEEP)).await;
    // Bo is not enrolled in this one.
    f.app.store(&did(school_bo, "completed", SLEEP)).await;

    let done = |lw: &LearnWorlds| {
        let state = lw.state.lock().unwrap();
        state.completions.len() == 3 && state.enrollment_bodies.len() == 2
    };
    assert!(sim.wait_until(WAIT, done).await, "{:?}", sim.behaviour.completions());
    assert_eq!(f.settled().await, vec![("lw".to_owned(), Status::Parked, 3), ("lw".to_owned(), Status::Succeeded, 4)]);
    assert_eq!(
        sim.behaviour.completions(),
        [
            progress("u-ann", "secrets-of-sleep", &[]),
            progress("u-bo", "fire", &["quiz-1"]),
            progress("u-bo", "secrets-of-sleep", &[])
        ]
    );

    let requests = sim.requests();
    let completes: Vec<_> = requests.iter().filter(|r| r.path.ends_with("/complete") && r.status == 200).collect();
    assert_eq!(completes[0].path, "/admin/api/v2/users/ann%40example.com/courses/secrets-of-sleep/complete");
    assert_eq!(body(completes[0]), json!({"send_course_complete_email": false, "units": []}));
    assert_eq!(completes[1].path, "/admin/api/v2/users/u-bo/courses/fire/complete");
    assert_eq!(body(completes[1]), json!({"send_course_complete_email": false, "units": ["quiz-1"]}));

    // Cy launched twice and was enrolled once; Bo was enrolled before his completion went again.
    let enrollments: Vec<_> = requests.iter().filter(|r| r.path.ends_with("/enrollment")).collect();
    assert_eq!(enrollments.len(), 2);
    assert_eq!(enrollments[0].path, "/admin/api/v2/users/cy%40example.com/enrollment");
    assert_eq!(
        body(enrollments[0]),
        json!({"productId": "secrets-of-sleep", "productType": "course", "price": 0, "justification": "xAPI LRS",
               "send_enrollment_email": false})
    );
    let bo_sleep: Vec<(&str, u16)> = requests
        .iter()
        .filter(|r| r.path.contains("/users/u-bo/") && !r.path.contains("/fire/"))
        .map(|r| (r.path.rsplit('/').next().unwrap(), r.status))
        .collect();
    assert_eq!(bo_sleep, [("complete", 400), ("enrollment", 200), ("complete", 200)]);
    {
        let state = sim.behaviour.state.lock().unwrap();
        assert!(state.enrollments.contains(&("u-cy".into(), "secrets-of-sleep".into())));
        assert!(state.enrollments.contains(&("u-bo".into(), "secrets-of-sleep".into())));
        assert_eq!(state.minted, 1, "one token for every call");
    }
    assert_eq!(requests.iter().filter(|r| r.path == TOKEN_PATH).count(), 1);
    let api: Vec<_> = requests.iter().filter(|r| r.path != TOKEN_PATH).collect();
    assert!(api.iter().all(|r| r.header("lw-client") == Some(CLIENT)));
    assert!(api.iter().all(|r| r.header("authorization") == api[0].header("authorization")));

    let parked = reasons(&rows(&f).await, "parked");
    assert_eq!(parked.len(), 3);
    assert!(parked[0].contains("no course is mapped for the activity https://other.example.com/x"), "{}", parked[0]);
    assert!(parked[1].contains("does not know the user 'zed@example.com'"), "{}", parked[1]);
    assert!(parked[2].contains("no identity for"), "{}", parked[2]);
}

forwarding_test!(learnworlds_renews_a_revoked_token_and_waits_when_told);
async fn learnworlds_renews_a_revoked_token_and_waits_when_told(backend: Backend) {
    let sim = school();
    let api_url = format!("api_url = \"{}/admin/api/\"", sim.url);
    let Some(f) = start(backend, &sim, &api_url, SECRET).await else { return };
    f.app.store(&did(ann(), "completed", SLEEP)).await;
    assert!(sim.wait_until(WAIT, |lw| lw.completions().len() == 1).await);
    sim.behaviour.revoke_tokens();
    f.app.store(&did(ann(), "passed", "https://lms.example.com/courses/fire/units/u2")).await;
    assert!(sim.wait_until(WAIT, |lw| lw.completions().len() == 2).await);
    let requests = sim.requests();
    let statuses: Vec<(bool, u16)> = requests.iter().map(|r| (r.path == TOKEN_PATH, r.status)).collect();
    assert_eq!(statuses, [(true, 200), (false, 200), (false, 401), (true, 200), (false, 200)], "one refresh");
    assert_eq!(sim.behaviour.state.lock().unwrap().minted, 2);

    // Too many requests: it comes back when asked to, not before.
    sim.fail(429, Some(1), Duration::from_millis(300));
    f.app.store(&did(ann(), "completed", "https://lms.example.com/courses/fire/units/u3")).await;
    assert!(sim.wait_until(WAIT, |lw| lw.completions().len() == 3).await);
    let requests = sim.requests();
    let throttled = requests.iter().position(|r| r.status == 429).expect("throttled");
    let gap = requests[throttled + 1].at - requests[throttled].at;
    assert!(gap >= Duration::from_millis(990), "asked to wait 1 s, came back after {gap:?}");
    assert_eq!(f.settled().await, vec![("lw".to_owned(), Status::Succeeded, 3)]);
}

forwarding_test!(learnworlds_refusing_our_client_pauses_the_target);
async fn learnworlds_refusing_our_client_pauses_the_target(backend: Backend) {
    let sim = school();
    let Some(f) = start(backend, &sim, "", "not-the-secret").await else { return };
    // One claim of two rows: the first refusal stops the second too.
    f.app.store(&json!([did(ann(), "completed", SLEEP), did(ann(), "completed", FIRE_U1)])).await;
    assert!(sim.wait_until(WAIT, |_| !sim.requests().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests = sim.requests();
    assert_eq!(requests.len(), 1, "no second token request with a refused secret");
    assert_eq!((requests[0].path.as_str(), requests[0].status), (TOKEN_PATH, 401));
    assert_eq!(f.statuses().await, vec![("lw".to_owned(), Status::Pending, 2)], "kept for when it resumes");
    let (until, reason) = outbox::paused_until(&f.db, "lw").await.unwrap().expect("paused");
    assert_eq!(until, i64::MAX);
    assert!(reason.contains("token refused") && reason.contains("401"), "{reason}");
    assert!(!reason.contains("not-the-secret"), "no secret in the reason: {reason}");
}

forwarding_test!(learnworlds_resets_a_voided_completion_it_was_sent);
async fn learnworlds_resets_a_voided_completion_it_was_sent(backend: Backend) {
    let sim = school();
    let Some(f) = start(backend, &sim, "reset_on_void = true", SECRET).await else { return };
    let quiz = "https://lms.example.com/courses/fire/units/quiz-1";
    let forwarded = f.app.store(&did(ann(), "completed", quiz)).await.remove(0);
    let unmapped = f.app.store(&did(ann(), "completed", "https://other.example.com/x")).await.remove(0);
    f.settled().await;
    f.app.store(&voiding(ann(), &forwarded)).await;
    f.app.store(&voiding(ann(), &unmapped)).await;
    assert!(sim.wait_until(WAIT, |lw| !lw.state.lock().unwrap().resets.is_empty()).await);
    let settled = f.settled().await;
    assert_eq!(
        settled,
        vec![
            ("lw".to_owned(), Status::Parked, 1),
            ("lw".to_owned(), Status::Skipped, 1),
            ("lw".to_owned(), Status::Succeeded, 2)
        ]
    );
    assert_eq!(sim.behaviour.state.lock().unwrap().resets, [progress("u-ann", "fire", &["quiz-1"])]);
    let resets: Vec<_> = sim.requests().into_iter().filter(|r| r.path.ends_with("/reset")).collect();
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].path, "/admin/api/v2/users/ann%40example.com/courses/fire/reset");
    assert_eq!(body(&resets[0]), json!({"units": ["quiz-1"]}));
    let rows = rows(&f).await;
    assert_eq!(reasons(&rows, "skipped"), ["the voided statement was not forwarded here"]);
    assert_eq!(rows.iter().filter(|r| r.0 == "revoke").count(), 2);

    // Voided before it went out (stored together, so in one claim): the
    // reset waits for the completion's delivery, then follows it.
    let mut early = did(ann(), "completed", quiz);
    let id = uuid();
    early["id"] = json!(id);
    f.app.store(&json!([early, voiding(ann(), &id)])).await;
    assert!(sim.wait_until(WAIT, |lw| lw.state.lock().unwrap().resets.len() == 2).await, "reset after its completion");
    let calls: Vec<String> = sim.requests().into_iter().map(|r| r.path).collect();
    let last_complete = calls.iter().rposition(|p| p.ends_with("/complete")).unwrap();
    assert!(calls.iter().rposition(|p| p.ends_with("/reset")).unwrap() > last_complete);
    assert_eq!(f.settled().await.last(), Some(&("lw".to_owned(), Status::Succeeded, 4)));
}

forwarding_test!(learnworlds_calls_keep_within_thirty_in_ten_seconds);
async fn learnworlds_calls_keep_within_thirty_in_ten_seconds(backend: Backend) {
    let sim = school();
    let Some(f) = start(backend, &sim, "", SECRET).await else { return };
    let units: Vec<Value> = (1..=12)
        .map(|n| did(ann(), "completed", &format!("https://lms.example.com/courses/fire/units/u{n}")))
        .collect();
    f.app.store(&json!(units)).await;
    assert!(sim.wait_until(WAIT, |lw| lw.completions().len() == 12).await);
    let api: Vec<_> = sim.requests().into_iter().filter(|r| r.path != TOKEN_PATH).collect();
    assert!(api.iter().all(|r| r.status == 200), "never refused for the rate");
    // A burst of 5, then 2.5 a second: the 12th call no sooner than 2.8 s after the first.
    let span = api[11].at - api[0].at;
    assert!(span >= Duration::from_millis(2700), "12 calls in {span:?}");
    assert_eq!(f.settled().await, vec![("lw".to_owned(), Status::Succeeded, 12)]);

    // The school does refuse a 31st call in ten seconds.
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..20 {
        let res = client.post(format!("{}/admin/api/v2/users/u-ann/enrollment", sim.url)).send().await.unwrap();
        answers.push((res.status().as_u16(), res.text().await.unwrap()));
    }
    assert_eq!(answers[17].0, 401, "the 30th call is answered");
    assert_eq!(answers[18], (429, r#"{"error":"Too many requests"}"#.to_owned()));
}

forwarding_test!(learnworlds_documented_course_rule_completes_the_whole_course);
async fn learnworlds_documented_course_rule_completes_the_whole_course(backend: Backend) {
    let sim = school();
    // The course rule of docs/forwarding.md ("Learners and courses") as it is written there.
    let config = format!(
        r#"
        [[forwarder]]
        name = "lw"
        kind = "learnworlds"
        school_url = "{url}"
        client_id = {{ file = "$DIR/lw-id" }}
        client_secret = {{ file = "$DIR/lw-secret" }}
        [[forwarder.course]]
        pattern = '^https://lms\.example\.com/courses/(?P<code>[^/]+)(/units/(?P<unit>[^/]+))?$'
        course = "$code"
        unit = "$unit"                       # optional (LearnWorlds units)
        "#,
        url = sim.url
    );
    let secrets = [("lw-id", CLIENT), ("lw-secret", SECRET)];
    let Some(f) = Forwarding::start(backend, &config, &secrets).await else { return };
    f.app.store(&did(ann(), "completed", "https://lms.example.com/courses/fire")).await;
    assert!(sim.wait_until(WAIT, |lw| lw.completions().len() == 1).await, "{:?}", rows(&f).await);
    f.app.store(&did(ann(), "completed", FIRE_U1)).await;
    assert!(sim.wait_until(WAIT, |lw| lw.completions().len() == 2).await, "{:?}", rows(&f).await);
    assert_eq!(sim.behaviour.completions(), [progress("u-ann", "fire", &[]), progress("u-ann", "fire", &["u1"])]);
    let completes: Vec<_> = sim.requests().into_iter().filter(|r| r.path.ends_with("/complete")).collect();
    assert_eq!(body(&completes[0]), json!({"send_course_complete_email": false, "units": []}));
    assert_eq!(f.settled().await, vec![("lw".to_owned(), Status::Succeeded, 2)]);

    // The school refuses an empty unit id, as the real one does.
    let token = sim.requests().into_iter().find(|r| r.path == TOKEN_PATH).expect("a token was minted");
    assert_eq!(token.status, 200);
    let minted = sim.behaviour.state.lock().unwrap().tokens.iter().next().cloned().unwrap();
    let res = reqwest::Client::new()
        .post(format!("{}/admin/api/v2/users/u-ann/courses/fire/complete", sim.url))
        .bearer_auth(minted)
        .header("Lw-Client", CLIENT)
        .json(&json!({"send_course_complete_email": false, "units": [""]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    assert_eq!(res.text().await.unwrap(), r#"{"error":"Invalid learning activity id(s)"}"#);
}

forwarding_test!(learnworlds_remembers_a_learner_it_does_not_know);
async fn learnworlds_remembers_a_learner_it_does_not_know(backend: Backend) {
    let sim = school();
    let Some(f) = start(backend, &sim, "", SECRET).await else { return };
    let zed = || json!({"objectType": "Agent", "mbox": "mailto:zed@example.com"});
    let asked = |sim: &Simulator<LearnWorlds>| sim.requests().iter().filter(|r| r.path.contains("/zed%40")).count();
    f.app.store(&did(zed(), "completed", SLEEP)).await;
    assert_eq!(f.settled().await, vec![("lw".to_owned(), Status::Parked, 1)]);
    f.app.store(&did(zed(), "completed", FIRE_U1)).await;
    assert_eq!(f.settled().await, vec![("lw".to_owned(), Status::Parked, 2)]);
    assert_eq!(asked(&sim), 1, "the school was asked about zed once, not once per row");
    let parked = reasons(&rows(&f).await, "parked");
    assert!(parked[0].contains("does not know the user 'zed@example.com'"), "{}", parked[0]);
    assert!(parked[1].contains("is not known to 'lw'"), "{}", parked[1]);

    // `forward retry` forgets it: asked again, once for both rows.
    f.cli(&["retry", "--target", "lw"]).await;
    assert!(sim.wait_until(WAIT, |_| asked(&sim) == 2).await);
    assert_eq!(f.settled().await, vec![("lw".to_owned(), Status::Parked, 2)]);
    assert_eq!(asked(&sim), 2);
}

forwarding_test!(learnworlds_token_requests_count_against_the_limit);
async fn learnworlds_token_requests_count_against_the_limit(backend: Backend) {
    let sim = school();
    let Some(f) = start(backend, &sim, "", SECRET).await else { return };
    let units: Vec<Value> =
        (1..=5).map(|n| did(ann(), "completed", &format!("https://lms.example.com/courses/fire/units/t{n}"))).collect();
    f.app.store(&json!(units)).await;
    assert!(sim.wait_until(WAIT, |lw| lw.completions().len() == 5).await);
    let requests = sim.requests();
    assert_eq!(requests[0].path, TOKEN_PATH);
    // The token and four calls take the burst of 5; the fifth call waits for
    // the next token of 2.5 a second.
    let span = requests[5].at - requests[0].at;
    assert!(span >= Duration::from_millis(350), "a token request and 5 calls in {span:?}");
}
