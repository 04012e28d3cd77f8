//! Authentication and scopes (Communication 4): HTTP Basic against stored
//! credentials, xAPI scopes enforced with 403.

use reqwest::{Method, StatusCode};
use sea_orm::DatabaseConnection;
use serde_json::Value;
use xlrs::config::DatabaseArgs;
use xlrs::store::{self, credentials};

use crate::helpers::*;
use crate::on_both_backends;

async fn db(app: &TestApp) -> DatabaseConnection {
    store::connect(&DatabaseArgs { url: app.database_url.clone(), pool_size: 2 }).await.unwrap()
}

/// Creates a credential with these scopes; returns (key, secret).
pub async fn credential(app: &TestApp, scopes: &str) -> (String, String) {
    let (c, secret) = credentials::create(&db(app).await, "test", scopes, None).await.unwrap();
    (c.key, secret)
}

fn as_user(app: &TestApp, method: Method, path: &str, key: &str, secret: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, format!("{}{path}", app.endpoint))
        .header("X-Experience-API-Version", VERSION)
        .basic_auth(key, Some(secret))
}

on_both_backends!(requests_without_valid_credentials_get_401);
async fn requests_without_valid_credentials_get_401(app: TestApp) {
    let url = format!("{}/statements", app.endpoint);
    let cases = [
        app.client.get(&url).header("X-Experience-API-Version", VERSION),
        app.client.get(&url).header("X-Experience-API-Version", VERSION).basic_auth(ADMIN_KEY, Some("wrong")),
        app.client.get(&url).header("X-Experience-API-Version", VERSION).basic_auth("nobody", Some("x")),
        app.client.get(&url).header("X-Experience-API-Version", VERSION).header("Authorization", "Basic:dGVzdA=="),
        app.client.get(&url).header("X-Experience-API-Version", VERSION).header("Authorization", "Bearer abc"),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let res = case.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "case {i}");
        assert!(res.headers().contains_key("www-authenticate"), "case {i}");
        assert!(res.headers().contains_key("x-experience-api-consistent-through"), "case {i}");
        let body: Value = res.json().await.unwrap();
        assert!(body["message"].is_string(), "case {i}");
    }
}

on_both_backends!(scopes_are_enforced_with_403);
async fn scopes_are_enforced_with_403(app: TestApp) {
    let (reader, reader_secret) = credential(&app, "statements/read").await;
    let (writer, writer_secret) = credential(&app, "statements/write").await;
    let (all_read, all_read_secret) = credential(&app, "all/read").await;
    let (state_only, state_secret) = credential(&app, "state").await;

    let post = |k: &str, s: &str| as_user(&app, Method::POST, "/statements", k, s).json(&statement());
    assert_eq!(post(&writer, &writer_secret).send().await.unwrap().status(), StatusCode::OK);
    for (key, secret) in [(&reader, &reader_secret), (&all_read, &all_read_secret), (&state_only, &state_secret)] {
        let res = post(key, secret).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{key} may not write");
        assert!(res.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("scope"));
    }
    let get = |k: &str, s: &str| as_user(&app, Method::GET, "/statements", k, s);
    assert_eq!(get(&reader, &reader_secret).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(get(&all_read, &all_read_secret).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(get(&writer, &writer_secret).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(get(&state_only, &state_secret).send().await.unwrap().status(), StatusCode::FORBIDDEN);
}

on_both_backends!(read_mine_sees_only_its_own_statements);
async fn read_mine_sees_only_its_own_statements(app: TestApp) {
    let (mine, mine_secret) = credential(&app, "statements/write,statements/read/mine").await;
    let theirs = app.store(&statement()).await.remove(0);
    let res = as_user(&app, Method::POST, "/statements", &mine, &mine_secret).json(&statement()).send().await.unwrap();
    let own: Vec<String> = res.json().await.unwrap();

    let page: Value =
        as_user(&app, Method::GET, "/statements", &mine, &mine_secret).send().await.unwrap().json().await.unwrap();
    assert_eq!(ids_of(&page), own);
    let single = as_user(&app, Method::GET, &format!("/statements?statementId={theirs}"), &mine, &mine_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(single.status(), StatusCode::NOT_FOUND);
    let own_single = as_user(&app, Method::GET, &format!("/statements?statementId={}", own[0]), &mine, &mine_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(own_single.status(), StatusCode::OK);
    // The admin sees both.
    assert_eq!(app.ids("").await.len(), 2);
}

on_both_backends!(read_mine_cannot_widen_through_a_cursor);
async fn read_mine_cannot_widen_through_a_cursor(app: TestApp) {
    for _ in 0..3 {
        app.store(&statement()).await;
    }
    let (_, admin_page) = app.get_statements("limit=1").await;
    let more = admin_page["more"].as_str().unwrap().to_owned();
    assert!(!more.is_empty());
    let (mine, mine_secret) = credential(&app, "statements/read/mine").await;
    let host = app.endpoint.trim_end_matches("/xapi");
    let res = app
        .client
        .get(format!("{host}{more}"))
        .header("X-Experience-API-Version", VERSION)
        .basic_auth(&mine, Some(&mine_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.unwrap();
    assert_eq!(ids_of(&page), Vec::<String>::new(), "another credential's cursor shows none of their statements");
}

on_both_backends!(authority_names_the_credential);
async fn authority_names_the_credential(app: TestApp) {
    let (key, secret) = credential(&app, "statements/write,statements/read").await;
    let res = as_user(&app, Method::POST, "/statements", &key, &secret).json(&statement()).send().await.unwrap();
    let ids: Vec<String> = res.json().await.unwrap();
    let stored = app.statement(&ids[0]).await;
    assert_eq!(stored["authority"]["account"]["name"], key.as_str());
    assert_eq!(stored["authority"]["objectType"], "Agent");
}

on_both_backends!(secrets_are_stored_as_argon2_hashes);
async fn secrets_are_stored_as_argon2_hashes(app: TestApp) {
    let (key, secret) = credential(&app, "all").await;
    let row = credentials::find(&db(&app).await, &key).await.unwrap().unwrap();
    assert!(row.secret_hash.starts_with("$argon2"), "{}", row.secret_hash);
    assert!(!row.secret_hash.contains(&secret));
    let admin = credentials::find(&db(&app).await, ADMIN_KEY).await.unwrap().unwrap();
    assert!(admin.secret_hash.starts_with("$argon2") && !admin.secret_hash.contains(ADMIN_SECRET));
}

async fn revoked_credentials_are_refused(backend: Backend) {
    // A server whose cache keeps nothing, so revocation shows at once.
    let Some(app) = spawn_app_with(backend, |a| a.auth_cache_secs = 0).await else {
        return;
    };
    let (key, secret) = credential(&app, "all").await;
    let get = || as_user(&app, Method::GET, "/statements", &key, &secret).send();
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    assert!(credentials::revoke(&db(&app).await, &key).await.unwrap());
    assert_eq!(get().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_credentials_are_refused_sqlite() {
    revoked_credentials_are_refused(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_credentials_are_refused_postgres() {
    revoked_credentials_are_refused(Backend::Postgres).await;
}
