//! Query parameters, parsed strictly: xAPI requires 400 for a parameter the
//! resource does not define, for one that differs from a defined name only in
//! case, and (for us) for a repeated one.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::LrsError;
use crate::xapi::XapiVersion;
use crate::xapi::formats::parse_timestamp;
use crate::xapi::{agent, schema};

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

/// The `agent` parameter: an Agent or identified Group as JSON.
pub fn agent_param(name: &str, text: &str) -> Result<String, LrsError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| LrsError::invalid(name, "query:agent", format!("{name} must be an Agent as JSON: {e}")))?;
    let as_statement = serde_json::json!({"actor": value, "verb": {"id": "http://x"}, "object": {"id": "http://x"}});
    // Agents are the same in every version's schema.
    if let Err(v) = schema::check_statement(&as_statement, XapiVersion::V1_0) {
        let property = v.property.replacen("actor", name, 1);
        return Err(LrsError::invalid(
            property,
            v.rule,
            format!("{name} is not a valid Agent or Group: {}", v.message),
        ));
    }
    agent::ifi(&value).ok_or_else(|| {
        LrsError::invalid(name, "query:agent", format!("{name} must have an identifier (anonymous groups have none)"))
    })
}

/// A timestamp parameter, in µs since the epoch.
pub fn time_param(params: &Params, name: &str) -> Result<Option<i64>, LrsError> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    // A `+hh:mm` offset sent unencoded arrives form-decoded as a space.
    parse_timestamp(text)
        .or_else(|| parse_timestamp(&text.replace(' ', "+")))
        .map(|t| Some(t.timestamp_micros()))
        .ok_or_else(|| LrsError::invalid(name, "query:timestamp", format!("{name} must be an ISO 8601 timestamp")))
}
