//! `multipart/mixed` statement requests (xAPI 1.0.3 Data 2.4.11): the first
//! part holds the statements as JSON, each further part one attachment's
//! content, identified by its `X-Experience-API-Hash`.

use actix_web::web::Bytes;
use memchr::memmem;

use crate::error::LrsError;
use crate::xapi::attachment::{AttachmentContent, hash_matches};

/// A parsed `multipart/mixed` statement request.
#[derive(Debug)]
pub struct StatementMultipart {
    pub statements: Bytes,
    pub attachments: Vec<AttachmentContent>,
}

fn bad(message: impl Into<String>) -> LrsError {
    LrsError::invalid("body", "multipart", message)
}

/// The `boundary` parameter of a `multipart/mixed` Content-Type.
fn boundary(content_type: &str) -> Result<String, LrsError> {
    content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or_else(|| bad("Content-Type multipart/mixed needs a boundary parameter"))
}

struct Part {
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Part {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Splits `body` into its parts (RFC 2046 §5.1.1; a preamble and epilogue are ignored).
fn split(body: &Bytes, boundary: &str) -> Result<Vec<Part>, LrsError> {
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    let start = if body.starts_with(delimiter.as_bytes()) {
        0
    } else {
        memmem::find(body, next_delimiter.as_bytes())
            .map(|p| p + 2)
            .ok_or_else(|| bad("no part starts with the boundary"))?
    };
    let mut parts = Vec::new();
    let mut pos = start + delimiter.len();
    loop {
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding, then the line break that ends the delimiter line.
        let line_end = memmem::find(&body[pos..], b"\r\n").ok_or_else(|| bad("a boundary line is not terminated"))?;
        if !body[pos..pos + line_end].iter().all(|b| *b == b' ' || *b == b'\t') {
            return Err(bad("unexpected text after a boundary"));
        }
        pos += line_end + 2;
        let end = memmem::find(&body[pos..], next_delimiter.as_bytes())
            .map(|e| pos + e)
            .ok_or_else(|| bad("the multipart body does not end with its closing boundary"))?;
        parts.push(parse_part(body.slice(pos..end))?);
        pos = end + next_delimiter.len();
    }
}

fn parse_part(raw: Bytes) -> Result<Part, LrsError> {
    let (head, body) = if raw.starts_with(b"\r\n") {
        (&raw[..0], raw.slice(2..))
    } else {
        let split = memmem::find(&raw, b"\r\n\r\n").ok_or_else(|| bad("a part has no blank line after its headers"))?;
        (&raw[..split], raw.slice(split + 4..))
    };
    let head = std::str::from_utf8(head).map_err(|_| bad("part headers must be UTF-8"))?;
    let mut headers = Vec::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| bad(format!("malformed part header '{line}'")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(Part { headers, body })
}

/// Parses and checks a statement request body.
pub fn parse(content_type: &str, body: &Bytes) -> Result<StatementMultipart, LrsError> {
    let boundary = boundary(content_type)?;
    let mut parts = split(body, &boundary)?.into_iter();
    let first = parts.next().ok_or_else(|| bad("the multipart body has no parts"))?;
    let first_type = first.header("Content-Type").unwrap_or("");
    if !first_type.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") {
        return Err(bad("the first part must be the statements, with Content-Type application/json"));
    }
    let mut attachments = Vec::new();
    for part in parts {
        let hash = part
            .header("X-Experience-API-Hash")
            .ok_or_else(|| bad("every part after the first needs an X-Experience-API-Hash header"))?
            .to_ascii_lowercase();
        if let Some(encoding) = part.header("Content-Transfer-Encoding")
            && !encoding.eq_ignore_ascii_case("binary")
        {
            return Err(bad(format!("Content-Transfer-Encoding must be binary, not '{encoding}'")));
        }
        if !hash_matches(&hash, &part.body) {
            return Err(bad(format!(
                "the content of the part with X-Experience-API-Hash {hash} does not have that hash"
            )));
        }
        attachments.push(AttachmentContent {
            sha2: hash,
            content_type: part.header("Content-Type").unwrap_or("application/octet-stream").to_owned(),
            content: part.body,
        });
    }
    Ok(StatementMultipart { statements: first.body, attachments })
}

/// Writes a `multipart/mixed` body: the JSON part, then each attachment.
pub fn render(boundary: &str, json: &str, attachments: &[AttachmentContent]) -> Vec<u8> {
    let size = json.len() + attachments.iter().map(|a| a.content.len() + 200).sum::<usize>() + 200;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/json\r\n\r\n").as_bytes());
    out.extend_from_slice(json.as_bytes());
    for a in attachments {
        out.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {}\r\n\r\n",
                a.content_type, a.sha2
            )
            .as_bytes(),
        );
        out.extend_from_slice(&a.content);
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xapi::attachment::to_hex;
    use sha2::{Digest, Sha256};

    const CT: &str = "multipart/mixed; boundary=abc";

    fn body(parts: &str) -> Bytes {
        Bytes::from(parts.replace('\n', "\r\n"))
    }

    #[test]
    fn parses_statements_and_attachments() {
        let hash = to_hex(&Sha256::digest(b"hello"));
        let b = body(&format!(
            "--abc\nContent-Type: application/json\n\n{{\"a\":1}}\n--abc\nContent-Type: text/plain\nContent-Transfer-Encoding: binary\nX-Experience-API-Hash: {hash}\n\nhello\n--abc--\n"
        ));
        let m = parse(CT, &b).unwrap();
        assert_eq!(&m.statements[..], b"{\"a\":1}");
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(&m.attachments[0].content[..], b"hello");
        let rendered = render("abc", "{\"a\":1}", &m.attachments);
        let again = parse(CT, &Bytes::from(rendered)).unwrap();
        assert_eq!(&again.attachments[0].content[..], b"hello");
    }

    #[test]
    fn refuses_malformed_bodies() {
        let hash = to_hex(&Sha256::digest(b"hello"));
        for (ct, text) in [
            ("multipart/mixed;", "--abc\nContent-Type: application/json\n\n{}\n--abc--\n".to_owned()),
            (CT, "--abc\nContent-Type: text/plain\n\n{}\n--abc--\n".to_owned()),
            (
                CT,
                "--abc\nContent-Type: application/json\n\n{}\n--abc\nContent-Type: text/plain\n\nhello\n--abc--\n"
                    .to_owned(),
            ),
            (
                CT,
                format!(
                    "--abc\nContent-Type: application/json\n\n{{}}\n--abc\nContent-Transfer-Encoding: base64\nX-Experience-API-Hash: {hash}\n\nhello\n--abc--\n"
                ),
            ),
            (
                CT,
                format!(
                    "--abc\nContent-Type: application/json\n\n{{}}\n--abc\nX-Experience-API-Hash: {hash}\n\nbye\n--abc--\n"
                ),
            ),
            (CT, "--abc\nContent-Type: application/json\n\n{}\n".to_owned()),
        ] {
            assert!(parse(ct, &body(&text)).is_err(), "{ct} {text}");
        }
    }
}
