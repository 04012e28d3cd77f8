//! `GET /xapi/extensions/openapi.json`: the OpenAPI description of every
//! endpoint that is not an xAPI resource (the admin API, `/metrics`, the
//! extensions). The document is a file built into the binary, so what a
//! server serves is what it was built with; `conformance-tests/openapi.rs`
//! holds the file to the routes. Unauthenticated: it describes no secret.

use std::sync::LazyLock;

use actix_web::http::header::{self, CacheControl, CacheDirective, EntityTag, IfNoneMatch};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

const DOCUMENT: &str = include_str!("openapi.json");

/// The document is fixed at build time, so its tag is computed once.
static DOCUMENT_TAG: LazyLock<EntityTag> = LazyLock::new(|| {
    let digest = Sha256::digest(DOCUMENT.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    EntityTag::new_strong(hex)
});

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/openapi.json")
            .route(web::get().to(openapi_document))
            .default_service(web::to(super::method_not_allowed)),
    );
}

async fn openapi_document(req: HttpRequest) -> HttpResponse {
    let tag = DOCUMENT_TAG.clone();
    let unchanged = match req.get_header::<IfNoneMatch>() {
        Some(IfNoneMatch::Any) => true,
        Some(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&tag)),
        None => false,
    };
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    // Kept, but asked again each time: a new build answers with a new document.
    response.insert_header(header::ETag(tag)).insert_header(CacheControl(vec![CacheDirective::NoCache]));
    if unchanged {
        return response.finish();
    }
    response.content_type(header::ContentType::json()).body(DOCUMENT)
}
