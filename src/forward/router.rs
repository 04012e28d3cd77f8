//! Routes, compiled once: which targets a statement goes to, and as what
//! operation. Runs inside the writer's transaction for every stored
//! statement, so it does no I/O and little allocation.

use std::collections::HashSet;

use serde_json::Value;

use super::config::{ForwardingConfig, Kind, RouteConfig};
use crate::xapi::agent;
use crate::xapi::keys::object_activity;

const ADL_VERBS: &str = "http://adlnet.gov/expapi/verbs/";

/// What a target is asked to do for one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Deliver the statement itself (another LRS, a webhook).
    Statement,
    /// The learner completed / passed / failed the activity.
    Complete,
    Pass,
    Fail,
    /// Make the statement's activity known to the platform's catalog (once
    /// per activity).
    Catalog,
    /// The learner launched / registered for / initialized the activity:
    /// enroll them (once per learner and activity).
    Enroll,
    /// The learner progressed (a cmi5 progress extension says how far).
    Progress,
    /// A voiding statement: undo what the voided statement did, if it was
    /// forwarded to this target.
    Revoke,
}

impl Op {
    const ALL: [Op; 8] =
        [Op::Statement, Op::Complete, Op::Pass, Op::Fail, Op::Catalog, Op::Enroll, Op::Progress, Op::Revoke];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Statement => "statement",
            Op::Complete => "complete",
            Op::Pass => "pass",
            Op::Fail => "fail",
            Op::Catalog => "catalog",
            Op::Enroll => "enroll",
            Op::Progress => "progress",
            Op::Revoke => "revoke",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == s)
    }

    /// The outcome operation an ADL verb stands for.
    fn of_verb(verb: &str) -> Option<Op> {
        match verb.strip_prefix(ADL_VERBS)? {
            "completed" => Some(Op::Complete),
            "passed" => Some(Op::Pass),
            "failed" => Some(Op::Fail),
            _ => None,
        }
    }

    /// How far along a learner an operation puts them: a status target is
    /// never sent a lower state after a higher one (`dispatch` coalesces).
    pub fn rank(self) -> u8 {
        match self {
            Op::Enroll => 1,
            Op::Progress => 2,
            Op::Complete | Op::Pass | Op::Fail => 3,
            Op::Statement | Op::Catalog | Op::Revoke => 0,
        }
    }
}

/// ADL verbs that start an attempt: a platform that enrolls does it then.
const ENROLL_VERBS: [&str; 3] = ["launched", "registered", "initialized"];

/// One outbox row to write for a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned<'a> {
    pub target: &'a str,
    pub op: Op,
    /// Rows with the same order key are delivered in order.
    pub order_key: String,
    /// Set when the row is unique by something other than its statement
    /// (a catalog entry: one per activity).
    pub dedupe_key: Option<String>,
}

struct Route {
    verbs: HashSet<String>,
    activity_types: HashSet<String>,
    activity_prefixes: Vec<String>,
    exclude_credentials: HashSet<String>,
}

struct RoutedTarget {
    name: String,
    kind: Kind,
    enrolls: bool,
    revokes: bool,
    routes: Vec<Route>,
}

/// Every enabled target's routes.
#[derive(Default)]
pub struct Router {
    targets: Vec<RoutedTarget>,
}

impl Router {
    /// Every enabled target's routes (a replay's: rows for stream targets too).
    pub fn new(config: &ForwardingConfig) -> Router {
        Router::of(config, |_| true)
    }

    /// The routes the writer plans rows with: a stream target takes its
    /// statements through its cursor, not rows.
    pub fn for_rows(config: &ForwardingConfig) -> Router {
        Router::of(config, |t| !t.kind.streams())
    }

    fn of(config: &ForwardingConfig, keep: impl Fn(&super::config::TargetConfig) -> bool) -> Router {
        let targets = config
            .targets
            .iter()
            .filter(|t| t.enabled && keep(t))
            .map(|t| RoutedTarget {
                name: t.name.clone(),
                kind: t.kind.kind(),
                enrolls: t.kind.enrolls(),
                revokes: t.kind.revokes(),
                routes: t.routes.iter().map(compile).collect(),
            })
            .collect();
        Router { targets }
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Whether every statement goes to some target, whatever it says (no
    /// target has routes): then nothing needs to be parsed to know.
    pub fn takes_everything(&self) -> bool {
        self.targets.iter().any(|t| t.routes.is_empty())
    }

    /// Whether the routes of any target select the statement stored as
    /// `text`; one that cannot be read is selected (the target will say).
    pub fn selects(&self, text: &str) -> bool {
        let Ok(s) = serde_json::from_str::<view::Statement<'_>>(text) else { return true };
        let (object_type, id) = match &s.object {
            Some(o) => (o.object_type.as_deref(), o.id.as_deref()),
            None => (None, None),
        };
        let fields = RouteFields {
            verb: s.verb.as_ref().and_then(|v| v.id.as_deref()),
            activity: id.filter(|_| matches!(object_type, None | Some("Activity"))),
            activity_type: s.object.as_ref().and_then(|o| o.definition.as_ref()).and_then(|d| d.kind.as_deref()),
            credential: s.authority.as_ref().and_then(|a| a.account.as_ref()).and_then(|a| a.name.as_deref()),
        };
        self.targets.iter().any(|t| t.routes.is_empty() || t.routes.iter().any(|r| r.matches(&fields)))
    }

    /// The outbox rows `statement` (as stored) calls for.
    pub fn plan<'a>(&'a self, statement: &Value) -> Vec<Planned<'a>> {
        let mut out = Vec::new();
        let mut key = None;
        // The statement's fields are the same for every target: read once.
        let fields = RouteFields::of(statement);
        for target in &self.targets {
            let Some(taken) = target.taken_by(statement, &fields) else { continue };
            let key: &str = key.get_or_insert_with(|| order_key(statement));
            match taken {
                Taken::Voiding => out.push(Planned {
                    target: &target.name,
                    op: Op::Revoke,
                    order_key: key.to_owned(),
                    dedupe_key: None,
                }),
                Taken::All | Taken::Route(_) => plan_for(target, statement, key, &mut out),
            }
        }
        out
    }

    /// Which of `target`'s routes took `statement` (one `plan` gave rows
    /// for): `route N` (the first that matches, from 1), `all` for a target
    /// without routes, `voiding` for a voiding statement (routes skipped).
    pub fn route_label(&self, target: &str, statement: &Value) -> String {
        let Some(t) = self.targets.iter().find(|t| t.name == target) else { return "none".into() };
        match t.taken_by(statement, &RouteFields::of(statement)) {
            Some(Taken::Voiding) => "voiding".into(),
            Some(Taken::All) => "all".into(),
            Some(Taken::Route(i)) => format!("route {}", i + 1),
            None => "none".into(),
        }
    }
}

/// How a target takes a statement (`RoutedTarget::taken_by`).
enum Taken {
    /// A voiding statement, for a target that revokes: its object is a
    /// StatementRef, which routes about activities never match; the target
    /// decides at delivery whether the voided statement was one it was sent.
    Voiding,
    /// The target has no routes.
    All,
    /// By its route of this index, the first that matches.
    Route(usize),
}

impl RoutedTarget {
    fn taken_by(&self, statement: &Value, fields: &RouteFields<'_>) -> Option<Taken> {
        if self.revokes && is_voiding(statement) {
            Some(Taken::Voiding)
        } else if self.routes.is_empty() {
            Some(Taken::All)
        } else {
            self.routes.iter().position(|r| r.matches(fields)).map(Taken::Route)
        }
    }
}

fn compile(route: &RouteConfig) -> Route {
    Route {
        verbs: route.verbs.iter().map(|v| verb_iri(v)).collect(),
        activity_types: route.activity_types.iter().cloned().collect(),
        activity_prefixes: route.activity_prefixes.clone(),
        exclude_credentials: route.exclude_credentials.iter().cloned().collect(),
    }
}

/// A bare word stands for the ADL verb of that name.
pub fn verb_iri(verb: &str) -> String {
    if verb.contains(':') { verb.to_owned() } else { format!("{ADL_VERBS}{verb}") }
}

/// What routes look at in a statement.
struct RouteFields<'a> {
    verb: Option<&'a str>,
    /// The object's id, when the object is an activity.
    activity: Option<&'a str>,
    activity_type: Option<&'a str>,
    credential: Option<&'a str>,
}

impl<'a> RouteFields<'a> {
    fn of(s: &'a Value) -> RouteFields<'a> {
        let str_at = |pointer: &str| s.pointer(pointer).and_then(Value::as_str);
        RouteFields {
            verb: str_at("/verb/id"),
            activity: object_activity(s),
            activity_type: str_at("/object/definition/type"),
            credential: str_at("/authority/account/name"),
        }
    }
}

/// The fields routes look at, read from a statement's stored text without
/// building the whole of it (a stream target filters every statement).
mod view {
    use std::borrow::Cow;

    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Statement<'a> {
        #[serde(borrow)]
        pub verb: Option<Id<'a>>,
        #[serde(borrow)]
        pub object: Option<Object<'a>>,
        #[serde(borrow)]
        pub authority: Option<Authority<'a>>,
    }

    #[derive(Deserialize)]
    pub struct Id<'a> {
        #[serde(borrow)]
        pub id: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub struct Object<'a> {
        #[serde(rename = "objectType", borrow)]
        pub object_type: Option<Cow<'a, str>>,
        #[serde(borrow)]
        pub id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        pub definition: Option<Definition<'a>>,
    }

    #[derive(Deserialize)]
    pub struct Definition<'a> {
        #[serde(rename = "type", borrow)]
        pub kind: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub struct Authority<'a> {
        #[serde(borrow)]
        pub account: Option<Account<'a>>,
    }

    #[derive(Deserialize)]
    pub struct Account<'a> {
        #[serde(borrow)]
        pub name: Option<Cow<'a, str>>,
    }
}

impl Route {
    fn matches(&self, f: &RouteFields<'_>) -> bool {
        if !self.verbs.is_empty() && !f.verb.is_some_and(|v| self.verbs.contains(v)) {
            return false;
        }
        if !self.activity_types.is_empty()
            && !f.activity.and(f.activity_type).is_some_and(|t| self.activity_types.contains(t))
        {
            return false;
        }
        if !self.activity_prefixes.is_empty()
            && !f.activity.is_some_and(|a| self.activity_prefixes.iter().any(|p| a.starts_with(p.as_str())))
        {
            return false;
        }
        !f.credential.is_some_and(|c| self.exclude_credentials.contains(c))
    }
}

/// The rows a target's kind needs for a statement its routes selected.
fn plan_for<'a>(target: &'a RoutedTarget, statement: &Value, order_key: &str, out: &mut Vec<Planned<'a>>) {
    let row = |op, dedupe_key| Planned { target: &target.name, op, order_key: order_key.to_owned(), dedupe_key };
    match target.kind {
        Kind::XapiLrs | Kind::Webhook => out.push(row(Op::Statement, None)),
        // Bob learns of a course from its catalog, then of progress on it;
        // other verbs it would ignore (204) are not sent at all.
        Kind::Hibob => {
            let Some(op) = statement.pointer("/verb/id").and_then(Value::as_str).and_then(Op::of_verb) else {
                return;
            };
            if let Some(activity) = object_activity(statement) {
                out.push(row(Op::Catalog, Some(format!("catalog:{activity}"))));
                out.push(row(op, None));
            }
        }
        // Status platforms: where the learner is on a course.
        Kind::Learnworlds | Kind::Docebo | Kind::Learning360 | Kind::Mobieus => {
            let Some(word) = object_activity(statement)
                .and(statement.pointer("/verb/id").and_then(Value::as_str))
                .and_then(|v| v.strip_prefix(ADL_VERBS))
            else {
                return;
            };
            let op = match word {
                "completed" => Op::Complete,
                "passed" => Op::Pass,
                // LearnWorlds has no way to record a failure.
                "failed" if target.kind != Kind::Learnworlds => Op::Fail,
                "progressed" if matches!(target.kind, Kind::Docebo | Kind::Learning360) => Op::Progress,
                w if target.enrolls && ENROLL_VERBS.contains(&w) => {
                    // Once per learner and activity: a second launch changes nothing.
                    out.push(row(Op::Enroll, Some(format!("enroll:{order_key}"))));
                    return;
                }
                _ => return,
            };
            out.push(row(op, None));
        }
    }
}

fn is_voiding(statement: &Value) -> bool {
    statement.pointer("/verb/id").and_then(Value::as_str) == Some("http://adlnet.gov/expapi/verbs/voided")
}

/// The learner and the activity: a target receives what concerns one learner
/// on one activity in the order it was stored.
pub fn order_key(statement: &Value) -> String {
    let actor = statement.get("actor").and_then(agent::ifi).unwrap_or_default();
    let activity = statement.pointer("/object/id").and_then(Value::as_str).unwrap_or_default();
    format!("{actor} {activity}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn router(toml: &str) -> Router {
        Router::new(&ForwardingConfig::parse(toml).unwrap())
    }

    fn statement(verb: &str, object: Value) -> Value {
        json!({"actor": {"mbox": "mailto:Ann@Example.com"}, "verb": {"id": verb_iri(verb)}, "object": object,
               "authority": {"objectType": "Agent", "account": {"homePage": "https://lrs", "name": "bridge"}}})
    }

    #[test]
    fn routes_filter_by_verb_type_prefix_and_credential() {
        let r = router(
            r#"
            [[forwarder]]
            name = "all"
            kind = "webhook"
            url = "http://x"
            [[forwarder]]
            name = "courses"
            kind = "xapi_lrs"
            url = "http://y"
            [[forwarder.route]]
            verbs = ["completed", "passed"]
            activity_types = ["http://adlnet.gov/expapi/activities/course"]
            [[forwarder.route]]
            verbs = ["failed"]
            activity_prefixes = ["https://lms.example.com/"]
            exclude_credentials = ["bridge"]
            [[forwarder]]
            name = "off"
            kind = "webhook"
            url = "http://z"
            enabled = false
            "#,
        );
        let course = json!({"id": "https://lms.example.com/c1",
                            "definition": {"type": "http://adlnet.gov/expapi/activities/course"}});
        let targets = |s: &Value| r.plan(s).into_iter().map(|p| p.target).collect::<Vec<_>>();
        assert_eq!(targets(&statement("completed", course.clone())), ["all", "courses"]);
        assert_eq!(targets(&statement("experienced", course.clone())), ["all"]);
        assert_eq!(targets(&statement("passed", json!({"id": "https://lms.example.com/c1"}))), ["all"]);
        let mut failed = statement("failed", json!({"id": "https://lms.example.com/c2"}));
        assert_eq!(targets(&failed), ["all"], "the bridge's own statements stay here");
        failed["authority"]["account"]["name"] = json!("content");
        assert_eq!(targets(&failed), ["all", "courses"]);
        let p = r.plan(&failed).remove(0);
        assert_eq!(
            (p.op, p.order_key.as_str()),
            (Op::Statement, "mbox:mailto:ann@example.com https://lms.example.com/c2")
        );
    }

    #[test]
    fn a_route_label_names_the_first_route_that_took_the_statement() {
        let r = router(
            r#"
            [[forwarder]]
            name = "all"
            kind = "webhook"
            url = "http://x"
            [[forwarder]]
            name = "two"
            kind = "xapi_lrs"
            url = "http://y"
            [[forwarder.route]]
            verbs = ["completed"]
            [[forwarder.route]]
            verbs = ["passed", "completed"]
            "#,
        );
        let activity = json!({"id": "https://lms.example.com/c"});
        assert_eq!(r.route_label("two", &statement("completed", activity.clone())), "route 1");
        assert_eq!(r.route_label("two", &statement("passed", activity.clone())), "route 2");
        assert_eq!(r.route_label("all", &statement("passed", activity)), "all");
    }

    #[test]
    fn a_stream_target_reads_the_same_routes_from_the_stored_text() {
        let courses = router(
            r#"
            [[forwarder]]
            name = "courses"
            kind = "xapi_lrs"
            url = "http://y"
            [[forwarder.route]]
            verbs = ["completed"]
            activity_types = ["http://adlnet.gov/expapi/activities/course"]
            [[forwarder.route]]
            verbs = ["failed"]
            activity_prefixes = ["https://lms.example.com/"]
            exclude_credentials = ["bridge"]
            "#,
        );
        let course = json!({"id": "https://lms.example.com/c1", "objectType": "Activity",
                            "definition": {"type": "http://adlnet.gov/expapi/activities/course"}});
        let sub = json!({"objectType": "SubStatement", "actor": {"mbox": "mailto:b@example.com"},
                         "verb": {"id": verb_iri("completed")}, "object": course.clone()});
        let mut failed = statement("failed", json!({"id": "https://lms.example.com/c2"}));
        let mut cases = vec![
            (statement("completed", course.clone()), true),
            (statement("experienced", course.clone()), false),
            (statement("completed", sub), false),
            (failed.clone(), false),
        ];
        failed["authority"]["account"]["name"] = json!("content");
        cases.push((failed, true));
        for (s, selected) in cases {
            assert_eq!(!courses.plan(&s).is_empty(), selected, "{s}");
            assert_eq!(courses.selects(&s.to_string()), selected, "{s}");
        }
        // Escapes in the text are read as what they stand for.
        let escaped = statement("completed", course).to_string().replace("/course\"", "\\/course\"");
        assert!(escaped.contains("\\/course"));
        assert!(courses.selects(&escaped));
        assert!(courses.selects("not json"), "what cannot be read goes; the target says");
    }

    #[test]
    fn status_platforms_get_outcomes_enrollments_and_revocations() {
        let r = router(
            r#"
            [[forwarder]]
            name = "lw"
            kind = "learnworlds"
            school_url = "https://school"
            client_id = { env = "X" }
            client_secret = { env = "Y" }
            enroll_on_launch = true
            reset_on_void = true
            [[forwarder]]
            name = "docebo"
            kind = "docebo"
            url = "https://d"
            client_id = { env = "X" }
            client_secret = { env = "Y" }
            [[forwarder]]
            name = "m"
            kind = "mobieus"
            url = "https://m"
            api_key = { env = "K" }
            "#,
        );
        let course = json!({"id": "https://lms/c1"});
        let ops = |s: &Value| r.plan(s).into_iter().map(|p| (p.target, p.op)).collect::<Vec<_>>();
        assert_eq!(
            ops(&statement("completed", course.clone())),
            [("lw", Op::Complete), ("docebo", Op::Complete), ("m", Op::Complete)]
        );
        assert_eq!(ops(&statement("failed", course.clone())), [("docebo", Op::Fail), ("m", Op::Fail)]);
        assert_eq!(ops(&statement("progressed", course.clone())), [("docebo", Op::Progress)]);
        let launched = statement("launched", course.clone());
        assert_eq!(ops(&launched), [("lw", Op::Enroll), ("m", Op::Enroll)]);
        let enroll = r.plan(&launched).remove(0);
        assert_eq!(enroll.dedupe_key.as_deref(), Some("enroll:mbox:mailto:ann@example.com https://lms/c1"));
        let voiding =
            statement("voided", json!({"objectType": "StatementRef", "id": "0b6c9e7c-0000-4000-8000-000000000001"}));
        assert_eq!(ops(&voiding), [("lw", Op::Revoke)]);
        assert_eq!(ops(&statement("experienced", course)), []);
    }
}
