//! The About resource (Communication 2.8).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends!(about_needs_no_auth_and_no_version_header);
async fn about_needs_no_auth_and_no_version_header(app: TestApp) {
    let res = app.client.get(format!("{}/about", app.endpoint)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-experience-api-version"], "1.0.3");
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = res.json().await.unwrap();
    let versions: Vec<&str> = body["version"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(versions.contains(&"1.0.3"), "{body}");
    assert!(body["extensions"].is_object());
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["version", "extensions"], "no other top-level keys");
}

on_both_backends!(about_answers_head_and_refuses_post);
async fn about_answers_head_and_refuses_post(app: TestApp) {
    let head = app.request(Method::HEAD, "/about").send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.bytes().await.unwrap().is_empty());
    let post = app.request(Method::POST, "/about").send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = post.json().await.unwrap();
    assert!(body["message"].is_string());
}
