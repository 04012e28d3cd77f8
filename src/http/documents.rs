//! The document resources (xAPI 1.0.3 Communication 2.3, 2.6, 2.7): State,
//! Activity Profile and Agent Profile. They differ only in their parameters
//! and a few rules, described by a `DocResource`; one set of handlers serves
//! all three.

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use super::params::{Params, agent_param, time_param};
use crate::auth::Authenticated;
use crate::error::{LrsError, LrsResult};
use crate::startup::AppState;
use crate::store::documents::{self, Change, DocKey, Document};
use crate::xapi::XapiVersion;
use crate::xapi::document::{self, DocKind, DocumentError, Preconditions};
use crate::xapi::formats::{is_iri, is_uuid};

/// What distinguishes one document resource from another.
pub struct DocResource {
    kind: DocKind,
    /// `stateId` or `profileId`.
    id_param: &'static str,
    takes_activity: bool,
    takes_agent: bool,
    takes_registration: bool,
    /// Profiles: a PUT must say, with If-Match or If-None-Match, what it
    /// expects to replace (409 over an existing document, 400 otherwise).
    guarded_put: bool,
    /// From this version on, a PUT over an existing document needs
    /// If-Match or If-None-Match (409 otherwise): always for the profiles,
    /// from xAPI 2.0 for State.
    guarded_overwrite_from: XapiVersion,
    /// State: DELETE without an id clears every document of the context.
    delete_all: bool,
    /// The xAPI scope that grants writing (and reading).
    scope: &'static str,
}

const STATE: DocResource = DocResource {
    kind: DocKind::State,
    id_param: "stateId",
    takes_activity: true,
    takes_agent: true,
    takes_registration: true,
    guarded_put: false,
    guarded_overwrite_from: XapiVersion::V2_0,
    delete_all: true,
    scope: "state",
};

const ACTIVITY_PROFILE: DocResource = DocResource {
    kind: DocKind::ActivityProfile,
    id_param: "profileId",
    takes_activity: true,
    takes_agent: false,
    takes_registration: false,
    guarded_put: true,
    guarded_overwrite_from: XapiVersion::V1_0,
    delete_all: false,
    scope: "profile",
};

const AGENT_PROFILE: DocResource = DocResource {
    kind: DocKind::AgentProfile,
    id_param: "profileId",
    takes_activity: false,
    takes_agent: true,
    takes_registration: false,
    guarded_put: true,
    guarded_overwrite_from: XapiVersion::V1_0,
    delete_all: false,
    scope: "profile",
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, resource) in
        [("/activities/state", &STATE), ("/activities/profile", &ACTIVITY_PROFILE), ("/agents/profile", &AGENT_PROFILE)]
    {
        cfg.service(
            web::resource(path)
                .app_data(web::Data::new(resource))
                .route(web::get().to(get_documents))
                .route(web::head().to(get_documents))
                .route(web::put().to(put_document))
                .route(web::post().to(post_document))
                .route(web::delete().to(delete_documents))
                .default_service(web::to(super::method_not_allowed)),
        );
    }
}

type Resource = web::Data<&'static DocResource>;

/// The request's document key; `doc_id` is '' when no id was given.
fn key(req: &HttpRequest, res: &DocResource, with_since: bool) -> LrsResult<(DocKey, Option<i64>)> {
    let mut allowed = vec![res.id_param];
    allowed.extend(res.takes_activity.then_some("activityId"));
    allowed.extend(res.takes_agent.then_some("agent"));
    allowed.extend(res.takes_registration.then_some("registration"));
    allowed.extend(with_since.then_some("since"));
    let params = Params::parse(req.query_string(), &allowed)?;
    let required = |name: &str| {
        params
            .get(name)
            .ok_or_else(|| LrsError::invalid(name, "query:required", format!("the {name} parameter is required")))
    };
    let activity_id = if res.takes_activity { required("activityId")?.to_owned() } else { String::new() };
    if res.takes_activity && !is_iri(&activity_id) {
        return Err(LrsError::invalid("activityId", "query:iri", "activityId must be an IRI"));
    }
    let agent_key = if res.takes_agent { agent_param("agent", required("agent")?)? } else { String::new() };
    let registration = params.get("registration").unwrap_or_default();
    if !registration.is_empty() && !is_uuid(registration) {
        return Err(LrsError::invalid("registration", "query:uuid", "registration must be a UUID"));
    }
    let doc_id = params.get(res.id_param).unwrap_or_default().to_owned();
    if with_since && !doc_id.is_empty() && params.contains("since") {
        let message = format!("since applies to the list of ids, not to one {}", res.id_param);
        return Err(LrsError::invalid("since", "query:since", message));
    }
    let since = time_param(&params, "since")?;
    let key = DocKey { kind: res.kind, activity_id, agent_key, registration: registration.to_lowercase(), doc_id };
    Ok((key, since))
}

fn require_id(key: &DocKey, res: &DocResource) -> LrsResult<()> {
    if key.doc_id.is_empty() {
        let name = res.id_param;
        return Err(LrsError::invalid(name, "query:required", format!("the {name} parameter is required")));
    }
    Ok(())
}

fn preconditions(req: &HttpRequest) -> Preconditions {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    Preconditions::from_headers(header(header::IF_MATCH), header(header::IF_NONE_MATCH))
}

fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned()
}

impl From<DocumentError> for LrsError {
    fn from(e: DocumentError) -> Self {
        match e {
            DocumentError::PreconditionFailed(m) => LrsError::PreconditionFailed(m),
            DocumentError::Conflict(m) => LrsError::Conflict(m),
            DocumentError::BadContent(m) => LrsError::invalid("body", "document:content", m),
        }
    }
}

async fn get_documents(
    req: HttpRequest,
    auth: Authenticated,
    res: Resource,
    state: web::Data<AppState>,
) -> LrsResult<HttpResponse> {
    auth.require_any(&["all/read", res.scope])?;
    let (key, since) = key(&req, &res, true)?;
    if key.doc_id.is_empty() {
        let ids = documents::ids(&state.db, &key, since).await?;
        let latest = ids.iter().map(|(_, updated)| *updated).max();
        let names: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
        let mut response = HttpResponse::Ok().json(names);
        super::last_modified(&mut response, latest);
        return Ok(response);
    }
    let doc = documents::get(&state.db, &key)
        .await?
        .ok_or_else(|| LrsError::NotFound(format!("no document with {} '{}'", res.id_param, key.doc_id)))?;
    let mut response = HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, doc.content_type.as_str()))
        .insert_header((header::ETAG, doc.etag.as_str()))
        .body(doc.content);
    super::last_modified(&mut response, Some(doc.updated_us));
    Ok(response)
}

/// `documents::update`, once the request's preconditions hold for the
/// current document (`guard_overwrite`: replacing one needs a precondition).
async fn update_checked(
    db: &sea_orm::DatabaseConnection,
    key: &DocKey,
    pre: &Preconditions,
    guard_overwrite: bool,
    decide: impl FnOnce(Option<&Document>) -> LrsResult<Change>,
) -> LrsResult<()> {
    documents::update(db, key, |current| {
        pre.check(current.map(|d| d.etag.as_str()), guard_overwrite)?;
        decide(current)
    })
    .await
}

/// What a PUT or POST names: the document, its preconditions, and the
/// content type of the body.
struct DocumentWrite {
    key: DocKey,
    pre: Preconditions,
    content_type: String,
}

fn document_write(req: &HttpRequest, auth: &Authenticated, res: &DocResource) -> LrsResult<DocumentWrite> {
    auth.require_any(&[res.scope])?;
    let (key, _) = key(req, res, false)?;
    require_id(&key, res)?;
    Ok(DocumentWrite { key, pre: preconditions(req), content_type: content_type(req) })
}

async fn put_document(
    req: HttpRequest,
    auth: Authenticated,
    res: Resource,
    state: web::Data<AppState>,
    body: Bytes,
) -> LrsResult<HttpResponse> {
    let DocumentWrite { key, pre, content_type } = document_write(&req, &auth, &res)?;
    document::validate_put_json(&content_type, &body)?;
    let guard_overwrite = super::request_version(&req) >= res.guarded_overwrite_from;
    update_checked(&state.db, &key, &pre, guard_overwrite, |current| {
        if res.guarded_put && current.is_none() && pre.is_empty() {
            return Err(LrsError::invalid(
                "If-None-Match",
                "concurrency",
                "a PUT of a profile document needs If-Match (to replace) or If-None-Match: * (to create)",
            ));
        }
        Ok(Change::Store { content_type, content: body.to_vec() })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn post_document(
    req: HttpRequest,
    auth: Authenticated,
    res: Resource,
    state: web::Data<AppState>,
    body: Bytes,
) -> LrsResult<HttpResponse> {
    let DocumentWrite { key, pre, content_type } = document_write(&req, &auth, &res)?;
    document::validate_posted_json(&content_type, &body)?;
    update_checked(&state.db, &key, &pre, false, |current| {
        let content = match current {
            None => body.to_vec(),
            Some(doc) => document::merge(&doc.content_type, &doc.content, &content_type, &body)?,
        };
        let content_type = current.map_or(content_type, |doc| doc.content_type.clone());
        Ok(Change::Store { content_type, content })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_documents(
    req: HttpRequest,
    auth: Authenticated,
    res: Resource,
    state: web::Data<AppState>,
) -> LrsResult<HttpResponse> {
    auth.require_any(&[res.scope])?;
    let (key, _) = key(&req, &res, false)?;
    if key.doc_id.is_empty() {
        if !res.delete_all {
            require_id(&key, &res)?;
        }
        documents::delete_all(&state.db, &key).await?;
        return Ok(HttpResponse::NoContent().finish());
    }
    let pre = preconditions(&req);
    update_checked(&state.db, &key, &pre, false, |current| {
        Ok(if current.is_some() { Change::Delete } else { Change::Nothing })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
