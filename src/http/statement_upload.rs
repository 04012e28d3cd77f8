//! Reading the body of a statement PUT/POST: JSON, or `multipart/mixed`
//! whose first part is the JSON and whose other parts are attachment
//! content. Content is hashed and spooled as it arrives; a part whose hash
//! no statement declares is refused before its content is read.

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::Payload;
use serde_json::Value;

use super::body::{media_type, parse_json, read_limited, require_json};
use super::multipart::{MultipartReader, PartHead};
use crate::error::{LrsError, LrsResult};
use crate::spool::{Received, Spool, SpoolSettings};
use crate::xapi::attachment::{Declared, Sha2Hasher, declared_in};

#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// Largest statement JSON (the whole body, or the first part).
    pub json_bytes: usize,
    /// Largest content of one attachment.
    pub attachment_bytes: u64,
    pub spool: SpoolSettings,
}

fn bad(message: impl Into<String>) -> LrsError {
    LrsError::invalid("body", "multipart", message)
}

/// The statements (one object or an array, not yet checked) and the
/// attachment content sent with them.
pub async fn read(req: &HttpRequest, payload: Payload, limits: &UploadLimits) -> LrsResult<(Value, Vec<Received>)> {
    if media_type(req).as_deref() != Some("multipart/mixed") {
        require_json(req)?;
        let body = read_limited(payload, limits.json_bytes).await?;
        return Ok((parse_json(&body)?, Vec::new()));
    }
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut reader = MultipartReader::new(content_type, payload)?;
    let first = reader.next_part().await?.ok_or_else(|| bad("the multipart body has no parts"))?;
    if !first.media_type().eq_ignore_ascii_case("application/json") {
        return Err(bad("the first part must be the statements, with Content-Type application/json"));
    }
    let statements = parse_json(&reader.read_body(limits.json_bytes, "the statements part").await?)?;
    let declared = declared_in(&statements);
    let mut spool = Spool::new(&limits.spool);
    let mut received = Vec::new();
    while let Some(head) = reader.next_part().await? {
        received.push(read_attachment(&mut reader, &mut spool, head, &declared, limits).await?);
    }
    Ok((statements, received))
}

async fn read_attachment(
    reader: &mut MultipartReader<Payload>,
    spool: &mut Spool<'_>,
    head: PartHead,
    declared: &[Declared],
    limits: &UploadLimits,
) -> LrsResult<Received> {
    let sha2 = head
        .header("X-Experience-API-Hash")
        .ok_or_else(|| bad("every part after the first needs an X-Experience-API-Hash header"))?
        .to_ascii_lowercase();
    if let Some(encoding) = head.header("Content-Transfer-Encoding")
        && !encoding.eq_ignore_ascii_case("binary")
    {
        return Err(bad(format!("Content-Transfer-Encoding must be binary, not '{encoding}'")));
    }
    let Some(declaration) = declared.iter().find(|d| d.sha2 == sha2) else {
        return Err(LrsError::invalid(
            "attachments",
            "attachment:unexpected-part",
            format!("the part with X-Experience-API-Hash {sha2} matches no attachment of the statements"),
        ));
    };
    let mismatch = || bad(format!("the content of the part with X-Experience-API-Hash {sha2} does not have that hash"));
    let mut hasher = Sha2Hasher::for_hex(&sha2).ok_or_else(mismatch)?;
    let limit = if declaration.signature { limits.json_bytes as u64 } else { limits.attachment_bytes };
    spool.begin(declaration.signature);
    let mut length = 0u64;
    while let Some(chunk) = reader.next_body_chunk().await? {
        length += chunk.len() as u64;
        if length > limit {
            return Err(LrsError::PayloadTooLarge(format!("attachment {sha2} is larger than {limit} bytes")));
        }
        hasher.update(&chunk);
        spool.write(&chunk).await.map_err(LrsError::internal)?;
    }
    if hasher.finish_hex() != sha2 {
        return Err(mismatch());
    }
    let content_type = head.header("Content-Type").unwrap_or("application/octet-stream").to_owned();
    spool.finish(sha2, content_type).await.map_err(LrsError::internal)
}
