//! The opaque tokens that continue a request (GET /statements' `more`, the
//! progress and export cursors): a value as base64url JSON. Each resource
//! says what its token carries and checks it again when it comes back.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub fn encode<T: Serialize>(value: &T) -> String {
    // A struct of numbers, strings and lists serialises without error.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// `None` for a token this LRS did not issue (or one altered since).
pub fn decode<T: DeserializeOwned>(token: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    serde_json::from_slice(&bytes).ok()
}
