//! How stored statements are returned: `format=exact|ids|canonical`.

use serde_json::{Map, Value};

use super::agent;
use super::keys::object_type;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Exact,
    Ids,
    Canonical,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "exact" => Some(Format::Exact),
            "ids" => Some(Format::Ids),
            "canonical" => Some(Format::Canonical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Exact => "exact",
            Format::Ids => "ids",
            Format::Canonical => "canonical",
        }
    }
}

/// Reduces agents, groups, activities and verbs to what identifies them.
pub fn ids_format(statement: &mut Value) {
    let Some(map) = statement.as_object_mut() else {
        return;
    };
    for key in ["actor", "authority"] {
        if let Some(a) = map.get_mut(key) {
            *a = agent::ids_only(a);
        }
    }
    if let Some(verb) = map.get_mut("verb")
        && let Some(id) = verb.get("id").cloned()
    {
        *verb = Value::Object(Map::from_iter([("id".to_owned(), id)]));
    }
    if let Some(object) = map.get_mut("object") {
        match object_type(Some(object)) {
            "Agent" | "Group" => *object = agent::ids_only(object),
            "Activity" => *object = activity_ids(object),
            "SubStatement" => ids_format(object),
            _ => {}
        }
    }
    if let Some(context) = map.get_mut("context").and_then(Value::as_object_mut) {
        for key in ["instructor", "team"] {
            if let Some(a) = context.get_mut(key) {
                *a = agent::ids_only(a);
            }
        }
        if let Some(ca) = context.get_mut("contextActivities").and_then(Value::as_object_mut) {
            for list in ca.values_mut() {
                match list {
                    Value::Array(items) => items.iter_mut().for_each(|a| *a = activity_ids(a)),
                    single => *single = activity_ids(single),
                }
            }
        }
    }
}

/// An Activity is identified by its id alone.
fn activity_ids(activity: &Value) -> Value {
    let mut out = Map::new();
    if let Some(v) = activity.get("id") {
        out.insert("id".into(), v.clone());
    }
    Value::Object(out)
}

/// Language ranges from an `Accept-Language` header, best first.
pub fn accepted_languages(header: Option<&str>) -> Vec<String> {
    let mut ranges: Vec<(f32, usize, String)> = header
        .unwrap_or("")
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            if tag.is_empty() {
                return None;
            }
            let q = pieces.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            (q > 0.0).then(|| (q, i, tag.to_lowercase()))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges.into_iter().map(|(_, _, t)| t).collect()
}

/// `format=canonical`: every language map keeps one entry, the best match for
/// the client's languages (else its first entry).
pub fn canonical_format(statement: &mut Value, languages: &[String]) {
    match statement {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    "extensions" => {}
                    "display" | "name" | "description" if value.is_object() => pick_language(value, languages),
                    _ => canonical_format(value, languages),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| canonical_format(i, languages)),
        _ => {}
    }
}

/// The `en-US` (else `en`, else first) entry of a language map: one readable
/// value where a single one must be chosen without an Accept-Language.
pub fn language_value(map: &Value) -> Option<&str> {
    let map = map.as_object()?;
    ["en-US", "en"].iter().find_map(|l| map.get(*l)).or_else(|| map.values().next()).and_then(Value::as_str)
}

fn pick_language(map: &mut Value, languages: &[String]) {
    let Some(entries) = map.as_object() else {
        return;
    };
    let chosen = languages
        .iter()
        .find_map(|range| {
            entries.keys().find(|tag| {
                let tag = tag.to_lowercase();
                range == "*" || tag == *range || tag.starts_with(&format!("{range}-"))
            })
        })
        .or_else(|| entries.keys().next())
        .cloned();
    if let Some(tag) = chosen {
        let value = entries[&tag].clone();
        *map = Value::Object(Map::from_iter([(tag, value)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_format_reduces_objects() {
        let mut s = json!({"actor": {"objectType": "Agent", "name": "A", "mbox": "mailto:a@x"},
                           "verb": {"id": "http://v", "display": {"en": "v"}},
                           "object": {"objectType": "Activity", "id": "http://a", "definition": {"name": {"en": "A"}}}});
        ids_format(&mut s);
        assert_eq!(
            s,
            json!({"actor": {"objectType": "Agent", "mbox": "mailto:a@x"}, "verb": {"id": "http://v"},
                             "object": {"id": "http://a"}})
        );
    }

    #[test]
    fn canonical_picks_one_language() {
        let langs = accepted_languages(Some("fr;q=0.5, en-GB"));
        assert_eq!(langs, vec!["en-gb", "fr"]);
        let mut s = json!({"verb": {"id": "http://v", "display": {"en-US": "did", "en-GB": "did (GB)", "fr": "fait"}}});
        canonical_format(&mut s, &langs);
        assert_eq!(s["verb"]["display"], json!({"en-GB": "did (GB)"}));
        let mut s = json!({"verb": {"id": "http://v", "display": {"de": "x", "es": "y"}}});
        canonical_format(&mut s, &[]);
        assert_eq!(s["verb"]["display"], json!({"de": "x"}));
    }
}
