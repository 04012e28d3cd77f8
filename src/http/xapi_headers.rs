//! Headers every xAPI exchange carries: the request's
//! `X-Experience-API-Version` is checked (400 if missing or unsupported), the
//! response always states ours, and every Statement resource response (errors
//! included) gets `X-Experience-API-Consistent-Through`. Alternate-syntax
//! requests are rewritten here first, since their headers arrive in the form.
//! Paths outside `/xapi` (the admin API, `/metrics`) are not xAPI and pass
//! through untouched; `/xapi/extensions/` (progress, export, live stream) is
//! ours, not the specification's, so it asks for no version header.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};

use super::alternate_syntax;
use crate::error::LrsError;
use crate::startup::AppState;
use crate::xapi::XapiVersion;
use crate::xapi::formats::format_timestamp;
use crate::xapi::version::HEADER;

/// Where xlrs's own resources live, beside the xAPI ones.
pub const EXTENSIONS: &str = "/xapi/extensions/";

pub async fn xapi_headers(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let path = req.path();
    if path != "/xapi" && !path.starts_with("/xapi/") {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let is_statements = path.starts_with("/xapi/statements");
    let is_xapi = path.starts_with("/xapi/")
        && path != "/xapi/about"
        && !path.starts_with(EXTENSIONS)
        && req.method() != Method::OPTIONS;
    let version = if is_xapi { checked_version(&mut req).await } else { Ok(XapiVersion::V1_0) };
    match version {
        Ok(version) => {
            req.extensions_mut().insert(version);
            let mut res = next.call(req).await?.map_into_left_body();
            stamp(&mut res, version, is_statements);
            Ok(res)
        }
        Err(e) => {
            let version = stated_version_of_refusal(&req).await;
            let mut res = req.into_response(e.error_response()).map_into_right_body();
            stamp(&mut res, version, is_statements);
            Ok(res)
        }
    }
}

/// The version a refused request is answered in: its own when it named one
/// this LRS serves, else its credential's default version, else 1.0.3.
async fn stated_version_of_refusal(req: &ServiceRequest) -> XapiVersion {
    if let Some(version) = req.extensions().get::<XapiVersion>() {
        return *version;
    }
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return XapiVersion::V1_0;
    };
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match state.auth.authenticate(authorization).await {
        Ok(auth) => auth.default_version.unwrap_or(XapiVersion::V1_0),
        Err(_) => XapiVersion::V1_0,
    }
}

/// Undoes the alternate request syntax, then reads the version header.
async fn checked_version(req: &mut ServiceRequest) -> Result<XapiVersion, LrsError> {
    let alternate = alternate_syntax::applies(req);
    if alternate {
        alternate_syntax::rewrite(req).await?;
    }
    let header = req.headers().get(HEADER).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let parsed = match header {
        None => Err(format!("the {HEADER} header is required")),
        Some(h) => XapiVersion::parse(h),
    };
    let version = parsed.map_err(|message| LrsError::invalid(HEADER, "version", message))?;
    if alternate && version == XapiVersion::V2_0 {
        // Refused in the version the request named.
        req.extensions_mut().insert(version);
        return Err(LrsError::invalid(
            "method",
            "alternate-syntax",
            "the alternate request syntax (?method=) is not part of xAPI 2.0; send the request as itself",
        ));
    }
    Ok(version)
}

fn stamp<B>(res: &mut ServiceResponse<B>, version: XapiVersion, is_statements: bool) {
    // Writes are synchronous (acknowledged = committed): every statement
    // stored before the writer's current commit began is queryable.
    let through = is_statements.then(|| {
        let us = res
            .request()
            .app_data::<web::Data<AppState>>()
            .map(|s| s.writer.consistent_through_us())
            .unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
        chrono::DateTime::from_timestamp_micros(us).map(format_timestamp)
    });
    let headers = res.headers_mut();
    headers.insert(
        HeaderName::from_static("x-experience-api-version"),
        HeaderValue::from_static(version.response_header()),
    );
    if let Some(Some(through)) = through
        && let Ok(v) = HeaderValue::from_str(&through)
    {
        headers.insert(HeaderName::from_static("x-experience-api-consistent-through"), v);
    }
}
