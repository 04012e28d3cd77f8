//! `xlrs forward test` and `POST /admin/forwarders/{target}/test`: one
//! authenticated call that changes nothing on the platform, and what answered.

use reqwest::Method;

use super::*;
use crate::admin::{admin, call};
use crate::simulators::docebo::Docebo;
use crate::simulators::learning360::Learning360;
use crate::simulators::learnworlds::{LearnWorlds, TOKEN_PATH};
use crate::simulators::mobieus::Mobieus;

fn platforms(bob: &str, lw: &str, mobieus: &str, hook: &str) -> String {
    format!(
        r#"
        [[forwarder]]
        name = "bob"
        kind = "hibob"
        url = "{bob}/v1"
        provider_identifier = "xlrs-test"
        service_user_id = {{ file = "$DIR/bob-id" }}
        service_user_token = {{ file = "$DIR/bob-token" }}
        [[forwarder]]
        name = "lw"
        kind = "learnworlds"
        school_url = "{lw}"
        client_id = {{ file = "$DIR/lw-id" }}
        client_secret = {{ file = "$DIR/lw-secret" }}
        [[forwarder]]
        name = "mobieus"
        kind = "mobieus"
        url = "{mobieus}"
        api_key = {{ file = "$DIR/mobieus-key" }}
        [[forwarder]]
        name = "hook"
        kind = "webhook"
        url = "{hook}"
        "#
    )
}

const SECRETS: &[(&str, &str)] = &[
    ("bob-id", "svc-1"),
    ("bob-token", "bob-token"),
    ("lw-id", "lw-client"),
    ("lw-secret", "lw-secret"),
    ("mobieus-key", "mc_live_test"),
];

forwarding_test!(a_connection_test_is_one_call_that_changes_nothing);
async fn a_connection_test_is_one_call_that_changes_nothing(backend: Backend) {
    let bob = Simulator::start(Bob::new("svc-1", "bob-token", &[]));
    let lw = Simulator::start(LearnWorlds::new("lw-client", "lw-secret", &[], &[]));
    let mobieus = Simulator::start(Mobieus::new("mc_live_test", &[42], &[7, 8]));
    let config = platforms(&bob.url, &lw.url, &mobieus.url, "http://127.0.0.1:9/hook");
    let Some(f) = Forwarding::start(backend, &config, SECRETS).await else { return };
    let test = |target: &str| admin(&f.app, Method::POST, &format!("/admin/forwarders/{target}/test"));

    let (status, body) = call(test("lw")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["target"], "lw");
    assert_eq!(body["call"], format!("POST {TOKEN_PATH}"));
    assert_eq!((body["http_status"].as_u64(), body["ok"].as_bool()), (Some(200), Some(true)), "{body}");
    assert!(body["elapsed_ms"].is_u64() && body["error"].is_null(), "{body}");
    assert_eq!(lw.behaviour.state.lock().unwrap().minted, 1, "one token request");
    assert!(!body.to_string().contains("lw-secret"), "{body}");
    assert!(lw.requests().iter().all(|r| r.path == TOKEN_PATH), "nothing but the token request");

    // Bob documents no read: the integration is created, and once it exists
    // the same call changes nothing and is as good.
    for _ in 0..2 {
        let (status, body) = call(test("bob")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["call"], "POST /v1/learning/lms-integrations");
        assert_eq!(body["ok"], true, "{body}");
    }
    assert_eq!(bob.requests().len(), 2);
    assert!(bob.behaviour.state.lock().unwrap().courses.is_empty());

    let (status, body) = call(test("mobieus")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["call"], "GET /api/v1/learn/courses");
    assert_eq!((body["http_status"].as_u64(), body["ok"].as_bool()), (Some(200), Some(true)), "{body}");
    assert!(mobieus.behaviour.enrollments().is_empty());

    let (status, body) = call(test("hook")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("webhook"), "{body}");
    let (status, _) = call(test("nobody")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

forwarding_test!(token_platforms_are_tested_by_a_token_request_in_their_dialect);
async fn token_platforms_are_tested_by_a_token_request_in_their_dialect(backend: Backend) {
    let docebo = Simulator::start(Docebo::new(("xlrs-app", "app-secret"), Some(("api-admin", "pw")), vec![], &[]));
    let l360 = Simulator::start(Learning360::new(("client-7", "s3cret"), "int-1", &[], &[]));
    let config = format!(
        r#"
        [[forwarder]]
        name = "docebo"
        kind = "docebo"
        url = "{}"
        client_id = {{ file = "$DIR/d-id" }}
        client_secret = {{ file = "$DIR/d-secret" }}
        username = {{ file = "$DIR/d-user" }}
        password = {{ file = "$DIR/d-password" }}
        [[forwarder]]
        name = "l360"
        kind = "360learning"
        url = "{}"
        integration_id = "int-1"
        client_id = {{ file = "$DIR/l-id" }}
        client_secret = {{ file = "$DIR/l-secret" }}
        "#,
        docebo.url, l360.url
    );
    let secrets = [
        ("d-id", "xlrs-app"),
        ("d-secret", "app-secret"),
        ("d-user", "api-admin"),
        ("d-password", "pw-not-this-7"),
        ("l-id", "client-7"),
        ("l-secret", "s3cret"),
    ];
    let Some(f) = Forwarding::start(backend, &config, &secrets).await else { return };
    let test = |target: &str| admin(&f.app, Method::POST, &format!("/admin/forwarders/{target}/test"));
    let (status, body) = call(test("l360")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["call"], "POST /api/v2/oauth2/token");
    assert_eq!((body["http_status"].as_u64(), body["ok"].as_bool()), (Some(200), Some(true)), "{body}");
    assert_eq!(l360.requests().len(), 1);
    // Docebo's API user has the wrong password: the refusal is what answered.
    let (status, body) = call(test("docebo")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["call"], "POST /oauth2/token");
    assert_eq!(body["ok"], false, "{body}");
    assert!(body["http_status"].as_u64().is_some_and(|s| (400..500).contains(&s)), "{body}");
    assert!(!body.to_string().contains("app-secret") && !body.to_string().contains("pw-not-this-7"), "{body}");
    assert_eq!(docebo.behaviour.tokens_minted(), 0);
    assert_eq!(outbox::paused_until(&f.db, "docebo").await.unwrap(), None, "a test does not pause the target");
}

forwarding_test!(a_refused_connection_test_is_reported_not_acted_on);
async fn a_refused_connection_test_is_reported_not_acted_on(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "other-secret"));
    let Some(f) = Forwarding::start(backend, &lrs_target("backup", &sim.url, ""), LRS_SECRETS).await else { return };
    let test = || admin(&f.app, Method::POST, "/admin/forwarders/backup/test");
    let (status, body) = call(test()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["call"], "GET /xapi/statements");
    assert_eq!((body["http_status"].as_u64(), body["ok"].as_bool()), (Some(401), Some(false)), "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("HTTP 401"), "{body}");
    assert!(!body.to_string().contains("fwd-secret"), "no secret in the report: {body}");
    assert_eq!(outbox::paused_until(&f.db, "backup").await.unwrap(), None, "a test does not pause the target");

    // With the credentials mended: the nil statement id is not found, which
    // shows them taken; nothing was written.
    *sim.behaviour.authorization.lock().unwrap() = basic("fwd-key", "fwd-secret");
    let (_, body) = call(test()).await;
    assert_eq!((body["http_status"].as_u64(), body["ok"].as_bool()), (Some(404), Some(true)), "{body}");
    assert_eq!(sim.requests().iter().filter(|r| r.method == "GET").count(), 2);
    assert_eq!(sim.behaviour.count(), 0);
    // The command line says the same; a refusal fails the command.
    let forwarders = f.dir.path().join("forwarders.toml");
    f.cli(&["--forwarders", forwarders.to_str().unwrap(), "test", "backup"]).await;
    *sim.behaviour.authorization.lock().unwrap() = basic("fwd-key", "other-secret");
    let argv = ["xlrs", "forward", "--database-url", &f.app.database_url, "--forwarders"];
    let argv: Vec<&str> = argv.into_iter().chain([forwarders.to_str().unwrap(), "test", "backup"]).collect();
    let refused = xlrs::cli::run(<xlrs::cli::Cli as clap::Parser>::parse_from(argv)).await;
    assert!(refused.unwrap_err().to_string().contains("failed"));
}
