//! Attachments as statements declare them, and the SHA-2 hashes that
//! identify their content.

use serde_json::Value;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::signature::SIGNATURE_USAGE;

/// An attachment a statement declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// Lower-case hex SHA-2.
    pub sha2: String,
    pub has_file_url: bool,
    /// A JWS signature of its statement (read whole, like the statement).
    pub signature: bool,
}

/// The attachments a statement declares (its own and its sub-statement's).
pub fn declared(statement: &Value) -> Vec<Declared> {
    let own = statement.get("attachments");
    let sub = statement.get("object").and_then(|o| o.get("attachments"));
    [own, sub]
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|a| {
            Some(Declared {
                sha2: a.get("sha2").and_then(Value::as_str)?.to_ascii_lowercase(),
                has_file_url: a.get("fileUrl").is_some(),
                signature: a.get("usageType").and_then(Value::as_str) == Some(SIGNATURE_USAGE),
            })
        })
        .collect()
}

/// The attachments declared by a request body: one statement or an array.
pub fn declared_in(body: &Value) -> Vec<Declared> {
    match body {
        Value::Array(items) => items.iter().flat_map(declared).collect(),
        other => declared(other),
    }
}

/// An incremental SHA-224/256/384/512, chosen by the length of the expected hex.
pub enum Sha2Hasher {
    Sha224(Sha224),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Sha2Hasher {
    pub fn for_hex(hex: &str) -> Option<Sha2Hasher> {
        Some(match hex.len() {
            56 => Sha2Hasher::Sha224(Sha224::new()),
            64 => Sha2Hasher::Sha256(Sha256::new()),
            96 => Sha2Hasher::Sha384(Sha384::new()),
            128 => Sha2Hasher::Sha512(Sha512::new()),
            _ => return None,
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Sha2Hasher::Sha224(h) => h.update(data),
            Sha2Hasher::Sha256(h) => h.update(data),
            Sha2Hasher::Sha384(h) => h.update(data),
            Sha2Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish_hex(self) -> String {
        match self {
            Sha2Hasher::Sha224(h) => to_hex(&h.finalize()),
            Sha2Hasher::Sha256(h) => to_hex(&h.finalize()),
            Sha2Hasher::Sha384(h) => to_hex(&h.finalize()),
            Sha2Hasher::Sha512(h) => to_hex(&h.finalize()),
        }
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_matches(hex: &str, content: &[u8]) -> bool {
        Sha2Hasher::for_hex(hex).is_some_and(|mut h| {
            h.update(content);
            h.finish_hex() == hex
        })
    }

    #[test]
    fn hashes_by_length_of_the_expected_hex() {
        let sha256 = to_hex(&Sha256::digest(b"abc"));
        let sha512 = to_hex(&Sha512::digest(b"abc"));
        assert!(hash_matches(&sha256, b"abc"));
        assert!(hash_matches(&sha512, b"abc"));
        assert!(!hash_matches(&sha256, b"abd"));
        assert!(!hash_matches("abc", b"abc"));
    }

    #[test]
    fn declared_covers_sub_statements_and_batches() {
        let s = serde_json::json!({
            "attachments": [{"sha2": "AB", "usageType": SIGNATURE_USAGE}],
            "object": {"objectType": "SubStatement", "attachments": [{"sha2": "cd", "fileUrl": "http://x"}]}
        });
        let d = declared_in(&Value::Array(vec![s.clone(), s]));
        assert_eq!(d.len(), 4);
        assert_eq!(d[0], Declared { sha2: "ab".into(), has_file_url: false, signature: true });
        assert_eq!(d[1], Declared { sha2: "cd".into(), has_file_url: true, signature: false });
    }
}
