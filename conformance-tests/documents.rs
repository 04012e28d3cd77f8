//! The document resources (Communication 2.3, 2.6, 2.7, 3.1): State,
//! Activity Profile, Agent Profile.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

const ACTIVITY: &str = "http://example.com/activities/doc-tests";

fn learner() -> Value {
    json!({"objectType": "Agent", "account": {"homePage": "http://example.com", "name": "learner-1"}})
}

fn state_query(state_id: Option<&str>) -> String {
    let mut q = format!("activityId={}&{}", enc(ACTIVITY), agent_q(&learner()));
    if let Some(id) = state_id {
        q.push_str(&format!("&stateId={}", enc(id)));
    }
    q
}

fn doc(app: &TestApp, method: Method, path: &str, query: &str) -> RequestBuilder {
    app.request(method, &format!("{path}?{query}"))
}

async fn text(res: Response) -> (StatusCode, Option<String>, String) {
    let status = res.status();
    let etag = res.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
    (status, etag, res.text().await.unwrap())
}

on_both_backends!(state_round_trip_is_byte_exact);
async fn state_round_trip_is_byte_exact(app: TestApp) {
    let body = b"\x00binary \xff state/ asdf".to_vec();
    let put = doc(&app, Method::PUT, "/activities/state", &state_query(Some("s1")))
        .header("Content-Type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let got = doc(&app, Method::GET, "/activities/state", &state_query(Some("s1"))).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.headers()["content-type"], "application/octet-stream");
    let etag = got.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.len() == 42 && etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(got.headers().contains_key("last-modified"));
    assert_eq!(got.bytes().await.unwrap().to_vec(), body);
    let head = doc(&app, Method::HEAD, "/activities/state", &state_query(Some("s1"))).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["etag"].to_str().unwrap(), etag);
    assert!(head.bytes().await.unwrap().is_empty());
}

on_both_backends!(state_ids_since_and_delete_all);
async fn state_ids_since_and_delete_all(app: TestApp) {
    for id in ["a", "b"] {
        let res = doc(&app, Method::PUT, "/activities/state", &state_query(Some(id)))
            .json(&json!({"id": id}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
    let (status, _, body) =
        text(doc(&app, Method::GET, "/activities/state", &state_query(None)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let mut ids: Vec<String> = serde_json::from_str(&body).unwrap();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    let future = enc("2999-01-01T00:00:00Z");
    let (_, _, body) = text(
        doc(&app, Method::GET, "/activities/state", &format!("{}&since={future}", state_query(None)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body, "[]");
    let past = enc("2000-01-01T00:00:00Z");
    let (_, _, body) = text(
        doc(&app, Method::GET, "/activities/state", &format!("{}&since={past}", state_query(None)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(serde_json::from_str::<Vec<String>>(&body).unwrap().len(), 2);
    // A registration is a separate context.
    let reg = format!("{}&registration={}", state_query(None), uuid());
    let (_, _, body) = text(doc(&app, Method::GET, "/activities/state", &reg).send().await.unwrap()).await;
    assert_eq!(body, "[]");
    let delete = doc(&app, Method::DELETE, "/activities/state", &state_query(None)).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    let (_, _, body) =
        text(doc(&app, Method::GET, "/activities/state", &state_query(None)).send().await.unwrap()).await;
    assert_eq!(body, "[]");
    let missing = doc(&app, Method::GET, "/activities/state", &state_query(Some("a"))).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

on_both_backends!(post_merges_json_objects_shallowly);
async fn post_merges_json_objects_shallowly(app: TestApp) {
    let q = state_query(Some("merge"));
    let post = |body: Value| doc(&app, Method::POST, "/activities/state", &q).json(&body).send();
    assert_eq!(post(json!({"a": 1, "nested": {"x": 1}})).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(post(json!({"b": 2, "nested": {"y": 2}})).await.unwrap().status(), StatusCode::NO_CONTENT);
    let got: Value = doc(&app, Method::GET, "/activities/state", &q).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, json!({"a": 1, "b": 2, "nested": {"y": 2}}));
}

on_both_backends!(post_refuses_what_cannot_be_merged);
async fn post_refuses_what_cannot_be_merged(app: TestApp) {
    let q = state_query(Some("nomerge"));
    let put = doc(&app, Method::PUT, "/activities/state", &q).json(&json!({"keep": true})).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    for (content_type, body) in [
        ("text/plain", "plain"),
        ("application/octet-stream", "{\"a\":1}"),
        ("application/json", "{not json"),
        ("application/json", "[1,2]"),
    ] {
        let res = doc(&app, Method::POST, "/activities/state", &q)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{content_type} {body}");
        assert!(res.json::<Value>().await.unwrap()["message"].is_string());
    }
    let got: Value = doc(&app, Method::GET, "/activities/state", &q).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, json!({"keep": true}), "unchanged");
    // A stored non-JSON document cannot take a JSON merge either.
    let q2 = state_query(Some("binary"));
    doc(&app, Method::PUT, "/activities/state", &q2)
        .header("Content-Type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    let res = doc(&app, Method::POST, "/activities/state", &q2).json(&json!({"a": 1})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Invalid JSON is refused even when nothing is stored.
    let q3 = state_query(Some("fresh"));
    let res = doc(&app, Method::POST, "/activities/state", &q3)
        .header("Content-Type", "application/json")
        .body("{x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(doc(&app, Method::GET, "/activities/state", &q3).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

on_both_backends!(profile_put_concurrency);
async fn profile_put_concurrency(app: TestApp) {
    let q = format!("activityId={}&profileId=p1", enc(ACTIVITY));
    let put = |body: Value| doc(&app, Method::PUT, "/activities/profile", &q).json(&body);
    // Creating without saying so is refused; If-None-Match: * creates.
    assert_eq!(put(json!({"v": 0})).send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        put(json!({"v": 1})).header("If-None-Match", "*").send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        put(json!({"v": 2})).header("If-None-Match", "*").send().await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED
    );
    let conflict = put(json!({"v": 3})).send().await.unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    assert!(conflict.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("If-Match"));
    let (_, etag, _) = text(doc(&app, Method::GET, "/activities/profile", &q).send().await.unwrap()).await;
    let etag = etag.unwrap();
    assert_eq!(
        put(json!({"v": 4}))
            .header("If-Match", "\"0000000000000000000000000000000000000000\"")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(put(json!({"v": 5})).header("If-Match", &etag).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let got: Value = doc(&app, Method::GET, "/activities/profile", &q).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, json!({"v": 5}));
    // The old ETag no longer matches, for DELETE either.
    let stale = doc(&app, Method::DELETE, "/activities/profile", &q).header("If-Match", &etag).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        doc(&app, Method::DELETE, "/activities/profile", &q).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(doc(&app, Method::GET, "/activities/profile", &q).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    // Deleting what is not there is fine.
    assert_eq!(
        doc(&app, Method::DELETE, "/activities/profile", &q).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
}

on_both_backends!(state_put_needs_no_precondition);
async fn state_put_needs_no_precondition(app: TestApp) {
    let q = state_query(Some("free"));
    for v in [1, 2] {
        let res = doc(&app, Method::PUT, "/activities/state", &q).json(&json!({"v": v})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
}

on_both_backends!(agent_profiles_are_keyed_by_the_agent_identifier);
async fn agent_profiles_are_keyed_by_the_agent_identifier(app: TestApp) {
    let a = json!({"objectType": "Agent", "name": "First", "mbox": "mailto:Same@Example.com"});
    let same = json!({"mbox": "mailto:same@example.com"});
    let other = json!({"mbox": "mailto:other@example.com"});
    let q = |agent: &Value| format!("{}&profileId=prefs", agent_q(agent));
    let put = doc(&app, Method::PUT, "/agents/profile", &q(&a))
        .header("If-None-Match", "*")
        .json(&json!({"lang": "fr"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let got = doc(&app, Method::GET, "/agents/profile", &q(&same)).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK, "the same mbox, written differently, is the same agent");
    assert_eq!(
        doc(&app, Method::GET, "/agents/profile", &q(&other)).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let (_, _, ids) = text(doc(&app, Method::GET, "/agents/profile", &agent_q(&same)).send().await.unwrap()).await;
    assert_eq!(ids, "[\"prefs\"]");
}

on_both_backends!(document_parameters_are_checked);
async fn document_parameters_are_checked(app: TestApp) {
    let agent = agent_q(&learner());
    let activity = format!("activityId={}", enc(ACTIVITY));
    let cases = [
        (Method::PUT, "/activities/state", format!("{agent}&stateId=x")),
        (Method::PUT, "/activities/state", format!("{activity}&stateId=x")),
        (Method::PUT, "/activities/state", format!("{activity}&{agent}")),
        (Method::GET, "/activities/state", format!("{activity}&agent=true")),
        (Method::GET, "/activities/state", format!("{activity}&agent={}", enc("{not json"))),
        (Method::GET, "/activities/state", format!("{activity}&{agent}&registration=true")),
        (Method::GET, "/activities/state", format!("{activity}&{agent}&since=yesterday")),
        (Method::GET, "/activities/state", format!("activityId=not-an-iri&{agent}")),
        (Method::GET, "/activities/state", format!("{activity}&{agent}&foo=bar")),
        (Method::DELETE, "/activities/profile", activity.clone()),
        (Method::GET, "/activities/profile", "profileId=x".to_owned()),
        (Method::GET, "/agents/profile", "profileId=x".to_owned()),
    ];
    for (method, path, query) in cases {
        let res =
            doc(&app, method.clone(), path, &query).header("If-None-Match", "*").json(&json!({})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{method} {path}?{query}");
        assert!(res.json::<Value>().await.unwrap()["message"].is_string());
    }
}

on_both_backends!(document_scopes);
async fn document_scopes(app: TestApp) {
    let db = xlrs::store::connect(&xlrs::config::DatabaseArgs { url: app.database_url.clone(), pool_size: 2 })
        .await
        .unwrap();
    let (statements_only, secret) =
        xlrs::store::credentials::create(&db, "s", "statements/write,statements/read", None).await.unwrap();
    let (state_only, state_secret) = xlrs::store::credentials::create(&db, "t", "state", None).await.unwrap();
    let url = format!("{}/activities/state?{}", app.endpoint, state_query(Some("scoped")));
    let put = |key: &str, secret: &str| {
        app.client
            .put(&url)
            .header("X-Experience-API-Version", VERSION)
            .basic_auth(key, Some(secret))
            .json(&json!({}))
            .send()
    };
    assert_eq!(put(&statements_only.key, &secret).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(put(&state_only.key, &state_secret).await.unwrap().status(), StatusCode::NO_CONTENT);
    let profile = format!("{}/agents/profile?{}&profileId=p", app.endpoint, agent_q(&learner()));
    let res = app
        .client
        .put(&profile)
        .header("X-Experience-API-Version", VERSION)
        .header("If-None-Match", "*")
        .basic_auth(&state_only.key, Some(&state_secret))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

// 2.0 requires Last-Modified on every document read: a document's own
// update time, and the latest of them on an id list; it moves on change.
on_both_backends!(last_modified_on_every_document_read);
async fn last_modified_on_every_document_read(app: TestApp) {
    let resources = [
        ("/activities/state", "stateId", state_query(None)),
        ("/activities/profile", "profileId", format!("activityId={}", enc(ACTIVITY))),
        ("/agents/profile", "profileId", agent_q(&learner())),
    ];
    let mut state_latest = 0;
    for (path, id_param, base) in &resources {
        let one = |id: &str| format!("{base}&{id_param}={id}");
        let before = chrono::Utc::now().timestamp();
        for id in ["first", "second"] {
            let res = app
                .request_with_version(Method::PUT, &format!("{path}?{}", one(id)), "2.0.0")
                .header("If-None-Match", "*")
                .json(&json!({"id": id}));
            let res = res.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::NO_CONTENT, "{path}: {}", res.text().await.unwrap());
        }
        let after = chrono::Utc::now().timestamp();
        let mut latest = 0;
        for id in ["first", "second"] {
            let res =
                app.request_with_version(Method::GET, &format!("{path}?{}", one(id)), "2.0.0").send().await.unwrap();
            let modified = last_modified(res.headers()).timestamp();
            assert!((before..=after).contains(&modified), "{path} {id}: {modified} not in {before}..={after}");
            latest = latest.max(modified);
        }
        let list = app.request_with_version(Method::GET, &format!("{path}?{base}"), "2.0.0").send().await.unwrap();
        assert_eq!(last_modified(list.headers()).timestamp(), latest, "{path} list");
        if *path == "/activities/state" {
            state_latest = latest;
        }
    }
    // HTTP dates count whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (path, id_param, base) = &resources[0];
    let url = format!("{path}?{base}&{id_param}=first");
    let res = app.request_with_version(Method::POST, &url, "2.0.0").json(&json!({"more": 1}));
    assert_eq!(res.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let res = app.request_with_version(Method::GET, &url, "2.0.0").send().await.unwrap();
    let changed = last_modified(res.headers()).timestamp();
    assert!(changed > state_latest, "{changed} moved on from {state_latest}");
    let list = app.request_with_version(Method::GET, &format!("{path}?{base}"), "2.0.0").send().await.unwrap();
    assert_eq!(last_modified(list.headers()).timestamp(), changed, "the list follows the change");
}
