//! actix-web layer: one module per xAPI resource, plus the pieces they share;
//! `admin` (the forwarders' admin API) and `metrics` live outside `/xapi`.

pub mod about;
pub mod activities;
pub mod admin;
pub mod agents;
pub mod alternate_syntax;
pub mod body;
pub mod cursor;
pub mod documents;
pub mod export;
pub mod metrics;
pub mod multipart;
pub mod openapi;
pub mod params;
pub mod progress;
pub mod statement_query;
pub mod statement_upload;
pub mod statements;
pub mod stream;
pub mod xapi_headers;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::error::LrsError;

/// The xAPI version whose rules apply to the request (set by `xapi_headers`).
pub fn request_version(req: &actix_web::HttpRequest) -> crate::xapi::XapiVersion {
    use actix_web::HttpMessage;
    req.extensions().get::<crate::xapi::XapiVersion>().copied().unwrap_or(crate::xapi::XapiVersion::V1_0)
}

/// Routes under `/xapi`, the admin API and `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(admin::configure).configure(metrics::configure);
    cfg.service(
        web::scope("/xapi")
            .configure(statements::configure)
            .configure(documents::configure)
            .configure(activities::configure)
            .configure(agents::configure)
            .configure(about::configure)
            // xlrs's own resources for providers and analysts (not xAPI).
            .service(
                web::scope("/extensions")
                    .configure(progress::configure)
                    .configure(export::configure)
                    .configure(stream::configure)
                    .configure(openapi::configure),
            )
            .default_service(web::to(not_found)),
    );
}

/// Sets `Last-Modified` (an HTTP date) from a time in µs, when there is one.
pub fn last_modified(response: &mut HttpResponse, us: Option<i64>) {
    let date = us.and_then(chrono::DateTime::from_timestamp_micros);
    if let Some(Ok(v)) = date.map(|t| HeaderValue::from_str(&t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())) {
        response.headers_mut().insert(header::LAST_MODIFIED, v);
    }
}

/// What the router answers (404) for a path no route matches: resources'
/// own 404s name what they did not find instead.
pub const NO_SUCH_RESOURCE: &str = "no such resource";

pub async fn not_found() -> Result<HttpResponse, LrsError> {
    Err(LrsError::NotFound(NO_SUCH_RESOURCE.into()))
}

pub async fn method_not_allowed() -> Result<HttpResponse, LrsError> {
    Err(LrsError::MethodNotAllowed("this method is not allowed on this resource".into()))
}
