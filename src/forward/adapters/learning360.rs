//! 360Learning (API v2, `forwarders.md` §4): where a learner is on a course,
//! as statistics of an API-based integration. A claim's rows go in bulk jobs
//! (`POST …/bulk/integrations/{id}/stats`), each polled to completion, whose
//! per-row results close the rows. OAuth2 client credentials; every call also
//! names the API version.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::join_all;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{Bucket, Ctx, Job, score_percent};
use crate::forward::identity::Learner;
use crate::forward::outcome::{Outcome, classify, excerpt};
use crate::forward::router::Op;
use crate::forward::token::TokenSource;
use crate::store::outbox;
use crate::xapi::formats::duration_secs;
use crate::xapi::formats::parse_timestamp;

/// 360's limits per company: writes 10/s, reads 50/s. Each bucket's burst
/// and refill together make the second's limit (`Bucket`): 2 + 8, 10 + 40.
pub const BUCKETS: &[Bucket] = &[Bucket::new(WRITE, 10, 1, 2), Bucket::new(READ, 50, 1, 10)];
const _: () = assert!(crate::forward::rate::keep_within_limits(BUCKETS));

/// 360's buckets: POST, PATCH, PUT and DELETE calls (the token request
/// too), and GET calls.
pub const WRITE: &str = "write";
const READ: &str = "read";

/// Most rows in one bulk job.
const MAX_ROWS: usize = 10_000;

/// 360 runs at most three bulk operations of a company at once.
const CONCURRENT_JOBS: usize = 3;

const PROGRESS_EXTENSION: &str = "https://w3id.org/xapi/cmi5/result/extensions/progress";

const API_VERSION: (&str, &str) = ("360-api-version", "v2.0");

const FIRST_POLL: Duration = Duration::from_millis(500);
const LONGEST_POLL: Duration = Duration::from_secs(4);

/// Time kept back from the lease to record the outcomes.
const CLOSING_MARGIN: Duration = Duration::from_secs(2);

pub struct Learning360 {
    base: String,
    integration_id: String,
    token: TokenSource,
    lease: Duration,
    slots: Semaphore,
}

impl Learning360 {
    pub fn new(url: &str, integration_id: &str, token: TokenSource, lease: Duration) -> Learning360 {
        Learning360 {
            base: url.trim_end_matches('/').to_owned(),
            integration_id: integration_id.to_owned(),
            token,
            lease,
            slots: Semaphore::new(CONCURRENT_JOBS),
        }
    }

    /// The test call is a token request: it shows the credentials taken.
    pub fn test_call(&self, client: &reqwest::Client) -> super::probe::TestCall {
        self.token.test_call(client)
    }

    pub async fn deliver(&self, ctx: &Ctx<'_>, jobs: &[Job]) -> Vec<Outcome> {
        // Rows must be closed while the claim's lease holds, or another round
        // would claim them again meanwhile.
        let deadline = Instant::now() + self.lease.saturating_sub(CLOSING_MARGIN).max(self.lease / 2);
        let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
        let mut rows = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            match stats_row(ctx, job).await {
                Ok(row) => rows.push((i, row)),
                Err(outcome) => outcomes[i] = Some(outcome),
            }
        }
        let chunks: Vec<&[(usize, Value)]> = rows.chunks(MAX_ROWS).collect();
        let results = join_all(chunks.iter().map(|chunk| self.bulk_job(ctx, chunk, deadline))).await;
        for (chunk, results) in chunks.iter().zip(results) {
            for ((i, _), outcome) in chunk.iter().zip(results) {
                outcomes[*i] = Some(outcome);
            }
        }
        outcomes.into_iter().map(|o| o.expect("every job has an outcome")).collect()
    }

    fn request(&self, ctx: &Ctx<'_>, method: reqwest::Method, url: &str, token: &str) -> reqwest::RequestBuilder {
        ctx.channel.client.request(method, url).bearer_auth(token).header(API_VERSION.0, API_VERSION.1)
    }

    /// One bulk job: submitted once a slot is free, polled, its results read.
    async fn bulk_job(&self, ctx: &Ctx<'_>, chunk: &[(usize, Value)], deadline: Instant) -> Vec<Outcome> {
        let all = |outcome: Outcome| vec![outcome; chunk.len()];
        let Ok(Ok(_slot)) = tokio::time::timeout_at(deadline, self.slots.acquire()).await else {
            return all(unfinished("waiting for one of the three bulk slots"));
        };
        let input: Vec<&Value> = chunk.iter().map(|(_, row)| row).collect();
        let operation = match self.submit(ctx, &input).await {
            Ok(id) => id,
            Err(outcome) => return all(outcome),
        };
        match self.results(ctx, &operation, deadline).await {
            Ok(results) => match_results(&input, &results),
            Err(outcome) => all(outcome),
        }
    }

    /// Submits the rows; the bulk operation's id.
    async fn submit(&self, ctx: &Ctx<'_>, input: &[&Value]) -> Result<String, Outcome> {
        let url = format!("{}/api/v2/bulk/integrations/{}/stats", self.base, self.integration_id);
        let body = json!({ "input": input });
        let (status, headers, text) = self
            .token
            .send(ctx.channel, Some(WRITE), |token| self.request(ctx, reqwest::Method::POST, &url, token).json(&body))
            .await?;
        if status.is_success() {
            return operation_id(&headers, &text).ok_or_else(|| Outcome::Retry {
                http_status: Some(status.as_u16()),
                error: "the bulk answer names no operation (no Location)".into(),
                after: None,
                throttled: false,
            });
        }
        if status == StatusCode::NOT_FOUND && error_code(&text).as_deref() == Some("integrationNotFound") {
            return Err(Outcome::PauseTarget {
                http_status: Some(404),
                reason: format!("360Learning knows no integration '{}': check integration_id", self.integration_id),
            });
        }
        // 429 bulkOperationsConcurrencyLimitReached (other jobs of the
        // company run) and 503 are retried; 400 invalidInput / inputTooLong
        // are dead; 401 after a new token and 403 pause the target.
        Err(classify(status, &headers, &text))
    }

    /// Polls operation `id` (every 500 ms at first, then less often) until it
    /// is over, then reads its results.
    async fn results(&self, ctx: &Ctx<'_>, id: &str, deadline: Instant) -> Result<Vec<Value>, Outcome> {
        let url = format!("{}/api/v2/bulk/operations/{id}", self.base);
        let mut wait = FIRST_POLL;
        let mut last_seen = "submitted".to_owned();
        loop {
            if Instant::now() + wait >= deadline {
                return Err(unfinished(&format!("operation {id}, last seen {last_seen}")));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 3 / 2).min(LONGEST_POLL);
            let Some((status, _, text)) = self.read(ctx, &url, deadline).await? else { continue };
            if !status.is_success() {
                last_seen = format!("HTTP {}: {}", status.as_u16(), excerpt(&text));
                continue;
            }
            let state = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["status"].as_str().map(str::to_owned));
            match state.as_deref() {
                Some("completed") => {}
                Some(s @ ("failed" | "error" | "cancelled" | "canceled" | "aborted")) => {
                    return Err(Outcome::Retry {
                        http_status: Some(status.as_u16()),
                        error: format!("360Learning's bulk operation {id} ended {s}"),
                        after: None,
                        throttled: false,
                    });
                }
                other => {
                    last_seen = other.unwrap_or("without a status").to_owned();
                    continue;
                }
            }
            let results_url = format!("{url}/results");
            let Some((status, _, text)) = self.read(ctx, &results_url, deadline).await? else { continue };
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Array(results)) if status.is_success() => return Ok(results),
                _ => {
                    last_seen = format!("results HTTP {}: {}", status.as_u16(), excerpt(&text));
                }
            }
        }
    }

    /// A GET while polling: the answer, `None` for a transient failure (the
    /// poll goes on), or the outcome when 360 refuses us.
    async fn read(
        &self,
        ctx: &Ctx<'_>,
        url: &str,
        deadline: Instant,
    ) -> Result<Option<(StatusCode, HeaderMap, String)>, Outcome> {
        let call = self
            .token
            .send_follow_up(ctx.channel, Some(READ), |token| self.request(ctx, reqwest::Method::GET, url, token));
        match tokio::time::timeout_at(deadline, call).await {
            Err(_) => Err(unfinished(&format!("a poll of {url} outlasted the lease"))),
            Ok(Err(Outcome::Retry { .. })) => Ok(None),
            Ok(Err(outcome)) => Err(outcome),
            Ok(Ok((status, headers, text))) => match status.as_u16() {
                401 | 403 => Err(classify(status, &headers, &text)),
                _ => Ok(Some((status, headers, text))),
            },
        }
    }
}

/// A job not over before the lease runs out is sent again later. That is
/// harmless: 360's stats are upserts keyed by (course, user,
/// firstActivityAt), and our firstActivityAt is stable, so the resubmission
/// updates the attempt the first one made (or will make) instead of adding one.
fn unfinished(what: &str) -> Outcome {
    Outcome::Retry {
        http_status: None,
        error: format!("the bulk job was not over before the lease ran out ({what}); it is sent again"),
        after: None,
        throttled: false,
    }
}

/// The operation id: the last segment of `Location`, else the body's `_id`.
fn operation_id(headers: &HeaderMap, text: &str) -> Option<String> {
    let from_location = headers
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.trim_end_matches('/').rsplit('/').next().map(str::to_owned));
    from_location.filter(|id| !id.is_empty()).or_else(|| {
        let body: Value = serde_json::from_str(text).ok()?;
        body.get("_id").or(body.get("id")).and_then(Value::as_str).map(str::to_owned)
    })
}

/// `{"error":{"code": …}}`, or `{"error": "…"}`.
fn error_code(text: &str) -> Option<String> {
    let body: Value = serde_json::from_str(text).ok()?;
    let error = body.get("error")?;
    error.get("code").unwrap_or(error).as_str().map(str::to_owned)
}

/// Each row's outcome from the operation's results: by position, checked
/// against the row sent back as `input` (else looked for among the rest).
fn match_results(input: &[&Value], results: &[Value]) -> Vec<Outcome> {
    let mut used = vec![false; results.len()];
    input
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let fits = |j: usize| !used[j] && same_row(&results[j]["input"], row);
            let at = if i < results.len() && fits(i) { Some(i) } else { (0..results.len()).find(|j| fits(*j)) };
            match at {
                Some(j) => {
                    used[j] = true;
                    row_outcome(&results[j])
                }
                None => Outcome::Retry {
                    http_status: None,
                    error: "360Learning's results have none for this row".into(),
                    after: None,
                    throttled: false,
                },
            }
        })
        .collect()
}

fn same_row(echoed: &Value, sent: &Value) -> bool {
    ["courseIdentifier", "userIdentifier", "firstActivityAt", "lastActivityAt"].iter().all(|k| echoed[k] == sent[k])
}

fn row_outcome(result: &Value) -> Outcome {
    let message = result["errorMessage"].as_str().unwrap_or("no message");
    match result["status"].as_str() {
        Some("success") => Outcome::Delivered { http_status: None },
        Some("error") if names_unknown_learner_or_course(message) => {
            Outcome::Park { http_status: None, reason: format!("360Learning: {}", excerpt(message)) }
        }
        Some("error") => Outcome::Dead { http_status: None, reason: format!("360Learning: {}", excerpt(message)) },
        other => Outcome::Retry {
            http_status: None,
            error: format!("360Learning's result for this row has status {other:?}"),
            after: None,
            throttled: false,
        },
    }
}

/// An operator can mend these (create the user, map the course), then retry.
fn names_unknown_learner_or_course(message: &str) -> bool {
    let m = message.to_lowercase();
    (m.contains("user") || m.contains("course"))
        && ["not found", "unknown", "does not exist", "doesn't exist", "no such"].iter().any(|s| m.contains(s))
}

/// The stats row for a job, or its outcome when it has none.
async fn stats_row(ctx: &Ctx<'_>, job: &Job) -> Result<Value, Outcome> {
    let dead = |reason: String| Outcome::Dead { http_status: None, reason };
    let park = |reason: String| Outcome::Park { http_status: None, reason };
    let statement = job.statement().map_err(dead)?;
    let iri = statement.pointer("/object/id").and_then(Value::as_str).ok_or_else(|| dead("no activity".into()))?;
    let course = ctx.courses.require(iri).map_err(park)?;
    let actor = statement.get("actor").unwrap_or(&Value::Null);
    let (_, learner) = ctx.identities.resolve(ctx.db, actor).await.map_err(|e| database(&e))?;
    let user = match learner {
        Learner::Email(mail) => json!({"type": "mail", "value": mail}),
        Learner::Id(id) => json!({"type": "internalId", "value": id}),
        Learner::Missing(reason) => return Err(park(reason)),
    };
    let result = statement.get("result").unwrap_or(&Value::Null);
    let progress = progress(job.op, result)?;
    let last = timestamp(&statement).ok_or_else(|| dead("the statement has no valid timestamp".into()))?;
    let first = first_activity(ctx, job).await?.map_or(last, |first| first.min(last));
    let mut row = json!({
        "courseIdentifier": {"type": "externalId", "value": course.id},
        "userIdentifier": user,
        "progress": progress,
        "timeSpent": time_spent_ms(result),
        "firstActivityAt": first.to_rfc3339_opts(SecondsFormat::Millis, true),
        "lastActivityAt": last.to_rfc3339_opts(SecondsFormat::Millis, true),
    });
    if let Some(score) = score_percent(result) {
        row["score"] = json!(score);
    }
    match job.op {
        Op::Pass => row["result"] = json!("success"),
        Op::Fail => row["result"] = json!("failed"),
        _ => {}
    }
    Ok(row)
}

fn database(e: &anyhow::Error) -> Outcome {
    Outcome::Retry { http_status: None, error: format!("database: {e:#}"), after: None, throttled: false }
}

/// When the learner began on the activity, as far as this target was told:
/// the timestamp of the statement of its earliest row for the order key.
/// Stable over redeliveries and replays, so 360 updates one attempt.
async fn first_activity(ctx: &Ctx<'_>, job: &Job) -> Result<Option<DateTime<Utc>>, Outcome> {
    let body = outbox::first_statement(ctx.db, ctx.target, &job.order_key).await.map_err(|e| database(&e))?;
    Ok(body.and_then(|b| serde_json::from_str::<Value>(&b).ok()).and_then(|s| timestamp(&s)))
}

fn timestamp(statement: &Value) -> Option<DateTime<Utc>> {
    statement.get("timestamp").and_then(Value::as_str).and_then(parse_timestamp)
}

/// 0–100: an outcome is 100 (a failure only if it completed), progress is
/// the cmi5 progress extension; without it a progressed statement says nothing.
fn progress(op: Op, result: &Value) -> Result<i64, Outcome> {
    let extension = result.pointer("/extensions").and_then(|e| e.get(PROGRESS_EXTENSION)).and_then(Value::as_f64);
    let percent = |p: f64| p.round().clamp(0.0, 100.0) as i64;
    match op {
        Op::Complete | Op::Pass => Ok(100),
        Op::Fail if result["completion"] == json!(true) => Ok(100),
        Op::Fail => Ok(extension.map_or(0, percent)),
        Op::Progress => extension.map(percent).ok_or_else(|| Outcome::Skipped {
            http_status: None,
            reason: "no cmi5 progress extension: nothing to tell 360Learning".into(),
        }),
        other => Err(Outcome::Unsupported { reason: format!("360Learning takes no '{}' row", other.as_str()) }),
    }
}

/// `result.duration` in milliseconds, at least 1 (360 refuses 0).
fn time_spent_ms(result: &Value) -> i64 {
    let ms = result.get("duration").and_then(Value::as_str).and_then(duration_secs).map_or(0.0, |s| s * 1000.0);
    (ms.round() as i64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_score_and_time_follow_the_statement() {
        let ext = json!({"extensions": {PROGRESS_EXTENSION: 42.4}, "completion": false});
        assert_eq!(progress(Op::Complete, &Value::Null).unwrap(), 100);
        assert_eq!(progress(Op::Fail, &ext).unwrap(), 42);
        assert_eq!(progress(Op::Fail, &json!({"completion": true})).unwrap(), 100);
        assert_eq!(progress(Op::Fail, &Value::Null).unwrap(), 0);
        assert_eq!(progress(Op::Progress, &ext).unwrap(), 42);
        assert!(matches!(progress(Op::Progress, &json!({})), Err(Outcome::Skipped { .. })));
        assert_eq!(score_percent(&json!({"score": {"scaled": 0.875}})), Some(87.5));
        assert_eq!(score_percent(&json!({"score": {"raw": 3, "max": 4}})), Some(75.0));
        assert_eq!(score_percent(&json!({"score": {"scaled": -0.5}})), Some(0.0));
        assert_eq!(score_percent(&json!({"score": {"raw": 3}})), None);
        assert_eq!(time_spent_ms(&json!({"duration": "PT1H2M3.5S"})), 3_723_500);
        assert_eq!(time_spent_ms(&json!({"duration": "P1DT1M"})), 86_460_000);
        assert_eq!(time_spent_ms(&json!({"duration": "PT0S"})), 1);
        assert_eq!(time_spent_ms(&Value::Null), 1);
    }

    #[test]
    fn results_match_rows_by_position_checked_against_input() {
        let row = |user: &str| {
            json!({"courseIdentifier": {"type": "externalId", "value": "c"},
                                      "userIdentifier": {"type": "mail", "value": user},
                                      "firstActivityAt": "x", "lastActivityAt": "y"})
        };
        let (a, b, c) = (row("a"), row("b"), row("c"));
        let results = vec![
            json!({"input": b, "status": "error", "errorMessage": "User not found: b"}),
            json!({"input": a, "status": "success", "resourceId": "r1"}),
            json!({"input": c, "status": "error", "errorMessage": "progress must be an integer"}),
        ];
        let outcomes = match_results(&[&a, &b, &c, &row("d")], &results);
        assert_eq!(outcomes[0], Outcome::Delivered { http_status: None });
        assert!(matches!(&outcomes[1], Outcome::Park { reason, .. } if reason.contains("User not found")));
        assert!(matches!(&outcomes[2], Outcome::Dead { .. }));
        assert!(matches!(&outcomes[3], Outcome::Retry { .. }));
    }
}
