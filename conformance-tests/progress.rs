//! `GET /xapi/extensions/progress`: learner progress kept by the writer,
//! by learner, course (with its children's statements) and registration,
//! paged, as JSON and CSV, corrected by voiding, and backfilled for
//! statements stored before it was kept.

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use xlrs::config::DatabaseArgs;
use xlrs::store::{self, credentials};

use crate::helpers::*;
use crate::on_both_backends;

const ADL: &str = "http://adlnet.gov/expapi/verbs/";

struct Course {
    course: String,
    module: String,
    registration: String,
}

impl Course {
    fn new() -> Course {
        let id = uuid();
        Course {
            course: format!("http://example.com/courses/{id}"),
            module: format!("http://example.com/courses/{id}/module-1"),
            registration: uuid(),
        }
    }

    /// A statement by `learner` with an ADL verb about the course itself
    /// (`module: false`) or its module, at `minute` past 10:00.
    fn statement(&self, learner: &Value, verb: &str, module: bool, minute: u32, result: Value) -> Value {
        let (object, parent) =
            if module { (&self.module, vec![json!({"id": self.course})]) } else { (&self.course, vec![]) };
        json!({
            "actor": learner, "verb": {"id": format!("{ADL}{verb}")},
            "object": {"objectType": "Activity", "id": object}, "result": result,
            "timestamp": format!("2026-03-01T10:{minute:02}:00Z"),
            "context": {"registration": self.registration, "contextActivities": {"parent": parent}}
        })
    }
}

async fn progress(app: &TestApp, query: &str) -> (StatusCode, Value) {
    let res = app.request(Method::GET, &format!("/extensions/progress?{query}")).send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The rows of a query that must succeed.
async fn rows(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = progress(app, query).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["progress"].as_array().expect("progress array").clone()
}

fn learner_q(learner: &Value) -> String {
    format!("learner={}", enc(&learner.to_string()))
}

fn row_for<'a>(rows: &'a [Value], activity: &str) -> &'a Value {
    rows.iter().find(|r| r["activity"] == activity).unwrap_or_else(|| panic!("no row for {activity} in {rows:?}"))
}

on_both_backends!(a_course_row_adds_up_its_own_and_its_modules_statements);
async fn a_course_row_adds_up_its_own_and_its_modules_statements(app: TestApp) {
    let c = Course::new();
    let ann = agent(&format!("ann-{}", uuid()));
    let ids = app
        .store(&json!([
            c.statement(&ann, "attempted", false, 0, json!({})),
            c.statement(&ann, "experienced", true, 5, json!({"duration": "PT4M"})),
            c.statement(&ann, "completed", true, 9, json!({"duration": "PT1M30S"})),
        ]))
        .await;
    let rows_now = rows(&app, &format!("{}&activity={}", learner_q(&ann), enc(&c.course))).await;
    assert_eq!(rows_now.len(), 1, "{rows_now:?}");
    let course = &rows_now[0];
    // A completed module does not complete its course.
    assert_eq!(course["status"], "in_progress");
    assert_eq!(course["statements"], 3);
    assert_eq!(course["attempts"], 1);
    assert_eq!(course["duration"], "PT330S");
    assert_eq!(course["first_activity"].as_str().unwrap()[..16], *"2026-03-01T10:00");
    assert_eq!(course["last_activity"].as_str().unwrap()[..16], *"2026-03-01T10:09");
    assert_eq!(course["last_statement"], ids[2]);
    assert_eq!(course["registration"], c.registration);
    assert_eq!(course["learner"]["mbox"], ann["mbox"]);

    // A failed then a passed attempt on the course: passed, best and last scores.
    app.store(&json!([
        c.statement(&ann, "failed", false, 20, json!({"score": {"raw": 40, "min": 0, "max": 100}})),
        c.statement(&ann, "passed", false, 30, json!({"score": {"scaled": 0.9}})),
        c.statement(&ann, "completed", false, 25, json!({"score": {"scaled": 0.7}})),
    ]))
    .await;
    let rows_now = rows(&app, &learner_q(&ann)).await;
    assert_eq!(rows_now.len(), 2, "the course and its module: {rows_now:?}");
    let course = row_for(&rows_now, &c.course);
    assert_eq!((course["status"].as_str(), course["success"].as_bool()), (Some("passed"), Some(true)));
    assert_eq!(course["best_score"], 0.9);
    assert_eq!(course["last_score"], 0.9, "the latest by timestamp");
    assert_eq!(course["statements"], 6);
    let module = row_for(&rows_now, &c.module);
    assert_eq!((module["status"].as_str(), module["statements"].as_i64()), (Some("completed"), Some(2)));
}

on_both_backends!(progress_is_found_by_course_registration_and_status_and_paged);
async fn progress_is_found_by_course_registration_and_status_and_paged(app: TestApp) {
    let c = Course::new();
    let learners: Vec<Value> = (0..7).map(|i| agent(&format!("p{i}-{}", uuid()))).collect();
    let batch: Vec<Value> = learners
        .iter()
        .enumerate()
        .map(|(i, l)| c.statement(l, if i % 2 == 0 { "completed" } else { "attempted" }, false, i as u32, json!({})))
        .collect();
    app.store(&Value::Array(batch)).await;
    let other = Course::new();
    app.store(&other.statement(&learners[0], "attempted", false, 0, json!({}))).await;

    assert_eq!(rows(&app, &format!("activity={}", enc(&c.course))).await.len(), 7);
    assert_eq!(rows(&app, &format!("registration={}", c.registration)).await.len(), 7);
    let completed = rows(&app, &format!("activity={}&status=completed", enc(&c.course))).await;
    assert_eq!(completed.len(), 4);
    assert!(completed.iter().all(|r| r["status"] == "completed"));

    // Pages of 3 give every row exactly once, whichever index a query reads.
    let mut expected: Vec<String> = learners.iter().map(|l| l["mbox"].as_str().unwrap().to_owned()).collect();
    expected.sort();
    for query in [format!("activity={}", enc(&c.course)), format!("registration={}", c.registration)] {
        let mut seen: Vec<String> = all_pages(&app, &format!("{query}&limit=3"))
            .await
            .iter()
            .map(|r| r["learner"]["mbox"].as_str().unwrap().to_owned())
            .collect();
        seen.sort();
        assert_eq!(seen, expected, "{query}");
    }
    // One learner's rows: the two courses, in pages of one.
    let mut courses: Vec<String> = all_pages(&app, &format!("{}&limit=1", learner_q(&learners[0])))
        .await
        .iter()
        .map(|r| r["activity"].as_str().unwrap().to_owned())
        .collect();
    courses.sort();
    let mut both = vec![c.course.clone(), other.course.clone()];
    both.sort();
    assert_eq!(courses, both);
}

/// Every row of a query, following `more` page by page.
async fn all_pages(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, mut page) = progress(app, query).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut rows = Vec::new();
    loop {
        let items = page["progress"].as_array().unwrap();
        rows.extend(items.iter().cloned());
        let more = page["more"].as_str().unwrap().to_owned();
        if more.is_empty() {
            return rows;
        }
        let (status, body) = progress(app, more.trim_start_matches("/xapi/extensions/progress?")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        page = body;
    }
}

on_both_backends!(a_learner_without_statements_has_not_attempted_the_course);
async fn a_learner_without_statements_has_not_attempted_the_course(app: TestApp) {
    let c = Course::new();
    let bob = agent(&format!("bob-{}", uuid()));
    let found = rows(&app, &format!("{}&activity={}", learner_q(&bob), enc(&c.course))).await;
    assert_eq!(found.len(), 1);
    assert_eq!((found[0]["status"].as_str(), found[0]["statements"].as_i64()), (Some("not_attempted"), Some(0)));
    assert!(rows(&app, &learner_q(&bob)).await.is_empty(), "no course named: nothing to report");
}

on_both_backends!(voiding_takes_a_statement_out_of_progress);
async fn voiding_takes_a_statement_out_of_progress(app: TestApp) {
    let c = Course::new();
    let ann = agent(&format!("ann-{}", uuid()));
    app.store(&c.statement(&ann, "attempted", false, 0, json!({"score": {"scaled": 0.5}}))).await;
    let passed = app.store(&c.statement(&ann, "passed", false, 10, json!({"score": {"scaled": 0.95}}))).await.remove(0);
    let query = format!("{}&activity={}", learner_q(&ann), enc(&c.course));
    assert_eq!(rows(&app, &query).await[0]["status"], "passed");

    let voiding = |target: &str| {
        json!({"actor": agent("admin"), "verb": {"id": format!("{ADL}voided")},
               "object": {"objectType": "StatementRef", "id": target}})
    };
    app.store(&voiding(&passed)).await;
    let row = rows(&app, &query).await.remove(0);
    assert_eq!(row["status"], "in_progress");
    assert_eq!((row["best_score"].as_f64(), row["last_score"].as_f64()), (Some(0.5), Some(0.5)));
    assert_eq!(row["statements"], 1);
    assert_ne!(row["last_statement"], passed);

    // A voiding statement that arrives before its target: the target never counts.
    let later = uuid();
    app.store(&voiding(&later)).await;
    let mut failed = c.statement(&ann, "failed", false, 20, json!({}));
    failed["id"] = json!(later);
    app.store(&failed).await;
    let row = rows(&app, &query).await.remove(0);
    assert_eq!((row["status"].as_str(), row["statements"].as_i64()), (Some("in_progress"), Some(1)));
}

on_both_backends!(progress_comes_as_csv);
async fn progress_comes_as_csv(app: TestApp) {
    let c = Course::new();
    let ann = json!({"objectType": "Agent", "account": {"homePage": "https://sso.example.com", "name": "ann, \"the\" learner"}});
    app.store(&c.statement(&ann, "completed", false, 0, json!({"score": {"scaled": 0.75}}))).await;
    for request in [
        app.request(Method::GET, &format!("/extensions/progress?activity={}&format=csv", enc(&c.course))),
        app.request(Method::GET, &format!("/extensions/progress?activity={}", enc(&c.course)))
            .header("Accept", "text/csv"),
    ] {
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let text = res.text().await.unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "learner,activity,registration,status,completion,success,best_score,last_score,attempts,duration,\
                 first_activity,last_activity,last_statement,statements"
            )
        );
        let row = lines.next().expect("one row");
        assert!(row.starts_with("\"account:https://sso.example.com|ann, \"\"the\"\" learner\","), "{row}");
        assert!(row.contains(",completed,true,,0.75,0.75,0,PT0S,"), "{row}");
        assert_eq!(lines.next(), None);
    }
}

on_both_backends!(bad_progress_requests_are_refused);
async fn bad_progress_requests_are_refused(app: TestApp) {
    for (query, property) in [
        ("activity=not-an-iri", "activity"),
        ("registration=nope", "registration"),
        ("learner=%7B%7D", "learner"),
        ("status=finished", "status"),
        ("limit=-1", "limit"),
        ("format=xml", "format"),
        ("agent=x", "agent"),
        ("cursor=%21%21", "cursor"),
        ("cursor=e30&activity=http%3A%2F%2Fa", "activity"),
    ] {
        let (status, body) = progress(&app, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["property"], property, "{query}: {body}");
    }
    let url = format!("{}/extensions/progress", app.endpoint);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let db = store::connect(&DatabaseArgs { url: app.database_url.clone(), pool_size: 2 }).await.unwrap();
    let (mine, secret) = credentials::create(&db, "mine", "statements/read/mine", None).await.unwrap();
    let res = app.client.get(&url).basic_auth(&mine.key, Some(&secret)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Not an xAPI resource: no version header needed.
    let res = app.client.get(&url).basic_auth(ADMIN_KEY, Some(ADMIN_SECRET)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

on_both_backends!(a_reader_sees_what_was_stored_before_it_asked);
// The writer counts progress in batches of its own, after commits: a
// reader asking right after storing still sees its statements, and the
// answer says up to when statements are counted.
async fn a_reader_sees_what_was_stored_before_it_asked(app: TestApp) {
    let c = Course::new();
    let ann = agent(&format!("ann-{}", uuid()));
    for minute in 1..=5 {
        app.store(&c.statement(&ann, "experienced", true, minute, json!({}))).await;
        let before = chrono::Utc::now();
        let url = format!("/extensions/progress?{}&activity={}", learner_q(&ann), enc(&c.course));
        let res = app.request(Method::GET, &url).send().await.unwrap();
        let through = res.headers()["X-Progress-Consistent-Through"].to_str().unwrap().to_owned();
        let through = chrono::DateTime::parse_from_rfc3339(&through).unwrap();
        assert!(through <= chrono::Utc::now() && through >= before - chrono::Duration::seconds(1), "{through}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["progress"][0]["statements"], minute, "{body}");
    }
}

async fn sql(db: &DatabaseConnection, text: &str) {
    db.execute_unprepared(text).await.unwrap_or_else(|e| panic!("{text}: {e}"));
}

on_both_backends!(statements_stored_before_progress_was_kept_are_counted);
async fn statements_stored_before_progress_was_kept_are_counted(app: TestApp) {
    let c = Course::new();
    let ann = agent(&format!("ann-{}", uuid()));
    let bob = agent(&format!("bob-{}", uuid()));
    app.store(&json!([
        c.statement(&ann, "passed", false, 1, json!({"score": {"scaled": 0.8}})),
        c.statement(&ann, "experienced", true, 2, json!({"duration": "PT1M"})),
        c.statement(&bob, "attempted", false, 3, json!({})),
    ]))
    .await;
    let voided = app.store(&c.statement(&bob, "failed", false, 4, json!({}))).await.remove(0);
    app.store(&json!({"actor": agent("admin"), "verb": {"id": format!("{ADL}voided")},
                      "object": {"objectType": "StatementRef", "id": voided}}))
        .await;
    let before = rows(&app, &format!("activity={}", enc(&c.course))).await;
    assert_eq!(before.len(), 2);

    // As if these statements had been stored by a version without progress.
    let db = store::connect(&DatabaseArgs { url: app.database_url.clone(), pool_size: 2 }).await.unwrap();
    sql(&db, "DELETE FROM progress").await;
    sql(&db, "UPDATE progress_counted SET through_seq = 0").await;
    assert!(rows(&app, &format!("activity={}", enc(&c.course))).await.is_empty());
    assert!(store::progress::backfill(&db).await.unwrap() >= 4);
    assert_eq!(rows(&app, &format!("activity={}", enc(&c.course))).await, before);
    assert_eq!(store::progress::backfill(&db).await.unwrap(), 0, "counted once");
}

on_both_backends!(a_server_may_run_without_progress_and_count_everything_when_it_keeps_it_again);
async fn a_server_may_run_without_progress_and_count_everything_when_it_keeps_it_again(app: TestApp) {
    let c = Course::new();
    let ann = agent(&format!("ann-{}", uuid()));
    app.store(&c.statement(&ann, "passed", false, 1, json!({}))).await;

    // A server on the same database that does not keep progress.
    let off = spawn_on(&app.database_url, false).await;
    let res = off.request(Method::GET, "/extensions/progress").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("--progress false"), "{body}");
    off.store(&c.statement(&ann, "attempted", true, 2, json!({}))).await;

    // Kept again: every statement counts, those stored meanwhile too.
    let on = spawn_on(&app.database_url, true).await;
    let course = rows(&on, &format!("{}&activity={}", learner_q(&ann), enc(&c.course))).await.remove(0);
    assert_eq!((course["status"].as_str(), course["statements"].as_i64()), (Some("passed"), Some(2)));
    assert_eq!(rows(&on, &learner_q(&ann)).await.len(), 2, "the course and its module");
}

/// Another server on the database of `url`, keeping progress or not.
async fn spawn_on(url: &str, progress: bool) -> TestApp {
    spawn_app_on(url.to_owned(), tempfile::tempdir().unwrap(), |args| args.progress = progress).await
}
