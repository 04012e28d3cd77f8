//! `GET /xapi/extensions/progress`: learner progress by learner, activity
//! (a course row includes its children's statements) or registration, in
//! pages, as JSON or CSV. The rows are kept by the writer
//! (`store/progress_fold.rs`); this only reads them, once the writer has
//! counted what it committed before the request (waiting a bounded time).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::cursor;
use super::params::{Params, agent_param};
use crate::auth::{Authenticated, ReadAccess};
use crate::error::{LrsError, LrsResult};
use crate::startup::AppState;
use crate::store::progress::{self, ProgressQuery, ProgressRow};
use crate::xapi::formats::{format_timestamp, is_iri, is_uuid};
use crate::xapi::progress::{RowKey, Status, agent_of};

pub const PATH: &str = "/progress";
/// The header saying up to when statements are counted in the answer.
pub const CONSISTENT_THROUGH: &str = "X-Progress-Consistent-Through";
/// How long a request waits for the writer to count what it committed
/// before answering with what is counted (the header says how far).
const COUNTED_WAIT: Duration = Duration::from_secs(2);
const PARAMS: &[&str] = &["learner", "activity", "registration", "status", "limit", "format", "cursor"];
/// Rows per page when the request names no limit (as many as a screen or a
/// report page shows), and the most it may ask.
const PAGE_ROWS: u32 = 100;
const MAX_PAGE_ROWS: u32 = 10_000;

/// The columns of the CSV form, in order (the JSON form has the same fields).
const CSV_COLUMNS: &[&str] = &[
    "learner",
    "activity",
    "registration",
    "status",
    "completion",
    "success",
    "best_score",
    "last_score",
    "attempts",
    "duration",
    "first_activity",
    "last_activity",
    "last_statement",
    "statements",
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(PATH).route(web::get().to(get_progress)).default_service(web::to(super::method_not_allowed)),
    );
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    Json,
    Csv,
}

/// What a `cursor` carries: the query and the last row served.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    l: Option<String>,
    a: Option<String>,
    r: Option<String>,
    s: Option<String>,
    n: u32,
    k: (String, String, String),
}

async fn get_progress(req: HttpRequest, auth: Authenticated, state: web::Data<AppState>) -> LrsResult<HttpResponse> {
    if !state.progress {
        return Err(LrsError::NotFound(
            "learner progress is not kept on this server (it runs with --progress false)".into(),
        ));
    }
    if auth.statement_read()? == ReadAccess::Mine {
        return Err(LrsError::Forbidden(
            "progress sums the statements of every credential: statements/read/mine cannot read it".into(),
        ));
    }
    let params = Params::parse(req.query_string(), PARAMS)?;
    let form = form(&params, &req)?;
    let query = match params.get("cursor") {
        Some(token) => decode_cursor(token, &params)?,
        None => parse_query(&params)?,
    };
    let asked_us = state.writer.consistent_through_us();
    let through_us = match state.writer.progress_counted(COUNTED_WAIT).await {
        true => asked_us,
        false => progress::counted_through_us(&state.db).await?,
    };
    let (mut rows, more) = progress::page(&state.db, &query).await?;
    if rows.is_empty() && query.after.is_none() {
        rows.extend(not_attempted(&query));
    }
    let next = more.then(|| rows.last().map(|r| next_url(&query, &r.key, form))).flatten();
    let mut response = HttpResponse::Ok();
    if let Some(through) = timestamp(through_us) {
        response.insert_header((CONSISTENT_THROUGH, through));
    }
    if let Some(next) = &next {
        response.insert_header((header::LINK, format!("<{next}>; rel=\"next\"")));
    }
    Ok(match form {
        Form::Json => {
            #[derive(Serialize)]
            struct Page<'a> {
                progress: Vec<RowOut<'a>>,
                more: String,
            }
            response.json(Page { progress: rows.iter().map(RowOut::of).collect(), more: next.unwrap_or_default() })
        }
        Form::Csv => response.content_type("text/csv; charset=utf-8").body(csv_text(&rows)?),
    })
}

/// `format=json|csv`, else `Accept: text/csv` asks for CSV.
fn form(params: &Params, req: &HttpRequest) -> LrsResult<Form> {
    match params.get("format") {
        Some("json") => Ok(Form::Json),
        Some("csv") => Ok(Form::Csv),
        Some(other) => {
            Err(LrsError::invalid("format", "query:format", format!("format must be json or csv, not '{other}'")))
        }
        None => {
            let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
            Ok(if accept.contains("text/csv") { Form::Csv } else { Form::Json })
        }
    }
}

fn parse_query(params: &Params) -> LrsResult<ProgressQuery> {
    let learner = params.get("learner").map(|t| agent_param("learner", t)).transpose()?;
    let activity = match params.get("activity") {
        Some(a) if !is_iri(a) => return Err(LrsError::invalid("activity", "query:iri", "activity must be an IRI")),
        a => a.map(str::to_owned),
    };
    let registration = match params.get("registration") {
        Some(r) if !is_uuid(r) => {
            return Err(LrsError::invalid("registration", "query:uuid", "registration must be a UUID"));
        }
        r => r.map(str::to_lowercase),
    };
    let status = params.get("status").map(status_param).transpose()?;
    let limit = match params.get("limit").map(str::parse::<u32>) {
        None | Some(Ok(0)) => PAGE_ROWS,
        Some(Ok(n)) => n.min(MAX_PAGE_ROWS),
        Some(Err(_)) => return Err(LrsError::invalid("limit", "query:limit", "limit must be a non-negative integer")),
    };
    Ok(ProgressQuery { learner, activity, registration, status, after: None, limit })
}

fn status_param(text: &str) -> LrsResult<Status> {
    Status::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        LrsError::invalid("status", "query:status", format!("status must be one of {}", names.join(", ")))
    })
}

/// The answer for one learner on one activity with no statements yet.
fn not_attempted(q: &ProgressQuery) -> Option<ProgressRow> {
    let wanted = q.status.is_none_or(|s| s == Status::NotAttempted);
    let (learner, activity) = (q.learner.as_ref()?, q.activity.as_ref()?);
    wanted.then(|| ProgressRow {
        key: RowKey {
            learner: learner.clone(),
            activity: activity.clone(),
            registration: q.registration.clone().unwrap_or_default(),
        },
        tally: None,
    })
}

fn next_url(q: &ProgressQuery, last: &RowKey, form: Form) -> String {
    let cursor = Cursor {
        l: q.learner.clone(),
        a: q.activity.clone(),
        r: q.registration.clone(),
        s: q.status.map(|s| s.as_str().to_owned()),
        n: q.limit,
        k: (last.learner.clone(), last.activity.clone(), last.registration.clone()),
    };
    let token = cursor::encode(&cursor);
    let format = if form == Form::Csv { "&format=csv" } else { "" };
    format!("/xapi/extensions{PATH}?cursor={token}{format}")
}

fn decode_cursor(token: &str, params: &Params) -> LrsResult<ProgressQuery> {
    if let Some(other) = params.names().find(|n| !matches!(*n, "cursor" | "format")) {
        return Err(LrsError::invalid(other, "query:cursor", format!("'{other}' cannot be combined with cursor")));
    }
    let bad = || LrsError::invalid("cursor", "query:cursor", "cursor is not one this LRS issued");
    let c: Cursor = cursor::decode(token).ok_or_else(bad)?;
    let status = c.s.as_deref().map(|s| Status::parse(s).ok_or_else(bad)).transpose()?;
    Ok(ProgressQuery {
        learner: c.l,
        activity: c.a,
        registration: c.r,
        status,
        after: Some(RowKey { learner: c.k.0, activity: c.k.1, registration: c.k.2 }),
        limit: c.n.clamp(1, MAX_PAGE_ROWS),
    })
}

fn timestamp(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us).map(format_timestamp)
}

/// Milliseconds as an ISO 8601 duration in seconds, e.g. `PT3723.5S`.
fn duration(ms: i64) -> String {
    let text = format!("{}.{:03}", ms / 1000, ms % 1000);
    format!("PT{}S", text.trim_end_matches('0').trim_end_matches('.'))
}

/// A row as it is answered: serialised straight from the row (a page holds
/// hundreds; building `Value`s for them cost more than reading them).
#[derive(Serialize)]
struct RowOut<'a> {
    learner: Learner<'a>,
    activity: &'a str,
    registration: Option<&'a str>,
    status: &'static str,
    completion: bool,
    success: Option<bool>,
    best_score: Option<f64>,
    last_score: Option<f64>,
    attempts: i64,
    duration: String,
    first_activity: Option<String>,
    last_activity: Option<String>,
    last_statement: Option<&'a str>,
    statements: i64,
}

/// The learner's canonical IFI, answered as the Agent it identifies.
struct Learner<'a>(&'a str);

impl Serialize for Learner<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        agent_of(self.0).serialize(serializer)
    }
}

impl<'a> RowOut<'a> {
    fn of(row: &'a ProgressRow) -> RowOut<'a> {
        let k = &row.key;
        let mut out = RowOut {
            learner: Learner(&k.learner),
            activity: &k.activity,
            registration: Some(k.registration.as_str()).filter(|r| !r.is_empty()),
            status: Status::NotAttempted.as_str(),
            completion: false,
            success: None,
            best_score: None,
            last_score: None,
            attempts: 0,
            duration: duration(0),
            first_activity: None,
            last_activity: None,
            last_statement: None,
            statements: 0,
        };
        if let Some(t) = &row.tally {
            out.status = t.status().as_str();
            out.completion = t.completed || t.passed;
            out.success = if t.passed {
                Some(true)
            } else if t.failed {
                Some(false)
            } else {
                None
            };
            out.best_score = t.best_score;
            out.last_score = t.last_score.map(|(s, _)| s);
            out.attempts = t.attempts;
            out.duration = duration(t.duration_ms);
            out.first_activity = timestamp(t.first_us);
            out.last_activity = timestamp(t.last.0.0);
            out.last_statement = Some(&t.last.1);
            out.statements = t.statements;
        }
        out
    }

    /// The CSV cells, in `CSV_COLUMNS` order (the learner as its IFI).
    fn cells(&self) -> [String; 14] {
        let text = |v: Option<String>| v.unwrap_or_default();
        [
            self.learner.0.to_owned(),
            self.activity.to_owned(),
            text(self.registration.map(str::to_owned)),
            self.status.to_owned(),
            self.completion.to_string(),
            text(self.success.map(|s| s.to_string())),
            text(self.best_score.map(|s| s.to_string())),
            text(self.last_score.map(|s| s.to_string())),
            self.attempts.to_string(),
            self.duration.clone(),
            text(self.first_activity.clone()),
            text(self.last_activity.clone()),
            text(self.last_statement.map(str::to_owned)),
            self.statements.to_string(),
        ]
    }
}

fn csv_text(rows: &[ProgressRow]) -> LrsResult<String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_COLUMNS).map_err(LrsError::internal)?;
    for row in rows {
        out.write_record(RowOut::of(row).cells()).map_err(LrsError::internal)?;
    }
    let bytes = out.into_inner().map_err(|e| LrsError::internal(anyhow::anyhow!("{e}")))?;
    String::from_utf8(bytes).map_err(LrsError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds() {
        assert_eq!(duration(0), "PT0S");
        assert_eq!(duration(90_000), "PT90S");
        assert_eq!(duration(3_723_500), "PT3723.5S");
        assert_eq!(duration(1_005), "PT1.005S");
    }
}
