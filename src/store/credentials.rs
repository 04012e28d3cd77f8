//! Credentials: Basic-auth key/secret pairs with xAPI scopes. Secrets are
//! stored only as argon2 hashes.

use anyhow::Context;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rand::Rng;
use rand::distr::Alphanumeric;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, DatabaseConnection, QueryOrder};

use crate::xapi::XapiVersion;

pub mod credential {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "credential")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub name: String,
        pub secret_hash: String,
        /// Space-separated xAPI scopes.
        pub scopes: String,
        pub created_us: i64,
        pub revoked: bool,
        /// The xAPI version (`1.0.3`, `2.0.0`) stated in answers to this
        /// credential's requests that carry no version header.
        pub default_version: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use credential::Model as Credential;

/// The scopes xAPI defines (1.0.3 Communication 4.2).
pub const SCOPES: &[&str] =
    &["all", "all/read", "statements/write", "statements/read", "statements/read/mine", "state", "define", "profile"];

/// Checks a comma- or space-separated scope list; returns it space-separated.
pub fn normalize_scopes(list: &str) -> anyhow::Result<String> {
    let scopes: Vec<&str> = list.split([',', ' ']).filter(|s| !s.is_empty()).collect();
    if scopes.is_empty() {
        anyhow::bail!("at least one scope is needed ({})", SCOPES.join(", "));
    }
    for s in &scopes {
        if !SCOPES.contains(s) {
            anyhow::bail!("unknown scope '{s}' (known: {})", SCOPES.join(", "));
        }
    }
    Ok(scopes.join(" "))
}

fn random_token(len: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

pub fn hash_secret(secret: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the secret failed: {e}"))
}

pub fn verify_secret(secret: &str, hash: &str) -> bool {
    Argon2::default().verify_password(secret.as_bytes(), hash).is_ok()
}

/// Creates a credential and returns it with its secret (shown once).
pub async fn create(
    db: &DatabaseConnection,
    name: &str,
    scopes: &str,
    default_version: Option<&str>,
) -> anyhow::Result<(Credential, String)> {
    let scopes = normalize_scopes(scopes)?;
    let default_version = default_version
        .map(|v| {
            XapiVersion::parse(v)
                .map(|v| v.response_header().to_owned())
                .map_err(|_| anyhow::anyhow!("unknown xAPI version '{v}' (1.0.3 or 2.0.0)"))
        })
        .transpose()?;
    let key = random_token(20);
    let secret = random_token(40);
    let hash = hash_on_blocking_pool(secret.clone()).await?;
    let model = credential::ActiveModel {
        key: Set(key),
        name: Set(name.to_owned()),
        secret_hash: Set(hash),
        scopes: Set(scopes),
        created_us: Set(chrono::Utc::now().timestamp_micros()),
        revoked: Set(false),
        default_version: Set(default_version),
    }
    .insert(db)
    .await
    .context("storing the credential")?;
    Ok((model, secret))
}

/// Creates or updates the credential `key` with scope `all` and this secret.
pub async fn upsert_admin(db: &DatabaseConnection, key: &str, secret: &str) -> anyhow::Result<()> {
    if key.is_empty() || key.contains(':') {
        anyhow::bail!("XLRS_ADMIN_KEY must be non-empty and must not contain ':'");
    }
    if let Some(existing) = find(db, key).await?
        && !existing.revoked
        && existing.scopes == "all"
        && verify_secret(secret, &existing.secret_hash)
    {
        return Ok(());
    }
    let hash = hash_on_blocking_pool(secret.to_owned()).await?;
    let model = credential::ActiveModel {
        key: Set(key.to_owned()),
        name: Set("admin".to_owned()),
        secret_hash: Set(hash),
        scopes: Set("all".to_owned()),
        created_us: Set(chrono::Utc::now().timestamp_micros()),
        revoked: Set(false),
        default_version: Set(None),
    };
    credential::Entity::delete_by_id(key.to_owned()).exec(db).await?;
    model.insert(db).await.context("storing the admin credential")?;
    Ok(())
}

async fn hash_on_blocking_pool(secret: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_secret(&secret)).await?
}

pub async fn find(db: &DatabaseConnection, key: &str) -> anyhow::Result<Option<Credential>> {
    Ok(credential::Entity::find_by_id(key.to_owned()).one(db).await?)
}

pub async fn list(db: &DatabaseConnection) -> anyhow::Result<Vec<Credential>> {
    Ok(credential::Entity::find()
        .filter(credential::Column::Revoked.eq(false))
        .order_by_asc(credential::Column::CreatedUs)
        .all(db)
        .await?)
}

/// Marks the credential revoked; false when there is no such active credential.
pub async fn revoke(db: &DatabaseConnection, key: &str) -> anyhow::Result<bool> {
    let result = credential::Entity::update_many()
        .col_expr(credential::Column::Revoked, Expr::value(true))
        .filter(credential::Column::Key.eq(key))
        .filter(credential::Column::Revoked.eq(false))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

pub async fn count_active(db: &DatabaseConnection) -> anyhow::Result<u64> {
    Ok(credential::Entity::find().filter(credential::Column::Revoked.eq(false)).count(db).await?)
}
