//! 360Learning's API v2 as documented (`forwarders.md` §4): client-credential
//! tokens (JSON), the `360-api-version` header, bulk stats of one API-based
//! integration run as operations (queued, then running for `run_time`, then
//! completed with one result per row), at most three running per company,
//! and attempts per (course, user) created or updated as 360 describes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Behaviour, Recorded};

const MAX_ROWS: usize = 10_000;
const CONCURRENT_OPERATIONS: usize = 3;

/// One attempt of a user on a course.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: String,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub progress: f64,
    pub score: Option<f64>,
    pub result: Option<String>,
    pub time_spent: u64,
}

impl Attempt {
    fn completed(&self) -> bool {
        self.progress >= 100.0
    }
}

pub struct Operation {
    pub id: String,
    pub input: Vec<Value>,
    created: Instant,
    run_time: Duration,
    /// The statuses each poll was answered with.
    pub seen: Vec<&'static str>,
    pub results: Option<Vec<Value>>,
}

#[derive(Default)]
pub struct State {
    tokens: HashSet<String>,
    pub tokens_minted: usize,
    pub operations: Vec<Operation>,
    /// By (course externalId, user internal id).
    pub attempts: HashMap<(String, String), Vec<Attempt>>,
    next_id: u64,
}

impl State {
    fn next(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }
}

pub struct Learning360 {
    client: (String, String),
    integration: Mutex<String>,
    /// Users by mail: their internal id.
    users: HashMap<String, String>,
    /// External ids of the integration's courses.
    courses: HashSet<String>,
    /// How long an operation submitted from now on runs.
    pub run_time: Mutex<Duration>,
    pub state: Mutex<State>,
}

impl Learning360 {
    pub fn new(client: (&str, &str), integration: &str, users: &[(&str, &str)], courses: &[&str]) -> Learning360 {
        Learning360 {
            client: (client.0.to_owned(), client.1.to_owned()),
            integration: Mutex::new(integration.to_owned()),
            users: users.iter().map(|(mail, id)| (mail.to_string(), id.to_string())).collect(),
            courses: courses.iter().map(|c| c.to_string()).collect(),
            run_time: Mutex::new(Duration::from_millis(1500)),
            state: Mutex::default(),
        }
    }

    /// The company's integration is now `id` (the old one is gone).
    pub fn set_integration(&self, id: &str) {
        *self.integration.lock().unwrap() = id.to_owned();
    }

    /// Every token issued so far stops working (as when it expires).
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    /// `n` bulk operations of someone else in the company, running `for_how_long`.
    pub fn occupy(&self, n: usize, for_how_long: Duration) {
        let mut state = self.state.lock().unwrap();
        for _ in 0..n {
            let id = state.next("other-op");
            state.operations.push(Operation {
                id,
                input: Vec::new(),
                created: Instant::now(),
                run_time: for_how_long,
                seen: Vec::new(),
                results: None,
            });
        }
    }

    /// The attempts of `user` (internal id) on `course`, once every
    /// operation whose time is up has run.
    pub fn attempts(&self, course: &str, user: &str) -> Vec<Attempt> {
        let mut state = self.state.lock().unwrap();
        self.advance(&mut state);
        state.attempts.get(&(course.to_owned(), user.to_owned())).cloned().unwrap_or_default()
    }

    /// Whether every operation has run.
    pub fn idle(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        self.advance(&mut state);
        state.operations.iter().all(|o| o.results.is_some())
    }

    /// Runs the operations whose time is up, oldest first.
    fn advance(&self, state: &mut State) {
        let now = Instant::now();
        for i in 0..state.operations.len() {
            let op = &state.operations[i];
            if op.results.is_some() || now < op.created + op.run_time {
                continue;
            }
            let input = op.input.clone();
            let results = input.into_iter().map(|row| self.apply(state, row)).collect();
            state.operations[i].results = Some(results);
        }
    }

    /// One stats row: a new attempt if there is none, or if it began after
    /// every attempt's last activity; else the unfinished attempts are updated.
    fn apply(&self, state: &mut State, row: Value) -> Value {
        let error = |message: String| json!({"input": row.clone(), "status": "error", "errorMessage": message});
        let user_value = row["userIdentifier"]["value"].as_str().unwrap_or_default();
        let user = match row["userIdentifier"]["type"].as_str() {
            Some("mail") => self.users.get(user_value).cloned(),
            _ => self.users.values().find(|id| *id == user_value).cloned(),
        };
        let Some(user) = user else { return error(format!("User not found: {user_value}")) };
        let course = row["courseIdentifier"]["value"].as_str().unwrap_or_default().to_owned();
        if !self.courses.contains(&course) {
            return error(format!("Course not found: {course}"));
        }
        let at = |k: &str| row[k].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).unwrap().to_utc();
        let (first, last) = (at("firstActivityAt"), at("lastActivityAt"));
        let update = |a: &mut Attempt| {
            a.last = last;
            a.progress = row["progress"].as_f64().unwrap();
            a.score = row["score"].as_f64().or(a.score);
            a.result = row["result"].as_str().map(str::to_owned).or(a.result.take());
            a.time_spent = row["timeSpent"].as_u64().unwrap();
        };
        let id = state.next("attempt");
        let attempts = state.attempts.entry((course, user)).or_default();
        let newest = attempts.iter().map(|a| a.last).max();
        let resource = if newest.is_none_or(|newest| first > newest) || row["forceNew"] == json!(true) {
            let mut attempt = Attempt { id, first, last, progress: 0.0, score: None, result: None, time_spent: 0 };
            update(&mut attempt);
            attempts.push(attempt);
            attempts.last().unwrap().id.clone()
        } else {
            attempts.iter_mut().filter(|a| !a.completed()).for_each(update);
            attempts.last().unwrap().id.clone()
        };
        json!({"input": row, "status": "success", "resourceId": resource})
    }

    fn token(&self, body: &Value) -> HttpResponse {
        if body["grant_type"] != "client_credentials" {
            return HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type"}));
        }
        if body["client_id"].as_str() != Some(&self.client.0) || body["client_secret"].as_str() != Some(&self.client.1)
        {
            return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
        }
        let mut state = self.state.lock().unwrap();
        state.tokens_minted += 1;
        let token = format!("token-{}-{}", state.tokens_minted, uuid::Uuid::new_v4());
        state.tokens.insert(token.clone());
        HttpResponse::Ok().json(json!({"token_type": "Bearer", "access_token": token, "expires_in": 3600}))
    }

    fn stats(&self, integration: &str, body: &Value) -> HttpResponse {
        let code = |status: u16, code: &str, message: String| {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .json(json!({"error": {"code": code, "message": message}}))
        };
        if integration != *self.integration.lock().unwrap() {
            return code(404, "integrationNotFound", format!("no integration {integration}"));
        }
        let Some(input) = body["input"].as_array() else {
            return code(400, "invalidInput", "input must be an array".into());
        };
        if input.len() > MAX_ROWS {
            return code(400, "inputTooLong", format!("at most {MAX_ROWS} rows"));
        }
        for (i, row) in input.iter().enumerate() {
            if let Err(problem) = check_row(row) {
                return code(400, "invalidInput", format!("input[{i}]: {problem}"));
            }
        }
        let mut state = self.state.lock().unwrap();
        self.advance(&mut state);
        if state.operations.iter().filter(|o| o.results.is_none()).count() >= CONCURRENT_OPERATIONS {
            return code(429, "bulkOperationsConcurrencyLimitReached", "3 bulk operations are running".into());
        }
        let id = state.next("op");
        let run_time = *self.run_time.lock().unwrap();
        let operation = Operation {
            id: id.clone(),
            input: input.clone(),
            created: Instant::now(),
            run_time,
            seen: Vec::new(),
            results: None,
        };
        state.operations.push(operation);
        HttpResponse::Accepted().insert_header(("Location", format!("/api/v2/bulk/operations/{id}"))).finish()
    }

    fn operation(&self, id: &str, results: bool) -> HttpResponse {
        let mut state = self.state.lock().unwrap();
        self.advance(&mut state);
        let Some(op) = state.operations.iter_mut().find(|o| o.id == id) else {
            return HttpResponse::NotFound().json(json!({"error": {"code": "bulkOperationNotFound"}}));
        };
        if results {
            return match &op.results {
                Some(r) => HttpResponse::Ok().json(r),
                None => HttpResponse::BadRequest().json(json!({"error": {"code": "bulkOperationNotRun"}})),
            };
        }
        let status = match (&op.results, op.seen.is_empty()) {
            (Some(_), _) => "completed",
            (None, true) => "queued",
            (None, false) => "running",
        };
        op.seen.push(status);
        HttpResponse::Ok().json(json!({"_id": op.id, "status": status, "progress": {"index": 0}}))
    }
}

/// The documented constraints on a stats row.
fn check_row(row: &Value) -> Result<(), String> {
    let identifier = |k: &str, types: &[&str]| {
        let ok = row[k]["type"].as_str().is_some_and(|t| types.contains(&t))
            && row[k]["value"].as_str().is_some_and(|v| !v.is_empty());
        if ok { Ok(()) } else { Err(format!("{k} must be one of {types:?} with a value")) }
    };
    identifier("courseIdentifier", &["externalId", "internalId"])?;
    identifier("userIdentifier", &["mail", "internalId"])?;
    let in_range = |k: &str| row[k].as_f64().is_some_and(|p| (0.0..=100.0).contains(&p));
    if !in_range("progress") {
        return Err("progress must be 0-100".into());
    }
    if !row["score"].is_null() && !in_range("score") {
        return Err("score must be 0-100".into());
    }
    if row["timeSpent"].as_u64().is_none_or(|t| t < 1) {
        return Err("timeSpent must be an integer of at least 1 (ms)".into());
    }
    for k in ["firstActivityAt", "lastActivityAt"] {
        if row[k].as_str().is_none_or(|t| DateTime::parse_from_rfc3339(t).is_err()) {
            return Err(format!("{k} must be an ISO 8601 date"));
        }
    }
    if !(row["result"].is_null() || row["result"] == "success" || row["result"] == "failed") {
        return Err("result must be success or failed".into());
    }
    Ok(())
}

impl Behaviour for Learning360 {
    fn answer(&self, r: &Recorded) -> HttpResponse {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if r.method == "POST" && r.path == "/api/v2/oauth2/token" {
            return self.token(&body);
        }
        if r.header("360-api-version") != Some("v2.0") {
            return HttpResponse::BadRequest().json(json!({"error": {"code": "invalidApiVersion"}}));
        }
        let bearer = r.header("authorization").and_then(|a| a.strip_prefix("Bearer ")).unwrap_or_default();
        if !self.state.lock().unwrap().tokens.contains(bearer) {
            return HttpResponse::Unauthorized().json(json!({"error": "invalid_token"}));
        }
        let Some(rest) = r.path.strip_prefix("/api/v2/bulk/") else {
            return HttpResponse::NotFound().json(json!({"error": {"code": "notFound"}}));
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match (r.method.as_str(), parts.as_slice()) {
            ("POST", ["integrations", id, "stats"]) => self.stats(id, &body),
            ("GET", ["operations", id]) => self.operation(id, false),
            ("GET", ["operations", id, "results"]) => self.operation(id, true),
            _ => HttpResponse::NotFound().json(json!({"error": {"code": "notFound"}})),
        }
    }
}
