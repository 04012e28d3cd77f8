//! A webhook: one JSON POST per statement. With a secret, the body is signed
//! with HMAC-SHA256 over `<timestamp>.<body>` (the timestamp is sent too, so
//! the receiver can refuse replays); `X-Xlrs-Delivery` is the same on every
//! redelivery (see `Job::delivery_id`), so the receiver can drop duplicates.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Channel, Job, read_response};
use crate::forward::outcome::{Outcome, classify};
use crate::xapi::attachment::to_hex;

pub const SIGNATURE_HEADER: &str = "X-Xlrs-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Xlrs-Timestamp";
pub const DELIVERY_HEADER: &str = "X-Xlrs-Delivery";

pub struct Webhook {
    url: String,
    secret: Option<String>,
}

impl Webhook {
    pub fn new(url: &str, secret: Option<String>) -> Webhook {
        Webhook { url: url.to_owned(), secret }
    }

    pub async fn deliver(&self, channel: &Channel, jobs: &[Job]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            outcomes.push(self.post(channel, job).await);
        }
        outcomes
    }

    async fn post(&self, channel: &Channel, job: &Job) -> Outcome {
        let body = job.body.clone();
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let mut request = channel
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, job.delivery_id())
            .header(TIMESTAMP_HEADER, &timestamp);
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &timestamp, body.as_bytes()));
        }
        match channel.send(request.body(body)).await {
            Err(e) => Outcome::network(&e),
            Ok(response) => {
                let (status, headers, text) = read_response(response).await;
                classify(status, &headers, &text)
            }
        }
    }
}

/// `sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", to_hex(&mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Python: hmac.new(b"Jefe", b'1700000000.{"id":"x"}', hashlib.sha256).hexdigest()
        let sig = signature("Jefe", "1700000000", br#"{"id":"x"}"#);
        assert_eq!(sig, "sha256=83aaec65374de010f05f69354cbddd8bb459ab71908c7579dd27ff250b557358");
    }
}
