//! The statement writer's transaction on PostgreSQL, on a connection of the
//! pool taken as sqlx's rather than sea-orm's: a group's statement and key
//! rows go in by binary `COPY`, which a sea-orm transaction cannot send.
//!
//! Why COPY: an `INSERT … SELECT FROM unnest(…)` of a group's rows writes a
//! WAL record per row and has every value encoded twice on the way (into
//! sea-query's values, then into the bind message). COPY's bulk insert
//! writes a record per heap page, and the rows are encoded once, straight
//! into the message, from the bodies the group already holds.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbBackend, DbErr, QueryResult, RuntimeErr, Statement, Values};
use sea_query_sqlx::SqlxValues;
use sqlx::{AssertSqlSafe, Postgres, Transaction};
use tokio::sync::Mutex;

use super::writer_sql::{CopyRows, FromRow, WriterSql};

/// A transaction in the writer's turn (`super::WRITER_TURN_SQL` run first).
pub(crate) struct PgWriterTransaction {
    // `WriterSql` takes `&self`, as sea-orm's transactions do; sqlx needs
    // `&mut` for every statement, and the writer sends one at a time.
    txn: Mutex<Transaction<'static, Postgres>>,
}

impl PgWriterTransaction {
    pub(crate) async fn begin(db: &DatabaseConnection) -> Result<PgWriterTransaction, DbErr> {
        let mut txn = db.get_postgres_connection_pool().begin().await.map_err(exec_err)?;
        sqlx::query(AssertSqlSafe(super::WRITER_TURN_SQL)).execute(&mut *txn).await.map_err(exec_err)?;
        Ok(PgWriterTransaction { txn: Mutex::new(txn) })
    }

    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        self.txn.into_inner().commit().await.map_err(exec_err)
    }
}

impl WriterSql for PgWriterTransaction {
    fn backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn run(&self, stmt: Statement) -> Result<u64, DbErr> {
        let mut txn = self.txn.lock().await;
        let values = SqlxValues(stmt.values.unwrap_or(Values(Vec::new())));
        let done = sqlx::query_with(AssertSqlSafe(stmt.sql), values).execute(&mut **txn).await.map_err(exec_err)?;
        Ok(done.rows_affected())
    }

    async fn rows<R: FromRow>(&self, stmt: Statement) -> Result<Vec<R>, DbErr> {
        let mut txn = self.txn.lock().await;
        let values = SqlxValues(stmt.values.unwrap_or(Values(Vec::new())));
        let rows = sqlx::query_with(AssertSqlSafe(stmt.sql), values).fetch_all(&mut **txn).await.map_err(exec_err)?;
        rows.into_iter().map(|row| R::from_result(&QueryResult::from(row))).collect()
    }

    async fn copy_in(&self, copy: &str, rows: CopyRows) -> Result<Option<u64>, DbErr> {
        let mut txn = self.txn.lock().await;
        let mut sink = txn.copy_in_raw(copy).await.map_err(exec_err)?;
        if let Err(e) = sink.send(rows.finish()).await {
            // The transaction is lost either way; `abort` leaves the
            // connection usable for the rollback.
            let _ = sink.abort("the writer could not send its rows").await;
            return Err(exec_err(e));
        }
        Ok(Some(sink.finish().await.map_err(exec_err)?))
    }
}

fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql;

    const COPY: &str =
        "COPY statement (seq, id, stored_us, voiding, object_ref, key_list, body) FROM STDIN (FORMAT binary)";

    fn rows(bodies: &[(i64, Option<&str>, &str)]) -> CopyRows {
        let mut copy = CopyRows::new(0);
        for (seq, object_ref, body) in bodies {
            let id = format!("00000000-0000-4000-8000-{seq:012}");
            copy.row(7).int8(*seq).text(Some(&id)).int8(-seq).bool(seq % 2 == 0);
            copy.text(*object_ref).text(Some("1,-2")).text(Some(body));
        }
        copy
    }

    /// Rows sent by binary COPY read back as sent (NULLs, negative numbers,
    /// text COPY's text format would have to escape), in the writer's
    /// turn; values bind on its connection; a refused COPY fails the
    /// transaction and leaves nothing behind.
    #[tokio::test]
    async fn rows_copied_in_the_writer_turn_read_back_as_sent() {
        let Some(db) = crate::store::test_databases::postgres("pg_writer_copy").await else { return };
        let body = "{\"name\":\"tab\\t back\\\\slash \u{e9} \u{1f600}\",\"n\":\"\\n\"}\t\\N";
        let txn = PgWriterTransaction::begin(&db).await.unwrap();
        let sent = txn.copy_in(COPY, rows(&[(1, None, body), (2, Some("ref"), "{}")])).await.unwrap();
        assert_eq!(sent, Some(2));
        let select = "SELECT seq, stored_us, voiding, body FROM statement WHERE seq = ANY($1) ORDER BY seq";
        let read: Vec<(i64, i64, bool, String)> =
            txn.rows(sql::stmt(DbBackend::Postgres, select, vec![vec![1_i64, 2].into()])).await.unwrap();
        assert_eq!(read, vec![(1, -1, false, body.to_owned()), (2, -2, true, "{}".to_owned())]);
        txn.commit().await.unwrap();
        let refs: Vec<(Option<String>, String)> = db
            .rows(sql::stmt(DbBackend::Postgres, "SELECT object_ref, key_list FROM statement ORDER BY seq", vec![]))
            .await
            .unwrap();
        assert_eq!(refs, vec![(None, "1,-2".to_owned()), (Some("ref".to_owned()), "1,-2".to_owned())]);

        // seq 2 again: the primary key refuses the COPY, seq 3 with it.
        let txn = PgWriterTransaction::begin(&db).await.unwrap();
        assert!(txn.copy_in(COPY, rows(&[(3, None, "{}"), (2, None, "{}")])).await.is_err());
        drop(txn);
        let count: Vec<(i64,)> =
            db.rows(sql::stmt(DbBackend::Postgres, "SELECT count(*) FROM statement", vec![])).await.unwrap();
        assert_eq!(count, vec![(2,)]);
    }
}
