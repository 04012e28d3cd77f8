//! The `X-Experience-API-Version` header.

/// The xAPI version whose rules apply to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XapiVersion {
    V1_0,
}

pub const HEADER: &str = "X-Experience-API-Version";

impl XapiVersion {
    /// Accepts `1.0` and any `1.0.x` (content in the field still sends `1.0.2`).
    pub fn parse(header: &str) -> Result<Self, String> {
        let h = header.trim();
        let mut parts = h.split('.');
        let major = parts.next();
        let minor = parts.next();
        let patch = parts.next();
        let numeric = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let well_formed = parts.next().is_none()
            && major.is_some_and(numeric)
            && minor.is_some_and(numeric)
            && patch.is_none_or(numeric);
        if well_formed && major == Some("1") && minor == Some("0") {
            return Ok(XapiVersion::V1_0);
        }
        Err(format!("unsupported {HEADER} '{h}': this LRS serves 1.0.x (1.0.3)"))
    }

    /// The version this LRS answers with.
    pub fn response_header(self) -> &'static str {
        match self {
            XapiVersion::V1_0 => "1.0.3",
        }
    }

    /// What `version` a stored statement gets when it came without one.
    pub fn default_statement_version(self) -> &'static str {
        match self {
            XapiVersion::V1_0 => "1.0.0",
        }
    }
}

/// The versions listed by the About resource.
pub const SUPPORTED: &[&str] = &["1.0.3"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_1_0_variants() {
        for ok in ["1.0", "1.0.0", "1.0.2", "1.0.3", "1.0.9"] {
            assert_eq!(XapiVersion::parse(ok), Ok(XapiVersion::V1_0), "{ok}");
        }
        for bad in ["", "1", "1.1.0", "0.9.5", "2.0.0", "1.0.x", "1.0.3.1", "1..0"] {
            assert!(XapiVersion::parse(bad).is_err(), "{bad}");
        }
    }
}
