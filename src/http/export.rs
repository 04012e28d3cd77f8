//! GET /xapi/extensions/export: every statement matching GET /statements'
//! filters, as NDJSON or CSV, streamed (src/export.rs), resumable from the
//! cursor the response carries. docs/export.md is the contract.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::cursor;
use super::params::Params;
use super::statement_query::{FILTER_PARAMS, Filters, TIME_PARAMS, filters, restrict_to_reader};
use crate::auth::{Authenticated, ReadAccess};
use crate::error::{LrsError, LrsResult};
use crate::export::{ExportBody, ExportFormat, PAGE_STATEMENTS};
use crate::startup::AppState;
use crate::store::statements::{self as stored, PageQuery};
use crate::xapi::flatten::{Column, DEFAULT_COLUMNS};
use crate::xapi::formats::is_uuid;
use crate::xapi::keys::{KeyKind, key};

pub const CURSOR_HEADER: &str = "X-Xlrs-Export-Cursor";
pub const TOTAL_HEADER: &str = "X-Xlrs-Export-Total";

const OWN_PARAMS: &[&str] = &["format", "columns", "gzip", "count", "cursor", "after"];
/// What may accompany `cursor`: the position and how this response is sent.
const RESUME_PARAMS: &[&str] = &["cursor", "after", "count", "gzip"];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/export").route(web::get().to(export)).default_service(web::to(super::method_not_allowed)),
    );
}

/// What an export selects and how it is written: the whole of it travels in
/// the cursor, so a resumed export is the same export.
#[derive(Debug, Clone, PartialEq)]
struct ExportSpec {
    filters: Filters,
    format: ExportFormat,
}

#[derive(Debug)]
struct ExportRequest {
    spec: ExportSpec,
    /// Resume after this statement (`after`).
    after_id: Option<String>,
    resumed: bool,
    count: bool,
    /// `gzip=true`: the body is a gzip file.
    gzip_file: bool,
}

async fn export(req: HttpRequest, auth: Authenticated, state: web::Data<AppState>) -> LrsResult<HttpResponse> {
    let access = auth.statement_read()?;
    let all_params: Vec<&str> = FILTER_PARAMS.iter().chain(TIME_PARAMS).chain(OWN_PARAMS).copied().collect();
    let params = Params::parse(req.query_string(), &all_params)?;
    let request = parse(&params, access, &auth.key, state.writer.consistent_through_us())?;
    let after_seq = match &request.after_id {
        Some(id) => Some(seq_of(&state, id, access, &auth.key).await?),
        None => None,
    };
    let filters = &request.spec.filters;
    let query = PageQuery {
        keys: filters.keys.clone(),
        since_us: filters.since_us,
        until_us: filters.until_us,
        ascending: true,
        after_seq,
        limit: PAGE_STATEMENTS,
        // Exports follow GET /statements: voided statements are left out.
        include_voided: false,
    };
    let bounds = stored::seq_bounds(&state.db, &query).await?;
    let total = match (request.count, bounds) {
        (false, _) => None,
        (true, None) => Some(0),
        (true, Some(b)) => Some(stored::count_within(&state.db, state.writer.filter_index(), &query, b).await?),
    };
    let transfer_gzip = !request.gzip_file && accepts_gzip(&req);
    let mut res = HttpResponse::Ok();
    res.content_type(content_type(&request)).insert_header((CURSOR_HEADER, encode_cursor(&request.spec)));
    if let Some(total) = total {
        res.insert_header((TOTAL_HEADER, total.to_string()));
    }
    res.insert_header((header::VARY, HeaderValue::from_static("Accept-Encoding")));
    if transfer_gzip {
        res.insert_header((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
    }
    let body = ExportBody {
        db: state.db.clone(),
        index: state.writer.filter_index().clone(),
        query,
        bounds,
        csv_header: !request.resumed,
        format: request.spec.format,
        gzip: request.gzip_file || transfer_gzip,
        metrics: state.metrics.clone(),
    };
    Ok(res.streaming(body.into_stream()))
}

fn parse(params: &Params, access: ReadAccess, credential_key: &str, consistent_us: i64) -> LrsResult<ExportRequest> {
    let count = params.bool("count")?;
    let gzip_file = params.bool("gzip")?;
    let after_id = match params.get("after") {
        Some(id) if is_uuid(id) => Some(id.to_lowercase()),
        Some(_) => return Err(LrsError::invalid("after", "query:uuid", "after must be a statement id (a UUID)")),
        None => None,
    };
    if let Some(token) = params.get("cursor") {
        if let Some(other) = params.names().find(|n| !RESUME_PARAMS.contains(n)) {
            let message = format!("'{other}' cannot be combined with cursor: the cursor carries the whole export");
            return Err(LrsError::invalid(other, "query:cursor", message));
        }
        let spec = decode_cursor(token, access, credential_key)?;
        return Ok(ExportRequest { spec, after_id, resumed: true, count, gzip_file });
    }
    if after_id.is_some() {
        return Err(LrsError::invalid("after", "query:cursor", "after continues an export: it needs cursor"));
    }
    let mut filters = filters(params, access, credential_key)?;
    // A fixed end, so the export always ends and a resumed one covers the
    // same statements: nothing stored after it began.
    filters.until_us = Some(filters.until_us.map_or(consistent_us, |u| u.min(consistent_us)));
    let spec = ExportSpec { filters, format: format_param(params)? };
    Ok(ExportRequest { spec, after_id: None, resumed: false, count, gzip_file })
}

fn format_param(params: &Params) -> LrsResult<ExportFormat> {
    match (params.get("format").unwrap_or("ndjson"), params.get("columns")) {
        ("ndjson", None) => Ok(ExportFormat::Ndjson),
        ("ndjson", Some(_)) => Err(LrsError::invalid("columns", "query:columns", "columns is for format=csv")),
        ("csv", columns) => Ok(ExportFormat::Csv(columns.map_or_else(|| Ok(DEFAULT_COLUMNS.to_vec()), columns_param)?)),
        (other, _) => {
            Err(LrsError::invalid("format", "query:format", format!("format must be ndjson or csv, not '{other}'")))
        }
    }
}

/// `columns`: names from the documented set, comma-separated; `id` always
/// comes first (a resumed export continues after an id).
fn columns_param(text: &str) -> LrsResult<Vec<Column>> {
    let mut columns = vec![Column::Id];
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let column = Column::parse(name).ok_or_else(|| {
            let known = Column::names().collect::<Vec<_>>().join(", ");
            LrsError::invalid("columns", "query:columns", format!("unknown column '{name}'; the columns are {known}"))
        })?;
        if column != Column::Id && columns.contains(&column) {
            return Err(LrsError::invalid("columns", "query:columns", format!("column '{name}' is named twice")));
        }
        if column != Column::Id {
            columns.push(column);
        }
    }
    Ok(columns)
}

/// `after`'s position; an id the reader could not have received is refused
/// like an unknown one, so `after` tells nothing about others' statements.
async fn seq_of(state: &AppState, id: &str, access: ReadAccess, credential_key: &str) -> LrsResult<i64> {
    let unknown = || LrsError::invalid("after", "query:after", format!("no statement with id {id} is stored"));
    let row = stored::by_id(&state.db, id).await?.ok_or_else(unknown)?;
    if access == ReadAccess::Mine
        && !stored::has_key(&state.db, state.writer.filter_index(), row.seq, key(KeyKind::Credential, credential_key))
            .await?
    {
        return Err(unknown());
    }
    Ok(row.seq)
}

fn content_type(request: &ExportRequest) -> &'static str {
    match (&request.spec.format, request.gzip_file) {
        (_, true) => "application/gzip",
        (ExportFormat::Ndjson, false) => "application/x-ndjson",
        (ExportFormat::Csv(_), false) => "text/csv; charset=utf-8",
    }
}

/// Whether `Accept-Encoding` lists gzip with a weight above zero.
fn accepts_gzip(req: &HttpRequest) -> bool {
    let values = req.headers().get_all(header::ACCEPT_ENCODING).filter_map(|v| v.to_str().ok());
    values.flat_map(|v| v.split(',')).any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let zero = parts.any(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0));
        (coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip")) && !zero
    })
}

/// The cursor: the export's whole definition, base64url JSON.
#[derive(Serialize, Deserialize)]
struct Cursor {
    k: Vec<i64>,
    s: Option<i64>,
    u: Option<i64>,
    f: String,
    #[serde(default)]
    c: Vec<String>,
}

fn encode_cursor(spec: &ExportSpec) -> String {
    let (f, c) = match &spec.format {
        ExportFormat::Ndjson => ("ndjson", Vec::new()),
        ExportFormat::Csv(columns) => ("csv", columns.iter().map(|c| c.name().to_owned()).collect()),
    };
    let filters = &spec.filters;
    let cursor = Cursor { k: filters.keys.clone(), s: filters.since_us, u: filters.until_us, f: f.to_owned(), c };
    cursor::encode(&cursor)
}

fn decode_cursor(token: &str, access: ReadAccess, credential_key: &str) -> LrsResult<ExportSpec> {
    let bad = || LrsError::invalid("cursor", "query:cursor", "cursor is not an export cursor this LRS issued");
    let c: Cursor = cursor::decode(token).ok_or_else(bad)?;
    let format = match c.f.as_str() {
        "ndjson" => ExportFormat::Ndjson,
        "csv" => ExportFormat::Csv(c.c.iter().map(|n| Column::parse(n)).collect::<Option<_>>().ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    let mut keys = c.k;
    restrict_to_reader(&mut keys, access, credential_key);
    Ok(ExportSpec { filters: Filters { keys, since_us: c.s, until_us: c.u }, format })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        let names: Vec<&str> = FILTER_PARAMS.iter().chain(TIME_PARAMS).chain(OWN_PARAMS).copied().collect();
        Params::parse(query, &names).unwrap()
    }

    #[test]
    fn the_cursor_carries_the_whole_export() {
        let request =
            parse(&params("format=csv&columns=verb,stored&since=2026-01-01T00:00:00Z"), ReadAccess::All, "k", 7)
                .unwrap();
        assert_eq!(request.spec.filters.until_us, Some(7), "a fixed end");
        let token = encode_cursor(&request.spec);
        let resumed = parse(&params(&format!("cursor={token}&count=true")), ReadAccess::All, "k", 99).unwrap();
        assert_eq!(resumed.spec, request.spec);
        assert!(resumed.resumed && resumed.count);
    }

    #[test]
    fn a_mine_reader_stays_restricted_on_any_cursor() {
        let request = parse(&params(""), ReadAccess::All, "other", 7).unwrap();
        let token = encode_cursor(&request.spec);
        let resumed = parse(&params(&format!("cursor={token}")), ReadAccess::Mine, "mine", 7).unwrap();
        assert!(resumed.spec.filters.keys.contains(&key(KeyKind::Credential, "mine")));
    }

    #[test]
    fn columns_start_with_id_once() {
        assert_eq!(columns_param("verb,id,actor").unwrap(), vec![Column::Id, Column::Verb, Column::Actor]);
        assert!(columns_param("verb,verb").is_err());
        assert!(columns_param("nope").is_err());
    }

    #[test]
    fn gzip_is_accepted_unless_weighed_zero() {
        let with = |value: &str| {
            let req = actix_web::test::TestRequest::default().insert_header((header::ACCEPT_ENCODING, value));
            accepts_gzip(&req.to_http_request())
        };
        assert!(with("gzip"));
        assert!(with("br, gzip;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("identity"));
    }
}
