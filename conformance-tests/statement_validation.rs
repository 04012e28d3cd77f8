//! Statement validation (xAPI 1.0.3 Data 2.2-2.5, 4.1-4.6): every class of
//! invalid statement is refused with 400 and a JSON error body naming the
//! offending property; the valid edge cases next to them are accepted.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

/// What the error body must say about the bad property.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `property` is this path or a path below it (`actor` matches
    /// `actor.mbox` and `actor.member[0]`).
    Prop(&'static str),
    /// The message names it (case-insensitive): for properties that are
    /// missing or unknown, which have no path of their own.
    Mentions(&'static str),
}
use Expect::*;

/// A valid statement changed by `f`.
fn changed(f: impl FnOnce(&mut Value)) -> Value {
    let mut s = statement();
    f(&mut s);
    s
}

fn names(property: &str, expected: &str) -> bool {
    property == expected
        || property.strip_prefix(expected).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// POSTs and PUTs `s`; both must be 400 with an error body that says what is wrong.
async fn assert_rejected(app: &TestApp, what: &str, s: &Value, expect: Expect) {
    let res = app.post_statements(s).await;
    let status = res.status();
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: POST {s}\n-> {text}");
    assert!(ct.starts_with("application/json"), "{what}: error Content-Type {ct}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: error body is not JSON: {text}"));
    assert_eq!(body["error"], json!("Bad Request"), "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_else(|| panic!("{what}: no message: {body}"));
    match expect {
        Prop(p) => {
            let property = body["property"].as_str().unwrap_or_else(|| panic!("{what}: no property: {body}"));
            assert!(names(property, p), "{what}: property '{property}' should name '{p}': {body}");
        }
        Mentions(word) => {
            let property = body["property"].as_str().unwrap_or_default();
            assert!(
                message.to_lowercase().contains(&word.to_lowercase()) || names(property, word),
                "{what}: the error should name '{word}': {body}"
            );
        }
    }
    let id = uuid();
    let res = app.put_statement(&id, s).await;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: PUT {s}\n-> {text}");
}

async fn assert_accepted(app: &TestApp, what: &str, s: &Value) -> String {
    let res = app.post_statements(s).await;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{what}: POST {s}\n-> {text}");
    let ids: Vec<String> = serde_json::from_str(&text).expect("ids");
    ids.into_iter().next().expect("one id")
}

/// Runs a table of invalid statements, then checks none was stored.
async fn reject_all(app: &TestApp, cases: Vec<(&str, Value, Expect)>) {
    for (what, s, expect) in &cases {
        assert_rejected(app, what, s, *expect).await;
    }
    assert_eq!(app.ids("").await, Vec::<String>::new(), "no invalid statement was stored");
}

async fn accept_all(app: &TestApp, cases: Vec<(&str, Value)>) {
    for (what, s) in &cases {
        let id = assert_accepted(app, what, s).await;
        app.statement(&id).await;
    }
}

fn verb() -> Value {
    json!({"id": "http://example.com/verbs/did", "display": {"en-US": "did"}})
}

/// A statement whose object is `object`.
fn about(object: Value) -> Value {
    json!({"actor": agent("actor"), "verb": verb(), "object": object})
}

fn substatement() -> Value {
    json!({"objectType": "SubStatement", "actor": agent("sub"), "verb": verb(),
           "object": {"objectType": "Activity", "id": "http://example.com/activities/sub"}})
}

// ---- Structure ----

on_both_backends!(missing_required_properties_are_rejected);
async fn missing_required_properties_are_rejected(app: TestApp) {
    let mut cases = Vec::new();
    for prop in ["actor", "verb", "object"] {
        let s = changed(|s| {
            s.as_object_mut().unwrap().remove(prop);
        });
        cases.push((prop, s, Mentions(prop)));
    }
    cases.push(("verb without id", changed(|s| s["verb"] = json!({"display": {"en-US": "did"}})), Prop("verb")));
    cases.push(("activity without id", changed(|s| s["object"] = json!({"objectType": "Activity"})), Prop("object")));
    cases.push((
        "StatementRef without id",
        changed(|s| s["object"] = json!({"objectType": "StatementRef"})),
        Prop("object"),
    ));
    cases.push((
        "SubStatement without verb",
        changed(|s| {
            let mut sub = substatement();
            sub.as_object_mut().unwrap().remove("verb");
            s["object"] = sub;
        }),
        Prop("object"),
    ));
    cases.push((
        "attachment without sha2",
        changed(|s| {
            s["attachments"] = json!([{"usageType": "http://example.com/usage", "display": {"en-US": "a"},
                                        "contentType": "text/plain", "length": 1, "fileUrl": "http://example.com/f"}])
        }),
        Prop("attachments[0]"),
    ));
    reject_all(&app, cases).await;
}

on_both_backends!(unknown_and_wrong_case_properties_are_rejected);
async fn unknown_and_wrong_case_properties_are_rejected(app: TestApp) {
    let cases = vec![
        ("unknown top-level property", changed(|s| s["foo"] = json!("bar")), Mentions("foo")),
        (
            "key in the wrong case: Actor",
            changed(|s| {
                let actor = s.as_object_mut().unwrap().remove("actor").unwrap();
                s["Actor"] = actor;
            }),
            Mentions("actor"),
        ),
        ("key in the wrong case: Verb next to verb", changed(|s| s["Verb"] = s["verb"].clone()), Mentions("verb")),
        ("unknown actor property", changed(|s| s["actor"]["age"] = json!(3)), Prop("actor")),
        ("unknown verb property", changed(|s| s["verb"]["name"] = json!("did")), Prop("verb")),
        (
            "unknown activity definition property",
            changed(|s| s["object"]["definition"]["title"] = json!("x")),
            Prop("object"),
        ),
        ("unknown result property", changed(|s| s["result"] = json!({"passed": true})), Prop("result")),
        ("unknown context property", changed(|s| s["context"] = json!({"Registration": uuid()})), Prop("context")),
        (
            "unknown context activity list",
            changed(|s| s["context"] = json!({"contextActivities": {"siblings": [{"id": "http://example.com/a"}]}})),
            Prop("context.contextActivities"),
        ),
        ("context key in wrong case", changed(|s| s["context"] = json!({"Platform": "x"})), Prop("context")),
    ];
    reject_all(&app, cases).await;
}

on_both_backends!(null_values_outside_extensions_are_rejected);
async fn null_values_outside_extensions_are_rejected(app: TestApp) {
    let cases = vec![
        ("actor null", changed(|s| s["actor"] = Value::Null), Prop("actor")),
        ("actor name null", changed(|s| s["actor"]["name"] = Value::Null), Prop("actor.name")),
        ("verb display null", changed(|s| s["verb"]["display"] = Value::Null), Prop("verb.display")),
        ("language map value null", changed(|s| s["verb"]["display"]["en-US"] = Value::Null), Prop("verb.display")),
        ("object definition null", changed(|s| s["object"]["definition"] = Value::Null), Prop("object")),
        ("result null", changed(|s| s["result"] = Value::Null), Prop("result")),
        ("result.success null", changed(|s| s["result"] = json!({"success": null})), Prop("result.success")),
        ("score.raw null", changed(|s| s["result"] = json!({"score": {"raw": null}})), Prop("result.score")),
        ("context null", changed(|s| s["context"] = Value::Null), Prop("context")),
        ("registration null", changed(|s| s["context"] = json!({"registration": null})), Prop("context.registration")),
        ("timestamp null", changed(|s| s["timestamp"] = Value::Null), Prop("timestamp")),
        ("id null", changed(|s| s["id"] = Value::Null), Prop("id")),
        ("version null", changed(|s| s["version"] = Value::Null), Prop("version")),
        ("attachments null", changed(|s| s["attachments"] = Value::Null), Prop("attachments")),
        ("result.extensions null", changed(|s| s["result"] = json!({"extensions": null})), Prop("result.extensions")),
    ];
    reject_all(&app, cases).await;
}

on_both_backends!(wrong_json_types_are_rejected);
async fn wrong_json_types_are_rejected(app: TestApp) {
    let cases = vec![
        ("actor is a string", changed(|s| s["actor"] = json!("mailto:a@example.com")), Prop("actor")),
        ("verb is a string", changed(|s| s["verb"] = json!("http://example.com/verbs/did")), Prop("verb")),
        ("object is an array", changed(|s| s["object"] = json!([{"id": "http://example.com/a"}])), Prop("object")),
        ("result.success is a string", changed(|s| s["result"] = json!({"success": "true"})), Prop("result.success")),
        (
            "result.completion is a number",
            changed(|s| s["result"] = json!({"completion": 1})),
            Prop("result.completion"),
        ),
        ("result.response is a number", changed(|s| s["result"] = json!({"response": 3})), Prop("result.response")),
        ("score.raw is a string", changed(|s| s["result"] = json!({"score": {"raw": "5"}})), Prop("result.score.raw")),
        ("id is a number", changed(|s| s["id"] = json!(12)), Prop("id")),
        ("version is a number", changed(|s| s["version"] = json!(1.0)), Prop("version")),
        ("timestamp is a number", changed(|s| s["timestamp"] = json!(1_700_000_000)), Prop("timestamp")),
        ("attachments is an object", changed(|s| s["attachments"] = json!({})), Prop("attachments")),
        (
            "member is an object",
            changed(|s| s["actor"] = json!({"objectType": "Group", "member": agent("m")})),
            Prop("actor"),
        ),
        (
            "attachment length is a string",
            changed(|s| {
                s["attachments"] = json!([{"usageType": "http://example.com/usage", "display": {"en-US": "a"},
                                            "contentType": "text/plain", "length": "1", "sha2": "a".repeat(64),
                                            "fileUrl": "http://example.com/f"}])
            }),
            Prop("attachments[0]"),
        ),
    ];
    reject_all(&app, cases).await;
}

on_both_backends!(object_type_values_are_case_sensitive);
async fn object_type_values_are_case_sensitive(app: TestApp) {
    let cases = vec![
        ("actor objectType 'agent'", changed(|s| s["actor"]["objectType"] = json!("agent")), Prop("actor")),
        (
            "actor objectType 'group'",
            changed(|s| s["actor"] = json!({"objectType": "group", "member": [agent("m")]})),
            Prop("actor"),
        ),
        ("object objectType 'activity'", changed(|s| s["object"]["objectType"] = json!("activity")), Prop("object")),
        (
            "object objectType 'statementref'",
            changed(|s| s["object"] = json!({"objectType": "statementref", "id": uuid()})),
            Prop("object"),
        ),
        ("unknown objectType", changed(|s| s["object"]["objectType"] = json!("Thing")), Prop("object")),
    ];
    reject_all(&app, cases).await;
}

// ---- Agents and groups ----

on_both_backends!(agents_need_exactly_one_valid_identifier);
async fn agents_need_exactly_one_valid_identifier(app: TestApp) {
    let cases = vec![
        (
            "agent with no IFI",
            changed(|s| s["actor"] = json!({"objectType": "Agent", "name": "Nobody"})),
            Prop("actor"),
        ),
        (
            "agent with two IFIs",
            changed(|s| {
                s["actor"] = json!({"objectType": "Agent", "mbox": "mailto:a@example.com",
                                    "openid": "http://openid.example.com/a"})
            }),
            Prop("actor"),
        ),
        (
            "agent with mbox and mbox_sha1sum",
            changed(|s| {
                s["actor"] = json!({"mbox": "mailto:a@example.com",
                                    "mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"})
            }),
            Prop("actor"),
        ),
        ("mbox without mailto:", changed(|s| s["actor"]["mbox"] = json!("learner@example.com")), Prop("actor.mbox")),
        ("mbox with http:", changed(|s| s["actor"]["mbox"] = json!("http://example.com/learner")), Prop("actor.mbox")),
        ("mbox without @", changed(|s| s["actor"]["mbox"] = json!("mailto:learner")), Prop("actor.mbox")),
        (
            "mbox_sha1sum too short",
            changed(|s| s["actor"] = json!({"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee"})),
            Prop("actor.mbox_sha1sum"),
        ),
        (
            "mbox_sha1sum not hex",
            changed(|s| s["actor"] = json!({"mbox_sha1sum": "zzd31e95054c018b10727ccffd2ef2ec3a016ee9"})),
            Prop("actor.mbox_sha1sum"),
        ),
        ("openid not an IRI", changed(|s| s["actor"] = json!({"openid": "not an iri"})), Prop("actor.openid")),
        (
            "account without homePage",
            changed(|s| s["actor"] = json!({"account": {"name": "learner"}})),
            Prop("actor.account"),
        ),
        (
            "account without name",
            changed(|s| s["actor"] = json!({"account": {"homePage": "http://example.com"}})),
            Prop("actor.account"),
        ),
        (
            "account homePage not an IRI",
            changed(|s| s["actor"] = json!({"account": {"homePage": "example.com", "name": "learner"}})),
            Prop("actor.account.homePage"),
        ),
        ("agent name not a string", changed(|s| s["actor"]["name"] = json!(["Learner"])), Prop("actor.name")),
        (
            "object agent without objectType",
            changed(|s| s["object"] = json!({"mbox": "mailto:other@example.com"})),
            Prop("object"),
        ),
        (
            "object agent with bad mbox",
            changed(|s| s["object"] = json!({"objectType": "Agent", "mbox": "other@example.com"})),
            Prop("object.mbox"),
        ),
        (
            "instructor with no IFI",
            changed(|s| s["context"] = json!({"instructor": {"objectType": "Agent", "name": "Teacher"}})),
            Prop("context.instructor"),
        ),
    ];
    reject_all(&app, cases).await;
}

on_both_backends!(valid_agent_identifiers_are_accepted);
async fn valid_agent_identifiers_are_accepted(app: TestApp) {
    let cases = vec![
        ("mbox without objectType", changed(|s| s["actor"] = json!({"mbox": "mailto:a@example.com"}))),
        ("mbox_sha1sum", changed(|s| s["actor"] = json!({"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"}))),
        ("openid", changed(|s| s["actor"] = json!({"openid": "http://openid.example.com/learner"}))),
        (
            "account",
            changed(|s| s["actor"] = json!({"account": {"homePage": "http://example.com", "name": "learner"}})),
        ),
        (
            "identified group without members",
            changed(|s| s["actor"] = json!({"objectType": "Group", "mbox": "mailto:team@example.com"})),
        ),
        (
            "anonymous group with members",
            changed(|s| s["actor"] = json!({"objectType": "Group", "member": [agent("a"), agent("b")]})),
        ),
        ("agent as object", changed(|s| s["object"] = agent("object"))),
    ];
    accept_all(&app, cases).await;
}

on_both_backends!(group_rules_are_enforced);
async fn group_rules_are_enforced(app: TestApp) {
    let cases = vec![
        (
            "anonymous group without member",
            changed(|s| s["actor"] = json!({"objectType": "Group", "name": "A group"})),
            Prop("actor"),
        ),
        (
            "group member that is a Group",
            changed(|s| {
                s["actor"] = json!({"objectType": "Group", "member": [
                    agent("m"),
                    {"objectType": "Group", "mbox": "mailto:inner@example.com"}
                ]})
            }),
            Prop("actor.member[1]"),
        ),
        (
            "group member without IFI",
            changed(|s| s["actor"] = json!({"objectType": "Group", "member": [{"name": "Nobody"}]})),
            Prop("actor.member[0]"),
        ),
        (
            "group member with bad mbox",
            changed(|s| s["actor"] = json!({"objectType": "Group", "member": [{"mbox": "m@example.com"}]})),
            Prop("actor.member[0]"),
        ),
        (
            "group with two IFIs",
            changed(|s| {
                s["actor"] = json!({"objectType": "Group", "mbox": "mailto:g@example.com",
                                    "openid": "http://openid.example.com/g"})
            }),
            Prop("actor"),
        ),
        (
            "context.team that is an Agent",
            changed(|s| s["context"] = json!({"team": agent("team")})),
            Prop("context.team"),
        ),
        (
            "context.team without objectType",
            changed(|s| s["context"] = json!({"team": {"mbox": "mailto:team@example.com"}})),
            Prop("context.team"),
        ),
    ];
    reject_all(&app, cases).await;
}

// ---- Verbs, language maps, activities ----

on_both_backends!(verb_rules_are_enforced);
async fn verb_rules_are_enforced(app: TestApp) {
    let cases = vec![
        ("verb id not an IRI", changed(|s| s["verb"]["id"] = json!("completed")), Prop("verb.id")),
        ("verb id with a space", changed(|s| s["verb"]["id"] = json!("http://example.com/my verb")), Prop("verb.id")),
        ("verb id empty", changed(|s| s["verb"]["id"] = json!("")), Prop("verb.id")),
        ("verb display a string", changed(|s| s["verb"]["display"] = json!("completed")), Prop("verb.display")),
        ("verb display an array", changed(|s| s["verb"]["display"] = json!(["completed"])), Prop("verb.display")),
        (
            "verb display value not a string",
            changed(|s| s["verb"]["display"] = json!({"en-US": {"text": "did"}})),
            Prop("verb.display"),
        ),
    ];
    reject_all(&app, cases).await;
}

on_both_backends!(language_tags_are_checked);
async fn language_tags_are_checked(app: TestApp) {
    let cases = vec![
        (
            "display key 'not a tag'",
            changed(|s| s["verb"]["display"] = json!({"not a tag": "did"})),
            Prop("verb.display"),
        ),
        ("display key 'a12345'", changed(|s| s["verb"]["display"] = json!({"a12345": "did"})), Prop("verb.display")),
        ("display key ''", changed(|s| s["verb"]["display"] = json!({"": "did"})), Prop("verb.display")),
        (
            "activity name key 'en_US'",
            changed(|s| s["object"]["definition"]["name"] = json!({"en_US": "x"})),
            Prop("object"),
        ),
        (
            "activity description key 'not a tag'",
            changed(|s| s["object"]["definition"]["description"] = json!({"not a tag": "x"})),
            Prop("object"),
        ),
        (
            "context.language 'not a tag'",
            changed(|s| s["context"] = json!({"language": "not a tag"})),
            Prop("context.language"),
        ),
    ];
    reject_all(&app, cases).await;
    accept_all(
        &app,
        vec![(
            "valid tags",
            changed(|s| {
                s["verb"]["display"] = json!({"en": "a", "en-US": "b", "zh-Hant-TW": "c", "es-419": "d", "und": "e"})
            }),
        )],
    )
    .await;
}

on_both_backends!(activity_rules_are_enforced);
async fn activity_rules_are_enforced(app: TestApp) {
    let cases = vec![
        ("activity id not an IRI", changed(|s| s["object"]["id"] = json!("activity-1")), Prop("object")),
        ("activity id without objectType not an IRI", about(json!({"id": "not an iri"})), Prop("object.id")),
        (
            "definition type not an IRI",
            changed(|s| s["object"]["definition"]["type"] = json!("course")),
            Prop("object"),
        ),
        (
            "definition moreInfo not an IRI",
            changed(|s| s["object"]["definition"]["moreInfo"] = json!("see the course")),
            Prop("object"),
        ),
        (
            "context activity id not an IRI",
            changed(|s| s["context"] = json!({"contextActivities": {"parent": [{"id": "parent"}]}})),
            Prop("context.contextActivities.parent"),
        ),
        (
            "context activity list of strings",
            changed(|s| s["context"] = json!({"contextActivities": {"category": ["http://example.com/c"]}})),
            Prop("context.contextActivities.category"),
        ),
    ];
    reject_all(&app, cases).await;
}

on_both_backends!(interaction_rules_are_enforced);
async fn interaction_rules_are_enforced(app: TestApp) {
    let choices = json!([{"id": "a", "description": {"en-US": "A"}}, {"id": "b", "description": {"en-US": "B"}}]);
    let with_definition =
        |def: Value| about(json!({"objectType": "Activity", "id": "http://example.com/q1", "definition": def}));
    let cases = vec![
        (
            "unknown interactionType",
            with_definition(json!({"interactionType": "essay"})),
            Prop("object.definition.interactionType"),
        ),
        (
            "interactionType in the wrong case",
            with_definition(json!({"interactionType": "Choice", "choices": choices.clone()})),
            Prop("object.definition.interactionType"),
        ),
        (
            "choices without interactionType",
            with_definition(json!({"choices": choices.clone()})),
            Prop("object.definition"),
        ),
        (
            "duplicate choice ids",
            with_definition(json!({"interactionType": "choice",
                                   "choices": [{"id": "a", "description": {"en-US": "A"}}, {"id": "a", "description": {"en-US": "A again"}}]})),
            Prop("object.definition.choices"),
        ),
        (
            "duplicate source ids",
            with_definition(json!({"interactionType": "matching",
                                   "source": [{"id": "x"}, {"id": "x"}], "target": [{"id": "1"}]})),
            Prop("object.definition.source"),
        ),
        (
            "correctResponsesPattern not strings",
            with_definition(json!({"interactionType": "true-false", "correctResponsesPattern": [true]})),
            Prop("object.definition.correctResponsesPattern"),
        ),
        (
            "component without id",
            with_definition(json!({"interactionType": "choice", "choices": [{"description": {"en-US": "A"}}]})),
            Prop("object.definition.choices[0]"),
        ),
    ];
    reject_all(&app, cases).await;
    accept_all(
        &app,
        vec![
            (
                "choice",
                with_definition(json!({"interactionType": "choice", "choices": choices.clone(), "correctResponsesPattern": ["a[,]b"]})),
            ),
            (
                "likert",
                with_definition(json!({"interactionType": "likert", "scale": choices.clone(), "correctResponsesPattern": ["a"]})),
            ),
            (
                "matching",
                with_definition(json!({"interactionType": "matching", "source": choices.clone(), "target": [{"id": "1"}]})),
            ),
            ("fill-in", with_definition(json!({"interactionType": "fill-in", "correctResponsesPattern": ["Bob"]}))),
        ],
    )
    .await;
}

// ---- Result ----

on_both_backends!(score_rules_are_enforced);
async fn score_rules_are_enforced(app: TestApp) {
    let with_score = |score: Value| changed(move |s| s["result"] = json!({"score": score}));
    let cases = vec![
        ("scaled 1.01", with_score(json!({"scaled": 1.01})), Prop("result.score")),
        ("scaled -1.5", with_score(json!({"scaled": -1.5})), Prop("result.score")),
        ("raw greater than max", with_score(json!({"raw": 11, "min": 0, "max": 10})), Prop("result.score")),
        ("raw greater than max (no min)", with_score(json!({"raw": 10.5, "max": 10})), Prop("result.score")),
        ("raw less than min", with_score(json!({"raw": -1, "min": 0, "max": 10})), Prop("result.score")),
        ("min greater than max", with_score(json!({"min": 10, "max": 5})), Prop("result.score")),
        ("unknown score property", with_score(json!({"percent": 50})), Prop("result.score")),
    ];
    reject_all(&app, cases).await;
    accept_all(
        &app,
        vec![
            ("scaled 1", with_score(json!({"scaled": 1}))),
            ("scaled -1", with_score(json!({"scaled": -1}))),
            ("raw equal to min and max", with_score(json!({"raw": 5, "min": 5, "max": 5}))),
            ("raw without bounds", with_score(json!({"raw": -1000.5}))),
        ],
    )
    .await;
}

on_both_backends!(durations_are_iso_8601);
async fn durations_are_iso_8601(app: TestApp) {
    let with_duration = |d: &str| changed(|s| s["result"] = json!({"duration": d}));
    let mut cases = Vec::new();
    for bad in ["P4W1D", "PT1.5H2M", "P", "PT", "1H", "PT1H2", "P1M1Y", "4 hours"] {
        cases.push((bad, with_duration(bad), Prop("result.duration")));
    }
    reject_all(&app, cases).await;
    let mut ok = Vec::new();
    for good in ["P4W", "PT1H0M0.5S", "P3Y1M29DT4H35M59.14S", "PT0S", "P1D", "PT4.25S"] {
        ok.push((good, with_duration(good)));
    }
    accept_all(&app, ok).await;
}

// ---- Timestamps and ids ----

on_both_backends!(timestamps_are_iso_8601_without_negative_zero_offsets);
async fn timestamps_are_iso_8601_without_negative_zero_offsets(app: TestApp) {
    let with_timestamp = |t: &str| changed(|s| s["timestamp"] = json!(t));
    let mut cases = Vec::new();
    for bad in [
        "2013-05-18T05:32:34.804-00:00",
        "2013-05-18T05:32:34.804-0000",
        "2013-05-18T05:32:34.804-00",
        "2013-13-18T05:32:34.804Z",
        "2013-05-32T05:32:34Z",
        "2013-05-18T25:32:34Z",
        "18/05/2013 05:32",
        "yesterday",
        "",
    ] {
        cases.push((bad, with_timestamp(bad), Prop("timestamp")));
    }
    reject_all(&app, cases).await;
    let future =
        (chrono::Utc::now() + chrono::Duration::days(400)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut ok = vec![];
    for good in [
        "2013-05-18T05:32:34.804+01:00",
        "2013-05-18T05:32:34.804Z",
        "2013-05-18T05:32:34+00:00",
        "2013-05-18T05:32:34.804-05:00",
        future.as_str(),
    ] {
        ok.push((good, with_timestamp(good)));
    }
    for (what, s) in &ok {
        let id = assert_accepted(&app, what, s).await;
        let stored = app.statement(&id).await;
        let sent = chrono::DateTime::parse_from_rfc3339(what).unwrap();
        let kept = chrono::DateTime::parse_from_rfc3339(stored["timestamp"].as_str().unwrap()).unwrap();
        assert_eq!(kept, sent, "{what}: timestamp kept (same instant)");
    }
}

on_both_backends!(uuids_are_checked);
async fn uuids_are_checked(app: TestApp) {
    let cases = vec![
        ("id not a UUID", changed(|s| s["id"] = json!("not-a-uuid")), Prop("id")),
        ("id without hyphens", changed(|s| s["id"] = json!(uuid().replace('-', ""))), Prop("id")),
        ("id too long", changed(|s| s["id"] = json!(format!("{}0", uuid()))), Prop("id")),
        (
            "registration not a UUID",
            changed(|s| s["context"] = json!({"registration": "registration-1"})),
            Prop("context.registration"),
        ),
        (
            "StatementRef id not a UUID",
            changed(|s| s["object"] = json!({"objectType": "StatementRef", "id": "statement-1"})),
            Prop("object"),
        ),
        (
            "context.statement id not a UUID",
            changed(|s| s["context"] = json!({"statement": {"objectType": "StatementRef", "id": "x"}})),
            Prop("context.statement"),
        ),
        (
            "context.statement not a StatementRef",
            changed(|s| s["context"] = json!({"statement": {"objectType": "Activity", "id": "http://example.com/a"}})),
            Prop("context.statement"),
        ),
    ];
    reject_all(&app, cases).await;
}

// ---- Context ----

on_both_backends!(revision_and_platform_only_with_activity_objects);
async fn revision_and_platform_only_with_activity_objects(app: TestApp) {
    let cases = vec![
        (
            "revision with an Agent object",
            changed(|s| {
                s["object"] = agent("object");
                s["context"] = json!({"revision": "2"});
            }),
            Prop("context.revision"),
        ),
        (
            "platform with an Agent object",
            changed(|s| {
                s["object"] = agent("object");
                s["context"] = json!({"platform": "web"});
            }),
            Prop("context.platform"),
        ),
        (
            "revision with a StatementRef object",
            changed(|s| {
                s["object"] = json!({"objectType": "StatementRef", "id": uuid()});
                s["context"] = json!({"revision": "2"});
            }),
            Prop("context.revision"),
        ),
        (
            "platform with a SubStatement object",
            changed(|s| {
                s["object"] = substatement();
                s["context"] = json!({"platform": "web"});
            }),
            Prop("context.platform"),
        ),
        ("revision not a string", changed(|s| s["context"] = json!({"revision": 2})), Prop("context.revision")),
    ];
    reject_all(&app, cases).await;
    accept_all(
        &app,
        vec![(
            "revision and platform with an Activity object",
            changed(|s| s["context"] = json!({"revision": "2", "platform": "web"})),
        )],
    )
    .await;
}

// ---- SubStatements and StatementRefs ----

on_both_backends!(substatement_rules_are_enforced);
async fn substatement_rules_are_enforced(app: TestApp) {
    let with_sub = |f: &dyn Fn(&mut Value)| {
        let mut sub = substatement();
        f(&mut sub);
        about(sub)
    };
    let cases = vec![
        ("SubStatement with id", with_sub(&|s| s["id"] = json!(uuid())), Prop("object")),
        ("SubStatement with stored", with_sub(&|s| s["stored"] = json!("2013-05-18T05:32:34.804Z")), Prop("object")),
        ("SubStatement with version", with_sub(&|s| s["version"] = json!("1.0.0")), Prop("object")),
        ("SubStatement with authority", with_sub(&|s| s["authority"] = agent("auth")), Prop("object")),
        ("nested SubStatement", with_sub(&|s| s["object"] = substatement()), Prop("object")),
        (
            "SubStatement with bad actor",
            with_sub(&|s| s["actor"]["mbox"] = json!("x@example.com")),
            Prop("object.actor"),
        ),
        ("SubStatement with bad verb", with_sub(&|s| s["verb"]["id"] = json!("did")), Prop("object.verb")),
        (
            "SubStatement with revision and Agent object",
            with_sub(&|s| {
                s["object"] = agent("o");
                s["context"] = json!({"revision": "1"});
            }),
            Prop("object.context.revision"),
        ),
        (
            "SubStatement with scaled score out of range",
            with_sub(&|s| s["result"] = json!({"score": {"scaled": 2}})),
            Prop("object"),
        ),
        (
            "SubStatement objectType missing",
            about(json!({"actor": agent("a"), "verb": verb(),
            "object": {"id": "http://example.com/a"}})),
            Prop("object"),
        ),
    ];
    reject_all(&app, cases).await;
    accept_all(
        &app,
        vec![
            ("SubStatement", about(substatement())),
            (
                "SubStatement with StatementRef object and context",
                with_sub(&|s| {
                    s["object"] = json!({"objectType": "StatementRef", "id": uuid()});
                    s["context"] = json!({"registration": uuid(), "instructor": agent("i")});
                    s["timestamp"] = json!("2013-05-18T05:32:34.804Z");
                }),
            ),
        ],
    )
    .await;
}

on_both_backends!(statement_refs_are_checked);
async fn statement_refs_are_checked(app: TestApp) {
    let cases = vec![
        ("StatementRef with bad id", about(json!({"objectType": "StatementRef", "id": "1234"})), Prop("object")),
        (
            "StatementRef with extra property",
            about(json!({"objectType": "StatementRef", "id": uuid(), "definition": {}})),
            Prop("object"),
        ),
        ("StatementRef id a number", about(json!({"objectType": "StatementRef", "id": 5})), Prop("object")),
    ];
    reject_all(&app, cases).await;
    accept_all(
        &app,
        vec![("StatementRef to an unknown statement", about(json!({"objectType": "StatementRef", "id": uuid()})))],
    )
    .await;
}

// ---- version, extensions, authority, attachments, voiding ----

on_both_backends!(version_must_be_1_0_x);
async fn version_must_be_1_0_x(app: TestApp) {
    let mut cases = Vec::new();
    for bad in ["1.1.0", "0.9", "2.0.0", "1", "1.0.x", "", "1.0.3.1"] {
        cases.push((bad, changed(|s| s["version"] = json!(bad)), Prop("version")));
    }
    reject_all(&app, cases).await;
    for good in ["1.0", "1.0.9", "1.0.0", "1.0.3"] {
        let id = assert_accepted(&app, good, &changed(|s| s["version"] = json!(good))).await;
        assert_eq!(app.statement(&id).await["version"], json!(good), "version {good} is retained");
    }
}

on_both_backends!(extension_keys_must_be_iris);
async fn extension_keys_must_be_iris(app: TestApp) {
    let cases = vec![
        (
            "result extension key not an IRI",
            changed(|s| s["result"] = json!({"extensions": {"score-bonus": 1}})),
            Prop("result.extensions"),
        ),
        (
            "context extension key not an IRI",
            changed(|s| s["context"] = json!({"extensions": {"not an iri": true}})),
            Prop("context.extensions"),
        ),
        (
            "activity extension key not an IRI",
            changed(|s| s["object"]["definition"]["extensions"] = json!({"color": "red"})),
            Prop("object"),
        ),
        (
            "extensions not an object",
            changed(|s| s["result"] = json!({"extensions": ["http://example.com/ext"]})),
            Prop("result.extensions"),
        ),
    ];
    reject_all(&app, cases).await;
}

on_both_backends!(extension_values_may_be_anything);
async fn extension_values_may_be_anything(app: TestApp) {
    let ext = json!({
        "http://example.com/ext/null": null,
        "http://example.com/ext/empty-string": "",
        "http://example.com/ext/empty-object": {},
        "http://example.com/ext/nested": {"a": [null, 1, "x", {"b": null}]}
    });
    let s = changed(|s| {
        s["result"] = json!({"extensions": ext.clone()});
        s["context"] = json!({"extensions": ext.clone()});
        s["object"]["definition"]["extensions"] = ext.clone();
    });
    let id = assert_accepted(&app, "extension values null, \"\", {}", &s).await;
    let stored = app.statement(&id).await;
    assert_eq!(stored["result"]["extensions"], ext);
    assert_eq!(stored["context"]["extensions"], ext);
    assert_eq!(stored["object"]["definition"]["extensions"], ext);
}

on_both_backends!(authority_groups_must_be_anonymous_pairs);
async fn authority_groups_must_be_anonymous_pairs(app: TestApp) {
    let cases = vec![
        (
            "authority an identified group",
            changed(|s| {
                s["authority"] = json!({"objectType": "Group", "mbox": "mailto:g@example.com",
                                        "member": [agent("app"), agent("user")]})
            }),
            Prop("authority"),
        ),
        (
            "authority an anonymous group of three",
            changed(|s| {
                s["authority"] = json!({"objectType": "Group", "member": [agent("a"), agent("b"), agent("c")]})
            }),
            Prop("authority"),
        ),
        (
            "authority an anonymous group of one",
            changed(|s| s["authority"] = json!({"objectType": "Group", "member": [agent("a")]})),
            Prop("authority"),
        ),
        (
            "authority agent without IFI",
            changed(|s| s["authority"] = json!({"objectType": "Agent", "name": "x"})),
            Prop("authority"),
        ),
    ];
    reject_all(&app, cases).await;
    accept_all(
        &app,
        vec![
            (
                "authority an anonymous group of two",
                changed(|s| s["authority"] = json!({"objectType": "Group", "member": [agent("app"), agent("user")]})),
            ),
            ("authority an agent", changed(|s| s["authority"] = agent("authority"))),
        ],
    )
    .await;
}

fn attachment(file_url: Option<&str>) -> Value {
    let mut a = json!({
        "usageType": "http://example.com/attachment-usage/test",
        "display": {"en-US": "A test attachment"},
        "description": {"en-US": "A test attachment (description)"},
        "contentType": "text/plain; charset=ascii",
        "length": 27,
        "sha2": "495395e777cd98da653df9615d09c0fd6bb2f8d4788394cd53c56a3bfdcd848a"
    });
    if let Some(url) = file_url {
        a["fileUrl"] = json!(url);
    }
    a
}

on_both_backends!(attachments_in_json_requests_need_a_file_url);
async fn attachments_in_json_requests_need_a_file_url(app: TestApp) {
    let cases = vec![
        ("attachment without fileUrl", changed(|s| s["attachments"] = json!([attachment(None)])), Prop("attachments")),
        (
            "second attachment without fileUrl",
            changed(|s| s["attachments"] = json!([attachment(Some("http://example.com/a.txt")), attachment(None)])),
            Prop("attachments"),
        ),
        (
            "attachment with a bad sha2",
            changed(|s| {
                let mut a = attachment(Some("http://example.com/a.txt"));
                a["sha2"] = json!("not-a-hash");
                s["attachments"] = json!([a]);
            }),
            Prop("attachments[0].sha2"),
        ),
        (
            "attachment usageType not an IRI",
            changed(|s| {
                let mut a = attachment(Some("http://example.com/a.txt"));
                a["usageType"] = json!("signature");
                s["attachments"] = json!([a]);
            }),
            Prop("attachments[0].usageType"),
        ),
        (
            "attachment with negative length",
            changed(|s| {
                let mut a = attachment(Some("http://example.com/a.txt"));
                a["length"] = json!(-1);
                s["attachments"] = json!([a]);
            }),
            Prop("attachments[0].length"),
        ),
        (
            "attachment without display",
            changed(|s| {
                let mut a = attachment(Some("http://example.com/a.txt"));
                a.as_object_mut().unwrap().remove("display");
                s["attachments"] = json!([a]);
            }),
            Prop("attachments[0]"),
        ),
    ];
    reject_all(&app, cases).await;
    let s = changed(|s| s["attachments"] = json!([attachment(Some("http://example.com/a.txt"))]));
    let id = assert_accepted(&app, "attachment with fileUrl", &s).await;
    assert_eq!(app.statement(&id).await["attachments"], s["attachments"]);
}

on_both_backends!(voiding_statements_must_reference_a_statement);
async fn voiding_statements_must_reference_a_statement(app: TestApp) {
    let voided = json!({"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-US": "voided"}});
    let cases = vec![
        (
            "voided verb with an Activity object",
            json!({"actor": agent("a"), "verb": voided.clone(), "object": {"objectType": "Activity", "id": "http://example.com/a"}}),
            Prop("object"),
        ),
        (
            "voided verb with an Activity object (no objectType)",
            json!({"actor": agent("a"), "verb": voided.clone(), "object": {"id": "http://example.com/a"}}),
            Prop("object"),
        ),
        (
            "voided verb with an Agent object",
            json!({"actor": agent("a"), "verb": voided.clone(), "object": agent("b")}),
            Prop("object"),
        ),
    ];
    reject_all(&app, cases).await;
}

on_both_backends!(error_body_names_the_statement_in_a_batch);
async fn error_body_names_the_statement_in_a_batch(app: TestApp) {
    let bad = changed(|s| s["verb"]["id"] = json!("completed"));
    let res = app.post_statements(&json!([statement(), statement(), bad])).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    let property = body["property"].as_str().unwrap_or_default();
    assert!(property.contains("[2]") && property.contains("verb.id"), "{body}");
    assert!(body["rule"].is_string(), "{body}");
    assert_eq!(app.ids("").await, Vec::<String>::new());
}
