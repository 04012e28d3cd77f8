//! What became of one delivery, and how an HTTP answer is classified
//! (`forwarders.md` §7.6).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::adapters::SendError;

/// The longest `Retry-After` honoured; a target asking for more is asked
/// again after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        http_status: Option<u16>,
    },
    /// The target had nothing to do (e.g. a verb it ignores).
    Skipped {
        http_status: Option<u16>,
        reason: String,
    },
    /// The target has no way to do it.
    Unsupported {
        reason: String,
    },
    /// Try again later: at `after` if the target said when.
    Retry {
        http_status: Option<u16>,
        error: String,
        after: Option<Duration>,
        throttled: bool,
    },
    /// Needs an operator (an unknown learner or course).
    Park {
        http_status: Option<u16>,
        reason: String,
    },
    Dead {
        http_status: Option<u16>,
        reason: String,
    },
    /// Not sent this round (the target asked for quiet, or an earlier request
    /// failed): due again after `after` (or a first backoff), the attempt
    /// uncounted.
    NotSent {
        after: Duration,
    },
    /// The target refuses us (credentials, permissions): stop sending to it.
    /// The row is not at fault and is delivered once the target resumes.
    PauseTarget {
        http_status: Option<u16>,
        reason: String,
    },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Unsupported { .. } => "unsupported",
            Outcome::Retry { .. } => "transient",
            Outcome::Park { .. } => "parked",
            Outcome::Dead { .. } => "permanent",
            Outcome::PauseTarget { .. } => "paused",
            Outcome::NotSent { .. } => "not_sent",
        }
    }

    /// No answer: a failure on the network, or the request was not sent.
    pub fn network(error: &SendError) -> Outcome {
        match error {
            SendError::Network(error) => {
                // The error's text names the URL at most, never credentials.
                let kind = if error.is_timeout() { "timed out" } else { "request failed" };
                Outcome::Retry { http_status: None, error: format!("{kind}: {error}"), after: None, throttled: false }
            }
            SendError::NotSent(after) => Outcome::NotSent { after: *after },
        }
    }
}

/// The usual reading of an answer; adapters handle their platform's
/// special cases (Bob's 204, an LRS's 409) before falling back to it.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> Outcome {
    let code = Some(status.as_u16());
    let reason = || format!("HTTP {}: {}", status.as_u16(), excerpt(body));
    match status.as_u16() {
        200..=299 => Outcome::Delivered { http_status: code },
        408 | 425 | 429 | 500..=599 => Outcome::Retry {
            http_status: code,
            error: reason(),
            after: retry_after(headers, Utc::now()),
            throttled: status == StatusCode::TOO_MANY_REQUESTS,
        },
        401 | 403 => Outcome::PauseTarget { http_status: code, reason: reason() },
        _ => Outcome::Dead { http_status: code, reason: reason() },
    }
}

/// `Retry-After` as delta-seconds or an HTTP date, capped at `MAX_RETRY_AFTER`.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(&value.replace("GMT", "+0000")).ok()?;
            (at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The start of a response body, on one line, for the outbox's `last_error`.
/// Bodies are the target's words about our request; they never hold our
/// credentials.
pub fn excerpt(body: &str) -> String {
    let one_line: String = body.chars().map(|c| if c.is_control() { ' ' } else { c }).take(300).collect();
    one_line.trim().to_owned()
}

/// Delay before attempt `attempts + 1`: `base × 2^(attempts-1)` up to `cap`,
/// with full jitter, but never less than what the target asked for.
pub fn backoff(attempts: u32, base: Duration, cap: Duration, asked: Option<Duration>) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20)).min(cap);
    let jittered = exp.mul_f64(rand::random::<f64>());
    match asked {
        Some(asked) => asked.max(jittered.min(base)),
        None => jittered.max(base / 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(retry: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(retry).unwrap());
        h
    }

    #[test]
    fn classifies_answers() {
        let none = HeaderMap::new();
        assert!(matches!(classify(StatusCode::OK, &none, ""), Outcome::Delivered { .. }));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &none, ""),
            Outcome::Retry { throttled: false, .. }
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &headers("7"), ""),
            Outcome::Retry { throttled: true, after: Some(d), .. } if d == Duration::from_secs(7)
        ));
        assert!(matches!(classify(StatusCode::UNAUTHORIZED, &none, ""), Outcome::PauseTarget { .. }));
        assert!(matches!(classify(StatusCode::FORBIDDEN, &none, ""), Outcome::PauseTarget { .. }));
        let dead = classify(StatusCode::BAD_REQUEST, &none, "{\"error\":\n\"bad verb\"}");
        assert_eq!(
            dead,
            Outcome::Dead { http_status: Some(400), reason: "HTTP 400: {\"error\": \"bad verb\"}".into() }
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(retry_after(&headers("120"), now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&headers("Thu, 01 Jan 2026 00:00:30 GMT"), now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&headers("Wed, 31 Dec 2025 23:00:00 GMT"), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("999999"), now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_the_target() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(900));
        for attempts in 1..30 {
            let d = backoff(attempts, base, cap, None);
            assert!(d >= base / 2 && d <= cap, "{attempts}: {d:?}");
        }
        let late: Vec<Duration> = (0..50).map(|_| backoff(12, base, cap, None)).collect();
        assert!(late.iter().any(|d| *d > Duration::from_secs(60)), "grows: {late:?}");
        assert!(backoff(1, base, cap, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
    }
}
