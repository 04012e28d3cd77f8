//! One adapter per kind of target: it turns claimed outbox rows into calls
//! on the target and says what became of each.

pub mod docebo;
pub mod hibob;
pub mod learning360;
pub mod learnworlds;
pub mod mobieus;
pub mod probe;
pub mod webhook;
pub mod xapi_lrs;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use serde_json::Value;

use super::config::{KindConfig, SecretRef, TargetConfig};
use super::courses::Courses;
use super::identity::Identities;
use super::outcome::{Outcome, retry_after};
pub use super::rate::Bucket;
use super::rate::{Pacer, RateLimiter};
use super::router::Op;
use super::token;
use crate::store::outbox::Claimed;

/// What an adapter delivers with: the target's channel, the database (for
/// the identity table and what was sent before), and the target's mappings.
pub struct Ctx<'a> {
    pub target: &'a str,
    pub channel: &'a Channel,
    pub db: &'a DatabaseConnection,
    pub identities: &'a Identities,
    pub courses: &'a Courses,
}

/// A claimed row with its operation known. The statement stays the JSON text
/// it was stored as: targets that take it whole get that text, unparsed.
#[derive(Debug, Clone)]
pub struct Job {
    pub outbox_id: i64,
    pub op: Op,
    pub statement_id: String,
    /// The learner and the activity (see `router::order_key`).
    pub order_key: String,
    pub body: String,
    /// What the statement's StatementRef points at, as stored: for a
    /// voiding statement, the statement it voids.
    pub referenced_body: Option<String>,
    /// Attempts including this one.
    pub attempts: u32,
    pub created_us: i64,
    /// Set when the statement comes through the target's cursor, not a row.
    pub stream_seq: Option<i64>,
}

impl Job {
    /// The row as a job, or why it cannot be one (an operation this build
    /// does not know): such a row is dead-lettered.
    pub fn from_claimed(c: Claimed) -> Result<Job, String> {
        let op = Op::parse(&c.op).ok_or_else(|| format!("unknown operation '{}'", c.op))?;
        Ok(Job {
            outbox_id: c.id,
            op,
            statement_id: c.statement_id,
            order_key: c.order_key,
            body: c.body,
            referenced_body: c.referenced_body,
            attempts: c.attempts,
            created_us: c.created_us,
            stream_seq: None,
        })
    }

    /// A statement after a stream target's cursor, as a job.
    pub fn from_streamed(s: crate::store::forward_stream::Streamed) -> Job {
        Job {
            outbox_id: 0,
            op: Op::Statement,
            statement_id: s.id,
            order_key: String::new(),
            body: s.body,
            referenced_body: None,
            attempts: 1,
            created_us: s.stored_us,
            stream_seq: Some(s.seq),
        }
    }

    /// What names this delivery to the receiver, the same on a redelivery:
    /// the statement id for a statement from the cursor (it goes once), the
    /// row id for a row (a replay is a delivery of its own).
    pub fn delivery_id(&self) -> String {
        match self.stream_seq {
            Some(_) => self.statement_id.clone(),
            None => self.outbox_id.to_string(),
        }
    }

    /// The statement, parsed, for adapters that rewrite it.
    pub fn statement(&self) -> Result<Value, String> {
        serde_json::from_str(&self.body).map_err(|e| format!("stored statement is not JSON: {e}"))
    }
}

/// What every adapter sends through: one HTTP client, paced by the target's
/// rate limiters (the configured one, and any a platform documents for some
/// of its endpoints). Once the target asks for quiet (`Retry-After`),
/// refuses us (401, 403) or a request of this round fails transiently, the
/// rest of the round is not sent: a down target gets one probe per round, not
/// one request per row, and a platform that blocks addresses after failed
/// logins sees one refused login, not one per row.
pub struct Channel {
    pub client: reqwest::Client,
    pacer: Pacer,
    hold_until: Mutex<Option<Instant>>,
    round_stopped: AtomicBool,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum SendError {
    Network(reqwest::Error),
    /// Not sent: the target asked us to wait this long, or (zero) an earlier
    /// request of this round failed or was refused.
    NotSent(Duration),
}

impl Channel {
    pub fn new(client: reqwest::Client, limiter: RateLimiter, buckets: &[Bucket]) -> Channel {
        Channel {
            client,
            pacer: Pacer::new(limiter, buckets),
            hold_until: Mutex::new(None),
            round_stopped: AtomicBool::new(false),
        }
    }

    /// A new round of deliveries: requests may go again (unless held).
    pub fn begin_round(&self) {
        self.round_stopped.store(false, Ordering::Relaxed);
    }

    /// Sends `request` once the rate allows; a 429 slows the target down.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, SendError> {
        self.send_in(None, request).await
    }

    /// Like `send`, also paced by the platform's `bucket` for this endpoint.
    pub async fn send_in(
        &self,
        bucket: Option<&str>,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SendError> {
        self.send_with(bucket, false, request).await
    }

    /// Like `send_in`; a `follow_up` (a poll of work the target accepted, the
    /// one retry after a token was renewed) goes even after another request
    /// of the round failed, unless held.
    pub async fn send_with(
        &self,
        bucket: Option<&str>,
        follow_up: bool,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SendError> {
        let held = self.hold_until.lock().expect("hold lock").and_then(|t| t.checked_duration_since(Instant::now()));
        if let Some(wait) = held.filter(|w| *w > Duration::ZERO) {
            return Err(SendError::NotSent(wait));
        }
        if !follow_up && self.round_stopped.load(Ordering::Relaxed) {
            return Err(SendError::NotSent(Duration::ZERO));
        }
        while let Err(wait) = self.pacer.take(bucket, Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let response = request.send().await.map_err(|e| {
            self.round_stopped.store(true, Ordering::Relaxed);
            SendError::Network(e)
        })?;
        let status = response.status();
        self.pacer.answered(bucket, status == reqwest::StatusCode::TOO_MANY_REQUESTS, Instant::now());
        if matches!(status.as_u16(), 401 | 403 | 408 | 425 | 429 | 500..=599) {
            self.round_stopped.store(true, Ordering::Relaxed);
            if let Some(after) = retry_after(response.headers(), chrono::Utc::now()) {
                *self.hold_until.lock().expect("hold lock") = Some(Instant::now() + after);
            }
        }
        Ok(response)
    }
}

pub enum Adapter {
    XapiLrs(xapi_lrs::XapiLrs),
    Webhook(webhook::Webhook),
    Hibob(hibob::Bob),
    Mobieus(mobieus::Mobieus),
    Learnworlds(learnworlds::LearnWorlds),
    Docebo(docebo::Docebo),
    Learning360(learning360::Learning360),
}

impl Adapter {
    /// Builds the adapter of `target`, reading its secrets (an error names
    /// the field, never the value).
    pub fn new(target: &TargetConfig) -> anyhow::Result<Adapter> {
        let read = |r: &SecretRef, field: &str| r.read(&target.name, field);
        let secret = |r: &Option<SecretRef>, field: &str| r.as_ref().map(|r| read(r, field)).transpose();
        Ok(match &target.kind {
            KindConfig::XapiLrs { url, username, password, version } => {
                let credentials =
                    both_or_neither(target, secret(username, "username")?, secret(password, "password")?)?;
                Adapter::XapiLrs(xapi_lrs::XapiLrs::new(url, credentials, version))
            }
            KindConfig::Webhook { url, secret: key } => {
                Adapter::Webhook(webhook::Webhook::new(url, secret(key, "secret")?))
            }
            KindConfig::Hibob { url, provider_identifier, provider_name, service_user_id, service_user_token } => {
                let user = (read(service_user_id, "service_user_id")?, read(service_user_token, "service_user_token")?);
                Adapter::Hibob(hibob::Bob::new(url, provider_identifier, provider_name.clone(), user))
            }
            KindConfig::Mobieus { url, api_key } => {
                Adapter::Mobieus(mobieus::Mobieus::new(url, read(api_key, "api_key")?))
            }
            KindConfig::Learnworlds { school_url, api_url, client_id, client_secret, .. } => {
                let client = (read(client_id, "client_id")?, read(client_secret, "client_secret")?);
                Adapter::Learnworlds(learnworlds::LearnWorlds::new(school_url, api_url.as_deref(), client))
            }
            KindConfig::Docebo { url, client_id, client_secret, username, password, username_is_email, .. } => {
                let user = both_or_neither(target, secret(username, "username")?, secret(password, "password")?)?;
                let client = (read(client_id, "client_id")?, read(client_secret, "client_secret")?);
                let tokens = token::TokenSource::docebo(url, client.0, client.1, user);
                Adapter::Docebo(docebo::Docebo::new(url, tokens, *username_is_email))
            }
            KindConfig::Learning360 { url, integration_id, client_id, client_secret, company_id } => {
                let (id, secret) = (read(client_id, "client_id")?, read(client_secret, "client_secret")?);
                let token =
                    token::TokenSource::learning360(url, id, secret, company_id.clone()).paced_by(learning360::WRITE);
                Adapter::Learning360(learning360::Learning360::new(url, integration_id, token, target.delivery.lease()))
            }
        })
    }

    /// The platform's documented limits on some of its endpoints.
    pub fn buckets(&self) -> &'static [Bucket] {
        match self {
            Adapter::Hibob(_) => hibob::BUCKETS,
            Adapter::Learnworlds(_) => learnworlds::BUCKETS,
            Adapter::Learning360(_) => learning360::BUCKETS,
            _ => &[],
        }
    }

    /// Whether the target keeps one state per learner and course, so rows
    /// of one claim are collapsed to the furthest (`dispatch`).
    pub fn coalesces(&self) -> bool {
        matches!(self, Adapter::Learnworlds(_) | Adapter::Docebo(_) | Adapter::Learning360(_))
    }

    /// Whether the platform allows one call at a time over every node.
    pub fn exclusive(&self) -> bool {
        matches!(self, Adapter::Docebo(_))
    }

    /// The target's connection test: one authenticated call that changes
    /// nothing there (`probe`); `None` for a webhook, which has no such call.
    pub fn test_call(&self, client: &reqwest::Client) -> Option<probe::TestCall> {
        Some(match self {
            Adapter::XapiLrs(a) => a.test_call(client),
            Adapter::Webhook(_) => return None,
            Adapter::Hibob(a) => a.test_call(client),
            Adapter::Mobieus(a) => a.test_call(client),
            Adapter::Learnworlds(a) => a.test_call(client),
            Adapter::Docebo(a) => a.test_call(client),
            Adapter::Learning360(a) => a.test_call(client),
        })
    }

    /// Delivers `jobs`; one outcome per job, in order.
    pub async fn deliver(&self, ctx: &Ctx<'_>, jobs: &[Job]) -> Vec<Outcome> {
        match self {
            Adapter::XapiLrs(a) => a.deliver(ctx, jobs).await,
            Adapter::Webhook(a) => a.deliver(ctx.channel, jobs).await,
            Adapter::Hibob(a) => a.deliver(ctx.channel, jobs).await,
            Adapter::Mobieus(a) => a.deliver(ctx, jobs).await,
            Adapter::Learnworlds(a) => a.deliver(ctx, jobs).await,
            Adapter::Docebo(a) => a.deliver(ctx, jobs).await,
            Adapter::Learning360(a) => a.deliver(ctx, jobs).await,
        }
    }
}

/// A username and password: both set, or neither.
fn both_or_neither(
    target: &TargetConfig,
    username: Option<String>,
    password: Option<String>,
) -> anyhow::Result<Option<(String, String)>> {
    match (username, password) {
        (Some(u), Some(p)) => Ok(Some((u, p))),
        (None, None) => Ok(None),
        _ => anyhow::bail!("forwarder '{}': set both username and password, or neither", target.name),
    }
}

/// A result's score as a percentage, for platforms that take one: `scaled`,
/// else `raw` of `max`; clamped to 0–100 and rounded to hundredths.
pub fn score_percent(result: &Value) -> Option<f64> {
    let score = result.get("score")?;
    let scaled = score.get("scaled").and_then(Value::as_f64);
    let of_max = || {
        let (raw, max) = (score.get("raw")?.as_f64()?, score.get("max")?.as_f64()?);
        (max > 0.0).then(|| raw / max)
    };
    let fraction = scaled.or_else(of_max)?;
    Some(((fraction * 100.0).clamp(0.0, 100.0) * 100.0).round() / 100.0)
}

/// Reads a response's status, headers and (the start of) its body.
pub async fn read_response(response: reqwest::Response) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    (status, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::config::DeliveryConfig;

    /// Every endpoint of a platform has a request ready at all times, for
    /// `span` of simulated time (no sleeping): each goes as soon as the
    /// pacer lets it. The times of each bucket's calls.
    fn flood(pacer: &Pacer, buckets: &[Bucket], span: Duration) -> Vec<Vec<Duration>> {
        let t0 = Instant::now();
        let mut ready = vec![Duration::ZERO; buckets.len()];
        let mut calls = vec![Vec::new(); buckets.len()];
        loop {
            // The earliest sender next: simulated time only moves forward.
            let (i, at) = ready.iter().copied().enumerate().min_by_key(|(_, at)| *at).expect("a bucket");
            if at > span {
                return calls;
            }
            match pacer.take(Some(buckets[i].name), t0 + at) {
                Ok(()) => calls[i].push(at),
                Err(wait) => ready[i] = at + wait,
            }
        }
    }

    /// The most calls of `calls` (in order) within any `window`, ends included.
    fn most_in_a_window(calls: &[Duration], window: Duration) -> usize {
        let mut start = 0;
        let mut most = 0;
        for (end, at) in calls.iter().enumerate() {
            while *at - calls[start] > window {
                start += 1;
            }
            most = most.max(end - start + 1);
        }
        most
    }

    #[test]
    fn no_window_of_a_platform_holds_more_calls_than_its_limit() {
        let d = DeliveryConfig::default();
        for buckets in [hibob::BUCKETS, learnworlds::BUCKETS, learning360::BUCKETS] {
            let longest = buckets.iter().map(Bucket::window).max().expect("buckets");
            // A target limiter out of the way: each bucket alone holds its limit, and uses it.
            let pacer = Pacer::new(RateLimiter::new(1e6, 1_000_000), buckets);
            for (bucket, calls) in buckets.iter().zip(flood(&pacer, buckets, longest * 3)) {
                let most = most_in_a_window(&calls, bucket.window());
                assert!(most <= bucket.limit as usize, "{}: {most} calls in {:?}", bucket.name, bucket.window());
                assert!(most + 1 >= bucket.limit as usize, "{}: only {most} calls in a window", bucket.name);
            }
            // With the default target limiter every call passes too: neither overshoots.
            let pacer = Pacer::new(RateLimiter::new(d.rate_per_sec, d.burst), buckets);
            let calls = flood(&pacer, buckets, longest * 3);
            for (bucket, calls) in buckets.iter().zip(&calls) {
                assert!(most_in_a_window(calls, bucket.window()) <= bucket.limit as usize, "{}", bucket.name);
            }
            let mut all: Vec<Duration> = calls.concat();
            all.sort();
            let target_limit = d.burst as usize + d.rate_per_sec as usize;
            assert!(most_in_a_window(&all, Duration::from_secs(1)) <= target_limit);
        }
    }
}
