//! Alternate request syntax (xAPI 1.0.3 Communication 1.3): a client that
//! cannot set headers or use PUT/DELETE POSTs to `?method=X` with a form whose
//! fields are the headers, the query parameters and the `content`. The
//! request is rewritten into its usual form before anything else sees it.

use actix_web::HttpMessage;
use actix_web::dev::{Payload, ServiceRequest};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, Uri};
use actix_web::web::{self, Bytes};

use crate::error::LrsError;
use crate::startup::AppState;

/// Form fields that stand for headers (Communication 1.3.s3.b6).
const HEADER_FIELDS: &[&str] =
    &["Authorization", "X-Experience-API-Version", "Content-Type", "Content-Length", "If-Match", "If-None-Match"];

/// Whether `req` uses the alternate syntax (a POST with a `method` parameter).
pub fn applies(req: &ServiceRequest) -> bool {
    req.method() == Method::POST && form_urlencoded::parse(req.query_string().as_bytes()).any(|(k, _)| k == "method")
}

fn bad(message: impl Into<String>) -> LrsError {
    LrsError::invalid("method", "alternate-syntax", message)
}

/// Rewrites an alternate-syntax request into the request it stands for.
pub async fn rewrite(req: &mut ServiceRequest) -> Result<(), LrsError> {
    let mut method = None;
    for (name, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
        if name != "method" {
            return Err(bad(format!("with method=, the query string may hold nothing else (found '{name}')")));
        }
        method = Some(value.into_owned());
    }
    let method = match method.as_deref() {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        Some("PUT") => Method::PUT,
        Some("POST") => Method::POST,
        Some("DELETE") => Method::DELETE,
        other => return Err(bad(format!("method must be GET, HEAD, PUT, POST or DELETE, not {other:?}"))),
    };
    let form_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !form_type.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(bad("an alternate-syntax request must have Content-Type application/x-www-form-urlencoded"));
    }
    let form = read_form(req).await?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut content: Option<String> = None;
    let mut content_type = None;
    for (name, value) in form_urlencoded::parse(&form) {
        if name == "content" {
            content = Some(value.into_owned());
        } else if let Some(h) = HEADER_FIELDS.iter().find(|h| h.eq_ignore_ascii_case(&name)) {
            if h.eq_ignore_ascii_case("Content-Type") {
                content_type = Some(value.into_owned());
            } else if !h.eq_ignore_ascii_case("Content-Length") {
                let v = HeaderValue::from_str(&value)
                    .map_err(|_| bad(format!("form field {h} is not a valid header value")))?;
                req.headers_mut().insert(HeaderName::from_static(lower(h)), v);
            }
        } else {
            query.append_pair(&name, &value);
        }
    }
    let query = query.finish();
    let path_and_query = if query.is_empty() { req.path().to_owned() } else { format!("{}?{query}", req.path()) };
    let uri: Uri = path_and_query.parse().map_err(|_| bad("the form fields do not make a valid query"))?;
    req.match_info_mut().get_mut().update(&uri);
    req.head_mut().uri = uri;
    req.head_mut().method = method;
    let body = Bytes::from(content.unwrap_or_default());
    let content_type = content_type.unwrap_or_else(|| "application/json".to_owned());
    let headers = req.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    if !body.is_empty() {
        let v = HeaderValue::from_str(&content_type)
            .map_err(|_| bad("form field Content-Type is not a valid header value"))?;
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    req.set_payload(Payload::from(body));
    Ok(())
}

fn lower(h: &str) -> &'static str {
    match h {
        "Authorization" => "authorization",
        "X-Experience-API-Version" => "x-experience-api-version",
        "If-Match" => "if-match",
        _ => "if-none-match",
    }
}

/// The form body, up to the configured request size.
async fn read_form(req: &mut ServiceRequest) -> Result<Bytes, LrsError> {
    let limit = req.app_data::<web::Data<AppState>>().map_or(16 * 1024 * 1024, |s| s.uploads.json_bytes);
    super::body::read_limited(req.take_payload(), limit).await
}
