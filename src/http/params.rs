//! Query parameters, parsed strictly: xAPI requires 400 for a parameter the
//! resource does not define, for one that differs from a defined name only in
//! case, and (for us) for a repeated one.

use std::collections::HashMap;

use crate::error::LrsError;

#[derive(Debug, Default)]
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Parses `query`, accepting only the names in `allowed`.
    pub fn parse(query: &str, allowed: &[&str]) -> Result<Params, LrsError> {
        let mut values = HashMap::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if !allowed.contains(&name.as_ref()) {
                let hint = allowed
                    .iter()
                    .find(|a| a.eq_ignore_ascii_case(&name))
                    .map(|a| format!(" (parameter names are case-sensitive: did you mean '{a}'?)"))
                    .unwrap_or_default();
                return Err(LrsError::invalid(
                    name.as_ref(),
                    "query:unknown-parameter",
                    format!("unknown query parameter '{name}'{hint}"),
                ));
            }
            if values.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(LrsError::invalid(
                    name.as_ref(),
                    "query:repeated-parameter",
                    format!("query parameter '{name}' is given more than once"),
                ));
            }
        }
        Ok(Params { values })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub fn bool(&self, name: &str) -> Result<bool, LrsError> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => {
                Err(LrsError::invalid(name, "query:boolean", format!("'{name}' must be true or false, not '{other}'")))
            }
        }
    }
}
