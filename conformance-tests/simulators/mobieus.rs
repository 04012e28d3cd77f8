//! mobieusCore's Learn surface as documented (`forwarders.md` §5): a bearer
//! API key, `POST /api/v1/learn/enrollments` honouring `Idempotency-Key`
//! (the same key answers the first answer again, no second enrollment),
//! `GET /api/v1/learn/enrollments?course_id=&user_id=`, the `{data, next_cursor,
//! request_id}` envelope, and `{"error": {code, message, request_id}}`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::{Behaviour, Recorded};

const ENROLLMENTS: &str = "/api/v1/learn/enrollments";
const COURSES: &str = "/api/v1/learn/courses";

#[derive(Default)]
pub struct MobieusState {
    /// (user id, course id) of each enrollment made.
    pub enrollments: Vec<(i64, i64)>,
    /// Answers by idempotency key.
    answers: HashMap<String, Value>,
    /// The next enrollment is made but its answer is lost (503).
    pub lose_next_answer: bool,
}

pub struct Mobieus {
    key: String,
    users: HashSet<i64>,
    courses: HashSet<i64>,
    /// Every call is refused as on a Starter plan.
    pub plan_gated: Mutex<bool>,
    pub state: Mutex<MobieusState>,
}

impl Mobieus {
    pub fn new(key: &str, users: &[i64], courses: &[i64]) -> Mobieus {
        Mobieus {
            key: format!("Bearer {key}"),
            users: users.iter().copied().collect(),
            courses: courses.iter().copied().collect(),
            plan_gated: Mutex::new(false),
            state: Mutex::default(),
        }
    }

    pub fn enrollments(&self) -> Vec<(i64, i64)> {
        self.state.lock().unwrap().enrollments.clone()
    }

    fn enroll(&self, r: &Recorded) -> HttpResponse {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let mut state = self.state.lock().unwrap();
        if let Some(answer) = r.header("idempotency-key").and_then(|k| state.answers.get(k)) {
            return HttpResponse::Created().json(answer);
        }
        let (Some(user), Some(course)) = (body["user_id"].as_i64(), body["course_id"].as_i64()) else {
            return error(400, "missing_field", "user_id and course_id are required.");
        };
        if !self.courses.contains(&course) {
            return error(404, "course_not_found", "Course not found.");
        }
        if !self.users.contains(&user) {
            return error(404, "user_not_found", "User not found.");
        }
        state.enrollments.push((user, course));
        let id = state.enrollments.len();
        let answer = json!({"data": {"id": id, "user_id": user, "course_id": course, "status": "active"},
                            "next_cursor": null, "request_id": format!("req_{id}")});
        if let Some(key) = r.header("idempotency-key") {
            state.answers.insert(key.to_owned(), answer.clone());
        }
        if std::mem::take(&mut state.lose_next_answer) {
            return error(503, "unavailable", "Try again.");
        }
        HttpResponse::Created().json(answer)
    }

    /// Courses by id, descending; at most `limit` (50 by default, at most 100).
    fn courses(&self, r: &Recorded) -> HttpResponse {
        let query: HashMap<String, String> = form_urlencoded::parse(r.query.as_bytes()).into_owned().collect();
        let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(50);
        if !(1..=100).contains(&limit) {
            return error(400, "invalid_limit", "limit must be between 1 and 100.");
        }
        let mut ids: Vec<i64> = self.courses.iter().copied().collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let page: Vec<Value> = ids.iter().take(limit).map(|id| json!({"id": id, "status": "published"})).collect();
        HttpResponse::Ok().json(json!({"data": page, "next_cursor": null, "request_id": "req_courses"}))
    }

    fn list(&self, r: &Recorded) -> HttpResponse {
        let query: HashMap<String, String> = form_urlencoded::parse(r.query.as_bytes()).into_owned().collect();
        let wanted = |name: &str| query.get(name).and_then(|v| v.parse::<i64>().ok());
        let found: Vec<Value> = self
            .state
            .lock()
            .unwrap()
            .enrollments
            .iter()
            .enumerate()
            .filter(|(_, (u, c))| {
                wanted("user_id").is_none_or(|w| w == *u) && wanted("course_id").is_none_or(|w| w == *c)
            })
            .map(|(i, (u, c))| json!({"id": i + 1, "user_id": u, "course_id": c, "status": "active"}))
            .collect();
        HttpResponse::Ok().json(json!({"data": found, "next_cursor": null, "request_id": "req_list"}))
    }
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"error": {"code": code, "message": message, "request_id": "req_err"}}))
}

impl Behaviour for Mobieus {
    fn answer(&self, r: &Recorded) -> HttpResponse {
        if r.header("authorization") != Some(self.key.as_str()) {
            return error(401, "unauthorized", "Invalid API key.");
        }
        if *self.plan_gated.lock().unwrap() {
            return error(403, "plan_gated", "The public API needs a Pro plan.");
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", ENROLLMENTS) => self.enroll(r),
            ("GET", ENROLLMENTS) => self.list(r),
            ("GET", COURSES) => self.courses(r),
            _ => error(404, "not_found", "No such route."),
        }
    }
}
