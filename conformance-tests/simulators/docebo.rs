//! Docebo as documented (`forwarders.md` §3): OAuth2 tokens (password or
//! client-credentials grant, form-encoded), Bearer on every call, the user
//! search (a substring match, as Docebo's is), and the enrollment batch
//! import answered row by row, keeping one enrollment per course and user.
//! Batch calls take `batch_processing` each, and the most in progress at
//! once is recorded: Docebo forbids concurrent batch calls.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::{Behaviour, Recorded};

const STATUSES: [&str; 6] = ["subscribed", "in_progress", "completed", "waiting", "to_confirm", "suspended"];
const MAX_ITEMS: usize = 100;

#[derive(Debug, Clone)]
pub struct User {
    pub user_id: String,
    pub username: String,
    pub email: String,
}

#[derive(Default)]
pub struct DoceboState {
    tokens: HashSet<String>,
    minted: usize,
    /// Enrollments by (course code, user id).
    pub enrollments: HashMap<(String, String), Value>,
    /// Bodies of the batch calls, in order.
    pub batches: Vec<Value>,
    /// The `search_text` of each user search.
    pub searches: Vec<String>,
    in_progress: usize,
    pub max_in_progress: usize,
    /// Courses whose rows are refused, with the message.
    pub refusing: HashMap<String, String>,
}

pub struct Docebo {
    client: (String, String),
    /// The API user of the password grant; `None` for client credentials.
    user: Option<(String, String)>,
    pub users: Vec<User>,
    pub courses: HashSet<String>,
    /// How long each batch call takes (counted as in progress meanwhile).
    pub batch_processing: Mutex<Duration>,
    pub state: Mutex<DoceboState>,
}

impl Docebo {
    pub fn new(client: (&str, &str), user: Option<(&str, &str)>, users: Vec<User>, courses: &[&str]) -> Docebo {
        Docebo {
            client: (client.0.into(), client.1.into()),
            user: user.map(|(u, p)| (u.into(), p.into())),
            users,
            courses: courses.iter().map(|c| c.to_string()).collect(),
            batch_processing: Mutex::new(Duration::ZERO),
            state: Mutex::default(),
        }
    }

    /// Users `<name>@example.com` with ids from `first`, usernames = names.
    pub fn users(names: &[&str], first: u32) -> Vec<User> {
        (first..)
            .zip(names)
            .map(|(id, name)| User {
                user_id: id.to_string(),
                username: name.to_string(),
                email: format!("{name}@example.com"),
            })
            .collect()
    }

    /// Makes every token minted so far invalid (as an expiry or a revocation would).
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    pub fn tokens_minted(&self) -> usize {
        self.state.lock().unwrap().minted
    }

    pub fn enrollment(&self, course: &str, user_id: &str) -> Option<Value> {
        self.state.lock().unwrap().enrollments.get(&(course.to_owned(), user_id.to_owned())).cloned()
    }

    pub fn searches_for(&self, email: &str) -> usize {
        self.state.lock().unwrap().searches.iter().filter(|s| s.as_str() == email).count()
    }

    pub fn batch_calls(&self) -> usize {
        self.state.lock().unwrap().batches.len()
    }

    fn token(&self, r: &Recorded) -> HttpResponse {
        if r.header("content-type") != Some("application/x-www-form-urlencoded") {
            return HttpResponse::BadRequest().json(json!({"error": "invalid_request"}));
        }
        let form: HashMap<String, String> = form_urlencoded::parse(&r.body).into_owned().collect();
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        let client_ok = field("client_id") == self.client.0 && field("client_secret") == self.client.1;
        let grant_ok = match (&self.user, field("grant_type")) {
            (Some((user, password)), "password") => field("username") == user && field("password") == password,
            (None, "client_credentials") => true,
            _ => false,
        };
        if !client_ok || !grant_ok || field("scope") != "api" {
            return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut state = self.state.lock().unwrap();
        state.tokens.insert(token.clone());
        state.minted += 1;
        HttpResponse::Ok()
            .json(json!({"access_token": token, "expires_in": 3600, "token_type": "Bearer", "scope": "api"}))
    }

    fn search(&self, r: &Recorded) -> HttpResponse {
        let query: HashMap<String, String> = form_urlencoded::parse(r.query.as_bytes()).into_owned().collect();
        let text = query.get("search_text").cloned().unwrap_or_default();
        self.state.lock().unwrap().searches.push(text.clone());
        let needle = text.to_lowercase();
        let items: Vec<Value> = self
            .users
            .iter()
            .filter(|u| u.email.to_lowercase().contains(&needle) || u.username.to_lowercase().contains(&needle))
            .map(|u| json!({"user_id": u.user_id, "username": u.username, "email": u.email}))
            .collect();
        HttpResponse::Ok().json(json!({"data": {"count": items.len(), "items": items}}))
    }

    fn batch(&self, body: &Value) -> HttpResponse {
        let Some(items) = body["items"].as_array() else {
            return HttpResponse::BadRequest().json(json!({"error": "items is required"}));
        };
        if items.len() > MAX_ITEMS {
            return HttpResponse::BadRequest().json(json!({"error": "too many items"}));
        }
        {
            let mut state = self.state.lock().unwrap();
            state.in_progress += 1;
            state.max_in_progress = state.max_in_progress.max(state.in_progress);
        }
        std::thread::sleep(*self.batch_processing.lock().unwrap());
        let mut state = self.state.lock().unwrap();
        state.in_progress -= 1;
        state.batches.push(body.clone());
        let results: Vec<Value> = items.iter().enumerate().map(|(i, item)| self.enroll(&mut state, i, item)).collect();
        HttpResponse::Ok().json(json!({"data": results}))
    }

    /// One row of a batch: applied, or why not.
    fn enroll(&self, state: &mut DoceboState, row: usize, item: &Value) -> Value {
        let mut result = json!({"row_index": row, "batch_item_id": item["batch_item_id"], "success": false});
        let user = self
            .users
            .iter()
            .find(|u| item["user_id"].as_str() == Some(&u.user_id) || item["username"].as_str() == Some(&u.username));
        let course = item["course_code"].as_str().unwrap_or_default().to_owned();
        let status = item["status"].as_str().unwrap_or_default();
        let dates_ok = ["enrollment_date", "completion_date"].iter().all(|k| {
            item.get(*k).is_none_or(|d| {
                d.as_str().is_some_and(|d| chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%d %H:%M:%S").is_ok())
            })
        });
        let message = match user {
            _ if !self.courses.contains(&course) => Some("Course not found".to_owned()),
            None => Some("User not found".to_owned()),
            _ if !STATUSES.contains(&status) => Some(format!("Invalid status {status}")),
            _ if !dates_ok => Some("Invalid date format".to_owned()),
            _ if item["level"] != "student" => Some("Invalid level".to_owned()),
            _ => state.refusing.get(&course).cloned(),
        };
        if let Some(message) = message {
            result["message"] = json!(message);
            return result;
        }
        let user = user.expect("checked");
        let enrollment = state.enrollments.entry((course, user.user_id.clone())).or_insert_with(|| json!({}));
        for key in ["status", "score", "passed", "enrollment_date", "completion_date"] {
            if let Some(v) = item.get(key) {
                enrollment[key] = v.clone();
            }
        }
        result["success"] = json!(true);
        result["user_id"] = json!(user.user_id);
        result
    }
}

impl Behaviour for Docebo {
    fn answer(&self, r: &Recorded) -> HttpResponse {
        if (r.method.as_str(), r.path.as_str()) == ("POST", "/oauth2/token") {
            return self.token(r);
        }
        let bearer = r.header("authorization").and_then(|h| h.strip_prefix("Bearer "));
        if !bearer.is_some_and(|t| self.state.lock().unwrap().tokens.contains(t)) {
            return HttpResponse::Unauthorized().json(json!({"message": "Invalid or expired token"}));
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/manage/v1/user") => self.search(r),
            ("POST", "/learn/v1/enrollment/batch") => {
                self.batch(&serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            }
            _ => HttpResponse::NotFound().finish(),
        }
    }
}
