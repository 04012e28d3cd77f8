//! Filter keys: every value a statement query can filter on becomes one
//! 64-bit key, `(kind, value)` hashed with SHA-256 and truncated. The store
//! keeps one `(key, seq)` row per key, so every filter is an index range scan.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::agent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Verb,
    Registration,
    /// Actor or object (and their group members): the `agent` filter.
    Agent,
    /// Any agent the statement mentions: `related_agents=true`.
    RelatedAgent,
    /// The object activity: the `activity` filter.
    Activity,
    /// Any activity the statement mentions: `related_activities=true`.
    RelatedActivity,
    /// The credential that stored the statement (`statements/read/mine`).
    Credential,
}

impl KeyKind {
    fn tag(self) -> u8 {
        match self {
            KeyKind::Verb => b'v',
            KeyKind::Registration => b'r',
            KeyKind::Agent => b'a',
            KeyKind::RelatedAgent => b'A',
            KeyKind::Activity => b'o',
            KeyKind::RelatedActivity => b'O',
            KeyKind::Credential => b'c',
        }
    }

    /// Keys a statement that references another through a StatementRef takes
    /// over from its target (the spec's StatementRef filter rule); who stored a
    /// statement is not among them.
    pub fn heritable(self) -> bool {
        self != KeyKind::Credential
    }
}

pub fn key(kind: KeyKind, value: &str) -> i64 {
    hashed(kind.tag(), value)
}

/// `(tag, value)` as 64 bits of SHA-256: filter keys, and the ids of
/// progress rows' names (`progress::NameKind`), whose tags differ from these.
pub fn hashed(tag: u8, value: &str) -> i64 {
    let mut h = Sha256::new();
    h.update([tag, 0]);
    h.update(value.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// A key and whether referencing statements inherit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterKey {
    pub key: i64,
    pub heritable: bool,
}

/// Every filter key of a (validated) statement, without duplicates.
pub fn statement_keys(statement: &Value, credential_key: &str) -> Vec<FilterKey> {
    let mut keys: Vec<(KeyKind, String)> = Vec::with_capacity(12);
    if let Some(verb) = statement.pointer("/verb/id").and_then(Value::as_str) {
        keys.push((KeyKind::Verb, verb.to_owned()));
    }
    if let Some(reg) = statement.pointer("/context/registration").and_then(Value::as_str) {
        keys.push((KeyKind::Registration, reg.to_lowercase()));
    }
    agent_keys(statement, &mut keys);
    activity_keys(statement, &mut keys);
    keys.push((KeyKind::Credential, credential_key.to_owned()));

    let mut out: Vec<FilterKey> = keys
        .into_iter()
        .map(|(kind, value)| FilterKey { key: key(kind, &value), heritable: kind.heritable() })
        .collect();
    out.sort_by_key(|k| k.key);
    out.dedup_by_key(|k| k.key);
    out
}

/// Actor and object agents (with group members) for `agent`; those plus
/// authority, context and sub-statement agents for `related_agents`.
fn agent_keys(statement: &Value, keys: &mut Vec<(KeyKind, String)>) {
    let mut direct = Vec::new();
    let mut related = Vec::new();
    if let Some(actor) = statement.get("actor") {
        agent::ifis_with_members(actor, &mut direct);
    }
    let object = statement.get("object").unwrap_or(&Value::Null);
    match object_type(Some(object)) {
        "Agent" | "Group" => agent::ifis_with_members(object, &mut direct),
        "SubStatement" => {
            if let Some(actor) = object.get("actor") {
                agent::ifis_with_members(actor, &mut related);
            }
            if let Some(inner) = object.get("object").filter(|o| is_agent_like(o)) {
                agent::ifis_with_members(inner, &mut related);
            }
            context_agents(object, &mut related);
        }
        _ => {}
    }
    if let Some(authority) = statement.get("authority") {
        agent::ifis_with_members(authority, &mut related);
    }
    context_agents(statement, &mut related);
    keys.extend(direct.iter().map(|ifi| (KeyKind::Agent, ifi.clone())));
    keys.extend(direct.into_iter().chain(related).map(|ifi| (KeyKind::RelatedAgent, ifi)));
}

/// The object activity for `activity`; every activity the statement names
/// (context activities, sub-statement) for `related_activities`.
fn activity_keys(statement: &Value, keys: &mut Vec<(KeyKind, String)>) {
    let mut activities = Vec::new();
    let object = statement.get("object").unwrap_or(&Value::Null);
    match object_type(Some(object)) {
        "Activity" => {
            if let Some(id) = object.get("id").and_then(Value::as_str) {
                keys.push((KeyKind::Activity, id.to_owned()));
                activities.push(id.to_owned());
            }
        }
        "SubStatement" => {
            if let Some(id) =
                object.get("object").filter(|o| object_type(Some(o)) == "Activity").and_then(|o| o.get("id"))
            {
                activities.extend(id.as_str().map(str::to_owned));
            }
            context_activities(object, &mut activities);
        }
        _ => {}
    }
    context_activities(statement, &mut activities);
    keys.extend(activities.into_iter().map(|id| (KeyKind::RelatedActivity, id)));
}

/// The objectType of a statement object, defaulting to Activity.
pub fn object_type(object: Option<&Value>) -> &str {
    object.and_then(|o| o.get("objectType")).and_then(Value::as_str).unwrap_or("Activity")
}

/// The id of a statement's object when the object is an Activity.
pub fn object_activity(statement: &Value) -> Option<&str> {
    let object = statement.get("object")?;
    (object_type(Some(object)) == "Activity").then(|| object.get("id").and_then(Value::as_str)).flatten()
}

fn is_agent_like(v: &Value) -> bool {
    matches!(object_type(Some(v)), "Agent" | "Group")
}

/// Instructor and team, and (xAPI 2.0) every contextAgent's agent and
/// contextGroup's group.
fn context_agents(statement: &Value, out: &mut Vec<String>) {
    for path in ["/context/instructor", "/context/team"] {
        if let Some(a) = statement.pointer(path) {
            agent::ifis_with_members(a, out);
        }
    }
    for (path, key) in [("/context/contextAgents", "agent"), ("/context/contextGroups", "group")] {
        let entries = statement.pointer(path).and_then(Value::as_array).into_iter().flatten();
        for a in entries.filter_map(|e| e.get(key)) {
            agent::ifis_with_members(a, out);
        }
    }
}

fn context_activities(statement: &Value, out: &mut Vec<String>) {
    let Some(ca) = statement.pointer("/context/contextActivities").and_then(Value::as_object) else {
        return;
    };
    for list in ca.values() {
        let items: Vec<&Value> = match list {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for item in items {
            if let Some(id) = item.get("id").and_then(Value::as_str) {
                out.push(id.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_cover_every_filter() {
        let s = json!({
            "actor": {"objectType": "Group", "mbox": "mailto:g@x", "member": [{"mbox": "mailto:m@x"}]},
            "verb": {"id": "http://v"},
            "object": {"id": "http://act"},
            "context": {"registration": "AAAAAAAA-0000-0000-0000-000000000000",
                        "instructor": {"mbox": "mailto:i@x"},
                        "contextActivities": {"parent": {"id": "http://parent"}, "other": [{"id": "http://other"}]}},
            "authority": {"mbox": "mailto:auth@x"}
        });
        let keys: Vec<i64> = statement_keys(&s, "cred").iter().map(|k| k.key).collect();
        for (kind, value) in [
            (KeyKind::Verb, "http://v"),
            (KeyKind::Registration, "aaaaaaaa-0000-0000-0000-000000000000"),
            (KeyKind::Agent, "mbox:mailto:g@x"),
            (KeyKind::Agent, "mbox:mailto:m@x"),
            (KeyKind::RelatedAgent, "mbox:mailto:i@x"),
            (KeyKind::RelatedAgent, "mbox:mailto:auth@x"),
            (KeyKind::Activity, "http://act"),
            (KeyKind::RelatedActivity, "http://parent"),
            (KeyKind::RelatedActivity, "http://other"),
            (KeyKind::Credential, "cred"),
        ] {
            assert!(keys.contains(&key(kind, value)), "{kind:?} {value}");
        }
        assert!(!keys.contains(&key(KeyKind::Agent, "mbox:mailto:i@x")));
        assert!(!keys.contains(&key(KeyKind::Activity, "http://parent")));
    }
}
