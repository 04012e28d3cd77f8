//! Who a statement's actor is on a target (`forwarders.md` §7.7): the
//! identity table first (an operator's rows, then remembered lookups, found
//! or not), then the account rule, then the `mbox` e-mail. Adapters whose
//! platform needs its own id look the e-mail up and `remember` the answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::DatabaseConnection;
use serde_json::Value;

use super::config::IdentityConfig;
use crate::store::identities::{self, Source};
use crate::xapi::agent;

/// A found identity is kept in memory this long before the table is asked
/// again (an operator's change reaches a running node within it).
const MEMORY: Duration = Duration::from_secs(300);

/// What is known of a learner on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learner {
    /// The platform's own id (identity table or account rule).
    Id(String),
    /// Only their e-mail (lower-cased): platforms that take e-mails use it,
    /// others look it up.
    Email(String),
    /// Not resolvable: the row is parked with this reason.
    Missing(String),
}

pub struct Identities {
    target: String,
    config: IdentityConfig,
    found: Mutex<HashMap<String, (String, Instant)>>,
}

impl Identities {
    pub fn new(target: &str, config: &IdentityConfig) -> Identities {
        Identities { target: target.to_owned(), config: config.clone(), found: Mutex::default() }
    }

    /// The actor's key (canonical IFI) and what is known of them.
    pub async fn resolve(&self, db: &DatabaseConnection, actor: &Value) -> anyhow::Result<(String, Learner)> {
        let Some(key) = agent::ifi(actor) else {
            return Ok((String::new(), Learner::Missing("the actor has no identifier".into())));
        };
        if agent::is_group(actor) {
            return Ok((key, Learner::Missing("the actor is a group, not one learner".into())));
        }
        if let Some((id, at)) = self.found.lock().expect("identity cache").get(&key)
            && at.elapsed() < MEMORY
        {
            return Ok((key, Learner::Id(id.clone())));
        }
        let now_us = Utc::now().timestamp_micros();
        if let Some(row) = identities::get(db, &self.target, &key, now_us).await? {
            let learner = match row.remote_id {
                Some(id) => {
                    self.found.lock().expect("identity cache").insert(key.clone(), (id.clone(), Instant::now()));
                    Learner::Id(id)
                }
                None => Learner::Missing(format!(
                    "{key} is not known to '{}' (looked up; asked again after the lookup expires, or on \
                     `xlrs forward retry`)",
                    self.target
                )),
            };
            return Ok((key, learner));
        }
        Ok((key.clone(), self.by_rule(actor, &key)))
    }

    fn by_rule(&self, actor: &Value, key: &str) -> Learner {
        if let Some(account) = actor.get("account") {
            let home = account.get("homePage").and_then(Value::as_str).unwrap_or_default();
            if self.config.account_home_pages.iter().any(|h| h.trim_end_matches('/') == home.trim_end_matches('/')) {
                return Learner::Id(account.get("name").and_then(Value::as_str).unwrap_or_default().to_owned());
            }
        }
        if self.config.mbox
            && let Some(email) = actor.get("mbox").and_then(Value::as_str).and_then(|m| m.strip_prefix("mailto:"))
        {
            return Learner::Email(email.trim().to_lowercase());
        }
        Learner::Missing(format!(
            "no identity for {key} on '{}': add one with `xlrs forward identity set`, or an identity rule",
            self.target
        ))
    }

    /// Remembers a platform lookup: the id found, or that there was none.
    pub async fn remember(&self, db: &DatabaseConnection, key: &str, found: Option<&str>) -> anyhow::Result<()> {
        let now_us = Utc::now().timestamp_micros();
        let ttl_us = match found {
            Some(_) => self.config.found_ttl_hours as i64 * 3_600_000_000,
            None => self.config.not_found_ttl_secs as i64 * 1_000_000,
        };
        identities::put(db, &self.target, key, found, Source::Lookup, Some(now_us + ttl_us), now_us).await?;
        if let Some(id) = found {
            self.found.lock().expect("identity cache").insert(key.to_owned(), (id.to_owned(), Instant::now()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_take_accounts_of_known_home_pages_then_mbox() {
        let config =
            IdentityConfig { account_home_pages: vec!["https://school.example.com/".into()], ..Default::default() };
        let ids = Identities::new("t", &config);
        let account = json!({"account": {"homePage": "https://school.example.com", "name": "u-42"}});
        assert_eq!(ids.by_rule(&account, "k"), Learner::Id("u-42".into()));
        assert_eq!(
            ids.by_rule(&json!({"mbox": "mailto: Ann@Example.COM"}), "k"),
            Learner::Email("ann@example.com".into())
        );
        let other = json!({"account": {"homePage": "https://elsewhere", "name": "u-42"}});
        assert!(matches!(ids.by_rule(&other, "k"), Learner::Missing(_)));
        let no_mbox = Identities::new("t", &IdentityConfig { mbox: false, ..Default::default() });
        assert!(matches!(no_mbox.by_rule(&json!({"mbox": "mailto:a@b.c"}), "k"), Learner::Missing(_)));
    }
}
