//! The Statement resource's filter index: which statements carry a key (a
//! verb, an agent, an activity, a registration, a credential; `xapi/keys.rs`).
//!
//! PostgreSQL keeps one `statement_key` row per (key, seq). SQLite keeps
//! postings per block of `BLOCK_SEQS` consecutive `seq`s: for each key, the
//! block's statements that carry it, as 2-byte offsets in `seq` order. A
//! block is written once, when the writer has moved past it, as rows that
//! lead with the block number: appended together instead of one random
//! B-tree insert per key and statement (migration m0012 says what that
//! cost). The open block is held here, in memory, and rebuilt at start
//! from the statements' `filter_keys`. One process owns a SQLite file, so
//! its writer and readers share this memory.
//!
//! The writer adds a group's keys before its transaction commits: a reader
//! may then find a `seq` whose row it cannot see yet, and skips it, as it
//! skips voided ones. If the transaction fails the writer rebuilds the
//! memory from the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use anyhow::Context;
use sea_orm::{DbBackend, Value};

use super::sql;
use super::writer_sql::WriterSql;

/// 16,384 statements a block: at 1M stored a query with a rare key reads
/// 62 blocks; the open block's memory is about 2 MB.
pub const BLOCK_BITS: u32 = 14;

/// Which filter index the store keeps.
#[derive(Clone)]
pub enum FilterIndex {
    /// `statement_key` rows (PostgreSQL).
    KeyRows,
    /// Postings per block (SQLite).
    Postings(Arc<Postings>),
}

impl FilterIndex {
    pub fn for_backend(backend: DbBackend) -> FilterIndex {
        match backend {
            DbBackend::Sqlite => FilterIndex::Postings(Arc::new(Postings::default())),
            _ => FilterIndex::KeyRows,
        }
    }
}

/// A statement's keys as stored in `statement.filter_keys`.
pub fn encode_keys(keys: impl Iterator<Item = i64>) -> Vec<u8> {
    keys.flat_map(i64::to_be_bytes).collect()
}

pub fn decode_keys(bytes: &[u8]) -> Vec<i64> {
    bytes.chunks_exact(8).map(|c| i64::from_be_bytes(c.try_into().unwrap_or_default())).collect()
}

/// A posting's `seqs`: offsets in the block, ascending, 2 bytes each.
pub fn encode_offsets(offsets: &[u16]) -> Vec<u8> {
    offsets.iter().flat_map(|o| o.to_le_bytes()).collect()
}

fn decode_offsets(bytes: &[u8]) -> Vec<u16> {
    bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
}

/// A block's postings: key → offsets, ascending.
type Block = HashMap<i64, Vec<u16>>;

#[derive(Default)]
struct Tail {
    /// Blocks from this one up are read here; those below, from the store.
    open_from: i64,
    /// Blocks below this one are written in the writer's transaction; it
    /// becomes `open_from` once that committed.
    written_to: i64,
    blocks: BTreeMap<i64, Block>,
    /// The highest `seq` added.
    last_seq: i64,
}

pub struct Postings {
    /// `seq >> bits` is a statement's block (at most 16: offsets are u16).
    bits: u32,
    tail: RwLock<Tail>,
}

impl Default for Postings {
    fn default() -> Self {
        Postings::with_block_bits(BLOCK_BITS)
    }
}

impl Postings {
    /// Blocks of `1 << bits` statements (small ones in tests). The size is
    /// the store's: blocks written with another would be misread.
    pub(crate) fn with_block_bits(bits: u32) -> Postings {
        Postings { bits: bits.min(16), tail: RwLock::default() }
    }

    pub fn block_of(&self, seq: i64) -> i64 {
        seq >> self.bits
    }

    fn offset(&self, seq: i64) -> u16 {
        // In range: the mask keeps at most 16 bits.
        (seq & ((1 << self.bits) - 1)) as u16
    }

    fn seq_at(&self, block: i64, offset: u16) -> i64 {
        (block << self.bits) | i64::from(offset)
    }

    fn read(&self) -> RwLockReadGuard<'_, Tail> {
        self.tail.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tail> {
        self.tail.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the memory from the store, in the writer's transaction:
    /// full blocks not yet written are written (a database migrated from
    /// `statement_key`), the last one is read into memory.
    pub(crate) async fn load(&self, txn: &impl WriterSql) -> anyhow::Result<()> {
        let select = "SELECT COALESCE(MAX(block) + 1, 0) FROM statement_posting";
        let (written,): (i64,) = one(txn, select).await.context("written blocks")?;
        let (last_seq,): (i64,) =
            one(txn, "SELECT COALESCE(MAX(seq), 0) FROM statement").await.context("last statement")?;
        let open = self.block_of(last_seq).max(written);
        for b in written..open {
            let block = self.block_from_rows(txn, b).await?;
            write_block(txn, b, &block).await?;
        }
        let last = self.block_from_rows(txn, open).await?;
        *self.write() = Tail { open_from: open, written_to: open, blocks: BTreeMap::from([(open, last)]), last_seq };
        Ok(())
    }

    /// Adds new statements' keys (ascending `seq`s, above every earlier
    /// one) and writes the blocks they filled, in the writer's transaction.
    pub(crate) async fn add(&self, txn: &impl WriterSql, rows: &[(i64, &[i64])]) -> anyhow::Result<()> {
        let Some(&(last, _)) = rows.last() else {
            return Ok(());
        };
        let full: Vec<(i64, Block)> = {
            let mut tail = self.write();
            for (seq, keys) in rows {
                let block = tail.blocks.entry(self.block_of(*seq)).or_default();
                for key in *keys {
                    block.entry(*key).or_default().push(self.offset(*seq));
                }
            }
            tail.last_seq = tail.last_seq.max(last);
            let from = tail.written_to;
            let to = self.block_of(last);
            tail.written_to = to.max(from);
            // Rare (once a block): copied, to be written without the lock.
            tail.blocks.range(from..to).map(|(b, block)| (*b, block.clone())).collect()
        };
        for (b, block) in &full {
            write_block(txn, *b, block).await?;
        }
        Ok(())
    }

    /// Gives the statement at `seq` more keys (a StatementRef's target's).
    pub(crate) async fn add_keys(&self, txn: &impl WriterSql, seq: i64, keys: &[i64]) -> anyhow::Result<()> {
        let b = self.block_of(seq);
        let on_disk = {
            let mut tail = self.write();
            if let Some(block) = tail.blocks.get_mut(&b) {
                for key in keys {
                    insert_sorted(block.entry(*key).or_default(), self.offset(seq));
                }
            }
            b < tail.written_to
        };
        if !on_disk {
            return Ok(());
        }
        let backend = txn.backend();
        for key in keys {
            let select = format!(
                "SELECT seqs FROM statement_posting WHERE block = {} AND key = {}",
                sql::p(backend, 1),
                sql::p(backend, 2)
            );
            let rows: Vec<(Vec<u8>,)> = txn
                .rows(sql::stmt(backend, select, vec![b.into(), (*key).into()]))
                .await
                .context("a block's posting")?;
            let mut offsets = rows.first().map(|(bytes,)| decode_offsets(bytes)).unwrap_or_default();
            insert_sorted(&mut offsets, self.offset(seq));
            let upsert = "INSERT OR REPLACE INTO statement_posting (block, key, seqs) VALUES (?, ?, ?)";
            let values = vec![b.into(), (*key).into(), encode_offsets(&offsets).into()];
            txn.run(sql::stmt(backend, upsert, values)).await.context("update a posting")?;
        }
        Ok(())
    }

    /// The writer's transaction committed: the blocks it wrote are read
    /// from the store from now on.
    pub(crate) fn committed(&self) {
        let mut tail = self.write();
        let written = tail.written_to;
        tail.blocks.retain(|b, _| *b >= written);
        tail.open_from = written;
    }

    /// The blocks that may hold statements, lowest and highest.
    pub fn blocks(&self) -> (i64, i64) {
        let tail = self.read();
        (0, self.block_of(tail.last_seq))
    }

    /// The `seq`s of block `b` that carry every one of `keys` (at least
    /// one), ascending.
    pub(crate) async fn matching(&self, db: &impl WriterSql, b: i64, keys: &[i64]) -> anyhow::Result<Vec<i64>> {
        self.matching_in(db, &[b], keys).await
    }

    /// The `seq`s of `blocks` that carry every one of `keys` (at least one),
    /// ascending: the open blocks from memory, the written ones in one query
    /// (a query per block was a round trip each, and a page of a rare key,
    /// such as a registration, visits every block: 61 at 1M statements).
    pub(crate) async fn matching_in(
        &self,
        db: &impl WriterSql,
        blocks: &[i64],
        keys: &[i64],
    ) -> anyhow::Result<Vec<i64>> {
        let mut out = Vec::new();
        let mut written = Vec::new();
        {
            let tail = self.read();
            for &b in blocks {
                if b < tail.open_from {
                    written.push(b);
                } else if let Some(block) = tail.blocks.get(&b) {
                    let lists: Option<Vec<&[u16]>> = keys.iter().map(|k| block.get(k).map(Vec::as_slice)).collect();
                    out.extend(lists.map(|l| intersect(&l, |o| self.seq_at(b, o))).unwrap_or_default());
                }
            }
        }
        let mut distinct = keys.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let backend = db.backend();
        for chunk in written.chunks(MAX_BLOCKS) {
            let select = format!(
                "SELECT block, seqs FROM statement_posting WHERE block IN ({}) AND key IN ({})",
                sql::list_placeholders(backend, chunk.len(), 1),
                sql::list_placeholders(backend, distinct.len(), chunk.len() + 1)
            );
            let values: Vec<Value> = chunk.iter().chain(&distinct).map(|v| (*v).into()).collect();
            let rows: Vec<(i64, Vec<u8>)> =
                db.rows(sql::stmt(backend, select, values)).await.context("blocks' postings")?;
            let mut by_block: BTreeMap<i64, Vec<Vec<u16>>> = BTreeMap::new();
            for (b, bytes) in rows {
                by_block.entry(b).or_default().push(decode_offsets(&bytes));
            }
            // A block without one of the keys has no row for it.
            for (b, lists) in by_block.iter().filter(|(_, lists)| lists.len() == distinct.len()) {
                let lists: Vec<&[u16]> = lists.iter().map(Vec::as_slice).collect();
                out.extend(intersect(&lists, |o| self.seq_at(*b, o)));
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Whether the statement at `seq` carries `key`.
    pub(crate) async fn has(&self, db: &impl WriterSql, seq: i64, key: i64) -> anyhow::Result<bool> {
        Ok(self.matching(db, self.block_of(seq), &[key]).await?.binary_search(&seq).is_ok())
    }
}

/// Most written blocks asked for in one query.
const MAX_BLOCKS: usize = 256;

fn insert_sorted(offsets: &mut Vec<u16>, o: u16) {
    if let Err(at) = offsets.binary_search(&o) {
        offsets.insert(at, o);
    }
}

/// The offsets in every list (shortest first), as `seq`s.
fn intersect(lists: &[&[u16]], seq: impl Fn(u16) -> i64) -> Vec<i64> {
    let mut lists = lists.to_vec();
    lists.sort_by_key(|l| l.len());
    let Some((first, rest)) = lists.split_first() else {
        return Vec::new();
    };
    first.iter().filter(|o| rest.iter().all(|l| l.binary_search(o).is_ok())).map(|o| seq(*o)).collect()
}

async fn one<R: super::writer_sql::FromRow>(txn: &impl WriterSql, select: &str) -> anyhow::Result<R> {
    let rows: Vec<R> = txn.rows(sql::stmt(txn.backend(), select, vec![])).await?;
    rows.into_iter().next().context("no row")
}

impl Postings {
    /// Block `b` built from its statements' `filter_keys`.
    async fn block_from_rows(&self, txn: &impl WriterSql, b: i64) -> anyhow::Result<Block> {
        let select = "SELECT seq, filter_keys FROM statement WHERE seq >= ? AND seq < ? ORDER BY seq";
        let values = vec![self.seq_at(b, 0).into(), self.seq_at(b + 1, 0).into()];
        let rows: Vec<(i64, Vec<u8>)> =
            txn.rows(sql::stmt(DbBackend::Sqlite, select, values)).await.context("a block's statements")?;
        let mut block = Block::new();
        for (seq, keys) in rows {
            for key in decode_keys(&keys) {
                block.entry(key).or_default().push(self.offset(seq));
            }
        }
        Ok(block)
    }
}

/// Appends block `b`'s postings, in key order.
async fn write_block(txn: &impl WriterSql, b: i64, block: &Block) -> anyhow::Result<()> {
    let mut keys: Vec<(&i64, &Vec<u16>)> = block.iter().collect();
    keys.sort_unstable_by_key(|(k, _)| **k);
    for chunk in sql::chunks(&keys) {
        let mut values = Vec::with_capacity(chunk.len() * 3);
        for (key, offsets) in chunk {
            values.push(Value::from(b));
            values.push(Value::from(**key));
            values.push(Value::from(encode_offsets(offsets)));
        }
        let insert = format!(
            "INSERT INTO statement_posting (block, key, seqs) VALUES {}",
            sql::row_placeholders(DbBackend::Sqlite, chunk.len(), 3)
        );
        txn.run(sql::stmt(DbBackend::Sqlite, insert, values)).await.context("write a block's postings")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_offsets_round_trip() {
        let keys = [i64::MIN, -1, 0, 7, i64::MAX];
        assert_eq!(decode_keys(&encode_keys(keys.iter().copied())), keys);
        let offsets = [0, 1, 300, u16::MAX];
        assert_eq!(decode_offsets(&encode_offsets(&offsets)), offsets);
    }

    #[test]
    fn intersection_keeps_what_every_list_has() {
        let seq = |o: u16| 100 + i64::from(o);
        assert_eq!(intersect(&[&[1, 3, 5, 9], &[3, 9, 11], &[0, 3, 4, 9]], seq), vec![103, 109]);
        assert!(intersect(&[&[1, 2], &[]], seq).is_empty());
    }
}

#[cfg(test)]
mod migration_tests {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait;

    use super::*;
    use crate::config::DatabaseArgs;

    #[tokio::test]
    async fn statement_key_rows_become_filter_keys_and_written_blocks() {
        let db = crate::store::connect(&DatabaseArgs { url: "sqlite::memory:".into(), pool_size: 1 }).await.unwrap();
        Migrator::up(&db, Some(11)).await.unwrap();
        let keys: [(i64, &[i64]); 3] = [(1, &[i64::MIN, -1, 5]), (2, &[]), (9, &[5, i64::MAX])];
        for (seq, ks) in keys {
            let insert = "INSERT INTO statement (seq, id, stored_us, key_list, body) VALUES (?, ?, 0, '', '{}')";
            db.execute_raw(sql::stmt(DbBackend::Sqlite, insert, vec![seq.into(), format!("s{seq}").into()]))
                .await
                .unwrap();
            for k in ks {
                let insert = "INSERT INTO statement_key (key, seq) VALUES (?, ?)";
                db.execute_raw(sql::stmt(DbBackend::Sqlite, insert, vec![(*k).into(), seq.into()])).await.unwrap();
            }
        }
        Migrator::up(&db, None).await.unwrap();
        let rows: Vec<(i64, Vec<u8>)> = db
            .rows(sql::stmt(DbBackend::Sqlite, "SELECT seq, filter_keys FROM statement ORDER BY seq", vec![]))
            .await
            .unwrap();
        for ((seq, bytes), (want_seq, want)) in rows.iter().zip(keys) {
            let mut got = decode_keys(bytes);
            got.sort_unstable();
            assert_eq!((*seq, got.as_slice()), (want_seq, want));
        }
        // At start the full blocks (0 and 1 of 4 statements) are written.
        let postings = Postings::with_block_bits(2);
        postings.load(&db).await.unwrap();
        let written: Vec<(i64, i64)> = db
            .rows(sql::stmt(DbBackend::Sqlite, "SELECT block, key FROM statement_posting ORDER BY block, key", vec![]))
            .await
            .unwrap();
        assert_eq!(written, vec![(0, i64::MIN), (0, -1), (0, 5)]);
        assert_eq!(postings.matching(&db, 2, &[5]).await.unwrap(), vec![9], "block 2 is open");
        assert_eq!(postings.matching(&db, 0, &[5, -1]).await.unwrap(), vec![1]);
    }
}
