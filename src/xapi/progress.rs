//! Learner progress: what one statement says about a learner's progress, and
//! how statements add up. No SQL here: the store keeps the sums
//! (`store/progress.rs`) and must add them exactly as `Tally::add` does.
//!
//! A statement counts when its actor is an identified Agent and its object an
//! Activity. It counts for (learner, object, registration) and, as a child's
//! statement, for (learner, parent, registration) of each context parent: a
//! course's row sees its modules' statements. What decides status, scores
//! and attempts comes only from statements about the activity itself (a
//! completed module does not complete its course); times, durations, the
//! number of statements and the last statement come from both.

use serde_json::Value;

use super::agent;
use super::formats::{duration_secs, parse_timestamp};
use super::keys::{hashed, object_activity};

const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
const PASSED: &str = "http://adlnet.gov/expapi/verbs/passed";
const FAILED: &str = "http://adlnet.gov/expapi/verbs/failed";
/// Verbs that begin an attempt: ADL's `attempted` (SCORM-style content) and
/// `initialized` (cmi5: an AU's session). cmi5's `launched` comes from the
/// LMS just before the AU's `initialized`, so it is not counted again.
const ATTEMPT_VERBS: &[&str] =
    &["http://adlnet.gov/expapi/verbs/attempted", "http://adlnet.gov/expapi/verbs/initialized"];

/// Which progress row a statement counts for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    /// The actor's canonical IFI (`agent::ifi`).
    pub learner: String,
    /// Lower-cased; empty for statements without one.
    pub registration: String,
    pub activity: String,
}

impl RowKey {
    /// The key as stored: each name by its id.
    pub fn id(&self) -> RowId {
        RowId {
            learner: name_id(NameKind::Learner, &self.learner),
            registration: registration_id(&self.registration),
            activity: name_id(NameKind::Activity, &self.activity),
        }
    }

    /// The names the key's ids (`id()`) stand for (not the absent registration's).
    pub fn names(&self, id: RowId) -> impl Iterator<Item = (i64, &str)> {
        [(id.learner, &self.learner), (id.registration, &self.registration), (id.activity, &self.activity)]
            .into_iter()
            .filter(|(id, _)| *id != NO_REGISTRATION)
            .map(|(id, name)| (id, name.as_str()))
    }
}

/// The registration id of statements without one: it has no name row.
pub const NO_REGISTRATION: i64 = 0;

/// A registration's id (lower-cased text; empty for none).
pub fn registration_id(text: &str) -> i64 {
    if text.is_empty() { NO_REGISTRATION } else { name_id(NameKind::Registration, text) }
}

/// Which of a row's names an id stands for. A row holds three 64-bit ids
/// instead of its names' text (an IFI, an IRI, a UUID: about 130 bytes a
/// row and as much again in each index entry); each name is stored once,
/// in `progress_name`. Ids are hashes, not counters, so that the request's
/// worker works them out and no writer has to look one up or hand one out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Learner,
    Activity,
    Registration,
}

/// The id of a name (tags unlike the filter keys' ones: `keys::hashed`).
pub fn name_id(kind: NameKind, text: &str) -> i64 {
    let tag = match kind {
        NameKind::Learner => b'L',
        NameKind::Activity => b'Y',
        NameKind::Registration => b'G',
    };
    hashed(tag, text)
}

/// A row's key as stored, in the order of the table's primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowId {
    pub learner: i64,
    pub registration: i64,
    pub activity: i64,
}

/// A point in a learner's history: the statement's timestamp (µs), then its
/// `seq` to order statements with the same timestamp.
pub type When = (i64, i64);

/// The sum of the statements counted for one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub statements: i64,
    pub completed: bool,
    pub passed: bool,
    pub failed: bool,
    pub best_score: Option<f64>,
    /// The latest score and when it was given.
    pub last_score: Option<(f64, When)>,
    pub first_us: i64,
    /// The latest statement and when it happened.
    pub last: (When, String),
    pub attempts: i64,
    pub duration_ms: i64,
}

/// What a row's statements say, as one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    NotAttempted,
    InProgress,
    Completed,
    Passed,
    Failed,
}

impl Status {
    pub const ALL: [Status; 5] =
        [Status::NotAttempted, Status::InProgress, Status::Completed, Status::Passed, Status::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotAttempted => "not_attempted",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Passed => "passed",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Passing beats failing (a learner who failed and then passed has
    /// passed), and either says more than completion.
    pub fn of(completed: bool, passed: bool, failed: bool) -> Status {
        match (passed, failed, completed) {
            (true, _, _) => Status::Passed,
            (false, true, _) => Status::Failed,
            (false, false, true) => Status::Completed,
            _ => Status::InProgress,
        }
    }
}

impl Tally {
    pub fn status(&self) -> Status {
        Status::of(self.completed, self.passed, self.failed)
    }

    /// Adds another tally of the same row (the order does not matter).
    pub fn add(&mut self, other: &Tally) {
        self.statements += other.statements;
        self.completed |= other.completed;
        self.passed |= other.passed;
        self.failed |= other.failed;
        self.best_score = match (self.best_score, other.best_score) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some((score, when)) = other.last_score
            && self.last_score.is_none_or(|(_, mine)| when > mine)
        {
            self.last_score = Some((score, when));
        }
        self.first_us = self.first_us.min(other.first_us);
        if other.last.0 > self.last.0 {
            self.last = other.last.clone();
        }
        self.attempts += other.attempts;
        self.duration_ms += other.duration_ms;
    }
}

/// What a statement will count for, worked out before it is stored (on the
/// request's worker, not the writer): its rows with the `seq` and, for a
/// statement without a timestamp, the time still to be given (`placed`).
#[derive(Debug, Clone, Default)]
pub struct Unplaced {
    rows: Vec<(RowId, Tally)>,
    /// The rows' names by id, each once.
    names: Vec<(i64, String)>,
    timestamp_us: Option<i64>,
}

impl Unplaced {
    pub fn of(statement: &Value) -> Unplaced {
        let timestamp_us = timestamp_us(statement);
        let rows = contributions_at(statement, timestamp_us, 0, 0);
        let mut names = Vec::with_capacity(rows.len() + 2);
        // A statement's rows share their learner and registration: each
        // is hashed once, each activity once.
        let Some((first, _)) = rows.first() else {
            return Unplaced { timestamp_us, ..Unplaced::default() };
        };
        let (learner, registration) =
            (name_id(NameKind::Learner, &first.learner), registration_id(&first.registration));
        names.push((learner, first.learner.clone()));
        if registration != NO_REGISTRATION {
            names.push((registration, first.registration.clone()));
        }
        let rows = rows
            .into_iter()
            .map(|(key, tally)| {
                let activity = name_id(NameKind::Activity, &key.activity);
                names.push((activity, key.activity));
                (RowId { learner, registration, activity }, tally)
            })
            .collect();
        Unplaced { rows, names, timestamp_us }
    }

    /// The rows once stored as `seq` at `stored_us`: what
    /// `contributions(statement, seq, stored_us)` gives.
    pub fn placed(&self, seq: i64, stored_us: i64) -> impl Iterator<Item = (RowId, Tally)> {
        let when = (self.timestamp_us.unwrap_or(stored_us), seq);
        self.rows.iter().map(move |(id, tally)| {
            let mut tally = tally.clone();
            tally.first_us = when.0;
            tally.last.0 = when;
            tally.last_score = tally.last_score.map(|(score, _)| (score, when));
            (*id, tally)
        })
    }

    /// The names the rows' ids stand for.
    pub fn names(&self) -> impl Iterator<Item = (i64, &str)> {
        self.names.iter().map(|(id, name)| (*id, name.as_str()))
    }
}

/// The rows `statement` (stored with `seq` and `stored_us`) counts for, and
/// what it adds to each; empty when it is not about a learner and an activity.
pub fn contributions(statement: &Value, seq: i64, stored_us: i64) -> Vec<(RowKey, Tally)> {
    contributions_at(statement, timestamp_us(statement), seq, stored_us)
}

/// The statement's own `timestamp`, in µs.
fn timestamp_us(statement: &Value) -> Option<i64> {
    statement.get("timestamp").and_then(Value::as_str).and_then(parse_timestamp).map(|t| t.timestamp_micros())
}

/// `contributions` of a statement whose `timestamp` was read already.
fn contributions_at(statement: &Value, timestamp_us: Option<i64>, seq: i64, stored_us: i64) -> Vec<(RowKey, Tally)> {
    let Some(learner) = learner(statement) else {
        return Vec::new();
    };
    let Some(activity) = object_activity(statement) else {
        return Vec::new();
    };
    let registration =
        statement.pointer("/context/registration").and_then(Value::as_str).map(str::to_lowercase).unwrap_or_default();
    let id = statement.get("id").and_then(Value::as_str).unwrap_or_default();
    let when = (timestamp_us.unwrap_or(stored_us), seq);
    let duration_ms = statement.pointer("/result/duration").and_then(Value::as_str).and_then(duration_ms).unwrap_or(0);
    let child = Tally {
        statements: 1,
        completed: false,
        passed: false,
        failed: false,
        best_score: None,
        last_score: None,
        first_us: when.0,
        last: (when, id.to_owned()),
        attempts: 0,
        duration_ms,
    };
    let mut direct = child.clone();
    let verb = statement.pointer("/verb/id").and_then(Value::as_str).unwrap_or_default();
    let result = statement.get("result");
    let flag = |name: &str| result.and_then(|r| r.get(name)).and_then(Value::as_bool);
    direct.completed = verb == COMPLETED || flag("completion") == Some(true);
    direct.passed = verb == PASSED || flag("success") == Some(true);
    direct.failed = verb == FAILED || flag("success") == Some(false);
    direct.attempts = i64::from(ATTEMPT_VERBS.contains(&verb));
    if let Some(score) = result.and_then(|r| r.get("score")).and_then(score) {
        direct.best_score = Some(score);
        direct.last_score = Some((score, when));
    }
    let row = |activity: &str| RowKey {
        learner: learner.clone(),
        activity: activity.to_owned(),
        registration: registration.clone(),
    };
    let mut out = vec![(row(activity), direct)];
    for parent in parents(statement) {
        if out.iter().all(|(k, _)| k.activity != parent) {
            out.push((row(parent), child.clone()));
        }
    }
    out
}

/// The actor's IFI, when the actor is an Agent (Groups have no progress).
fn learner(statement: &Value) -> Option<String> {
    let actor = statement.get("actor")?;
    if agent::is_group(actor) {
        return None;
    }
    agent::ifi(actor)
}

fn parents(statement: &Value) -> impl Iterator<Item = &str> {
    let list = statement.pointer("/context/contextActivities/parent").and_then(Value::as_array);
    list.into_iter().flatten().filter_map(|a| a.get("id").and_then(Value::as_str))
}

/// `scaled`, else `raw` placed between `min` and `max` when both are given.
fn score(score: &Value) -> Option<f64> {
    if let Some(scaled) = score.get("scaled").and_then(Value::as_f64) {
        return Some(scaled);
    }
    let field = |name: &str| score.get(name).and_then(Value::as_f64);
    match (field("raw"), field("min"), field("max")) {
        (Some(raw), Some(min), Some(max)) if max > min => Some((raw - min) / (max - min)),
        _ => None,
    }
}

/// An ISO 8601 duration in milliseconds (`formats::duration_secs`).
pub fn duration_ms(text: &str) -> Option<i64> {
    duration_secs(text).map(|s| s * 1000.0).filter(|ms| *ms < i64::MAX as f64).map(|ms| ms.round() as i64)
}

/// A canonical IFI (`agent::ifi`) as the Agent it identifies.
pub fn agent_of(ifi: &str) -> Value {
    let (kind, value) = ifi.split_once(':').unwrap_or(("mbox", ifi));
    match kind {
        "account" => {
            // A homePage is an IRI, which cannot hold a '|'.
            let (home, name) = value.split_once('|').unwrap_or((value, ""));
            serde_json::json!({"objectType": "Agent", "account": {"homePage": home, "name": name}})
        }
        _ => serde_json::json!({"objectType": "Agent", kind: value}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn statement(verb: &str, result: Value, parents: &[&str]) -> Value {
        let parent: Vec<Value> = parents.iter().map(|p| json!({"id": p})).collect();
        json!({"id": "0b1c2d3e-0000-4000-8000-000000000001", "actor": {"mbox": "mailto:Ann@Example.com"},
               "verb": {"id": verb}, "object": {"id": "http://c/module"}, "result": result,
               "timestamp": "2026-01-02T03:04:05Z",
               "context": {"registration": "AAAAAAAA-0000-4000-8000-000000000000",
                           "contextActivities": {"parent": parent}}})
    }

    #[test]
    fn a_statement_counts_for_its_object_and_as_a_child_for_its_parents() {
        let s = statement(PASSED, json!({"score": {"scaled": 0.8}, "duration": "PT1M30S"}), &["http://c/course"]);
        let rows = contributions(&s, 7, 0);
        assert_eq!(rows.len(), 2);
        let (key, direct) = &rows[0];
        assert_eq!(key.learner, "mbox:mailto:ann@example.com");
        assert_eq!(key.registration, "aaaaaaaa-0000-4000-8000-000000000000");
        assert_eq!((direct.status(), direct.best_score, direct.duration_ms), (Status::Passed, Some(0.8), 90_000));
        let (parent_key, child) = &rows[1];
        assert_eq!(parent_key.activity, "http://c/course");
        assert_eq!((child.status(), child.best_score, child.duration_ms), (Status::InProgress, None, 90_000));
        assert_eq!(child.last.1, "0b1c2d3e-0000-4000-8000-000000000001");
    }

    /// Worked out before `seq` and `stored` are known, and placed after,
    /// a statement's rows are what it counts for when stored.
    #[test]
    fn unplaced_rows_once_placed_are_the_stored_statements_rows() {
        let scored = json!({"score": {"scaled": 0.8}, "duration": "PT1M30S"});
        let with_time = statement(PASSED, scored.clone(), &["http://c/course"]);
        let mut without = with_time.clone();
        without.as_object_mut().unwrap().remove("timestamp");
        let mut unregistered = with_time.clone();
        unregistered["context"].as_object_mut().unwrap().remove("registration");
        for s in [with_time, without, unregistered] {
            let unplaced = Unplaced::of(&s);
            let placed: Vec<(RowId, Tally)> = unplaced.placed(42, 1_700_000_000_000_000).collect();
            let stored = contributions(&s, 42, 1_700_000_000_000_000);
            assert_eq!(placed, stored.iter().map(|(k, t)| (k.id(), t.clone())).collect::<Vec<_>>());
            let mut names: Vec<(i64, &str)> = unplaced.names().collect();
            names.sort_unstable();
            let mut expected: Vec<(i64, &str)> = stored.iter().flat_map(|(k, _)| k.names(k.id())).collect();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(names, expected, "each name once");
            let registration = s.pointer("/context/registration").is_some();
            assert_eq!(placed[0].0.registration != NO_REGISTRATION, registration);
            assert_eq!(names.len(), 3 + usize::from(registration), "learner, module, course, registration");
        }
    }

    #[test]
    fn groups_and_statement_refs_have_no_progress() {
        let mut s = statement(COMPLETED, json!({}), &[]);
        s["object"] = json!({"objectType": "StatementRef", "id": "0b1c2d3e-0000-4000-8000-000000000002"});
        assert!(contributions(&s, 1, 0).is_empty());
        let mut s = statement(COMPLETED, json!({}), &[]);
        s["actor"] = json!({"objectType": "Group", "mbox": "mailto:team@example.com"});
        assert!(contributions(&s, 1, 0).is_empty());
    }

    #[test]
    fn tallies_add_up_in_any_order() {
        let t = |verb, result, seq, ts: &str| {
            let mut s = statement(verb, result, &[]);
            s["timestamp"] = json!(ts);
            contributions(&s, seq, 0).remove(0).1
        };
        let parts = [
            t(FAILED, json!({"score": {"raw": 40, "min": 0, "max": 100}}), 1, "2026-01-01T00:00:00Z"),
            t(PASSED, json!({"score": {"scaled": 0.9}}), 2, "2026-01-03T00:00:00Z"),
            t(ATTEMPT_VERBS[0], json!({"duration": "PT10S"}), 3, "2026-01-02T00:00:00Z"),
            t(COMPLETED, json!({"score": {"scaled": 0.7}}), 4, "2026-01-02T12:00:00Z"),
        ];
        let sum = |order: &[usize]| {
            let mut total = parts[order[0]].clone();
            for &i in &order[1..] {
                total.add(&parts[i]);
            }
            total
        };
        let a = sum(&[0, 1, 2, 3]);
        assert_eq!(a, sum(&[3, 1, 0, 2]));
        assert_eq!(a.status(), Status::Passed);
        assert_eq!((a.statements, a.attempts, a.duration_ms), (4, 1, 10_000));
        assert_eq!(a.best_score, Some(0.9));
        // The latest by timestamp, not by arrival.
        assert_eq!(a.last_score.map(|(s, _)| s), Some(0.9));
        assert_eq!(a.last.0, (parse_timestamp("2026-01-03T00:00:00Z").unwrap().timestamp_micros(), 2));
        assert_eq!(a.first_us, parse_timestamp("2026-01-01T00:00:00Z").unwrap().timestamp_micros());
    }

    #[test]
    fn durations_in_milliseconds() {
        assert_eq!(duration_ms("PT1H2M3.5S"), Some(3_723_500));
        assert_eq!(duration_ms("P1DT1S"), Some(86_401_000));
        assert_eq!(duration_ms("P2W"), Some(14 * 86_400_000));
        assert_eq!(duration_ms("PT0,25S"), Some(250));
        assert_eq!(duration_ms("PT1X"), None);
        assert_eq!(duration_ms("1S"), None);
    }

    #[test]
    fn an_ifi_becomes_its_agent_again() {
        for agent in [
            json!({"mbox": "mailto:ann@example.com"}),
            json!({"openid": "http://id.example.com/ann"}),
            json!({"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"}),
            json!({"account": {"homePage": "https://sso.example.com", "name": "ann|1"}}),
        ] {
            let ifi = agent::ifi(&agent).unwrap();
            assert_eq!(agent::ifi(&agent_of(&ifi)), Some(ifi));
        }
    }
}
