//! Signed statements (xAPI 1.0.3 Data 2.6): a signature attachment holds a
//! JWS (compact serialization) whose payload is the statement as it was
//! before the signature was added.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::same::same_statement;
use super::statement::Invalid;
use crate::spool::Received;

pub const SIGNATURE_USAGE: &str = "http://adlnet.gov/expapi/attachments/signature";
const ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512"];

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid { property: "attachments".into(), rule: "signature".into(), message: message.into() }
}

/// Checks every signature attachment of `statement` against its content part.
pub fn check(statement: &Value, parts: &[Received]) -> Result<(), Invalid> {
    let attachments = statement.get("attachments").and_then(Value::as_array);
    for a in attachments.into_iter().flatten() {
        if a.get("usageType").and_then(Value::as_str) != Some(SIGNATURE_USAGE) {
            continue;
        }
        if a.get("contentType").and_then(Value::as_str) != Some("application/octet-stream") {
            return Err(invalid("a signature attachment must have contentType application/octet-stream"));
        }
        let sha2 = a.get("sha2").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
        let part = parts
            .iter()
            .find(|p| p.sha2 == sha2)
            .ok_or_else(|| invalid("a signature must be sent as a part of a multipart/mixed request"))?;
        // Signature parts are always read into memory (`Declared::signature`).
        let jws = part.in_memory().ok_or_else(|| invalid("the signature part was not read whole"))?;
        check_jws(jws, statement)?;
    }
    Ok(())
}

/// A JWS whose header names an RSA algorithm and whose payload is `statement`
/// by the statement-comparison rules (which ignore attachments, so the
/// signature attachment itself does not count).
fn check_jws(jws: &[u8], statement: &Value) -> Result<(), Invalid> {
    let text = std::str::from_utf8(jws).map_err(|_| invalid("the signature is not a JWS (not text)"))?;
    let segments: Vec<&str> = text.trim().split('.').collect();
    if segments.len() != 3 || segments.iter().any(|s| s.is_empty()) {
        return Err(invalid("the signature is not a JWS in compact serialization (three segments)"));
    }
    let decode = |segment: &str, what: &str| -> Result<Value, Invalid> {
        let bytes = URL_SAFE_NO_PAD
            .decode(segment.trim_end_matches('='))
            .map_err(|_| invalid(format!("the JWS {what} is not base64url")))?;
        serde_json::from_slice(&bytes).map_err(|_| invalid(format!("the JWS {what} is not JSON")))
    };
    let header = decode(segments[0], "header")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !ALGORITHMS.contains(&alg) {
        return Err(invalid(format!("the JWS algorithm must be RS256, RS384 or RS512, not '{alg}'")));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(segments[2].trim_end_matches('='))
        .map_err(|_| invalid("the JWS signature is not base64url"))?;
    if let Some(chain) = header.get("x5c") {
        let signing_input = &text.trim()[..segments[0].len() + 1 + segments[1].len()];
        verify_with_certificate(chain, alg, signing_input.as_bytes(), &signature)?;
    }
    let payload = decode(segments[1], "payload")?;
    if !same_statement(&payload, statement) {
        return Err(invalid("the JWS payload is not the statement that carries the signature"));
    }
    Ok(())
}

/// Checks the signature with the public key of the first certificate of
/// the `x5c` chain (the signer's). Whether that certificate is trusted is
/// not decided here: the spec asks only that the signature be verified.
fn verify_with_certificate(chain: &Value, alg: &str, signing_input: &[u8], signature: &[u8]) -> Result<(), Invalid> {
    use base64::engine::general_purpose::STANDARD;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    use x509_cert::der::{Decode, Encode};

    let first = chain
        .as_array()
        .and_then(|c| c.first())
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("x5c must be an array of base64 DER certificates"))?;
    let der = STANDARD.decode(first).map_err(|_| invalid("the x5c certificate is not base64"))?;
    let certificate =
        x509_cert::Certificate::from_der(&der).map_err(|_| invalid("the x5c certificate is not DER X.509"))?;
    let spki = certificate.tbs_certificate.subject_public_key_info.to_der().map_err(|_| invalid("bad x5c key"))?;
    let key =
        rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| invalid("the x5c certificate's key is not RSA"))?;
    let signature = Signature::try_from(signature).map_err(|_| invalid("the JWS signature is malformed"))?;
    let verified = match alg {
        "RS256" => VerifyingKey::<sha2::Sha256>::new(key).verify(signing_input, &signature),
        "RS384" => VerifyingKey::<sha2::Sha384>::new(key).verify(signing_input, &signature),
        _ => VerifyingKey::<sha2::Sha512>::new(key).verify(signing_input, &signature),
    };
    verified.map_err(|_| invalid("the JWS signature does not verify with the x5c certificate's key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn accepts_a_well_formed_rsa_jws_of_the_statement() {
        let s = json!({"actor": {"mbox": "mailto:a@x"}, "verb": {"id": "http://v"}, "object": {"id": "http://a"}});
        let jws = format!("{}.{}.{}", b64(br#"{"alg":"RS256"}"#), b64(s.to_string().as_bytes()), b64(b"sig"));
        assert_eq!(check_jws(jws.as_bytes(), &s), Ok(()));
        let hs = format!("{}.{}.{}", b64(br#"{"alg":"HS256"}"#), b64(s.to_string().as_bytes()), b64(b"sig"));
        assert!(check_jws(hs.as_bytes(), &s).is_err());
        assert!(check_jws(b"a.b", &s).is_err());
    }
}
