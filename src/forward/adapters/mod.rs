//! One adapter per kind of target: it turns claimed outbox rows into calls
//! on the target and says what became of each.

pub mod webhook;
pub mod xapi_lrs;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::{KindConfig, SecretRef, TargetConfig};
use super::outcome::Outcome;
use super::rate::RateLimiter;
use super::router::Op;
use crate::store::outbox::Claimed;

/// A claimed row, its statement parsed.
#[derive(Debug, Clone)]
pub struct Job {
    pub outbox_id: i64,
    pub op: Op,
    pub statement_id: String,
    pub statement: Value,
    pub attempts: u32,
}

impl Job {
    /// `None` when the row cannot be a job (its text is not a statement or
    /// its operation unknown): such a row is dead-lettered.
    pub fn from_claimed(c: &Claimed) -> Result<Job, String> {
        let op = Op::parse(&c.op).ok_or_else(|| format!("unknown operation '{}'", c.op))?;
        let statement = serde_json::from_str(&c.body).map_err(|e| format!("stored statement is not JSON: {e}"))?;
        Ok(Job { outbox_id: c.id, op, statement_id: c.statement_id.clone(), statement, attempts: c.attempts })
    }
}

/// What every adapter sends through: one HTTP client, paced by the target's
/// rate limiter.
pub struct Channel {
    pub client: reqwest::Client,
    limiter: Mutex<RateLimiter>,
}

impl Channel {
    pub fn new(client: reqwest::Client, limiter: RateLimiter) -> Channel {
        Channel { client, limiter: Mutex::new(limiter) }
    }

    /// Sends `request` once the rate allows; a 429 slows the target down.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, reqwest::Error> {
        let wait = self.limiter.lock().expect("rate limiter lock").reserve(Instant::now());
        if wait > Duration::ZERO {
            tokio::time::sleep(wait).await;
        }
        let response = request.send().await?;
        if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            self.limiter.lock().expect("rate limiter lock").throttled(Instant::now());
        }
        Ok(response)
    }
}

pub enum Adapter {
    XapiLrs(xapi_lrs::XapiLrs),
    Webhook(webhook::Webhook),
}

impl Adapter {
    /// Builds the adapter of `target`, reading its secrets.
    pub fn new(target: &TargetConfig) -> anyhow::Result<Adapter> {
        let secret = |r: &Option<SecretRef>| r.as_ref().map(|r| r.read(&target.name)).transpose();
        Ok(match &target.kind {
            KindConfig::XapiLrs { url, username, password, version } => {
                let credentials = match (secret(username)?, secret(password)?) {
                    (Some(u), Some(p)) => Some((u, p)),
                    (None, None) => None,
                    _ => anyhow::bail!("forwarder '{}': set both username and password, or neither", target.name),
                };
                Adapter::XapiLrs(xapi_lrs::XapiLrs::new(url, credentials, version))
            }
            KindConfig::Webhook { url, secret: key } => Adapter::Webhook(webhook::Webhook::new(url, secret(key)?)),
        })
    }

    /// Delivers `jobs`; one outcome per job, in order.
    pub async fn deliver(&self, channel: &Channel, jobs: &[Job]) -> Vec<Outcome> {
        match self {
            Adapter::XapiLrs(a) => a.deliver(channel, jobs).await,
            Adapter::Webhook(a) => a.deliver(channel, jobs).await,
        }
    }
}

/// Reads a response's status, headers and (the start of) its body.
pub async fn read_response(response: reqwest::Response) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    (status, headers, body)
}
