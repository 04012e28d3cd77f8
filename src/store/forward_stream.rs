//! The cursor of a stream target (another LRS, a webhook): such a target
//! takes the statements as they are stored, so instead of an outbox row per
//! statement it follows the statement table by `seq`, and keeps in
//! `forward_target_state` the last `seq` it is done with.
//!
//! This is as safe as a row per statement: the writer numbers statements
//! under its lock (an advisory lock on PostgreSQL, the write lock on
//! SQLite) and commits before releasing it, so once `seq` N is visible every
//! lower `seq` is too, and a cursor never passes a statement still to come.
//! A statement that needs a row of its own (the target refused it) gets one,
//! in the same transaction that moves the cursor past it.

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, Value};

use super::outbox::Status;
use super::sql;

/// A statement after a cursor, as stored.
#[derive(Debug, Clone)]
pub struct Streamed {
    pub seq: i64,
    pub id: String,
    pub stored_us: i64,
    pub body: String,
}

/// Gives `target` a cursor at the last statement stored, if it has none: a
/// new target is sent what is stored from now on (a replay sends the past).
/// Run before the server takes statements, so none slips between.
pub async fn start(db: &DatabaseConnection, target: &str, now_us: i64) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let p = |n| sql::p(backend, n);
    let insert =
        sql::insert_ignore(backend, "forward_target_state (target, updated_us)", &format!("({}, {})", p(1), p(2)));
    db.execute_raw(sql::stmt(backend, insert, vec![Value::from(target.to_owned()), Value::from(now_us)]))
        .await
        .context("target state row")?;
    let update = format!(
        "UPDATE forward_target_state SET stream_seq = (SELECT COALESCE(MAX(seq), 0) FROM statement) \
         WHERE target = {} AND stream_seq IS NULL",
        p(1)
    );
    db.execute_raw(sql::stmt(backend, update, vec![Value::from(target.to_owned())])).await.context("start cursor")?;
    Ok(())
}

/// `target`'s cursor, if it has one.
pub async fn cursor(db: &DatabaseConnection, target: &str) -> anyhow::Result<Option<i64>> {
    let backend = db.get_database_backend();
    let select = format!("SELECT stream_seq FROM forward_target_state WHERE target = {}", sql::p(backend, 1));
    let row = db.query_one_raw(sql::stmt(backend, select, vec![Value::from(target.to_owned())])).await?;
    Ok(match row {
        Some(r) => r.try_get_by_index::<Option<i64>>(0)?,
        None => None,
    })
}

/// Up to `limit` statements after `after`, in `seq` order.
pub async fn read(db: &DatabaseConnection, after: i64, limit: usize) -> anyhow::Result<Vec<Streamed>> {
    let backend = db.get_database_backend();
    let select = format!(
        "SELECT seq, id, stored_us, body FROM statement WHERE seq > {} ORDER BY seq LIMIT {}",
        sql::p(backend, 1),
        sql::p(backend, 2)
    );
    let values = vec![Value::from(after), Value::from(limit as i64)];
    let mut out = Vec::new();
    for r in db.query_all_raw(sql::stmt(backend, select, values)).await.context("statements after the cursor")? {
        out.push(Streamed {
            seq: r.try_get_by_index(0)?,
            id: r.try_get_by_index(1)?,
            stored_us: r.try_get_by_index(2)?,
            body: r.try_get_by_index(3)?,
        });
    }
    Ok(out)
}

/// A streamed statement the target did not take: it is kept as an outbox
/// row with its outcome (a dead letter an operator can retry).
#[derive(Debug, Clone)]
pub struct Refused {
    pub seq: i64,
    pub statement_id: String,
    pub status: Status,
    pub http_status: Option<u16>,
    pub error: String,
}

/// What a round did: the cursor moves from `from` to `to`, `delivered`
/// statements went out, `refused` get rows.
pub struct Advance<'a> {
    pub target: &'a str,
    pub node: &'a str,
    pub from: i64,
    pub to: i64,
    pub delivered: u64,
    pub refused: &'a [Refused],
}

/// Moves the cursor, writes the refused statements' rows, and gives up the
/// target lease, in one transaction. Returns false, changing nothing, when
/// the cursor was not at `from` any more (an operator moved it).
pub async fn advance(db: &DatabaseConnection, a: &Advance<'_>, now_us: i64) -> anyhow::Result<bool> {
    let backend = db.get_database_backend();
    let p = |n| sql::p(backend, n);
    let txn = super::begin_write(db).await.context("begin cursor")?;
    let update = format!(
        "UPDATE forward_target_state SET stream_seq = {}, stream_delivered = stream_delivered + {}, \
         busy_node = NULL, busy_until_us = NULL, updated_us = {} WHERE target = {} AND stream_seq = {}",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5)
    );
    let values = vec![
        Value::from(a.to),
        Value::from(a.delivered as i64),
        Value::from(now_us),
        Value::from(a.target.to_owned()),
        Value::from(a.from),
    ];
    if txn.execute_raw(sql::stmt(backend, update, values)).await.context("move cursor")?.rows_affected() != 1 {
        txn.rollback().await?;
        super::outbox::release_target(db, a.target, a.node).await?;
        return Ok(false);
    }
    for r in a.refused {
        let insert = format!(
            "INSERT INTO forward_outbox (target, op, statement_seq, statement_id, order_key, status, attempts, \
             next_attempt_us, last_http_status, last_error, created_us, updated_us) \
             VALUES ({}, 'statement', {}, {}, '', {}, 1, {}, {}, {}, {}, {})",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9)
        );
        let values = vec![
            Value::from(a.target.to_owned()),
            Value::from(r.seq),
            Value::from(r.statement_id.clone()),
            Value::from(r.status.as_str()),
            Value::from(now_us),
            Value::from(r.http_status.map(i32::from)),
            Value::from(r.error.clone()),
            Value::from(now_us),
            Value::from(now_us),
        ];
        txn.execute_raw(sql::stmt(backend, insert, values)).await.context("row for a refused statement")?;
    }
    txn.commit().await.context("commit cursor")?;
    Ok(true)
}

/// A stream target's figures: statements delivered through the cursor, and
/// those stored after it (waiting; an upper bound when the target's routes
/// leave some out) with the oldest one's `stored_us`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub target: String,
    pub delivered: i64,
    pub waiting: i64,
    pub oldest_stored_us: Option<i64>,
}

/// Every stream target's backlog (`target` only, when given).
pub async fn backlogs(db: &DatabaseConnection, target: Option<&str>) -> anyhow::Result<Vec<Backlog>> {
    let backend = db.get_database_backend();
    let mut select =
        "SELECT t.target, t.stream_seq, t.stream_delivered, (SELECT COALESCE(MAX(seq), 0) FROM statement), \
         (SELECT s.stored_us FROM statement s WHERE s.seq > t.stream_seq ORDER BY s.seq LIMIT 1) \
         FROM forward_target_state t WHERE t.stream_seq IS NOT NULL"
            .to_owned();
    let mut values = Vec::new();
    if let Some(t) = target {
        select.push_str(&format!(" AND t.target = {}", sql::p(backend, 1)));
        values.push(Value::from(t.to_owned()));
    }
    select.push_str(" ORDER BY t.target");
    let mut out = Vec::new();
    for r in db.query_all_raw(sql::stmt(backend, select, values)).await.context("stream backlogs")? {
        let cursor: i64 = r.try_get_by_index(1)?;
        let last: i64 = r.try_get_by_index(3)?;
        out.push(Backlog {
            target: r.try_get_by_index(0)?,
            delivered: r.try_get_by_index(2)?,
            waiting: (last - cursor).max(0),
            oldest_stored_us: r.try_get_by_index(4)?,
        });
    }
    Ok(out)
}
