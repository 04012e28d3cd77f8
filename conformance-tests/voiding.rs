//! Voiding and StatementRefs (xAPI 1.0.3 Data 2.3.2, Communication 2.1.3
//! "Filter Conditions for StatementRefs" and 2.1.4 "Voided Statements").

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// A statement voiding `target`.
pub fn voiding(target: &str) -> Value {
    json!({
        "actor": agent(&format!("admin-{}", uuid())),
        "verb": {"id": VOIDED, "display": {"en-US": "voided"}},
        "object": {"objectType": "StatementRef", "id": target}
    })
}

/// A statement with verb `verb` whose object is a StatementRef to `target`.
fn referencing(verb: &str, target: &str) -> Value {
    json!({
        "actor": agent(&format!("referrer-{}", uuid())),
        "verb": {"id": verb, "display": {"en-US": "referenced"}},
        "object": {"objectType": "StatementRef", "id": target}
    })
}

/// A statement by `actor` with verb `verb` about `activity`.
fn st(actor: &Value, verb: &str, activity: &str) -> Value {
    json!({"actor": actor, "verb": {"id": verb}, "object": {"objectType": "Activity", "id": activity}})
}

async fn status_of(app: &TestApp, query: &str) -> StatusCode {
    app.get_statements(query).await.0
}

fn verb_q(verb: &str) -> String {
    format!("verb={}", enc(verb))
}

fn unique(kind: &str) -> String {
    format!("http://example.com/{kind}/{}", uuid())
}

/// Small pause so each request gets its own `stored`.
async fn tick() {
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
}

// ---- Voiding ----

on_both_backends!(voided_statement_is_hidden_but_fetchable_by_voided_statement_id);
async fn voided_statement_is_hidden_but_fetchable_by_voided_statement_id(app: TestApp) {
    let target = statement();
    let x = app.store(&target).await.remove(0);
    let before = app.statement(&x).await;
    let other = app.store(&statement()).await.remove(0);
    let b = app.store(&voiding(&x)).await.remove(0);

    let (status, body) = app.get_statements(&format!("statementId={x}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a voided statement is not returned by statementId: {body}");
    let (status, body) = app.get_statements(&format!("voidedStatementId={x}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, before, "the voided statement is returned unchanged");

    assert_eq!(app.ids("").await, vec![b.clone(), other], "voided statements are not in query results");
    let actor_q = agent_q(&target["actor"]);
    assert_eq!(app.ids(&actor_q).await, vec![b.clone()], "only the voiding statement (by the StatementRef rule)");
    assert!(!app.ids(&verb_q(target["verb"]["id"].as_str().unwrap())).await.contains(&x));
    assert!(!app.ids(&format!("activity={}", enc(target["object"]["id"].as_str().unwrap()))).await.contains(&x));
}

on_both_backends!(voided_statement_id_accepts_format);
async fn voided_statement_id_accepts_format(app: TestApp) {
    let x = app.store(&statement()).await.remove(0);
    app.store(&voiding(&x)).await;
    let (status, body) = app.get_statements(&format!("voidedStatementId={x}&format=ids")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], json!(x));
    assert!(body["actor"].get("name").is_none(), "format=ids applied: {body}");
    let (status, _) = app.get_statements(&format!("voidedStatementId={x}&attachments=false")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get_statements(&format!("voidedStatementId={x}&limit=1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

on_both_backends!(voided_statement_id_of_a_statement_not_voided_is_404);
async fn voided_statement_id_of_a_statement_not_voided_is_404(app: TestApp) {
    let x = app.store(&statement()).await.remove(0);
    let (status, body) = app.get_statements(&format!("voidedStatementId={x}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["message"].is_string(), "JSON error body: {body}");
    assert_eq!(status_of(&app, &format!("voidedStatementId={}", uuid())).await, StatusCode::NOT_FOUND);
    assert_eq!(status_of(&app, &format!("statementId={x}")).await, StatusCode::OK);
}

on_both_backends!(voiding_statement_is_returned_like_any_other);
async fn voiding_statement_is_returned_like_any_other(app: TestApp) {
    let x = app.store(&statement()).await.remove(0);
    let v = voiding(&x);
    let b = app.store(&v).await.remove(0);
    let got = app.statement(&b).await;
    assert_eq!(got["verb"], v["verb"]);
    assert_eq!(got["object"], v["object"]);
    assert_eq!(app.ids("").await, vec![b.clone()]);
    assert_eq!(app.ids(&verb_q(VOIDED)).await, vec![b.clone()]);
    assert_eq!(app.ids(&agent_q(&v["actor"])).await, vec![b.clone()]);
    assert_eq!(status_of(&app, &format!("voidedStatementId={b}")).await, StatusCode::NOT_FOUND);
}

on_both_backends!(voiding_by_put_in_a_batch_and_by_post);
async fn voiding_by_put_in_a_batch_and_by_post(app: TestApp) {
    let ids = app.store(&json!([statement(), statement(), statement()])).await;
    // PUT
    let vid = uuid();
    assert_eq!(app.put_statement(&vid, &voiding(&ids[0])).await.status(), StatusCode::NO_CONTENT);
    // A batch voiding a statement stored in the same batch.
    let y = uuid();
    let mut target = statement();
    target["id"] = json!(y);
    let batch_ids = app.store(&json!([target, voiding(&y), voiding(&ids[1])])).await;
    for voided in [&ids[0], &ids[1], &y] {
        assert_eq!(status_of(&app, &format!("statementId={voided}")).await, StatusCode::NOT_FOUND, "{voided}");
        assert_eq!(status_of(&app, &format!("voidedStatementId={voided}")).await, StatusCode::OK, "{voided}");
    }
    assert_eq!(status_of(&app, &format!("statementId={}", ids[2])).await, StatusCode::OK);
    let mut expected = vec![batch_ids[2].clone(), batch_ids[1].clone(), vid, ids[2].clone()];
    expected.sort();
    let mut got = app.ids("").await;
    got.sort();
    assert_eq!(got, expected);
}

on_both_backends!(voiding_a_missing_statement_is_accepted_and_applies_when_it_arrives);
async fn voiding_a_missing_statement_is_accepted_and_applies_when_it_arrives(app: TestApp) {
    let t = uuid();
    let res = app.post_statements(&voiding(&t)).await;
    assert_eq!(res.status(), StatusCode::OK, "voiding an unknown statement is not rejected");
    let b: Vec<String> = res.json().await.unwrap();
    assert_eq!(app.ids("").await, b);

    let mut target = statement();
    target["id"] = json!(t);
    let res = app.put_statement(&t, &target).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(status_of(&app, &format!("statementId={t}")).await, StatusCode::NOT_FOUND, "treated as voided");
    let (status, body) = app.get_statements(&format!("voidedStatementId={t}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], json!(t));
    assert_eq!(app.ids("").await, b, "the late target is not listed");
    assert_eq!(app.ids(&agent_q(&target["actor"])).await, b);
}

on_both_backends!(voiding_a_voiding_statement_has_no_effect);
async fn voiding_a_voiding_statement_has_no_effect(app: TestApp) {
    let x = app.store(&statement()).await.remove(0);
    let b = app.store(&voiding(&x)).await.remove(0);
    let res = app.post_statements(&voiding(&b)).await;
    assert!(
        res.status() == StatusCode::OK
            || res.status() == StatusCode::BAD_REQUEST
            || res.status() == StatusCode::FORBIDDEN,
        "{}",
        res.status()
    );
    let first = app.statement(&b).await;
    assert_eq!(first["object"]["id"], json!(x), "the first voiding statement is still retrievable");
    assert_eq!(status_of(&app, &format!("voidedStatementId={b}")).await, StatusCode::NOT_FOUND);
    assert_eq!(status_of(&app, &format!("statementId={x}")).await, StatusCode::NOT_FOUND, "x stays voided");
    assert!(app.ids("").await.contains(&b));
}

on_both_backends!(restating_a_voided_statement_does_not_unvoid_it);
async fn restating_a_voided_statement_does_not_unvoid_it(app: TestApp) {
    let id = uuid();
    let mut s = statement();
    s["id"] = json!(id);
    app.store(&s).await;
    app.store(&voiding(&id)).await;
    let res = app.post_statements(&s).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(status_of(&app, &format!("statementId={id}")).await, StatusCode::NOT_FOUND);
    assert_eq!(status_of(&app, &format!("voidedStatementId={id}")).await, StatusCode::OK);
    let mut changed = s.clone();
    changed["verb"]["id"] = json!("http://example.com/verbs/changed");
    assert_eq!(app.put_statement(&id, &changed).await.status(), StatusCode::CONFLICT);
}

// ---- The StatementRef filter rule ----

on_both_backends!(statement_ref_filter_follows_references_but_not_voided_targets);
async fn statement_ref_filter_follows_references_but_not_voided_targets(app: TestApp) {
    let (v, v2) = (unique("verbs"), unique("verbs"));
    let a_actor = agent(&uuid());
    let activity = unique("activities");
    // A (verb V), voided by B; C (verb V2) references A.
    let a = app.store(&st(&a_actor, &v, &activity)).await.remove(0);
    tick().await;
    let b = app.store(&voiding(&a)).await.remove(0);
    tick().await;
    let c = app.store(&referencing(&v2, &a)).await.remove(0);

    assert_eq!(app.ids(&verb_q(&v)).await, vec![c.clone(), b.clone()], "verb=V: C and B, not the voided A");
    assert_eq!(app.ids(&verb_q(&v2)).await, vec![c.clone()]);
    assert_eq!(app.ids(&verb_q(VOIDED)).await, vec![b.clone()]);
    assert_eq!(app.ids(&agent_q(&a_actor)).await, vec![c.clone(), b.clone()], "agent follows the reference");
    assert_eq!(app.ids(&format!("activity={}", enc(&activity))).await, vec![c.clone(), b.clone()]);
    assert_eq!(app.ids(&format!("{}&{}", verb_q(&v2), agent_q(&a_actor))).await, vec![c.clone()]);
    assert_eq!(app.ids(&format!("{}&ascending=true", verb_q(&v))).await, vec![b, c]);
}

on_both_backends!(statement_ref_filter_is_recursive);
async fn statement_ref_filter_is_recursive(app: TestApp) {
    let (v, v2, v3) = (unique("verbs"), unique("verbs"), unique("verbs"));
    let a_actor = agent(&uuid());
    let a = app.store(&st(&a_actor, &v, &unique("activities"))).await.remove(0);
    tick().await;
    let b = app.store(&voiding(&a)).await.remove(0);
    tick().await;
    let c = app.store(&referencing(&v2, &a)).await.remove(0);
    tick().await;
    let d = app.store(&referencing(&v3, &c)).await.remove(0);
    tick().await;
    let e = app.store(&referencing(&v3, &d)).await.remove(0);

    assert_eq!(app.ids(&verb_q(&v)).await, vec![e.clone(), d.clone(), c.clone(), b.clone()]);
    assert_eq!(app.ids(&agent_q(&a_actor)).await, vec![e.clone(), d.clone(), c.clone(), b]);
    assert_eq!(app.ids(&verb_q(&v2)).await, vec![e.clone(), d.clone(), c]);
    assert_eq!(app.ids(&verb_q(&v3)).await, vec![e, d]);
}

on_both_backends!(statement_ref_filter_applies_to_statements_stored_before_their_target);
async fn statement_ref_filter_applies_to_statements_stored_before_their_target(app: TestApp) {
    let (v2, v3) = (unique("verbs"), unique("verbs"));
    let t = uuid();
    let c = app.store(&referencing(&v2, &t)).await.remove(0);
    tick().await;
    let d = app.store(&referencing(&v2, &c)).await.remove(0);
    tick().await;
    assert_eq!(app.ids(&verb_q(&v3)).await, Vec::<String>::new());
    let t_actor = agent(&uuid());
    let mut target = st(&t_actor, &v3, &unique("activities"));
    target["id"] = json!(t);
    app.store(&target).await;
    assert_eq!(app.ids(&verb_q(&v3)).await, vec![t.clone(), d.clone(), c.clone()]);
    assert_eq!(app.ids(&agent_q(&t_actor)).await, vec![t, d, c]);
}

on_both_backends!(time_and_limit_apply_to_the_referencing_statement);
async fn time_and_limit_apply_to_the_referencing_statement(app: TestApp) {
    let (v, v2) = (unique("verbs"), unique("verbs"));
    let a = app.store(&st(&agent(&uuid()), &v, &unique("activities"))).await.remove(0);
    tick().await;
    let a_stored = app.statement(&a).await["stored"].as_str().unwrap().to_owned();
    let c = app.store(&referencing(&v2, &a)).await.remove(0);
    tick().await;
    let c_stored = app.statement(&c).await["stored"].as_str().unwrap().to_owned();
    let d = app.store(&referencing(&v2, &a)).await.remove(0);

    assert_eq!(app.ids(&verb_q(&v)).await, vec![d.clone(), c.clone(), a.clone()]);
    assert_eq!(app.ids(&format!("{}&since={}", verb_q(&v), enc(&a_stored))).await, vec![d.clone(), c.clone()]);
    assert_eq!(app.ids(&format!("{}&until={}", verb_q(&v), enc(&c_stored))).await, vec![c.clone(), a.clone()]);
    assert_eq!(app.ids(&format!("{}&limit=1", verb_q(&v))).await, vec![d.clone()]);
    assert_eq!(app.ids(&format!("{}&limit=2&ascending=true", verb_q(&v))).await, vec![a, c]);
}

on_both_backends!(context_statement_refs_do_not_affect_filters);
async fn context_statement_refs_do_not_affect_filters(app: TestApp) {
    let v = unique("verbs");
    let a_actor = agent(&uuid());
    let a = app.store(&st(&a_actor, &v, &unique("activities"))).await.remove(0);
    let mut e = statement();
    e["context"] = json!({"statement": {"objectType": "StatementRef", "id": a}});
    let e = app.store(&e).await.remove(0);
    assert_eq!(app.ids(&verb_q(&v)).await, vec![a.clone()]);
    assert_eq!(app.ids(&agent_q(&a_actor)).await, vec![a.clone()]);
    assert!(app.ids("").await.contains(&e));
}

on_both_backends!(statement_ref_rule_does_not_apply_to_single_statement_gets);
async fn statement_ref_rule_does_not_apply_to_single_statement_gets(app: TestApp) {
    let a = app.store(&statement()).await.remove(0);
    let c = app.store(&referencing(&unique("verbs"), &a)).await.remove(0);
    let got = app.statement(&c).await;
    assert_eq!(got["object"], json!({"objectType": "StatementRef", "id": a}), "the StatementRef is returned as sent");
    assert_eq!(app.statement(&a).await["id"], json!(a));
}

on_both_backends!(statement_refs_inside_substatements_are_not_followed_for_voiding);
async fn statement_refs_inside_substatements_are_not_followed_for_voiding(app: TestApp) {
    let x = app.store(&statement()).await.remove(0);
    // A SubStatement with the voided verb and a StatementRef does not void anything.
    let mut s = statement();
    s["object"] = json!({"objectType": "SubStatement", "actor": agent("sub"),
                         "verb": {"id": VOIDED}, "object": {"objectType": "StatementRef", "id": x}});
    app.store(&s).await;
    assert_eq!(status_of(&app, &format!("statementId={x}")).await, StatusCode::OK);
    // Nor does a context StatementRef on a voiding-verb statement's context.
    let other = app.store(&statement()).await.remove(0);
    let mut v = voiding(&uuid());
    v["context"] = json!({"statement": {"objectType": "StatementRef", "id": other}});
    app.store(&v).await;
    assert_eq!(status_of(&app, &format!("statementId={other}")).await, StatusCode::OK);
}

on_both_backends!(statement_ref_filter_applies_to_every_non_time_filter);
async fn statement_ref_filter_applies_to_every_non_time_filter(app: TestApp) {
    let registration = uuid();
    let parent = unique("parents");
    let instructor = agent(&uuid());
    let object_agent = agent(&uuid());
    let a = json!({
        "actor": agent(&uuid()),
        "verb": {"id": unique("verbs")},
        "object": object_agent,
        "context": {"registration": registration, "instructor": instructor}
    });
    let a_id = app.store(&a).await.remove(0);
    tick().await;
    let b = app.store(&referencing(&unique("verbs"), &a_id)).await.remove(0);
    tick().await;
    let mut with_parent = st(&agent(&uuid()), &unique("verbs"), &unique("activities"));
    with_parent["context"] = json!({"contextActivities": {"parent": [{"id": parent}]}});
    let p_id = app.store(&with_parent).await.remove(0);
    tick().await;
    let c = app.store(&referencing(&unique("verbs"), &p_id)).await.remove(0);

    assert_eq!(app.ids(&format!("registration={registration}")).await, vec![b.clone(), a_id.clone()]);
    assert_eq!(app.ids(&agent_q(&object_agent)).await, vec![b.clone(), a_id.clone()], "object agent");
    assert_eq!(app.ids(&agent_q(&instructor)).await, Vec::<String>::new());
    assert_eq!(app.ids(&format!("{}&related_agents=true", agent_q(&instructor))).await, vec![b.clone(), a_id.clone()]);
    assert_eq!(app.ids(&format!("activity={}", enc(&parent))).await, Vec::<String>::new());
    assert_eq!(
        app.ids(&format!("activity={}&related_activities=true", enc(&parent))).await,
        vec![c.clone(), p_id.clone()]
    );
}

on_both_backends!(voiding_statement_before_its_target_in_one_batch);
async fn voiding_statement_before_its_target_in_one_batch(app: TestApp) {
    let y = uuid();
    let mut target = statement();
    target["id"] = json!(y);
    let ids = app.store(&json!([voiding(&y), target])).await;
    assert_eq!(ids[1], y);
    assert_eq!(status_of(&app, &format!("statementId={y}")).await, StatusCode::NOT_FOUND);
    assert_eq!(status_of(&app, &format!("voidedStatementId={y}")).await, StatusCode::OK);
    assert_eq!(app.ids("").await, vec![ids[0].clone()]);
}
