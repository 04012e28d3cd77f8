//! Another LRS: statements are POSTed in batches, exactly as stored (the
//! receiving LRS sets its own `stored` and `authority`). The statement id is
//! kept, so a redelivery is the "same statement" and changes nothing there.
//! A statement with attachments that have no `fileUrl` goes alone, as
//! `multipart/mixed` with a part holding each one's content (xAPI 1.0.3
//! Communication 1.5.2): the receiving LRS refuses it without them.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::Value;

use super::probe::TestCall;
use super::{Channel, Ctx, Job, read_response};
use crate::error::LrsError;
use crate::forward::outcome::{Outcome, classify, excerpt};
use crate::http::multipart::{attachment_head, closing, statements_head};
use crate::store::attachments::{self, StoredAttachment};
use crate::xapi::attachment;

/// Attachment content is read from the database this much at a time as it
/// is sent: memory stays bounded whatever the attachment's size.
const READ_BYTES: usize = 256 * 1024;

/// A request body sent as it is read.
type BodyStream = BoxStream<'static, Result<Bytes, LrsError>>;

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

    /// Statements with attachment content go one by one as multipart; the
    /// others in batches, in between, in order.
    pub async fn deliver(&self, ctx: &Ctx<'_>, jobs: &[Job]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut plain_from = 0;
        for (i, job) in jobs.iter().enumerate() {
            let hashes = content_hashes(&job.body);
            if hashes.is_empty() {
                continue;
            }
            outcomes.extend(self.deliver_plain(ctx.channel, &jobs[plain_from..i]).await);
            outcomes.push(self.put_with_attachments(ctx, job, &hashes).await);
            plain_from = i + 1;
        }
        outcomes.extend(self.deliver_plain(ctx.channel, &jobs[plain_from..]).await);
        outcomes
    }

    async fn deliver_plain(&self, channel: &Channel, jobs: &[Job]) -> Vec<Outcome> {
        match jobs {
            [] => Vec::new(),
            [job] => vec![self.put_one(channel, job).await],
            _ => self.post_batch(channel, jobs).await,
        }
    }

    async fn post_batch(&self, channel: &Channel, jobs: &[Job]) -> Vec<Outcome> {
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
        let request = self.request(&channel.client, reqwest::Method::PUT, &self.put_url(job)).body(job.body.clone());
        self.put(channel, request).await
    }

    /// The statement and its attachments' content as `multipart/mixed`. An
    /// attachment we do not hold cannot be sent: the row is dead, saying which.
    async fn put_with_attachments(&self, ctx: &Ctx<'_>, job: &Job, hashes: &[String]) -> Outcome {
        let held = match attachments::by_hashes(ctx.db, hashes).await {
            Ok(held) => held,
            Err(e) => return Outcome::Retry { http_status: None, error: e.to_string(), after: None, throttled: false },
        };
        if let Some(missing) = hashes.iter().find(|h| !held.iter().any(|a| &a.sha2 == *h)) {
            let reason = format!("the content of attachment {missing} is not stored here, so it cannot be sent");
            return Outcome::Dead { http_status: None, reason };
        }
        let boundary = format!("xlrs-{}", uuid::Uuid::new_v4().simple());
        let body = multipart_body(ctx.db.clone(), &boundary, job.body.clone(), held);
        let content_type = format!("multipart/mixed; boundary={boundary}");
        let request = self
            .request_as(&ctx.channel.client, reqwest::Method::PUT, &self.put_url(job), &content_type)
            .body(reqwest::Body::wrap_stream(body));
        self.put(ctx.channel, request).await
    }

    fn put_url(&self, job: &Job) -> String {
        // Statement ids are UUIDs: nothing in them needs escaping.
        format!("{}?statementId={}", self.statements_url, job.statement_id)
    }

    async fn put(&self, channel: &Channel, request: reqwest::RequestBuilder) -> Outcome {
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

    /// A JSON request; see `request_as`.
    fn request(&self, client: &reqwest::Client, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.request_as(client, method, url, "application/json")
    }

    fn request_as(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
        content_type: &str,
    ) -> reqwest::RequestBuilder {
        let request = client
            .request(method, url)
            .header("X-Experience-API-Version", &self.version)
            .header(reqwest::header::CONTENT_TYPE, content_type);
        match &self.credentials {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }
}

/// The distinct hashes of the statement's attachments (its own and its
/// sub-statement's, `attachment::declared`) that have no `fileUrl`: their
/// content must travel with it, in order. The stored text is parsed only
/// when it mentions attachments at all.
fn content_hashes(body: &str) -> Vec<String> {
    if !body.contains("\"attachments\"") {
        return Vec::new();
    }
    let Ok(statement) = serde_json::from_str::<Value>(body) else { return Vec::new() };
    let mut hashes: Vec<String> = Vec::new();
    for d in attachment::declared(&statement).into_iter().filter(|d| !d.has_file_url) {
        if !hashes.contains(&d.sha2) {
            hashes.push(d.sha2);
        }
    }
    hashes
}

/// The statement part, then each attachment's part with its content read
/// from the database as the request is sent, then the closing boundary.
fn multipart_body(
    db: sea_orm::DatabaseConnection,
    boundary: &str,
    statement: String,
    held: Vec<StoredAttachment>,
) -> BodyStream {
    let text = |s: String| stream::once(async move { Ok::<Bytes, LrsError>(Bytes::from(s)) }).boxed();
    let mut parts: Vec<BodyStream> = vec![text(statements_head(boundary) + &statement)];
    for attachment in held {
        parts.push(text(attachment_head(boundary, &attachment.content_type, &attachment.sha2)));
        parts.push(attachments::content(db.clone(), attachment, READ_BYTES).boxed());
    }
    parts.push(text(closing(boundary)));
    stream::iter(parts).flatten().boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_attachments_without_a_file_url_need_their_content_sent() {
        let body = r#"{"id":"x","attachments":[{"sha2":"aa","usageType":"u"},{"sha2":"bb","fileUrl":"https://f"},
                       {"sha2":"aa","usageType":"again"},{"sha2":"cc"}]}"#;
        assert_eq!(content_hashes(body), ["aa", "cc"], "each hash once, in order; none with a fileUrl");
        assert!(content_hashes(r#"{"id":"x","verb":{"id":"v"}}"#).is_empty());
    }
}
