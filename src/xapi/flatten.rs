//! A statement as one flat row of text fields: the export's CSV columns.

use serde_json::Value;

use super::output::language_value;
use super::{agent, keys};

/// The columns a CSV export can carry, in the order they are documented
/// (docs/export.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Id,
    Timestamp,
    Stored,
    Actor,
    ActorName,
    Verb,
    VerbDisplay,
    ObjectType,
    ObjectId,
    ObjectName,
    Registration,
    ScoreScaled,
    ScoreRaw,
    ScoreMin,
    ScoreMax,
    Success,
    Completion,
    Response,
    Duration,
    Parent,
    Grouping,
    Category,
    Authority,
}

const ALL: &[(Column, &str)] = &[
    (Column::Id, "id"),
    (Column::Timestamp, "timestamp"),
    (Column::Stored, "stored"),
    (Column::Actor, "actor"),
    (Column::ActorName, "actor_name"),
    (Column::Verb, "verb"),
    (Column::VerbDisplay, "verb_display"),
    (Column::ObjectType, "object_type"),
    (Column::ObjectId, "object_id"),
    (Column::ObjectName, "object_name"),
    (Column::Registration, "registration"),
    (Column::ScoreScaled, "score_scaled"),
    (Column::ScoreRaw, "score_raw"),
    (Column::ScoreMin, "score_min"),
    (Column::ScoreMax, "score_max"),
    (Column::Success, "success"),
    (Column::Completion, "completion"),
    (Column::Response, "response"),
    (Column::Duration, "duration"),
    (Column::Parent, "parent"),
    (Column::Grouping, "grouping"),
    (Column::Category, "category"),
    (Column::Authority, "authority"),
];

pub const DEFAULT_COLUMNS: &[Column] = &[
    Column::Id,
    Column::Timestamp,
    Column::Stored,
    Column::Actor,
    Column::ActorName,
    Column::Verb,
    Column::VerbDisplay,
    Column::ObjectType,
    Column::ObjectId,
    Column::ObjectName,
    Column::Registration,
    Column::ScoreScaled,
    Column::Success,
    Column::Completion,
    Column::Duration,
];

impl Column {
    pub fn parse(name: &str) -> Option<Column> {
        ALL.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }

    pub fn name(self) -> &'static str {
        ALL.iter().find(|(c, _)| *c == self).map_or("", |(_, n)| n)
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        ALL.iter().map(|(_, n)| *n)
    }

    /// This column's text for `statement`; empty when the statement has no such value.
    pub fn value(self, statement: &Value) -> String {
        let s = statement;
        let score = |name: &str| number(&s["result"]["score"][name]);
        match self {
            Column::Id => text(&s["id"]),
            Column::Timestamp => text(&s["timestamp"]),
            Column::Stored => text(&s["stored"]),
            Column::Actor => agent_ifis(&s["actor"]),
            Column::ActorName => text(&s["actor"]["name"]),
            Column::Verb => text(&s["verb"]["id"]),
            Column::VerbDisplay => language(&s["verb"]["display"]),
            Column::ObjectType => object_type(&s["object"]).to_owned(),
            Column::ObjectId => object_id(&s["object"]),
            Column::ObjectName => object_name(&s["object"]),
            Column::Registration => text(&s["context"]["registration"]),
            Column::ScoreScaled => score("scaled"),
            Column::ScoreRaw => score("raw"),
            Column::ScoreMin => score("min"),
            Column::ScoreMax => score("max"),
            Column::Success => boolean(&s["result"]["success"]),
            Column::Completion => boolean(&s["result"]["completion"]),
            Column::Response => text(&s["result"]["response"]),
            Column::Duration => text(&s["result"]["duration"]),
            Column::Parent => activity_ids(&s["context"]["contextActivities"]["parent"]),
            Column::Grouping => activity_ids(&s["context"]["contextActivities"]["grouping"]),
            Column::Category => activity_ids(&s["context"]["contextActivities"]["category"]),
            Column::Authority => agent_ifis(&s["authority"]),
        }
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn number(v: &Value) -> String {
    v.as_number().map(ToString::to_string).unwrap_or_default()
}

fn boolean(v: &Value) -> String {
    v.as_bool().map(|b| b.to_string()).unwrap_or_default()
}

/// One readable value of a language map per cell (`output::language_value`).
fn language(map: &Value) -> String {
    language_value(map).unwrap_or_default().to_owned()
}

fn object_type(object: &Value) -> &str {
    keys::object_type(Some(object))
}

fn object_id(object: &Value) -> String {
    match object_type(object) {
        "Agent" | "Group" => agent_ifis(object),
        "SubStatement" => String::new(),
        _ => text(&object["id"]),
    }
}

fn object_name(object: &Value) -> String {
    match object_type(object) {
        "Agent" | "Group" => text(&object["name"]),
        "Activity" => language(&object["definition"]["name"]),
        _ => String::new(),
    }
}

/// An agent's canonical IFI; for an anonymous group (an OAuth authority is
/// one) its members' IFIs, space-separated since no IFI holds a space.
fn agent_ifis(a: &Value) -> String {
    if let Some(ifi) = agent::ifi(a) {
        return ifi;
    }
    let members = a["member"].as_array().into_iter().flatten();
    members.filter_map(agent::ifi).collect::<Vec<_>>().join(" ")
}

/// Context activity ids, space-separated (IRIs hold no spaces).
fn activity_ids(list: &Value) -> String {
    match list {
        Value::Array(items) => items.iter().filter_map(|a| a["id"].as_str()).collect::<Vec<_>>().join(" "),
        Value::Object(_) => text(&list["id"]),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_column_has_a_distinct_name_that_parses_back() {
        for name in Column::names() {
            assert_eq!(Column::parse(name).map(Column::name), Some(name));
        }
        assert_eq!(Column::parse("Id"), None);
    }

    #[test]
    fn flattens_the_usual_properties() {
        let s = json!({
            "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
            "actor": {"mbox": "mailto:Ann@Example.com", "name": "Ann"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/scored", "display": {"fr": "noté", "en": "scored"}},
            "object": {"id": "http://x/a", "definition": {"name": {"de": "Test"}}},
            "result": {"score": {"scaled": 0.5, "raw": 5}, "success": false},
            "context": {"contextActivities": {"parent": [{"id": "http://x/p1"}, {"id": "http://x/p2"}]}},
            "authority": {"objectType": "Group", "member": [
                {"account": {"homePage": "http://lrs", "name": "app"}}, {"mbox": "mailto:u@x.com"}]}
        });
        let row = |c: Column| c.value(&s);
        assert_eq!(row(Column::Actor), "mbox:mailto:ann@example.com");
        assert_eq!(row(Column::VerbDisplay), "scored");
        assert_eq!(row(Column::ObjectType), "Activity");
        assert_eq!(row(Column::ObjectName), "Test");
        assert_eq!(row(Column::ScoreScaled), "0.5");
        assert_eq!(row(Column::ScoreRaw), "5");
        assert_eq!(row(Column::ScoreMin), "");
        assert_eq!(row(Column::Success), "false");
        assert_eq!(row(Column::Completion), "");
        assert_eq!(row(Column::Parent), "http://x/p1 http://x/p2");
        assert_eq!(row(Column::Authority), "account:http://lrs|app mbox:mailto:u@x.com");
    }

    #[test]
    fn agent_objects_give_their_ifi_and_name() {
        let s = json!({"object": {"objectType": "Agent", "openid": "http://id/bob", "name": "Bob"}});
        assert_eq!(Column::ObjectId.value(&s), "openid:http://id/bob");
        assert_eq!(Column::ObjectName.value(&s), "Bob");
    }
}
