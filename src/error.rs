//! One error type for every failure a request can meet, rendered as a JSON body.
//!
//! actix's own errors (bad payloads, unknown routes, wrong methods) are turned
//! into the same body by `json_error_handler`, so a client always gets JSON.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum LrsError {
    /// The request or a statement in it breaks a rule of the spec.
    #[error("{message}")]
    BadRequest {
        message: String,
        /// JSON path of the offending property, e.g. `statements[1].actor.mbox`.
        property: Option<String>,
        /// The rule it breaks, e.g. `format:mailto`.
        rule: Option<String>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    /// A failure of ours; the cause is logged, the client sees only that it happened.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type LrsResult<T> = Result<T, LrsError>;

impl LrsError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        LrsError::BadRequest { message: message.into(), property: None, rule: None }
    }

    pub fn invalid(property: impl Into<String>, rule: impl Into<String>, message: impl Into<String>) -> Self {
        LrsError::BadRequest { message: message.into(), property: Some(property.into()), rule: Some(rule.into()) }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        LrsError::Internal(e.into())
    }
}

impl From<sea_orm::DbErr> for LrsError {
    fn from(e: sea_orm::DbErr) -> Self {
        LrsError::Internal(e.into())
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    property: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
}

/// The JSON every error response carries.
pub fn error_json(status: StatusCode, message: &str, property: Option<&str>, rule: Option<&str>) -> HttpResponse {
    let body = ErrorBody { error: status.canonical_reason().unwrap_or("Error"), message, property, rule };
    let mut res = HttpResponse::build(status).json(body);
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"xlrs\""));
    }
    res
}

impl ResponseError for LrsError {
    fn status_code(&self) -> StatusCode {
        match self {
            LrsError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            LrsError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            LrsError::Forbidden(_) => StatusCode::FORBIDDEN,
            LrsError::NotFound(_) => StatusCode::NOT_FOUND,
            LrsError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            LrsError::Conflict(_) => StatusCode::CONFLICT,
            LrsError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            LrsError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            LrsError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            LrsError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            LrsError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let LrsError::Internal(cause) = self {
            tracing::error!(error = ?cause, "request failed");
        }
        let (property, rule) = match self {
            LrsError::BadRequest { property, rule, .. } => (property.as_deref(), rule.as_deref()),
            _ => (None, None),
        };
        error_json(self.status_code(), &self.to_string(), property, rule)
    }
}

/// Rewrites an error response that is not JSON yet (actix's own: payload,
/// routing, method errors) into our JSON error body, keeping its status.
pub fn json_error_handler<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json || res.request().method() == actix_web::http::Method::HEAD {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = match res.response().error() {
        Some(e) => e.to_string(),
        None => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let (req, old) = res.into_parts();
    let mut new = error_json(status, &message, None, None);
    // Keep headers set by inner layers (version, CORS, Allow) but not the body's.
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH && !new.headers().contains_key(name) {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res = ServiceResponse::new(req, new.map_into_boxed_body()).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
