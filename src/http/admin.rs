//! The forwarders' admin API under `/admin/forwarders` (outside `/xapi`: no
//! xAPI version header), for a credential with the scope `all`. Handlers
//! parse, call `forward::operations`, and render JSON. Queries and bodies
//! are read only once the credential is checked, so an unauthenticated
//! request learns nothing but 401.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth::Operator;
use crate::error::LrsError;
use crate::forward::operations::{self, DEFAULT_LIMIT, Operations, OpsError, Replay};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/forwarders")
            .route("", web::get().to(status))
            .route("/{target}/outbox", web::get().to(rows))
            .route("/{target}/outbox/{id}/retry", web::post().to(retry_row))
            .route("/{target}/retry", web::post().to(retry))
            .route("/{target}/pause", web::post().to(pause))
            .route("/{target}/resume", web::post().to(resume))
            .route("/{target}/replay", web::post().to(replay))
            .route("/{target}/test", web::post().to(test))
            .service(
                web::resource("/{target}/identities")
                    .route(web::get().to(identities))
                    .route(web::put().to(set_identity))
                    .route(web::delete().to(remove_identity))
                    .default_service(web::to(super::method_not_allowed)),
            )
            .default_service(web::to(super::not_found)),
    );
}

impl From<OpsError> for LrsError {
    fn from(e: OpsError) -> LrsError {
        match e {
            OpsError::UnknownTarget(m) | OpsError::NotFound(m) => LrsError::NotFound(m),
            OpsError::BadInput(m) => LrsError::bad_request(m),
            OpsError::Busy(m) | OpsError::Delivered(m) => LrsError::Conflict(m),
            OpsError::Storage(e) => LrsError::Internal(e),
        }
    }
}

fn ops(state: &AppState) -> Operations<'_> {
    Operations::new(&state.db, Some(&state.forwarding))
}

/// Rows made due: the target's dispatcher looks now rather than at its next poll.
fn wake(state: &AppState, target: &str) {
    state.routing.waker(target).notify_one();
}

fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, LrsError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| LrsError::bad_request(format!("invalid query: {e}")))
}

/// The JSON body; an empty body is `T::default()` when `optional`.
fn body<T: DeserializeOwned + Default>(bytes: &[u8], optional: bool) -> Result<T, LrsError> {
    if optional && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| LrsError::bad_request(format!("invalid JSON body: {e}")))
}

fn time(field: &str, value: &str) -> Result<DateTime<Utc>, LrsError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| LrsError::bad_request(format!("{field} '{value}' is not an RFC 3339 time: {e}")))
}

async fn status(_: Operator, state: web::Data<AppState>) -> Result<HttpResponse, LrsError> {
    let targets = ops(&state).status(Utc::now()).await?;
    Ok(HttpResponse::Ok().json(json!({ "targets": targets })))
}

#[derive(Deserialize)]
struct RowsQuery {
    status: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// A number from the query, or a 400 naming the parameter.
fn number<T: std::str::FromStr>(name: &str, value: Option<&str>, default: T) -> Result<T, LrsError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| LrsError::bad_request(format!("{name} '{v}' is not a whole number"))),
    }
}

async fn rows(
    _: Operator,
    req: HttpRequest,
    target: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LrsError> {
    let q: RowsQuery = query(&req)?;
    let status = q.status.as_deref().filter(|s| !s.is_empty()).map(operations::parse_status).transpose()?;
    let limit = number("limit", q.limit.as_deref(), DEFAULT_LIMIT)?;
    let after = number("after", q.after.as_deref(), 0)?;
    let page = ops(&state).rows(&target, status, after, limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    #[serde(default = "default_retry_statuses")]
    statuses: Vec<String>,
}

impl Default for RetryBody {
    fn default() -> Self {
        RetryBody { statuses: default_retry_statuses() }
    }
}

fn default_retry_statuses() -> Vec<String> {
    vec!["dead".into(), "parked".into()]
}

/// `?force=true`: delivered rows are retried too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryQuery {
    force: Option<String>,
}

fn force(req: &HttpRequest) -> Result<bool, LrsError> {
    let q: RetryQuery = query(req)?;
    match q.force.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(LrsError::bad_request(format!("force '{other}' is not true or false"))),
    }
}

async fn retry(
    _: Operator,
    req: HttpRequest,
    target: web::Path<String>,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> Result<HttpResponse, LrsError> {
    let force = force(&req)?;
    let b: RetryBody = body(&bytes, true)?;
    let statuses = operations::parse_statuses(&b.statuses)?;
    let retried = ops(&state).retry(Some(&target), &statuses, force).await?;
    wake(&state, &target);
    Ok(HttpResponse::Ok().json(retried))
}

async fn retry_row(
    _: Operator,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LrsError> {
    let (target, id) = path.into_inner();
    let id = id.parse::<i64>().map_err(|_| LrsError::bad_request(format!("row id '{id}' is not an integer")))?;
    let row = ops(&state).retry_row(&target, id, force(&req)?).await?;
    wake(&state, &target);
    Ok(HttpResponse::Ok().json(row))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    reason: Option<String>,
}

async fn pause(
    _: Operator,
    target: web::Path<String>,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> Result<HttpResponse, LrsError> {
    let b: PauseBody = body(&bytes, true)?;
    let paused = ops(&state).pause(&target, b.reason.as_deref()).await?;
    Ok(HttpResponse::Ok().json(json!({ "target": *target, "paused": paused })))
}

async fn resume(_: Operator, target: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, LrsError> {
    ops(&state).resume(&target).await?;
    wake(&state, &target);
    Ok(HttpResponse::Ok().json(json!({ "target": *target, "paused": null })))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    since: String,
    until: Option<String>,
    #[serde(default)]
    verbs: Vec<String>,
    activity: Option<String>,
    agent: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

async fn replay(
    _: Operator,
    target: web::Path<String>,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> Result<HttpResponse, LrsError> {
    let b: ReplayBody = body(&bytes, false)?;
    let since = time("since", &b.since)?;
    let until = b.until.as_deref().map(|u| time("until", u)).transpose()?;
    let replay = Replay { since, until, verbs: b.verbs, activity: b.activity, agent: b.agent, dry_run: b.dry_run };
    let replayed = ops(&state).replay(&target, &replay).await?;
    if !replay.dry_run {
        wake(&state, &target);
    }
    Ok(HttpResponse::Ok().json(replayed))
}

async fn test(_: Operator, target: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, LrsError> {
    let probe = ops(&state).test(&target).await?;
    let mut answer = json!({ "target": *target });
    answer.as_object_mut().expect("an object").extend(json!(probe).as_object().cloned().unwrap_or_default());
    Ok(HttpResponse::Ok().json(answer))
}

async fn identities(
    _: Operator,
    target: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LrsError> {
    let identities = ops(&state).identities(&target).await?;
    Ok(HttpResponse::Ok().json(json!({ "identities": identities })))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityBody {
    actor: String,
    remote_id: String,
}

async fn set_identity(
    _: Operator,
    target: web::Path<String>,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> Result<HttpResponse, LrsError> {
    let b: IdentityBody = body(&bytes, false)?;
    let identity = ops(&state).set_identity(&target, &b.actor, &b.remote_id).await?;
    wake(&state, &target);
    Ok(HttpResponse::Ok().json(identity))
}

#[derive(Deserialize)]
struct ActorQuery {
    actor: String,
}

async fn remove_identity(
    _: Operator,
    req: HttpRequest,
    target: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LrsError> {
    let q: ActorQuery = query(&req)?;
    ops(&state).remove_identity(&target, &q.actor).await?;
    wake(&state, &target);
    Ok(HttpResponse::NoContent().finish())
}
