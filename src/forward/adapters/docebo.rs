//! Docebo (`forwarders.md` §3): where a learner is on a course, written
//! through the enrollment batch import. Every row of a claim goes in one
//! `POST /learn/v1/enrollment/batch` (in chunks, one call after another:
//! Docebo forbids concurrent batch calls, and the dispatcher's exclusive
//! lease keeps other nodes out). Each row is answered on its own, matched by
//! `batch_item_id` = our outbox id. Learners known only by e-mail are looked
//! up once and remembered in the identity table, found or not.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{Ctx, Job, score_percent};
use crate::forward::identity::Learner;
use crate::forward::outcome::{Outcome, classify, excerpt};
use crate::forward::router::Op;
use crate::forward::token::TokenSource;

/// Most items in one batch call (Docebo documents no limit; this is ours).
pub const BATCH_ITEMS: usize = 100;

/// Docebo's date format, in UTC.
const DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

pub struct Docebo {
    batch_url: String,
    users_url: String,
    tokens: TokenSource,
    username_is_email: bool,
}

/// Who a row's learner is in a batch item.
#[derive(Debug, Clone, PartialEq)]
enum Who {
    UserId(String),
    Username(String),
}

impl Docebo {
    pub fn new(url: &str, tokens: TokenSource, username_is_email: bool) -> Docebo {
        let base = url.trim_end_matches('/');
        Docebo {
            batch_url: format!("{base}/learn/v1/enrollment/batch"),
            users_url: format!("{base}/manage/v1/user"),
            tokens,
            username_is_email,
        }
    }

    /// The test call is a token request: it shows the credentials taken.
    pub fn test_call(&self, client: &reqwest::Client) -> super::probe::TestCall {
        self.tokens.test_call(client)
    }

    pub async fn deliver(&self, ctx: &Ctx<'_>, jobs: &[Job]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
        let mut lookups = Lookups::default();
        let mut items = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            match self.item(ctx, job, &mut lookups).await {
                Ok(item) => items.push((i, item)),
                Err(outcome) => outcomes[i] = Some(outcome),
            }
        }
        // After a call-wide refusal (an outage, a pause) the channel sends
        // no more chunks this round.
        for chunk in items.chunks(BATCH_ITEMS) {
            match self.send_batch(ctx, chunk).await {
                Ok(answers) => {
                    for (i, _) in chunk {
                        outcomes[*i] = Some(row_outcome(answers.get(&jobs[*i].outbox_id.to_string())));
                    }
                }
                Err(outcome) => {
                    for (i, _) in chunk {
                        outcomes[*i] = Some(outcome.clone());
                    }
                }
            }
        }
        outcomes.into_iter().map(|o| o.expect("every job has an outcome")).collect()
    }

    /// The batch item for `job`, or its outcome when it cannot be sent.
    async fn item(&self, ctx: &Ctx<'_>, job: &Job, lookups: &mut Lookups) -> Result<Value, Outcome> {
        let statement = job.statement().map_err(|reason| Outcome::Dead { http_status: None, reason })?;
        let park = |reason: String| Outcome::Park { http_status: None, reason };
        let iri = statement.pointer("/object/id").and_then(Value::as_str).unwrap_or_default();
        let course = ctx.courses.require(iri).map_err(park)?;
        let who = self.learner(ctx, &statement, lookups).await?;
        enrollment_item(job, &statement, &course.id, &who).map_err(|reason| Outcome::Dead { http_status: None, reason })
    }

    /// The row's learner as Docebo knows them.
    async fn learner(&self, ctx: &Ctx<'_>, statement: &Value, lookups: &mut Lookups) -> Result<Who, Outcome> {
        let actor = statement.get("actor").cloned().unwrap_or(Value::Null);
        let (key, learner) = ctx.identities.resolve(ctx.db, &actor).await.map_err(|e| database_retry(&e))?;
        match learner {
            Learner::Id(id) => Ok(Who::UserId(id)),
            Learner::Email(email) if self.username_is_email => Ok(Who::Username(email)),
            Learner::Email(email) => {
                if let Some(known) = lookups.answers.get(&key) {
                    return known.clone();
                }
                let answer = self.look_up(ctx, &key, &email).await;
                // Unanswered (and the rest of the round not sent): nothing
                // learned, ask again next round.
                if !matches!(answer, Err(Outcome::Retry { .. } | Outcome::PauseTarget { .. } | Outcome::NotSent { .. }))
                {
                    lookups.answers.insert(key, answer.clone());
                }
                answer
            }
            Learner::Missing(reason) => Err(Outcome::Park { http_status: None, reason }),
        }
    }

    /// Finds the user with this e-mail and remembers the answer for `key`.
    async fn look_up(&self, ctx: &Ctx<'_>, key: &str, email: &str) -> Result<Who, Outcome> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("search_text", email), ("page_size", "200")])
            .finish();
        let url = format!("{}?{query}", self.users_url);
        let (status, headers, text) =
            self.tokens.send(ctx.channel, None, |token| ctx.channel.client.get(&url).bearer_auth(token)).await?;
        match classify(status, &headers, &text) {
            Outcome::Delivered { .. } => {}
            other => return Err(other),
        }
        let answer: Value = serde_json::from_str(&text).map_err(|_| Outcome::Retry {
            http_status: Some(status.as_u16()),
            error: format!("the user search answer is not JSON: {}", excerpt(&text)),
            after: None,
            throttled: false,
        })?;
        let found = user_with_email(&answer, email);
        ctx.identities.remember(ctx.db, key, found.as_deref()).await.map_err(|e| database_retry(&e))?;
        match found {
            Some(id) => Ok(Who::UserId(id)),
            None => Err(Outcome::Park {
                http_status: Some(status.as_u16()),
                reason: format!("no Docebo user has the e-mail {email} (looked up on '{}')", ctx.target),
            }),
        }
    }

    /// One batch call: each row's answer by `batch_item_id`, or the outcome
    /// of every row when the call as a whole failed.
    async fn send_batch(&self, ctx: &Ctx<'_>, chunk: &[(usize, Value)]) -> Result<HashMap<String, Value>, Outcome> {
        let items: Vec<&Value> = chunk.iter().map(|(_, item)| item).collect();
        let body = json!({
            "items": items,
            "options": {"timezone": "UTC", "trigger_notifications": false, "trigger_certifications": true,
                        "duplicates_as_recertification": false},
        });
        let (status, headers, text) = self
            .tokens
            .send(ctx.channel, None, |token| ctx.channel.client.post(&self.batch_url).json(&body).bearer_auth(token))
            .await?;
        match classify(status, &headers, &text) {
            Outcome::Delivered { .. } => Ok(row_answers(&text)),
            other => Err(other),
        }
    }
}

/// What is known of the claim's learners so far: one lookup per learner.
#[derive(Default)]
struct Lookups {
    answers: HashMap<String, Result<Who, Outcome>>,
}

fn database_retry(error: &anyhow::Error) -> Outcome {
    Outcome::Retry { http_status: None, error: format!("identity table: {error:#}"), after: None, throttled: false }
}

/// The `user_id` of the search result whose e-mail is `email` (the search
/// also matches parts of names and other addresses).
fn user_with_email(answer: &Value, email: &str) -> Option<String> {
    let items = answer.pointer("/data/items")?.as_array()?;
    let user = items.iter().find(|u| u["email"].as_str().is_some_and(|e| e.trim().eq_ignore_ascii_case(email)))?;
    match &user["user_id"] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The rows' answers by `batch_item_id` (Docebo echoes it, as a string or
/// a number).
fn row_answers(text: &str) -> HashMap<String, Value> {
    let answer: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let rows = answer.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
    rows.into_iter()
        .filter_map(|row| {
            let id = match &row["batch_item_id"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((id, row))
        })
        .collect()
}

/// A row's outcome from its answer: refused for an unknown user or course
/// it waits for an operator; refused otherwise it is dead; unanswered it is
/// sent again.
fn row_outcome(answer: Option<&Value>) -> Outcome {
    let Some(answer) = answer else {
        return Outcome::Retry {
            http_status: Some(200),
            error: "Docebo's batch answer has no result for this row".into(),
            after: None,
            throttled: false,
        };
    };
    if answer["success"].as_bool() == Some(true) {
        return Outcome::Delivered { http_status: Some(200) };
    }
    let message = answer["message"].as_str().map(excerpt).unwrap_or_else(|| excerpt(&answer.to_string()));
    let reason = format!("Docebo refused the enrollment: {message}");
    if names_unknown_reference(&message) {
        Outcome::Park { http_status: Some(200), reason }
    } else {
        Outcome::Dead { http_status: Some(200), reason }
    }
}

/// Whether a refusal says the user or the course does not exist (to be
/// provisioned or mapped by an operator).
fn names_unknown_reference(message: &str) -> bool {
    let m = message.to_lowercase();
    let about = m.contains("user") || m.contains("course");
    let missing = ["not found", "unknown", "not exist", "doesn't exist", "no such", "invalid user", "invalid course"]
        .iter()
        .any(|p| m.contains(p));
    about && missing
}

/// The batch item that puts the learner where the row's operation says.
fn enrollment_item(job: &Job, statement: &Value, course_code: &str, who: &Who) -> Result<Value, String> {
    let date = statement_date(statement)?;
    let mut item = Map::new();
    item.insert("course_code".into(), json!(course_code));
    match who {
        Who::UserId(id) => item.insert("user_id".into(), json!(id)),
        Who::Username(name) => item.insert("username".into(), json!(name)),
    };
    let completed = match job.op {
        Op::Enroll => {
            item.insert("status".into(), json!("subscribed"));
            item.insert("enrollment_date".into(), json!(date));
            false
        }
        Op::Progress => false,
        Op::Complete => true,
        Op::Pass => {
            item.insert("passed".into(), json!(true));
            true
        }
        Op::Fail => {
            item.insert("passed".into(), json!(false));
            statement.pointer("/result/completion").and_then(Value::as_bool) == Some(true)
        }
        Op::Statement | Op::Catalog | Op::Revoke => {
            return Err(format!("Docebo has no use for a '{}' row", job.op.as_str()));
        }
    };
    if job.op != Op::Enroll {
        item.insert("status".into(), json!(if completed { "completed" } else { "in_progress" }));
    }
    if completed {
        item.insert("completion_date".into(), json!(date));
    }
    if matches!(job.op, Op::Complete | Op::Pass | Op::Fail)
        && let Some(score) = statement.get("result").and_then(score_percent)
    {
        item.insert("score".into(), json!(score));
    }
    item.insert("batch_item_id".into(), json!(job.outbox_id.to_string()));
    item.insert("level".into(), json!("student"));
    Ok(Value::Object(item))
}

/// The statement's timestamp in UTC, as Docebo writes dates.
fn statement_date(statement: &Value) -> Result<String, String> {
    let stamp = statement
        .get("timestamp")
        .or_else(|| statement.get("stored"))
        .and_then(Value::as_str)
        .ok_or("the statement has no timestamp")?;
    let at = DateTime::parse_from_rfc3339(stamp).map_err(|e| format!("the timestamp {stamp} is not a date: {e}"))?;
    Ok(at.with_timezone(&Utc).format(DATE_FORMAT).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(op: Op) -> Job {
        Job {
            outbox_id: 42,
            op,
            statement_id: String::new(),
            order_key: String::new(),
            body: String::new(),
            referenced_body: None,
            attempts: 1,
            created_us: 0,
            stream_seq: None,
        }
    }

    #[test]
    fn items_put_the_learner_where_the_operation_says() {
        let s = json!({"timestamp": "2026-03-04T05:06:07.891+02:00",
                       "result": {"score": {"raw": 18, "max": 20}, "completion": true}});
        let user = Who::UserId("7".into());
        let pass = enrollment_item(&job(Op::Pass), &s, "c1", &user).unwrap();
        assert_eq!(
            pass,
            json!({"course_code": "c1", "user_id": "7", "status": "completed", "completion_date": "2026-03-04 03:06:07",
                   "passed": true, "score": 90.0, "batch_item_id": "42", "level": "student"})
        );
        let fail = enrollment_item(&job(Op::Fail), &s, "c1", &Who::Username("a@b.c".into())).unwrap();
        assert_eq!((fail["status"].as_str(), fail["passed"].as_bool()), (Some("completed"), Some(false)));
        assert_eq!(fail["username"], "a@b.c");
        let unfinished = json!({"timestamp": "2026-03-04T05:06:07Z", "result": {"score": {"scaled": 1.7}}});
        let fail = enrollment_item(&job(Op::Fail), &unfinished, "c1", &user).unwrap();
        assert_eq!((fail["status"].as_str(), fail.get("completion_date")), (Some("in_progress"), None));
        assert_eq!(fail["score"], 100.0);
        let enroll = enrollment_item(&job(Op::Enroll), &s, "c1", &user).unwrap();
        assert_eq!(
            (enroll["status"].as_str(), enroll["enrollment_date"].as_str()),
            (Some("subscribed"), Some("2026-03-04 03:06:07"))
        );
        assert_eq!(enroll.get("score"), None);
        let progress = enrollment_item(&job(Op::Progress), &s, "c1", &user).unwrap();
        assert_eq!((progress["status"].as_str(), progress.get("passed")), (Some("in_progress"), None));
        assert!(enrollment_item(&job(Op::Catalog), &s, "c1", &user).is_err());
    }

    #[test]
    fn refusals_of_unknown_users_or_courses_wait_for_an_operator() {
        let refused = |message: &str| json!({"batch_item_id": "1", "success": false, "message": message});
        assert!(matches!(row_outcome(Some(&refused("User not found"))), Outcome::Park { .. }));
        assert!(matches!(row_outcome(Some(&refused("Course code does not exist"))), Outcome::Park { .. }));
        assert!(matches!(row_outcome(Some(&refused("The course is archived"))), Outcome::Dead { .. }));
        assert!(matches!(row_outcome(Some(&json!({"success": true}))), Outcome::Delivered { .. }));
        assert!(matches!(row_outcome(None), Outcome::Retry { .. }));
        let answers = row_answers(r#"{"data": [{"batch_item_id": 5, "success": true}, {"success": true}]}"#);
        assert_eq!(answers.keys().collect::<Vec<_>>(), ["5"]);
    }

    #[test]
    fn lookups_take_the_exact_email_only() {
        let answer = json!({"data": {"items": [{"user_id": 1, "email": "joann@example.com"},
                                               {"user_id": "2", "email": "Ann@Example.com"}]}});
        assert_eq!(user_with_email(&answer, "ann@example.com").as_deref(), Some("2"));
        assert_eq!(user_with_email(&answer, "bo@example.com"), None);
    }
}
