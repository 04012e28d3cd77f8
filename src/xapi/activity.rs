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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
