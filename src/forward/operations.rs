//! What an operator does with the forwarders, shared by the CLI (`xlrs
//! forward …`) and the admin HTTP API: typed results that serialize to JSON,
//! nothing printed here.
//!
//! With the forwarders' configuration at hand (always over HTTP; on the
//! command line when `--forwarders` is given) a target must be one it names;
//! without it any name is taken, so an operator can look after rows of a
//! target no longer configured.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;

use super::adapters::Adapter;
use super::adapters::probe::Probe;
use super::config::{ForwardingConfig, TargetConfig};
use super::dispatch;
use super::replay::{self, ReplayFilter, Replayed};
use crate::store::identities::{self, IdentityRow, Source};
use crate::store::outbox::{self, RowSummary, Status};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    UnknownTarget(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadInput(String),
    /// The row is being delivered right now.
    #[error("{0}")]
    Busy(String),
    /// The row was delivered; retrying it needs `force`.
    #[error("{0}")]
    Delivered(String),
    #[error(transparent)]
    Storage(#[from] anyhow::Error),
}

pub type OpsResult<T> = Result<T, OpsError>;

/// Rows of one target listed at most at once.
pub const MAX_LIMIT: u32 = 1000;
pub const DEFAULT_LIMIT: u32 = 100;
pub const DEFAULT_PAUSE_REASON: &str = "paused by an operator";

/// Why a delivered row is not retried without being told to.
const RESEND: &str =
    "retrying sends it to the target again; to do so, add --force (xlrs forward retry) or force=true (admin API)";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetStatus {
    pub target: String,
    /// Whether the configuration names it (unknown without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configured: Option<bool>,
    /// Rows per status (statuses with none are left out).
    pub rows: std::collections::BTreeMap<&'static str, i64>,
    /// Age of the oldest row not delivered yet (pending, in flight, retry).
    pub oldest_open_age_secs: Option<f64>,
    pub paused: Option<Pause>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Pause {
    /// `None`: until an operator resumes it.
    pub until: Option<DateTime<Utc>>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    pub id: i64,
    pub op: String,
    pub statement_id: String,
    pub status: &'static str,
    pub attempts: u32,
    /// When an open row is due (for a row in flight: when its lease ends).
    pub next_attempt: Option<DateTime<Utc>>,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
}

impl From<RowSummary> for Row {
    fn from(r: RowSummary) -> Row {
        let open = matches!(r.status, Status::Pending | Status::InFlight | Status::Retry);
        Row {
            id: r.id,
            op: r.op,
            statement_id: r.statement_id,
            status: r.status.as_str(),
            attempts: r.attempts,
            next_attempt: if open { DateTime::from_timestamp_micros(r.next_attempt_us) } else { None },
            last_http_status: r.last_http_status,
            last_error: r.last_error,
            created: DateTime::from_timestamp_micros(r.created_us),
            updated: DateTime::from_timestamp_micros(r.updated_us),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RowsPage {
    pub rows: Vec<Row>,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next_after: Option<i64>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Retried {
    /// Rows made due again.
    pub rows: u64,
    /// Remembered "not found" lookups forgotten, so those learners are
    /// looked up again.
    pub forgotten_lookups: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Identity {
    pub actor: String,
    /// `None`: looked up on the platform and not found.
    pub remote_id: Option<String>,
    pub source: String,
    pub expires: Option<DateTime<Utc>>,
}

impl From<IdentityRow> for Identity {
    fn from(r: IdentityRow) -> Identity {
        Identity {
            actor: r.actor_key,
            remote_id: r.remote_id,
            source: r.source,
            expires: r.expires_us.and_then(DateTime::from_timestamp_micros),
        }
    }
}

/// A replay as an operator asks for it.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    /// Verbs (IRIs, or bare ADL words) the statements must have one of.
    pub verbs: Vec<String>,
    /// The object activity's IRI.
    pub activity: Option<String>,
    /// The actor, as an actor key or an e-mail (see `actor_key`).
    pub agent: Option<String>,
    pub dry_run: bool,
}

impl Replay {
    fn filter(&self) -> OpsResult<ReplayFilter> {
        if let Some(v) = self.verbs.iter().find(|v| v.trim().is_empty()) {
            return Err(OpsError::BadInput(format!("verb '{v}' is empty")));
        }
        let activity = self.activity.as_deref().map(str::trim);
        if activity.is_some_and(|a| !a.contains(':')) {
            return Err(OpsError::BadInput(format!("activity '{}' is not an IRI", activity.unwrap_or_default())));
        }
        let agent = self.agent.as_deref().map(actor_key).transpose()?;
        Ok(ReplayFilter::new(&self.verbs, activity.map(str::to_owned), agent))
    }
}

pub struct Operations<'a> {
    db: &'a DatabaseConnection,
    config: Option<&'a ForwardingConfig>,
}

impl<'a> Operations<'a> {
    pub fn new(db: &'a DatabaseConnection, config: Option<&'a ForwardingConfig>) -> Operations<'a> {
        Operations { db, config }
    }

    /// `target`, if the configuration (when there is one) names it.
    pub fn target<'t>(&self, target: &'t str) -> OpsResult<&'t str> {
        match self.config {
            Some(c) if !c.targets.iter().any(|t| t.name == target) => {
                Err(OpsError::UnknownTarget(format!("no forwarder named '{target}' is configured")))
            }
            _ => Ok(target),
        }
    }

    /// Every configured target and every target with rows or a pause.
    pub async fn status(&self, now: DateTime<Utc>) -> OpsResult<Vec<TargetStatus>> {
        let now_us = now.timestamp_micros();
        let mut out: Vec<TargetStatus> = Vec::new();
        let configured = |name: &str| self.config.map(|c| c.targets.iter().any(|t| t.name == name));
        let entry = |out: &mut Vec<TargetStatus>, name: &str| -> usize {
            if let Some(i) = out.iter().position(|t| t.target == name) {
                return i;
            }
            out.push(TargetStatus {
                target: name.to_owned(),
                configured: configured(name),
                rows: Default::default(),
                oldest_open_age_secs: None,
                paused: None,
            });
            out.len() - 1
        };
        for t in self.config.iter().flat_map(|c| &c.targets) {
            entry(&mut out, &t.name);
        }
        for c in outbox::counts(self.db).await? {
            let i = entry(&mut out, &c.target);
            out[i].rows.insert(c.status.as_str(), c.rows);
            if matches!(c.status, Status::Pending | Status::InFlight | Status::Retry) {
                let age = (now_us - c.oldest_created_us).max(0) as f64 / 1e6;
                let oldest = out[i].oldest_open_age_secs.get_or_insert(age);
                *oldest = oldest.max(age);
            }
        }
        for (target, until, reason) in outbox::pauses(self.db).await? {
            if until > now_us {
                let i = entry(&mut out, &target);
                let until = (until != i64::MAX).then(|| DateTime::from_timestamp_micros(until)).flatten();
                out[i].paused = Some(Pause { until, reason });
            }
        }
        out.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(out)
    }

    /// A page of `target`'s rows (of `status`, when given) after `after` by id.
    pub async fn rows(&self, target: &str, status: Option<Status>, after: i64, limit: u32) -> OpsResult<RowsPage> {
        let target = self.target(target)?;
        if limit == 0 || limit > MAX_LIMIT {
            return Err(OpsError::BadInput(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        let rows = outbox::list(self.db, target, status, after, limit).await?;
        let next_after = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.id)).flatten();
        Ok(RowsPage { rows: rows.into_iter().map(Row::from).collect(), next_after })
    }

    /// Makes rows of `statuses` (of `target`, or every target) due again,
    /// and forgets that learners were not found there. Delivered
    /// (`succeeded`) rows only with `force`: the target gets them again.
    pub async fn retry(&self, target: Option<&str>, statuses: &[Status], force: bool) -> OpsResult<Retried> {
        let target = target.map(|t| self.target(t)).transpose()?;
        if let Some(s) = statuses.iter().find(|s| **s == Status::InFlight) {
            return Err(OpsError::BadInput(format!("rows {} are being delivered; they cannot be retried", s.as_str())));
        }
        if !force && statuses.contains(&Status::Succeeded) {
            return Err(OpsError::BadInput(format!("succeeded rows were delivered already: {RESEND}")));
        }
        if statuses.is_empty() {
            return Err(OpsError::BadInput("name at least one status to retry".into()));
        }
        let forgotten_lookups = identities::forget_not_found(self.db, target).await?;
        let rows = outbox::retry(self.db, target, statuses, Utc::now().timestamp_micros()).await?;
        Ok(Retried { rows, forgotten_lookups })
    }

    /// Makes one row due again; returns it as the retry left it. A
    /// delivered (`succeeded`) row only with `force`.
    pub async fn retry_row(&self, target: &str, id: i64, force: bool) -> OpsResult<Row> {
        let target = self.target(target)?;
        let Some(row) = outbox::retry_row(self.db, target, id, Utc::now().timestamp_micros(), force).await? else {
            return match outbox::get(self.db, target, id).await?.map(|r| r.status) {
                Some(Status::Succeeded) => {
                    Err(OpsError::Delivered(format!("row {id} was delivered already: {RESEND}")))
                }
                Some(_) => Err(OpsError::Busy(format!("row {id} is being delivered now; retry it once it is closed"))),
                None => Err(OpsError::NotFound(format!("'{target}' has no outbox row {id}"))),
            };
        };
        identities::forget_not_found(self.db, Some(target)).await?;
        Ok(row.into())
    }

    /// Stops every node delivering to `target` until it is resumed.
    pub async fn pause(&self, target: &str, reason: Option<&str>) -> OpsResult<Pause> {
        let target = self.target(target)?;
        let reason = reason.map(str::trim).filter(|r| !r.is_empty()).unwrap_or(DEFAULT_PAUSE_REASON);
        outbox::set_pause(self.db, target, Some(i64::MAX), Some(reason), Utc::now().timestamp_micros()).await?;
        Ok(Pause { until: None, reason: reason.to_owned() })
    }

    pub async fn resume(&self, target: &str) -> OpsResult<()> {
        let target = self.target(target)?;
        outbox::set_pause(self.db, target, None, None, Utc::now().timestamp_micros()).await?;
        Ok(())
    }

    /// Routes the statements stored in `[since, until]` (until: now) that
    /// the filters keep to `target` again; a dry run only counts the rows.
    pub async fn replay(&self, target: &str, replay: &Replay) -> OpsResult<Replayed> {
        let target = self.target(target)?;
        let Some(config) = self.config else {
            return Err(OpsError::BadInput("replay needs the forwarders' configuration (--forwarders)".into()));
        };
        let (since, until) = (replay.since, replay.until.unwrap_or_else(Utc::now));
        if since > until {
            return Err(OpsError::BadInput(format!("since ({since}) is after until ({until})")));
        }
        let filter = replay.filter()?;
        let range = (since.timestamp_micros(), until.timestamp_micros());
        Ok(replay::replay(self.db, config, target, range, &filter, replay.dry_run).await?)
    }

    /// One authenticated call to `target` that changes nothing there, and
    /// what answered. Made with an adapter and channel of its own (fresh
    /// credentials and token; the target is not paused by a refusal).
    pub async fn test(&self, target: &str) -> OpsResult<Probe> {
        let config = self.configured(target, "test")?;
        // The error names the field and the variable or file, never the value.
        let adapter = Adapter::new(config).map_err(|e| OpsError::BadInput(format!("{e:#}")))?;
        let channel = dispatch::channel(&config.delivery, &adapter)?;
        let Some(call) = adapter.test_call(&channel.client) else {
            return Err(OpsError::BadInput(format!(
                "'{target}' is a webhook: a receiver has no call that changes nothing, so none is sent"
            )));
        };
        Ok(call.run(&channel).await)
    }

    /// `target`'s configuration, which `what` needs.
    fn configured(&self, target: &str, what: &str) -> OpsResult<&'a TargetConfig> {
        let Some(config) = self.config else {
            return Err(OpsError::BadInput(format!("{what} needs the forwarders' configuration (--forwarders)")));
        };
        config
            .targets
            .iter()
            .find(|t| t.name == target)
            .ok_or_else(|| OpsError::UnknownTarget(format!("no forwarder named '{target}' is configured")))
    }

    pub async fn identities(&self, target: &str) -> OpsResult<Vec<Identity>> {
        let target = self.target(target)?;
        Ok(identities::list(self.db, target).await?.into_iter().map(Identity::from).collect())
    }

    /// An operator's row: `actor` (see `actor_key`) is `remote_id` on `target`.
    pub async fn set_identity(&self, target: &str, actor: &str, remote_id: &str) -> OpsResult<Identity> {
        let target = self.target(target)?;
        let key = actor_key(actor)?;
        let remote_id = remote_id.trim();
        if remote_id.is_empty() {
            return Err(OpsError::BadInput("remote_id is empty".into()));
        }
        let now_us = Utc::now().timestamp_micros();
        identities::put(self.db, target, &key, Some(remote_id), Source::Operator, None, now_us).await?;
        // The learner's rows parked for want of an identity can go now.
        outbox::unpark(self.db, target, Some(&key), now_us).await?;
        Ok(Identity { actor: key, remote_id: Some(remote_id.to_owned()), source: "operator".into(), expires: None })
    }

    pub async fn remove_identity(&self, target: &str, actor: &str) -> OpsResult<()> {
        let target = self.target(target)?;
        let key = actor_key(actor)?;
        if !identities::remove(self.db, target, &key).await? {
            return Err(OpsError::NotFound(format!("'{target}' has no identity for {key}")));
        }
        // Without the operator's row the learner is found otherwise (an
        // account rule, their e-mail): their parked rows get another look.
        outbox::unpark(self.db, target, Some(&key), Utc::now().timestamp_micros()).await?;
        Ok(())
    }
}

/// Outbox statuses by name (`dead,parked`).
pub fn parse_statuses<S: AsRef<str>>(names: &[S]) -> OpsResult<Vec<Status>> {
    names.iter().map(|n| parse_status(n.as_ref())).collect()
}

pub fn parse_status(name: &str) -> OpsResult<Status> {
    Status::parse(name.trim()).ok_or_else(|| {
        let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        OpsError::BadInput(format!("unknown outbox status '{name}' (one of {})", known.join(", ")))
    })
}

/// The canonical key of an actor as the identity table holds it (the form
/// `xapi::agent::ifi` gives): `mbox:mailto:…`, `mbox_sha1sum:…`, `openid:…`
/// or `account:<homePage>|<name>`. A bare e-mail stands for its `mbox`.
pub fn actor_key(actor: &str) -> OpsResult<String> {
    let actor = actor.trim();
    let bad = || {
        OpsError::BadInput(format!(
            "actor '{actor}' is not an actor key: give mbox:mailto:<e-mail>, mbox_sha1sum:<hex>, openid:<uri>, \
             account:<homePage>|<name>, or an e-mail"
        ))
    };
    if let Some(mbox) = actor.strip_prefix("mbox:") {
        let email = mbox.get(..7).filter(|p| p.eq_ignore_ascii_case("mailto:")).map(|_| &mbox[7..]).ok_or_else(bad)?;
        return is_email(email).then(|| format!("mbox:mailto:{}", email.to_lowercase())).ok_or_else(bad);
    }
    if let Some(sha) = actor.strip_prefix("mbox_sha1sum:") {
        let ok = sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit());
        return ok.then(|| format!("mbox_sha1sum:{}", sha.to_lowercase())).ok_or_else(bad);
    }
    if let Some(uri) = actor.strip_prefix("openid:") {
        return (!uri.is_empty()).then(|| actor.to_owned()).ok_or_else(bad);
    }
    if let Some(account) = actor.strip_prefix("account:") {
        let ok = account.split_once('|').is_some_and(|(home, name)| !home.is_empty() && !name.is_empty());
        return ok.then(|| actor.to_owned()).ok_or_else(bad);
    }
    if is_email(actor) {
        return Ok(format!("mbox:mailto:{}", actor.to_lowercase()));
    }
    Err(bad())
}

fn is_email(s: &str) -> bool {
    s.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == ':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_keys_are_canonical() {
        assert_eq!(actor_key("Ann@Example.com").unwrap(), "mbox:mailto:ann@example.com");
        assert_eq!(actor_key("mbox:MAILTO:Ann@Example.com").unwrap(), "mbox:mailto:ann@example.com");
        assert_eq!(
            actor_key("account:https://sso.example.com|Ann").unwrap(),
            "account:https://sso.example.com|Ann",
            "account names keep their case"
        );
        let sha = "A".repeat(40);
        assert_eq!(actor_key(&format!("mbox_sha1sum:{sha}")).unwrap(), format!("mbox_sha1sum:{}", "a".repeat(40)));
        assert_eq!(actor_key("openid:https://id.example.com/ann").unwrap(), "openid:https://id.example.com/ann");
        for bad in ["ann", "mbox:ann@example.com", "account:https://sso.example.com", "mbox_sha1sum:xyz", "", "a b@c"] {
            assert!(matches!(actor_key(bad), Err(OpsError::BadInput(_))), "{bad}");
        }
    }

    #[test]
    fn statuses_are_parsed_by_name() {
        assert_eq!(parse_statuses(&["dead", "parked"]).unwrap(), vec![Status::Dead, Status::Parked]);
        let Err(OpsError::BadInput(message)) = parse_statuses(&["dead", "lost"]) else { panic!("accepted") };
        assert!(message.contains("'lost'") && message.contains("parked"), "{message}");
    }
}
