//! Document rules shared by the State, Activity Profile and Agent Profile
//! resources (xAPI 1.0.3 Communication 2.2, 3.1): ETags, preconditions and
//! the JSON merge of POST.

use serde_json::Value;
use sha1::{Digest, Sha1};

use super::attachment::to_hex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    State,
    ActivityProfile,
    AgentProfile,
}

impl DocKind {
    pub fn code(self) -> i16 {
        match self {
            DocKind::State => 1,
            DocKind::ActivityProfile => 2,
            DocKind::AgentProfile => 3,
        }
    }
}

/// The quoted SHA-1 of the content, as 1.0.3 prescribes for ETags.
pub fn etag(content: &[u8]) -> String {
    format!("\"{}\"", to_hex(&Sha1::digest(content)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    /// If-Match / If-None-Match not satisfied (412).
    PreconditionFailed(String),
    /// A PUT would overwrite a document without saying which version (409).
    Conflict(String),
    /// A body that is not the JSON it claims, or a POST whose documents
    /// cannot be merged (400).
    BadContent(String),
}

/// The `If-Match` and `If-None-Match` headers: lists of ETags, or `*`.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub if_match: Option<Vec<String>>,
    pub if_none_match: Option<Vec<String>>,
}

fn parse_list(header: &str) -> Vec<String> {
    header.split(',').map(|t| t.trim().trim_start_matches("W/").to_owned()).filter(|t| !t.is_empty()).collect()
}

impl Preconditions {
    pub fn from_headers(if_match: Option<&str>, if_none_match: Option<&str>) -> Self {
        Preconditions { if_match: if_match.map(parse_list), if_none_match: if_none_match.map(parse_list) }
    }

    pub fn is_empty(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }

    /// Checks the preconditions against the current document's ETag.
    /// `guard_overwrite`: a write that would replace an existing document
    /// without any precondition is a 409 (profile PUTs).
    pub fn check(&self, current: Option<&str>, guard_overwrite: bool) -> Result<(), DocumentError> {
        let matches = |list: &[String], etag: &str| {
            list.iter().any(|t| t == "*" || t == etag || t.trim_matches('"') == etag.trim_matches('"'))
        };
        if let Some(list) = &self.if_match
            && !current.is_some_and(|etag| matches(list, etag))
        {
            return Err(DocumentError::PreconditionFailed("If-Match does not match the current document".into()));
        }
        if let Some(list) = &self.if_none_match
            && current.is_some_and(|etag| matches(list, etag))
        {
            return Err(DocumentError::PreconditionFailed("If-None-Match matches the current document".into()));
        }
        if guard_overwrite && current.is_some() && self.is_empty() {
            return Err(DocumentError::Conflict(
                "the document exists: send If-Match with its ETag to replace it, or If-None-Match: * to create only"
                    .into(),
            ));
        }
        Ok(())
    }
}

pub fn is_json_type(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json")
}

/// POST: the posted JSON object's top-level properties merged into the
/// stored JSON object (posted ones win).
pub fn merge(stored_type: &str, stored: &[u8], posted_type: &str, posted: &[u8]) -> Result<Vec<u8>, DocumentError> {
    let object =
        |content_type: &str, bytes: &[u8], which: &str| -> Result<serde_json::Map<String, Value>, DocumentError> {
            if !is_json_type(content_type) {
                return Err(DocumentError::BadContent(format!(
                    "the {which} document is not application/json, so it cannot be merged"
                )));
            }
            match serde_json::from_slice(bytes) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(DocumentError::BadContent(format!(
                    "the {which} document is not a JSON object, so it cannot be merged"
                ))),
            }
        };
    let mut base = object(stored_type, stored, "stored")?;
    for (k, v) in object(posted_type, posted, "posted")? {
        base.insert(k, v);
    }
    Ok(serde_json::to_vec(&Value::Object(base)).expect("a JSON object serialises"))
}

/// A PUT application/json document must be JSON (of any kind).
pub fn validate_put_json(content_type: &str, content: &[u8]) -> Result<(), DocumentError> {
    if is_json_type(content_type) && serde_json::from_slice::<Value>(content).is_err() {
        return Err(DocumentError::BadContent("the document is typed application/json but is not JSON".into()));
    }
    Ok(())
}

/// A POSTed application/json document must be a JSON object even when
/// nothing is stored yet: it is meant to be merged.
pub fn validate_posted_json(content_type: &str, content: &[u8]) -> Result<(), DocumentError> {
    if is_json_type(content_type) && !matches!(serde_json::from_slice(content), Ok(Value::Object(_))) {
        return Err(DocumentError::BadContent("a POSTed application/json document must be a JSON object".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_sha1() {
        assert_eq!(etag(b"abc"), "\"a9993e364706816aba3e25717850c26c9cd0d89d\"");
    }

    #[test]
    fn preconditions() {
        let current = etag(b"x");
        let none = Preconditions::default();
        assert_eq!(none.check(Some(&current), false), Ok(()));
        assert!(matches!(none.check(Some(&current), true), Err(DocumentError::Conflict(_))));
        assert_eq!(none.check(None, true), Ok(()));
        let if_match = Preconditions::from_headers(Some(&current), None);
        assert_eq!(if_match.check(Some(&current), true), Ok(()));
        assert!(if_match.check(Some(&etag(b"y")), true).is_err());
        assert!(if_match.check(None, true).is_err());
        let create_only = Preconditions::from_headers(None, Some("*"));
        assert_eq!(create_only.check(None, true), Ok(()));
        assert!(matches!(create_only.check(Some(&current), true), Err(DocumentError::PreconditionFailed(_))));
    }

    #[test]
    fn merge_is_shallow_and_needs_json_objects() {
        let merged = merge(
            "application/json",
            br#"{"a":1,"b":{"x":1}}"#,
            "application/json; charset=utf-8",
            br#"{"b":2,"c":3}"#,
        )
        .unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&merged).unwrap(), serde_json::json!({"a":1,"b":2,"c":3}));
        assert!(merge("text/plain", b"{}", "application/json", b"{}").is_err());
        assert!(merge("application/json", b"[1]", "application/json", b"{}").is_err());
        assert!(merge("application/json", b"{}", "application/json", b"not json").is_err());
    }
}
