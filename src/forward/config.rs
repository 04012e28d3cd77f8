//! The forwarding configuration: a TOML file of `[[forwarder]]` targets, each
//! with its routes. Secrets are never in the file: it says where each is,
//! `{ env = "VAR" }` or `{ file = "/run/secrets/x" }` (container secrets),
//! read once at start-up.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardingConfig {
    #[serde(default, rename = "forwarder")]
    pub targets: Vec<TargetConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TargetConfig {
    /// Stable name: outbox rows are keyed by it.
    pub name: String,
    #[serde(flatten)]
    pub kind: KindConfig,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Who a statement's actor is on the target (learning platforms).
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Which course (and unit) of the target an activity IRI is.
    #[serde(default, rename = "course")]
    pub courses: Vec<CourseRule>,
}

impl TargetConfig {
    /// A digest of the rules that say who learners are and which course an
    /// activity is (not the lookups' TTLs): when it changes, rows parked for
    /// want of a mapping are worth another look. Taken over the rules' debug
    /// text: a new build that prints them otherwise costs one needless look.
    pub fn mapping_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let rules = format!("{:?}|{:?}|{:?}", self.identity.mbox, self.identity.account_home_pages, self.courses);
        crate::xapi::attachment::to_hex(&Sha256::digest(rules.as_bytes()))
    }
}

/// How a learner is found on a platform, after the identity table (rows an
/// operator set, and earlier lookups, found or not).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// The e-mail of an `mbox` actor identifies them.
    pub mbox: bool,
    /// An `account` actor whose homePage is one of these is known to the
    /// platform by the account's `name`.
    pub account_home_pages: Vec<String>,
    /// How long a platform lookup is trusted, found and not found.
    pub found_ttl_hours: u64,
    pub not_found_ttl_secs: u64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig { mbox: true, account_home_pages: Vec::new(), found_ttl_hours: 720, not_found_ttl_secs: 3600 }
    }
}

/// An activity IRI, or a regular expression over it, and the platform's
/// course id (with `$name` / `${name}` for the pattern's captures) and unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourseRule {
    pub activity: Option<String>,
    pub pattern: Option<String>,
    pub course: String,
    pub unit: Option<String>,
}

fn yes() -> bool {
    true
}

/// What kind of target, with its own settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KindConfig {
    /// Another LRS: statements forwarded as they were stored, in batches.
    XapiLrs {
        /// The LRS's xAPI endpoint, e.g. `https://lrs.example.com/xapi`.
        url: String,
        /// HTTP Basic credentials (key and secret) at the LRS.
        username: Option<SecretRef>,
        password: Option<SecretRef>,
        /// `X-Experience-API-Version` sent (default `1.0.3`).
        #[serde(default = "default_xapi_version")]
        version: String,
    },
    /// A JSON POST per statement, signed with HMAC-SHA256 when a secret is set.
    Webhook { url: String, secret: Option<SecretRef> },
    /// HiBob Bob Learning: the course catalog and completed / passed /
    /// failed statements, through a provider integration.
    Hibob {
        /// `https://api.hibob.com/v1` (sandbox: `https://api.sandbox.hibob.com/v1`).
        #[serde(default = "hibob_url")]
        url: String,
        /// The stable key of our integration in Bob; in every path.
        provider_identifier: String,
        /// Display name of the integration (Bob's default when absent).
        provider_name: Option<String>,
        /// A Bob service user (HTTP Basic).
        service_user_id: SecretRef,
        service_user_token: SecretRef,
    },
    /// LearnWorlds (API v2): courses marked complete, learners optionally
    /// enrolled on launch and reset when a completion is voided.
    Learnworlds {
        /// The school, e.g. `https://academy.example.com`; the token is
        /// minted at `<school_url>/admin/api/oauth2/access_token`.
        school_url: String,
        /// Base of the v2 calls (default `<school_url>/admin/api`).
        api_url: Option<String>,
        client_id: SecretRef,
        client_secret: SecretRef,
        #[serde(default)]
        enroll_on_launch: bool,
        #[serde(default)]
        reset_on_void: bool,
    },
    /// Docebo: enrollment status, score and completion through the batch
    /// import, one batch call at a time.
    Docebo {
        /// The platform, e.g. `https://acme.docebosaas.com`.
        url: String,
        client_id: SecretRef,
        client_secret: SecretRef,
        /// With both set, the password grant as this (superadmin API) user;
        /// otherwise client credentials.
        username: Option<SecretRef>,
        password: Option<SecretRef>,
        /// Learners' usernames are their e-mails (no lookup needed).
        #[serde(default)]
        username_is_email: bool,
        #[serde(default)]
        enroll_on_launch: bool,
    },
    /// 360Learning (API v2): statistics of an API-based integration, in bulk
    /// jobs polled to completion.
    #[serde(rename = "360learning")]
    Learning360 {
        /// `https://app.360learning.com` (US: `https://app.us.360learning.com`).
        #[serde(default = "learning360_url")]
        url: String,
        integration_id: String,
        client_id: SecretRef,
        client_secret: SecretRef,
        company_id: Option<String>,
    },
    /// mobieusCore (mobieusLearn): learners enrolled on launch or
    /// registration; it publishes no completion write, so completions are
    /// recorded as unsupported.
    Mobieus {
        /// The tenant, e.g. `https://acme.mobieus.io`.
        url: String,
        api_key: SecretRef,
    },
}

/// An optional secret's field, when it is set.
fn set<'a>((field, secret): (&'static str, &'a Option<SecretRef>)) -> Option<(&'static str, &'a SecretRef)> {
    secret.as_ref().map(|s| (field, s))
}

fn learning360_url() -> String {
    "https://app.360learning.com".into()
}

fn hibob_url() -> String {
    "https://api.hibob.com/v1".into()
}

fn default_xapi_version() -> String {
    "1.0.3".into()
}

/// The kind of a target, without its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    XapiLrs,
    Webhook,
    Hibob,
    Learnworlds,
    Docebo,
    Learning360,
    Mobieus,
}

impl KindConfig {
    pub fn kind(&self) -> Kind {
        match self {
            KindConfig::XapiLrs { .. } => Kind::XapiLrs,
            KindConfig::Webhook { .. } => Kind::Webhook,
            KindConfig::Hibob { .. } => Kind::Hibob,
            KindConfig::Learnworlds { .. } => Kind::Learnworlds,
            KindConfig::Docebo { .. } => Kind::Docebo,
            KindConfig::Learning360 { .. } => Kind::Learning360,
            KindConfig::Mobieus { .. } => Kind::Mobieus,
        }
    }

    /// Whether the target takes statements as they are stored, and so
    /// follows the statement table with a cursor instead of a row each
    /// (`store::forward_stream`).
    pub fn streams(&self) -> bool {
        matches!(self, KindConfig::XapiLrs { .. } | KindConfig::Webhook { .. })
    }

    /// Whether launch / registration statements enroll the learner.
    pub fn enrolls(&self) -> bool {
        match self {
            KindConfig::Learnworlds { enroll_on_launch, .. } | KindConfig::Docebo { enroll_on_launch, .. } => {
                *enroll_on_launch
            }
            KindConfig::Mobieus { .. } => true,
            _ => false,
        }
    }

    /// Every secret of the target, by its field's name.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        match self {
            KindConfig::XapiLrs { username, password, .. } => {
                [("username", username), ("password", password)].into_iter().filter_map(set).collect()
            }
            KindConfig::Webhook { secret, .. } => [("secret", secret)].into_iter().filter_map(set).collect(),
            KindConfig::Hibob { service_user_id, service_user_token, .. } => {
                vec![("service_user_id", service_user_id), ("service_user_token", service_user_token)]
            }
            KindConfig::Learnworlds { client_id, client_secret, .. }
            | KindConfig::Learning360 { client_id, client_secret, .. } => {
                vec![("client_id", client_id), ("client_secret", client_secret)]
            }
            KindConfig::Docebo { client_id, client_secret, username, password, .. } => {
                let user = [("username", username), ("password", password)].into_iter().filter_map(set);
                [("client_id", client_id), ("client_secret", client_secret)].into_iter().chain(user).collect()
            }
            KindConfig::Mobieus { api_key, .. } => vec![("api_key", api_key)],
        }
    }

    /// Whether voiding a forwarded completion undoes it on the target.
    pub fn revokes(&self) -> bool {
        matches!(self, KindConfig::Learnworlds { reset_on_void: true, .. })
    }
}

/// A TOML error without the source line toml's own message quotes: the line
/// may hold a secret (one written inline, or where a secret belongs).
fn unquoted(error: &toml::de::Error, text: &str) -> anyhow::Error {
    let Some(span) = error.span() else { return anyhow::anyhow!("{}", error.message()) };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    anyhow::anyhow!("line {line}, column {column}: {}", error.message())
}

/// Which statements a target receives. Each list that is set must match;
/// a target with no route receives every statement.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Verb IRIs; a bare word (`completed`) stands for the ADL verb
    /// `http://adlnet.gov/expapi/verbs/<word>`.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// `object.definition.type` IRIs of the statement's object activity.
    #[serde(default)]
    pub activity_types: Vec<String>,
    /// Prefixes of the object activity's IRI.
    #[serde(default)]
    pub activity_prefixes: Vec<String>,
    /// Keys of credentials whose statements are never routed here (a
    /// platform's own statements coming back through a bridge).
    #[serde(default)]
    pub exclude_credentials: Vec<String>,
}

/// How a target's deliveries are paced and retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Most outbox rows handed to the adapter at once.
    pub batch_size: usize,
    /// Requests per second the target is sent at most (a token bucket).
    pub rate_per_sec: f64,
    pub burst: u32,
    /// First retry delay; each further attempt doubles it (with jitter).
    pub retry_base_ms: u64,
    pub retry_cap_secs: u64,
    /// Attempts, and age, after which a row is dead-lettered.
    pub max_attempts: u32,
    pub max_age_hours: u64,
    /// How long a claimed row is someone's before others may take it.
    pub lease_secs: u64,
    /// Timeout of one HTTP request to the target.
    pub timeout_secs: u64,
    /// Consecutive transient failures that open the circuit, and for how long.
    pub breaker_failures: u32,
    pub breaker_open_secs: u64,
    /// After a claim smaller than `batch_size`, how long rows gather before
    /// the next: fewer, larger rounds under load (each round is two short
    /// write transactions beside the statement writer's).
    pub linger_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            batch_size: 50,
            rate_per_sec: 20.0,
            burst: 10,
            retry_base_ms: 1_000,
            retry_cap_secs: 900,
            max_attempts: 20,
            max_age_hours: 72,
            lease_secs: 60,
            timeout_secs: 30,
            breaker_failures: 20,
            breaker_open_secs: 300,
            linger_ms: 100,
        }
    }
}

impl DeliveryConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(1))
    }
}

impl ForwardingConfig {
    pub fn load(path: &Path) -> anyhow::Result<ForwardingConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the forwarding configuration {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<ForwardingConfig> {
        let config: ForwardingConfig = toml::from_str(text).map_err(|e| unquoted(&e, text))?;
        let mut names = std::collections::HashSet::new();
        for t in &config.targets {
            if t.name.is_empty() || !t.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                bail!("forwarder name '{}': use letters, digits, '-' and '_'", t.name);
            }
            if !names.insert(t.name.as_str()) {
                bail!("two forwarders are named '{}'", t.name);
            }
            for rule in &t.courses {
                match (&rule.activity, &rule.pattern) {
                    (Some(_), None) => {}
                    (None, Some(p)) => {
                        regex::Regex::new(p).with_context(|| format!("forwarder '{}': course pattern {p}", t.name))?;
                    }
                    _ => bail!("forwarder '{}': a course rule has one of `activity` and `pattern`", t.name),
                }
            }
            if let Some((field, _)) = t.kind.secrets().into_iter().find(|(_, s)| matches!(s, SecretRef::Inline)) {
                bail!("forwarder '{}': {field}: {INLINE_REFUSED}", t.name);
            }
            let d = &t.delivery;
            if d.batch_size == 0 || d.rate_per_sec <= 0.0 || d.max_attempts == 0 {
                bail!("forwarder '{}': batch_size, rate_per_sec and max_attempts must be above 0", t.name);
            }
        }
        Ok(config)
    }
}

/// Where a secret is: an environment variable or a file. `Inline` is a
/// secret written into the configuration itself, which the docs forbid:
/// `ForwardingConfig::parse` refuses it by its field. Its value is dropped
/// as it is read, so that nothing (serde's "unknown variant" message, a
/// `Debug` of the configuration) can ever print it.
#[derive(Debug, Clone)]
pub enum SecretRef {
    Env(String),
    File(std::path::PathBuf),
    Inline,
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretRefVisitor)
    }
}

struct SecretRefVisitor;

impl SecretRefVisitor {
    /// Any value that is not a table is the secret itself.
    fn inline<E>(self) -> Result<SecretRef, E> {
        Ok(SecretRef::Inline)
    }
}

impl<'de> serde::de::Visitor<'de> for SecretRefVisitor {
    type Value = SecretRef;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(r#"{ env = "VAR" } or { file = "PATH" }"#)
    }

    fn visit_str<E>(self, _secret: &str) -> Result<SecretRef, E> {
        self.inline()
    }

    fn visit_i64<E>(self, _secret: i64) -> Result<SecretRef, E> {
        self.inline()
    }

    fn visit_u64<E>(self, _secret: u64) -> Result<SecretRef, E> {
        self.inline()
    }

    fn visit_f64<E>(self, _secret: f64) -> Result<SecretRef, E> {
        self.inline()
    }

    fn visit_bool<E>(self, _secret: bool) -> Result<SecretRef, E> {
        self.inline()
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
        use serde::de::Error;
        const FIELDS: &[&str] = &["env", "file"];
        let secret = match map.next_key::<String>()?.as_deref() {
            Some("env") => SecretRef::Env(map.next_value()?),
            Some("file") => SecretRef::File(map.next_value()?),
            Some(other) => return Err(A::Error::unknown_field(other, FIELDS)),
            None => return Err(A::Error::custom(r#"a secret is { env = "VAR" } or { file = "PATH" }"#)),
        };
        if map.next_key::<String>()?.is_some() {
            return Err(A::Error::custom("a secret is one of `env` and `file`, not both"));
        }
        Ok(secret)
    }
}

impl SecretRef {
    /// The secret (a file's content without its final newline). Errors name
    /// the field and where the secret should be, never what it is.
    pub fn read(&self, target: &str, field: &str) -> anyhow::Result<String> {
        let at = format!("forwarder '{target}': {field}");
        let value = match self {
            SecretRef::Env(var) => std::env::var(var).with_context(|| {
                format!("{at}: the environment variable {var} (named in its configuration) is not set")
            })?,
            SecretRef::File(path) => std::fs::read_to_string(path)
                .with_context(|| format!("{at}: cannot read the secret file {}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            SecretRef::Inline => bail!("{at}: {INLINE_REFUSED}"),
        };
        if value.is_empty() {
            bail!("{at}: the secret is empty");
        }
        Ok(value)
    }
}

const INLINE_REFUSED: &str = r#"inline secrets are not allowed; use { env = "VAR" } or { file = "PATH" }"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets_routes_and_delivery() {
        let config = ForwardingConfig::parse(
            r#"
            [[forwarder]]
            name = "backup"
            kind = "xapi_lrs"
            url = "https://lrs.example.com/xapi"
            username = { env = "BACKUP_KEY" }
            password = { file = "/run/secrets/backup" }
            delivery = { batch_size = 100, retry_base_ms = 10 }

            [[forwarder]]
            name = "hook"
            kind = "webhook"
            url = "https://hooks.example.com/x"
            [[forwarder.route]]
            verbs = ["completed", "http://example.com/verbs/x"]
            "#,
        )
        .unwrap();
        assert_eq!(config.targets.len(), 2);
        assert!(matches!(&config.targets[0].kind,
            KindConfig::XapiLrs { version, username: Some(SecretRef::Env(v)), password: Some(SecretRef::File(_)), .. }
                if version == "1.0.3" && v == "BACKUP_KEY"));
        assert_eq!(config.targets[0].delivery.batch_size, 100);
        assert_eq!(config.targets[0].delivery.max_attempts, 20);
        assert_eq!(config.targets[1].routes[0].verbs.len(), 2);
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for bad in [
            "[[forwarder]]\nname = \"a b\"\nkind = \"webhook\"\nurl = \"http://x\"",
            "[[forwarder]]\nname = \"a\"\nkind = \"carrier-pigeon\"\nurl = \"http://x\"",
            "[[forwarder]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://x\"\n[[forwarder]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://y\"",
            "[[forwarder]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://x\"\n[[forwarder.route]]\nverb = [\"typo\"]",
            "[[forwarder]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://x\"\ndelivery = { batch_size = 0 }",
        ] {
            assert!(ForwardingConfig::parse(bad).is_err(), "{bad}");
        }
    }

    const SECRET: &str = "s3cr3t-Value-9f8e7d";

    fn learnworlds(client_secret: &str) -> String {
        format!(
            "[[forwarder]]\nname = \"academy\"\nkind = \"learnworlds\"\nschool_url = \"https://a.example.com\"\n\
             client_id = {{ env = \"LW_ID\" }}\nclient_secret = {client_secret}\n"
        )
    }

    #[test]
    fn an_inline_secret_is_refused_by_its_field_never_its_value() {
        let error = format!("{:#}", ForwardingConfig::parse(&learnworlds(&format!("\"{SECRET}\""))).unwrap_err());
        assert!(error.contains("forwarder 'academy': client_secret: inline secrets are not allowed"), "{error}");
        assert!(error.contains(r#"use { env = "VAR" } or { file = "PATH" }"#), "{error}");
        assert!(!error.contains(SECRET), "{error}");
        // A number where a secret belongs is the secret too.
        let error = format!("{:#}", ForwardingConfig::parse(&learnworlds("982734651")).unwrap_err());
        assert!(error.contains("client_secret: inline secrets") && !error.contains("982734651"), "{error}");
        // Every kind's secrets, by their own names.
        let hook =
            "[[forwarder]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"http://x\"\nsecret = \"s3cr3t-Value-9f8e7d\"";
        let error = format!("{:#}", ForwardingConfig::parse(hook).unwrap_err());
        assert!(error.contains("forwarder 'h': secret: inline") && !error.contains(SECRET), "{error}");

        // A syntax error on the secret's line: the line is not quoted.
        let error = format!("{:#}", ForwardingConfig::parse(&learnworlds(&format!("\"{SECRET}"))).unwrap_err());
        assert!(error.contains("line 6"), "{error}");
        assert!(!error.contains(SECRET) && !error.contains("client_secret ="), "{error}");
    }

    #[test]
    fn an_empty_secret_is_named_by_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "\n").unwrap();
        let text = learnworlds(&format!("{{ file = {:?} }}", path.display().to_string()));
        let config = ForwardingConfig::parse(&text).unwrap();
        let KindConfig::Learnworlds { client_secret, .. } = &config.targets[0].kind else { panic!("learnworlds") };
        let error = format!("{:#}", client_secret.read("academy", "client_secret").unwrap_err());
        assert_eq!(error, "forwarder 'academy': client_secret: the secret is empty");
    }
}
