//! Attachment content, stored once per hash in chunks of `CHUNK_BYTES`.
//!
//! The chunks of a hash are written first, a few megabytes per transaction
//! so that a large upload never holds the write lock for long; the
//! `attachment` row that makes them visible comes last. Chunk `n` of a hash
//! always holds the same bytes (the hash was checked before storing), so
//! uploads of the same content at once, or after a crash left some chunks
//! behind, only skip what is already there.

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use sea_orm::{ConnectionTrait, DatabaseConnection, Value};

use super::{begin_write, sql};
use crate::error::{LrsError, LrsResult};
use crate::spool::Received;

pub const CHUNK_BYTES: usize = 64 * 1024;

/// Chunk bytes written per transaction.
const TRANSACTION_BYTES: u64 = 4 * 1024 * 1024;

/// An attachment the LRS holds: what a response needs before its content.
#[derive(Debug, Clone)]
pub struct StoredAttachment {
    pub sha2: String,
    pub content_type: String,
    pub length: u64,
}

/// Stores the content not stored yet; returns once it is committed.
pub async fn store(db: &DatabaseConnection, received: &[Received]) -> LrsResult<()> {
    let mut hashes: Vec<String> = received.iter().map(|r| r.sha2.clone()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let mut stored: Vec<String> = by_hashes(db, &hashes).await?.into_iter().map(|a| a.sha2).collect();
    for r in received {
        if !stored.contains(&r.sha2) {
            store_one(db, r).await.map_err(LrsError::internal)?;
            stored.push(r.sha2.clone());
        }
    }
    Ok(())
}

async fn store_one(db: &DatabaseConnection, r: &Received) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let three = sql::row_placeholders(backend, 1, 3);
    let insert_chunk = sql::insert_ignore(backend, "attachment_chunk (sha2, idx, data)", &three);
    let (mut offset, mut index) = (0u64, 0i64);
    loop {
        let txn = begin_write(db).await.context("begin")?;
        let end = (offset + TRANSACTION_BYTES).min(r.length);
        while offset < end {
            let len = (r.length - offset).min(CHUNK_BYTES as u64) as usize;
            let data = r.read(offset, len).await.context("read spooled attachment")?;
            let values = vec![Value::from(r.sha2.clone()), Value::from(index), Value::from(data.to_vec())];
            let insert = sql::stmt(backend, insert_chunk.clone(), values);
            txn.execute_raw(insert).await.context("insert attachment chunk")?;
            offset += len as u64;
            index += 1;
        }
        if offset == r.length {
            let sql_text = sql::insert_ignore(backend, "attachment (sha2, content_type, length)", &three);
            let values =
                vec![Value::from(r.sha2.clone()), Value::from(r.content_type.clone()), Value::from(r.length as i64)];
            txn.execute_raw(sql::stmt(backend, sql_text, values)).await.context("insert attachment")?;
            txn.commit().await.context("commit attachment")?;
            return Ok(());
        }
        txn.commit().await.context("commit attachment chunks")?;
    }
}

/// The attachments the LRS holds among these hashes.
pub async fn by_hashes(db: &DatabaseConnection, hashes: &[String]) -> LrsResult<Vec<StoredAttachment>> {
    let mut out = Vec::new();
    let select = "SELECT sha2, content_type, length FROM attachment WHERE sha2";
    for (sha2, content_type, length) in sql::select_in::<_, (String, String, i64)>(db, select, hashes).await? {
        out.push(StoredAttachment { sha2, content_type, length: length as u64 });
    }
    Ok(out)
}

/// The content of a stored attachment, read `read_bytes` (rounded to whole
/// chunks) at a time.
pub fn content(
    db: DatabaseConnection,
    attachment: StoredAttachment,
    read_bytes: usize,
) -> impl Stream<Item = Result<Bytes, LrsError>> + 'static {
    let per_read = (read_bytes / CHUNK_BYTES).max(1) as i64;
    let start = (db, attachment, 0i64, 0u64);
    futures_util::stream::try_unfold(start, move |(db, attachment, index, sent)| async move {
        if sent == attachment.length {
            return Ok(None);
        }
        let backend = db.get_database_backend();
        let sql_text = format!(
            "SELECT data FROM attachment_chunk WHERE sha2 = {} AND idx >= {} ORDER BY idx LIMIT {per_read}",
            sql::p(backend, 1),
            sql::p(backend, 2)
        );
        let values = vec![Value::from(attachment.sha2.clone()), Value::from(index)];
        let rows = db.query_all_raw(sql::stmt(backend, sql_text, values)).await?;
        let mut out = BytesMut::new();
        for row in &rows {
            let data: Vec<u8> = row.try_get_by_index(0)?;
            out.extend_from_slice(&data);
        }
        let sent_now = sent + out.len() as u64;
        if rows.is_empty() || sent_now > attachment.length {
            // The response is under way: this ends it early, so say why here.
            tracing::error!(sha2 = %attachment.sha2, "stored attachment chunks do not add up to its length");
            return Err(LrsError::internal(anyhow::anyhow!(
                "the stored chunks of attachment {} do not add up to its length",
                attachment.sha2
            )));
        }
        Ok(Some((out.freeze(), (db, attachment, index + rows.len() as i64, sent_now))))
    })
}
