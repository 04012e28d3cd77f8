//! A connection test (`xlrs forward test`, `POST /admin/forwarders/{target}/test`):
//! one authenticated call that changes nothing on the target, and what
//! answered. Nothing of the request beyond its method and path is reported:
//! its headers and body hold the credentials, and a token answer the token.

use std::time::Instant;

use reqwest::StatusCode;
use serde::Serialize;

use super::{Channel, SendError};
use crate::forward::outcome::excerpt;

/// What answered the test call.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Probe {
    /// The call made: its method and path.
    pub call: String,
    /// The target's answer; `None` when none came (network error, timeout).
    pub http_status: Option<u16>,
    /// Whether the answer shows the target reachable and our credentials taken.
    pub ok: bool,
    /// From sending the request to its whole answer.
    pub elapsed_ms: u64,
    /// Why it is not ok: the start of the target's answer, or the network error.
    pub error: Option<String>,
}

/// The test call of one kind of target.
pub struct TestCall {
    pub request: reqwest::RequestBuilder,
    /// `METHOD /path`.
    pub call: String,
    /// The platform bucket the call is paced by, if any.
    pub bucket: Option<&'static str>,
    /// Which answers mean "reachable, credentials taken" (with the answer's text).
    pub fine: fn(StatusCode, &str) -> bool,
}

impl TestCall {
    /// A call that is fine when the target answers 2xx.
    pub fn new(method: reqwest::Method, url: &str, request: reqwest::RequestBuilder) -> TestCall {
        TestCall { request, call: call_name(&method, url), bucket: None, fine: |status, _| status.is_success() }
    }

    pub fn in_bucket(self, bucket: Option<&'static str>) -> TestCall {
        TestCall { bucket, ..self }
    }

    pub fn fine_when(self, fine: fn(StatusCode, &str) -> bool) -> TestCall {
        TestCall { fine, ..self }
    }

    /// Sends the call once (paced like any other) and reports the answer.
    pub async fn run(self, channel: &Channel) -> Probe {
        let started = Instant::now();
        let sent = channel.send_with(self.bucket, true, self.request).await;
        let (http_status, ok, error) = match sent {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let ok = (self.fine)(status, &text);
                (Some(status.as_u16()), ok, (!ok).then(|| format!("HTTP {}: {}", status.as_u16(), excerpt(&text))))
            }
            // The error's text names the URL at most, never credentials.
            Err(SendError::Network(e)) => (None, false, Some(format!("request failed: {e}"))),
            Err(SendError::NotSent(wait)) => {
                (None, false, Some(format!("not sent: the target asked for quiet for {} s more", wait.as_secs())))
            }
        };
        Probe { call: self.call, http_status, ok, elapsed_ms: started.elapsed().as_millis() as u64, error }
    }
}

/// `METHOD /path` of `url` (no query: it may name a learner).
fn call_name(method: &reqwest::Method, url: &str) -> String {
    let path = reqwest::Url::parse(url).map(|u| u.path().to_owned()).unwrap_or_else(|_| url.to_owned());
    format!("{method} {path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_named_by_method_and_path_only() {
        let name = call_name(&reqwest::Method::GET, "https://lrs.example.com/xapi/statements?statementId=x");
        assert_eq!(name, "GET /xapi/statements");
    }
}
