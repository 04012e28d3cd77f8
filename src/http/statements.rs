//! The Statement resource: PUT, POST, GET, HEAD on /xapi/statements.

use std::borrow::Cow;
use std::collections::HashSet;

use actix_web::body::SizedStream;
use actix_web::http::header;
use actix_web::web::{self, Bytes, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;

use futures_util::stream::{self, BoxStream, StreamExt};

use super::multipart;
use super::params::Params;
use super::statement_query::{self, GET_PARAMS, StatementGet, more_url};
use super::statement_upload;
use crate::auth::{Authenticated, ReadAccess};
use crate::error::{LrsError, LrsResult};
use crate::spool::Received;
use crate::startup::AppState;
use crate::store::activities;
use crate::store::attachments::{self, StoredAttachment};
use crate::store::statements::{self as stored, StoredRow};
use crate::store::writer::WriteError;
use crate::xapi::activity::{apply_canonical, for_each_activity_mut};
use crate::xapi::attachment;
use crate::xapi::keys::{KeyKind, key};
use crate::xapi::output::{Format, accepted_languages, canonical_format, ids_format};
use crate::xapi::signature;
use crate::xapi::statement::{Invalid, PreparedStatement, StoreContext, prepare};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/statements")
            .route(web::get().to(get_statements))
            .route(web::head().to(get_statements))
            .route(web::put().to(put_statement))
            .route(web::post().to(post_statements))
            .default_service(web::to(super::method_not_allowed)),
    );
}

async fn put_statement(
    req: HttpRequest,
    auth: Authenticated,
    state: web::Data<AppState>,
    payload: Payload,
) -> LrsResult<HttpResponse> {
    auth.require_statement_write()?;
    let params = Params::parse(req.query_string(), &["statementId"])?;
    let id = params.get("statementId").ok_or_else(|| {
        LrsError::invalid("statementId", "query:required", "PUT /statements needs the statementId parameter")
    })?;
    if !crate::xapi::formats::is_uuid(id) {
        return Err(LrsError::invalid("statementId", "query:uuid", "statementId must be a UUID"));
    }
    let (statement, attachments) = statement_upload::read(&req, payload, &state.uploads).await?;
    if !statement.is_object() {
        return Err(LrsError::invalid("body", "schema:type", "PUT /statements takes one statement (a JSON object)"));
    }
    if let Some(body_id) = statement.get("id").and_then(Value::as_str)
        && !body_id.eq_ignore_ascii_case(id)
    {
        return Err(LrsError::invalid("id", "id:matches-parameter", "the statement's id differs from statementId"));
    }
    let ctx = store_context(&req, &auth, &state);
    let prepared = vec![prepare(statement, Some(id), &ctx).map_err(|e| invalid(e, None))?];
    write(&state, prepared, attachments).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn post_statements(
    req: HttpRequest,
    auth: Authenticated,
    state: web::Data<AppState>,
    payload: Payload,
) -> LrsResult<HttpResponse> {
    auth.require_statement_write()?;
    Params::parse(req.query_string(), &[])?;
    let (statements, attachments) = statement_upload::read(&req, payload, &state.uploads).await?;
    let ctx = store_context(&req, &auth, &state);
    let prepared = match statements {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| prepare(item, None, &ctx).map_err(|e| invalid(e, Some(i))))
            .collect::<LrsResult<Vec<_>>>()?,
        single @ Value::Object(_) => {
            vec![prepare(single, None, &ctx).map_err(|e| invalid(e, None))?]
        }
        _ => {
            return Err(LrsError::invalid(
                "body",
                "schema:type",
                "POST /statements takes a statement or an array of statements",
            ));
        }
    };
    let mut seen = HashSet::with_capacity(prepared.len());
    if let Some(dup) = prepared.iter().find(|s| !seen.insert(s.id.as_str())) {
        return Err(LrsError::invalid(
            "id",
            "id:unique-in-batch",
            format!("statement id {} appears twice in the batch", dup.id),
        ));
    }
    let ids: Vec<String> = prepared.iter().map(|s| s.id.clone()).collect();
    write(&state, prepared, attachments).await?;
    Ok(HttpResponse::Ok().json(ids))
}

fn store_context<'a>(req: &HttpRequest, auth: &'a Authenticated, state: &AppState) -> StoreContext<'a> {
    StoreContext {
        version: super::request_version(req),
        authority: &auth.authority,
        credential_key: &auth.key,
        keep_progress: state.progress,
    }
}

fn invalid(e: Invalid, index: Option<usize>) -> LrsError {
    let property = match (index, e.property.is_empty()) {
        (Some(i), true) => format!("[{i}]"),
        (Some(i), false) => format!("[{i}].{}", e.property),
        (None, _) => e.property,
    };
    let message = if property.is_empty() {
        format!("invalid statement: {}", e.message)
    } else {
        format!("invalid statement: {property}: {}", e.message)
    };
    LrsError::BadRequest { message, property: Some(property), rule: Some(e.rule) }
}

/// Every attachment needs its content: a `fileUrl`, or a part with its hash;
/// every part must be the content of a declared attachment; signatures must
/// be well-formed JWS of their statement.
fn match_attachments(statements: &[PreparedStatement], parts: &[Received]) -> LrsResult<()> {
    let declared: Vec<_> = statements.iter().flat_map(|s| attachment::declared(&s.statement)).collect();
    let missing = declared.iter().find(|d| !d.has_file_url && !parts.iter().any(|p| p.sha2 == d.sha2));
    if let Some(attachment::Declared { sha2, .. }) = missing {
        return Err(LrsError::invalid(
            "attachments",
            "attachment:content",
            format!("attachment {sha2} has no fileUrl and no part with its content (X-Experience-API-Hash)"),
        ));
    }
    if let Some(part) = parts.iter().find(|p| !declared.iter().any(|d| d.sha2 == p.sha2)) {
        return Err(LrsError::invalid(
            "attachments",
            "attachment:unexpected-part",
            format!("the part with X-Experience-API-Hash {} matches no attachment of the statements", part.sha2),
        ));
    }
    for (i, s) in statements.iter().enumerate() {
        signature::check(&s.statement, parts).map_err(|e| invalid(e, (statements.len() > 1).then_some(i)))?;
    }
    Ok(())
}

/// Checks the attachment parts against the statements, stores their
/// content, then the statements. Content whose statements then turn out to
/// conflict stays stored, unreferenced: it is content-addressed, and the
/// next upload of it has nothing to write.
async fn write(state: &AppState, statements: Vec<PreparedStatement>, attachments: Vec<Received>) -> LrsResult<()> {
    match_attachments(&statements, &attachments)?;
    attachments::store(&state.db, &attachments).await?;
    match state.writer.write(statements).await {
        Ok(()) => Ok(()),
        Err(WriteError::Conflict(id)) => Err(LrsError::Conflict(format!(
            "statement {id} is already stored with different content; statements are immutable"
        ))),
        Err(WriteError::Closed) => Err(LrsError::Unavailable("the LRS is shutting down".into())),
        Err(e @ WriteError::Storage(_)) => Err(LrsError::internal(e)),
    }
}

async fn get_statements(req: HttpRequest, auth: Authenticated, state: web::Data<AppState>) -> LrsResult<HttpResponse> {
    let access = auth.statement_read()?;
    let params = Params::parse(req.query_string(), GET_PARAMS)?;
    let languages = accepted_languages(req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    match statement_query::parse(&params, access, &auth.key, state.page_limit)? {
        StatementGet::Single { id, voided, format, attachments } => {
            let row = stored::by_id(&state.db, &id).await?;
            let row = match row {
                Some(r) if r.voided == voided => r,
                _ => {
                    return Err(LrsError::NotFound(format!(
                        "no {}statement with id {id}",
                        if voided { "voided " } else { "" }
                    )));
                }
            };
            if access == ReadAccess::Mine
                && !stored::has_key(
                    &state.db,
                    state.writer.filter_index(),
                    row.seq,
                    key(KeyKind::Credential, &auth.key),
                )
                .await?
            {
                return Err(LrsError::NotFound(format!("no statement with id {id}")));
            }
            let rows = [row];
            let (mut texts, contents) = present(&state, &rows, format, &languages, attachments).await?;
            respond(&state, texts.swap_remove(0).into_owned(), Some(rows[0].stored_us), contents)
        }
        StatementGet::Page { query, format, attachments } => {
            let (rows, more) = stored::page(&state.db, state.writer.filter_index(), &query).await?;
            let more = match rows.last() {
                Some(last) if more => more_url(&query, format, attachments, last.seq),
                _ => String::new(),
            };
            let last_modified = rows.iter().map(|r| r.stored_us).max();
            let (texts, contents) = present(&state, &rows, format, &languages, attachments).await?;
            respond(&state, statement_result(&texts, &more)?, last_modified, contents)
        }
    }
}

/// The statements as the response shows them and, with `attachments=true`,
/// the content their attachments declare (each hash once). Each stored
/// statement is parsed at most once, and not at all in the default exact
/// format without attachments: its stored text is served as it is.
async fn present<'r>(
    state: &AppState,
    rows: &'r [StoredRow],
    format: Format,
    languages: &[String],
    attachments: bool,
) -> LrsResult<(Vec<Cow<'r, str>>, Option<Vec<StoredAttachment>>)> {
    let exact = || rows.iter().map(|r| Cow::Borrowed(r.body.as_str())).collect();
    if format == Format::Exact && !attachments {
        return Ok((exact(), None));
    }
    let mut values: Vec<Value> =
        rows.iter().map(|r| serde_json::from_str(&r.body)).collect::<Result<_, _>>().map_err(LrsError::internal)?;
    let contents = if attachments {
        let mut hashes: Vec<String> = values.iter().flat_map(attachment::declared).map(|d| d.sha2).collect();
        hashes.sort_unstable();
        hashes.dedup();
        Some(attachments::by_hashes(&state.db, &hashes).await?)
    } else {
        None
    };
    match format {
        Format::Exact => return Ok((exact(), contents)),
        Format::Ids => values.iter_mut().for_each(ids_format),
        Format::Canonical => {
            let mut iris: Vec<String> = Vec::new();
            for v in &mut values {
                for_each_activity_mut(v, &mut |a| iris.extend(a.get("id").and_then(Value::as_str).map(str::to_owned)));
            }
            iris.sort_unstable();
            iris.dedup();
            let iris: Vec<&str> = iris.iter().map(String::as_str).collect();
            let definitions = activities::definitions(&state.db, &iris).await?;
            for v in &mut values {
                apply_canonical(v, &definitions);
                canonical_format(v, languages);
            }
        }
    }
    let texts = values.iter().map(|v| serde_json::to_string(v).map(Cow::Owned)).collect::<Result<_, _>>();
    Ok((texts.map_err(LrsError::internal)?, contents))
}

/// The StatementResult, from the statements' JSON texts.
fn statement_result(texts: &[Cow<'_, str>], more: &str) -> LrsResult<String> {
    let mut out = String::with_capacity(texts.iter().map(|t| t.len() + 1).sum::<usize>() + more.len() + 32);
    out.push_str("{\"statements\":[");
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(text);
    }
    out.push_str("],\"more\":");
    out.push_str(&serde_json::to_string(more).map_err(LrsError::internal)?);
    out.push('}');
    Ok(out)
}

fn respond(
    state: &AppState,
    json: String,
    stored_us: Option<i64>,
    attachments: Option<Vec<StoredAttachment>>,
) -> LrsResult<HttpResponse> {
    let mut res = match attachments {
        Some(parts) => {
            let boundary = uuid::Uuid::new_v4().simple().to_string();
            let (length, body) = multipart_body(state, &boundary, json, parts);
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, format!("multipart/mixed; boundary={boundary}")))
                .body(SizedStream::new(length, body))
        }
        None => HttpResponse::Ok().content_type("application/json").body(json),
    };
    super::last_modified(&mut res, stored_us);
    Ok(res)
}

/// A `multipart/mixed` response body and its length: the statements, then
/// each attachment's content streamed from the store one buffer at a time.
fn multipart_body(
    state: &AppState,
    boundary: &str,
    json: String,
    attachments: Vec<StoredAttachment>,
) -> (u64, BoxStream<'static, Result<Bytes, LrsError>>) {
    fn text(s: String) -> BoxStream<'static, Result<Bytes, LrsError>> {
        stream::once(async move { Ok(Bytes::from(s)) }).boxed()
    }
    let head = multipart::statements_head(boundary);
    let mut length = (head.len() + json.len()) as u64;
    let mut pieces = vec![text(head), text(json)];
    for a in attachments {
        let head = multipart::attachment_head(boundary, &a.content_type, &a.sha2);
        length += head.len() as u64 + a.length;
        pieces.push(text(head));
        pieces.push(attachments::content(state.db.clone(), a, state.uploads.spool.buffer_bytes).boxed());
    }
    let closing = multipart::closing(boundary);
    length += closing.len() as u64;
    pieces.push(text(closing));
    (length, stream::iter(pieces).flatten().boxed())
}
