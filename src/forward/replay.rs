//! Replay: the routes of one target evaluated again over statements stored
//! in a time range, enqueuing new rows (a replay's rows never collide with
//! the first delivery's; the target's idempotency makes the resend safe).
//! Filters narrow the statements replayed; a dry run counts the rows it
//! would write and writes none.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, bail};
use chrono::Utc;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde_json::Value;

use super::config::ForwardingConfig;
use super::router::{Router, verb_iri};
use crate::store::outbox::{self, NewRow};
use crate::store::statements;
use crate::xapi::{agent, keys};

const PAGE: u32 = 500;

/// Which statements of the range are replayed: each filter set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayFilter {
    /// Verb IRIs (one of them).
    pub verbs: Vec<String>,
    /// The object activity's id.
    pub activity: Option<String>,
    /// The actor's canonical key (`xapi::agent::ifi`).
    pub agent: Option<String>,
}

impl ReplayFilter {
    /// `verbs` as given: a bare word is an ADL verb, as in routes.
    pub fn new(verbs: &[String], activity: Option<String>, agent: Option<String>) -> ReplayFilter {
        ReplayFilter { verbs: verbs.iter().map(|v| verb_iri(v)).collect(), activity, agent }
    }

    fn matches(&self, statement: &Value) -> bool {
        let verb = statement.pointer("/verb/id").and_then(Value::as_str);
        if !self.verbs.is_empty() && !verb.is_some_and(|v| self.verbs.iter().any(|w| w == v)) {
            return false;
        }
        if self.activity.as_deref().is_some_and(|a| keys::object_activity(statement) != Some(a)) {
            return false;
        }
        if self.agent.as_ref().is_some_and(|a| statement.get("actor").and_then(agent::ifi).as_ref() != Some(a)) {
            return false;
        }
        true
    }
}

/// What a replay wrote, or (a dry run) would write.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Replayed {
    /// Rows enqueued (a dry run: rows it would enqueue).
    pub rows: u64,
    pub dry_run: bool,
    /// Statements of the range the filters kept.
    pub statements: u64,
    /// Rows by the route that took their statement (`route N`, `all`, `voiding`).
    pub by_route: BTreeMap<String, u64>,
    /// Rows by operation (`complete`, `catalog`, …).
    pub by_op: BTreeMap<&'static str, u64>,
}

/// Enqueues `target`'s rows for the statements stored in `[since_us,
/// until_us]` that `filter` keeps; with `dry_run`, only counts them.
pub async fn replay(
    db: &DatabaseConnection,
    config: &ForwardingConfig,
    target: &str,
    (since_us, until_us): (i64, i64),
    filter: &ReplayFilter,
    dry_run: bool,
) -> anyhow::Result<Replayed> {
    let Some(t) = config.targets.iter().find(|t| t.name == target) else {
        bail!("no forwarder named '{target}' in the configuration");
    };
    let router = Router::new(&ForwardingConfig { targets: vec![t.clone()] });
    let run = Utc::now().timestamp_micros();
    let mut after = 0;
    let mut seen_keys = HashSet::new();
    let mut replayed = Replayed { dry_run, ..Replayed::default() };
    loop {
        let page = statements::stored_between(db, since_us, until_us, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        let parsed: Vec<(i64, &str, Value)> = page
            .iter()
            .map(|(seq, id, body)| Ok((*seq, id.as_str(), serde_json::from_str(body)?)))
            .collect::<anyhow::Result<_>>()
            .context("a stored statement is not JSON")?;
        let mut rows = Vec::new();
        for (seq, id, statement) in parsed.iter().filter(|(_, _, s)| filter.matches(s)) {
            replayed.statements += 1;
            // A row unique by its key (a catalog entry) is written once per
            // replay (the outbox ignores the others): count it once too.
            let mut planned = router.plan(statement);
            planned.retain(|p| p.dedupe_key.as_ref().is_none_or(|k| seen_keys.insert(k.clone())));
            if !planned.is_empty() {
                *replayed.by_route.entry(router.route_label(target, statement)).or_default() += planned.len() as u64;
            }
            for planned in planned {
                *replayed.by_op.entry(planned.op.as_str()).or_default() += 1;
                rows.push(NewRow {
                    target: planned.target,
                    op: planned.op.as_str(),
                    statement_seq: *seq,
                    statement_id: id,
                    order_key: planned.order_key,
                    dedupe_key: planned.dedupe_key,
                    replay: Some(run),
                });
            }
        }
        if !dry_run {
            outbox::enqueue(db, &rows, Utc::now().timestamp_micros()).await?;
        }
        replayed.rows += rows.len() as u64;
    }
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn statement(verb: &str, activity: &str, mbox: &str) -> Value {
        json!({"actor": {"mbox": mbox}, "verb": {"id": verb}, "object": {"id": activity}})
    }

    #[test]
    fn each_filter_given_must_match() {
        let completed = "http://adlnet.gov/expapi/verbs/completed";
        let s = statement(completed, "https://lms.example.com/c/1", "mailto:Ann@Example.com");
        assert!(ReplayFilter::default().matches(&s), "no filter keeps everything");
        assert!(ReplayFilter::new(&["completed".into()], None, None).matches(&s), "a bare word is the ADL verb");
        assert!(!ReplayFilter::new(&["passed".into()], None, None).matches(&s));
        let activity = |a: &str| ReplayFilter::new(&[], Some(a.into()), None);
        assert!(activity("https://lms.example.com/c/1").matches(&s));
        assert!(!activity("https://lms.example.com/c").matches(&s), "the whole IRI, not a prefix");
        let agent = |a: &str| ReplayFilter::new(&[], None, Some(a.into()));
        assert!(agent("mbox:mailto:ann@example.com").matches(&s), "the actor's canonical key");
        assert!(!agent("mbox:mailto:bo@example.com").matches(&s));
        let both = ReplayFilter::new(&["completed".into()], None, Some("mbox:mailto:bo@example.com".into()));
        assert!(!both.matches(&s), "every filter set must match");
    }
}
