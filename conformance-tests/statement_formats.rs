//! `format=exact|ids|canonical` (xAPI 1.0.3 Communication 2.1.3 and its
//! language filtering) and the array form of context activities (Data 2.4.6.2).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

/// A statement with names, language maps in three languages, context
/// activities, an instructor, a result and an extension.
fn rich(n: &str) -> Value {
    json!({
        "actor": {"objectType": "Agent", "name": "Ann Learner", "mbox": format!("mailto:ann-{n}@example.com")},
        "verb": {"id": format!("http://example.com/verbs/{n}"),
                 "display": {"en-US": "completed", "en-GB": "completed (GB)", "fr": "a terminé"}},
        "object": {
            "objectType": "Activity",
            "id": format!("http://example.com/activities/{n}"),
            "definition": {
                "name": {"en-US": "Course", "en-GB": "Course (GB)", "fr": "Cours"},
                "description": {"en-US": "A course", "en-GB": "A course (GB)", "fr": "Un cours"},
                "type": "http://adlnet.gov/expapi/activities/course",
                "extensions": {"http://example.com/ext/label": {"en-US": "keep", "fr": "garder"}}
            }
        },
        "result": {"score": {"scaled": 0.5}, "success": true},
        "context": {
            "instructor": {"objectType": "Agent", "name": "Ian Instructor", "mbox": format!("mailto:ian-{n}@example.com")},
            "contextActivities": {
                "category": [{"objectType": "Activity", "id": format!("http://example.com/category/{n}"),
                              "definition": {"name": {"en-US": "Category", "en-GB": "Category (GB)", "fr": "Catégorie"}}}],
                "parent": [{"id": format!("http://example.com/parent/{n}"),
                            "definition": {"name": {"en-US": "Parent"}, "type": "http://example.com/types/parent"}}]
            },
            "language": "en-US"
        },
        "timestamp": "2024-01-02T03:04:05.678Z"
    })
}

/// GET ?statementId=&format= (with an optional Accept-Language); expects 200.
async fn get_formatted(app: &TestApp, id: &str, format: Option<&str>, accept_language: Option<&str>) -> Value {
    let mut query = format!("/statements?statementId={id}");
    if let Some(f) = format {
        query.push_str(&format!("&format={f}"));
    }
    let mut req = app.request(Method::GET, &query);
    if let Some(l) = accept_language {
        req = req.header("Accept-Language", l);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{query}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The only statement of a page query with this format.
async fn listed(app: &TestApp, query: &str, accept_language: Option<&str>) -> Vec<Value> {
    let mut req = app.request(Method::GET, &format!("/statements?{query}"));
    if let Some(l) = accept_language {
        req = req.header("Accept-Language", l);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["statements"].as_array().expect("statements").clone()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

/// An Activity in `format=ids`: its id, and nothing else but an objectType "Activity".
fn assert_activity_ids_only(activity: &Value, id: &Value, what: &str) {
    assert_eq!(activity["id"], *id, "{what}: {activity}");
    for k in keys(activity) {
        assert!(k == "id" || k == "objectType", "{what}: only the id is kept, not '{k}': {activity}");
    }
    if let Some(t) = activity.get("objectType") {
        assert_eq!(t, "Activity", "{what}");
    }
}

// ---- exact ----

on_both_backends!(exact_format_returns_what_was_sent);
async fn exact_format_returns_what_was_sent(app: TestApp) {
    let s = rich(&uuid());
    let id = app.store(&s).await.remove(0);
    for format in [Some("exact"), None] {
        let got = get_formatted(&app, &id, format, Some("fr")).await;
        for k in ["actor", "verb", "object", "result", "context", "timestamp"] {
            assert_eq!(got[k], s[k], "format {format:?}: {k} deep-equal to what was sent");
        }
    }
    let page = listed(&app, "format=exact", None).await;
    assert_eq!(page.len(), 1);
    for k in ["actor", "verb", "object", "result", "context"] {
        assert_eq!(page[0][k], s[k], "page, {k}");
    }
}

// ---- ids ----

on_both_backends!(ids_format_keeps_only_identifiers);
async fn ids_format_keeps_only_identifiers(app: TestApp) {
    let s = rich(&uuid());
    let id = app.store(&s).await.remove(0);
    for got in [get_formatted(&app, &id, Some("ids"), None).await, listed(&app, "format=ids", None).await.remove(0)] {
        assert_eq!(got["id"], json!(id));
        assert_eq!(got["actor"], json!({"objectType": "Agent", "mbox": s["actor"]["mbox"]}), "actor: {got}");
        assert_eq!(got["verb"], json!({"id": s["verb"]["id"]}), "verb: {got}");
        assert_activity_ids_only(&got["object"], &s["object"]["id"], "object");
        let ctx = &got["context"];
        assert!(ctx["instructor"].get("name").is_none(), "instructor name dropped: {ctx}");
        assert_eq!(ctx["instructor"]["mbox"], s["context"]["instructor"]["mbox"]);
        assert_activity_ids_only(
            &ctx["contextActivities"]["category"][0],
            &s["context"]["contextActivities"]["category"][0]["id"],
            "category",
        );
        assert_activity_ids_only(
            &ctx["contextActivities"]["parent"][0],
            &s["context"]["contextActivities"]["parent"][0]["id"],
            "parent",
        );
        // What is not an agent, activity or verb stays.
        assert_eq!(got["result"], s["result"]);
        assert_eq!(got["timestamp"], s["timestamp"]);
        assert!(got["stored"].is_string());
        assert!(got.get("authority").is_some());
        assert!(got["authority"].get("name").is_none(), "authority reduced too: {}", got["authority"]);
    }
}

on_both_backends!(ids_format_reduces_groups);
async fn ids_format_reduces_groups(app: TestApp) {
    let n = uuid();
    let identified = json!({"objectType": "Group", "name": "Team", "mbox": format!("mailto:team-{n}@example.com"),
                            "member": [{"objectType": "Agent", "name": "M", "mbox": format!("mailto:m-{n}@example.com")}]});
    let anonymous = json!({"objectType": "Group", "name": "Anon", "member": [
        {"objectType": "Agent", "name": "A", "mbox": format!("mailto:a-{n}@example.com")},
        {"name": "B", "account": {"homePage": "http://example.com", "name": format!("b-{n}")}}
    ]});
    let verb = json!({"id": "http://example.com/verbs/v", "display": {"en-US": "v"}});
    let s1 = json!({"actor": identified, "verb": verb, "object": {"objectType": "Agent", "name": "Obj",
                    "mbox": format!("mailto:obj-{n}@example.com")}});
    let s2 = json!({"actor": anonymous, "verb": verb, "object": {"id": "http://example.com/a"}});
    let ids = app.store(&json!([s1, s2])).await;

    let got = get_formatted(&app, &ids[0], Some("ids"), None).await;
    assert_eq!(
        got["actor"],
        json!({"objectType": "Group", "mbox": identified["mbox"]}),
        "identified group: {}",
        got["actor"]
    );
    assert_eq!(
        got["object"],
        json!({"objectType": "Agent", "mbox": s1["object"]["mbox"]}),
        "agent object: {}",
        got["object"]
    );

    let got = get_formatted(&app, &ids[1], Some("ids"), None).await;
    let actor = &got["actor"];
    assert_eq!(actor["objectType"], json!("Group"));
    assert!(actor.get("name").is_none(), "group name dropped: {actor}");
    let members = actor["member"].as_array().expect("an anonymous group keeps its members");
    assert_eq!(members.len(), 2, "{actor}");
    for (member, sent) in members.iter().zip(anonymous["member"].as_array().unwrap()) {
        assert!(member.get("name").is_none(), "member name dropped: {member}");
        for ifi in ["mbox", "account"] {
            assert_eq!(member.get(ifi), sent.get(ifi), "member {ifi}: {member}");
        }
        if let Some(t) = member.get("objectType") {
            assert_eq!(t, "Agent");
        }
    }
}

on_both_backends!(ids_format_applies_inside_substatements);
async fn ids_format_applies_inside_substatements(app: TestApp) {
    let n = uuid();
    let s = json!({
        "actor": {"objectType": "Agent", "name": "A", "mbox": format!("mailto:a-{n}@example.com")},
        "verb": {"id": "http://example.com/verbs/planned", "display": {"en-US": "planned"}},
        "object": {"objectType": "SubStatement",
                   "actor": {"objectType": "Agent", "name": "A", "mbox": format!("mailto:a-{n}@example.com")},
                   "verb": {"id": "http://example.com/verbs/attend", "display": {"en-US": "attend"}},
                   "object": {"objectType": "Activity", "id": "http://example.com/meeting",
                              "definition": {"name": {"en-US": "Meeting"}}}}
    });
    let id = app.store(&s).await.remove(0);
    let got = get_formatted(&app, &id, Some("ids"), None).await;
    let sub = &got["object"];
    assert_eq!(sub["objectType"], json!("SubStatement"));
    assert!(sub["actor"].get("name").is_none(), "{sub}");
    assert_eq!(sub["actor"]["mbox"], s["object"]["actor"]["mbox"]);
    assert_eq!(sub["verb"], json!({"id": "http://example.com/verbs/attend"}));
    assert_activity_ids_only(&sub["object"], &json!("http://example.com/meeting"), "sub-statement object");
}

// ---- canonical ----

on_both_backends!(canonical_format_keeps_the_accepted_language);
async fn canonical_format_keeps_the_accepted_language(app: TestApp) {
    let s = rich(&uuid());
    let id = app.store(&s).await.remove(0);
    let single = get_formatted(&app, &id, Some("canonical"), Some("en-GB")).await;
    let page = listed(&app, "format=canonical", Some("en-GB")).await.remove(0);
    for got in [single, page] {
        assert_eq!(got["verb"]["display"], json!({"en-GB": "completed (GB)"}), "verb.display: {}", got["verb"]);
        let def = &got["object"]["definition"];
        assert_eq!(def["name"], json!({"en-GB": "Course (GB)"}), "name: {def}");
        assert_eq!(def["description"], json!({"en-GB": "A course (GB)"}), "description: {def}");
        assert_eq!(
            got["context"]["contextActivities"]["category"][0]["definition"]["name"],
            json!({"en-GB": "Category (GB)"})
        );
        // Agents are returned as in exact.
        assert_eq!(got["actor"], s["actor"]);
        assert_eq!(got["context"]["instructor"], s["context"]["instructor"]);
        assert_eq!(got["verb"]["id"], s["verb"]["id"]);
        assert_eq!(got["object"]["id"], s["object"]["id"]);
    }
    // The default format keeps every language.
    let exact = get_formatted(&app, &id, None, Some("en-GB")).await;
    assert_eq!(exact["verb"]["display"], s["verb"]["display"]);
    assert_eq!(exact["object"]["definition"]["name"], s["object"]["definition"]["name"]);
    assert_eq!(exact["object"]["definition"]["description"], s["object"]["definition"]["description"]);
    assert_eq!(
        exact["context"]["contextActivities"]["category"][0]["definition"]["name"],
        s["context"]["contextActivities"]["category"][0]["definition"]["name"]
    );
}

on_both_backends!(canonical_format_follows_accept_language_preferences);
async fn canonical_format_follows_accept_language_preferences(app: TestApp) {
    let s = rich(&uuid());
    let id = app.store(&s).await.remove(0);
    let got = get_formatted(&app, &id, Some("canonical"), Some("de, fr;q=0.9, en-US;q=0.5")).await;
    assert_eq!(got["verb"]["display"], json!({"fr": "a terminé"}));
    assert_eq!(got["object"]["definition"]["name"], json!({"fr": "Cours"}));
    // A language range matches the tags it is a prefix of.
    let got = get_formatted(&app, &id, Some("canonical"), Some("de, en;q=0.9")).await;
    let display = got["verb"]["display"].as_object().unwrap();
    assert_eq!(display.len(), 1, "{display:?}");
    assert!(display.keys().all(|t| t.starts_with("en-")), "{display:?}");
    // q=0 means "not acceptable".
    let got = get_formatted(&app, &id, Some("canonical"), Some("fr;q=0, en-GB;q=0.1")).await;
    assert_eq!(got["verb"]["display"], json!({"en-GB": "completed (GB)"}));
    let got = get_formatted(&app, &id, Some("canonical"), Some("fr;q=0.2, en-US;q=0.8")).await;
    assert_eq!(got["verb"]["display"], json!({"en-US": "completed"}));
    assert_eq!(got["object"]["definition"]["description"], json!({"en-US": "A course"}));
}

on_both_backends!(canonical_format_without_accept_language_keeps_one_entry_per_map);
async fn canonical_format_without_accept_language_keeps_one_entry_per_map(app: TestApp) {
    let s = rich(&uuid());
    let id = app.store(&s).await.remove(0);
    let got = get_formatted(&app, &id, Some("canonical"), None).await;
    let maps = [
        (&got["verb"]["display"], &s["verb"]["display"]),
        (&got["object"]["definition"]["name"], &s["object"]["definition"]["name"]),
        (&got["object"]["definition"]["description"], &s["object"]["definition"]["description"]),
        (
            &got["context"]["contextActivities"]["category"][0]["definition"]["name"],
            &s["context"]["contextActivities"]["category"][0]["definition"]["name"],
        ),
    ];
    for (returned, sent) in maps {
        let entries = returned.as_object().unwrap_or_else(|| panic!("a language map: {returned}"));
        assert_eq!(entries.len(), 1, "one language: {returned}");
        let (tag, text) = entries.iter().next().unwrap();
        assert_eq!(&sent[tag], text, "the entry is one of those sent: {returned}");
    }
}

on_both_backends!(canonical_format_filters_interaction_component_descriptions);
async fn canonical_format_filters_interaction_component_descriptions(app: TestApp) {
    let n = uuid();
    let s = json!({
        "actor": {"mbox": format!("mailto:{n}@example.com")},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered", "de": "beantwortet"}},
        "object": {"id": format!("http://example.com/q/{n}"), "definition": {
            "name": {"en-US": "Question", "de": "Frage"},
            "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
            "interactionType": "choice",
            "correctResponsesPattern": ["yes"],
            "choices": [
                {"id": "yes", "description": {"en-US": "Yes", "de": "Ja"}},
                {"id": "no", "description": {"en-US": "No", "de": "Nein"}}
            ]
        }}
    });
    let id = app.store(&s).await.remove(0);
    let got = get_formatted(&app, &id, Some("canonical"), Some("de")).await;
    let def = &got["object"]["definition"];
    assert_eq!(def["name"], json!({"de": "Frage"}));
    assert_eq!(def["choices"][0], json!({"id": "yes", "description": {"de": "Ja"}}));
    assert_eq!(def["choices"][1], json!({"id": "no", "description": {"de": "Nein"}}));
    assert_eq!(def["correctResponsesPattern"], json!(["yes"]));
    assert_eq!(def["interactionType"], json!("choice"));
}

// ---- bad values ----

on_both_backends!(unknown_format_is_400);
async fn unknown_format_is_400(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    for query in ["format=bad".to_owned(), format!("statementId={id}&format=bad"), "format=".to_owned()] {
        let (status, body) = app.get_statements(&query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["message"].is_string(), "{body}");
    }
}

// ---- context activities as arrays ----

on_both_backends!(single_context_activities_are_returned_as_arrays);
async fn single_context_activities_are_returned_as_arrays(app: TestApp) {
    let n = uuid();
    let parent = json!({"id": format!("http://example.com/parent/{n}")});
    let grouping = json!({"objectType": "Activity", "id": format!("http://example.com/grouping/{n}")});
    let category = json!({"id": format!("http://example.com/category/{n}")});
    let other = json!({"id": format!("http://example.com/other/{n}")});
    let mut s = statement();
    s["context"] =
        json!({"contextActivities": {"parent": parent, "grouping": grouping, "category": category, "other": [other]}});
    let id = app.store(&s).await.remove(0);
    let expected = json!({"parent": [parent], "grouping": [grouping], "category": [category], "other": [other]});
    for format in [None, Some("exact"), Some("canonical")] {
        let got = get_formatted(&app, &id, format, None).await;
        assert_eq!(got["context"]["contextActivities"], expected, "format {format:?}");
    }
    let got = get_formatted(&app, &id, Some("ids"), None).await;
    for list in ["parent", "grouping", "category", "other"] {
        let items =
            got["context"]["contextActivities"][list].as_array().unwrap_or_else(|| panic!("{list} an array: {got}"));
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], expected[list][0]["id"]);
    }
    assert_eq!(listed(&app, "", None).await[0]["context"]["contextActivities"], expected);
}

on_both_backends!(single_context_activities_in_substatements_are_returned_as_arrays);
async fn single_context_activities_in_substatements_are_returned_as_arrays(app: TestApp) {
    let n = uuid();
    let parent = json!({"id": format!("http://example.com/parent/{n}")});
    let category = json!({"id": format!("http://example.com/category/{n}")});
    let mut s = statement();
    s["object"] = json!({
        "objectType": "SubStatement",
        "actor": {"mbox": format!("mailto:{n}@example.com")},
        "verb": {"id": "http://example.com/verbs/will"},
        "object": {"id": format!("http://example.com/activities/{n}")},
        "context": {"contextActivities": {"parent": parent, "category": [category]}}
    });
    let id = app.store(&s).await.remove(0);
    let got = app.statement(&id).await;
    assert_eq!(got["object"]["context"]["contextActivities"], json!({"parent": [parent], "category": [category]}));
    let got = get_formatted(&app, &id, Some("ids"), None).await;
    assert!(got["object"]["context"]["contextActivities"]["parent"].is_array(), "{got}");
}

on_both_backends!(array_form_is_the_same_statement_as_single_form);
async fn array_form_is_the_same_statement_as_single_form(app: TestApp) {
    let id = uuid();
    let parent = json!({"id": "http://example.com/parent"});
    let mut single = statement();
    single["id"] = json!(id);
    single["context"] = json!({"contextActivities": {"parent": parent}});
    app.store(&single).await;
    let mut as_array = single.clone();
    as_array["context"]["contextActivities"]["parent"] = json!([parent]);
    let res = app.put_statement(&id, &as_array).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "the array form restates the stored statement");
}

on_both_backends!(canonical_uses_the_merged_activity_definition);
async fn canonical_uses_the_merged_activity_definition(app: TestApp) {
    let mut first = statement();
    let iri = first["object"]["id"].as_str().unwrap().to_owned();
    first["object"]["definition"] = json!({"name": {"en-US": "one"}});
    let id = app.store(&first).await.remove(0);
    let mut later = statement();
    later["object"] = json!({"objectType": "Activity", "id": iri, "definition": {"name": {"fr": "deux"}}});
    app.store(&later).await;
    let res = app
        .request(Method::GET, &format!("/statements?statementId={id}&format=canonical"))
        .header("Accept-Language", "fr")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let got: Value = res.json().await.unwrap();
    assert_eq!(got["object"]["definition"]["name"], json!({"fr": "deux"}), "the LRS's canonical definition, in French");
    // Exact still returns what this statement carried.
    assert_eq!(app.statement(&id).await["object"]["definition"]["name"], json!({"en-US": "one"}));
}
