//! xAPI 2.0.0 beside 1.0.3 on one store: the version header picks the rules
//! per request (docs/xapi-versions.md lists every difference).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use xlrs::config::DatabaseArgs;
use xlrs::store::{self, credentials};

use crate::helpers::*;
use crate::on_both_backends;

const V2: &str = "2.0.0";

fn v2(app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.request_with_version(method, path, V2)
}

fn version_header(res: &reqwest::Response) -> String {
    res.headers()["x-experience-api-version"].to_str().unwrap().to_owned()
}

on_both_backends!(responses_state_the_version_of_the_request);
async fn responses_state_the_version_of_the_request(app: TestApp) {
    let about: Value = app.client.get(format!("{}/about", app.endpoint)).send().await.unwrap().json().await.unwrap();
    assert_eq!(about["version"], json!(["1.0.3", "2.0.0"]));
    for (sent, stated) in [("1.0.3", "1.0.3"), ("1.0", "1.0.3"), ("2.0.0", "2.0.0"), ("2.0", "2.0.0")] {
        let res = app.request_with_version(Method::GET, "/statements?limit=1", sent).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{sent}");
        assert_eq!(version_header(&res), stated, "{sent}");
    }
    let res = app.request_with_version(Method::GET, "/statements", "2.1.0").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

on_both_backends!(statements_keep_the_version_they_came_with);
async fn statements_keep_the_version_they_came_with(app: TestApp) {
    let res = v2(&app, Method::POST, "/statements").json(&statement()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let id: Vec<String> = res.json().await.unwrap();
    let mut old = statement();
    old["version"] = json!("1.0.0");
    let res = v2(&app, Method::POST, "/statements").json(&old).send().await.unwrap();
    let old_id: Vec<String> = res.json().await.unwrap();
    let ids = app.store(&statement()).await;
    // Read under either version, each is as it was stored.
    assert_eq!(app.statement(&id[0]).await["version"], "2.0.0");
    assert_eq!(app.statement(&old_id[0]).await["version"], "1.0.0");
    let res = v2(&app, Method::GET, &format!("/statements?statementId={}", ids[0])).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["version"], "1.0.0");
    let mut newer = statement();
    newer["version"] = json!("2.0.0");
    assert_eq!(app.post_statements(&newer).await.status(), StatusCode::BAD_REQUEST, "1.0.3 rules refuse 2.0.0");
}

on_both_backends!(context_agents_and_groups_are_stored_and_related);
async fn context_agents_and_groups_are_stored_and_related(app: TestApp) {
    let coach = agent("coach");
    let team = json!({"objectType": "Group", "mbox": format!("mailto:team-{}@example.com", uuid()),
                      "member": [agent("player")]});
    let mut s = statement();
    s["context"] = json!({
        "contextAgents": [{"objectType": "contextAgent", "agent": coach,
                           "relevantTypes": ["https://example.com/types/coach"]}],
        "contextGroups": [{"objectType": "contextGroup", "group": team}]
    });
    assert_eq!(app.post_statements(&s).await.status(), StatusCode::BAD_REQUEST, "not 1.0.3");
    let res = v2(&app, Method::POST, "/statements").json(&s).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    let res = v2(&app, Method::POST, "/statements").json(&s).send().await.unwrap();
    let id = res.json::<Vec<String>>().await.unwrap().remove(0);
    assert_eq!(app.statement(&id).await["context"], s["context"]);
    for who in [&coach, &team, &team["member"][0]] {
        let q = format!("agent={}&related_agents=true", agent_q(who).trim_start_matches("agent="));
        assert!(app.ids(&q).await.contains(&id), "related_agents finds {who}");
        let q = format!("agent={}", agent_q(who).trim_start_matches("agent="));
        assert!(!app.ids(&q).await.contains(&id), "agent alone does not find {who}");
    }
}

on_both_backends!(state_overwrites_need_a_precondition_under_2_0);
async fn state_overwrites_need_a_precondition_under_2_0(app: TestApp) {
    let base = format!(
        "/activities/state?activityId={}&{}&stateId=bookmark",
        enc("http://example.com/course"),
        agent_q(&agent("learner"))
    );
    let put = |version: &'static str, body: &'static str| {
        app.request_with_version(Method::PUT, &base, version).header("Content-Type", "application/json").body(body)
    };
    // Creating needs no header, in either version.
    assert_eq!(put(V2, r#"{"page": 1}"#).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let res = put(V2, r#"{"page": 2}"#).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("If-Match"));
    // 1.0.3 exempts State from concurrency control.
    assert_eq!(put("1.0.3", r#"{"page": 3}"#).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let res = v2(&app, Method::GET, &base).send().await.unwrap();
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.text().await.unwrap(), r#"{"page": 3}"#);
    assert_eq!(
        put(V2, r#"{"page": 4}"#).header("If-Match", etag).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
}

on_both_backends!(alternate_syntax_is_1_0_3_only);
async fn alternate_syntax_is_1_0_3_only(app: TestApp) {
    for (version, expected) in [("1.0.3", StatusCode::OK), (V2, StatusCode::BAD_REQUEST)] {
        let form = format!(
            "X-Experience-API-Version={version}&Authorization={}",
            enc(&format!("Basic {}", base64_credentials()))
        );
        let res = app
            .client
            .post(format!("{}/statements?method=GET", app.endpoint))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected, "{version}");
        assert_eq!(version_header(&res), version, "the answer states the version the form named");
    }
}

fn base64_credentials() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_KEY}:{ADMIN_SECRET}"))
}

// A request without a version header is refused in the version its
// credential speaks (the ADL suites of 1.0.3 and 2.0.0 each expect theirs).
on_both_backends!(refusals_state_the_credentials_default_version);
async fn refusals_state_the_credentials_default_version(app: TestApp) {
    let db = store::connect(&DatabaseArgs { url: app.database_url.clone(), pool_size: 1 }).await.unwrap();
    let (c, secret) = credentials::create(&db, "v2 client", "all", Some("2.0")).await.unwrap();
    assert!(credentials::create(&db, "bad", "all", Some("3.0.0")).await.is_err());
    for (key, secret, stated) in [(c.key.as_str(), secret.as_str(), "2.0.0"), (ADMIN_KEY, ADMIN_SECRET, "1.0.3")] {
        let res =
            app.client.get(format!("{}/statements", app.endpoint)).basic_auth(key, Some(secret)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(version_header(&res), stated, "{key}");
    }
}

on_both_backends!(timestamps_are_stored_in_utc_under_2_0);
async fn timestamps_are_stored_in_utc_under_2_0(app: TestApp) {
    let mut s = statement();
    s["timestamp"] = json!("2021-03-04T23:15:00.125-04:00");
    let res = v2(&app, Method::POST, "/statements").json(&s).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let id = res.json::<Vec<String>>().await.unwrap().remove(0);
    assert_eq!(app.statement(&id).await["timestamp"], "2021-03-05T03:15:00.125Z");
    let ids = app.store(&s).await;
    assert_eq!(app.statement(&ids[0]).await["timestamp"], s["timestamp"], "1.0.3 keeps it as received");
}
