//! HiBob Bob Learning's provider API as documented (`forwarders.md` §1):
//! service-user Basic auth, integrations, bulk training content (create /
//! patch), and xAPI progress statements (200 accepted, 409 duplicate id,
//! 204 for a verb it ignores).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::{Behaviour, Recorded, basic};

const BASE: &str = "/v1/learning/lms-integrations";
const VERBS: [&str; 3] = [
    "http://adlnet.gov/expapi/verbs/completed",
    "http://adlnet.gov/expapi/verbs/passed",
    "http://adlnet.gov/expapi/verbs/failed",
];

#[derive(Default)]
pub struct BobState {
    pub integrations: HashSet<String>,
    /// Training content by external identifier.
    pub courses: HashMap<String, Value>,
    /// Accepted progress statements by id.
    pub progress: HashMap<String, Value>,
}

pub struct Bob {
    authorization: String,
    pub employees: HashSet<String>,
    pub state: Mutex<BobState>,
}

impl Bob {
    pub fn new(service_user: &str, token: &str, employees: &[&str]) -> Bob {
        Bob {
            authorization: basic(service_user, token),
            employees: employees.iter().map(|e| e.to_string()).collect(),
            state: Mutex::default(),
        }
    }

    fn content(&self, provider: &str, method: &str, body: &Value) -> HttpResponse {
        let mut state = self.state.lock().unwrap();
        let (mut success, mut errors) = (Vec::new(), Vec::new());
        for item in body["items"].as_array().into_iter().flatten() {
            let id = item["/trainingContent/externalIdentifier"].as_str().unwrap_or_default().to_owned();
            let exists = state.courses.contains_key(&id);
            match method {
                "POST" if id.is_empty() || item["/trainingContent/title"].as_str().is_none() => errors
                    .push(json!({"externalIdentifier": id, "message": "externalIdentifier and title are required"})),
                "POST" if exists => errors.push(json!({"externalIdentifier": id, "message": "already exists"})),
                "PATCH" if !exists => errors.push(json!({"externalIdentifier": id, "message": "unknown"})),
                _ => {
                    let course = state.courses.entry(id.clone()).or_insert_with(|| json!({"provider": provider}));
                    for (k, v) in item.as_object().unwrap() {
                        course[k] = v.clone();
                    }
                    success.push(json!(id));
                }
            }
        }
        HttpResponse::Ok().json(json!({"success": success, "errors": errors}))
    }

    fn statement(&self, s: &Value) -> HttpResponse {
        let mut state = self.state.lock().unwrap();
        let email = s["actor"]["mbox"].as_str().and_then(|m| m.strip_prefix("mailto:")).unwrap_or_default();
        if s["timestamp"].as_str().is_none() || !self.employees.contains(email) {
            return HttpResponse::BadRequest()
                .json(json!({"error": "timestamp and an active employee's mbox required"}));
        }
        let known_course = s["object"]["id"]
            .as_str()
            .is_some_and(|id| state.courses.values().any(|c| c["/trainingContent/sourceLink"].as_str() == Some(id)));
        if !known_course {
            return HttpResponse::BadRequest().json(json!({"error": "object.id matches no course's sourceLink"}));
        }
        if !VERBS.contains(&s["verb"]["id"].as_str().unwrap_or_default()) {
            return HttpResponse::NoContent().finish();
        }
        let id = s["id"].as_str().unwrap_or_default().to_owned();
        if state.progress.contains_key(&id) {
            return HttpResponse::Conflict().json(json!({"error": "duplicate statement id"}));
        }
        state.progress.insert(id.clone(), s.clone());
        HttpResponse::Ok().json(json!({"accepted": true, "statementId": id}))
    }
}

impl Behaviour for Bob {
    fn answer(&self, r: &Recorded) -> HttpResponse {
        if r.header("authorization") != Some(self.authorization.as_str()) {
            return HttpResponse::Unauthorized().finish();
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let Some(rest) = r.path.strip_prefix(BASE) else { return HttpResponse::NotFound().finish() };
        if rest.is_empty() && r.method == "POST" {
            let provider = body["providerIdentifier"].as_str().unwrap_or_default().to_owned();
            if provider.is_empty() {
                return HttpResponse::BadRequest().json(json!({"error": "providerIdentifier is required"}));
            }
            if !self.state.lock().unwrap().integrations.insert(provider) {
                return HttpResponse::BadRequest().json(json!({"error": "integration already exists"}));
            }
            return HttpResponse::Ok().finish();
        }
        let mut parts = rest.trim_start_matches('/').splitn(2, '/');
        let provider = parts.next().unwrap_or_default();
        if !self.state.lock().unwrap().integrations.contains(provider) {
            return HttpResponse::NotFound().json(json!({"error": "no such integration"}));
        }
        match (r.method.as_str(), parts.next()) {
            (m @ ("POST" | "PATCH"), Some("training-content")) => self.content(provider, m, &body),
            ("POST", Some("xapi/statements")) => self.statement(&body),
            _ => HttpResponse::NotFound().finish(),
        }
    }
}
