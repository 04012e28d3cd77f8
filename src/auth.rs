//! Authentication (HTTP Basic against stored credentials) as an extractor,
//! and the scope checks of each resource.
//!
//! An argon2 verification costs tens of milliseconds by design, so a verified
//! key+secret pair is cached for a short time, keyed by its SHA-256: a request
//! with a cached pair costs one hash and one map lookup.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use base64::Engine;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::LrsError;
use crate::startup::AppState;
use crate::store::credentials::{self, verify_secret};
use crate::xapi::XapiVersion;

/// A request's verified credential.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub key: String,
    pub scopes: Vec<String>,
    /// The Agent the LRS writes as `authority` of statements this credential stores.
    pub authority: Arc<Value>,
    /// The version to state when a request of this credential names none.
    pub default_version: Option<XapiVersion>,
}

/// What a credential may read of the statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAccess {
    All,
    /// `statements/read/mine`: only statements this credential stored.
    Mine,
}

impl Authenticated {
    fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Requires `all`, or one of `scopes`.
    pub fn require_any(&self, scopes: &[&str]) -> Result<(), LrsError> {
        if self.has("all") || scopes.iter().any(|s| self.has(s)) {
            Ok(())
        } else {
            Err(LrsError::Forbidden(format!("this credential lacks the scope {}", scopes.join(" or "))))
        }
    }

    pub fn require_statement_write(&self) -> Result<(), LrsError> {
        if self.has("all") || self.has("statements/write") {
            Ok(())
        } else {
            Err(LrsError::Forbidden("this credential lacks the scope statements/write".into()))
        }
    }

    pub fn statement_read(&self) -> Result<ReadAccess, LrsError> {
        if self.has("all") || self.has("all/read") || self.has("statements/read") {
            Ok(ReadAccess::All)
        } else if self.has("statements/read/mine") {
            Ok(ReadAccess::Mine)
        } else {
            Err(LrsError::Forbidden("this credential lacks the scope statements/read".into()))
        }
    }
}

/// Verifies credentials, with the cache described above.
pub struct Authenticator {
    db: DatabaseConnection,
    ttl: Duration,
    authority_home_page: String,
    cache: Mutex<HashMap<[u8; 32], (Authenticated, Instant)>>,
    /// Each argon2 verification takes ~19 MiB and a core for tens of
    /// milliseconds: a burst of requests (or of wrong guesses) must not run
    /// them all at once.
    verifications: tokio::sync::Semaphore,
}

/// Argon2 verifications that may run at once.
const CONCURRENT_VERIFICATIONS: usize = 2;

/// A well-formed argon2 hash to verify against when the key is unknown, so an
/// unknown key costs the same time as a wrong secret.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| credentials::hash_secret("xlrs-dummy-secret").unwrap_or_default());

impl Authenticator {
    pub fn new(db: DatabaseConnection, ttl: Duration, authority_home_page: String) -> Self {
        Authenticator {
            db,
            ttl,
            authority_home_page,
            cache: Mutex::new(HashMap::new()),
            verifications: tokio::sync::Semaphore::new(CONCURRENT_VERIFICATIONS),
        }
    }

    pub async fn authenticate(&self, header_value: Option<&str>) -> Result<Authenticated, LrsError> {
        let (key, secret) = parse_basic(header_value)?;
        let fingerprint: [u8; 32] = Sha256::digest(format!("{key}:{secret}").as_bytes()).into();
        if let Some(hit) = self.cached(&fingerprint) {
            return Ok(hit);
        }
        let _permit = self.verifications.acquire().await.map_err(LrsError::internal)?;
        // Requests with the same credentials that waited here find them verified.
        if let Some(hit) = self.cached(&fingerprint) {
            return Ok(hit);
        }
        let stored = credentials::find(&self.db, &key).await.map_err(LrsError::Internal)?;
        let active = stored.filter(|c| !c.revoked);
        let hash = active.as_ref().map(|c| c.secret_hash.clone()).unwrap_or_else(|| DUMMY_HASH.clone());
        let verified = web::block(move || verify_secret(&secret, &hash)).await.map_err(LrsError::internal)?;
        let credential = match active {
            Some(c) if verified => c,
            _ => return Err(LrsError::Unauthorized("invalid credentials".into())),
        };
        let auth = Authenticated {
            authority: Arc::new(json!({
                "objectType": "Agent",
                "name": credential.name,
                "account": {"homePage": self.authority_home_page, "name": credential.key},
            })),
            key: credential.key,
            scopes: credential.scopes.split(' ').map(str::to_owned).collect(),
            default_version: credential.default_version.as_deref().and_then(|v| XapiVersion::parse(v).ok()),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        cache.insert(fingerprint, (auth.clone(), Instant::now()));
        Ok(auth)
    }

    fn cached(&self, fingerprint: &[u8; 32]) -> Option<Authenticated> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(fingerprint).filter(|(_, at)| at.elapsed() < self.ttl).map(|(a, _)| a.clone())
    }
}

fn parse_basic(header_value: Option<&str>) -> Result<(String, String), LrsError> {
    let missing = || LrsError::Unauthorized("authentication required: send HTTP Basic credentials".into());
    let value = header_value.ok_or_else(missing)?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(LrsError::Unauthorized("only HTTP Basic authentication is supported".into()));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| LrsError::Unauthorized("malformed Basic credentials".into()))?;
    let text = String::from_utf8(decoded).map_err(|_| LrsError::Unauthorized("malformed Basic credentials".into()))?;
    let (key, secret) =
        text.split_once(':').ok_or_else(|| LrsError::Unauthorized("malformed Basic credentials".into()))?;
    if key.is_empty() {
        return Err(LrsError::Unauthorized("invalid credentials".into()));
    }
    Ok((key.to_owned(), secret.to_owned()))
}

impl FromRequest for Authenticated {
    type Error = LrsError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header_value = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(|| LrsError::internal(anyhow::anyhow!("application state missing")))?;
            state.auth.authenticate(header_value.as_deref()).await
        })
    }
}

/// A request's credential when it holds the scope `all`: what the admin API
/// asks (401 without a credential, 403 with one that lacks the scope).
#[derive(Debug, Clone)]
pub struct Operator(pub Authenticated);

impl FromRequest for Operator {
    type Error = LrsError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let authenticated = Authenticated::from_request(req, payload);
        Box::pin(async move {
            let auth = authenticated.await?;
            if !auth.scopes.iter().any(|s| s == "all") {
                return Err(LrsError::Forbidden("the admin API needs a credential with the scope 'all'".into()));
            }
            Ok(Operator(auth))
        })
    }
}
