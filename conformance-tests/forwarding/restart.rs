//! A node killed with claims in flight and started again under the same
//! node id takes them up at once, not after their leases (60 s here).

use std::time::Instant;

use sea_orm::ConnectionTrait;

use super::*;
use crate::cli::{serve_with_env, sigterm, wait_exit};
use crate::simulators::mobieus::Mobieus;

const NODE: &str = "node-1";
/// Far beyond what the test waits after the restart.
const DELIVERY: &str = "delivery = { batch_size = 50, rate_per_sec = 1000.0, lease_secs = 60, retry_base_ms = 50 }";

fn config(lrs: &str, mobieus: &str) -> String {
    format!(
        r#"
        {}
        [[forwarder]]
        name = "mobieus"
        kind = "mobieus"
        url = "{mobieus}"
        api_key = {{ file = "$DIR/mobieus-key" }}
        {DELIVERY}
        [forwarder.identity]
        account_home_pages = ["https://acme.mobieus.io"]
        [[forwarder.course]]
        pattern = '^https://acme\.mobieus\.io/courses/(?P<id>\d+)$'
        course = "$id"
        "#,
        lrs_target("backup", lrs, DELIVERY)
    )
}

/// Learner `writer * 10_000 + round * 10 + i` launches course 7: one
/// enrollment row each (rows, unlike the LRS's cursor, are claimed one by one).
fn launches(writer: usize, round: usize) -> (Vec<Value>, Vec<(String, i64)>) {
    // A few hundred statements before the kill: enough to have claims in
    // flight, few enough to be delivered well within the lease afterwards.
    std::thread::sleep(Duration::from_millis(100));
    let statements: Vec<Value> = (0..5)
        .map(|i| {
            let user = (writer * 10_000 + round * 10 + i) as i64;
            json!({"id": uuid(), "actor": {"account": {"homePage": "https://acme.mobieus.io", "name": user.to_string()}},
                   "verb": {"id": "http://adlnet.gov/expapi/verbs/launched"},
                   "object": {"objectType": "Activity", "id": "https://acme.mobieus.io/courses/7"}})
        })
        .collect();
    let remembered = statements
        .iter()
        .map(|s| {
            (s["id"].as_str().unwrap().to_owned(), s["actor"]["account"]["name"].as_str().unwrap().parse().unwrap())
        })
        .collect();
    (statements, remembered)
}

async fn rows_in_flight(db: &DatabaseConnection) -> i64 {
    let count = "SELECT COUNT(*) FROM forward_outbox WHERE status = 'in_flight' AND claimed_by = 'node-1'";
    let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), count)).await.unwrap();
    row.unwrap().try_get_by_index(0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_again_takes_up_its_claims_at_once() {
    let lrs = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let users: Vec<i64> = (0..40_000).collect();
    let mobieus = Simulator::start(Mobieus::new("mc_live_test", &users, &[7]));
    lrs.slow(Duration::from_millis(200));
    mobieus.slow(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in LRS_SECRETS.iter().chain(&[("mobieus-key", "mc_live_test")]) {
        std::fs::write(dir.path().join(name), value).unwrap();
    }
    let config_path = dir.path().join("forwarders.toml");
    let text = config(&lrs.url, &mobieus.url).replace("$DIR", &dir.path().display().to_string());
    std::fs::write(&config_path, text).unwrap();
    let url = format!("sqlite://{}", dir.path().join("restart.db").display());
    let env = [("XLRS_FORWARDERS", config_path.to_str().unwrap()), ("XLRS_NODE_ID", NODE)];
    let acknowledged = ingest_then_kill(&url, &env, launches).await;

    let db = store::connect(&DatabaseArgs { url: url.clone(), pool_size: 1 }).await.unwrap();
    let in_flight = rows_in_flight(&db).await;
    assert!(in_flight > 0, "killed with rows claimed");
    assert!(lrs.behaviour.count() < acknowledged.len(), "killed with statements to go through the cursor");
    lrs.slow(Duration::ZERO);
    mobieus.slow(Duration::ZERO);
    let started = Instant::now();
    let mut second = serve_with_env(&url, Some(KILLER), &env);
    let deadline = Duration::from_secs(30);
    let sent = lrs
        .wait_until(deadline, |l| {
            let stored = l.stored.lock().unwrap();
            acknowledged.iter().all(|(id, _)| stored.contains_key(id))
        })
        .await;
    assert!(sent, "every statement at the other LRS within {deadline:?} of the restart, not after the lease");
    let enrolled = mobieus
        .wait_until(deadline.saturating_sub(started.elapsed()), |m| {
            let enrolled = m.enrollments();
            acknowledged.iter().all(|(_, user)| enrolled.contains(&(*user, 7)))
        })
        .await;
    let statuses = statuses(&db).await;
    let missing = acknowledged.iter().filter(|(_, u)| !mobieus.behaviour.enrollments().contains(&(*u, 7))).count();
    assert!(
        enrolled,
        "the {in_flight} rows claimed before the kill are delivered, not left to their leases: {missing} of {} \
         missing, rows {statuses:?}",
        acknowledged.len()
    );
    sigterm(&second.child);
    wait_exit(&mut second.child);
}
