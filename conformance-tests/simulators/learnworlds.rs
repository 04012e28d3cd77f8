//! A LearnWorlds school's API v2 as documented (`forwarders.md` §2): client
//! credentials tokens (the `Lw-Client` header required even there), users
//! known by id or e-mail, enrollments, mark-complete and reset, Bearer +
//! `Lw-Client` on every call, and 30 API calls in any 10 seconds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::{Behaviour, Recorded};

pub const TOKEN_PATH: &str = "/admin/api/oauth2/access_token";
const API: &str = "/admin/api/v2/users/";
const LIMIT: usize = 30;
const WINDOW: Duration = Duration::from_secs(10);

/// A completion or a reset as the school recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub user: String,
    pub course: String,
    pub units: Vec<String>,
}

#[derive(Default)]
pub struct LwState {
    /// Tokens issued and still good.
    pub tokens: HashSet<String>,
    pub minted: usize,
    /// (user id, course id).
    pub enrollments: HashSet<(String, String)>,
    pub enrollment_bodies: Vec<Value>,
    pub completions: Vec<Progress>,
    pub resets: Vec<Progress>,
}

pub struct LearnWorlds {
    client_id: String,
    client_secret: String,
    /// User ids with their e-mails.
    users: HashMap<String, String>,
    courses: HashSet<String>,
    pub state: Mutex<LwState>,
    /// When the API calls of the last `WINDOW` came.
    calls: Mutex<VecDeque<Instant>>,
}

fn refused(status: u16, code: u16, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"errors": [{"code": code, "context": "", "message": message}], "success": false}))
}

fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(json!({"error": message}))
}

impl LearnWorlds {
    /// A school with these users (id, e-mail) and courses.
    pub fn new(client_id: &str, client_secret: &str, users: &[(&str, &str)], courses: &[&str]) -> LearnWorlds {
        LearnWorlds {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            users: users.iter().map(|(id, email)| (id.to_string(), email.to_string())).collect(),
            courses: courses.iter().map(|c| c.to_string()).collect(),
            state: Mutex::default(),
            calls: Mutex::default(),
        }
    }

    /// Enrolls `user` (an id) in `course`, as an administrator would.
    pub fn enroll(&self, user: &str, course: &str) {
        self.state.lock().unwrap().enrollments.insert((user.into(), course.into()));
    }

    /// Every token issued so far stops working (revoked in the school).
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    pub fn completions(&self) -> Vec<Progress> {
        self.state.lock().unwrap().completions.clone()
    }

    fn token(&self, r: &Recorded) -> HttpResponse {
        if r.header("lw-client") != Some(self.client_id.as_str()) {
            return refused(400, 400, "Missing client_id or client cannot be found.");
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if body["grant_type"] != "client_credentials" {
            return refused(400, 400, "The authorization grant type is not supported.");
        }
        if body["client_id"] != self.client_id.as_str() || body["client_secret"] != self.client_secret.as_str() {
            return refused(401, 401, "Client authentication failed.");
        }
        let mut state = self.state.lock().unwrap();
        state.minted += 1;
        let token = format!("lw-token-{}-{}", state.minted, uuid::Uuid::new_v4());
        state.tokens.insert(token.clone());
        HttpResponse::Ok().json(json!({
            "tokenData": {"access_token": token, "token_type": "Bearer", "expires_in": 8000}, "success": true
        }))
    }

    /// Whether one more API call fits in the window (and counts it).
    fn within_limit(&self) -> bool {
        let mut calls = self.calls.lock().unwrap();
        let now = Instant::now();
        while calls.front().is_some_and(|at| now - *at >= WINDOW) {
            calls.pop_front();
        }
        calls.push_back(now);
        calls.len() <= LIMIT
    }

    fn authorized(&self, r: &Recorded) -> bool {
        let token = r.header("authorization").and_then(|a| a.strip_prefix("Bearer "));
        r.header("lw-client") == Some(self.client_id.as_str())
            && token.is_some_and(|t| self.state.lock().unwrap().tokens.contains(t))
    }

    /// The id of the user a path names by id or e-mail.
    fn user(&self, segment: &str) -> Option<String> {
        let named = decode(segment)?;
        if self.users.contains_key(&named) {
            return Some(named);
        }
        self.users.iter().find(|(_, email)| email.eq_ignore_ascii_case(&named)).map(|(id, _)| id.clone())
    }

    fn enrollment(&self, user: String, body: &Value) -> HttpResponse {
        let (Some(product), Some(kind), Some(_)) =
            (body["productId"].as_str(), body["productType"].as_str(), body["price"].as_f64())
        else {
            return error(422, "productId, productType and price are required");
        };
        if kind != "course" || !self.courses.contains(product) {
            return error(404, "Product not found");
        }
        let mut state = self.state.lock().unwrap();
        state.enrollment_bodies.push(body.clone());
        state.enrollments.insert((user, product.to_owned()));
        HttpResponse::Ok().json(json!({"success": true}))
    }

    fn progress(&self, user: String, course: String, action: &str, body: &Value) -> HttpResponse {
        if !self.courses.contains(&course) {
            return error(404, "Course not found");
        }
        let Some(units) = body["units"].as_array() else { return error(422, "units is required") };
        // As the school does: a unit id must name a learning activity, and
        // an empty one names none.
        let units: Option<Vec<String>> =
            units.iter().map(|u| u.as_str().filter(|u| !u.is_empty()).map(str::to_owned)).collect();
        let Some(units) = units else { return error(422, "Invalid learning activity id(s)") };
        let mut state = self.state.lock().unwrap();
        let progress = Progress { user: user.clone(), course: course.clone(), units };
        match action {
            "complete" => {
                if !body["send_course_complete_email"].is_boolean() {
                    return error(422, "send_course_complete_email is required");
                }
                if !state.enrollments.contains(&(user, course)) {
                    return refused(400, 400, "The user is not enrolled in this course.");
                }
                state.completions.push(progress);
            }
            _ => state.resets.push(progress),
        }
        HttpResponse::Ok().json(json!({"async": false, "job_id": ""}))
    }
}

impl Behaviour for LearnWorlds {
    fn answer(&self, r: &Recorded) -> HttpResponse {
        if r.method == "POST" && r.path == TOKEN_PATH {
            return self.token(r);
        }
        if !self.within_limit() {
            return error(429, "Too many requests");
        }
        if !self.authorized(r) {
            return refused(401, 401, "Unauthenticated.");
        }
        let Some(rest) = r.path.strip_prefix(API).filter(|_| r.method == "POST") else {
            return error(404, "Not found");
        };
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let parts: Vec<&str> = rest.split('/').collect();
        let Some(user) = self.user(parts[0]) else { return error(404, "User not found") };
        match parts[1..] {
            ["enrollment"] => self.enrollment(user, &body),
            ["courses", course, action @ ("complete" | "reset")] => match decode(course) {
                Some(course) => self.progress(user, course, action, &body),
                None => error(404, "Course not found"),
            },
            _ => error(404, "Not found"),
        }
    }
}

/// A percent-encoded path segment, decoded.
fn decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
