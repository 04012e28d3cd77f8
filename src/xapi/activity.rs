//! Canonical activity definitions: what the statements naming an activity
//! have said about it, merged as they arrive (Communication 2.5).

use serde_json::{Map, Value};

use super::keys::object_type;

/// Every activity definition a statement carries: its object (or its
/// sub-statement's object) and its context activities.
pub fn definitions_in(statement: &Value) -> Vec<(&str, &Map<String, Value>)> {
    fn add<'a>(activity: &'a Value, out: &mut Vec<(&'a str, &'a Map<String, Value>)>) {
        if let (Some(id), Some(def)) =
            (activity.get("id").and_then(Value::as_str), activity.get("definition").and_then(Value::as_object))
        {
            out.push((id, def));
        }
    }
    let mut out = Vec::new();
    for holder in [Some(statement), statement.get("object").filter(|o| object_type(Some(o)) == "SubStatement")]
        .into_iter()
        .flatten()
    {
        if let Some(object) = holder.get("object").filter(|o| object_type(Some(o)) == "Activity") {
            add(object, &mut out);
        }
        let lists = holder.pointer("/context/contextActivities").and_then(Value::as_object);
        for list in lists.into_iter().flat_map(|l| l.values()) {
            match list {
                Value::Array(items) => items.iter().for_each(|a| add(a, &mut out)),
                single => add(single, &mut out),
            }
        }
    }
    out
}

/// Calls `f` on every Activity object of a statement: its object (or its
/// sub-statement's object) and the context activities of both.
pub fn for_each_activity_mut(statement: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    fn visit(holder: &mut Value, f: &mut dyn FnMut(&mut Value)) {
        if let Some(object) = holder.get_mut("object") {
            match object_type(Some(object)) {
                "Activity" => f(object),
                "SubStatement" => visit(object, f),
                _ => {}
            }
        }
        let lists = holder.pointer_mut("/context/contextActivities").and_then(Value::as_object_mut);
        for list in lists.into_iter().flat_map(|l| l.values_mut()) {
            match list {
                Value::Array(items) => items.iter_mut().for_each(&mut *f),
                single => f(single),
            }
        }
    }
    visit(statement, f);
}

/// Gives every activity of the statement its canonical definition, where
/// the LRS has one (`format=canonical`).
pub fn apply_canonical(statement: &mut Value, canonical: &std::collections::HashMap<String, Map<String, Value>>) {
    for_each_activity_mut(statement, &mut |activity| {
        let id = activity.get("id").and_then(Value::as_str).unwrap_or_default();
        if let Some(definition) = canonical.get(id) {
            activity["definition"] = Value::Object(definition.clone());
        }
    });
}

/// Merges `new` into `canonical`: language maps and extensions gain the new
/// entries (new values win), every other property takes the new value.
pub fn merge_definition(canonical: &mut Map<String, Value>, new: &Map<String, Value>) {
    for (key, value) in new {
        match (key.as_str(), canonical.get_mut(key), value) {
            ("name" | "description" | "extensions", Some(Value::Object(existing)), Value::Object(added)) => {
                for (k, v) in added {
                    existing.insert(k.clone(), v.clone());
                }
            }
            _ => {
                canonical.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Whether merging `new` into `canonical` would change nothing: the
/// writer's common case (content sends the same definition every time),
/// decided without building the merge.
pub fn definition_covers(canonical: &Map<String, Value>, new: &Map<String, Value>) -> bool {
    new.iter().all(|(key, value)| match (key.as_str(), canonical.get(key), value) {
        ("name" | "description" | "extensions", Some(Value::Object(existing)), Value::Object(added)) => {
            added.iter().all(|(k, v)| existing.get(k) == Some(v))
        }
        (_, existing, _) => existing == Some(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_definition_covers_what_merging_would_not_change() {
        let canonical = json!({"type": "http://t", "name": {"en": "One", "fr": "Un"}, "extensions": {"http://x": 1}});
        let canonical = canonical.as_object().unwrap();
        let cases = [
            (json!({}), true),
            (json!({"type": "http://t", "name": {"en": "One"}}), true),
            (json!({"name": {"fr": "Un"}, "extensions": {"http://x": 1}}), true),
            (json!({"name": {"de": "Eins"}}), false),
            (json!({"name": {"en": "Uno"}}), false),
            (json!({"type": "http://other"}), false),
            (json!({"description": {"en": "new"}}), false),
            (json!({"extensions": {"http://x": 2}}), false),
            (json!({"name": "not a map"}), false),
        ];
        for (new, covered) in cases {
            let new = new.as_object().unwrap();
            let mut merged = canonical.clone();
            merge_definition(&mut merged, new);
            assert_eq!(definition_covers(canonical, new), covered, "{new:?}");
            assert_eq!(&merged == canonical, covered, "merging {new:?}");
        }
    }

    #[test]
    fn canonical_definitions_replace_what_a_statement_carried() {
        let mut s = json!({"object": {"id": "http://a", "definition": {"name": {"en": "old"}}},
                           "context": {"contextActivities": {"parent": [{"id": "http://p"}]}}});
        let canonical = std::collections::HashMap::from([
            ("http://a".to_owned(), json!({"name": {"en": "new", "fr": "neuf"}}).as_object().unwrap().clone()),
            ("http://p".to_owned(), json!({"type": "http://t"}).as_object().unwrap().clone()),
        ]);
        apply_canonical(&mut s, &canonical);
        assert_eq!(s["object"]["definition"]["name"]["fr"], "neuf");
        assert_eq!(s["context"]["contextActivities"]["parent"][0]["definition"]["type"], "http://t");
    }

    #[test]
    fn language_maps_accumulate() {
        let mut canonical = json!({"name": {"en-US": "meeting"}, "type": "http://a"}).as_object().unwrap().clone();
        let new = json!({"name": {"fr-FR": "réunion"}, "type": "http://b"});
        merge_definition(&mut canonical, new.as_object().unwrap());
        assert_eq!(
            Value::Object(canonical),
            json!({"name": {"en-US": "meeting", "fr-FR": "réunion"}, "type": "http://b"})
        );
    }

    #[test]
    fn finds_object_context_and_sub_statement_definitions() {
        let s = json!({
            "object": {"objectType": "SubStatement", "object": {"id": "http://inner", "definition": {"type": "http://t"}}},
            "context": {"contextActivities": {"parent": [{"id": "http://parent", "definition": {}}]}}
        });
        let ids: Vec<&str> = definitions_in(&s).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["http://parent", "http://inner"]);
    }
}
