//! mobieusCore, its mobieusLearn surface (`forwarders.md` §5): learners are
//! enrolled on launch or registration, with an `Idempotency-Key` so a
//! redelivery within its 24 hours has no second effect, and a look at the
//! learner's enrollments first so one after them has none either. mobieus
//! publishes no way to record a completion (attempts are read-only), so a
//! completion is kept in the outbox as `unsupported`, never dropped unseen.

use serde_json::{Value, json};
use uuid::Uuid;

use super::probe::TestCall;
use super::{Ctx, Job, read_response};
use crate::forward::identity::Learner;
use crate::forward::outcome::{Outcome, classify, excerpt};
use crate::forward::router::Op;

/// Namespace of our idempotency keys (a v5 UUID of `xlrs forwarding`).
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6f0b_23c5_8d8a_5b1e_9a41_52e0_77c3_1d9e);

pub struct Mobieus {
    enrollments_url: String,
    courses_url: String,
    api_key: String,
}

impl Mobieus {
    pub fn new(url: &str, api_key: String) -> Mobieus {
        let url = url.trim_end_matches('/');
        Mobieus {
            enrollments_url: format!("{url}/api/v1/learn/enrollments"),
            courses_url: format!("{url}/api/v1/learn/courses"),
            api_key,
        }
    }

    /// A read of one course (`learn:read`, which enrolling needs too): the
    /// cheapest call mobieus documents.
    pub fn test_call(&self, client: &reqwest::Client) -> TestCall {
        let url = format!("{}?limit=1", self.courses_url);
        TestCall::new(reqwest::Method::GET, &url, client.get(&url).bearer_auth(&self.api_key))
    }

    pub async fn deliver(&self, ctx: &Ctx<'_>, jobs: &[Job]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            outcomes.push(match job.op {
                Op::Enroll => self.enroll(ctx, job).await.unwrap_or_else(|outcome| outcome),
                op => Outcome::Unsupported {
                    reason: format!(
                        "mobieusCore publishes no API to record a {} (its attempts are read-only)",
                        op.as_str()
                    ),
                },
            });
        }
        outcomes
    }

    async fn enroll(&self, ctx: &Ctx<'_>, job: &Job) -> Result<Outcome, Outcome> {
        let park = |reason: String| Outcome::Park { http_status: None, reason };
        let statement = job.statement().map_err(|reason| Outcome::Dead { http_status: None, reason })?;
        let activity = statement.pointer("/object/id").and_then(Value::as_str).unwrap_or_default();
        let course = ctx.courses.require(activity).map_err(park)?;
        let (actor_key, learner) = ctx.identities.resolve(ctx.db, &statement["actor"]).await.map_err(|e| {
            Outcome::Retry { http_status: None, error: format!("{e:#}"), after: None, throttled: false }
        })?;
        let user = match learner {
            Learner::Id(id) => id,
            Learner::Email(_) => {
                return Err(park(format!(
                    "mobieus knows learners by its user id and offers no lookup by e-mail: map {actor_key} with \
                     `xlrs forward identity set`, or an account rule"
                )));
            }
            Learner::Missing(reason) => return Err(park(reason)),
        };
        let (user, course_id) = (id_value(&user), id_value(&course.id));
        if self.enrolled(ctx, &user, &course_id).await? {
            return Ok(Outcome::Delivered { http_status: Some(200) });
        }
        let key = Uuid::new_v5(&KEY_NAMESPACE, format!("{}\n{actor_key}\n{}", ctx.target, course.id).as_bytes());
        let request = ctx
            .channel
            .client
            .post(&self.enrollments_url)
            .bearer_auth(&self.api_key)
            .header("Idempotency-Key", key.to_string())
            .json(&json!({"user_id": user, "course_id": course_id, "source": "xlrs"}));
        let response = ctx.channel.send(request).await.map_err(|e| Outcome::network(&e))?;
        let (status, headers, text) = read_response(response).await;
        Ok(match status.as_u16() {
            // Enrolled already (by someone else since our look).
            409 => Outcome::Delivered { http_status: Some(409) },
            // course_not_found, or a user id mobieus does not have: a mapping to mend.
            404 => park(format!("mobieus refused the enrollment: {}", excerpt(&text))),
            _ => classify(status, &headers, &text),
        })
    }

    /// Whether the learner has an enrollment in the course already (a
    /// redelivery after the idempotency key expired).
    async fn enrolled(&self, ctx: &Ctx<'_>, user: &Value, course: &Value) -> Result<bool, Outcome> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("course_id", &plain(course))
            .append_pair("user_id", &plain(user))
            .finish();
        let url = format!("{}?{query}", self.enrollments_url);
        let request = ctx.channel.client.get(url).bearer_auth(&self.api_key);
        let response = ctx.channel.send(request).await.map_err(|e| Outcome::network(&e))?;
        let (status, headers, text) = read_response(response).await;
        match classify(status, &headers, &text) {
            Outcome::Delivered { .. } => {}
            other => return Err(other),
        }
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(answer["data"]
            .as_array()
            .is_some_and(|found| found.iter().any(|e| e["status"].as_str() != Some("cancelled"))))
    }
}

/// mobieus ids are integers; one that is not is sent as the text it is.
fn id_value(id: &str) -> Value {
    id.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(id))
}

fn plain(id: &Value) -> String {
    id.as_str().map(str::to_owned).unwrap_or_else(|| id.to_string())
}
