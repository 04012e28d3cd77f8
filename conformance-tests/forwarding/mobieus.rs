//! mobieusCore: enrollments on launch (idempotent), completions recorded as
//! unsupported, learners by mobieus user id only.

use xlrs::store::identities::{self, Source};

use super::*;
use crate::simulators::mobieus::Mobieus;

const ADL: &str = "http://adlnet.gov/expapi/verbs/";

fn config(url: &str) -> String {
    format!(
        r#"
        [[forwarder]]
        name = "mobieus"
        kind = "mobieus"
        url = "{url}"
        api_key = {{ file = "$DIR/mobieus-key" }}
        delivery = {{ retry_base_ms = 50 }}
        [forwarder.identity]
        account_home_pages = ["https://acme.mobieus.io"]
        [[forwarder.course]]
        pattern = '^https://acme\.mobieus\.io/courses/(?P<id>\d+)$'
        course = "$id"
        "#
    )
}

fn by(actor: &Value, verb: &str, course: u32) -> Value {
    json!({"actor": actor, "verb": {"id": format!("{ADL}{verb}")},
           "object": {"objectType": "Activity", "id": format!("https://acme.mobieus.io/courses/{course}")}})
}

forwarding_test!(mobieus_enrolls_on_launch_and_keeps_completions_as_unsupported);
async fn mobieus_enrolls_on_launch_and_keeps_completions_as_unsupported(backend: Backend) {
    let sim = Simulator::start(Mobieus::new("mc_live_test", &[42, 43], &[7]));
    let Some(f) = Forwarding::start(backend, &config(&sim.url), &[("mobieus-key", "mc_live_test")]).await else {
        return;
    };
    // The first enrollment is made but its answer lost: the redelivery must
    // not enroll twice.
    sim.behaviour.state.lock().unwrap().lose_next_answer = true;
    let u42 = json!({"account": {"homePage": "https://acme.mobieus.io", "name": "42"}});
    let ann = json!({"mbox": "mailto:Ann@Example.com"});
    f.app.store(&by(&u42, "launched", 7)).await;
    f.app.store(&by(&u42, "initialized", 7)).await;
    let completed = f.app.store(&by(&u42, "completed", 7)).await.remove(0);
    f.app.store(&by(&u42, "launched", 99)).await;
    f.app.store(&by(&ann, "launched", 7)).await;
    f.app.store(&by(&u42, "experienced", 7)).await;

    let settled = f.settled().await;
    let want = |parked, succeeded| {
        vec![
            ("mobieus".to_owned(), Status::Parked, parked),
            ("mobieus".to_owned(), Status::Succeeded, succeeded),
            ("mobieus".to_owned(), Status::Unsupported, 1),
        ]
    };
    assert_eq!(settled, want(2, 1), "one enrollment for two starts; the unknown course and the e-mail parked");
    assert_eq!(sim.behaviour.enrollments(), [(42, 7)], "enrolled once although the first answer was lost");
    let posts: Vec<_> = sim.requests().into_iter().filter(|r| r.method == "POST").collect();
    let key = posts[0].header("idempotency-key").expect("an idempotency key").to_owned();
    assert!(uuid::Uuid::parse_str(&key).is_ok_and(|u| u.get_version_num() == 5), "{key}");
    let body: Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(body, json!({"user_id": 42, "course_id": 7, "source": "xlrs"}));
    let rows = outbox_rows(&f.db).await;
    let unsupported = rows.iter().find(|r| r.0 == completed).expect("the completion's row");
    assert!(unsupported.1.contains("no API to record a complete"), "{}", unsupported.1);
    let parked: Vec<&String> = rows.iter().filter(|r| r.2 == "parked").map(|r| &r.1).collect();
    assert!(parked.iter().any(|e| e.contains("course_not_found")), "{parked:?}");
    assert!(parked.iter().any(|e| e.contains("mbox:mailto:ann@example.com")), "{parked:?}");

    // An operator maps Ann to her mobieus id; retried, she is enrolled.
    let now = chrono::Utc::now().timestamp_micros();
    identities::put(&f.db, "mobieus", "mbox:mailto:ann@example.com", Some("43"), Source::Operator, None, now)
        .await
        .unwrap();
    f.cli(&["retry", "--target", "mobieus"]).await;
    assert_eq!(f.settled().await, want(1, 2));
    assert_eq!(sim.behaviour.enrollments(), [(42, 7), (43, 7)]);

    // Replayed, every enrollment is found in place: no second POST.
    let enrolling =
        |sim: &Simulator<Mobieus>| sim.requests().iter().filter(|r| r.method == "POST" && r.status == 201).count();
    let posts_before = enrolling(&sim);
    let path = f.dir.path().join("forwarders.toml");
    f.cli(&["replay", "mobieus", "--since", "2000-01-01T00:00:00Z", "--forwarders", path.to_str().unwrap()]).await;
    f.settled().await;
    assert_eq!(enrolling(&sim), posts_before, "no enrollment asked for again");
    assert_eq!(sim.behaviour.enrollments().len(), 2, "no second effect");

    // On a plan without the API, the target pauses rather than insisting.
    *sim.behaviour.plan_gated.lock().unwrap() = true;
    let u43 = json!({"account": {"homePage": "https://acme.mobieus.io", "name": "43"}});
    f.app.store(&by(&u43, "registered", 7)).await;
    let deadline = std::time::Instant::now() + WAIT;
    let paused = loop {
        if let Some(p) = outbox::paused_until(&f.db, "mobieus").await.unwrap() {
            break Some(p);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, reason) = paused.expect("paused on 403");
    assert!(reason.contains("plan_gated"), "{reason}");
}

/// (statement id, last error, status) of every outbox row.
async fn outbox_rows(db: &DatabaseConnection) -> Vec<(String, String, String)> {
    use sea_orm::ConnectionTrait;
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT statement_id, last_error, status FROM forward_outbox ORDER BY id",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let error: Option<String> = r.try_get_by_index(1).unwrap();
            (r.try_get_by_index(0).unwrap(), error.unwrap_or_default(), r.try_get_by_index(2).unwrap())
        })
        .collect()
}

forwarding_test!(setting_a_learners_identity_sends_their_parked_rows_without_a_retry);
async fn setting_a_learners_identity_sends_their_parked_rows_without_a_retry(backend: Backend) {
    use reqwest::Method;

    use crate::admin::{admin, call};
    let sim = Simulator::start(Mobieus::new("mc_live_test", &[42, 43], &[7]));
    let Some(f) = Forwarding::start(backend, &config(&sim.url), &[("mobieus-key", "mc_live_test")]).await else {
        return;
    };
    let (ann, bo) = (json!({"mbox": "mailto:Ann@Example.com"}), json!({"mbox": "mailto:bo@example.com"}));
    f.app.store(&by(&ann, "launched", 7)).await;
    f.app.store(&by(&bo, "launched", 7)).await;
    assert_eq!(f.settled().await, vec![("mobieus".to_owned(), Status::Parked, 2)], "no mobieus id for either");

    // An operator maps Ann: her row goes out, Bo's stays parked.
    f.cli(&["identity", "set", "mobieus", "ann@example.com", "42"]).await;
    assert!(sim.wait_until(WAIT, |m| m.enrollments() == [(42, 7)]).await, "sent without a retry");
    let want = vec![("mobieus".to_owned(), Status::Parked, 1), ("mobieus".to_owned(), Status::Succeeded, 1)];
    assert_eq!(f.settled().await, want);

    // The same over the admin API.
    let put = admin(&f.app, Method::PUT, "/admin/forwarders/mobieus/identities");
    let (status, body) = call(put.json(&json!({"actor": "bo@example.com", "remote_id": "43"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(sim.wait_until(WAIT, |m| m.enrollments().len() == 2).await, "sent without a retry");
    assert_eq!(f.settled().await, vec![("mobieus".to_owned(), Status::Succeeded, 2)]);
}
