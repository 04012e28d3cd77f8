//! A webhook receiver that checks the HMAC-SHA256 signature and drops
//! deliveries it has seen (by `X-Xlrs-Delivery`).

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::HttpResponse;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Behaviour, Recorded};

pub struct Receiver {
    secret: String,
    /// Statements by delivery id.
    pub received: Mutex<HashMap<String, Value>>,
    pub bad_signatures: Mutex<u32>,
}

impl Receiver {
    pub fn new(secret: &str) -> Receiver {
        Receiver { secret: secret.into(), received: Mutex::default(), bad_signatures: Mutex::default() }
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

impl Behaviour for Receiver {
    fn answer(&self, r: &Recorded) -> HttpResponse {
        let (Some(signature), Some(timestamp), Some(delivery)) =
            (r.header("x-xlrs-signature"), r.header("x-xlrs-timestamp"), r.header("x-xlrs-delivery"))
        else {
            return HttpResponse::BadRequest().json(json!({"error": "unsigned"}));
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(&r.body);
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        if signature != format!("sha256={expected}") {
            *self.bad_signatures.lock().unwrap() += 1;
            return HttpResponse::Unauthorized().json(json!({"error": "bad signature"}));
        }
        let statement: Value = serde_json::from_slice(&r.body).unwrap();
        self.received.lock().unwrap().entry(delivery.to_owned()).or_insert(statement);
        HttpResponse::Ok().finish()
    }
}
