//! Another LRS: statements are POSTed in batches, exactly as stored (the
//! receiving LRS sets its own `stored` and `authority`). The statement id is
//! kept, so a redelivery is the "same statement" and changes nothing there.

use super::probe::TestCall;
use super::{Channel, Job, read_response};
use crate::forward::outcome::{Outcome, classify, excerpt};

pub struct XapiLrs {
    statements_url: String,
    credentials: Option<(String, String)>,
    version: String,
}

impl XapiLrs {
    pub fn new(url: &str, credentials: Option<(String, String)>, version: &str) -> XapiLrs {
        XapiLrs {
            statements_url: format!("{}/statements", url.trim_end_matches('/')),
            credentials,
            version: version.to_owned(),
        }
    }

    pub async fn deliver(&self, channel: &Channel, jobs: &[Job]) -> Vec<Outcome> {
        if jobs.len() == 1 {
            return vec![self.put_one(channel, &jobs[0]).await];
        }
        // The stored texts, joined: no statement is parsed or serialised again.
        let bodies: Vec<&str> = jobs.iter().map(|j| j.body.as_str()).collect();
        let batch = format!("[{}]", bodies.join(","));
        let request = self.request(&channel.client, reqwest::Method::POST, &self.statements_url).body(batch);
        let outcome = match channel.send(request).await {
            Err(e) => Outcome::network(&e),
            Ok(response) => {
                let (status, headers, body) = read_response(response).await;
                classify(status, &headers, &body)
            }
        };
        match outcome {
            // One statement can refuse the whole batch (a conflicting id, an
            // invalid statement, the size): each alone says which.
            Outcome::Dead { .. } => {
                let mut outcomes = Vec::with_capacity(jobs.len());
                for job in jobs {
                    outcomes.push(self.put_one(channel, job).await);
                }
                outcomes
            }
            other => vec![other; jobs.len()],
        }
    }

    /// `PUT ?statementId=`: 204 stored, 409 already there (a statement with
    /// this id exists: delivered before, by us or by someone).
    async fn put_one(&self, channel: &Channel, job: &Job) -> Outcome {
        // Statement ids are UUIDs: nothing in them needs escaping.
        let url = format!("{}?statementId={}", self.statements_url, job.statement_id);
        let request = self.request(&channel.client, reqwest::Method::PUT, &url).body(job.body.clone());
        match channel.send(request).await {
            Err(e) => Outcome::network(&e),
            Ok(response) => {
                let (status, headers, body) = read_response(response).await;
                if status == reqwest::StatusCode::CONFLICT {
                    return Outcome::Delivered { http_status: Some(409) };
                }
                match classify(status, &headers, &body) {
                    Outcome::Dead { http_status, .. } => Outcome::Dead {
                        http_status,
                        reason: format!("the LRS refused the statement: {}", excerpt(&body)),
                    },
                    other => other,
                }
            }
        }
    }

    /// A lookup of the nil statement id, which no statement has: an LRS that
    /// takes our credentials answers 404 (or 200), and nothing is written.
    pub fn test_call(&self, client: &reqwest::Client) -> TestCall {
        let url = format!("{}?statementId=00000000-0000-0000-0000-000000000000", self.statements_url);
        let request = self.request(client, reqwest::Method::GET, &url);
        TestCall::new(reqwest::Method::GET, &url, request)
            .fine_when(|status, _| status.is_success() || status == reqwest::StatusCode::NOT_FOUND)
    }

    fn request(&self, client: &reqwest::Client, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = client
            .request(method, url)
            .header("X-Experience-API-Version", &self.version)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        match &self.credentials {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }
}
