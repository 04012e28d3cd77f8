//! LearnWorlds, API v2 (`forwarders.md` §2): completed / passed mark the
//! course (or its unit) complete, a launch enrolls the learner when
//! `enroll_on_launch`, and voiding a forwarded completion resets it when
//! `reset_on_void`. Learners go by LearnWorlds user id or e-mail, which every
//! user path takes. OAuth2 client credentials; every call also carries
//! `Lw-Client`. No call ever lets LearnWorlds e-mail a learner: a retry must
//! not spam anyone.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{Bucket, Ctx, Job};
use crate::forward::courses::Course;
use crate::forward::identity::Learner;
use crate::forward::outcome::{Outcome, classify, excerpt};
use crate::forward::router::Op;
use crate::forward::token::TokenSource;
use crate::store::outbox::{self, Status};

/// LearnWorlds allows 30 requests in any 10 seconds: a burst of 5 and 2.5
/// a second (`Bucket`), 5 + 25 = 30.
pub const BUCKETS: &[Bucket] = &[Bucket::new(API, 30, 10, 5)];
const _: () = assert!(crate::forward::rate::keep_within_limits(BUCKETS));

const API: &str = "api";

/// A LearnWorlds answer: status, headers, body.
type Answer = (StatusCode, HeaderMap, String);

pub struct LearnWorlds {
    api_url: String,
    tokens: TokenSource,
}

/// Who and what a call is about: the learner's actor key (to remember
/// that LearnWorlds does not know them), the user path segment and the course.
struct Subject {
    key: String,
    user: String,
    course: Course,
}

impl Subject {
    fn path(&self, tail: &str) -> String {
        format!("/v2/users/{}/courses/{}/{tail}", encode(&self.user), encode(&self.course.id))
    }

    /// The learning activities a call is about; none = the whole course.
    fn units(&self) -> Vec<&str> {
        self.course.unit.as_deref().into_iter().collect()
    }
}

impl LearnWorlds {
    pub fn new(school_url: &str, api_url: Option<&str>, client: (String, String)) -> LearnWorlds {
        let school = school_url.trim_end_matches('/');
        let api_url = api_url.map_or_else(|| format!("{school}/admin/api"), |u| u.trim_end_matches('/').to_owned());
        // The token request counts against the school's limit like any call.
        let tokens = TokenSource::learnworlds(school, client.0, client.1).paced_by(API);
        LearnWorlds { api_url, tokens }
    }

    /// One job at a time, in order. Once LearnWorlds refuses us or says to
    /// slow down, the channel sends nothing more this round.
    /// The test call is a token request: it shows the credentials taken.
    pub fn test_call(&self, client: &reqwest::Client) -> super::probe::TestCall {
        self.tokens.test_call(client)
    }

    pub async fn deliver(&self, ctx: &Ctx<'_>, jobs: &[Job]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            outcomes.push(self.deliver_one(ctx, job).await);
        }
        outcomes
    }

    async fn deliver_one(&self, ctx: &Ctx<'_>, job: &Job) -> Outcome {
        let statement = match job.statement() {
            Ok(s) => s,
            Err(reason) => return Outcome::Dead { http_status: None, reason },
        };
        let result = match job.op {
            Op::Complete | Op::Pass => self.complete(ctx, &statement).await,
            Op::Enroll => self.enroll_learner(ctx, &statement).await,
            Op::Revoke => self.revoke(ctx, job, &statement).await,
            op => Ok(Outcome::Unsupported { reason: format!("LearnWorlds has no '{}' operation", op.as_str()) }),
        };
        result.unwrap_or_else(|outcome| outcome)
    }

    /// Marks the course (or unit) complete; a learner not enrolled yet is
    /// enrolled first, then it is tried once more.
    async fn complete(&self, ctx: &Ctx<'_>, statement: &Value) -> Result<Outcome, Outcome> {
        let subject = subject(ctx, statement).await?;
        let path = subject.path("complete");
        let body = json!({"send_course_complete_email": false, "units": subject.units()});
        let mut answer = self.post(ctx, &path, &body).await?;
        if not_enrolled(&answer) {
            match self.enroll(ctx, &subject).await? {
                Outcome::Delivered { .. } => answer = self.post(ctx, &path, &body).await?,
                refused => return Ok(refused),
            }
        }
        settle(ctx, answer, &subject).await
    }

    async fn enroll_learner(&self, ctx: &Ctx<'_>, statement: &Value) -> Result<Outcome, Outcome> {
        let subject = subject(ctx, statement).await?;
        self.enroll(ctx, &subject).await
    }

    async fn enroll(&self, ctx: &Ctx<'_>, subject: &Subject) -> Result<Outcome, Outcome> {
        let path = format!("/v2/users/{}/enrollment", encode(&subject.user));
        let body = json!({"productId": subject.course.id, "productType": "course", "price": 0,
                          "justification": "xAPI LRS", "send_enrollment_email": false});
        let answer = self.post(ctx, &path, &body).await?;
        if answer.0.is_client_error() && answer.2.to_lowercase().contains("already enrolled") {
            return Ok(Outcome::Delivered { http_status: Some(answer.0.as_u16()) });
        }
        settle(ctx, answer, subject).await
    }

    /// Resets what the voided statement completed, if it was forwarded here:
    /// its learner (not the voider's) on its course.
    async fn revoke(&self, ctx: &Ctx<'_>, job: &Job, voiding: &Value) -> Result<Outcome, Outcome> {
        let Some(voided) = &job.referenced_body else {
            return Ok(Outcome::Skipped {
                http_status: None,
                reason: "the voided statement is not stored here".into(),
            });
        };
        let voided: Value = serde_json::from_str(voided)
            .map_err(|e| Outcome::Dead { http_status: None, reason: format!("stored statement is not JSON: {e}") })?;
        let voided_id = voiding.pointer("/object/id").and_then(Value::as_str).unwrap_or_default();
        let key = crate::forward::router::order_key(&voided);
        let sent =
            outbox::outcome_status(ctx.db, ctx.target, &key, voided_id).await.map_err(|e| unread("the outbox", e))?;
        match sent {
            Some(Status::Succeeded) => {}
            // The completion is still on its way (perhaps in this very
            // claim): the reset must come after it, not be skipped.
            Some(Status::Pending | Status::InFlight | Status::Retry) => {
                return Ok(Outcome::Retry {
                    http_status: None,
                    error: "waiting for the voided completion's own delivery".into(),
                    after: None,
                    throttled: false,
                });
            }
            _ => {
                return Ok(Outcome::Skipped {
                    http_status: None,
                    reason: "the voided statement was not forwarded here".into(),
                });
            }
        }
        let subject = subject(ctx, &voided).await?;
        let answer = self.post(ctx, &subject.path("reset"), &json!({"units": subject.units()})).await?;
        settle(ctx, answer, &subject).await
    }

    /// POSTs `body` to `path` of the v2 API with a token (refreshed once on a 401).
    async fn post(&self, ctx: &Ctx<'_>, path: &str, body: &Value) -> Result<Answer, Outcome> {
        let url = format!("{}{path}", self.api_url);
        let client_id = self.tokens.client_id();
        self.tokens
            .send(ctx.channel, Some(API), |token| {
                ctx.channel.client.post(&url).bearer_auth(token).header("Lw-Client", client_id).json(body)
            })
            .await
    }
}

/// The learner and the course of `statement`, or why the row is parked.
async fn subject(ctx: &Ctx<'_>, statement: &Value) -> Result<Subject, Outcome> {
    let park = |reason: String| Outcome::Park { http_status: None, reason };
    let actor = statement.get("actor").cloned().unwrap_or(Value::Null);
    let (key, learner) = ctx.identities.resolve(ctx.db, &actor).await.map_err(|e| unread("the identity table", e))?;
    let user = match learner {
        Learner::Id(id) => id,
        Learner::Email(email) => email,
        Learner::Missing(reason) => return Err(park(reason)),
    };
    let iri = statement.pointer("/object/id").and_then(Value::as_str).ok_or_else(|| park("no activity".into()))?;
    let course = ctx.courses.require(iri).map_err(park)?;
    Ok(Subject { key, user, course })
}

/// Our own database could not be read: the row is tried again later.
fn unread(what: &str, error: anyhow::Error) -> Outcome {
    Outcome::Retry { http_status: None, error: format!("reading {what}: {error:#}"), after: None, throttled: false }
}

/// Whether LearnWorlds refused a completion because the learner is not
/// enrolled (the exact answer is not documented: its words are what we have).
fn not_enrolled(answer: &Answer) -> bool {
    matches!(answer.0.as_u16(), 400 | 403 | 404 | 422) && answer.2.to_lowercase().contains("not enrolled")
}

/// `read`, and a "no such user" is remembered in the identity table (for
/// `not_found_ttl_secs`, as Docebo's lookups are): the learner's later rows
/// are parked without a call each, until it expires or `forward retry`.
async fn settle(ctx: &Ctx<'_>, answer: Answer, subject: &Subject) -> Result<Outcome, Outcome> {
    if unknown_user(&answer) && !subject.key.is_empty() {
        ctx.identities.remember(ctx.db, &subject.key, None).await.map_err(|e| unread("the identity table", e))?;
    }
    Ok(read(answer, subject))
}

/// Whether a 404 is about the course (or the product an enrollment names).
fn unknown_course((status, _, text): &Answer) -> bool {
    let text = text.to_lowercase();
    *status == StatusCode::NOT_FOUND && (text.contains("course") || text.contains("product"))
}

/// Whether a 404 says the user does not exist (and not the course).
fn unknown_user(answer: &Answer) -> bool {
    answer.0 == StatusCode::NOT_FOUND && answer.2.to_lowercase().contains("user") && !unknown_course(answer)
}

/// The usual reading, but a 404 (no such user or course) waits for an operator.
fn read(answer: Answer, subject: &Subject) -> Outcome {
    if answer.0 == StatusCode::NOT_FOUND {
        let what = if unknown_course(&answer) {
            format!("the course '{}'", subject.course.id)
        } else {
            format!("the user '{}'", subject.user)
        };
        let text = &answer.2;
        let reason = format!("LearnWorlds does not know {what} (HTTP 404: {}), retry once it does", excerpt(text));
        return Outcome::Park { http_status: Some(404), reason };
    }
    classify(answer.0, &answer.1, &answer.2)
}

/// A path segment, percent-encoded (an e-mail's `@`, a course id's spaces).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode("ann.o+lee@example.com"), "ann.o%2Blee%40example.com");
        assert_eq!(encode("kurs größe/1"), "kurs%20gr%C3%B6%C3%9Fe%2F1");
        let subject = Subject {
            key: String::new(),
            user: "a@b.c".into(),
            course: Course { id: "c-1".into(), unit: Some("u 2".into()) },
        };
        assert_eq!(subject.path("complete"), "/v2/users/a%40b.c/courses/c-1/complete");
        assert_eq!(subject.units(), ["u 2"]);
    }

    #[test]
    fn not_found_parks_and_names_what_is_missing() {
        let subject =
            Subject { key: String::new(), user: "zed@x.y".into(), course: Course { id: "c-1".into(), unit: None } };
        let answer = (StatusCode::NOT_FOUND, Default::default(), r#"{"error":"User not found"}"#.to_owned());
        let Outcome::Park { reason, .. } = read(answer, &subject) else { panic!("parked") };
        assert!(reason.contains("the user 'zed@x.y'"), "{reason}");
        assert!(unknown_user(&(StatusCode::NOT_FOUND, Default::default(), r#"{"error":"User not found"}"#.to_owned())));
        let product = (StatusCode::NOT_FOUND, Default::default(), r#"{"error":"Product not found"}"#.to_owned());
        assert!(!unknown_user(&product), "an enrollment's unknown course is not an unknown user");
        let Outcome::Park { reason, .. } = read(product, &subject) else { panic!("parked") };
        assert!(reason.contains("the course 'c-1'"), "{reason}");
        let refused =
            (StatusCode::BAD_REQUEST, Default::default(), "The user is NOT enrolled in the course".to_owned());
        assert!(not_enrolled(&refused));
    }
}
