//! Another LRS, as far as forwarding uses it: `POST /xapi/statements` (one
//! or an array, all or nothing), `PUT` and `GET ?statementId=`, HTTP Basic, and
//! statement ids that never change content (same → no effect, other → 409).

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::{Behaviour, Recorded, basic};

pub struct Lrs {
    /// The `Authorization` it accepts (an operator may change the credentials).
    pub authorization: Mutex<String>,
    /// Statements by id, as first received.
    pub stored: Mutex<HashMap<String, Value>>,
    /// Verb IRIs this LRS refuses as invalid (400).
    pub refused_verbs: Mutex<Vec<String>>,
}

impl Lrs {
    pub fn new(user: &str, password: &str) -> Lrs {
        Lrs {
            authorization: Mutex::new(basic(user, password)),
            stored: Mutex::default(),
            refused_verbs: Mutex::default(),
        }
    }

    /// `GET ?statementId=`: the statement, or 404.
    fn get(&self, r: &Recorded) -> HttpResponse {
        let Some(id) = r.query.strip_prefix("statementId=") else {
            return HttpResponse::BadRequest().json(json!({"error": "only single statements are served"}));
        };
        match self.stored.lock().unwrap().get(id) {
            Some(statement) => HttpResponse::Ok().json(statement),
            None => HttpResponse::NotFound().json(json!({"error": format!("no statement {id}")})),
        }
    }

    pub fn count(&self) -> usize {
        self.stored.lock().unwrap().len()
    }

    /// Stores all or none; a refusal is its status and message.
    fn store(&self, statements: &[Value]) -> Result<(), (u16, String)> {
        let refused = self.refused_verbs.lock().unwrap().clone();
        let mut stored = self.stored.lock().unwrap();
        for s in statements {
            let id = s["id"].as_str().ok_or((400, "no id".to_owned()))?;
            let verb = s["verb"]["id"].as_str().unwrap_or_default();
            if refused.iter().any(|r| r == verb) {
                return Err((400, format!("verb {verb} refused")));
            }
            if stored.get(id).is_some_and(|earlier| earlier != s) {
                return Err((409, format!("{id} exists")));
            }
        }
        for s in statements {
            stored.entry(s["id"].as_str().unwrap().to_owned()).or_insert_with(|| s.clone());
        }
        Ok(())
    }
}

impl Behaviour for Lrs {
    fn answer(&self, r: &Recorded) -> HttpResponse {
        if r.header("authorization") != Some(self.authorization.lock().unwrap().as_str()) {
            return HttpResponse::Unauthorized().json(json!({"error": "bad credentials"}));
        }
        if r.path != "/xapi/statements" || r.header("x-experience-api-version").is_none() {
            return HttpResponse::BadRequest().json(json!({"error": "not a statement request"}));
        }
        if r.method == "GET" {
            return self.get(r);
        }
        let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
            return HttpResponse::BadRequest().json(json!({"error": "not JSON"}));
        };
        match r.method.as_str() {
            "POST" => {
                let batch = match body {
                    Value::Array(a) => a,
                    one => vec![one],
                };
                match self.store(&batch) {
                    Ok(()) => HttpResponse::Ok().json(batch.iter().map(|s| s["id"].clone()).collect::<Vec<_>>()),
                    Err(refusal) => refuse(refusal),
                }
            }
            "PUT" => {
                let id = r.query.strip_prefix("statementId=").unwrap_or_default();
                if body["id"] != id {
                    return HttpResponse::BadRequest().json(json!({"error": "statementId and id differ"}));
                }
                match self.store(&[body]) {
                    Ok(()) => HttpResponse::NoContent().finish(),
                    Err(refusal) => refuse(refusal),
                }
            }
            _ => HttpResponse::MethodNotAllowed().finish(),
        }
    }
}

fn refuse((status, message): (u16, String)) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(json!({"error": message}))
}
