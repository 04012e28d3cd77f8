//! Routes, compiled once: which targets a statement goes to, and as what
//! operation. Runs inside the writer's transaction for every stored
//! statement, so it does no I/O and little allocation.

use std::collections::HashSet;

use serde_json::Value;

use super::config::{ForwardingConfig, Kind, RouteConfig};
use crate::xapi::agent;

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

    /// Whether the routes of any target select `statement` (as stored).
    pub fn selects(&self, statement: &Value) -> bool {
        self.targets.iter().any(|t| t.routes.is_empty() || t.routes.iter().any(|r| r.matches(statement)))
    }

    /// The outbox rows `statement` (as stored) calls for.
    pub fn plan<'a>(&'a self, statement: &Value) -> Vec<Planned<'a>> {
        let mut out = Vec::new();
        let mut key = None;
        for target in &self.targets {
            // A voiding statement's object is a StatementRef, which routes
            // about activities never match: the target decides at delivery
            // whether the voided statement was one it was sent.
            if target.revokes && is_voiding(statement) {
                let key: &str = key.get_or_insert_with(|| order_key(statement));
                out.push(Planned { target: &target.name, op: Op::Revoke, order_key: key.to_owned(), dedupe_key: None });
                continue;
            }
            let routed = target.routes.is_empty() || target.routes.iter().any(|r| r.matches(statement));
            if routed {
                let key: &str = key.get_or_insert_with(|| order_key(statement));
                plan_for(target, statement, key, &mut out);
            }
        }
        out
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

impl Route {
    fn matches(&self, s: &Value) -> bool {
        let str_at = |pointer: &str| s.pointer(pointer).and_then(Value::as_str);
        if !self.verbs.is_empty() && !str_at("/verb/id").is_some_and(|v| self.verbs.contains(v)) {
            return false;
        }
        let activity = object_activity(s);
        if !self.activity_types.is_empty()
            && !activity.and(str_at("/object/definition/type")).is_some_and(|t| self.activity_types.contains(t))
        {
            return false;
        }
        if !self.activity_prefixes.is_empty()
            && !activity.is_some_and(|a| self.activity_prefixes.iter().any(|p| a.starts_with(p.as_str())))
        {
            return false;
        }
        let credential = str_at("/authority/account/name");
        !credential.is_some_and(|c| self.exclude_credentials.contains(c))
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

fn object_activity(statement: &Value) -> Option<&str> {
    let is_activity =
        matches!(statement.pointer("/object/objectType").and_then(Value::as_str), None | Some("Activity"));
    statement.pointer("/object/id").and_then(Value::as_str).filter(|_| is_activity)
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
