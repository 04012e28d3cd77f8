//! Replay: the routes of one target evaluated again over statements stored
//! in a time range, enqueuing new rows (a replay's rows never collide with
//! the first delivery's; the target's idempotency makes the resend safe).

use anyhow::{Context, bail};
use chrono::Utc;
use sea_orm::DatabaseConnection;

use super::config::ForwardingConfig;
use super::router::Router;
use crate::store::outbox::{self, NewRow};
use crate::store::statements;

const PAGE: u32 = 500;

/// Enqueues `target`'s rows for statements stored in `[since_us, until_us]`;
/// returns how many rows.
pub async fn replay(
    db: &DatabaseConnection,
    config: &ForwardingConfig,
    target: &str,
    since_us: i64,
    until_us: i64,
) -> anyhow::Result<u64> {
    let Some(t) = config.targets.iter().find(|t| t.name == target) else {
        bail!("no forwarder named '{target}' in the configuration");
    };
    let router = Router::new(&ForwardingConfig { targets: vec![t.clone()] });
    let run = Utc::now().timestamp_micros();
    let (mut after, mut enqueued) = (0, 0u64);
    loop {
        let page = statements::stored_between(db, since_us, until_us, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        let parsed: Vec<(i64, &str, serde_json::Value)> = page
            .iter()
            .map(|(seq, id, body)| Ok((*seq, id.as_str(), serde_json::from_str(body)?)))
            .collect::<anyhow::Result<_>>()
            .context("a stored statement is not JSON")?;
        let mut rows = Vec::new();
        for (seq, id, statement) in &parsed {
            for planned in router.plan(statement) {
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
        outbox::enqueue(db, &rows, Utc::now().timestamp_micros()).await?;
        enqueued += rows.len() as u64;
    }
    Ok(enqueued)
}
