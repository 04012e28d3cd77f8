//! Transport rules: the version header (Communication 3.3), JSON errors for
//! every failure, CORS, and connection handling.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends!(missing_version_header_is_400_on_every_resource);
async fn missing_version_header_is_400_on_every_resource(app: TestApp) {
    for path in ["/statements", "/activities", "/activities/state", "/activities/profile", "/agents", "/agents/profile"]
    {
        let res = app
            .client
            .get(format!("{}{path}", app.endpoint))
            .basic_auth(ADMIN_KEY, Some(ADMIN_SECRET))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(res.headers()["x-experience-api-version"], "1.0.3", "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["property"], "X-Experience-API-Version", "{path}");
    }
}

on_both_backends!(version_header_values);
async fn version_header_values(app: TestApp) {
    for (version, expected) in [
        ("1.0", StatusCode::OK),
        ("1.0.0", StatusCode::OK),
        ("1.0.2", StatusCode::OK),
        ("1.0.3", StatusCode::OK),
        ("1.0.9", StatusCode::OK),
        ("1.1.0", StatusCode::BAD_REQUEST),
        ("0.9.5", StatusCode::BAD_REQUEST),
        ("BAD", StatusCode::BAD_REQUEST),
    ] {
        let res = app
            .client
            .post(format!("{}/statements", app.endpoint))
            .basic_auth(ADMIN_KEY, Some(ADMIN_SECRET))
            .header("X-Experience-API-Version", version)
            .json(&statement())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected, "version {version}");
        assert_eq!(res.headers()["x-experience-api-version"], "1.0.3");
    }
}

on_both_backends!(consistent_through_is_on_statement_errors_too);
async fn consistent_through_is_on_statement_errors_too(app: TestApp) {
    let bad = app.client.get(format!("{}/statements", app.endpoint)).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let value = bad.headers()["x-experience-api-consistent-through"].to_str().unwrap().to_owned();
    assert!(chrono::DateTime::parse_from_rfc3339(&value).is_ok(), "{value}");
    let about = app.request(Method::GET, "/about").send().await.unwrap();
    assert!(about.headers().get("x-experience-api-consistent-through").is_none());
}

on_both_backends!(unknown_routes_and_methods_answer_json);
async fn unknown_routes_and_methods_answer_json(app: TestApp) {
    let missing = app.request(Method::GET, "/nothing-here").send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.json::<Value>().await.unwrap()["message"].is_string());
    let outside = app.client.get(app.endpoint.replace("/xapi", "/elsewhere")).send().await.unwrap();
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
    assert!(outside.json::<Value>().await.unwrap()["message"].is_string());
    let delete = app.request(Method::DELETE, "/statements").send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(delete.headers()["x-experience-api-version"], "1.0.3");
    assert!(delete.json::<Value>().await.unwrap()["message"].is_string());
}

on_both_backends!(oversized_bodies_get_413_as_json);
async fn oversized_bodies_get_413_as_json(app: TestApp) {
    // The test server accepts 1 MiB.
    let mut s = statement();
    s["result"] = json!({"response": "x".repeat(2 * 1024 * 1024)});
    let res = app.post_statements(&s).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].is_string(), "{body}");
}

on_both_backends!(trailing_slash_is_the_same_resource);
async fn trailing_slash_is_the_same_resource(app: TestApp) {
    let res = app.request(Method::GET, "/statements/").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

on_both_backends!(cors_preflight_and_exposed_headers);
async fn cors_preflight_and_exposed_headers(app: TestApp) {
    let preflight = app
        .client
        .request(Method::OPTIONS, format!("{}/statements", app.endpoint))
        .header("Origin", "https://content.example.org")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization,content-type,x-experience-api-version")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://content.example.org");
    let methods = preflight.headers()["access-control-allow-methods"].to_str().unwrap().to_ascii_uppercase();
    assert!(methods.contains("POST"), "{methods}");

    let res = app
        .request(Method::POST, "/statements")
        .header("Origin", "https://content.example.org")
        .json(&statement())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://content.example.org");
    let exposed = res.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(exposed.contains("x-experience-api-consistent-through"), "{exposed}");
    assert!(exposed.contains("x-experience-api-version"), "{exposed}");
}

/// Reads one HTTP/1.1 response (headers plus a Content-Length body).
fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).expect("read");
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
    }
    String::from_utf8_lossy(&buf).to_string()
}

on_both_backends!(keep_alive_survives_errors_or_says_close);
async fn keep_alive_survives_errors_or_says_close(app: TestApp) {
    let addr = app.endpoint.trim_start_matches("http://").trim_end_matches("/xapi").to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // A request refused before its body is read (no credentials), then a good one.
        let body = serde_json::to_string(&statement()).unwrap();
        let first = format!(
            "POST /xapi/statements HTTP/1.1\r\nHost: {addr}\r\nX-Experience-API-Version: 1.0.3\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(first.as_bytes()).unwrap();
        let response = read_response(&mut stream);
        assert!(response.starts_with("HTTP/1.1 401"), "{response}");
        if response.to_ascii_lowercase().contains("connection: close") {
            return;
        }
        let second = format!(
            "GET /xapi/about HTTP/1.1\r\nHost: {addr}\r\nX-Experience-API-Version: 1.0.3\r\n\r\n"
        );
        stream.write_all(second.as_bytes()).unwrap();
        let response = read_response(&mut stream);
        assert!(response.starts_with("HTTP/1.1 200"), "the connection was dropped without Connection: close: {response:?}");
    })
    .await
    .unwrap();
}
