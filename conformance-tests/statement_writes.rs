//! Storing statements: PUT and POST on /statements (xAPI 1.0.3
//! Communication 2.1.1, 2.1.2; Data 2.2, 2.3, 2.4.7-2.4.10).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

/// A statement with a client-chosen id.
fn with_id(id: &str) -> Value {
    let mut s = statement();
    s["id"] = json!(id);
    s
}

/// Status of `GET ?statementId=`.
async fn get_status(app: &TestApp, id: &str) -> StatusCode {
    app.get_statements(&format!("statementId={id}")).await.0
}

/// Status and parsed JSON body (or the text as a JSON string) of a response.
async fn status_and_body(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Whether `s` is a UUID in its standard hyphenated form.
fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok() && s.chars().filter(|c| *c == '-').count() == 4
}

/// Parses an LRS timestamp (RFC 3339).
fn instant(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string timestamp: {v}"));
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("'{s}' is not RFC 3339: {e}"))
}

// ---- PUT ----

on_both_backends!(put_with_statement_id_stores_and_returns_204);
async fn put_with_statement_id_stores_and_returns_204(app: TestApp) {
    let id = uuid();
    let s = with_id(&id);
    let res = app.put_statement(&id, &s).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let body = res.bytes().await.unwrap();
    assert!(body.is_empty(), "204 has no body: {body:?}");
    let stored = app.statement(&id).await;
    assert_eq!(stored["id"], json!(id));
    assert_eq!(stored["actor"], s["actor"]);
    assert_eq!(stored["verb"], s["verb"]);
    assert_eq!(stored["object"], s["object"]);
}

on_both_backends!(put_without_statement_id_is_400);
async fn put_without_statement_id_is_400(app: TestApp) {
    let id = uuid();
    let res = app.request(Method::PUT, "/statements").json(&with_id(&id)).send().await.unwrap();
    let (status, body) = status_and_body(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(get_status(&app, &id).await, StatusCode::NOT_FOUND);
}

on_both_backends!(put_with_body_id_different_from_parameter_is_400);
async fn put_with_body_id_different_from_parameter_is_400(app: TestApp) {
    let (param, body_id) = (uuid(), uuid());
    let res = app.put_statement(&param, &with_id(&body_id)).await;
    let (status, body) = status_and_body(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(get_status(&app, &param).await, StatusCode::NOT_FOUND);
    assert_eq!(get_status(&app, &body_id).await, StatusCode::NOT_FOUND);
}

on_both_backends!(put_with_matching_body_id_is_204);
async fn put_with_matching_body_id_is_204(app: TestApp) {
    let id = uuid();
    let res = app.put_statement(&id, &with_id(&id)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.statement(&id).await["id"], json!(id));
}

on_both_backends!(put_body_without_id_is_stored_under_statement_id);
async fn put_body_without_id_is_stored_under_statement_id(app: TestApp) {
    let id = uuid();
    let s = statement();
    assert!(s.get("id").is_none());
    let res = app.put_statement(&id, &s).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let stored = app.statement(&id).await;
    assert_eq!(stored["id"], json!(id));
    assert_eq!(stored["verb"], s["verb"]);
    assert_eq!(app.ids("").await, vec![id]);
}

on_both_backends!(put_with_invalid_statement_id_is_400);
async fn put_with_invalid_statement_id_is_400(app: TestApp) {
    let res = app.put_statement("not-a-uuid", &statement()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.ids("").await, Vec::<String>::new());
}

on_both_backends!(put_with_an_array_body_is_400);
async fn put_with_an_array_body_is_400(app: TestApp) {
    let id = uuid();
    let res = app.put_statement(&id, &json!([statement()])).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.ids("").await, Vec::<String>::new());
}

// ---- POST ----

on_both_backends!(post_single_statement_returns_array_of_one_id);
async fn post_single_statement_returns_array_of_one_id(app: TestApp) {
    let s = statement();
    let res = app.post_statements(&s).await;
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let ids: Value = res.json().await.unwrap();
    let ids = ids.as_array().expect("an array of ids");
    assert_eq!(ids.len(), 1);
    let id = ids[0].as_str().expect("id is a string");
    assert!(is_uuid(id), "{id}");
    let stored = app.statement(id).await;
    assert_eq!(stored["id"], json!(id));
    assert_eq!(stored["actor"], s["actor"]);
}

on_both_backends!(post_single_statement_with_id_returns_that_id);
async fn post_single_statement_with_id_returns_that_id(app: TestApp) {
    let id = uuid();
    assert_eq!(app.store(&with_id(&id)).await, vec![id.clone()]);
    assert_eq!(app.statement(&id).await["id"], json!(id));
}

on_both_backends!(post_array_returns_ids_in_input_order);
async fn post_array_returns_ids_in_input_order(app: TestApp) {
    let (a, c, e) = (uuid(), uuid(), uuid());
    let batch = json!([with_id(&a), statement(), with_id(&c), statement(), with_id(&e)]);
    let ids = app.store(&batch).await;
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[0], a);
    assert_eq!(ids[2], c);
    assert_eq!(ids[4], e);
    for (i, id) in ids.iter().enumerate() {
        let stored = app.statement(id).await;
        assert_eq!(stored["verb"], batch[i]["verb"], "statement {i} stored under the id returned at its position");
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5);
}

on_both_backends!(lrs_generated_ids_are_uuids);
async fn lrs_generated_ids_are_uuids(app: TestApp) {
    let ids = app.store(&json!([statement(), statement(), statement()])).await;
    assert_eq!(ids.len(), 3);
    for id in &ids {
        assert!(is_uuid(id), "not a UUID in standard form: {id}");
        let parsed = uuid::Uuid::try_parse(id).unwrap();
        assert_eq!(parsed.hyphenated().to_string(), id.to_lowercase());
        assert_eq!(app.statement(id).await["id"], json!(id));
    }
}

on_both_backends!(post_with_duplicate_ids_in_one_batch_is_400_and_stores_nothing);
async fn post_with_duplicate_ids_in_one_batch_is_400_and_stores_nothing(app: TestApp) {
    let id = uuid();
    let other = uuid();
    let batch = json!([with_id(&other), with_id(&id), with_id(&id)]);
    let (status, body) = status_and_body(app.post_statements(&batch).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(get_status(&app, &id).await, StatusCode::NOT_FOUND);
    assert_eq!(get_status(&app, &other).await, StatusCode::NOT_FOUND);
    assert_eq!(app.ids("").await, Vec::<String>::new());
}

on_both_backends!(post_with_duplicate_ids_differing_in_case_is_400);
async fn post_with_duplicate_ids_differing_in_case_is_400(app: TestApp) {
    let id = uuid();
    let batch = json!([with_id(&id), with_id(&id.to_uppercase())]);
    let (status, body) = status_and_body(app.post_statements(&batch).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(app.ids("").await, Vec::<String>::new());
}

on_both_backends!(batch_with_one_invalid_statement_stores_none);
async fn batch_with_one_invalid_statement_stores_none(app: TestApp) {
    let valid = uuid();
    let after = uuid();
    let mut bad = statement();
    bad["actor"]["mbox"] = json!("learner@example.com");
    let batch = json!([with_id(&valid), bad, with_id(&after)]);
    let (status, body) = status_and_body(app.post_statements(&batch).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let property = body["property"].as_str().unwrap_or_default();
    assert!(property.contains("[1]") && property.contains("mbox"), "property names the statement and field: {body}");
    assert_eq!(get_status(&app, &valid).await, StatusCode::NOT_FOUND);
    assert_eq!(get_status(&app, &after).await, StatusCode::NOT_FOUND);
    assert_eq!(app.ids("").await, Vec::<String>::new());
}

on_both_backends!(post_body_that_is_not_a_statement_or_array_is_400);
async fn post_body_that_is_not_a_statement_or_array_is_400(app: TestApp) {
    for body in [json!(42), json!("statement"), json!(true), json!(null), json!([1, 2])] {
        let res = app.post_statements(&body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(app.ids("").await, Vec::<String>::new());
}

// ---- Same id again ----

on_both_backends!(reposting_the_same_statement_changes_nothing);
async fn reposting_the_same_statement_changes_nothing(app: TestApp) {
    let id = uuid();
    let s = with_id(&id);
    app.store(&s).await;
    let first = app.statement(&id).await;
    assert_eq!(app.store(&s).await, vec![id.clone()]);
    let res = app.put_statement(&id, &s).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.statement(&id).await, first, "the stored statement must not change");
    assert_eq!(app.ids("").await, vec![id]);
}

on_both_backends!(same_statement_with_presentation_differences_is_accepted_unchanged);
async fn same_statement_with_presentation_differences_is_accepted_unchanged(app: TestApp) {
    type Variation = (&'static str, fn(&mut Value));
    let variations: Vec<Variation> = vec![
        ("different verb display", |s| s["verb"]["display"] = json!({"en-GB": "did it", "fr": "a fait"})),
        ("no verb display", |s| {
            s["verb"].as_object_mut().unwrap().remove("display");
        }),
        ("different activity definition", |s| {
            s["object"]["definition"] = json!({"name": {"en-US": "Another name"}, "description": {"en-US": "d"}})
        }),
        ("timestamp with +00:00 instead of Z", |s| s["timestamp"] = json!("2024-03-01T10:20:30.500+00:00")),
        ("timestamp in another time zone", |s| s["timestamp"] = json!("2024-03-01T12:20:30.500+02:00")),
        ("mbox domain in upper case", |s| {
            let mbox = s["actor"]["mbox"].as_str().unwrap().replace("@example.com", "@EXAMPLE.COM");
            s["actor"]["mbox"] = json!(mbox);
        }),
    ];
    for (what, change) in variations {
        let id = uuid();
        let mut original = with_id(&id);
        original["timestamp"] = json!("2024-03-01T10:20:30.500Z");
        app.store(&original).await;
        let before = app.statement(&id).await;

        let mut again = original.clone();
        change(&mut again);
        assert_ne!(again, original, "{what}: the variation changes the JSON");
        let res = app.post_statements(&again).await;
        assert_eq!(res.status(), StatusCode::OK, "{what}: POST of the same statement");
        let res = app.put_statement(&id, &again).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{what}: PUT of the same statement");
        assert_eq!(app.statement(&id).await, before, "{what}: the stored statement must not change");
    }
}

on_both_backends!(same_id_with_different_content_is_409_and_unchanged);
async fn same_id_with_different_content_is_409_and_unchanged(app: TestApp) {
    let id = uuid();
    let original = with_id(&id);
    app.store(&original).await;
    let before = app.statement(&id).await;

    let mut different = with_id(&id);
    different["verb"] = original["verb"].clone();
    different["actor"] = original["actor"].clone();
    // Only the object differs.
    let (status, body) = status_and_body(app.post_statements(&different).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "POST: {body}");
    assert!(body["message"].is_string(), "{body}");
    let res = app.put_statement(&id, &different).await;
    assert_eq!(res.status(), StatusCode::CONFLICT, "PUT");

    let mut with_result = original.clone();
    with_result["result"] = json!({"success": true});
    assert_eq!(app.post_statements(&with_result).await.status(), StatusCode::CONFLICT);

    let mut other_verb = original.clone();
    other_verb["verb"]["id"] = json!("http://example.com/verbs/other");
    assert_eq!(app.put_statement(&id, &other_verb).await.status(), StatusCode::CONFLICT);

    assert_eq!(app.statement(&id).await, before);
    assert_eq!(app.ids("").await, vec![id]);
}

on_both_backends!(conflict_in_a_batch_stores_none_of_it);
async fn conflict_in_a_batch_stores_none_of_it(app: TestApp) {
    let id = uuid();
    app.store(&with_id(&id)).await;
    let fresh = uuid();
    let batch = json!([with_id(&fresh), with_id(&id)]);
    let status = app.post_statements(&batch).await.status();
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(get_status(&app, &fresh).await, StatusCode::NOT_FOUND);
}

// ---- Properties the LRS sets ----

on_both_backends!(stored_is_set_by_the_lrs);
async fn stored_is_set_by_the_lrs(app: TestApp) {
    let before = chrono::Utc::now();
    let mut s = statement();
    s["stored"] = json!("2000-01-01T00:00:00.000Z");
    let id = app.store(&s).await.remove(0);
    let after = chrono::Utc::now();
    let stored = app.statement(&id).await;
    assert_ne!(stored["stored"], json!("2000-01-01T00:00:00.000Z"));
    let t = instant(&stored["stored"]);
    assert!(t >= before - chrono::Duration::seconds(5), "stored {t} is before the request ({before})");
    assert!(t <= after + chrono::Duration::seconds(5), "stored {t} is after the response ({after})");
}

on_both_backends!(timestamp_defaults_to_stored);
async fn timestamp_defaults_to_stored(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    let stored = app.statement(&id).await;
    assert!(stored["timestamp"].is_string(), "{stored}");
    assert_eq!(instant(&stored["timestamp"]), instant(&stored["stored"]));
}

on_both_backends!(client_timestamp_is_kept);
async fn client_timestamp_is_kept(app: TestApp) {
    let mut s = statement();
    s["timestamp"] = json!("2013-05-18T05:32:34.804+01:00");
    let id = app.store(&s).await.remove(0);
    let stored = app.statement(&id).await;
    assert_eq!(
        instant(&stored["timestamp"]),
        chrono::DateTime::parse_from_rfc3339("2013-05-18T04:32:34.804Z").unwrap()
    );
    assert_ne!(stored["timestamp"], stored["stored"]);
}

on_both_backends!(authority_is_overwritten_by_the_lrs);
async fn authority_is_overwritten_by_the_lrs(app: TestApp) {
    let mut s = statement();
    s["authority"] = json!({"objectType": "Agent", "name": "Impostor", "mbox": "mailto:impostor@example.com"});
    let id = app.store(&s).await.remove(0);
    let unsent = app.store(&statement()).await.remove(0);
    for id in [id, unsent] {
        let authority = app.statement(&id).await["authority"].clone();
        assert_eq!(authority["objectType"], json!("Agent"), "{authority}");
        assert_eq!(
            authority["account"],
            json!({"homePage": "https://lrs.example.com/credentials", "name": ADMIN_KEY}),
            "{authority}"
        );
        assert!(authority.get("mbox").is_none(), "{authority}");
    }
}

on_both_backends!(version_defaults_to_1_0_0);
async fn version_defaults_to_1_0_0(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    assert_eq!(app.statement(&id).await["version"], json!("1.0.0"));
}

on_both_backends!(given_version_is_retained);
async fn given_version_is_retained(app: TestApp) {
    for version in ["1.0.3", "1.0.0"] {
        let mut s = statement();
        s["version"] = json!(version);
        let id = app.store(&s).await.remove(0);
        assert_eq!(app.statement(&id).await["version"], json!(version));
    }
}

on_both_backends!(stored_and_timestamp_have_fractional_seconds);
async fn stored_and_timestamp_have_fractional_seconds(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    let stored = app.statement(&id).await;
    for field in ["stored", "timestamp"] {
        let text = stored[field].as_str().unwrap_or_else(|| panic!("{field} missing: {stored}"));
        let time = text.split_once('T').map(|(_, t)| t).unwrap_or("");
        let fraction = time.split_once('.').map(|(_, f)| f).unwrap_or("");
        let digits = fraction.chars().take_while(char::is_ascii_digit).count();
        assert!(digits >= 3, "{field} '{text}' has at least millisecond precision");
    }
}

on_both_backends!(statements_of_one_request_share_their_stored_time);
async fn statements_of_one_request_share_their_stored_time(app: TestApp) {
    let ids = app.store(&json!([statement(), statement()])).await;
    let a = app.statement(&ids[0]).await;
    let b = app.statement(&ids[1]).await;
    assert_eq!(instant(&a["stored"]), instant(&b["stored"]));
}

// ---- Request bodies ----

on_both_backends!(wrong_content_type_is_400);
async fn wrong_content_type_is_400(app: TestApp) {
    let s = statement();
    let text = s.to_string();
    let res = app.send(Method::POST, "/statements", "text/plain", text.clone()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let id = uuid();
    let res = app.send(Method::PUT, &format!("/statements?statementId={id}"), "text/plain", text).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.ids("").await, Vec::<String>::new());
}

on_both_backends!(empty_body_is_400);
async fn empty_body_is_400(app: TestApp) {
    for body in ["", "   \r\n"] {
        let res = app.send(Method::POST, "/statements", "application/json", body).await;
        let (status, json) = status_and_body(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "POST {body:?}: {json}");
        let id = uuid();
        let res = app.send(Method::PUT, &format!("/statements?statementId={id}"), "application/json", body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "PUT {body:?}");
    }
}

on_both_backends!(invalid_json_is_400_with_a_json_error_body);
async fn invalid_json_is_400_with_a_json_error_body(app: TestApp) {
    for body in ["{not json", "{\"actor\": {\"mbox\": \"mailto:a@example.com\"},}", "[{}", "{\"a\":1} trailing"] {
        let res = app.send(Method::POST, "/statements", "application/json", body).await;
        let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let (status, json) = status_and_body(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(ct.starts_with("application/json"), "error Content-Type {ct}");
        assert!(json.is_object(), "error body is JSON: {json}");
        assert!(json["error"].is_string() && json["message"].is_string(), "{json}");
    }
}

on_both_backends!(numbers_are_kept_exactly);
async fn numbers_are_kept_exactly(app: TestApp) {
    let mut s = statement();
    s["result"] = json!({
        "score": {"scaled": 0.12123434, "raw": 12.125, "min": -3.5, "max": 100},
        "extensions": {"http://example.com/ext/n": 1234567.0625, "http://example.com/ext/big": 9007199254740993_u64}
    });
    let id = app.store(&s).await.remove(0);
    let res = app.request(Method::GET, &format!("/statements?statementId={id}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stored["result"]["score"]["scaled"].as_f64(), Some(0.12123434));
    assert_eq!(stored["result"]["score"]["raw"].as_f64(), Some(12.125));
    assert_eq!(stored["result"]["score"]["min"].as_f64(), Some(-3.5));
    assert_eq!(stored["result"]["score"]["max"].as_f64(), Some(100.0));
    assert_eq!(stored["result"]["extensions"]["http://example.com/ext/n"].as_f64(), Some(1234567.0625));
    assert!(text.contains("0.12123434"), "{text}");
    assert!(text.contains("12.125"), "{text}");
    assert_eq!(stored["result"]["extensions"]["http://example.com/ext/big"].as_u64(), Some(9007199254740993));
}

on_both_backends!(utf8_text_round_trips_byte_for_byte);
async fn utf8_text_round_trips_byte_for_byte(app: TestApp) {
    let ja = "完了しました「テスト」";
    let ar = "أكمل الاختبار";
    let ko = "시험을 완료했습니다";
    let emoji = "done ✅ 🎓";
    let mut s = statement();
    s["verb"]["display"] = json!({"ja-JP": ja, "ar": ar, "ko-KR": ko, "en-US": emoji});
    s["object"]["definition"]["name"] = json!({"ja-JP": ja, "ar-EG": ar, "ko": ko});
    let id = app.store(&s).await.remove(0);
    let res = app.request(Method::GET, &format!("/statements?statementId={id}")).send().await.unwrap();
    let bytes = res.bytes().await.unwrap();
    for text in [ja, ar, ko, emoji] {
        assert!(
            bytes.windows(text.len()).any(|w| w == text.as_bytes()),
            "'{text}' appears as UTF-8 bytes in the response"
        );
    }
    let stored: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(stored["verb"]["display"], s["verb"]["display"]);
    assert_eq!(stored["object"]["definition"]["name"], s["object"]["definition"]["name"]);
}

on_both_backends!(statement_is_returned_as_sent_plus_lrs_properties);
async fn statement_is_returned_as_sent_plus_lrs_properties(app: TestApp) {
    let id = uuid();
    let mut s = with_id(&id);
    s["result"] = json!({"success": true, "completion": false, "response": "x", "duration": "PT1M"});
    s["context"] = json!({"registration": uuid(), "language": "en-US", "platform": "test", "revision": "1"});
    app.store(&s).await;
    let stored = app.statement(&id).await;
    let obj = stored.as_object().unwrap();
    for (k, v) in s.as_object().unwrap() {
        assert_eq!(&obj[k], v, "property {k}");
    }
    for k in ["stored", "timestamp", "authority", "version"] {
        assert!(obj.contains_key(k), "LRS adds {k}: {stored}");
    }
}

on_both_backends!(json_content_type_parameters_are_accepted);
async fn json_content_type_parameters_are_accepted(app: TestApp) {
    for ct in ["application/json; charset=utf-8", "application/json;charset=UTF-8", "Application/JSON"] {
        let s = statement();
        let res = app.send(Method::POST, "/statements", ct, s.to_string()).await;
        let (status, body) = status_and_body(res).await;
        assert_eq!(status, StatusCode::OK, "{ct}: {body}");
        let id = body[0].as_str().expect("an id");
        assert_eq!(app.statement(id).await["verb"], s["verb"], "{ct}");
    }
}

// ---- Alternate request syntax (Communication 1.3: "The LRS MUST support the syntax above") ----

/// `application/x-www-form-urlencoded` body from name/value pairs.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

on_both_backends!(alternate_syntax_put_stores_the_statement);
async fn alternate_syntax_put_stores_the_statement(app: TestApp) {
    let id = uuid();
    let s = statement();
    let content = s.to_string();
    let res = app
        .send(
            Method::POST,
            "/statements?method=PUT",
            "application/x-www-form-urlencoded",
            form(&[("statementId", &id), ("content", &content), ("Content-Type", "application/json")]),
        )
        .await;
    let (status, body) = status_and_body(res).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "POST ?method=PUT: {body}");
    let stored = app.statement(&id).await;
    assert_eq!(stored["actor"], s["actor"]);
}

on_both_backends!(alternate_syntax_takes_headers_from_form_parameters);
async fn alternate_syntax_takes_headers_from_form_parameters(app: TestApp) {
    use base64::Engine;
    let s = statement();
    let content = s.to_string();
    let auth =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_KEY}:{ADMIN_SECRET}")));
    // No xAPI headers in the HTTP header: they come as form parameters.
    let res = app
        .client
        .post(format!("{}/statements?method=POST", app.endpoint))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("X-Experience-API-Version", VERSION),
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("content", &content),
        ]))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(res).await;
    assert_eq!(status, StatusCode::OK, "POST ?method=POST with headers as form parameters: {body}");
    let id = body[0].as_str().expect("an array of ids");
    assert_eq!(app.statement(id).await["verb"], s["verb"]);
}

on_both_backends!(oversized_request_is_413);
async fn oversized_request_is_413(app: TestApp) {
    // The test server accepts bodies of up to 1 MiB.
    let mut s = statement();
    s["result"] = json!({"extensions": {"http://example.com/ext/blob": "x".repeat(1_200_000)}});
    let res = app.post_statements(&s).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.ids("").await, Vec::<String>::new());
}
