//! GET /statements (xAPI 1.0.3 Communication 2.1.3, Data 2.5): single
//! statements, filters, ordering, paging and the headers of the resource.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

const CONSISTENT_THROUGH: &str = "X-Experience-API-Consistent-Through";

fn activity(id: &str) -> Value {
    json!({"objectType": "Activity", "id": id})
}

/// A statement by `actor` with verb `verb` about `object`.
fn st(actor: &Value, verb: &str, object: Value) -> Value {
    json!({"actor": actor, "verb": {"id": verb, "display": {"en-US": "did"}}, "object": object})
}

fn rev(ids: &[String]) -> Vec<String> {
    ids.iter().rev().cloned().collect()
}

async fn get(app: &TestApp, query: &str) -> (StatusCode, HeaderMap, String) {
    let res = app.request(Method::GET, &format!("/statements?{query}")).send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.text().await.unwrap())
}

async fn assert_400(app: &TestApp, query: &str) {
    let (status, headers, text) = get(app, query).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "GET ?{query} -> {text}");
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(ct.starts_with("application/json"), "GET ?{query}: error Content-Type {ct}");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("GET ?{query}: error body not JSON: {text}"));
    assert!(body["message"].is_string(), "{body}");
}

fn consistent_through(headers: &HeaderMap) -> chrono::DateTime<chrono::FixedOffset> {
    let value = headers
        .get(CONSISTENT_THROUGH)
        .unwrap_or_else(|| panic!("{CONSISTENT_THROUGH} missing: {headers:?}"))
        .to_str()
        .unwrap();
    chrono::DateTime::parse_from_rfc3339(value)
        .unwrap_or_else(|e| panic!("{CONSISTENT_THROUGH} '{value}' is not a timestamp: {e}"))
}

fn stored_of(s: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(s["stored"].as_str().expect("stored")).expect("stored is a timestamp")
}

/// The base URL of the server (scheme, host, port), for following `more`.
fn server_base(app: &TestApp) -> String {
    app.endpoint.strip_suffix("/xapi").expect("endpoint ends with /xapi").to_owned()
}

async fn follow_more(app: &TestApp, more: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .get(format!("{}{more}", server_base(app)))
        .header("X-Experience-API-Version", VERSION)
        .basic_auth(ADMIN_KEY, Some(ADMIN_SECRET))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

// ---- Single statements ----

on_both_backends!(get_by_statement_id_returns_the_statement);
async fn get_by_statement_id_returns_the_statement(app: TestApp) {
    let s = statement();
    let id = app.store(&s).await.remove(0);
    app.store(&statement()).await;
    let (status, headers, text) = get(&app, &format!("statementId={id}")).await;
    assert_eq!(status, StatusCode::OK);
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(ct.starts_with("application/json"), "{ct}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body.get("statements").is_none(), "a single statement, not a StatementResult: {body}");
    assert!(body.get("more").is_none(), "{body}");
    assert_eq!(body["id"], json!(id));
    assert_eq!(body["actor"], s["actor"]);
    assert_eq!(body["verb"], s["verb"]);
    assert_eq!(body["object"], s["object"]);
}

on_both_backends!(get_by_statement_id_ignores_id_case);
async fn get_by_statement_id_ignores_id_case(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    let (status, body) = app.get_statements(&format!("statementId={}", id.to_uppercase())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], json!(id));
}

on_both_backends!(unknown_statement_id_is_404_with_json_body);
async fn unknown_statement_id_is_404_with_json_body(app: TestApp) {
    app.store(&statement()).await;
    let (status, headers, text) = get(&app, &format!("statementId={}", uuid())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(ct.starts_with("application/json"), "{ct}");
    let body: Value = serde_json::from_str(&text).expect("JSON error body");
    assert!(body["error"].is_string() && body["message"].is_string(), "{body}");
}

on_both_backends!(statement_id_with_voided_statement_id_is_400);
async fn statement_id_with_voided_statement_id_is_400(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    assert_400(&app, &format!("statementId={id}&voidedStatementId={id}")).await;
    assert_400(&app, &format!("voidedStatementId={}&statementId={id}", uuid())).await;
}

on_both_backends!(statement_id_with_any_filter_parameter_is_400);
async fn statement_id_with_any_filter_parameter_is_400(app: TestApp) {
    let s = statement();
    let id = app.store(&s).await.remove(0);
    let others = [
        agent_q(&s["actor"]),
        format!("verb={}", enc(s["verb"]["id"].as_str().unwrap())),
        format!("activity={}", enc(s["object"]["id"].as_str().unwrap())),
        format!("registration={}", uuid()),
        "related_activities=false".to_owned(),
        "related_agents=false".to_owned(),
        "since=2000-01-01T00:00:00Z".to_owned(),
        "until=2100-01-01T00:00:00Z".to_owned(),
        "limit=1".to_owned(),
        "ascending=true".to_owned(),
        "more=x".to_owned(),
    ];
    for other in &others {
        assert_400(&app, &format!("statementId={id}&{other}")).await;
        assert_400(&app, &format!("{other}&voidedStatementId={id}")).await;
    }
}

on_both_backends!(statement_id_with_format_and_attachments_is_200);
async fn statement_id_with_format_and_attachments_is_200(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    for extra in ["format=exact", "format=ids", "format=canonical", "attachments=false", "format=ids&attachments=false"]
    {
        let (status, body) = app.get_statements(&format!("statementId={id}&{extra}")).await;
        assert_eq!(status, StatusCode::OK, "{extra}: {body}");
        assert_eq!(body["id"], json!(id), "{extra}");
    }
    let res = app.request(Method::GET, &format!("/statements?statementId={id}&attachments=true")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

on_both_backends!(statement_id_that_is_not_a_uuid_is_400_or_404);
async fn statement_id_that_is_not_a_uuid_is_400_or_404(app: TestApp) {
    let (status, _) = app.get_statements("statementId=not-a-uuid").await;
    assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND, "{status}");
}

// ---- Parameters ----

on_both_backends!(unknown_parameter_is_400);
async fn unknown_parameter_is_400(app: TestApp) {
    app.store(&statement()).await;
    assert_400(&app, "foo=bar").await;
    assert_400(&app, "limit=1&foo=bar").await;
    assert_400(&app, "statementIds=x").await;
    let res = app.request(Method::POST, "/statements?foo=bar").json(&statement()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "POST with an unknown parameter");
    let id = uuid();
    let res = app
        .request(Method::PUT, &format!("/statements?statementId={id}&foo=bar"))
        .json(&statement())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "PUT with an unknown parameter");
    assert_eq!(app.get_statements(&format!("statementId={id}")).await.0, StatusCode::NOT_FOUND);
}

on_both_backends!(parameter_names_are_case_sensitive);
async fn parameter_names_are_case_sensitive(app: TestApp) {
    let s = statement();
    let id = app.store(&s).await.remove(0);
    assert_400(&app, "LIMIT=1").await;
    assert_400(&app, "Limit=1").await;
    assert_400(&app, &format!("Agent={}", enc(&s["actor"].to_string()))).await;
    assert_400(&app, &format!("StatementId={id}")).await;
    assert_400(&app, &format!("statementID={id}")).await;
    assert_400(&app, "Ascending=true").await;
    let res = app
        .request(Method::PUT, &format!("/statements?StatementId={}", uuid()))
        .json(&statement())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "PUT with StatementId");
}

on_both_backends!(repeated_parameter_is_400);
async fn repeated_parameter_is_400(app: TestApp) {
    let s = statement();
    let id = app.store(&s).await.remove(0);
    assert_400(&app, "limit=1&limit=2").await;
    let verb = enc(s["verb"]["id"].as_str().unwrap());
    assert_400(&app, &format!("verb={verb}&verb={verb}")).await;
    assert_400(&app, &format!("statementId={id}&statementId={id}")).await;
}

on_both_backends!(malformed_parameter_values_are_400);
async fn malformed_parameter_values_are_400(app: TestApp) {
    app.store(&statement()).await;
    for query in [
        "agent=not-json".to_owned(),
        format!("agent={}", enc("{\"mbox\": ")),
        agent_q(&json!({"objectType": "Agent", "name": "No IFI"})),
        agent_q(&json!({"mbox": "not-a-mailto"})),
        agent_q(&json!({"objectType": "Group", "member": [agent("m")]})),
        "since=yesterday".to_owned(),
        "until=not-a-time".to_owned(),
        format!("since={}", enc("2013-05-18T05:32:34.804-00:00")),
        "registration=not-a-uuid".to_owned(),
        "limit=-1".to_owned(),
        "limit=ten".to_owned(),
        "ascending=yes".to_owned(),
        "related_agents=1".to_owned(),
        "format=bad".to_owned(),
        "attachments=maybe".to_owned(),
    ] {
        assert_400(&app, &query).await;
    }
}

// ---- Filters ----

on_both_backends!(agent_filter_matches_actor_object_and_group_members);
async fn agent_filter_matches_actor_object_and_group_members(app: TestApp) {
    let n = uuid();
    let me = agent(&format!("me-{n}"));
    let other = agent(&format!("other-{n}"));
    let verb = "http://example.com/verbs/met";
    let a = activity("http://example.com/activities/a");
    let statements = vec![
        st(&me, verb, a.clone()),     // 0 actor
        st(&other, verb, me.clone()), // 1 object
        st(&json!({"objectType": "Group", "member": [other.clone(), me.clone()]}), verb, a.clone()), // 2 anonymous group member
        st(&json!({"objectType": "Group", "mbox": "mailto:team@example.com", "member": [me.clone()]}), verb, a.clone()), // 3 identified group member
        st(&other, verb, json!({"objectType": "Group", "member": [me.clone()]})), // 4 object group member
        st(&other, verb, a.clone()),                                              // 5 unrelated
    ];
    let ids = app.store_each(&statements).await;
    let expected: Vec<String> = [4, 3, 2, 1, 0].iter().map(|i| ids[*i].clone()).collect();
    assert_eq!(app.ids(&agent_q(&me)).await, expected);
    // The IFI alone identifies the agent: a name or a missing objectType does not matter.
    let me_plain = json!({"mbox": me["mbox"]});
    assert_eq!(app.ids(&agent_q(&me_plain)).await, expected);
    let me_named = json!({"objectType": "Agent", "name": "Someone else", "mbox": me["mbox"]});
    assert_eq!(app.ids(&agent_q(&me_named)).await, expected);
    // The identified group itself.
    let team = json!({"objectType": "Group", "mbox": "mailto:team@example.com"});
    assert_eq!(app.ids(&agent_q(&team)).await, vec![ids[3].clone()]);
    assert_eq!(app.ids(&agent_q(&agent(&format!("nobody-{n}")))).await, Vec::<String>::new());
}

on_both_backends!(agent_filter_matches_each_kind_of_ifi);
async fn agent_filter_matches_each_kind_of_ifi(app: TestApp) {
    let n = uuid();
    let agents = [
        json!({"mbox": format!("mailto:{n}@example.com")}),
        json!({"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"}),
        json!({"openid": format!("http://openid.example.com/{n}")}),
        json!({"account": {"homePage": "http://accounts.example.com", "name": n}}),
        json!({"account": {"homePage": "http://accounts.example.com", "name": format!("学習者-{n}")}}),
    ];
    let mut ids = Vec::new();
    for a in &agents {
        ids.push(app.store(&st(a, "http://example.com/verbs/v", activity("http://example.com/a"))).await.remove(0));
    }
    for (a, id) in agents.iter().zip(&ids) {
        assert_eq!(app.ids(&agent_q(a)).await, vec![id.clone()], "{a}");
    }
    // Same account name on another homePage is another agent.
    let other_home = json!({"account": {"homePage": "http://other.example.com", "name": n}});
    assert_eq!(app.ids(&agent_q(&other_home)).await, Vec::<String>::new());
}

on_both_backends!(agent_filter_ignores_context_agents_unless_related_agents);
async fn agent_filter_ignores_context_agents_unless_related_agents(app: TestApp) {
    let n = uuid();
    let me = agent(&format!("me-{n}"));
    let other = agent(&format!("other-{n}"));
    let verb = "http://example.com/verbs/v";
    let a = activity("http://example.com/activities/a");
    let mut instructed = st(&other, verb, a.clone());
    instructed["context"] = json!({"instructor": me.clone()});
    let mut teamed = st(&other, verb, a.clone());
    teamed["context"] = json!({"team": {"objectType": "Group", "member": [me.clone()]}});
    let mut sub_actor = st(
        &other,
        verb,
        json!({"objectType": "SubStatement", "actor": me.clone(),
        "verb": {"id": verb}, "object": a.clone()}),
    );
    sub_actor["context"] = json!({"registration": uuid()});
    let sub_object = st(
        &other,
        verb,
        json!({"objectType": "SubStatement", "actor": other.clone(),
        "verb": {"id": verb}, "object": me.clone()}),
    );
    let mut sub_instructor = st(
        &other,
        verb,
        json!({"objectType": "SubStatement", "actor": other.clone(),
        "verb": {"id": verb}, "object": a.clone(), "context": {"instructor": me.clone()}}),
    );
    sub_instructor["result"] = json!({"success": true});
    let direct = st(&me, verb, a.clone());
    let unrelated = st(&other, verb, a.clone());
    let ids = app.store_each(&[instructed, teamed, sub_actor, sub_object, sub_instructor, direct, unrelated]).await;

    assert_eq!(app.ids(&agent_q(&me)).await, vec![ids[5].clone()], "only the statement with me as actor");
    assert_eq!(app.ids(&format!("{}&related_agents=false", agent_q(&me))).await, vec![ids[5].clone()]);
    let related = app.ids(&format!("{}&related_agents=true", agent_q(&me))).await;
    let expected: Vec<String> = [5, 4, 3, 2, 1, 0].iter().map(|i| ids[*i].clone()).collect();
    assert_eq!(related, expected);
}

on_both_backends!(related_agents_matches_the_authority);
async fn related_agents_matches_the_authority(app: TestApp) {
    let ids = app.store_each(&[statement(), statement()]).await;
    let authority = json!({"objectType": "Agent",
                           "account": {"homePage": "https://lrs.example.com/credentials", "name": ADMIN_KEY}});
    assert_eq!(app.ids(&agent_q(&authority)).await, Vec::<String>::new(), "authority is not actor or object");
    assert_eq!(app.ids(&format!("{}&related_agents=true", agent_q(&authority))).await, rev(&ids));
}

on_both_backends!(verb_filter);
async fn verb_filter(app: TestApp) {
    let n = uuid();
    let (v1, v2) = (format!("http://example.com/verbs/{n}/one"), format!("http://example.com/verbs/{n}/two"));
    let me = agent(&n);
    let a = activity("http://example.com/a");
    let ids = app.store_each(&[st(&me, &v1, a.clone()), st(&me, &v2, a.clone()), st(&me, &v1, a.clone())]).await;
    assert_eq!(app.ids(&format!("verb={}", enc(&v1))).await, vec![ids[2].clone(), ids[0].clone()]);
    assert_eq!(app.ids(&format!("verb={}", enc(&v2))).await, vec![ids[1].clone()]);
    assert_eq!(app.ids(&format!("verb={}", enc("http://example.com/verbs/none"))).await, Vec::<String>::new());
    // Verb ids are compared exactly.
    assert_eq!(app.ids(&format!("verb={}", enc(&v1.to_uppercase()))).await, Vec::<String>::new());
}

on_both_backends!(activity_filter_matches_only_the_object);
async fn activity_filter_matches_only_the_object(app: TestApp) {
    let n = uuid();
    let target = format!("http://example.com/activities/{n}");
    let other = format!("http://example.com/activities/{n}/other");
    let me = agent(&n);
    let verb = "http://example.com/verbs/v";
    let as_object = st(&me, verb, activity(&target));
    let as_object_no_type = st(&me, verb, json!({"id": target}));
    let mut as_parent = st(&me, verb, activity(&other));
    as_parent["context"] = json!({"contextActivities": {"parent": [activity(&target)]}});
    let unrelated = st(&me, verb, activity(&other));
    let ids = app.store_each(&[as_object, as_parent, unrelated, as_object_no_type]).await;
    assert_eq!(app.ids(&format!("activity={}", enc(&target))).await, vec![ids[3].clone(), ids[0].clone()]);
    assert_eq!(
        app.ids(&format!("activity={}&related_activities=false", enc(&target))).await,
        vec![ids[3].clone(), ids[0].clone()]
    );
    assert_eq!(
        app.ids(&format!("activity={}&related_activities=true", enc(&target))).await,
        vec![ids[3].clone(), ids[1].clone(), ids[0].clone()]
    );
}

on_both_backends!(related_activities_matches_context_and_substatement_activities);
async fn related_activities_matches_context_and_substatement_activities(app: TestApp) {
    let n = uuid();
    let target = format!("http://example.com/activities/{n}");
    let other = activity(&format!("http://example.com/activities/{n}/other"));
    let me = agent(&n);
    let verb = "http://example.com/verbs/v";
    let mut statements = Vec::new();
    for list in ["parent", "grouping", "category", "other"] {
        let mut s = st(&me, verb, other.clone());
        s["context"] = json!({"contextActivities": {list: [other.clone(), activity(&target)]}});
        statements.push(s);
    }
    // A single object instead of an array.
    let mut single = st(&me, verb, other.clone());
    single["context"] = json!({"contextActivities": {"grouping": activity(&target)}});
    statements.push(single);
    statements.push(st(
        &me,
        verb,
        json!({"objectType": "SubStatement", "actor": me.clone(), "verb": {"id": verb},
                                         "object": activity(&target)}),
    ));
    statements.push(st(
        &me,
        verb,
        json!({"objectType": "SubStatement", "actor": me.clone(), "verb": {"id": verb},
        "object": other.clone(), "context": {"contextActivities": {"category": [activity(&target)]}}}),
    ));
    statements.push(st(&me, verb, other.clone()));
    let ids = app.store_each(&statements).await;
    assert_eq!(app.ids(&format!("activity={}", enc(&target))).await, Vec::<String>::new(), "none has it as object");
    let related = app.ids(&format!("activity={}&related_activities=true", enc(&target))).await;
    assert_eq!(related, rev(&ids[..7]));
}

on_both_backends!(registration_filter);
async fn registration_filter(app: TestApp) {
    let reg = uuid();
    let mut with_reg = statement();
    with_reg["context"] = json!({"registration": reg});
    let mut other_reg = statement();
    other_reg["context"] = json!({"registration": uuid()});
    let mut with_reg_again = statement();
    with_reg_again["context"] = json!({"registration": reg.to_uppercase()});
    let ids = app.store_each(&[with_reg, other_reg, statement(), with_reg_again]).await;
    assert_eq!(app.ids(&format!("registration={reg}")).await, vec![ids[3].clone(), ids[0].clone()]);
    assert_eq!(app.ids(&format!("registration={}", uuid())).await, Vec::<String>::new());
}

on_both_backends!(combined_filters_must_all_match);
async fn combined_filters_must_all_match(app: TestApp) {
    let n = uuid();
    let me = agent(&format!("me-{n}"));
    let you = agent(&format!("you-{n}"));
    let (v1, v2) = ("http://example.com/verbs/one", "http://example.com/verbs/two");
    let (a1, a2) = (format!("http://example.com/a/{n}/1"), format!("http://example.com/a/{n}/2"));
    let reg = uuid();
    let mut statements = Vec::new();
    for actor in [&me, &you] {
        for verb in [v1, v2] {
            for act in [&a1, &a2] {
                statements.push(st(actor, verb, activity(act)));
            }
        }
    }
    statements[0]["context"] = json!({"registration": reg});
    statements[4]["context"] = json!({"registration": reg});
    let ids = app.store_each(&statements).await;
    // me + v1 + a1 is statement 0 only.
    let q = format!("{}&verb={}&activity={}", agent_q(&me), enc(v1), enc(&a1));
    assert_eq!(app.ids(&q).await, vec![ids[0].clone()]);
    let q = format!("{}&verb={}", agent_q(&you), enc(v2));
    assert_eq!(app.ids(&q).await, vec![ids[7].clone(), ids[6].clone()]);
    let q = format!("verb={}&activity={}", enc(v1), enc(&a2));
    assert_eq!(app.ids(&q).await, vec![ids[5].clone(), ids[1].clone()]);
    let q = format!("registration={reg}&{}", agent_q(&you));
    assert_eq!(app.ids(&q).await, vec![ids[4].clone()]);
    let q = format!("registration={reg}&verb={}", enc(v2));
    assert_eq!(app.ids(&q).await, Vec::<String>::new());
}

// ---- Time, order, limit ----

on_both_backends!(since_is_exclusive_and_until_inclusive_on_stored);
async fn since_is_exclusive_and_until_inclusive_on_stored(app: TestApp) {
    let mut old = statement();
    // The client's timestamp plays no part: since/until are about `stored`.
    old["timestamp"] = json!("2001-01-01T00:00:00Z");
    let ids = app.store_each(&[statement(), old, statement()]).await;
    let stored: Vec<String> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(app.statement(id).await["stored"].as_str().unwrap().to_owned());
        }
        v
    };
    let b = enc(&stored[1]);
    assert_eq!(app.ids(&format!("since={b}")).await, vec![ids[2].clone()]);
    assert_eq!(app.ids(&format!("until={b}")).await, vec![ids[1].clone(), ids[0].clone()]);
    assert_eq!(app.ids(&format!("since={}&until={b}", enc(&stored[0]))).await, vec![ids[1].clone()]);
    assert_eq!(app.ids(&format!("since={b}&until={b}")).await, Vec::<String>::new());
    assert_eq!(app.ids("since=2000-01-01T00:00:00Z").await, rev(&ids));
    assert_eq!(app.ids("until=2000-01-01T00:00:00Z").await, Vec::<String>::new());
    assert_eq!(app.ids("since=2999-01-01T00:00:00Z").await, Vec::<String>::new());
    assert_eq!(app.ids("until=2999-01-01T00:00:00Z").await, rev(&ids));
    // The same instant written with an offset.
    let t = chrono::DateTime::parse_from_rfc3339(&stored[1]).unwrap();
    let shifted = t
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    assert_eq!(app.ids(&format!("since={}", enc(&shifted))).await, vec![ids[2].clone()]);
    // Clients often send the '+' of an offset unencoded (form decoding makes it a space).
    assert_eq!(app.ids(&format!("since={shifted}")).await, vec![ids[2].clone()]);
}

on_both_backends!(results_are_newest_first_unless_ascending);
async fn results_are_newest_first_unless_ascending(app: TestApp) {
    let mut ids = app.store_each(&[statement(), statement()]).await;
    ids.extend(app.store(&json!([statement(), statement()])).await);
    ids.extend(app.store_each(&[statement()]).await);
    assert_eq!(app.ids("").await, rev(&ids));
    assert_eq!(app.ids("ascending=false").await, rev(&ids));
    assert_eq!(app.ids("ascending=true").await, ids);
    // Order follows stored, not the statements' own timestamps.
    let stored: Vec<chrono::DateTime<chrono::FixedOffset>> = {
        let (_, body) = app.get_statements("").await;
        body["statements"].as_array().unwrap().iter().map(stored_of).collect()
    };
    assert!(stored.windows(2).all(|w| w[0] >= w[1]), "{stored:?}");
}

on_both_backends!(order_ignores_client_timestamps);
async fn order_ignores_client_timestamps(app: TestApp) {
    let mut late = statement();
    late["timestamp"] = json!("2099-01-01T00:00:00Z");
    let mut early = statement();
    early["timestamp"] = json!("1999-01-01T00:00:00Z");
    let ids = app.store_each(&[late, early]).await;
    assert_eq!(app.ids("").await, rev(&ids));
    assert_eq!(app.ids("ascending=true").await, ids);
}

on_both_backends!(limit_caps_the_page);
async fn limit_caps_the_page(app: TestApp) {
    let ids = app.store_each(&[statement(), statement(), statement()]).await;
    assert_eq!(app.ids("limit=1").await, vec![ids[2].clone()]);
    assert_eq!(app.ids("limit=2").await, vec![ids[2].clone(), ids[1].clone()]);
    assert_eq!(app.ids("limit=2&ascending=true").await, vec![ids[0].clone(), ids[1].clone()]);
    assert_eq!(app.ids("limit=3").await, rev(&ids));
    assert_eq!(app.ids("limit=50").await, rev(&ids));
    // 0 means the server's maximum.
    assert_eq!(app.ids("limit=0").await, rev(&ids));
    let (_, body) = app.get_statements("limit=3").await;
    assert_eq!(body["more"], json!(""), "no more after the last statement: {body}");
}

on_both_backends!(empty_result_is_an_empty_statement_result);
async fn empty_result_is_an_empty_statement_result(app: TestApp) {
    let (status, body) = app.get_statements("").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"statements": [], "more": ""}));
    app.store(&statement()).await;
    let (status, body) = app.get_statements(&format!("verb={}", enc("http://example.com/verbs/never"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"statements": [], "more": ""}));
}

on_both_backends!(statement_result_holds_full_statements);
async fn statement_result_holds_full_statements(app: TestApp) {
    let s = statement();
    let id = app.store(&s).await.remove(0);
    let (status, body) = app.get_statements("").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["more"].is_string(), "{body}");
    let listed = &body["statements"][0];
    assert_eq!(listed, &app.statement(&id).await);
    assert_eq!(listed["actor"], s["actor"]);
}

// ---- Paging ----

on_both_backends!(more_pages_through_all_statements_once);
async fn more_pages_through_all_statements_once(app: TestApp) {
    let mut ids = app.store_each(&[statement(), statement()]).await;
    ids.extend(app.store(&json!([statement(), statement(), statement()])).await);
    let (status, first) = app.get_statements("limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let mut seen = ids_of(&first);
    assert_eq!(seen.len(), 2);
    let mut more = first["more"].as_str().expect("more").to_owned();
    assert!(more.starts_with("/xapi/statements?more="), "more is a relative IRL: {more}");
    let mut pages = 1;
    while !more.is_empty() {
        assert!(pages < 10, "paging does not end");
        let (status, page) = follow_more(&app, &more).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page_ids = ids_of(&page);
        assert!(!page_ids.is_empty() && page_ids.len() <= 2, "{page}");
        seen.extend(page_ids);
        more = page["more"].as_str().expect("more").to_owned();
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, rev(&ids), "every statement exactly once, newest first");
}

on_both_backends!(more_keeps_the_filters_and_order);
async fn more_keeps_the_filters_and_order(app: TestApp) {
    let me = agent(&uuid());
    let verb = "http://example.com/verbs/v";
    let mine: Vec<Value> = (0..3).map(|i| st(&me, verb, activity(&format!("http://example.com/a/{i}")))).collect();
    let mut all = Vec::new();
    for s in mine {
        all.push(s);
        all.push(statement());
    }
    let ids = app.store_each(&all).await;
    let my_ids: Vec<String> = ids.iter().step_by(2).cloned().collect();
    let (_, first) = app.get_statements(&format!("{}&ascending=true&limit=2", agent_q(&me))).await;
    assert_eq!(ids_of(&first), my_ids[..2].to_vec());
    let more = first["more"].as_str().unwrap();
    assert!(!more.is_empty());
    let (status, second) = follow_more(&app, more).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids_of(&second), my_ids[2..].to_vec());
    assert_eq!(second["more"], json!(""));
}

on_both_backends!(more_is_a_stable_cursor);
async fn more_is_a_stable_cursor(app: TestApp) {
    let ids = app.store_each(&[statement(), statement(), statement()]).await;
    let (_, first) = app.get_statements("limit=2").await;
    let more = first["more"].as_str().unwrap().to_owned();
    // Statements stored after the first page do not shift the next page.
    app.store_each(&[statement()]).await;
    let (status, second) = follow_more(&app, &more).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids_of(&second), vec![ids[0].clone()]);
    // Following the same more twice gives the same page.
    let (_, again) = follow_more(&app, &more).await;
    assert_eq!(ids_of(&again), vec![ids[0].clone()]);
}

on_both_backends!(more_with_another_parameter_is_400);
async fn more_with_another_parameter_is_400(app: TestApp) {
    app.store_each(&[statement(), statement(), statement()]).await;
    let (_, first) = app.get_statements("limit=1").await;
    let more = first["more"].as_str().unwrap().to_owned();
    let token = more.strip_prefix("/xapi/statements?more=").expect("more form").to_owned();
    assert_400(&app, &format!("more={token}&limit=5")).await;
    assert_400(&app, &format!("verb={}&more={token}", enc("http://example.com/v"))).await;
    let (status, _) = follow_more(&app, &format!("{more}&ascending=true")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

on_both_backends!(garbage_more_is_400);
async fn garbage_more_is_400(app: TestApp) {
    app.store(&statement()).await;
    assert_400(&app, "more=garbage").await;
    assert_400(&app, "more=").await;
    assert_400(&app, &format!("more={}", enc("{\"k\":[]}"))).await;
}

// ---- Headers ----

on_both_backends!(last_modified_on_single_get);
async fn last_modified_on_single_get(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    let (status, headers, text) = get(&app, &format!("statementId={id}")).await;
    assert_eq!(status, StatusCode::OK);
    let stored = stored_of(&serde_json::from_str(&text).unwrap());
    let modified = last_modified(&headers);
    assert_eq!(modified.timestamp(), stored.timestamp(), "Last-Modified {modified} matches stored {stored}");
}

/// The header is a recent time: not in the future, not long ago.
fn assert_recent(t: chrono::DateTime<chrono::FixedOffset>, what: &str) {
    let now = chrono::Utc::now();
    assert!(t <= now + chrono::Duration::seconds(2), "{what}: {CONSISTENT_THROUGH} {t} is in the future ({now})");
    assert!(t >= now - chrono::Duration::seconds(60), "{what}: {CONSISTENT_THROUGH} {t} is not recent ({now})");
}

on_both_backends!(consistent_through_on_every_statements_response);
async fn consistent_through_on_every_statements_response(app: TestApp) {
    // Writes (success and failure).
    let res = app.post_statements(&statement()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_recent(consistent_through(res.headers()), "POST 200");
    let id: Vec<String> = res.json().await.unwrap();
    let put_id = uuid();
    let res = app.put_statement(&put_id, &statement()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_recent(consistent_through(res.headers()), "PUT 204");
    let res = app.post_statements(&json!({"actor": "bad"})).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_recent(consistent_through(res.headers()), "POST 400");
    let res = app.put_statement(&uuid(), &json!({"actor": "bad"})).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_recent(consistent_through(res.headers()), "PUT 400");
    let mut conflicting = app.statement(&put_id).await;
    conflicting["verb"]["id"] = json!("http://example.com/verbs/changed");
    let res = app.put_statement(&put_id, &conflicting).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_recent(consistent_through(res.headers()), "PUT 409");

    // Reads (success and failure).
    for (query, expected) in [
        (format!("statementId={}", id[0]), StatusCode::OK),
        (String::new(), StatusCode::OK),
        (format!("statementId={}", uuid()), StatusCode::NOT_FOUND),
        (format!("voidedStatementId={}", id[0]), StatusCode::NOT_FOUND),
        ("foo=bar".to_owned(), StatusCode::BAD_REQUEST),
        ("limit=x".to_owned(), StatusCode::BAD_REQUEST),
    ] {
        let (status, headers, _) = get(&app, &query).await;
        assert_eq!(status, expected, "GET ?{query}");
        assert_recent(consistent_through(&headers), &format!("GET ?{query}"));
    }
}

on_both_backends!(consistent_through_covers_acknowledged_statements);
async fn consistent_through_covers_acknowledged_statements(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    let put_id = uuid();
    assert_eq!(app.put_statement(&put_id, &statement()).await.status(), StatusCode::NO_CONTENT);
    let latest = stored_of(&app.statement(&put_id).await);
    assert!(latest >= stored_of(&app.statement(&id).await));
    // Once the writes are acknowledged, every later response vouches for them.
    for (query, expected) in [
        (format!("statementId={id}"), StatusCode::OK),
        (String::new(), StatusCode::OK),
        (format!("statementId={}", uuid()), StatusCode::NOT_FOUND),
        ("foo=bar".to_owned(), StatusCode::BAD_REQUEST),
    ] {
        let (status, headers, _) = get(&app, &query).await;
        assert_eq!(status, expected, "GET ?{query}");
        let t = consistent_through(&headers);
        assert!(
            t >= latest,
            "GET ?{query}: {CONSISTENT_THROUGH} {t} is before the stored time {latest} of an acknowledged statement"
        );
    }
    // A client polling with since=<Consistent-Through> sees nothing it already saw.
    let (_, headers, _) = get(&app, "").await;
    let through = consistent_through(&headers).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(app.ids(&format!("since={}", enc(&through))).await, Vec::<String>::new());
    let newer = app.store(&statement()).await.remove(0);
    assert_eq!(app.ids(&format!("since={}", enc(&through))).await, vec![newer]);
}

on_both_backends!(head_statements_has_no_body);
async fn head_statements_has_no_body(app: TestApp) {
    let id = app.store(&statement()).await.remove(0);
    for query in [String::new(), format!("?statementId={id}"), "?limit=1".to_owned()] {
        let res = app.request(Method::HEAD, &format!("/statements{query}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "HEAD {query}");
        assert_eq!(
            res.headers().get("x-experience-api-version").and_then(|v| v.to_str().ok()),
            Some("1.0.3"),
            "HEAD {query}"
        );
        assert!(res.headers().get(CONSISTENT_THROUGH).is_some(), "HEAD {query}");
        let body = res.bytes().await.unwrap();
        assert!(body.is_empty(), "HEAD {query} has a body: {body:?}");
    }
    let res = app.request(Method::HEAD, &format!("/statements?statementId={}", uuid())).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

on_both_backends!(responses_carry_the_version_header);
async fn responses_carry_the_version_header(app: TestApp) {
    let res = app.post_statements(&statement()).await;
    assert_eq!(res.headers().get("x-experience-api-version").and_then(|v| v.to_str().ok()), Some("1.0.3"));
    let (_, headers, _) = get(&app, "").await;
    assert_eq!(headers.get("x-experience-api-version").and_then(|v| v.to_str().ok()), Some("1.0.3"));
    let (_, headers, _) = get(&app, "foo=bar").await;
    assert_eq!(headers.get("x-experience-api-version").and_then(|v| v.to_str().ok()), Some("1.0.3"));
}

on_both_backends!(no_limit_returns_at_most_the_server_maximum);
async fn no_limit_returns_at_most_the_server_maximum(app: TestApp) {
    // The test server's page limit is 100.
    let batch: Vec<Value> = (0..101).map(|_| statement()).collect();
    let ids = app.store(&Value::Array(batch)).await;
    for query in ["", "limit=0", "limit=500"] {
        let (status, first) = app.get_statements(query).await;
        assert_eq!(status, StatusCode::OK);
        let page = ids_of(&first);
        assert_eq!(page.len(), 100, "?{query}");
        assert_eq!(page, rev(&ids)[..100].to_vec(), "?{query}");
        let more = first["more"].as_str().unwrap();
        assert!(!more.is_empty(), "?{query}: more is set when the page was cut");
        let (status, second) = follow_more(&app, more).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids_of(&second), vec![ids[0].clone()], "?{query}");
        assert_eq!(second["more"], json!(""));
    }
}

on_both_backends!(more_keeps_the_format);
async fn more_keeps_the_format(app: TestApp) {
    app.store_each(&[statement(), statement(), statement()]).await;
    let (_, first) = app.get_statements("format=ids&limit=2").await;
    for s in first["statements"].as_array().unwrap() {
        assert!(s["actor"].get("name").is_none(), "{s}");
    }
    let (status, second) = follow_more(&app, first["more"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let statements = second["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    assert!(statements[0]["actor"].get("name").is_none(), "format=ids on the next page too: {}", statements[0]);
    assert!(statements[0]["object"].get("definition").is_none(), "{}", statements[0]);
}

on_both_backends!(more_skips_statements_voided_meanwhile);
async fn more_skips_statements_voided_meanwhile(app: TestApp) {
    let ids = app.store_each(&[statement(), statement(), statement()]).await;
    let (_, first) = app.get_statements("limit=1").await;
    assert_eq!(ids_of(&first), vec![ids[2].clone()]);
    let more = first["more"].as_str().unwrap().to_owned();
    let void = json!({"actor": {"mbox": "mailto:admin@example.com"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                      "object": {"objectType": "StatementRef", "id": ids[1]}});
    app.store(&void).await;
    let mut seen = Vec::new();
    let mut next = more;
    while !next.is_empty() {
        let (status, page) = follow_more(&app, &next).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(ids_of(&page));
        next = page["more"].as_str().unwrap().to_owned();
    }
    assert!(!seen.contains(&ids[1]), "a statement voided since is not returned: {seen:?}");
    assert!(seen.contains(&ids[0]));
}

// ---- Alternate request syntax (Communication 1.3: "The LRS MUST support the syntax above") ----

on_both_backends!(alternate_syntax_get_by_statement_id);
async fn alternate_syntax_get_by_statement_id(app: TestApp) {
    let s = statement();
    let id = app.store(&s).await.remove(0);
    let body = format!("statementId={id}");
    let res = app.send(Method::POST, "/statements?method=GET", "application/x-www-form-urlencoded", body).await;
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "POST ?method=GET: {text}");
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(got["id"], json!(id));
    assert_eq!(got["actor"], s["actor"]);
}

on_both_backends!(alternate_syntax_query_with_filters);
async fn alternate_syntax_query_with_filters(app: TestApp) {
    let s = statement();
    let ids = app.store_each(&[s.clone(), statement()]).await;
    let body = format!("verb={}&limit=5", enc(s["verb"]["id"].as_str().unwrap()));
    let res = app.send(Method::POST, "/statements?method=GET", "application/x-www-form-urlencoded", body).await;
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "POST ?method=GET: {text}");
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ids_of(&got), vec![ids[0].clone()]);
}

on_both_backends!(last_modified_on_a_page_is_its_latest_stored);
async fn last_modified_on_a_page_is_its_latest_stored(app: TestApp) {
    let ids = app.store_each(&[statement(), statement()]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let last = app.store(&statement()).await.remove(0);
    let latest = stored_of(&app.statement(&last).await);
    let (status, headers, _) = get(&app, "").await;
    assert_eq!(status, StatusCode::OK);
    let modified = last_modified(&headers);
    assert_eq!(modified.timestamp(), latest.timestamp(), "{modified}");
    // A page of older statements only.
    let (_, headers, _) =
        get(&app, &format!("until={}", enc(app.statement(&ids[1]).await["stored"].as_str().unwrap()))).await;
    let modified = last_modified(&headers);
    assert!(modified.timestamp() < latest.timestamp(), "{modified}");
}
