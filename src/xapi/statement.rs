//! Turning a statement as received into one ready to store: validated, with
//! the properties the LRS assigns, its filter keys, and its JSON text.

use serde_json::Value;

use super::keys::{FilterKey, object_type, statement_keys};
use super::progress::Unplaced;
use super::rules::{self, VOIDED_VERB};
use super::{XapiVersion, formats, schema};

/// Who is storing the statements, and under which rules.
pub struct StoreContext<'a> {
    pub version: XapiVersion,
    /// The Agent the LRS writes as `authority`.
    pub authority: &'a Value,
    pub credential_key: &'a str,
    /// The LRS keeps learner progress: work out what each statement counts
    /// for now, on the request's worker.
    pub keep_progress: bool,
}

/// Where and why a statement is invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub property: String,
    pub rule: String,
    pub message: String,
}

/// A statement ready for the writer. `stored` (and `timestamp`, when the
/// client sent none) are added by the writer, at commit time, by closing
/// `body_open` with them: no second serialisation on the write path.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    /// Lower-cased UUID.
    pub id: String,
    /// The LRS generated the id, so it cannot be stored already.
    pub id_generated: bool,
    /// The statement's JSON without its closing `}`.
    pub body_open: String,
    pub needs_timestamp: bool,
    pub keys: Vec<FilterKey>,
    /// Target of a StatementRef object, lower-cased.
    pub object_ref: Option<String>,
    pub voiding: bool,
    /// What it counts for in learner progress, when progress is kept.
    pub progress: Option<Unplaced>,
    /// The statement as it will be stored, but for `stored` (and a defaulted
    /// `timestamp`). The same-statement check, attachment matching and
    /// signatures read it: they ignore what the LRS set (authority, version).
    pub statement: Value,
}

pub fn validate(statement: &Value, version: XapiVersion) -> Result<(), Invalid> {
    if !statement.is_object() {
        return Err(Invalid {
            property: String::new(),
            rule: "schema:type".into(),
            message: "a statement must be a JSON object".into(),
        });
    }
    schema::check_statement(statement, version).map_err(|v| Invalid {
        property: v.property,
        rule: v.rule,
        message: v.message,
    })?;
    rules::check_statement(statement).map_err(|v| Invalid {
        property: v.property,
        rule: v.rule.into(),
        message: v.message,
    })
}

/// Validates `statement` and prepares it for storage. `id` is the id to use
/// when the statement has none (PUT's `statementId`).
pub fn prepare(statement: Value, id: Option<&str>, ctx: &StoreContext<'_>) -> Result<PreparedStatement, Invalid> {
    validate(&statement, ctx.version)?;
    let Value::Object(mut map) = statement else {
        unreachable!("validate() accepts only objects");
    };
    let id_generated = id.is_none() && !map.contains_key("id");
    let id = match map.get("id").and_then(Value::as_str) {
        Some(existing) => existing.to_lowercase(),
        None => {
            // Time-ordered (version 7): the id index gains each new id at
            // its end, where a random id would write a page of its own.
            let id = id.map(str::to_lowercase).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            map.shift_insert(0, "id".into(), Value::String(id.clone()));
            id
        }
    };
    arrays_for_context_activities(&mut map);
    if let Some(Value::Object(sub)) = map.get_mut("object") {
        arrays_for_context_activities(sub);
    }
    if ctx.version >= XapiVersion::V2_0 {
        timestamp_in_utc(&mut map);
        if let Some(Value::Object(sub)) = map.get_mut("object") {
            timestamp_in_utc(sub);
        }
    }
    map.remove("stored");
    map.insert("authority".into(), ctx.authority.clone());
    if !map.contains_key("version") {
        map.insert("version".into(), Value::String(ctx.version.default_statement_version().into()));
    }
    let needs_timestamp = !map.contains_key("timestamp");
    let object = map.get("object");
    let object_ref = (object_type(object) == "StatementRef")
        .then(|| object.and_then(|o| o.get("id")).and_then(Value::as_str).map(str::to_lowercase))
        .flatten();
    let voiding = map.get("verb").and_then(|v| v.get("id")).and_then(Value::as_str) == Some(VOIDED_VERB);
    let statement = Value::Object(map);
    let keys = statement_keys(&statement, ctx.credential_key);
    let mut body_open = serde_json::to_string(&statement).expect("a JSON value serialises");
    body_open.pop();
    let progress = ctx.keep_progress.then(|| Unplaced::of(&statement));
    Ok(PreparedStatement {
        id,
        id_generated,
        body_open,
        needs_timestamp,
        keys,
        object_ref,
        voiding,
        progress,
        statement,
    })
}

/// Under 2.0 a `timestamp` with an offset other than `Z` is stored as the
/// same instant in UTC (1.0.3 keeps it as received).
fn timestamp_in_utc(statement: &mut serde_json::Map<String, Value>) {
    let utc = statement.get("timestamp").and_then(Value::as_str).and_then(formats::timestamp_in_utc);
    if let Some(utc) = utc {
        statement.insert("timestamp".into(), Value::String(utc));
    }
}

/// Context activities are stored (and returned) as arrays, even when a
/// client sent a single Activity object.
fn arrays_for_context_activities(statement: &mut serde_json::Map<String, Value>) {
    let lists =
        statement.get_mut("context").and_then(|c| c.get_mut("contextActivities")).and_then(Value::as_object_mut);
    for list in lists.into_iter().flat_map(|l| l.values_mut()) {
        if list.is_object() {
            *list = Value::Array(vec![list.take()]);
        }
    }
}

impl PreparedStatement {
    /// The statement's JSON text as stored, given its `stored` time.
    pub fn body(&self, stored: &str) -> String {
        let mut body = String::with_capacity(self.body_open.len() + 80);
        body.push_str(&self.body_open);
        if self.needs_timestamp {
            body.push_str(",\"timestamp\":\"");
            body.push_str(stored);
            body.push('"');
        }
        body.push_str(",\"stored\":\"");
        body.push_str(stored);
        body.push_str("\"}");
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prepare_assigns_lrs_properties() {
        let authority = json!({"objectType": "Agent", "account": {"homePage": "http://lrs", "name": "k"}});
        let ctx = StoreContext {
            version: XapiVersion::V1_0,
            authority: &authority,
            credential_key: "k",
            keep_progress: true,
        };
        let s = json!({"actor": {"mbox": "mailto:a@x"}, "verb": {"id": "http://v"}, "object": {"id": "http://a"},
                       "stored": "2000-01-01T00:00:00Z"});
        let p = prepare(s, None, &ctx).unwrap();
        let body: Value = serde_json::from_str(&p.body("2024-01-01T00:00:00.000000Z")).unwrap();
        assert_eq!(body["id"], json!(p.id));
        assert_eq!(body["stored"], json!("2024-01-01T00:00:00.000000Z"));
        assert_eq!(body["timestamp"], body["stored"]);
        assert_eq!(body["version"], json!("1.0.0"));
        assert_eq!(body["authority"], authority);
        assert!(p.object_ref.is_none() && !p.voiding);
    }

    #[test]
    fn timestamps_become_utc_under_2_0_only() {
        let authority = json!({"objectType": "Agent", "mbox": "mailto:lrs@x"});
        let s = json!({"actor": {"mbox": "mailto:a@x"}, "verb": {"id": "http://v"}, "timestamp": "2020-06-01T10:00:00.250+02:00",
                       "object": {"objectType": "SubStatement", "actor": {"mbox": "mailto:b@x"}, "verb": {"id": "http://v"},
                                  "object": {"id": "http://a"}, "timestamp": "2020-06-01T00:30:00-05:30"}});
        let stored = |version| {
            let ctx = StoreContext { version, authority: &authority, credential_key: "k", keep_progress: true };
            let p = prepare(s.clone(), None, &ctx).unwrap();
            serde_json::from_str::<Value>(&p.body("2024-01-01T00:00:00.000000Z")).unwrap()
        };
        let v2 = stored(XapiVersion::V2_0);
        assert_eq!(v2["timestamp"], json!("2020-06-01T08:00:00.250Z"));
        assert_eq!(v2["object"]["timestamp"], json!("2020-06-01T06:00:00Z"));
        let v1 = stored(XapiVersion::V1_0);
        assert_eq!(v1["timestamp"], s["timestamp"]);
        assert_eq!(v1["object"]["timestamp"], s["object"]["timestamp"]);
    }

    #[test]
    fn context_activities_become_arrays() {
        let authority = json!({"objectType": "Agent", "mbox": "mailto:lrs@x"});
        let ctx = StoreContext {
            version: XapiVersion::V1_0,
            authority: &authority,
            credential_key: "k",
            keep_progress: true,
        };
        let s = json!({"actor": {"mbox": "mailto:a@x"}, "verb": {"id": "http://v"}, "object": {"id": "http://a"},
                       "context": {"contextActivities": {"parent": {"id": "http://p"}, "other": [{"id": "http://o"}]}}});
        let p = prepare(s, None, &ctx).unwrap();
        let body: Value = serde_json::from_str(&p.body("2024-01-01T00:00:00.000000Z")).unwrap();
        assert_eq!(body["context"]["contextActivities"]["parent"], json!([{"id": "http://p"}]));
        assert_eq!(body["context"]["contextActivities"]["other"], json!([{"id": "http://o"}]));
    }
}
