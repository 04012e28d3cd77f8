//! Request bodies: content type checks and JSON parsing with clear errors.

use std::fmt::Display;

use actix_web::HttpRequest;
use actix_web::http::header;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::error::LrsError;

/// The media type of the request, lower-cased, without parameters.
pub fn media_type(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

pub fn require_json(req: &HttpRequest) -> Result<(), LrsError> {
    match media_type(req).as_deref() {
        Some("application/json") => Ok(()),
        Some(other) => Err(LrsError::invalid(
            "Content-Type",
            "content-type",
            format!("Content-Type must be application/json, not '{other}'"),
        )),
        None => Err(LrsError::invalid("Content-Type", "content-type", "Content-Type application/json is required")),
    }
}

pub fn parse_json(bytes: &[u8]) -> Result<Value, LrsError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(LrsError::invalid("body", "json", "the request body is empty"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| LrsError::invalid("body", "json", format!("the body is not valid JSON: {e}")))
}

/// A whole request body of at most `limit` bytes (413 beyond).
pub async fn read_limited<S, E>(mut payload: S, limit: usize) -> Result<Bytes, LrsError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| LrsError::bad_request(format!("reading the request body failed: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(LrsError::PayloadTooLarge(format!("the request body is larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
