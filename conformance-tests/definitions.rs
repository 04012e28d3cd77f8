//! The Activities (Communication 2.5) and Agents (2.4) resources.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

async fn activity(app: &TestApp, iri: &str) -> (StatusCode, Value) {
    let res = app.request(Method::GET, &format!("/activities?activityId={}", enc(iri))).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

on_both_backends!(activity_definitions_merge_across_statements);
async fn activity_definitions_merge_across_statements(app: TestApp) {
    let mut first = statement();
    let iri = first["object"]["id"].as_str().unwrap().to_owned();
    first["object"]["definition"] =
        json!({"name": {"en-US": "example meeting"}, "type": "http://adlnet.gov/expapi/activities/meeting"});
    app.store(&first).await;
    let (status, got) = activity(&app, &iri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, first["object"], "the complete Activity as sent");

    let mut second = statement();
    second["object"] = json!({"objectType": "Activity", "id": iri, "definition": {"name": {"fr-FR": "réunion"}}});
    app.store(&second).await;
    let (_, got) = activity(&app, &iri).await;
    assert_eq!(got["definition"]["name"], json!({"en-US": "example meeting", "fr-FR": "réunion"}));
    assert_eq!(got["definition"]["type"], "http://adlnet.gov/expapi/activities/meeting");
}

on_both_backends!(context_and_sub_statement_activities_are_defined_too);
async fn context_and_sub_statement_activities_are_defined_too(app: TestApp) {
    let parent = format!("http://example.com/courses/{}", uuid());
    let mut s = statement();
    s["context"] = json!({"contextActivities": {"parent": {"id": parent, "definition": {"name": {"en": "Course"}}}}});
    app.store(&s).await;
    assert_eq!(activity(&app, &parent).await.1["definition"]["name"]["en"], "Course");
}

on_both_backends!(unknown_activities_are_still_activities);
async fn unknown_activities_are_still_activities(app: TestApp) {
    let (status, got) = activity(&app, "http://example.com/never-seen").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, json!({"objectType": "Activity", "id": "http://example.com/never-seen"}));
    let head = app.request(Method::HEAD, "/activities?activityId=http://example.com/x").send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.bytes().await.unwrap().is_empty());
}

on_both_backends!(activities_and_agents_check_their_parameters);
async fn activities_and_agents_check_their_parameters(app: TestApp) {
    for path in [
        "/activities",
        "/activities?activityId=true",
        "/activities?activityId=http://x&foo=1",
        "/agents",
        "/agents?agent=true",
        "/agents?agent=%7B%22name%22%3A%22no%20ifi%22%7D",
    ] {
        let res = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(res.json::<Value>().await.unwrap()["message"].is_string(), "{path}");
    }
}

on_both_backends!(agents_resource_returns_a_person);
async fn agents_resource_returns_a_person(app: TestApp) {
    for agent in [
        json!({"objectType": "Agent", "name": "Ann", "mbox": "mailto:ann@example.com"}),
        json!({"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"}),
        json!({"openid": "http://openid.example.org/ann"}),
        json!({"account": {"homePage": "http://example.com", "name": "ann"}}),
    ] {
        let res = app.request(Method::GET, &format!("/agents?{}", agent_q(&agent))).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{agent}");
        let person: Value = res.json().await.unwrap();
        assert_eq!(person["objectType"], "Person");
        for key in ["name", "mbox", "mbox_sha1sum", "openid", "account"] {
            if let Some(v) = agent.get(key) {
                assert_eq!(person[key], json!([v]), "{key}");
            } else {
                assert!(person.get(key).is_none(), "{key}");
            }
        }
    }
}

on_both_backends!(agents_resource_merges_the_names_statements_gave);
async fn agents_resource_merges_the_names_statements_gave(app: TestApp) {
    let mbox = format!("mailto:ann-{}@example.com", uuid());
    let mut first = statement();
    first["actor"] = json!({"name": "Ann", "mbox": mbox.to_uppercase().replace("MAILTO:", "mailto:")});
    let mut second = statement();
    second["actor"] = json!({"name": "Ann Smith", "mbox": mbox});
    second["context"] = json!({"instructor": {"name": "Teacher", "mbox": "mailto:teacher@example.com"}});
    let mut again = statement();
    again["actor"] = json!({"name": "Ann", "mbox": mbox});
    app.store(&json!([first, second])).await;
    app.store(&again).await;

    let person = |agent: Value| {
        let app = &app;
        async move {
            let res = app.request(Method::GET, &format!("/agents?{}", agent_q(&agent))).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{agent}");
            res.json::<Value>().await.unwrap()
        }
    };
    let p = person(json!({"mbox": mbox})).await;
    assert_eq!(p, json!({"objectType": "Person", "name": ["Ann", "Ann Smith"], "mbox": [mbox]}));
    let p = person(json!({"name": "A. Smith", "mbox": mbox})).await;
    assert_eq!(p["name"], json!(["Ann", "Ann Smith", "A. Smith"]));
    let p = person(json!({"mbox": "mailto:teacher@example.com"})).await;
    assert_eq!(p["name"], json!(["Teacher"]));
}
