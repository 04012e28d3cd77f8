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

/// `(canonical IFI, name)` of every named, identified Agent or Group a
/// statement mentions: actor, object, instructor, team, group members, and
/// the same in a sub-statement. (Not the authority: the LRS writes that.)
pub fn names_in(statement: &Value) -> Vec<(String, &str)> {
    fn add<'a>(agent: &'a Value, out: &mut Vec<(String, &'a str)>) {
        if let (Some(ifi), Some(name)) = (ifi(agent), agent.get("name").and_then(Value::as_str)) {
            out.push((ifi, name));
        }
        if is_group(agent) {
            agent.get("member").and_then(Value::as_array).into_iter().flatten().for_each(|m| add(m, out));
        }
    }
    fn visit<'a>(holder: &'a Value, out: &mut Vec<(String, &'a str)>) {
        let object = holder.get("object");
        let object_type = object.and_then(|o| o.get("objectType")).and_then(Value::as_str);
        let agents = [
            holder.get("actor"),
            object.filter(|_| matches!(object_type, Some("Agent" | "Group"))),
            holder.pointer("/context/instructor"),
            holder.pointer("/context/team"),
        ];
        agents.into_iter().flatten().for_each(|a| add(a, out));
        if let Some(sub) = object.filter(|_| object_type == Some("SubStatement")) {
            visit(sub, out);
        }
    }
    let mut out = Vec::new();
    visit(statement, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_come_from_every_agent_of_a_statement() {
        let s = json!({
            "actor": {"objectType": "Group", "name": "G", "mbox": "mailto:g@x",
                      "member": [{"name": "M", "mbox": "mailto:M@x"}, {"mbox": "mailto:nameless@x"}]},
            "object": {"objectType": "SubStatement",
                       "actor": {"name": "S", "openid": "http://s"},
                       "object": {"objectType": "Agent", "name": "O", "mbox": "mailto:o@x"}},
            "context": {"instructor": {"name": "I", "account": {"homePage": "http://h", "name": "i"}}},
            "authority": {"name": "A", "mbox": "mailto:a@x"}
        });
        let names: Vec<(String, &str)> = names_in(&s);
        assert_eq!(
            names,
            vec![
                ("mbox:mailto:g@x".to_owned(), "G"),
                ("mbox:mailto:m@x".to_owned(), "M"),
                ("account:http://h|i".to_owned(), "I"),
                ("openid:http://s".to_owned(), "S"),
                ("mbox:mailto:o@x".to_owned(), "O"),
            ]
        );
    }

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
