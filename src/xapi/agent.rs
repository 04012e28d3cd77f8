//! Agents and Groups: their Inverse Functional Identifiers (IFIs) in canonical form.

use serde_json::Value;

/// The canonical IFI of an Agent or identified Group: `mbox:` + lower-cased
/// address, `mbox_sha1sum:` + lower-cased hex, `openid:` + IRI, or
/// `account:` + homePage + `|` + name. `None` for an anonymous Group.
pub fn ifi(agent: &Value) -> Option<String> {
    let obj = agent.as_object()?;
    if let Some(mbox) = obj.get("mbox").and_then(Value::as_str) {
        return Some(format!("mbox:{}", mbox.to_lowercase()));
    }
    if let Some(sha) = obj.get("mbox_sha1sum").and_then(Value::as_str) {
        return Some(format!("mbox_sha1sum:{}", sha.to_lowercase()));
    }
    if let Some(openid) = obj.get("openid").and_then(Value::as_str) {
        return Some(format!("openid:{openid}"));
    }
    let account = obj.get("account")?;
    let home = account.get("homePage").and_then(Value::as_str)?;
    let name = account.get("name").and_then(Value::as_str)?;
    Some(format!("account:{home}|{name}"))
}

pub fn is_group(agent: &Value) -> bool {
    agent.get("objectType").and_then(Value::as_str) == Some("Group")
}

/// The IFIs an Agent/Group stands for in filters: its own (when it has one)
/// and, for a Group, each member's.
pub fn ifis_with_members(agent: &Value, out: &mut Vec<String>) {
    if let Some(own) = ifi(agent) {
        out.push(own);
    }
    if is_group(agent) {
        for member in agent.get("member").and_then(Value::as_array).into_iter().flatten() {
            if let Some(m) = ifi(member) {
                out.push(m);
            }
        }
    }
}

/// An Agent or Group with only what identifies it (`format=ids`): objectType
/// and the IFI; an anonymous Group keeps its members, each reduced the same way.
pub fn ids_only(agent: &Value) -> Value {
    let Some(obj) = agent.as_object() else {
        return agent.clone();
    };
    let mut out = serde_json::Map::new();
    if let Some(t) = obj.get("objectType") {
        out.insert("objectType".into(), t.clone());
    }
    let mut has_ifi = false;
    for key in ["mbox", "mbox_sha1sum", "openid", "account"] {
        if let Some(v) = obj.get(key) {
            out.insert(key.into(), v.clone());
            has_ifi = true;
        }
    }
    if !has_ifi && let Some(Value::Array(members)) = obj.get("member") {
        out.insert("member".into(), Value::Array(members.iter().map(ids_only).collect()));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_ifis() {
        assert_eq!(ifi(&json!({"mbox": "mailto:Bob@Example.com"})).unwrap(), "mbox:mailto:bob@example.com");
        assert_eq!(ifi(&json!({"account": {"homePage": "http://x", "name": "b"}})).unwrap(), "account:http://x|b");
        assert_eq!(ifi(&json!({"objectType": "Group", "member": []})), None);
    }

    #[test]
    fn ids_only_keeps_anonymous_members() {
        let g = json!({"objectType": "Group", "name": "g", "member": [{"name": "a", "mbox": "mailto:a@x"}]});
        assert_eq!(ids_only(&g), json!({"objectType": "Group", "member": [{"mbox": "mailto:a@x"}]}));
    }
}
