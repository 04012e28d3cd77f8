//! Who a learner is on each forwarding target: rows an operator set, and
//! platform lookups remembered (found, or not found, until they expire).

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, Value};

use super::sql;

/// Where an identity row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Set by an operator; never expires.
    Operator,
    /// A platform lookup, remembered until it expires.
    Lookup,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Operator => "operator",
            Source::Lookup => "lookup",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    pub target: String,
    pub actor_key: String,
    /// `None`: looked up and not found.
    pub remote_id: Option<String>,
    pub source: String,
    pub expires_us: Option<i64>,
}

/// The row for `actor_key` on `target` that has not expired at `now_us`.
pub async fn get(
    db: &DatabaseConnection,
    target: &str,
    actor_key: &str,
    now_us: i64,
) -> anyhow::Result<Option<IdentityRow>> {
    let backend = db.get_database_backend();
    let select = format!(
        "SELECT remote_id, source, expires_us FROM forward_identity WHERE target = {} AND actor_key = {} \
         AND (expires_us IS NULL OR expires_us > {})",
        sql::p(backend, 1),
        sql::p(backend, 2),
        sql::p(backend, 3)
    );
    let values = vec![Value::from(target.to_owned()), Value::from(actor_key.to_owned()), Value::from(now_us)];
    let row = db.query_one_raw(sql::stmt(backend, select, values)).await.context("identity")?;
    row.map(|r| {
        Ok(IdentityRow {
            target: target.to_owned(),
            actor_key: actor_key.to_owned(),
            remote_id: r.try_get_by_index(0)?,
            source: r.try_get_by_index(1)?,
            expires_us: r.try_get_by_index(2)?,
        })
    })
    .transpose()
}

/// Sets (or replaces) the identity of `actor_key` on `target`. A lookup
/// never replaces an operator's row: a platform saying "no such user" for
/// an id an operator set must not erase what the operator said.
pub async fn put(
    db: &DatabaseConnection,
    target: &str,
    actor_key: &str,
    remote_id: Option<&str>,
    source: Source,
    expires_us: Option<i64>,
    now_us: i64,
) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let params = sql::list_placeholders(backend, 6, 1);
    let upsert = format!(
        "INSERT INTO forward_identity (target, actor_key, remote_id, source, expires_us, updated_us) \
         VALUES ({params}) ON CONFLICT (target, actor_key) DO UPDATE SET remote_id = excluded.remote_id, \
         source = excluded.source, expires_us = excluded.expires_us, updated_us = excluded.updated_us \
         WHERE forward_identity.source = 'lookup' OR excluded.source = 'operator'"
    );
    let values = vec![
        Value::from(target.to_owned()),
        Value::from(actor_key.to_owned()),
        Value::from(remote_id.map(str::to_owned)),
        Value::from(source.as_str()),
        Value::from(expires_us),
        Value::from(now_us),
    ];
    db.execute_raw(sql::stmt(backend, upsert, values)).await.context("set identity")?;
    Ok(())
}

/// Removes one row; returns whether there was one.
pub async fn remove(db: &DatabaseConnection, target: &str, actor_key: &str) -> anyhow::Result<bool> {
    let backend = db.get_database_backend();
    let delete = format!(
        "DELETE FROM forward_identity WHERE target = {} AND actor_key = {}",
        sql::p(backend, 1),
        sql::p(backend, 2)
    );
    let values = vec![Value::from(target.to_owned()), Value::from(actor_key.to_owned())];
    Ok(db.execute_raw(sql::stmt(backend, delete, values)).await.context("remove identity")?.rows_affected() > 0)
}

/// Forgets remembered "not found" lookups of `target` (all targets when
/// `None`), so rows retried after a learner was provisioned look again.
pub async fn forget_not_found(db: &DatabaseConnection, target: Option<&str>) -> anyhow::Result<u64> {
    let backend = db.get_database_backend();
    let mut delete = "DELETE FROM forward_identity WHERE remote_id IS NULL".to_owned();
    let mut values = Vec::new();
    if let Some(t) = target {
        delete.push_str(&format!(" AND target = {}", sql::p(backend, 1)));
        values.push(Value::from(t.to_owned()));
    }
    Ok(db.execute_raw(sql::stmt(backend, delete, values)).await.context("forget lookups")?.rows_affected())
}

/// Every row of `target`, by actor.
pub async fn list(db: &DatabaseConnection, target: &str) -> anyhow::Result<Vec<IdentityRow>> {
    let backend = db.get_database_backend();
    let select = format!(
        "SELECT actor_key, remote_id, source, expires_us FROM forward_identity WHERE target = {} ORDER BY actor_key",
        sql::p(backend, 1)
    );
    let rows = db
        .query_all_raw(sql::stmt(backend, select, vec![Value::from(target.to_owned())]))
        .await
        .context("identities")?;
    rows.iter()
        .map(|r| {
            Ok(IdentityRow {
                target: target.to_owned(),
                actor_key: r.try_get_by_index(0)?,
                remote_id: r.try_get_by_index(1)?,
                source: r.try_get_by_index(2)?,
                expires_us: r.try_get_by_index(3)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lookup_never_replaces_an_operators_row() {
        for db in crate::store::test_databases::each("identity_guard").await {
            let (key, now) = ("mbox:mailto:ann@example.com", 1_000);
            put(&db, "lw", key, Some("u-ann"), Source::Operator, None, now).await.unwrap();
            put(&db, "lw", key, None, Source::Lookup, Some(now + 10_000), now).await.unwrap();
            let row = get(&db, "lw", key, now).await.unwrap().expect("a row");
            assert_eq!((row.remote_id.as_deref(), row.source.as_str()), (Some("u-ann"), "operator"));
            // A lookup replaces a lookup, and an operator either.
            let other = "mbox:mailto:bo@example.com";
            put(&db, "lw", other, Some("u-bo"), Source::Lookup, Some(now + 10_000), now).await.unwrap();
            put(&db, "lw", other, None, Source::Lookup, Some(now + 10_000), now).await.unwrap();
            assert_eq!(get(&db, "lw", other, now).await.unwrap().unwrap().remote_id, None);
            put(&db, "lw", other, Some("u-bo"), Source::Operator, None, now).await.unwrap();
            assert_eq!(get(&db, "lw", other, now).await.unwrap().unwrap().source, "operator");
        }
    }
}
