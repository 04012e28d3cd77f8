//! GET /statements parameters: a single-statement lookup or a filtered page,
//! and the opaque `more` cursor that continues a page.

use serde::{Deserialize, Serialize};

use super::cursor;
use super::params::{Params, agent_param, time_param};
use crate::auth::ReadAccess;
use crate::error::LrsError;
use crate::store::statements::PageQuery;
use crate::xapi::formats::{is_iri, is_uuid};
use crate::xapi::keys::{KeyKind, key};
use crate::xapi::output::Format;

pub const GET_PARAMS: &[&str] = &[
    "statementId",
    "voidedStatementId",
    "agent",
    "verb",
    "activity",
    "registration",
    "related_activities",
    "related_agents",
    "since",
    "until",
    "limit",
    "format",
    "attachments",
    "ascending",
    "more",
];

/// The parameters that select statements by what they carry.
pub const FILTER_PARAMS: &[&str] =
    &["agent", "verb", "activity", "registration", "related_activities", "related_agents"];

/// The parameters that select statements by when they were stored.
pub const TIME_PARAMS: &[&str] = &["since", "until"];

#[derive(Debug)]
pub enum StatementGet {
    /// `statementId` (voided = false) or `voidedStatementId` (voided = true).
    Single {
        id: String,
        voided: bool,
        format: Format,
        attachments: bool,
    },
    Page {
        query: PageQuery,
        format: Format,
        attachments: bool,
    },
}

/// What a `more` cursor carries: the whole query plus the last `seq` served.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    k: Vec<i64>,
    s: Option<i64>,
    u: Option<i64>,
    a: bool,
    l: u32,
    f: String,
    t: bool,
    q: i64,
}

pub fn parse(
    params: &Params,
    access: ReadAccess,
    credential_key: &str,
    page_limit: u32,
) -> Result<StatementGet, LrsError> {
    let format = match params.get("format") {
        None => Format::Exact,
        Some(f) => Format::parse(f).ok_or_else(|| {
            LrsError::invalid("format", "query:format", format!("format must be ids, exact or canonical, not '{f}'"))
        })?,
    };
    let attachments = params.bool("attachments")?;
    if params.contains("statementId") || params.contains("voidedStatementId") {
        return single(params, format, attachments);
    }
    if let Some(token) = params.get("more") {
        if let Some(other) = params.names().find(|n| *n != "more") {
            let message = format!("'{other}' cannot be combined with more");
            return Err(LrsError::invalid(other, "query:more", message));
        }
        return decode_cursor(token, access, credential_key);
    }
    let filters = filters(params, access, credential_key)?;
    let query = PageQuery {
        keys: filters.keys,
        since_us: filters.since_us,
        until_us: filters.until_us,
        ascending: params.bool("ascending")?,
        after_seq: None,
        limit: limit_param(params, page_limit)?,
        include_voided: false,
    };
    Ok(StatementGet::Page { query, format, attachments })
}

/// `statementId` / `voidedStatementId`: only `format` and `attachments` may join them.
fn single(params: &Params, format: Format, attachments: bool) -> Result<StatementGet, LrsError> {
    if params.contains("statementId") && params.contains("voidedStatementId") {
        return Err(LrsError::bad_request("statementId and voidedStatementId cannot be used together"));
    }
    let allowed = |n: &str| matches!(n, "statementId" | "voidedStatementId" | "format" | "attachments");
    if let Some(other) = params.names().find(|n| !allowed(n)) {
        let message = format!("'{other}' cannot be combined with statementId or voidedStatementId");
        return Err(LrsError::invalid(other, "query:single-statement", message));
    }
    let (name, voided) =
        if params.contains("statementId") { ("statementId", false) } else { ("voidedStatementId", true) };
    let id = params.get(name).unwrap_or_default();
    if !is_uuid(id) {
        return Err(LrsError::invalid(name, "query:uuid", format!("{name} must be a UUID")));
    }
    Ok(StatementGet::Single { id: id.to_lowercase(), voided, format, attachments })
}

/// The key filters (`FILTER_PARAMS`) as keys, plus the reader's own
/// restriction: what GET /statements, the export and the live stream select by.
pub fn reader_keys(params: &Params, access: ReadAccess, credential_key: &str) -> Result<Vec<i64>, LrsError> {
    let mut keys = filter_keys(params)?;
    restrict_to_reader(&mut keys, access, credential_key);
    Ok(keys)
}

/// What the filter parameters select, with the reader's own restriction.
#[derive(Debug, Clone, PartialEq)]
pub struct Filters {
    pub keys: Vec<i64>,
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
}

/// Parses the `FILTER_PARAMS` and `TIME_PARAMS` present in `params` (others
/// are the caller's).
pub fn filters(params: &Params, access: ReadAccess, credential_key: &str) -> Result<Filters, LrsError> {
    let keys = reader_keys(params, access, credential_key)?;
    Ok(Filters { keys, since_us: time_param(params, "since")?, until_us: time_param(params, "until")? })
}

/// A `read/mine` reader sees only its own statements, whatever a cursor says:
/// a cursor is not a capability.
pub fn restrict_to_reader(keys: &mut Vec<i64>, access: ReadAccess, credential_key: &str) {
    let mine = key(KeyKind::Credential, credential_key);
    if access == ReadAccess::Mine && !keys.contains(&mine) {
        keys.push(mine);
    }
}

/// The filter parameters as keys, most selective first (the first drives the scan).
fn filter_keys(params: &Params) -> Result<Vec<i64>, LrsError> {
    let mut keys = Vec::new();
    if let Some(reg) = params.get("registration") {
        if !is_uuid(reg) {
            return Err(LrsError::invalid("registration", "query:uuid", "registration must be a UUID"));
        }
        keys.push(key(KeyKind::Registration, &reg.to_lowercase()));
    }
    let related_agents = params.bool("related_agents")?;
    if let Some(text) = params.get("agent") {
        let kind = if related_agents { KeyKind::RelatedAgent } else { KeyKind::Agent };
        keys.push(key(kind, &agent_param("agent", text)?));
    }
    let related_activities = params.bool("related_activities")?;
    if let Some(activity) = params.get("activity") {
        let kind = if related_activities { KeyKind::RelatedActivity } else { KeyKind::Activity };
        keys.push(key(kind, iri_param("activity", activity)?));
    }
    if let Some(verb) = params.get("verb") {
        keys.push(key(KeyKind::Verb, iri_param("verb", verb)?));
    }
    Ok(keys)
}

fn iri_param<'a>(name: &str, value: &'a str) -> Result<&'a str, LrsError> {
    if is_iri(value) { Ok(value) } else { Err(LrsError::invalid(name, "query:iri", format!("{name} must be an IRI"))) }
}

/// `limit`: 0 or absent means the server's page size, which also caps it.
fn limit_param(params: &Params, page_limit: u32) -> Result<u32, LrsError> {
    match params.get("limit").map(str::parse::<u32>) {
        None | Some(Ok(0)) => Ok(page_limit),
        Some(Ok(n)) => Ok(n.min(page_limit)),
        Some(Err(_)) => Err(LrsError::invalid("limit", "query:limit", "limit must be a non-negative integer")),
    }
}

/// The relative IRL of the next page after `last_seq`.
pub fn more_url(query: &PageQuery, format: Format, attachments: bool, last_seq: i64) -> String {
    let cursor = Cursor {
        k: query.keys.clone(),
        s: query.since_us,
        u: query.until_us,
        a: query.ascending,
        l: query.limit,
        f: format.as_str().to_owned(),
        t: attachments,
        q: last_seq,
    };
    format!("/xapi/statements?more={}", cursor::encode(&cursor))
}

fn decode_cursor(token: &str, access: ReadAccess, credential_key: &str) -> Result<StatementGet, LrsError> {
    let bad = || LrsError::invalid("more", "query:more", "more is not a cursor this LRS issued");
    let c: Cursor = cursor::decode(token).ok_or_else(bad)?;
    let format = Format::parse(&c.f).ok_or_else(bad)?;
    let mut keys = c.k;
    restrict_to_reader(&mut keys, access, credential_key);
    Ok(StatementGet::Page {
        query: PageQuery {
            keys,
            since_us: c.s,
            until_us: c.u,
            ascending: c.a,
            after_seq: Some(c.q),
            limit: c.l.max(1),
            include_voided: false,
        },
        format,
        attachments: c.t,
    })
}
