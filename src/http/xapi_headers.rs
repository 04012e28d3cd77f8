//! Headers every xAPI exchange carries: the request's
//! `X-Experience-API-Version` is checked (400 if missing or unsupported), the
//! response always states ours, and every Statement resource response (errors
//! included) gets `X-Experience-API-Consistent-Through`.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError};

use crate::error::LrsError;
use crate::xapi::XapiVersion;
use crate::xapi::formats::format_timestamp;
use crate::xapi::version::HEADER;

pub const CONSISTENT_THROUGH: &str = "X-Experience-API-Consistent-Through";

pub async fn xapi_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let path = req.path();
    let is_statements = path.starts_with("/xapi/statements");
    let needs_version =
        path.starts_with("/xapi/") && path != "/xapi/about" && req.method() != Method::OPTIONS;
    let mut version = XapiVersion::V1_0;
    if needs_version {
        let header = req
            .headers()
            .get(HEADER)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let parsed = match header {
            None => Err(format!("the {HEADER} header is required")),
            Some(h) => XapiVersion::parse(h),
        };
        match parsed {
            Ok(v) => version = v,
            Err(message) => {
                let response = LrsError::invalid(HEADER, "version", message).error_response();
                let mut res = req.into_response(response).map_into_right_body();
                stamp(&mut res, version, is_statements);
                return Ok(res);
            }
        }
    }
    req.extensions_mut().insert(version);
    let mut res = next.call(req).await?.map_into_left_body();
    stamp(&mut res, version, is_statements);
    Ok(res)
}

fn stamp<B>(res: &mut ServiceResponse<B>, version: XapiVersion, is_statements: bool) {
    let headers = res.headers_mut();
    headers.insert(
        HeaderName::from_static("x-experience-api-version"),
        HeaderValue::from_static(version.response_header()),
    );
    if is_statements {
        // Writes are synchronous (acknowledged = committed), so every
        // acknowledged statement is queryable as of now.
        let now = format_timestamp(chrono::Utc::now());
        if let Ok(v) = HeaderValue::from_str(&now) {
            headers.insert(
                HeaderName::from_static("x-experience-api-consistent-through"),
                v,
            );
        }
    }
}
