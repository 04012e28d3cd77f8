//! Statement rules a JSON Schema cannot express: they relate properties to
//! each other.

use serde_json::Value;

use super::keys::object_type;

pub const VOIDED_VERB: &str = "http://adlnet.gov/expapi/verbs/voided";

#[derive(Debug, Clone, PartialEq)]
pub struct RuleViolation {
    pub property: String,
    pub rule: &'static str,
    pub message: String,
}

fn violation(property: impl Into<String>, rule: &'static str, message: impl Into<String>) -> RuleViolation {
    RuleViolation { property: property.into(), rule, message: message.into() }
}

/// Checks a statement that already matches the schema.
pub fn check_statement(s: &Value) -> Result<(), RuleViolation> {
    if s.pointer("/verb/id").and_then(Value::as_str) == Some(VOIDED_VERB)
        && object_type(s.get("object")) != "StatementRef"
    {
        return Err(violation(
            "object.objectType",
            "voiding",
            "a statement with the verb 'voided' must have a StatementRef as its object",
        ));
    }
    if let Some(authority) = s.get("authority") {
        check_authority(authority)?;
    }
    check_statement_like(s, "")?;
    if let Some(sub) = s.get("object").filter(|o| object_type(Some(o)) == "SubStatement") {
        check_statement_like(sub, "object.")?;
    }
    Ok(())
}

/// Rules shared by statements and sub-statements; `prefix` names where `s` is.
fn check_statement_like(s: &Value, prefix: &str) -> Result<(), RuleViolation> {
    if object_type(s.get("object")) != "Activity" {
        for prop in ["revision", "platform"] {
            if s.pointer(&format!("/context/{prop}")).is_some() {
                return Err(violation(
                    format!("{prefix}context.{prop}"),
                    "context:activity-only",
                    format!("context.{prop} may only be used when the object is an Activity"),
                ));
            }
        }
    }
    if let Some(score) = s.pointer("/result/score") {
        check_score(score, &format!("{prefix}result.score"))?;
    }
    if let Some(def) = s.pointer("/object/definition") {
        check_interaction(def, &format!("{prefix}object.definition"))?;
    }
    Ok(())
}

/// A Group as authority stands for an OAuth consumer and user: it is
/// anonymous and has exactly two members.
fn check_authority(authority: &Value) -> Result<(), RuleViolation> {
    if !crate::xapi::agent::is_group(authority) {
        return Ok(());
    }
    if crate::xapi::agent::ifi(authority).is_some() {
        return Err(violation(
            "authority",
            "authority:group",
            "a Group as authority must be anonymous (no identifier)",
        ));
    }
    let members = authority.get("member").and_then(Value::as_array).map_or(0, Vec::len);
    if members != 2 {
        return Err(violation(
            "authority.member",
            "authority:group",
            format!("a Group as authority must have exactly two members, not {members}"),
        ));
    }
    Ok(())
}

fn check_score(score: &Value, at: &str) -> Result<(), RuleViolation> {
    let get = |k: &str| score.get(k).and_then(Value::as_f64);
    let (raw, min, max) = (get("raw"), get("min"), get("max"));
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(violation(format!("{at}.min"), "score:min<=max", "score.min must not be greater than score.max"));
    }
    if let (Some(raw), Some(min)) = (raw, min)
        && raw < min
    {
        return Err(violation(format!("{at}.raw"), "score:raw>=min", "score.raw must not be less than score.min"));
    }
    if let (Some(raw), Some(max)) = (raw, max)
        && raw > max
    {
        return Err(violation(format!("{at}.raw"), "score:raw<=max", "score.raw must not be greater than score.max"));
    }
    Ok(())
}

/// Interaction components: only the lists the interaction type defines, with
/// distinct ids.
fn check_interaction(def: &Value, at: &str) -> Result<(), RuleViolation> {
    const LISTS: [&str; 5] = ["choices", "scale", "source", "target", "steps"];
    let kind = def.get("interactionType").and_then(Value::as_str);
    if kind.is_none()
        && let Some(used) = LISTS.iter().chain(&["correctResponsesPattern"]).find(|k| def.get(**k).is_some())
    {
        return Err(violation(
            format!("{at}.interactionType"),
            "interaction:type-required",
            format!("'{used}' is used, so interactionType is required"),
        ));
    }
    for list in LISTS {
        let Some(items) = def.get(list).and_then(Value::as_array) else {
            continue;
        };
        let allowed: &[&str] = match kind {
            Some("choice" | "sequencing") => &["choices"],
            Some("likert") => &["scale"],
            Some("matching") => &["source", "target"],
            Some("performance") => &["steps"],
            _ => &[],
        };
        if !allowed.contains(&list) {
            return Err(violation(
                format!("{at}.{list}"),
                "interaction:components",
                format!("'{list}' is not an interaction component list of interactionType {kind:?}"),
            ));
        }
        let mut ids: Vec<&str> = items.iter().filter_map(|c| c.get("id").and_then(Value::as_str)).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(violation(
                format!("{at}.{list}"),
                "interaction:distinct-ids",
                format!("the ids in '{list}' must be distinct"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stmt(verb: &str, object: Value) -> Value {
        json!({"actor": {"mbox": "mailto:a@x"}, "verb": {"id": verb}, "object": object})
    }

    #[test]
    fn voiding_needs_a_statement_ref() {
        assert!(check_statement(&stmt(VOIDED_VERB, json!({"id": "http://a"}))).is_err());
        let ok = stmt(VOIDED_VERB, json!({"objectType": "StatementRef", "id": "9e13cefd-53d3-4eac-b5ed-2cf6693903bb"}));
        assert_eq!(check_statement(&ok), Ok(()));
    }

    #[test]
    fn revision_only_with_activity_objects() {
        let mut s = stmt("http://v", json!({"objectType": "Agent", "mbox": "mailto:b@x"}));
        s["context"] = json!({"revision": "1"});
        assert_eq!(check_statement(&s).unwrap_err().property, "context.revision");
    }

    #[test]
    fn authority_groups_are_anonymous_pairs() {
        let mut s = stmt("http://v", json!({"id": "http://a"}));
        let m = json!({"mbox": "mailto:m@x"});
        s["authority"] = json!({"objectType": "Group", "member": [m.clone(), m.clone()]});
        assert_eq!(check_statement(&s), Ok(()));
        s["authority"] = json!({"objectType": "Group", "member": [m.clone()]});
        assert!(check_statement(&s).is_err());
        s["authority"] = json!({"objectType": "Group", "mbox": "mailto:g@x", "member": [m.clone(), m]});
        assert!(check_statement(&s).is_err());
    }

    #[test]
    fn interaction_lists_need_a_type() {
        let s = stmt("http://v", json!({"id": "http://a", "definition": {"choices": [{"id": "a"}]}}));
        assert_eq!(check_statement(&s).unwrap_err().rule, "interaction:type-required");
    }

    #[test]
    fn score_bounds() {
        let mut s = stmt("http://v", json!({"id": "http://a"}));
        s["result"] = json!({"score": {"raw": 5, "min": 6, "max": 10}});
        assert_eq!(check_statement(&s).unwrap_err().rule, "score:raw>=min");
    }
}
