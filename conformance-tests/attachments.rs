//! Attachments over `multipart/mixed` (xAPI 1.0.3 Data 2.4.11, Communication
//! 1.5.2 and 2.1.3 `attachments`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;
use crate::on_both_backends;

const BOUNDARY: &str = "abc123";

pub fn sha256_hex(content: &[u8]) -> String {
    Sha256::digest(content).iter().map(|b| format!("{b:02x}")).collect()
}

/// An attachment declaration for `content`.
pub fn declare(content: &[u8], content_type: &str, n: usize) -> Value {
    json!({
        "usageType": format!("http://example.com/attachment-usage/{n}"),
        "display": {"en-US": format!("Attachment {n}")},
        "description": {"en-US": "A test attachment"},
        "contentType": content_type,
        "length": content.len(),
        "sha2": sha256_hex(content)
    })
}

/// One multipart part: its header lines and its content.
struct Part {
    headers: Vec<String>,
    content: Vec<u8>,
}

/// The usual part for attachment content.
fn content_part(content: &[u8], content_type: &str) -> Part {
    Part {
        headers: vec![
            format!("Content-Type: {content_type}"),
            "Content-Transfer-Encoding: binary".to_owned(),
            format!("X-Experience-API-Hash: {}", sha256_hex(content)),
        ],
        content: content.to_vec(),
    }
}

fn json_part(statements: &Value) -> Part {
    Part {
        headers: vec!["Content-Type: application/json".to_owned()],
        content: serde_json::to_vec(statements).unwrap(),
    }
}

/// A multipart/mixed body with CRLF line endings.
fn multipart_body(boundary: &str, parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        for h in &part.headers {
            body.extend_from_slice(h.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&part.content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// The standard request: statement part, then one part per content.
pub fn request_body(statements: &Value, contents: &[(&[u8], &str)]) -> Vec<u8> {
    let mut parts = vec![json_part(statements)];
    parts.extend(contents.iter().map(|(c, t)| content_part(c, t)));
    multipart_body(BOUNDARY, &parts)
}

async fn send(app: &TestApp, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, String) {
    let res = app.send(method, path, content_type, body).await;
    let status = res.status();
    (status, res.text().await.unwrap_or_default())
}

pub async fn post_multipart(app: &TestApp, body: Vec<u8>) -> (StatusCode, String) {
    send(app, Method::POST, "/statements", &format!("multipart/mixed; boundary={BOUNDARY}"), body).await
}

/// A response part.
#[derive(Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub content: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while let Some(i) = find(hay, needle, at) {
        n += 1;
        at = i + needle.len();
    }
    n
}

/// Splits a multipart body (RFC 2046) into its parts.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<Received> {
    let delimiter = format!("--{boundary}");
    let start = find(body, delimiter.as_bytes(), 0).expect("first boundary");
    let mut pos = start + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return parts;
        }
        let line_end = find(body, b"\r\n", pos).expect("boundary line ends with CRLF");
        pos = line_end + 2;
        let next = find(body, format!("\r\n{delimiter}").as_bytes(), pos).expect("closing boundary");
        let raw = &body[pos..next];
        let (head, content) = match find(raw, b"\r\n\r\n", 0) {
            Some(i) => (&raw[..i], &raw[i + 4..]),
            None if raw.starts_with(b"\r\n") => (&raw[..0], &raw[2..]),
            None => panic!("part without blank line: {}", String::from_utf8_lossy(raw)),
        };
        let headers = std::str::from_utf8(head)
            .expect("UTF-8 part headers")
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').expect("header line");
                (k.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        parts.push(Received { headers, content: content.to_vec() });
        pos = next + 2 + delimiter.len();
    }
}

/// GET with `attachments=true`: the content type's boundary and the parts.
pub async fn get_multipart(app: &TestApp, query: &str) -> (Vec<u8>, Vec<Received>) {
    let res = app.request(Method::GET, &format!("/statements?{query}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "GET ?{query}");
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(ct.to_ascii_lowercase().starts_with("multipart/mixed"), "Content-Type {ct}");
    let boundary = ct
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("no boundary in {ct}"));
    let body = res.bytes().await.unwrap().to_vec();
    let parts = parse_multipart(&body, &boundary);
    (body, parts)
}

pub fn with_attachments(id: &str, attachments: Vec<Value>) -> Value {
    let mut s = statement();
    s["id"] = json!(id);
    s["attachments"] = Value::Array(attachments);
    s
}

const TEXT_A: &[u8] = b"here is a simple attachment";
const TEXT_B: &[u8] = b"here is another, longer attachment\r\nwith two lines";

/// Stores the standard statement with two text attachments; returns its id.
async fn store_two(app: &TestApp) -> (String, Value) {
    let id = uuid();
    let s = with_attachments(&id, vec![declare(TEXT_A, "text/plain", 1), declare(TEXT_B, "text/plain", 2)]);
    let (status, text) = post_multipart(app, request_body(&s, &[(TEXT_A, "text/plain"), (TEXT_B, "text/plain")])).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let ids: Vec<String> = serde_json::from_str(&text).expect("ids");
    assert_eq!(ids, vec![id.clone()]);
    (id, s)
}

// ---- Storing ----

on_both_backends!(multipart_post_with_two_attachments_is_stored);
async fn multipart_post_with_two_attachments_is_stored(app: TestApp) {
    let (id, s) = store_two(&app).await;
    let stored = app.statement(&id).await;
    assert_eq!(stored["attachments"], s["attachments"]);
    assert_eq!(stored["actor"], s["actor"]);
}

on_both_backends!(multipart_put_is_204);
async fn multipart_put_is_204(app: TestApp) {
    let id = uuid();
    let mut s = with_attachments(&id, vec![declare(TEXT_A, "text/plain", 1)]);
    s.as_object_mut().unwrap().remove("id");
    let (status, text) = send(
        &app,
        Method::PUT,
        &format!("/statements?statementId={id}"),
        &format!("multipart/mixed; boundary={BOUNDARY}"),
        request_body(&s, &[(TEXT_A, "text/plain")]),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    let (_, parts) = get_multipart(&app, &format!("statementId={id}&attachments=true")).await;
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].content, TEXT_A);
}

on_both_backends!(multipart_batch_with_attachments_of_several_statements);
async fn multipart_batch_with_attachments_of_several_statements(app: TestApp) {
    let (a, b) = (uuid(), uuid());
    let batch = json!([
        with_attachments(&a, vec![declare(TEXT_A, "text/plain", 1)]),
        statement(),
        with_attachments(&b, vec![declare(TEXT_B, "text/plain", 2)]),
    ]);
    let (status, text) =
        post_multipart(&app, request_body(&batch, &[(TEXT_B, "text/plain"), (TEXT_A, "text/plain")])).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let ids: Vec<String> = serde_json::from_str(&text).unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!((ids[0].as_str(), ids[2].as_str()), (a.as_str(), b.as_str()));
    let (_, parts) = get_multipart(&app, &format!("statementId={b}&attachments=true")).await;
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].content, TEXT_B);
}

on_both_backends!(binary_content_round_trips_byte_for_byte);
async fn binary_content_round_trips_byte_for_byte(app: TestApp) {
    let mut content: Vec<u8> = (0..=255u8).collect();
    content.extend_from_slice(b"\r\n--xyz\r\n\r\n--xyz--\r\n");
    content.extend((0..=255u8).rev());
    let id = uuid();
    let s = with_attachments(&id, vec![declare(&content, "application/octet-stream", 1)]);
    let (status, text) = post_multipart(&app, request_body(&s, &[(&content, "application/octet-stream")])).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (_, parts) = get_multipart(&app, &format!("statementId={id}&attachments=true")).await;
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].content, content, "binary content returned unchanged");
    assert_eq!(parts[1].header("X-Experience-API-Hash"), Some(sha256_hex(&content).as_str()));
}

// ---- Retrieving ----

on_both_backends!(get_with_attachments_true_returns_multipart);
async fn get_with_attachments_true_returns_multipart(app: TestApp) {
    let (id, s) = store_two(&app).await;
    let (body, parts) = get_multipart(&app, &format!("statementId={id}&attachments=true")).await;
    assert_eq!(parts.len(), 3, "the statement, then each attachment");
    let first_type = parts[0].header("Content-Type").unwrap_or("");
    assert!(first_type.starts_with("application/json"), "first part type {first_type}");
    let statement: Value = serde_json::from_slice(&parts[0].content).expect("first part is the statement JSON");
    assert_eq!(statement["id"], json!(id));
    assert!(statement.get("statements").is_none(), "a single statement: {statement}");
    assert_eq!(statement["attachments"], s["attachments"]);

    for content in [TEXT_A, TEXT_B] {
        let hash = sha256_hex(content);
        let matching: Vec<&Received> =
            parts[1..].iter().filter(|p| p.header("X-Experience-API-Hash") == Some(hash.as_str())).collect();
        assert_eq!(matching.len(), 1, "one part for {hash}");
        assert_eq!(matching[0].content, content);
        if let Some(cte) = matching[0].header("Content-Transfer-Encoding") {
            assert!(cte.eq_ignore_ascii_case("binary"), "{cte}");
        }
        assert_eq!(count(&body, hash.as_bytes()), 2, "{hash} appears in sha2 and in the part header only");
        assert_eq!(count(&body, content), 1, "the content appears once");
    }
}

on_both_backends!(get_with_attachments_false_is_json_without_content);
async fn get_with_attachments_false_is_json_without_content(app: TestApp) {
    let (id, s) = store_two(&app).await;
    for query in
        [format!("statementId={id}&attachments=false"), format!("statementId={id}"), "attachments=false".to_owned()]
    {
        let res = app.request(Method::GET, &format!("/statements?{query}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(ct.starts_with("application/json"), "{query}: {ct}");
        let body = res.bytes().await.unwrap();
        assert_eq!(count(&body, TEXT_A), 0, "{query}: no attachment data");
        assert_eq!(count(&body, b"X-Experience-API-Hash"), 0);
        let json: Value = serde_json::from_slice(&body).expect("JSON");
        let st = if json.get("statements").is_some() { json["statements"][0].clone() } else { json };
        assert_eq!(st["attachments"], s["attachments"]);
    }
}

on_both_backends!(query_with_attachments_true_returns_statement_result_first);
async fn query_with_attachments_true_returns_statement_result_first(app: TestApp) {
    let (id, _) = store_two(&app).await;
    let plain = app.store(&statement()).await.remove(0);
    let (body, parts) = get_multipart(&app, "attachments=true").await;
    let result: Value = serde_json::from_slice(&parts[0].content).expect("first part JSON");
    assert_eq!(ids_of(&result), vec![plain, id]);
    assert_eq!(result["more"], json!(""));
    assert_eq!(parts.len(), 3, "each attachment's content once");
    for content in [TEXT_A, TEXT_B] {
        let hash = sha256_hex(content);
        assert!(
            parts[1..].iter().any(|p| p.content == content && p.header("X-Experience-API-Hash") == Some(hash.as_str()))
        );
        assert_eq!(count(&body, hash.as_bytes()), 2);
    }
}

on_both_backends!(query_with_attachments_true_and_no_attachments_is_multipart);
async fn query_with_attachments_true_and_no_attachments_is_multipart(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    let (_, parts) = get_multipart(&app, "attachments=true").await;
    assert_eq!(parts.len(), 1);
    let result: Value = serde_json::from_slice(&parts[0].content).unwrap();
    assert_eq!(ids_of(&result), vec![id]);
}

on_both_backends!(file_url_attachment_with_a_part_keeps_the_part_content);
async fn file_url_attachment_with_a_part_keeps_the_part_content(app: TestApp) {
    let id = uuid();
    let mut declared = declare(TEXT_A, "text/plain", 1);
    declared["fileUrl"] = json!("http://example.com/files/a.txt");
    let remote = declare(TEXT_B, "text/plain", 2);
    let mut remote_only = remote.clone();
    remote_only["fileUrl"] = json!("http://example.com/files/b.txt");
    let s = with_attachments(&id, vec![declared.clone(), remote_only.clone()]);
    let (status, text) = post_multipart(&app, request_body(&s, &[(TEXT_A, "text/plain")])).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (_, parts) = get_multipart(&app, &format!("statementId={id}&attachments=true")).await;
    let statement: Value = serde_json::from_slice(&parts[0].content).unwrap();
    assert_eq!(statement["attachments"], json!([declared, remote_only]));
    let a_parts: Vec<&Received> = parts[1..].iter().filter(|p| p.content == TEXT_A).collect();
    assert_eq!(a_parts.len(), 1, "the content sent for the fileUrl attachment is returned");
    assert!(parts[1..].iter().all(|p| p.content != TEXT_B), "no content was sent for the fileUrl-only attachment");
}

on_both_backends!(json_request_with_only_file_url_attachments_is_accepted);
async fn json_request_with_only_file_url_attachments_is_accepted(app: TestApp) {
    let id = uuid();
    let mut a = declare(TEXT_A, "text/plain", 1);
    a["fileUrl"] = json!("http://example.com/files/a.txt");
    let s = with_attachments(&id, vec![a]);
    app.store(&s).await;
    assert_eq!(app.statement(&id).await["attachments"], s["attachments"]);
}

// ---- Refused requests ----

on_both_backends!(malformed_multipart_requests_are_400_and_store_nothing);
async fn malformed_multipart_requests_are_400_and_store_nothing(app: TestApp) {
    let id = uuid();
    let s = with_attachments(&id, vec![declare(TEXT_A, "text/plain", 1), declare(TEXT_B, "text/plain", 2)]);
    let good_ct = format!("multipart/mixed; boundary={BOUNDARY}");
    let good_parts = || vec![json_part(&s), content_part(TEXT_A, "text/plain"), content_part(TEXT_B, "text/plain")];

    let mut cases: Vec<(&str, String, Vec<u8>)> = Vec::new();
    cases.push(("no boundary parameter", "multipart/mixed".to_owned(), multipart_body(BOUNDARY, &good_parts())));
    cases.push((
        "wrong boundary parameter",
        "multipart/mixed; boundary=other".to_owned(),
        multipart_body(BOUNDARY, &good_parts()),
    ));
    cases.push((
        "multipart/form-data",
        format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart_body(BOUNDARY, &good_parts()),
    ));

    let mut parts = good_parts();
    parts[0].headers = vec!["Content-Type: text/plain".to_owned()];
    cases.push(("first part not JSON", good_ct.clone(), multipart_body(BOUNDARY, &parts)));

    let mut parts = good_parts();
    parts.swap(0, 1);
    cases.push(("statement part not first", good_ct.clone(), multipart_body(BOUNDARY, &parts)));

    let mut parts = good_parts();
    parts[1].headers.retain(|h| !h.starts_with("X-Experience-API-Hash"));
    cases.push(("part without X-Experience-API-Hash", good_ct.clone(), multipart_body(BOUNDARY, &parts)));

    let mut parts = good_parts();
    parts[1].content = b"here is a simple attachment, changed".to_vec();
    cases.push(("part content does not match its hash", good_ct.clone(), multipart_body(BOUNDARY, &parts)));

    let mut parts = good_parts();
    parts.push(content_part(b"an extra part nobody declared", "text/plain"));
    cases.push(("part whose hash matches no attachment", good_ct.clone(), multipart_body(BOUNDARY, &parts)));

    let mut parts = good_parts();
    parts.pop();
    cases.push(("attachment without fileUrl and without a part", good_ct.clone(), multipart_body(BOUNDARY, &parts)));

    let mut parts = good_parts();
    parts[1].headers[1] = "Content-Transfer-Encoding: base64".to_owned();
    cases.push(("Content-Transfer-Encoding base64", good_ct.clone(), multipart_body(BOUNDARY, &parts)));

    let mut body = multipart_body(BOUNDARY, &good_parts());
    let closing = format!("--{BOUNDARY}--\r\n");
    body.truncate(body.len() - closing.len());
    cases.push(("no closing boundary", good_ct.clone(), body));

    let mut parts = good_parts();
    parts[0].content = b"{not json".to_vec();
    cases.push(("statement part not valid JSON", good_ct.clone(), multipart_body(BOUNDARY, &parts)));

    let mut invalid = s.clone();
    invalid["actor"]["mbox"] = json!("no-mailto@example.com");
    let mut parts = good_parts();
    parts[0] = json_part(&invalid);
    cases.push(("invalid statement", good_ct.clone(), multipart_body(BOUNDARY, &parts)));

    for (what, ct, body) in cases {
        let (status, text) = send(&app, Method::POST, "/statements", &ct, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {text}");
        let err: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: error body not JSON: {text}"));
        assert!(err["message"].is_string(), "{what}: {err}");
        assert_eq!(
            app.get_statements(&format!("statementId={id}")).await.0,
            StatusCode::NOT_FOUND,
            "{what}: nothing stored"
        );
    }
    assert_eq!(app.ids("").await, Vec::<String>::new());
}

on_both_backends!(attachment_without_file_url_in_a_json_request_is_400);
async fn attachment_without_file_url_in_a_json_request_is_400(app: TestApp) {
    let id = uuid();
    let s = with_attachments(&id, vec![declare(TEXT_A, "text/plain", 1)]);
    let res = app.post_statements(&s).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app.put_statement(&id, &s).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.get_statements(&format!("statementId={id}")).await.0, StatusCode::NOT_FOUND);
}

on_both_backends!(multipart_hash_header_case_and_part_order_do_not_matter);
async fn multipart_hash_header_case_and_part_order_do_not_matter(app: TestApp) {
    let id = uuid();
    let s = with_attachments(&id, vec![declare(TEXT_A, "text/plain", 1), declare(TEXT_B, "text/plain", 2)]);
    let mut b_part = content_part(TEXT_B, "text/plain");
    b_part.headers[2] = format!("x-experience-api-hash: {}", sha256_hex(TEXT_B));
    let parts = vec![json_part(&s), b_part, content_part(TEXT_A, "text/plain")];
    let (status, text) = post_multipart(&app, multipart_body(BOUNDARY, &parts)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (_, got) = get_multipart(&app, &format!("statementId={id}&attachments=true")).await;
    assert_eq!(got.len(), 3);
    assert!(got[1..].iter().any(|p| p.content == TEXT_A));
    assert!(got[1..].iter().any(|p| p.content == TEXT_B));
}

// ---- Other accepted forms ----

on_both_backends!(the_spec_example_request_is_accepted);
async fn the_spec_example_request_is_accepted(app: TestApp) {
    // Communication 1.5.2, example: a quoted boundary with every allowed
    // character class, and headers without a space after the colon.
    let boundary = "abcABC0123'()+_,-./:=?";
    let statement = json!({
        "actor": {"mbox": "mailto:sample.agent@example.com", "name": "Sample Agent", "objectType": "Agent"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered"}},
        "object": {"id": "http://www.example.com/tincan/activities/multipart", "objectType": "Activity",
                   "definition": {"name": {"en-US": "Multi Part Activity"},
                                  "description": {"en-US": "Multi Part Activity Description"}}},
        "attachments": [{
            "usageType": "http://example.com/attachment-usage/test",
            "display": {"en-US": "A test attachment"},
            "description": {"en-US": "A test attachment (description)"},
            "contentType": "text/plain; charset=ascii",
            "length": 27,
            "sha2": "495395e777cd98da653df9615d09c0fd6bb2f8d4788394cd53c56a3bfdcd848a"
        }]
    });
    assert_eq!(sha256_hex(b"here is a simple attachment"), statement["attachments"][0]["sha2"].as_str().unwrap());
    let parts = [
        Part {
            headers: vec!["Content-Type:application/json".to_owned()],
            content: serde_json::to_vec_pretty(&statement).unwrap(),
        },
        Part {
            headers: vec![
                "Content-Type:text/plain".to_owned(),
                "Content-Transfer-Encoding:binary".to_owned(),
                "X-Experience-API-Hash:495395e777cd98da653df9615d09c0fd6bb2f8d4788394cd53c56a3bfdcd848a".to_owned(),
            ],
            content: b"here is a simple attachment".to_vec(),
        },
    ];
    let mut body = b"\r\n".to_vec();
    body.extend(multipart_body(boundary, &parts));
    let (status, text) =
        send(&app, Method::POST, "/statements", &format!("multipart/mixed; boundary=\"{boundary}\""), body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let ids: Vec<String> = serde_json::from_str(&text).unwrap();
    let (_, got) = get_multipart(&app, &format!("statementId={}&attachments=true", ids[0])).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].content, b"here is a simple attachment");
}

on_both_backends!(multipart_without_attachments_is_accepted);
async fn multipart_without_attachments_is_accepted(app: TestApp) {
    let s = statement();
    let (status, text) = post_multipart(&app, multipart_body(BOUNDARY, &[json_part(&json!([s, statement()]))])).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let ids: Vec<String> = serde_json::from_str(&text).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(app.statement(&ids[0]).await["verb"], s["verb"]);
}

on_both_backends!(multipart_with_only_file_url_attachments_is_accepted);
async fn multipart_with_only_file_url_attachments_is_accepted(app: TestApp) {
    let id = uuid();
    let mut a = declare(TEXT_A, "text/plain", 1);
    a["fileUrl"] = json!("http://example.com/files/a.txt");
    let s = with_attachments(&id, vec![a]);
    let (status, text) = post_multipart(&app, multipart_body(BOUNDARY, &[json_part(&s)])).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(app.statement(&id).await["attachments"], s["attachments"]);
}

on_both_backends!(one_part_serves_an_attachment_shared_by_statements);
async fn one_part_serves_an_attachment_shared_by_statements(app: TestApp) {
    let (a, b) = (uuid(), uuid());
    let batch = json!([
        with_attachments(&a, vec![declare(TEXT_A, "text/plain", 1)]),
        with_attachments(&b, vec![declare(TEXT_A, "text/plain", 1)]),
    ]);
    let (status, text) = post_multipart(&app, request_body(&batch, &[(TEXT_A, "text/plain")])).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    for id in [&a, &b] {
        let (_, parts) = get_multipart(&app, &format!("statementId={id}&attachments=true")).await;
        assert_eq!(parts.len(), 2, "{id}");
        assert_eq!(parts[1].content, TEXT_A);
    }
}

// ---- Signed statements (Data 2.6) ----

const SIGNATURE_USAGE: &str = "http://adlnet.gov/expapi/attachments/signature";

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWS (compact serialization) with this header and payload; the signature
/// bytes are not checked by an LRS when the header carries no certificate.
fn jws(header: &Value, payload: &[u8]) -> Vec<u8> {
    let signature: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
    format!("{}.{}.{}", b64url(header.to_string().as_bytes()), b64url(payload), b64url(&signature)).into_bytes()
}

/// `s` with a signature attachment whose content is `signature`.
fn signed(s: &Value, signature: &[u8]) -> Value {
    let mut s = s.clone();
    s["attachments"] = json!([{
        "usageType": SIGNATURE_USAGE,
        "display": {"en-US": "Signature"},
        "contentType": "application/octet-stream",
        "length": signature.len(),
        "sha2": sha256_hex(signature)
    }]);
    s
}

/// A statement with an id, to be signed.
fn to_sign(id: &str) -> Value {
    let mut s = statement();
    s["id"] = json!(id);
    s
}

/// The statement as signed: without its signature attachment.
fn unsigned(s: &Value) -> Value {
    let mut original = s.clone();
    original.as_object_mut().unwrap().remove("attachments");
    original
}

/// POSTs `s` with `signature` as its only part.
async fn post_signed(app: &TestApp, s: &Value, signature: &[u8]) -> (StatusCode, String) {
    post_multipart(app, request_body(s, &[(signature, "application/octet-stream")])).await
}

on_both_backends!(well_formed_signed_statement_is_accepted);
async fn well_formed_signed_statement_is_accepted(app: TestApp) {
    let id = uuid();
    // The signature covers the statement before the signature was added.
    let original = to_sign(&id);
    let payload = serde_json::to_vec(&original).unwrap();
    let signature = jws(&json!({"alg": "RS256", "typ": "JWT"}), &payload);
    let s = signed(&original, &signature);
    assert_eq!(unsigned(&s), original);
    let (status, text) = post_signed(&app, &s, &signature).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (_, parts) = get_multipart(&app, &format!("statementId={id}&attachments=true")).await;
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].content, signature, "the JWS is returned as sent");
}

on_both_backends!(malformed_signatures_are_400);
async fn malformed_signatures_are_400(app: TestApp) {
    let id = uuid();
    let original = to_sign(&id);
    let payload = serde_json::to_vec(&original).unwrap();
    let mut other = original.clone();
    other["verb"]["id"] = json!("http://example.com/verbs/something-else");
    let other_payload = serde_json::to_vec(&other).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not a JWS at all", b"this is not a signature".to_vec()),
        ("JWS with two segments", format!("{}.{}", b64url(br#"{"alg":"RS256"}"#), b64url(&payload)).into_bytes()),
        (
            "JWS whose header is not JSON",
            format!("{}.{}.{}", b64url(b"alg=RS256"), b64url(&payload), b64url(b"sig")).into_bytes(),
        ),
        ("JWS whose payload is not JSON", jws(&json!({"alg": "RS256"}), b"not json")),
        ("JWS whose payload is another statement", jws(&json!({"alg": "RS256"}), &other_payload)),
        ("JWS with algorithm HS256", jws(&json!({"alg": "HS256"}), &payload)),
        ("JWS with algorithm none", jws(&json!({"alg": "none"}), &payload)),
    ];
    for (what, signature) in cases {
        let s = signed(&original, &signature);
        let (status, text) = post_signed(&app, &s, &signature).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {text}");
        assert_eq!(app.get_statements(&format!("statementId={id}")).await.0, StatusCode::NOT_FOUND, "{what}");
    }
}

/// A JWS over `original` signed with the test key, naming its certificate in
/// `x5c`; `tamper` flips a bit of the signature.
fn x5c_jws(original: &Value, alg: &str, tamper: bool) -> Vec<u8> {
    use base64::Engine;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("fixtures/signing-key.pem")).unwrap();
    let certificate = base64::engine::general_purpose::STANDARD.encode(include_bytes!("fixtures/signing-cert.der"));
    let header = json!({"alg": alg, "x5c": [certificate]});
    let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(&serde_json::to_vec(original).unwrap()));
    let mut signature = match alg {
        "RS256" => SigningKey::<sha2::Sha256>::new(key).sign(input.as_bytes()).to_vec(),
        _ => SigningKey::<sha2::Sha512>::new(key).sign(input.as_bytes()).to_vec(),
    };
    if tamper {
        signature[10] ^= 1;
    }
    format!("{input}.{}", b64url(&signature)).into_bytes()
}

on_both_backends!(signatures_with_a_certificate_are_verified);
async fn signatures_with_a_certificate_are_verified(app: TestApp) {
    for alg in ["RS256", "RS512"] {
        let original = to_sign(&uuid());
        let good = x5c_jws(&original, alg, false);
        let (status, text) = post_signed(&app, &signed(&original, &good), &good).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {text}");

        let id = uuid();
        let original = to_sign(&id);
        let bad = x5c_jws(&original, alg, true);
        let (status, text) = post_signed(&app, &signed(&original, &bad), &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{alg}: {text}");
        assert!(text.contains("does not verify"), "{text}");
        assert_eq!(app.get_statements(&format!("statementId={id}")).await.0, StatusCode::NOT_FOUND);
    }
}

// ---- Large content ----

/// Content of `len` bytes that no two offsets of a short window share.
fn large_content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

// Larger than the request limit (1 MiB in tests), the spool buffer (64 KiB)
// and one storage transaction (4 MiB): streamed in, stored in chunks,
// streamed out byte for byte with its length announced.
on_both_backends!(large_attachment_streams_in_and_out);
async fn large_attachment_streams_in_and_out(app: TestApp) {
    let content = large_content(5 * 1024 * 1024 + 123);
    let id = uuid();
    let s = with_attachments(&id, vec![declare(&content, "video/mp4", 1), declare(TEXT_A, "text/plain", 2)]);
    let body = request_body(&s, &[(&content, "video/mp4"), (TEXT_A, "text/plain")]);
    let (status, text) = post_multipart(&app, body).await;
    assert_eq!(status, StatusCode::OK, "{text}");

    let res = app.request(Method::GET, &format!("/statements?statementId={id}&attachments=true")).send().await.unwrap();
    let announced: usize = res.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let raw = res.bytes().await.unwrap();
    assert_eq!(announced, raw.len());
    let (_, parts) = get_multipart(&app, &format!("statementId={id}&attachments=true")).await;
    assert_eq!(parts.len(), 3);
    let big = parts.iter().find(|p| p.header("X-Experience-API-Hash") == Some(&sha256_hex(&content))).unwrap();
    assert_eq!(big.header("Content-Type"), Some("video/mp4"));
    assert!(big.content == content, "the content came back changed ({} bytes)", big.content.len());

    // Sent again with another statement, the stored content serves both.
    let again = uuid();
    let s = with_attachments(&again, vec![declare(&content, "video/mp4", 1)]);
    let (status, text) = post_multipart(&app, request_body(&s, &[(&content, "video/mp4")])).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (_, parts) = get_multipart(&app, &format!("statementId={again}&attachments=true")).await;
    assert!(parts[1].content == content);
}

async fn limited_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |args| args.max_attachment_bytes = 256 * 1024).await
}

/// One attachment beyond `max_attachment_bytes` is 413, and nothing of the
/// request is stored; content up to the limit is accepted.
async fn attachment_over_the_limit_is_413(app: TestApp) {
    let at_limit = large_content(256 * 1024);
    let over = large_content(8 * 1024 * 1024);
    let id = uuid();
    let s = with_attachments(&id, vec![declare(&over, "application/pdf", 1)]);
    let (status, text) = post_multipart(&app, request_body(&s, &[(&over, "application/pdf")])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    let error: Value = serde_json::from_str(&text).expect("a JSON error body");
    assert!(error["message"].as_str().unwrap().contains(&sha256_hex(&over)), "{error}");
    let (status, _) = app.get_statements(&format!("statementId={id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let s = with_attachments(&id, vec![declare(&at_limit, "application/pdf", 1)]);
    let (status, text) = post_multipart(&app, request_body(&s, &[(&at_limit, "application/pdf")])).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

mod attachment_over_the_limit {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        attachment_over_the_limit_is_413(limited_app(Backend::Sqlite).await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = limited_app(Backend::Postgres).await {
            attachment_over_the_limit_is_413(app).await;
        }
    }
}

// The statements part keeps to `max_body_bytes` (1 MiB in tests) even
// though the whole multipart body may be larger.
on_both_backends!(statements_part_over_the_body_limit_is_413);
async fn statements_part_over_the_body_limit_is_413(app: TestApp) {
    let id = uuid();
    let mut s = with_attachments(&id, vec![declare(TEXT_A, "text/plain", 1)]);
    s["result"] = json!({"response": "x".repeat(1024 * 1024)});
    let (status, text) = post_multipart(&app, request_body(&s, &[(TEXT_A, "text/plain")])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("statements part"), "{text}");
}
