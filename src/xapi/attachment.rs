//! Attachment content: bytes identified by their SHA-2 hash.

use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

#[derive(Debug, Clone)]
pub struct AttachmentContent {
    /// Lower-case hex SHA-2, as in the attachment's `sha2`.
    pub sha2: String,
    pub content_type: String,
    pub content: Bytes,
}

/// Whether `content` has the SHA-224/256/384/512 hash `hex` (chosen by length).
pub fn hash_matches(hex: &str, content: &[u8]) -> bool {
    let digest: Vec<u8> = match hex.len() {
        56 => Sha224::digest(content).to_vec(),
        64 => Sha256::digest(content).to_vec(),
        96 => Sha384::digest(content).to_vec(),
        128 => Sha512::digest(content).to_vec(),
        _ => return false,
    };
    to_hex(&digest) == hex
}

pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The attachments a statement declares (its own and its sub-statement's):
/// `(sha2 lower-cased, has a fileUrl)`.
pub fn declared(statement: &Value) -> Vec<(String, bool)> {
    let own = statement.get("attachments");
    let sub = statement.get("object").and_then(|o| o.get("attachments"));
    [own, sub]
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|a| {
            let sha2 = a.get("sha2").and_then(Value::as_str)?.to_ascii_lowercase();
            Some((sha2, a.get("fileUrl").is_some()))
        })
        .collect()
}
