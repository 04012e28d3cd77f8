//! The OpenAPI description of the endpoints beyond xAPI (src/http/openapi.json,
//! served at `/xapi/extensions/openapi.json`) held to the server both ways:
//! every operation it documents is served, and every route outside the xAPI
//! resources that the source registers is documented.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use xlrs::store::identities::{self, Source};
use xlrs::store::outbox::Status;

use crate::admin::base;
use crate::forwarding::{Forwarding, LRS_SECRETS, lrs_target, with_verb};
use crate::helpers::*;
use crate::on_both_backends;
use crate::simulators::Simulator;
use crate::simulators::lrs::Lrs;

const DOCUMENT: &str = include_str!("../src/http/openapi.json");
const DOCUMENT_PATH: &str = "/xapi/extensions/openapi.json";
/// The operations an OpenAPI path item can hold, in the order they are
/// called (a PUT before a DELETE of the same resource).
const METHODS: [&str; 8] = ["get", "head", "put", "post", "patch", "delete", "options", "trace"];
/// The forwarding target the app under test is configured with; it stands
/// for every `{target}` of the document.
const TARGET: &str = "backup";

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("src/http/openapi.json is JSON")
}

/// `(path, method, operation)` for every operation of the document.
fn operations(doc: &Value) -> Vec<(String, &'static str, Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                out.push((path.clone(), method, operation.clone()));
            }
        }
    }
    out
}

/// Follows a `$ref` inside the document (a parameter or a request body may be one).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            doc.pointer(reference.trim_start_matches('#')).unwrap_or_else(|| panic!("unresolved {reference}"))
        }
        None => value,
    }
}

fn parameters<'a>(doc: &'a Value, operation: &'a Value) -> Vec<&'a Value> {
    let list = operation["parameters"].as_array().map(Vec::as_slice).unwrap_or_default();
    list.iter().map(|p| resolve(doc, p)).collect()
}

/// A key as a JSON pointer writes it.
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Every `$ref` anywhere under `value`, with where it is.
fn references(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref"
                    && let Some(reference) = child.as_str()
                {
                    out.push((at.to_owned(), reference.to_owned()));
                }
                references(child, &format!("{at}/{}", pointer_token(key)), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                references(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// What is wrong with the document as an OpenAPI 3.1 description of ours.
fn document_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let version = doc["openapi"].as_str().unwrap_or_default();
    if !version.starts_with("3.1.") {
        problems.push(format!("openapi is '{version}', not 3.1.x"));
    }
    for field in ["title", "version"] {
        if !doc["info"][field].is_string() {
            problems.push(format!("info.{field} is missing"));
        }
    }
    let tags: HashSet<&str> = doc["tags"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    let schemes = doc["components"]["securitySchemes"].as_object();
    let mut operation_ids = HashSet::new();
    let operations = operations(doc);
    if operations.is_empty() {
        problems.push("no operations".into());
    }
    for (path, method, operation) in &operations {
        let at = format!("{} {path}", method.to_uppercase());
        match operation["operationId"].as_str().filter(|id| !id.is_empty()) {
            None => problems.push(format!("{at} has no operationId")),
            Some(id) if !operation_ids.insert(id.to_owned()) => {
                problems.push(format!("{at}: operationId {id} is used twice"))
            }
            Some(_) => {}
        }
        if !operation["summary"].is_string() {
            problems.push(format!("{at} has no summary"));
        }
        let responses = operation["responses"].as_object().filter(|r| !r.is_empty());
        match responses {
            None => problems.push(format!("{at} has no responses")),
            Some(responses) => {
                for (status, response) in responses {
                    let is_status = status.len() == 3 && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s));
                    if !is_status {
                        problems.push(format!("{at}: response '{status}' is not an HTTP status"));
                    }
                    if !resolve(doc, response)["description"].is_string() {
                        problems.push(format!("{at}: response {status} has no description"));
                    }
                }
            }
        }
        let operation_tags = operation["tags"].as_array().filter(|t| !t.is_empty());
        match operation_tags {
            None => problems.push(format!("{at} has no tags")),
            Some(list) => {
                for tag in list.iter().filter_map(Value::as_str).filter(|t| !tags.contains(t)) {
                    problems.push(format!("{at}: tag '{tag}' is not declared"));
                }
            }
        }
        // Stated on each operation: whether it asks for credentials is what a
        // client must know first.
        match operation["security"].as_array() {
            None => problems.push(format!("{at} does not state its security")),
            Some(requirements) => {
                for scheme in requirements.iter().filter_map(Value::as_object).flat_map(|r| r.keys()) {
                    if !schemes.is_some_and(|s| s.contains_key(scheme)) {
                        problems.push(format!("{at}: security scheme '{scheme}' is not declared"));
                    }
                }
            }
        }
        let in_template: BTreeSet<String> = path_parameters(path).into_iter().collect();
        let declared: BTreeSet<String> = parameters(doc, operation)
            .into_iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                if p["required"] != true {
                    problems.push(format!("{at}: path parameter {} is not required", p["name"]));
                }
                p["name"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        if in_template != declared {
            problems.push(format!("{at}: path parameters {declared:?}, but the path has {in_template:?}"));
        }
    }
    examples_problems(doc, doc, "#", &mut problems);
    let mut refs = Vec::new();
    references(doc, "#", &mut refs);
    for (at, reference) in refs {
        let found = reference.strip_prefix('#').is_some_and(|pointer| doc.pointer(pointer).is_some());
        if !found {
            problems.push(format!("{at}: $ref {reference} does not resolve inside the document"));
        }
    }
    problems
}

/// Examples that their schema refuses: a parameter's or a media type's
/// against its `schema`, a schema's own (`example`, `examples`) against it.
fn examples_problems(doc: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let examples = map
                .get("example")
                .into_iter()
                .chain(map.get("examples").and_then(Value::as_array).into_iter().flatten());
            let schema = map.get("schema").unwrap_or(value);
            for example in examples {
                for error in schema_errors(doc, schema, example) {
                    problems.push(format!("{at}: the example {example} breaks its schema: {error}"));
                }
            }
            for (key, child) in map {
                examples_problems(doc, child, &format!("{at}/{}", pointer_token(key)), problems);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                examples_problems(doc, child, &format!("{at}/{i}"), problems);
            }
        }
        _ => {}
    }
}

/// The `{name}`s of a path template.
fn path_parameters(path: &str) -> Vec<String> {
    path.split('{').skip(1).filter_map(|rest| rest.split_once('}')).map(|(name, _)| name.to_owned()).collect()
}

on_both_backends!(the_served_description_is_the_file_and_holds_together);
async fn the_served_description_is_the_file_and_holds_together(app: TestApp) {
    let url = format!("{}{DOCUMENT_PATH}", base(&app));
    // No credential and no version header: it is public, and not xAPI.
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert!(header("content-type").unwrap_or_default().starts_with("application/json"), "{:?}", res.headers());
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    let etag = header("etag").expect("an ETag");
    assert_eq!(res.text().await.unwrap(), DOCUMENT, "the server serves the file it was built with");

    let again = app.client.get(&url).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    let other = app.client.get(&url).header("If-None-Match", "\"another\"").send().await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);

    let doc = document();
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"), "info.version is the package's");
    let problems = document_problems(&doc);
    assert!(problems.is_empty(), "src/http/openapi.json:\n{}", problems.join("\n"));
}

/// The documented request for an operation: path parameters from their
/// examples (`{target}`: the app's target), required query parameters from
/// theirs, the body from the request body's example.
fn documented_request(
    app: &TestApp,
    doc: &Value,
    path: &str,
    method: &str,
    operation: &Value,
) -> (Method, String, Option<Value>) {
    let mut url = path.to_owned();
    let mut query = Vec::new();
    for parameter in parameters(doc, operation) {
        let name = parameter["name"].as_str().unwrap_or_default();
        let example = || -> String {
            let example = parameter.get("example").or_else(|| parameter["schema"].get("example"));
            match example {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => panic!("{method} {path}: give parameter '{name}' an example to call it with"),
            }
        };
        match parameter["in"].as_str() {
            Some("path") => {
                let value = if name == "target" { TARGET.to_owned() } else { example() };
                url = url.replace(&format!("{{{name}}}"), &enc(&value));
            }
            Some("query") if parameter["required"] == true => query.push(format!("{name}={}", enc(&example()))),
            _ => {}
        }
    }
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let body = operation.get("requestBody").map(|b| resolve(doc, b)).and_then(|b| {
        let json = &b["content"]["application/json"];
        let example = json.get("example").or_else(|| json["schema"].get("example")).cloned();
        if b["required"] == true && example.is_none() {
            panic!("{method} {path}: give the request body an example to call it with");
        }
        example
    });
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    (method, format!("{}{url}", base(app)), body)
}

/// Whether the operation asks for a credential with the scope `all`.
fn needs_operator(operation: &Value) -> bool {
    let requirements = operation["security"].as_array().into_iter().flatten();
    requirements.filter_map(|r| r["basicAuth"].as_array()).any(|roles| roles.iter().any(|role| role == "all"))
}

/// What an operation answered; `json` when its body is JSON (others are not
/// read: a stream's would not end).
struct Answer {
    status: StatusCode,
    json: Option<Value>,
}

impl Answer {
    fn message(&self) -> &str {
        self.json.as_ref().and_then(|b| b["message"].as_str()).unwrap_or_default()
    }
}

async fn answer(request: RequestBuilder) -> Answer {
    let res = request.send().await.expect("request");
    let status = res.status();
    let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Answer { status, json: None };
    }
    let json = res.json().await.expect("a JSON body, as its content type says");
    Answer { status, json: Some(json) }
}

/// How `instance` breaks `schema`, a schema of the document: OpenAPI 3.1
/// schemas are JSON Schema 2020-12, their `$ref`s pointing into the
/// document's components.
fn schema_errors(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    let mut schema = schema.clone();
    schema["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::options().build(&schema).expect("a schema of the document");
    validator.iter_errors(instance).map(|e| format!("{} at '{}'", e, e.instance_path())).collect()
}

/// Whether `answer` is what the operation documents for its status.
fn undocumented_answer(doc: &Value, operation: &Value, answer: &Answer) -> Option<String> {
    let status = answer.status.as_str();
    let Some(response) = operation["responses"].get(status).map(|r| resolve(doc, r)) else {
        let documented: Vec<&String> = operation["responses"].as_object().into_iter().flat_map(|r| r.keys()).collect();
        return Some(format!("{} {}, not a documented status ({documented:?})", answer.status, answer.message()));
    };
    let json = answer.json.as_ref()?;
    let Some(schema) = response["content"]["application/json"].get("schema") else {
        return Some(format!("{}: a JSON body the response does not document: {json}", answer.status));
    };
    let errors = schema_errors(doc, schema, json);
    (!errors.is_empty())
        .then(|| format!("{}: the body {json} is not as documented: {}", answer.status, errors.join("; ")))
}

// On an app with a forwarding target, for the admin operations to act on
// (`forwarding_test!`: the forwarders' tests' form of `on_both_backends!`).
forwarding_test!(every_documented_operation_is_served);
async fn every_documented_operation_is_served(backend: Backend) {
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    let Some(f) = Forwarding::start(backend, &lrs_target(TARGET, &sim.url, ""), LRS_SECRETS).await else { return };
    let (reader, reader_secret) = {
        let (credential, secret) =
            xlrs::store::credentials::create(&f.db, "reader", "statements/read", None).await.unwrap();
        (credential.key, secret)
    };
    // Something in every list the operations answer with, so their bodies
    // are checked beyond empty lists: a statement the target refuses (a
    // dead outbox row, a progress row) and a remembered lookup (one that
    // found the learner: a retry forgets the others).
    let refused = "http://example.com/verbs/refused";
    sim.behaviour.refused_verbs.lock().unwrap().push(refused.into());
    f.app.store(&with_verb(refused)).await;
    assert_eq!(f.settled().await, vec![(TARGET.to_owned(), Status::Dead, 1)]);
    let now = chrono::Utc::now().timestamp_micros();
    let lookup = "mbox:mailto:cy@example.com";
    identities::put(&f.db, TARGET, lookup, Some("u-7"), Source::Lookup, Some(now + 3_600_000_000), now).await.unwrap();

    let doc = document();
    let mut failures = Vec::new();
    for (path, method, operation) in operations(&doc) {
        let (verb, url, body) = documented_request(&f.app, &doc, &path, method, &operation);
        let at = format!("{verb} {url}");
        let request = |credential: Option<(&str, &str)>| {
            let mut request = f.app.client.request(verb.clone(), &url);
            if let Some((key, secret)) = credential {
                request = request.basic_auth(key, Some(secret));
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            request
        };
        let public = operation["security"].as_array().is_some_and(Vec::is_empty);
        let anonymous = answer(request(None)).await;
        if public == (anonymous.status == StatusCode::UNAUTHORIZED) {
            failures.push(format!("{at} without credentials: {} (documented public: {public})", anonymous.status));
        }
        let mut answers = vec![anonymous];
        if needs_operator(&operation) {
            let reading = answer(request(Some((&reader, &reader_secret)))).await;
            if reading.status != StatusCode::FORBIDDEN {
                failures.push(format!("{at} without the scope all: {} {}, not 403", reading.status, reading.message()));
            }
            answers.push(reading);
        }
        let operator = answer(request(Some((ADMIN_KEY, ADMIN_SECRET)))).await;
        let unrouted = operator.status == StatusCode::METHOD_NOT_ALLOWED
            || (operator.status == StatusCode::NOT_FOUND && operator.message() == xlrs::http::NO_SUCH_RESOURCE);
        if unrouted {
            failures.push(format!(
                "{at}: {} {}: the server has no such operation",
                operator.status,
                operator.message()
            ));
            continue;
        }
        answers.push(operator);
        failures.extend(
            answers.iter().filter_map(|a| undocumented_answer(&doc, &operation, a)).map(|f| format!("{at}: {f}")),
        );
    }

    // Requests are counted under their route's pattern, which is written as
    // OpenAPI writes paths: each documented path must be one.
    let metrics = f.app.client.get(format!("{}/metrics", base(&f.app))).send().await.unwrap().text().await.unwrap();
    let routes: HashSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("xlrs_http_requests_total{"))
        .filter_map(|labels| labels.split("route=\"").nth(1)?.split('"').next())
        .collect();
    for path in doc["paths"].as_object().unwrap().keys() {
        if !routes.contains(path.as_str()) {
            failures.push(format!("{path} is no route of the server (routes requested: {routes:?})"));
        }
    }
    assert!(failures.is_empty(), "the document and the server differ:\n{}", failures.join("\n"));
}

// Every route outside the xAPI resources must be documented. actix gives no
// list of an app's routes, so they are read from where they are registered:
// the `configure` functions of src/http. Forms the reader does not know fail
// the test rather than go unseen.

#[test]
fn every_route_outside_xapi_is_documented() {
    let registered = non_xapi_routes();
    assert!(
        registered.contains(&("GET".to_owned(), "/admin/forwarders/{target}/outbox".to_owned()))
            && registered.contains(&("GET".to_owned(), DOCUMENT_PATH.to_owned())),
        "the route reader found {registered:?}"
    );
    let doc = document();
    let documented: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(path, method, _)| (method.to_uppercase(), path)).collect();
    let missing: Vec<String> =
        registered.difference(&documented).map(|(method, path)| format!("{method} {path}")).collect();
    assert!(missing.is_empty(), "routes src/http/openapi.json does not describe:\n{}", missing.join("\n"));
}

fn http_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http")
}

/// `(METHOD, path)` of every route registered outside `/xapi`'s own
/// resources: from src/http/mod.rs, every module configured outside the
/// `/xapi` scope or in a scope within it (`/xapi/extensions`).
fn non_xapi_routes() -> BTreeSet<Route> {
    let outside_xapi = |(_, path): &Route| !path.starts_with("/xapi") || path.starts_with("/xapi/extensions/");
    let (mut routes, modules) = routes_in_module("mod", "");
    routes.retain(outside_xapi);
    for (module, prefix) in modules.into_iter().filter(|(_, prefix)| prefix != "/xapi") {
        let (found, nested) = routes_in_module(&module, &prefix);
        assert!(nested.is_empty(), "{module}.rs configures other modules: {nested:?}");
        routes.extend(found);
    }
    routes
}

/// `(METHOD, path)`, e.g. `("GET", "/admin/forwarders/{target}/outbox")`.
type Route = (String, String);
/// A module configured by another, and the path prefix it is configured under.
type Configured = (String, String);

/// One registration in a `configure` function, where it starts and ends.
#[derive(Debug)]
struct Registration {
    kind: Kind,
    start: usize,
    end: usize,
}

#[derive(Debug)]
enum Kind {
    Scope(String),
    Resource(String),
    /// `.route("path", web::get()…)`.
    Route(String, String),
    /// `.route(web::get()…)` on a resource.
    ResourceRoute(String),
    /// `.configure(module::configure)`.
    Configure(String),
}

/// The routes `src/http/<module>.rs` registers under `prefix`, and the
/// modules it configures with their prefixes.
fn routes_in_module(module: &str, prefix: &str) -> (BTreeSet<Route>, Vec<Configured>) {
    let file = http_source().join(format!("{module}.rs"));
    let source = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    for attribute in ["#[get(", "#[post(", "#[put(", "#[delete(", "#[patch(", "#[route("] {
        assert!(!source.contains(attribute), "{module}.rs: routes by {attribute}…)] are not read; use configure");
    }
    let code = code_mask(&source);
    let body = configure_body(&source, &code).unwrap_or_else(|| panic!("{module}.rs has no fn configure"));
    let registrations = registrations(&source, &code, body.clone(), module);
    let prefix_at = |at: usize| -> String {
        let scopes = registrations.iter().filter(|r| r.start < at && at < r.end);
        let scopes = scopes.filter_map(|r| if let Kind::Scope(p) = &r.kind { Some(p.as_str()) } else { None });
        format!("{prefix}{}", scopes.collect::<String>())
    };
    let mut routes = BTreeSet::new();
    let mut modules = Vec::new();
    for r in &registrations {
        match &r.kind {
            Kind::Route(path, method) => {
                routes.insert((method.clone(), format!("{}{path}", prefix_at(r.start))));
            }
            Kind::ResourceRoute(method) => {
                let resource = registrations
                    .iter()
                    .filter(|o| o.start < r.start && r.start < o.end)
                    .filter_map(|o| if let Kind::Resource(p) = &o.kind { Some((o.start, p)) } else { None })
                    .max();
                let (_, path) = resource.unwrap_or_else(|| panic!("{module}.rs: .route(web::…) outside a resource"));
                routes.insert((method.clone(), format!("{}{path}", prefix_at(r.start))));
            }
            Kind::Configure(name) => modules.push((name.clone(), prefix_at(r.start))),
            Kind::Scope(_) | Kind::Resource(_) => {}
        }
    }
    (routes, modules)
}

/// For each byte of `source`, whether it is code (not in a string, a
/// character literal or a comment), so brackets in text are not counted.
fn code_mask(source: &str) -> Vec<bool> {
    let bytes = source.as_bytes();
    let mut code = vec![true; bytes.len()];
    let mut i = 0;
    while i < bytes.len() {
        let Some(rest) = source.get(i..) else {
            i += 1;
            continue;
        };
        let skip = if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].bytes().take_while(|b| *b == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let open = 2 + hashes;
            rest[open..].find(&close).map_or(rest.len(), |end| open + end + close.len())
        } else if rest.starts_with('"') {
            let mut end = 1;
            while end < rest.len() && rest.as_bytes()[end] != b'"' {
                end += if rest.as_bytes()[end] == b'\\' { 2 } else { 1 };
            }
            end + 1
        } else if rest.starts_with("'\\") || (rest.len() > 2 && rest.as_bytes()[2] == b'\'' && rest.starts_with('\'')) {
            rest[1..].find('\'').map_or(1, |end| end + 2)
        } else {
            0
        };
        let skip = skip.min(bytes.len() - i);
        if skip == 0 {
            i += 1;
        } else {
            code[i..i + skip].iter_mut().for_each(|c| *c = false);
            i += skip;
        }
    }
    code
}

/// The byte range inside the braces of `fn configure`.
fn configure_body(source: &str, code: &[bool]) -> Option<std::ops::Range<usize>> {
    let start = source.find("fn configure(")?;
    let open = start + source[start..].find('{')?;
    let mut depth = 0;
    for (i, b) in source.bytes().enumerate().skip(open) {
        match b {
            b'{' if code[i] => depth += 1,
            b'}' if code[i] => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + 1..i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Where the expression starting at `start` ends: at a `,` or `;` at its
/// own bracket depth, or at the bracket closing around it; so a scope or
/// resource ends after the last call chained on it.
fn expression_end(source: &str, code: &[bool], start: usize, limit: usize) -> usize {
    let mut depth = 0i32;
    for (i, b) in source.bytes().enumerate().take(limit).skip(start) {
        if !code[i] {
            continue;
        }
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth < 0 {
                    return i;
                }
            }
            b',' | b';' if depth == 0 => return i,
            _ => {}
        }
    }
    limit
}

fn registrations(source: &str, code: &[bool], body: std::ops::Range<usize>, module: &str) -> Vec<Registration> {
    let path = r#"(?:"([^"]*)"|([A-Z][A-Z0-9_]*))"#;
    let scope = Regex::new(&format!(r"web::scope\(\s*{path}\s*\)")).unwrap();
    let resource = Regex::new(&format!(r"web::resource\(\s*{path}\s*\)")).unwrap();
    let route = Regex::new(&format!(r"\.route\(\s*{path}\s*,\s*web::(get|head|post|put|patch|delete)\(\)")).unwrap();
    let resource_route = Regex::new(r"\.route\(\s*web::(get|head|post|put|patch|delete)\(\)").unwrap();
    let configure = Regex::new(r"\.configure\(\s*(\w+)::configure\s*\)").unwrap();
    let constant = |name: &str| -> String {
        let definition = Regex::new(&format!(r#"const {name}: &str = "([^"]*)";"#)).unwrap();
        let found = definition.captures(source).map(|c| c[1].to_owned());
        found.unwrap_or_else(|| panic!("{module}.rs: the path {name} is no `const {name}: &str = \"…\"` of the file"))
    };
    let path_of = |c: &regex::Captures| c.get(1).map_or_else(|| constant(&c[2]), |m| m.as_str().to_owned());
    let text = &source[body.clone()];
    let mut out = Vec::new();
    let mut add = |kind: Kind, start: usize| {
        let start = body.start + start;
        if code[start] {
            out.push(Registration { kind, start, end: expression_end(source, code, start, body.end) });
        }
    };
    for c in scope.captures_iter(text) {
        add(Kind::Scope(path_of(&c)), c.get(0).unwrap().start());
    }
    for c in resource.captures_iter(text) {
        add(Kind::Resource(path_of(&c)), c.get(0).unwrap().start());
    }
    for c in route.captures_iter(text) {
        add(Kind::Route(path_of(&c), c[3].to_uppercase()), c.get(0).unwrap().start());
    }
    for c in resource_route.captures_iter(text) {
        add(Kind::ResourceRoute(c[1].to_uppercase()), c.get(0).unwrap().start());
    }
    for c in configure.captures_iter(text) {
        add(Kind::Configure(c[1].to_owned()), c.get(0).unwrap().start());
    }
    // Every registration form in the function must have been read, and
    // forms without a reader must not be there.
    for form in ["web::scope(", "web::resource(", ".route(", ".configure(", "web::route(", "web::service("] {
        let seen = text.match_indices(form).filter(|(i, _)| code[body.start + i]).count();
        let read = out
            .iter()
            .filter(|r| {
                matches!(
                    (&r.kind, form),
                    (Kind::Scope(_), "web::scope(")
                        | (Kind::Resource(_), "web::resource(")
                        | (Kind::Route(..) | Kind::ResourceRoute(_), ".route(")
                        | (Kind::Configure(_), ".configure(")
                )
            })
            .count();
        assert_eq!(seen, read, "{module}.rs: a registration by {form}…) that the route reader cannot read");
    }
    // A handler is reached only through a method's route (`web::get().to(…)`)
    // or is a fallback answering 404/405: `resource.to(…)` (every method) or a
    // default service with a handler of its own would serve unread routes.
    let in_code = |re: &Regex| re.find_iter(text).filter(|m| code[body.start + m.start()]).count();
    let handlers = in_code(&Regex::new(r"\.to\(").unwrap());
    let method_handlers = in_code(&Regex::new(r"web::(get|head|post|put|patch|delete)\(\)\s*\.to\(").unwrap());
    assert_eq!(
        handlers, method_handlers,
        "{module}.rs: a handler not on a method's route: the route reader cannot read it"
    );
    let defaults = in_code(&Regex::new(r"\.default_service\(").unwrap());
    let fallbacks = in_code(
        &Regex::new(r"\.default_service\(\s*web::to\(\s*(super::)?(not_found|method_not_allowed)\s*\)").unwrap(),
    );
    assert_eq!(defaults, fallbacks, "{module}.rs: a default service that is not the 404/405 fallback");
    out
}
