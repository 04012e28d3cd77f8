//! The `X-Experience-API-Version` header.

/// The xAPI version whose rules apply to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum XapiVersion {
    V1_0,
    /// xAPI 2.0 (IEEE 9274.1.1).
    V2_0,
}

pub const HEADER: &str = "X-Experience-API-Version";

impl XapiVersion {
    /// Accepts `1.0` and any `1.0.x` (content in the field still sends
    /// `1.0.2`), and `2.0` and any `2.0.x`.
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
        match (well_formed, major, minor) {
            (true, Some("1"), Some("0")) => Ok(XapiVersion::V1_0),
            (true, Some("2"), Some("0")) => Ok(XapiVersion::V2_0),
            _ => Err(format!("unsupported {HEADER} '{h}': this LRS serves 1.0.x (1.0.3) and 2.0.x (2.0.0)")),
        }
    }

    /// The version this LRS answers with.
    pub fn response_header(self) -> &'static str {
        match self {
            XapiVersion::V1_0 => "1.0.3",
            XapiVersion::V2_0 => "2.0.0",
        }
    }

    /// What `version` a stored statement gets when it came without one.
    pub fn default_statement_version(self) -> &'static str {
        match self {
            XapiVersion::V1_0 => "1.0.0",
            XapiVersion::V2_0 => "2.0.0",
        }
    }
}

/// The versions listed by the About resource.
pub const SUPPORTED: &[&str] = &["1.0.3", "2.0.0"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_1_0_and_2_0_variants() {
        for ok in ["1.0", "1.0.0", "1.0.2", "1.0.3", "1.0.9"] {
            assert_eq!(XapiVersion::parse(ok), Ok(XapiVersion::V1_0), "{ok}");
        }
        for ok in ["2.0", "2.0.0", "2.0.1"] {
            assert_eq!(XapiVersion::parse(ok), Ok(XapiVersion::V2_0), "{ok}");
        }
        for bad in ["", "1", "1.1.0", "0.9.5", "2.1.0", "3.0.0", "1.0.x", "1.0.3.1", "1..0"] {
            assert!(XapiVersion::parse(bad).is_err(), "{bad}");
        }
    }
}
