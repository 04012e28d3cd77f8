//! "Same statement" comparison (xAPI 1.0.3 Data 2.3.1): two statements with
//! the same id are the same unless they differ in something immutable.

use serde_json::{Map, Value};

use super::formats::parse_timestamp;

/// Whether `incoming` restates `stored` (so storing it again is a no-op).
pub fn same_statement(incoming: &Value, stored: &Value) -> bool {
    let (Some(a), Some(b)) = (incoming.as_object(), stored.as_object()) else {
        return false;
    };
    // A timestamp the client did not send was assigned by the LRS.
    let timestamps_match = match (a.get("timestamp"), b.get("timestamp")) {
        (Some(x), Some(y)) => instant(x) == instant(y),
        _ => true,
    };
    timestamps_match && normalize_statement(a) == normalize_statement(b)
}

fn instant(v: &Value) -> Option<i64> {
    v.as_str().and_then(parse_timestamp).map(|t| t.timestamp_micros())
}

fn normalize_statement(s: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (k, v) in s {
        match k.as_str() {
            "id" | "authority" | "stored" | "timestamp" | "version" | "attachments" => {}
            _ => {
                out.insert(k.clone(), normalize(k, v));
            }
        }
    }
    Value::Object(out)
}

/// Removes what may legitimately vary (activity definitions, verb displays,
/// member order, case of case-insensitive values, number spelling).
fn normalize(key: &str, v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, inner) in map {
                let skip = match k.as_str() {
                    "definition" => true,
                    "display" => key == "verb",
                    "attachments" | "timestamp" => key == "object",
                    _ => false,
                };
                if skip {
                    continue;
                }
                let value = match k.as_str() {
                    "mbox" | "mbox_sha1sum" | "registration" => lower(inner),
                    "id" if map.get("objectType").and_then(Value::as_str) == Some("StatementRef") => lower(inner),
                    "member" => sorted_members(inner),
                    "duration" => inner.as_str().map_or_else(|| inner.clone(), |d| Value::String(duration_key(d))),
                    "extensions" => inner.clone(),
                    _ => normalize(k, inner),
                };
                out.insert(k.clone(), value);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| normalize(key, i)).collect()),
        Value::Number(n) => n.as_f64().map(Value::from).unwrap_or_else(|| v.clone()),
        other => other.clone(),
    }
}

/// A duration with its seconds truncated to hundredths (xAPI 2.0: "any
/// precision beyond 0.01 second precision shall not be included in the
/// comparison"; applied to 1.0.3 statements too, where it only forgives
/// differences no 1.0.3 client can mean). Components are compared as
/// numbers, not spellings: `PT1S` and `PT1.000S` are the same.
fn duration_key(duration: &str) -> String {
    let mut key = String::with_capacity(duration.len() + 8);
    let mut number = String::new();
    let mut in_time = false;
    for c in duration.chars() {
        match c {
            '0'..='9' | '.' | ',' => number.push(if c == ',' { '.' } else { c }),
            'T' => {
                in_time = true;
                key.push('T');
            }
            designator => {
                let value = if in_time && designator == 'S' {
                    let (whole, fraction) = number.split_once('.').unwrap_or((&number, ""));
                    let hundredths: String = fraction.chars().chain("00".chars()).take(2).collect();
                    format!("{}.{hundredths}", whole.trim_start_matches('0'))
                } else {
                    number.parse::<f64>().map_or_else(|_| number.clone(), |n| n.to_string())
                };
                key.push_str(&value);
                key.push(designator);
                number.clear();
            }
        }
    }
    key
}

fn lower(v: &Value) -> Value {
    v.as_str().map(|s| Value::String(s.to_lowercase())).unwrap_or_else(|| v.clone())
}

fn sorted_members(v: &Value) -> Value {
    let Some(items) = v.as_array() else {
        return v.clone();
    };
    let mut members: Vec<Value> = items.iter().map(|m| normalize("member", m)).collect();
    members.sort_by_cached_key(|m| m.to_string());
    Value::Array(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ignores_lrs_assigned_and_presentation_differences() {
        let a = json!({"id": "x", "actor": {"mbox": "mailto:A@X.com"}, "verb": {"id": "http://v", "display": {"en": "did"}},
                       "object": {"id": "http://a", "definition": {"name": {"en": "A"}}},
                       "result": {"score": {"raw": 1}}, "timestamp": "2020-01-01T00:00:00Z"});
        let b = json!({"id": "x", "actor": {"mbox": "mailto:a@x.com"}, "verb": {"id": "http://v"},
                       "object": {"id": "http://a"}, "result": {"score": {"raw": 1.0}},
                       "timestamp": "2020-01-01T01:00:00+01:00", "stored": "2021-01-01T00:00:00Z",
                       "authority": {"mbox": "mailto:auth@x"}, "version": "1.0.0"});
        assert!(same_statement(&a, &b));
    }

    #[test]
    fn sees_real_differences() {
        let a = json!({"actor": {"mbox": "mailto:a@x"}, "verb": {"id": "http://v"}, "object": {"id": "http://a"}});
        let mut b = a.clone();
        b["object"]["id"] = json!("http://b");
        assert!(!same_statement(&a, &b));
        let mut c = a.clone();
        c["result"] = json!({"duration": "PT1S"});
        let mut d = a.clone();
        d["result"] = json!({"duration": "PT1.01S"});
        assert!(!same_statement(&c, &d));
    }

    #[test]
    fn durations_compare_to_the_hundredth_of_a_second() {
        assert_eq!(duration_key("PT1.2345S"), duration_key("PT1.23S"));
        assert_eq!(duration_key("PT1S"), duration_key("PT1.000S"));
        assert_eq!(duration_key("P1DT2H3M4.5S"), duration_key("P1DT02H3M4.509S"));
        assert_ne!(duration_key("PT1.23S"), duration_key("PT1.24S"));
        assert_ne!(duration_key("PT1M"), duration_key("PT1S"));
        assert_ne!(duration_key("P1M"), duration_key("PT1M"));
    }
}
