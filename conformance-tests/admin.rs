//! The forwarders' admin API (`/admin/forwarders`): each endpoint against a
//! running app forwarding to a simulated LRS, and its refusals.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use xlrs::store::identities::{self, Source};
use xlrs::store::outbox::Status;

use crate::forwarding::{Forwarding, LRS_SECRETS, WAIT, lrs_target, with_verb};
use crate::helpers::*;
use crate::simulators::Simulator;
use crate::simulators::lrs::Lrs;

const REFUSED: &str = "http://example.com/verbs/refused";

/// The server's root, e.g. `http://127.0.0.1:41234`.
pub fn base(app: &TestApp) -> String {
    app.endpoint.trim_end_matches("/xapi").to_owned()
}

/// An admin API request with the admin credential (scope `all`).
pub fn admin(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    app.client.request(method, format!("{}{path}", base(app))).basic_auth(ADMIN_KEY, Some(ADMIN_SECRET))
}

/// Sends and returns the status and JSON body (`Null` when there is none).
pub async fn call(request: RequestBuilder) -> (StatusCode, Value) {
    let res = request.send().await.expect("admin request");
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("a JSON body") })
}

async fn start(backend: Backend, sim: &Simulator<Lrs>) -> Option<Forwarding> {
    let config = lrs_target("backup", &sim.url, "delivery = { retry_base_ms = 20 }");
    Forwarding::start(backend, &config, LRS_SECRETS).await
}

fn ids(rows: &Value) -> Vec<i64> {
    rows["rows"].as_array().expect("rows").iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

forwarding_test!(status_and_rows_show_dead_letters_and_retry_delivers_them);
async fn status_and_rows_show_dead_letters_and_retry_delivers_them(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    sim.behaviour.refused_verbs.lock().unwrap().push(REFUSED.into());
    let Some(f) = start(backend, &sim).await else { return };
    let refused = f.app.store(&json!([with_verb(REFUSED), with_verb(REFUSED)])).await;
    f.app.store(&json!([statement(), statement(), statement()])).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 3).await);
    f.settled().await;

    let (status, body) = call(admin(&f.app, Method::GET, "/admin/forwarders")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let target = &body["targets"][0];
    assert_eq!(target["target"], "backup");
    assert_eq!(target["configured"], true);
    assert_eq!(target["rows"], json!({"dead": 2, "succeeded": 3}));
    assert_eq!(target["paused"], Value::Null);

    let (status, dead) = call(admin(&f.app, Method::GET, "/admin/forwarders/backup/outbox?status=dead")).await;
    assert_eq!(status, StatusCode::OK, "{dead}");
    let rows = dead["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row["status"], "dead");
        assert_eq!(row["last_http_status"], 400);
        assert!(row["last_error"].as_str().unwrap().contains("refused"), "{row}");
        assert!(row["attempts"].as_u64().unwrap() >= 1);
        assert!(refused.contains(&row["statement_id"].as_str().unwrap().to_owned()));
    }

    // Keyset pages of one: every row once, in id order. (Only the dead
    // letters are rows: the three delivered statements went through the
    // target's cursor.)
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("/admin/forwarders/backup/outbox?limit=1&after={after}");
        let (status, page) = call(admin(&f.app, Method::GET, &path)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");

    // Mended at the target: one dead letter by id, then the rest in bulk.
    sim.behaviour.refused_verbs.lock().unwrap().clear();
    let first = rows[0]["id"].as_i64().unwrap();
    let (status, row) =
        call(admin(&f.app, Method::POST, &format!("/admin/forwarders/backup/outbox/{first}/retry"))).await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!((row["id"].as_i64(), &row["status"], &row["attempts"]), (Some(first), &json!("pending"), &json!(0)));
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 4).await, "the retried row is delivered");
    let (status, retried) =
        call(admin(&f.app, Method::POST, "/admin/forwarders/backup/retry").json(&json!({"statuses": ["dead"]}))).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["rows"], 1);
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 5).await);
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, 5)]);

    let (status, body) = call(admin(&f.app, Method::POST, "/admin/forwarders/backup/outbox/987654/retry")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["message"].as_str().unwrap().contains("987654"));
    let (status, body) = call(admin(&f.app, Method::POST, "/admin/forwarders/backup/outbox/first/retry")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("'first'"));
}

forwarding_test!(pause_stops_deliveries_and_resume_restarts_them);
async fn pause_stops_deliveries_and_resume_restarts_them(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let Some(f) = start(backend, &sim).await else { return };
    let pause = admin(&f.app, Method::POST, "/admin/forwarders/backup/pause").json(&json!({"reason": "maintenance"}));
    let (status, body) = call(pause).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["paused"], json!({"until": null, "reason": "maintenance"}));
    f.app.store(&json!([statement(), statement()])).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sim.requests().is_empty(), "nothing is sent to a paused target");
    let (_, body) = call(admin(&f.app, Method::GET, "/admin/forwarders")).await;
    let target = &body["targets"][0];
    assert_eq!(target["paused"]["reason"], "maintenance");
    assert_eq!(target["rows"], json!({"pending": 2}));
    assert!(target["oldest_open_age_secs"].as_f64().unwrap() >= 1.0, "{target}");

    let (status, body) = call(admin(&f.app, Method::POST, "/admin/forwarders/backup/resume")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 2).await, "resumed, the rows go out");
    let (_, body) = call(admin(&f.app, Method::GET, "/admin/forwarders")).await;
    assert_eq!(body["targets"][0]["paused"], Value::Null);
}

forwarding_test!(replay_enqueues_stored_statements_again);
async fn replay_enqueues_stored_statements_again(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let Some(f) = start(backend, &sim).await else { return };
    let since = chrono::Utc::now().to_rfc3339();
    f.app.store(&json!([statement(), statement()])).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 2).await);
    let replay = |body: Value| admin(&f.app, Method::POST, "/admin/forwarders/backup/replay").json(&body);
    let (status, body) = call(replay(json!({"since": since}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], 2);
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, 4)], "replayed rows delivered");
    assert_eq!(sim.behaviour.count(), 2, "the LRS takes them as the statements it has");

    let (status, body) = call(replay(json!({"since": since, "until": "2000-01-01T00:00:00Z"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("after until"), "{body}");
    for (bad, names) in [(json!({"since": "yesterday"}), "since"), (json!({}), "since")] {
        let (status, body) = call(replay(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["message"].as_str().unwrap().contains(names), "{body}");
    }
}

forwarding_test!(a_dry_run_counts_per_route_and_filters_choose_the_statements);
async fn a_dry_run_counts_per_route_and_filters_choose_the_statements(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let routes = "[[forwarder.route]]\nverbs = [\"completed\"]\n[[forwarder.route]]\nverbs = [\"passed\"]";
    let Some(f) = Forwarding::start(backend, &lrs_target("backup", &sim.url, routes), LRS_SECRETS).await else {
        return;
    };
    let since = chrono::Utc::now().to_rfc3339();
    let adl = |verb: &str| format!("http://adlnet.gov/expapi/verbs/{verb}");
    let mut by_bo = with_verb(&adl("completed"));
    by_bo["actor"] = json!({"mbox": "mailto:Bo@Example.com"});
    let stored = f.app.store(&json!([with_verb(&adl("completed")), with_verb(&adl("passed")), by_bo])).await;
    f.app.store(&with_verb(&adl("experienced"))).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 3).await);
    let before = f.settled().await;
    let replay = |body: Value| admin(&f.app, Method::POST, "/admin/forwarders/backup/replay").json(&body);

    let (status, body) = call(replay(json!({"since": since, "dry_run": true}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], 3, "{body}");
    assert_eq!((body["dry_run"].as_bool(), body["statements"].as_u64()), (Some(true), Some(4)), "{body}");
    assert_eq!(body["by_route"], json!({"route 1": 2, "route 2": 1}));
    assert_eq!(body["by_op"], json!({"statement": 3}));
    assert_eq!(f.statuses().await, before, "a dry run writes nothing");

    let (_, body) = call(replay(json!({"since": since, "dry_run": true, "verbs": ["passed"]}))).await;
    assert_eq!((body["rows"].as_u64(), body["statements"].as_u64()), (Some(1), Some(1)), "{body}");
    let (_, body) = call(replay(json!({"since": since, "dry_run": true, "agent": "bo@example.com"}))).await;
    assert_eq!(body["by_route"], json!({"route 1": 1}), "{body}");
    let (_, body) =
        call(replay(json!({"since": since, "dry_run": true, "activity": "http://example.com/nothing"}))).await;
    assert_eq!(body["rows"], 0, "{body}");

    // Filters without a dry run: only Bo's completion is sent again.
    let (status, body) =
        call(replay(json!({"since": since, "verbs": ["completed"], "agent": "mbox:mailto:bo@example.com"}))).await;
    assert_eq!(
        (status, body["rows"].as_u64(), body["dry_run"].as_bool()),
        (StatusCode::OK, Some(1), Some(false)),
        "{body}"
    );
    f.settled().await;
    let (_, rows) = call(admin(&f.app, Method::GET, "/admin/forwarders/backup/outbox")).await;
    let rows = rows["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "one row: {rows:?}");
    assert_eq!((&rows[0]["statement_id"], &rows[0]["status"]), (&json!(stored[2]), &json!("succeeded")));

    for (bad, names) in
        [(json!({"since": since, "agent": "bo"}), "actor"), (json!({"since": since, "activity": "x"}), "activity")]
    {
        let (status, body) = call(replay(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["message"].as_str().unwrap().contains(names), "{body}");
    }
}

forwarding_test!(identities_are_set_listed_and_removed);
async fn identities_are_set_listed_and_removed(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let Some(f) = start(backend, &sim).await else { return };
    let put = |body: Value| admin(&f.app, Method::PUT, "/admin/forwarders/backup/identities").json(&body);
    let (status, ann) = call(put(json!({"actor": "Ann@Example.com", "remote_id": "u-1"}))).await;
    assert_eq!(status, StatusCode::OK, "{ann}");
    assert_eq!(
        ann,
        json!({"actor": "mbox:mailto:ann@example.com", "remote_id": "u-1", "source": "operator",
                           "expires": null})
    );
    let (status, _) = call(put(json!({"actor": "account:https://sso.example.com|bo", "remote_id": "u-2"}))).await;
    assert_eq!(status, StatusCode::OK);
    // A lookup that found no one, remembered for an hour.
    let now = chrono::Utc::now().timestamp_micros();
    let cy = "mbox:mailto:cy@example.com";
    identities::put(&f.db, "backup", cy, None, Source::Lookup, Some(now + 3_600_000_000), now).await.unwrap();
    let list = || call(admin(&f.app, Method::GET, "/admin/forwarders/backup/identities"));
    let actors = |body: &Value| -> Vec<String> {
        body["identities"].as_array().unwrap().iter().map(|i| i["actor"].as_str().unwrap().to_owned()).collect()
    };
    let (status, body) = list().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(actors(&body), ["account:https://sso.example.com|bo", "mbox:mailto:ann@example.com", cy]);
    assert_eq!(body["identities"][2]["remote_id"], Value::Null);
    assert_eq!(body["identities"][2]["source"], "lookup");

    // A retry looks up again those not found before.
    let (status, retried) = call(admin(&f.app, Method::POST, "/admin/forwarders/backup/retry")).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["forgotten_lookups"], 1);
    assert_eq!(actors(&list().await.1).len(), 2);

    let remove = |actor: &str| {
        admin(&f.app, Method::DELETE, &format!("/admin/forwarders/backup/identities?actor={}", enc(actor)))
    };
    assert_eq!(call(remove("ann@example.com")).await.0, StatusCode::NO_CONTENT);
    let (status, body) = call(remove("ann@example.com")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(actors(&list().await.1), ["account:https://sso.example.com|bo"]);

    let (status, body) = call(put(json!({"actor": "nobody", "remote_id": "x"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("'nobody'"), "{body}");
    let (status, body) = call(put(json!({"actor": "dee@example.com"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("remote_id"), "{body}");
}

forwarding_test!(refusals_are_json_and_name_the_problem);
async fn refusals_are_json_and_name_the_problem(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let Some(f) = start(backend, &sim).await else { return };
    let url = format!("{}/admin/forwarders", base(&f.app));

    let res = f.app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
    assert!(res.json::<Value>().await.unwrap()["message"].is_string());

    let (writer, secret) = {
        let (c, s) = xlrs::store::credentials::create(&f.db, "writer", "statements/write", None).await.unwrap();
        (c.key, s)
    };
    let (status, body) = call(f.app.client.get(&url).basic_auth(&writer, Some(&secret))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["message"].as_str().unwrap().contains("'all'"), "{body}");
    let (status, _) = call(f.app.client.get(&url).basic_auth(ADMIN_KEY, Some("wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Outside /xapi: no version header asked, none stated.
    let res = admin(&f.app, Method::GET, "/admin/forwarders").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("x-experience-api-version").is_none());

    let bad = [
        (Method::GET, "/admin/forwarders/nope/outbox", None, StatusCode::NOT_FOUND, "'nope'"),
        (Method::POST, "/admin/forwarders/nope/pause", None, StatusCode::NOT_FOUND, "'nope'"),
        (Method::GET, "/admin/forwarders/nope/identities", None, StatusCode::NOT_FOUND, "'nope'"),
        (Method::GET, "/admin/forwarders/backup/outbox?status=lost", None, StatusCode::BAD_REQUEST, "'lost'"),
        (Method::GET, "/admin/forwarders/backup/outbox?limit=0", None, StatusCode::BAD_REQUEST, "limit"),
        (Method::GET, "/admin/forwarders/backup/outbox?limit=many", None, StatusCode::BAD_REQUEST, "limit"),
        (Method::POST, "/admin/forwarders/backup/pause", Some("not json"), StatusCode::BAD_REQUEST, "JSON"),
        (
            Method::POST,
            "/admin/forwarders/backup/retry",
            Some(r#"{"statuses":["gone"]}"#),
            StatusCode::BAD_REQUEST,
            "'gone'",
        ),
        (
            Method::POST,
            "/admin/forwarders/backup/retry",
            Some(r#"{"statuses":["in_flight"]}"#),
            StatusCode::BAD_REQUEST,
            "in_flight",
        ),
        (Method::DELETE, "/admin/forwarders/backup/identities", None, StatusCode::BAD_REQUEST, "actor"),
    ];
    for (method, path, body, want, names) in bad {
        let mut request = admin(&f.app, method.clone(), path);
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body);
        }
        let (status, answer) = call(request).await;
        assert_eq!(status, want, "{method} {path}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{method} {path}: {answer}");
    }
    assert_eq!(f.statuses().await, vec![], "nothing was changed");
    assert!(outbox_paused(&f).await.is_none(), "the refused pause paused nothing");
}

async fn outbox_paused(f: &Forwarding) -> Option<(i64, String)> {
    xlrs::store::outbox::paused_until(&f.db, "backup").await.unwrap()
}

/// A target with one dead-lettered statement, mended and retried: its row is
/// delivered (`succeeded`). Returns the row's id.
async fn delivered_row(f: &Forwarding, sim: &Simulator<Lrs>) -> i64 {
    f.app.store(&with_verb(REFUSED)).await;
    f.settled().await;
    let (_, dead) = call(admin(&f.app, Method::GET, "/admin/forwarders/backup/outbox?status=dead")).await;
    let id = ids(&dead)[0];
    sim.behaviour.refused_verbs.lock().unwrap().clear();
    let (status, body) =
        call(admin(&f.app, Method::POST, &format!("/admin/forwarders/backup/outbox/{id}/retry"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 1).await);
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, 1)]);
    id
}

forwarding_test!(retrying_a_delivered_row_needs_force);
async fn retrying_a_delivered_row_needs_force(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    sim.behaviour.refused_verbs.lock().unwrap().push(REFUSED.into());
    let Some(f) = start(backend, &sim).await else { return };
    let id = delivered_row(&f, &sim).await;
    let row_retry = format!("/admin/forwarders/backup/outbox/{id}/retry");
    let bulk = |query: &str| {
        admin(&f.app, Method::POST, &format!("/admin/forwarders/backup/retry{query}"))
            .json(&json!({"statuses": ["succeeded"]}))
    };

    // Delivered: not sent again unless asked to.
    let (status, body) = call(admin(&f.app, Method::POST, &row_retry)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("row {id} was delivered already")) && message.contains("force=true"),
        "{message}"
    );
    let (status, body) = call(bulk("")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("succeeded rows were delivered already") && message.contains("force=true"), "{message}");
    let (status, body) = call(bulk("?force=yes")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("force 'yes'"), "{body}");
    assert_eq!(f.statuses().await, vec![("backup".to_owned(), Status::Succeeded, 1)], "nothing made due");

    // With force it goes again, by id and in bulk.
    let sent = sim.requests().len();
    let (status, row) = call(admin(&f.app, Method::POST, &format!("{row_retry}?force=true"))).await;
    assert_eq!((status, &row["status"]), (StatusCode::OK, &json!("pending")), "{row}");
    assert!(sim.wait_until(WAIT, |_| sim.requests().len() > sent).await, "sent again");
    assert_eq!(f.settled().await, vec![("backup".to_owned(), Status::Succeeded, 1)]);
    let (status, retried) = call(bulk("?force=true")).await;
    assert_eq!((status, &retried["rows"]), (StatusCode::OK, &json!(1)), "{retried}");
}
