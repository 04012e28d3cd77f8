//! HiBob Bob Learning (`forwarders.md` §1): a provider integration, the
//! course catalog (`training-content`, `sourceLink` = the activity IRI, which
//! is how Bob ties progress to a course), and completed / passed / failed
//! statements, one per call, keyed by our statement id (409 = delivered
//! before). Service-user Basic auth; Bob blocks addresses after repeated
//! failed logins, so a 401/403 pauses the target (see `outcome::classify`).

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};

use super::probe::TestCall;
use super::{Bucket, Channel, Job, read_response};
use crate::forward::outcome::{Outcome, classify, excerpt};
use crate::forward::router::Op;
use crate::xapi::output::language_value;

/// Bob's documented limits: statements 300/min, content calls 10/min,
/// integration calls 3/min. Each bucket's burst and refill together make
/// the minute's limit (`Bucket`): 5 + 295, 1 + 9, 1 + 2.
pub const BUCKETS: &[Bucket] =
    &[Bucket::new("statements", 300, 60, 5), Bucket::new("catalog", 10, 60, 1), Bucket::new("integration", 3, 60, 1)];
const _: () = assert!(crate::forward::rate::keep_within_limits(BUCKETS));

/// Bob's field id of a course's stable identifier.
const EXTERNAL_ID: &str = "/trainingContent/externalIdentifier";

/// Most items in one training-content call.
const CATALOG_BATCH: usize = 500;

pub struct Bob {
    integrations_url: String,
    provider: String,
    provider_name: Option<String>,
    user: (String, String),
    integration_ready: AtomicBool,
}

impl Bob {
    pub fn new(url: &str, provider: &str, provider_name: Option<String>, user: (String, String)) -> Bob {
        Bob {
            integrations_url: format!("{}/learning/lms-integrations", url.trim_end_matches('/')),
            provider: provider.to_owned(),
            provider_name,
            user,
            integration_ready: AtomicBool::new(false),
        }
    }

    pub async fn deliver(&self, channel: &Channel, jobs: &[Job]) -> Vec<Outcome> {
        if !self.integration_ready.load(Ordering::Acquire) {
            if let Err(outcome) = self.create_integration(channel).await {
                return vec![outcome; jobs.len()];
            }
            self.integration_ready.store(true, Ordering::Release);
        }
        let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
        // The catalog first: progress on a course Bob does not know is lost.
        let catalog: Vec<usize> = (0..jobs.len()).filter(|i| jobs[*i].op == Op::Catalog).collect();
        for chunk in catalog.chunks(CATALOG_BATCH) {
            let batch: Vec<&Job> = chunk.iter().map(|i| &jobs[*i]).collect();
            for (i, outcome) in chunk.iter().zip(self.push_catalog(channel, &batch).await) {
                outcomes[*i] = Some(outcome);
            }
        }
        for (i, job) in jobs.iter().enumerate().filter(|(_, j)| j.op != Op::Catalog) {
            outcomes[i] = Some(self.push_progress(channel, job).await);
        }
        outcomes.into_iter().map(|o| o.expect("every job has an outcome")).collect()
    }

    fn request(&self, method: reqwest::Method, url: &str, client: &reqwest::Client) -> reqwest::RequestBuilder {
        client.request(method, url).basic_auth(&self.user.0, Some(&self.user.1))
    }

    /// Bob documents no read: the test creates our integration, which
    /// changes nothing once it exists (and the first delivery makes it anyway).
    pub fn test_call(&self, client: &reqwest::Client) -> TestCall {
        let request = self.integration_request(client);
        TestCall::new(reqwest::Method::POST, &self.integrations_url, request)
            .in_bucket(Some("integration"))
            .fine_when(|status, text| status.is_success() || integration_exists(status, text))
    }

    fn integration_request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut body = json!({"providerIdentifier": self.provider});
        if let Some(name) = &self.provider_name {
            body["name"] = json!(name);
        }
        self.request(reqwest::Method::POST, &self.integrations_url, client).json(&body)
    }

    /// Creates our integration; one that exists already is as good.
    async fn create_integration(&self, channel: &Channel) -> Result<(), Outcome> {
        let request = self.integration_request(&channel.client);
        let response = channel.send_in(Some("integration"), request).await.map_err(|e| Outcome::network(&e))?;
        let (status, headers, text) = read_response(response).await;
        match classify(status, &headers, &text) {
            Outcome::Delivered { .. } => Ok(()),
            _ if integration_exists(status, &text) => Ok(()),
            other => Err(other),
        }
    }

    /// Creates the jobs' courses; those Bob already has are patched instead.
    async fn push_catalog(&self, channel: &Channel, jobs: &[&Job]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
        let mut pending = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            match job.statement().and_then(|s| catalog_item(&s)) {
                Ok(item) => pending.push((i, item)),
                Err(reason) => outcomes[i] = Some(Outcome::Dead { http_status: None, reason }),
            }
        }
        for method in [reqwest::Method::POST, reqwest::Method::PATCH] {
            if pending.is_empty() {
                break;
            }
            let last = method == reqwest::Method::PATCH;
            let items: Vec<&Value> = pending.iter().map(|(_, item)| item).collect();
            let (status, succeeded, text) = match self.catalog_call(channel, method, &items).await {
                Ok(answer) => answer,
                Err(outcome) => {
                    for (i, _) in pending.drain(..) {
                        outcomes[i] = Some(outcome.clone());
                    }
                    break;
                }
            };
            let (done, refused): (Vec<_>, Vec<_>) =
                pending.into_iter().partition(|(_, item)| succeeded.contains(&item[EXTERNAL_ID]));
            for (i, _) in done {
                outcomes[i] = Some(Outcome::Delivered { http_status: Some(status) });
            }
            if last {
                let reason = format!("Bob refused the course: {}", excerpt(&text));
                for (i, _) in &refused {
                    outcomes[*i] = Some(Outcome::Dead { http_status: Some(status), reason: reason.clone() });
                }
            }
            pending = refused;
        }
        outcomes.into_iter().map(|o| o.expect("every catalog job has an outcome")).collect()
    }

    /// One training-content call: its status, the external identifiers Bob
    /// took, and its text; or the outcome for all when Bob took none.
    async fn catalog_call(
        &self,
        channel: &Channel,
        method: reqwest::Method,
        items: &[&Value],
    ) -> Result<(u16, Vec<Value>, String), Outcome> {
        let url = format!("{}/{}/training-content", self.integrations_url, self.provider);
        let request = self.request(method, &url, &channel.client).json(&json!({ "items": items }));
        let response = channel.send_in(Some("catalog"), request).await.map_err(|e| Outcome::network(&e))?;
        let (status, headers, text) = read_response(response).await;
        match classify(status, &headers, &text) {
            Outcome::Delivered { .. } => Ok((status.as_u16(), succeeded_ids(&text), text)),
            other => Err(other),
        }
    }

    async fn push_progress(&self, channel: &Channel, job: &Job) -> Outcome {
        let statement = match job.statement() {
            Ok(s) => s,
            Err(reason) => return Outcome::Dead { http_status: None, reason },
        };
        let statement = match progress_statement(&job.statement_id, &statement) {
            Ok(s) => s,
            Err(reason) => return Outcome::Park { http_status: None, reason },
        };
        let url = format!("{}/{}/xapi/statements", self.integrations_url, self.provider);
        let request = self.request(reqwest::Method::POST, &url, &channel.client).json(&statement);
        match channel.send_in(Some("statements"), request).await {
            Err(e) => Outcome::network(&e),
            Ok(response) => {
                let (status, headers, text) = read_response(response).await;
                match status.as_u16() {
                    // The statement id is already there: delivered before.
                    409 => Outcome::Delivered { http_status: Some(409) },
                    204 => Outcome::Skipped { http_status: Some(204), reason: "Bob ignores this verb".into() },
                    _ => classify(status, &headers, &text),
                }
            }
        }
    }
}

/// The external identifiers in a `{"success": [...]}` answer.
/// Bob's answer to creating an integration it has already.
fn integration_exists(status: reqwest::StatusCode, text: &str) -> bool {
    status == reqwest::StatusCode::CONFLICT
        || (status == reqwest::StatusCode::BAD_REQUEST && text.to_lowercase().contains("exist"))
}

fn succeeded_ids(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("success").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

/// A training-content item for the statement's activity: Bob's field ids as
/// keys; the activity IRI is both the stable identifier and the `sourceLink`.
fn catalog_item(statement: &Value) -> Result<Value, String> {
    let iri = statement.pointer("/object/id").and_then(Value::as_str).ok_or("the statement has no activity")?;
    if !(iri.starts_with("https://") || iri.starts_with("http://")) {
        return Err(format!(
            "the activity IRI {iri} is not an http(s) URL, which Bob needs as the course's sourceLink"
        ));
    }
    let definition = statement.pointer("/object/definition");
    let title = definition.and_then(|d| d.get("name")).and_then(language_value).unwrap_or(iri);
    let mut item = Map::new();
    item.insert(EXTERNAL_ID.into(), json!(iri));
    item.insert("/trainingContent/title".into(), json!(title));
    item.insert("/trainingContent/sourceLink".into(), json!(iri));
    if let Some(description) = definition.and_then(|d| d.get("description")).and_then(language_value) {
        item.insert("/trainingContent/description".into(), json!(description));
    }
    Ok(Value::Object(item))
}

/// The statement as Bob takes it: our id, the learner by work e-mail, the
/// ADL verb, the course by its `sourceLink`, timestamp and result.
fn progress_statement(id: &str, statement: &Value) -> Result<Value, String> {
    let email = statement
        .pointer("/actor/mbox")
        .and_then(Value::as_str)
        .and_then(|m| m.strip_prefix("mailto:"))
        .map(|m| m.trim().to_lowercase())
        .ok_or("the actor has no mbox: Bob knows learners by work e-mail")?;
    let verb = statement.pointer("/verb/id").and_then(Value::as_str).ok_or("no verb")?;
    let word = verb.rsplit('/').next().unwrap_or(verb);
    let mut out = json!({
        "id": id,
        "timestamp": statement.get("timestamp").cloned().unwrap_or(Value::Null),
        "actor": {"objectType": "Agent", "mbox": format!("mailto:{email}")},
        "verb": {"id": verb, "display": {"en-US": word}},
        "object": {"objectType": "Activity", "id": statement.pointer("/object/id").cloned().unwrap_or(Value::Null)},
    });
    if let Some(result) = statement.get("result") {
        out["result"] = result.clone();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_statements_name_the_learner_by_email() {
        let s = json!({"actor": {"name": "Ann", "mbox": "mailto:Ann@Example.COM"},
                       "verb": {"id": "http://adlnet.gov/expapi/verbs/passed", "display": {"fr": "réussi"}},
                       "object": {"id": "https://lms/c1", "definition": {"name": {"en-US": "C1"}}},
                       "timestamp": "2026-01-01T00:00:00Z", "result": {"score": {"scaled": 0.9}}});
        let out = progress_statement("0b6c9e7c-0000-4000-8000-000000000001", &s).unwrap();
        assert_eq!(
            out,
            json!({"id": "0b6c9e7c-0000-4000-8000-000000000001", "timestamp": "2026-01-01T00:00:00Z",
                   "actor": {"objectType": "Agent", "mbox": "mailto:ann@example.com"},
                   "verb": {"id": "http://adlnet.gov/expapi/verbs/passed", "display": {"en-US": "passed"}},
                   "object": {"objectType": "Activity", "id": "https://lms/c1"},
                   "result": {"score": {"scaled": 0.9}}})
        );
        let account = json!({"actor": {"account": {"homePage": "https://x", "name": "a"}}, "verb": {"id": "v"}});
        assert!(progress_statement("x", &account).is_err());
    }

    #[test]
    fn catalog_items_use_the_iri_as_source_link() {
        let s = json!({"object": {"id": "https://lms/c1", "definition": {"name": {"de": "Kurs", "en": "Course"}}}});
        let item = catalog_item(&s).unwrap();
        assert_eq!(item["/trainingContent/title"], "Course");
        assert_eq!(item["/trainingContent/sourceLink"], "https://lms/c1");
        assert!(catalog_item(&json!({"object": {"id": "urn:x:1"}})).is_err());
    }
}
