//! The forwarding outbox: rows written in the statements' own transaction
//! (see the writer), claimed by dispatchers under a lease, and closed with
//! their outcome. On PostgreSQL several nodes claim with `FOR UPDATE SKIP
//! LOCKED`; on SQLite the one node's claims are serialised by the database.

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Value};

use super::writer_sql::WriterSql;
use super::{forward_stream, sql};

/// Where a row is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    /// Claimed by a dispatcher until `next_attempt_us` (its lease).
    InFlight,
    /// Failed transiently; due again at `next_attempt_us`.
    Retry,
    Succeeded,
    /// The target had nothing to do with it (e.g. a verb it ignores).
    Skipped,
    /// The target has no way to do it; recorded, not dropped.
    Unsupported,
    /// Waiting for an operator: a mapping or identity is missing.
    Parked,
    /// Failed for good: the reason is in `last_error`.
    Dead,
    /// A later row for the same learner and activity says more (coalesced).
    Superseded,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Pending,
        Status::InFlight,
        Status::Retry,
        Status::Succeeded,
        Status::Skipped,
        Status::Unsupported,
        Status::Parked,
        Status::Dead,
        Status::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InFlight => "in_flight",
            Status::Retry => "retry",
            Status::Succeeded => "succeeded",
            Status::Skipped => "skipped",
            Status::Unsupported => "unsupported",
            Status::Parked => "parked",
            Status::Dead => "dead",
            Status::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A row to write with a statement.
pub struct NewRow<'a> {
    pub target: &'a str,
    pub op: &'static str,
    pub statement_seq: i64,
    pub statement_id: &'a str,
    pub order_key: String,
    /// What makes the row unique for its target, when not its operation and
    /// statement.
    pub dedupe_key: Option<String>,
    /// Set by a replay: the row is new even if the statement went before.
    pub replay: Option<i64>,
}

/// Writes `rows` in the statements' transaction. A row whose (target, op,
/// statement) exists already is left as it is.
pub(crate) async fn enqueue(txn: &impl WriterSql, rows: &[NewRow<'_>], now_us: i64) -> anyhow::Result<()> {
    const COLS: usize = 10;
    let backend = txn.backend();
    for chunk in sql::chunks(rows) {
        let mut values = Vec::with_capacity(chunk.len() * COLS);
        for r in chunk {
            values.push(Value::from(r.target.to_owned()));
            values.push(Value::from(r.op));
            values.push(Value::from(r.statement_seq));
            values.push(Value::from(r.statement_id.to_owned()));
            // Only rows unique by something else than their statement have a
            // key (see migration m0009); a replay's own rows have their own.
            values.push(Value::from(match (&r.dedupe_key, r.replay) {
                (None, _) => None,
                (Some(key), None) => Some(key.clone()),
                (Some(key), Some(n)) => Some(format!("{key}:replay-{n}")),
            }));
            values.push(Value::from(r.order_key.clone()));
            values.push(Value::from(Status::Pending.as_str()));
            values.push(Value::from(now_us));
            values.push(Value::from(now_us));
            values.push(Value::from(now_us));
        }
        let sql_text = sql::insert_ignore(
            backend,
            "forward_outbox (target, op, statement_seq, statement_id, dedupe_key, order_key, status, next_attempt_us, \
             created_us, updated_us)",
            &sql::row_placeholders(backend, chunk.len(), COLS),
        );
        txn.run(sql::stmt(backend, sql_text, values)).await.context("insert outbox rows")?;
    }
    Ok(())
}

/// A claimed row with the statement it is about, as stored.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub op: String,
    pub statement_id: String,
    pub order_key: String,
    /// Attempts including this one.
    pub attempts: u32,
    pub created_us: i64,
    pub body: String,
    /// The statement a StatementRef object points at, as stored (what a
    /// voiding statement voids), if it is stored.
    pub referenced_body: Option<String>,
}

/// Claims up to `limit` due rows of `target` until `now_us + lease_us`,
/// oldest due first. Rows whose lease ran out are due again.
pub async fn claim(
    db: &DatabaseConnection,
    target: &str,
    node: &str,
    limit: usize,
    now_us: i64,
    lease_us: i64,
) -> anyhow::Result<Vec<Claimed>> {
    let backend = db.get_database_backend();
    let txn = super::begin_write(db).await.context("begin claim")?;
    let lock = if backend == DbBackend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
    let p = |n| sql::p(backend, n);
    let claim_sql = format!(
        "UPDATE forward_outbox SET status = 'in_flight', attempts = attempts + 1, next_attempt_us = {}, \
         updated_us = {}, claimed_by = {} WHERE id IN (SELECT id FROM forward_outbox WHERE target = {} \
         AND status IN ('pending', 'retry', 'in_flight') AND next_attempt_us <= {} \
         ORDER BY next_attempt_us, id LIMIT {} {lock}) RETURNING id",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6)
    );
    let values = vec![
        Value::from(now_us + lease_us),
        Value::from(now_us),
        Value::from(node.to_owned()),
        Value::from(target.to_owned()),
        Value::from(now_us),
        Value::from(limit as i64),
    ];
    let rows = txn.query_all_raw(sql::stmt(backend, claim_sql, values)).await.context("claim outbox rows")?;
    let ids: Vec<String> =
        rows.iter().map(|r| r.try_get_by_index::<i64>(0).map(|i| i.to_string())).collect::<Result<_, _>>()?;
    if ids.is_empty() {
        txn.commit().await?;
        return Ok(Vec::new());
    }
    let select = format!(
        "SELECT o.id, o.op, o.statement_id, o.order_key, o.attempts, o.created_us, s.body, r.body \
         FROM forward_outbox o JOIN statement s ON s.seq = o.statement_seq \
         LEFT JOIN statement r ON r.id = s.object_ref WHERE o.id IN ({})",
        ids.join(",")
    );
    let mut claimed = Vec::with_capacity(ids.len());
    for r in txn.query_all_raw(sql::stmt(backend, select, vec![])).await.context("claimed rows")? {
        claimed.push(Claimed {
            id: r.try_get_by_index(0)?,
            op: r.try_get_by_index(1)?,
            statement_id: r.try_get_by_index(2)?,
            order_key: r.try_get_by_index(3)?,
            attempts: r.try_get_by_index::<i32>(4)?.max(0) as u32,
            created_us: r.try_get_by_index(5)?,
            body: r.try_get_by_index(6)?,
            referenced_body: r.try_get_by_index(7)?,
        });
    }
    txn.commit().await.context("commit claim")?;
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// When `target`'s next open row is due (µs), if it has one.
pub async fn next_due(db: &DatabaseConnection, target: &str) -> anyhow::Result<Option<i64>> {
    let backend = db.get_database_backend();
    let select = format!(
        "SELECT MIN(next_attempt_us) FROM forward_outbox WHERE target = {} AND status IN ('pending', 'retry', 'in_flight')",
        sql::p(backend, 1)
    );
    let row = db.query_one_raw(sql::stmt(backend, select, vec![Value::from(target.to_owned())])).await?;
    Ok(match row {
        Some(r) => r.try_get_by_index::<Option<i64>>(0)?,
        None => None,
    })
}

/// How a claimed row ends this attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Close {
    pub id: i64,
    pub status: Status,
    /// When an open status is due again.
    pub next_attempt_us: i64,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    /// The attempt does not count (the target was paused, not the row at fault).
    pub uncount: bool,
}

impl Close {
    /// Whether `other` closes its row the same way (all but the id).
    fn same_outcome(&self, other: &Close) -> bool {
        (self.status, self.next_attempt_us, self.http_status, &self.error, self.uncount)
            == (other.status, other.next_attempt_us, other.http_status, &other.error, other.uncount)
    }
}

/// Records the outcomes of claimed rows (only rows still `in_flight`: a row
/// an operator changed meanwhile keeps the operator's status).
pub async fn close(db: &DatabaseConnection, closes: &[Close], now_us: i64) -> anyhow::Result<()> {
    // Rows closed alike (typically a delivered batch) take one UPDATE.
    let mut groups: Vec<(&Close, Vec<i64>)> = Vec::new();
    for c in closes {
        match groups.iter_mut().find(|(g, _)| g.same_outcome(c)) {
            Some((_, ids)) => ids.push(c.id),
            None => groups.push((c, vec![c.id])),
        }
    }
    let backend = db.get_database_backend();
    let txn = super::begin_write(db).await.context("begin close")?;
    let p = |n| sql::p(backend, n);
    for (c, ids) in &groups {
        for chunk in sql::chunks(ids) {
            let update = format!(
                "UPDATE forward_outbox SET status = {}, next_attempt_us = {}, last_http_status = {}, last_error = {}, \
                 attempts = attempts - {}, updated_us = {} WHERE status = 'in_flight' AND id IN ({})",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                sql::list_placeholders(backend, chunk.len(), 7)
            );
            let mut values = vec![
                Value::from(c.status.as_str()),
                Value::from(c.next_attempt_us),
                Value::from(c.http_status.map(i32::from)),
                Value::from(c.error.clone()),
                Value::from(i32::from(c.uncount)),
                Value::from(now_us),
            ];
            values.extend(chunk.iter().map(|id| Value::from(*id)));
            txn.execute_raw(sql::stmt(backend, update, values)).await.context("close outbox rows")?;
        }
    }
    txn.commit().await.context("commit close")?;
    Ok(())
}

/// Rows of one status of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub target: String,
    pub status: Status,
    pub rows: i64,
    pub oldest_created_us: i64,
}

pub async fn counts(db: &DatabaseConnection) -> anyhow::Result<Vec<StatusCount>> {
    let backend = db.get_database_backend();
    // The cursors first: a round that moves one past a refused statement
    // writes its row in the same commit, so read in this order a statement
    // is never missing from both (at worst, briefly counted in both).
    let backlogs = forward_stream::backlogs(db, None).await?;
    let rows = db
        .query_all_raw(sql::stmt(
            backend,
            "SELECT target, status, COUNT(*), MIN(created_us) FROM forward_outbox GROUP BY target, status \
             ORDER BY target, status",
            vec![],
        ))
        .await
        .context("outbox counts")?;
    let mut out = Vec::new();
    for r in rows {
        let status: String = r.try_get_by_index(1)?;
        out.push(StatusCount {
            target: r.try_get_by_index(0)?,
            status: Status::parse(&status).with_context(|| format!("unknown outbox status '{status}'"))?,
            rows: r.try_get_by_index(2)?,
            oldest_created_us: r.try_get_by_index(3)?,
        });
    }
    // A stream target's statements count as its rows would: delivered
    // through the cursor as succeeded, stored after it as pending.
    for b in backlogs {
        let now_us = chrono::Utc::now().timestamp_micros();
        for (status, n, oldest) in [
            (Status::Succeeded, b.delivered, now_us),
            (Status::Pending, b.waiting, b.oldest_stored_us.unwrap_or(now_us)),
        ] {
            if n == 0 {
                continue;
            }
            match out.iter_mut().find(|c| c.target == b.target && c.status == status) {
                Some(c) => {
                    c.rows += n;
                    c.oldest_created_us = c.oldest_created_us.min(oldest);
                }
                None => out.push(StatusCount { target: b.target.clone(), status, rows: n, oldest_created_us: oldest }),
            }
        }
    }
    out.sort_by(|a, b| (&a.target, a.status.as_str()).cmp(&(&b.target, b.status.as_str())));
    Ok(out)
}

/// A target's pause, shared by every node through the database.
pub async fn paused_until(db: &DatabaseConnection, target: &str) -> anyhow::Result<Option<(i64, String)>> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(sql::stmt(
            backend,
            format!(
                "SELECT paused_until_us, pause_reason FROM forward_target_state WHERE target = {}",
                sql::p(backend, 1)
            ),
            vec![Value::from(target.to_owned())],
        ))
        .await
        .context("target state")?;
    Ok(match row {
        Some(r) => {
            r.try_get_by_index::<Option<i64>>(0)?.map(|until| (until, r.try_get_by_index(1).unwrap_or_default()))
        }
        None => None,
    })
}

/// Pauses `target` until `until_us` (`None` resumes it).
pub async fn set_pause(
    db: &DatabaseConnection,
    target: &str,
    until_us: Option<i64>,
    reason: Option<&str>,
    now_us: i64,
) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let (p1, p2, p3, p4) = (sql::p(backend, 1), sql::p(backend, 2), sql::p(backend, 3), sql::p(backend, 4));
    let upsert = format!(
        "INSERT INTO forward_target_state (target, paused_until_us, pause_reason, updated_us) \
         VALUES ({p1}, {p2}, {p3}, {p4}) ON CONFLICT (target) DO UPDATE SET paused_until_us = excluded.paused_until_us, \
         pause_reason = excluded.pause_reason, updated_us = excluded.updated_us"
    );
    let values = vec![
        Value::from(target.to_owned()),
        Value::from(until_us),
        Value::from(reason.map(str::to_owned)),
        Value::from(now_us),
    ];
    db.execute_raw(sql::stmt(backend, upsert, values)).await.context("pause target")?;
    Ok(())
}

/// Makes rows of `target` (all targets when `None`) in `statuses` due
/// again now, with their attempts reset. Returns how many.
pub async fn retry(
    db: &DatabaseConnection,
    target: Option<&str>,
    statuses: &[Status],
    now_us: i64,
) -> anyhow::Result<u64> {
    let backend = db.get_database_backend();
    let p = |n| sql::p(backend, n);
    let listed: Vec<String> = statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let mut update = format!(
        "UPDATE forward_outbox SET status = 'pending', attempts = 0, next_attempt_us = {}, updated_us = {} \
         WHERE status IN ({})",
        p(1),
        p(2),
        listed.join(",")
    );
    let mut values = vec![Value::from(now_us), Value::from(now_us)];
    if let Some(t) = target {
        update.push_str(&format!(" AND target = {}", p(3)));
        values.push(Value::from(t.to_owned()));
    }
    let result = db.execute_raw(sql::stmt(backend, update, values)).await.context("retry outbox rows")?;
    Ok(result.rows_affected())
}

/// Makes the rows `node` claimed and did not close due now: the node was
/// started again, so the process that held them is gone. Its target leases
/// need nothing: a node takes a lease it holds already. Returns how many.
pub async fn release_claims(db: &DatabaseConnection, node: &str, now_us: i64) -> anyhow::Result<u64> {
    let backend = db.get_database_backend();
    let (p1, p2, p3) = (sql::p(backend, 1), sql::p(backend, 2), sql::p(backend, 3));
    let update = format!(
        "UPDATE forward_outbox SET next_attempt_us = {p1}, updated_us = {p2} \
         WHERE status = 'in_flight' AND claimed_by = {p3}"
    );
    let values = vec![Value::from(now_us), Value::from(now_us), Value::from(node.to_owned())];
    let result = db.execute_raw(sql::stmt(backend, update, values)).await.context("release earlier claims")?;
    Ok(result.rows_affected())
}

/// Sends `target`'s parked rows (those of one learner: `order_key`s that
/// start with `learner_key` and a space, see `router::order_key`) back to
/// pending, due now: what they waited for (an identity, a course mapping)
/// may be there now. Returns how many.
pub async fn unpark(
    db: &DatabaseConnection,
    target: &str,
    learner_key: Option<&str>,
    now_us: i64,
) -> anyhow::Result<u64> {
    let backend = db.get_database_backend();
    let p = |n| sql::p(backend, n);
    let mut update = format!(
        "UPDATE forward_outbox SET status = 'pending', attempts = 0, next_attempt_us = {}, updated_us = {} \
         WHERE status = 'parked' AND target = {}",
        p(1),
        p(2),
        p(3)
    );
    let mut values = vec![Value::from(now_us), Value::from(now_us), Value::from(target.to_owned())];
    if let Some(key) = learner_key {
        // substr counts characters on both backends; a LIKE would take `%` and `_` in the key as wildcards.
        let prefix = format!("{key} ");
        update.push_str(&format!(" AND substr(order_key, 1, {}) = {}", p(4), p(5)));
        values.extend([Value::from(prefix.chars().count() as i32), Value::from(prefix)]);
    }
    let result = db.execute_raw(sql::stmt(backend, update, values)).await.context("unpark outbox rows")?;
    Ok(result.rows_affected())
}

/// Records `hash` as the mapping rules `target` runs with; whether they
/// differ from the ones recorded before (none recorded counts as differing).
pub async fn note_mapping(db: &DatabaseConnection, target: &str, hash: &str, now_us: i64) -> anyhow::Result<bool> {
    let backend = db.get_database_backend();
    let (p1, p2, p3) = (sql::p(backend, 1), sql::p(backend, 2), sql::p(backend, 3));
    let txn = super::begin_write(db).await.context("begin noting the mapping")?;
    let select = format!("SELECT mapping_hash FROM forward_target_state WHERE target = {p1}");
    let before = txn
        .query_one_raw(sql::stmt(backend, select, vec![Value::from(target.to_owned())]))
        .await
        .context("read the mapping hash")?;
    let before: Option<String> = before.map(|r| r.try_get_by_index(0)).transpose()?.flatten();
    if before.as_deref() == Some(hash) {
        txn.commit().await?;
        return Ok(false);
    }
    let upsert = format!(
        "INSERT INTO forward_target_state (target, mapping_hash, updated_us) VALUES ({p1}, {p2}, {p3}) \
         ON CONFLICT (target) DO UPDATE SET mapping_hash = excluded.mapping_hash, updated_us = excluded.updated_us"
    );
    let values = vec![Value::from(target.to_owned()), Value::from(hash.to_owned()), Value::from(now_us)];
    txn.execute_raw(sql::stmt(backend, upsert, values)).await.context("note the mapping hash")?;
    txn.commit().await?;
    Ok(true)
}

/// Every target's pause that is set: `(target, until_us, reason)`.
pub async fn pauses(db: &DatabaseConnection) -> anyhow::Result<Vec<(String, i64, String)>> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(sql::stmt(
            backend,
            "SELECT target, paused_until_us, pause_reason FROM forward_target_state \
             WHERE paused_until_us IS NOT NULL ORDER BY target",
            vec![],
        ))
        .await
        .context("target pauses")?;
    let mut out = Vec::new();
    for r in rows {
        let reason: Option<String> = r.try_get_by_index(2)?;
        out.push((r.try_get_by_index(0)?, r.try_get_by_index(1)?, reason.unwrap_or_default()));
    }
    Ok(out)
}

/// Of these order keys, those for which `target` was already sent an
/// outcome (complete, pass, fail): a lower state must not follow it.
/// (`op <> 'statement'` is what the order-key index covers, m0009.)
pub async fn keys_with_outcome(
    db: &DatabaseConnection,
    target: &str,
    order_keys: &[&str],
) -> anyhow::Result<std::collections::HashSet<String>> {
    let backend = db.get_database_backend();
    let mut found = std::collections::HashSet::new();
    for chunk in sql::chunks(order_keys) {
        let select = format!(
            "SELECT DISTINCT order_key FROM forward_outbox WHERE target = {} AND status = 'succeeded' \
             AND op IN ('complete', 'pass', 'fail') AND op <> 'statement' AND order_key IN ({})",
            sql::p(backend, 1),
            sql::list_placeholders(backend, chunk.len(), 2)
        );
        let mut values = vec![Value::from(target.to_owned())];
        values.extend(chunk.iter().map(|k| Value::from(k.to_string())));
        for r in db.query_all_raw(sql::stmt(backend, select, values)).await.context("earlier outcomes")? {
            found.insert(r.try_get_by_index::<String>(0)?);
        }
    }
    Ok(found)
}

/// Where `target`'s outcome row (complete, pass) for the statement
/// `statement_id` is, if it has one: what undoing that statement must wait
/// for. Found through the learner-and-activity index (`order_key` is the
/// statement's; `op <> 'statement'` is what that index covers, m0009).
pub async fn outcome_status(
    db: &DatabaseConnection,
    target: &str,
    order_key: &str,
    statement_id: &str,
) -> anyhow::Result<Option<Status>> {
    let backend = db.get_database_backend();
    let select = format!(
        "SELECT status FROM forward_outbox WHERE target = {} AND order_key = {} AND op <> 'statement' \
         AND op IN ('complete', 'pass') AND statement_id = {} ORDER BY id DESC LIMIT 1",
        sql::p(backend, 1),
        sql::p(backend, 2),
        sql::p(backend, 3)
    );
    let values =
        vec![Value::from(target.to_owned()), Value::from(order_key.to_owned()), Value::from(statement_id.to_owned())];
    let Some(row) = db.query_one_raw(sql::stmt(backend, select, values)).await.context("outcome row")? else {
        return Ok(None);
    };
    let status: String = row.try_get_by_index(0)?;
    Ok(Some(Status::parse(&status).with_context(|| format!("unknown outbox status '{status}'"))?))
}

/// Takes `target`'s lease for `node` until `until_us`, for platforms that
/// allow one call at a time over every node; `false` while another node holds it.
pub async fn acquire_target(
    db: &DatabaseConnection,
    target: &str,
    node: &str,
    until_us: i64,
    now_us: i64,
) -> anyhow::Result<bool> {
    let backend = db.get_database_backend();
    let p = |n| sql::p(backend, n);
    let insert =
        sql::insert_ignore(backend, "forward_target_state (target, updated_us)", &format!("({}, {})", p(1), p(2)));
    db.execute_raw(sql::stmt(backend, insert, vec![Value::from(target.to_owned()), Value::from(now_us)]))
        .await
        .context("target state row")?;
    lease_target(db, target, node, until_us, now_us).await
}

/// Takes `target`'s lease until `until_us` unless another node holds it
/// (its state row exists).
pub async fn lease_target(
    db: &DatabaseConnection,
    target: &str,
    node: &str,
    until_us: i64,
    now_us: i64,
) -> anyhow::Result<bool> {
    let backend = db.get_database_backend();
    let p = |n| sql::p(backend, n);
    let update = format!(
        "UPDATE forward_target_state SET busy_node = {}, busy_until_us = {}, updated_us = {} WHERE target = {} \
         AND (busy_node IS NULL OR busy_node = {} OR busy_until_us < {})",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6)
    );
    let values = vec![
        Value::from(node.to_owned()),
        Value::from(until_us),
        Value::from(now_us),
        Value::from(target.to_owned()),
        Value::from(node.to_owned()),
        Value::from(now_us),
    ];
    let result = db.execute_raw(sql::stmt(backend, update, values)).await.context("take target lease")?;
    Ok(result.rows_affected() == 1)
}

/// Gives up `target`'s lease if `node` holds it.
pub async fn release_target(db: &DatabaseConnection, target: &str, node: &str) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let update = format!(
        "UPDATE forward_target_state SET busy_node = NULL, busy_until_us = NULL WHERE target = {} AND busy_node = {}",
        sql::p(backend, 1),
        sql::p(backend, 2)
    );
    let values = vec![Value::from(target.to_owned()), Value::from(node.to_owned())];
    db.execute_raw(sql::stmt(backend, update, values)).await.context("release target lease")?;
    Ok(())
}

/// One row as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSummary {
    pub id: i64,
    pub op: String,
    pub statement_id: String,
    pub status: Status,
    pub attempts: u32,
    pub next_attempt_us: i64,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_us: i64,
    pub updated_us: i64,
}

const SUMMARY_COLUMNS: &str =
    "id, op, statement_id, status, attempts, next_attempt_us, last_http_status, last_error, created_us, updated_us";

fn summary(r: &sea_orm::QueryResult) -> anyhow::Result<RowSummary> {
    let status: String = r.try_get_by_index(3)?;
    Ok(RowSummary {
        id: r.try_get_by_index(0)?,
        op: r.try_get_by_index(1)?,
        statement_id: r.try_get_by_index(2)?,
        status: Status::parse(&status).with_context(|| format!("unknown outbox status '{status}'"))?,
        attempts: r.try_get_by_index::<i32>(4)?.max(0) as u32,
        next_attempt_us: r.try_get_by_index(5)?,
        last_http_status: r.try_get_by_index::<Option<i32>>(6)?.and_then(|s| u16::try_from(s).ok()),
        last_error: r.try_get_by_index(7)?,
        created_us: r.try_get_by_index(8)?,
        updated_us: r.try_get_by_index(9)?,
    })
}

/// Up to `limit` rows of `target` (of `status`, when given) with an id above
/// `after_id`, by id: keyset pages.
pub async fn list(
    db: &DatabaseConnection,
    target: &str,
    status: Option<Status>,
    after_id: i64,
    limit: u32,
) -> anyhow::Result<Vec<RowSummary>> {
    let backend = db.get_database_backend();
    let p = |n| sql::p(backend, n);
    // Values in the order their placeholders appear (SQLite's are positional).
    let mut values = vec![Value::from(target.to_owned()), Value::from(after_id)];
    let status_filter = match status {
        Some(s) => {
            values.push(Value::from(s.as_str()));
            format!(" AND status = {}", p(3))
        }
        None => String::new(),
    };
    values.push(Value::from(i64::from(limit)));
    let select = format!(
        "SELECT {SUMMARY_COLUMNS} FROM forward_outbox WHERE target = {} AND id > {}{status_filter} ORDER BY id LIMIT {}",
        p(1),
        p(2),
        p(values.len())
    );
    let rows = db.query_all_raw(sql::stmt(backend, select, values)).await.context("list outbox rows")?;
    rows.iter().map(summary).collect()
}

/// The row `id` of `target`, if there is one.
pub async fn get(db: &DatabaseConnection, target: &str, id: i64) -> anyhow::Result<Option<RowSummary>> {
    let backend = db.get_database_backend();
    let select = format!(
        "SELECT {SUMMARY_COLUMNS} FROM forward_outbox WHERE target = {} AND id = {}",
        sql::p(backend, 1),
        sql::p(backend, 2)
    );
    let values = vec![Value::from(target.to_owned()), Value::from(id)];
    let row = db.query_one_raw(sql::stmt(backend, select, values)).await.context("outbox row")?;
    row.as_ref().map(summary).transpose()
}

/// Makes the row `id` of `target` due again now with its attempts reset,
/// unless it is in flight (a dispatcher holds it) or, without `force`, was
/// delivered. Returns the row as the retry left it (a dispatcher may claim
/// it the moment after), if it was.
pub async fn retry_row(
    db: &DatabaseConnection,
    target: &str,
    id: i64,
    now_us: i64,
    force: bool,
) -> anyhow::Result<Option<RowSummary>> {
    let backend = db.get_database_backend();
    let p = |n| sql::p(backend, n);
    // In the update itself: a row delivered meanwhile is not sent again.
    let kept = if force { "'in_flight'" } else { "'in_flight', 'succeeded'" };
    let update = format!(
        "UPDATE forward_outbox SET status = 'pending', attempts = 0, next_attempt_us = {}, updated_us = {} \
         WHERE target = {} AND id = {} AND status NOT IN ({kept}) RETURNING {SUMMARY_COLUMNS}",
        p(1),
        p(2),
        p(3),
        p(4)
    );
    let values = vec![Value::from(now_us), Value::from(now_us), Value::from(target.to_owned()), Value::from(id)];
    let row = db.query_one_raw(sql::stmt(backend, update, values)).await.context("retry outbox row")?;
    row.as_ref().map(summary).transpose()
}

/// Statuses a row waits in (for a dispatcher, or for an operator).
pub const WAITING: [Status; 5] = [Status::Pending, Status::InFlight, Status::Retry, Status::Parked, Status::Dead];

/// `target`'s rows per waiting status, and when its oldest open row
/// (pending, in flight, retry) was created. Only waiting rows are counted,
/// through the `(target, status, id)` index, so a long history of delivered
/// rows costs nothing.
pub async fn queue(db: &DatabaseConnection, target: &str) -> anyhow::Result<(Vec<(Status, i64)>, Option<i64>)> {
    let backend = db.get_database_backend();
    // The cursor first, as in `counts`.
    let backlogs = forward_stream::backlogs(db, Some(target)).await?;
    let listed: Vec<String> = WAITING.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let select = format!(
        "SELECT status, COUNT(*), MIN(CASE WHEN status IN ('pending', 'in_flight', 'retry') THEN created_us END) \
         FROM forward_outbox WHERE target = {} AND status IN ({}) GROUP BY status",
        sql::p(backend, 1),
        listed.join(",")
    );
    let rows = db
        .query_all_raw(sql::stmt(backend, select, vec![Value::from(target.to_owned())]))
        .await
        .context("outbox queue")?;
    let mut depth = Vec::new();
    let mut oldest: Option<i64> = None;
    for r in rows {
        let status: String = r.try_get_by_index(0)?;
        let status = Status::parse(&status).with_context(|| format!("unknown outbox status '{status}'"))?;
        depth.push((status, r.try_get_by_index(1)?));
        if let Some(created) = r.try_get_by_index::<Option<i64>>(2)? {
            oldest = Some(oldest.map_or(created, |o| o.min(created)));
        }
    }
    for b in backlogs.into_iter().filter(|b| b.waiting > 0) {
        match depth.iter_mut().find(|(s, _)| *s == Status::Pending) {
            Some((_, n)) => *n += b.waiting,
            None => depth.push((Status::Pending, b.waiting)),
        }
        if let Some(stored) = b.oldest_stored_us {
            oldest = Some(oldest.map_or(stored, |o| o.min(stored)));
        }
    }
    Ok((depth, oldest))
}

/// The statement (as stored) of `target`'s earliest row for `order_key`: the
/// first thing the target was asked about this learner on this activity.
/// (`op <> 'statement'` is what the order-key index covers, m0009.)
pub async fn first_statement(db: &DatabaseConnection, target: &str, order_key: &str) -> anyhow::Result<Option<String>> {
    let backend = db.get_database_backend();
    let select = format!(
        "SELECT s.body FROM forward_outbox o JOIN statement s ON s.seq = o.statement_seq \
         WHERE o.target = {} AND o.order_key = {} AND o.op <> 'statement' ORDER BY o.id LIMIT 1",
        sql::p(backend, 1),
        sql::p(backend, 2)
    );
    let values = vec![Value::from(target.to_owned()), Value::from(order_key.to_owned())];
    match db.query_one_raw(sql::stmt(backend, select, values)).await.context("first statement of a key")? {
        Some(r) => Ok(Some(r.try_get_by_index(0)?)),
        None => Ok(None),
    }
}
