//! The export's response body: keyset pages of the matching statements in
//! `seq` (= `stored`) order, each page one chunk of NDJSON or CSV, gzipped
//! when asked. A page is read only when the client has taken the last one
//! (actix polls a body stream only when its write buffer has room), so
//! memory holds about one page whatever the export's size.

use std::io::Write;
use std::sync::Arc;

use actix_web::web::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::Stream;
use sea_orm::DatabaseConnection;

use crate::error::{LrsError, LrsResult};
use crate::metrics::Metrics;
use crate::store::filter_index::FilterIndex;
use crate::store::statements::{self, PageQuery, SeqBounds, StoredRow};
use crate::xapi::flatten::Column;

/// Statements per chunk: large enough that a query per page is cheap
/// against its rows (250 queries a second at 250,000 statements/s), small
/// enough to keep a page of bodies (~2.5 KiB each) in a few MiB: at 2,000 the
/// export added 22 MiB to a SQLite server's RSS at 1M statements.
pub const PAGE_STATEMENTS: u32 = 1000;

#[derive(Debug, Clone, PartialEq)]
pub enum ExportFormat {
    /// One stored statement per line, byte for byte.
    Ndjson,
    /// A row per statement, these columns (`id` first).
    Csv(Vec<Column>),
}

/// What one response streams: `query` is ascending, its `after_seq` where
/// the response starts; `bounds` is `None` when the range holds nothing.
pub struct ExportBody {
    pub db: DatabaseConnection,
    pub index: FilterIndex,
    pub query: PageQuery,
    pub bounds: Option<SeqBounds>,
    pub format: ExportFormat,
    /// A CSV header row first (not when resuming: the client has it).
    pub csv_header: bool,
    pub gzip: bool,
    pub metrics: Arc<Metrics>,
}

impl ExportBody {
    pub fn into_stream(self) -> impl Stream<Item = LrsResult<Bytes>> + 'static {
        let reader = Reader {
            consumer: Consumer::new(self.metrics.clone()),
            gzip: self.gzip.then(|| GzEncoder::new(Vec::new(), Compression::fast())),
            finished: self.bounds.is_none(),
            body: self,
        };
        futures_util::stream::unfold(reader, |mut r| async move {
            match r.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), r)),
                Ok(None) => None,
                Err(e) => {
                    // The stream ends with an error, so actix drops the
                    // connection without the closing chunk: the client
                    // sees a broken transfer, never a short export.
                    tracing::error!(error = ?e, "export stopped");
                    r.finished = true;
                    r.gzip = None;
                    Some((Err(e), r))
                }
            }
        })
    }
}

struct Reader {
    body: ExportBody,
    gzip: Option<GzEncoder<Vec<u8>>>,
    finished: bool,
    consumer: Consumer,
}

impl Reader {
    /// The next non-empty chunk, `None` after the last.
    async fn next_chunk(&mut self) -> LrsResult<Option<Bytes>> {
        loop {
            let done_before = self.finished;
            let mut raw = Vec::new();
            if std::mem::take(&mut self.body.csv_header)
                && let ExportFormat::Csv(columns) = &self.body.format
            {
                raw = csv_header(columns)?;
            }
            if !self.finished {
                self.read_page(&mut raw).await?;
            }
            let out = match &mut self.gzip {
                None => raw,
                Some(encoder) => {
                    encoder.write_all(&raw).map_err(LrsError::internal)?;
                    if self.finished {
                        encoder.try_finish().map_err(LrsError::internal)?;
                    }
                    std::mem::take(encoder.get_mut())
                }
            };
            if !out.is_empty() {
                return Ok(Some(Bytes::from(out)));
            }
            if done_before {
                return Ok(None);
            }
        }
    }

    /// Appends the next page to `out` and moves the keyset past it.
    async fn read_page(&mut self, out: &mut Vec<u8>) -> LrsResult<()> {
        let body = &mut self.body;
        let bounds = body.bounds.unwrap_or_default();
        let (rows, more) = statements::page_within(&body.db, &body.index, &body.query, bounds).await?;
        match &body.format {
            ExportFormat::Ndjson => ndjson(&rows, out),
            ExportFormat::Csv(columns) => out.extend(csv_rows(&rows, columns)?),
        }
        self.consumer.metrics.export_statements.inc_by(rows.len() as u64);
        body.query.after_seq = rows.last().map(|r| r.seq).or(body.query.after_seq);
        self.finished = !more;
        Ok(())
    }
}

fn ndjson(rows: &[StoredRow], out: &mut Vec<u8>) {
    out.reserve(rows.iter().map(|r| r.body.len() + 1).sum());
    for r in rows {
        out.extend_from_slice(r.body.as_bytes());
        out.push(b'\n');
    }
}

fn csv_header(columns: &[Column]) -> LrsResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(columns.iter().map(|c| c.name())).map_err(LrsError::internal)?;
    w.into_inner().map_err(LrsError::internal)
}

fn csv_rows(rows: &[StoredRow], columns: &[Column]) -> LrsResult<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 256));
    for r in rows {
        let statement: serde_json::Value = serde_json::from_str(&r.body).map_err(LrsError::internal)?;
        w.write_record(columns.iter().map(|c| c.value(&statement))).map_err(LrsError::internal)?;
    }
    w.into_inner().map_err(LrsError::internal)
}

/// Counts an export in `xlrs_export_consumers` for as long as its body lives
/// (finished, failed, or dropped with the client's connection).
struct Consumer {
    metrics: Arc<Metrics>,
}

impl Consumer {
    fn new(metrics: Arc<Metrics>) -> Consumer {
        metrics.export_consumers.inc();
        Consumer { metrics }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.metrics.export_consumers.dec();
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_failed_read_ends_the_stream_with_an_error() {
        // No tables: every read fails, as with a database gone mid-export.
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let body = ExportBody {
            db,
            index: FilterIndex::KeyRows,
            query: PageQuery { ascending: true, limit: 10, ..PageQuery::default() },
            bounds: Some((None, None)),
            format: ExportFormat::Ndjson,
            csv_header: false,
            gzip: true,
            metrics: metrics.clone(),
        };
        let mut stream = Box::pin(body.into_stream());
        assert_eq!(metrics.export_consumers.get(), 1);
        assert!(matches!(stream.next().await, Some(Err(_))), "an error, not an end that looks complete");
        assert!(stream.next().await.is_none());
        drop(stream);
        assert_eq!(metrics.export_consumers.get(), 0);
    }
}
