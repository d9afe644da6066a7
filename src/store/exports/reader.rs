//! The row reader of an export: one connection of its own for all the pages, a page read as
//! SQLite's one JSON value or PostgreSQL's COPY text (rows parsed only as they are written),
//! the pass's row count and the metadata keys that become columns.

use super::copy::copy_row;
use super::json::JsonKeys;
use super::query::{packed_page_query, page_query, scope};
use super::{ExportRow, Key, Range, Slice};
use crate::store::sql::{bound, inline, Builder};
use crate::store::{Db, StoreResult};

/// Run the same body on a reader's connection, whichever backend.
macro_rules! on_reader {
    ($reader:expr, $conn:ident => $body:expr) => {
        match $reader {
            Reader::Sqlite(c) => {
                let $conn = &mut *c;
                $body
            }
            Reader::Postgres(c) => {
                let $conn = &mut **c;
                $body
            }
        }
    };
}

/// A connection of one export's own, for all its pages. On SQLite it is opened apart from the
/// pool with a small page cache (8 MB) and closed at the end, so that reading millions of rows
/// neither fills the caches of every pooled connection nor keeps that memory afterwards.
pub enum Reader {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl Reader {
    pub async fn open(db: &Db) -> StoreResult<Reader> {
        use sqlx::ConnectOptions;
        Ok(match db {
            Db::Sqlite(pool, _) => {
                let options = (*pool.connect_options())
                    .clone()
                    .pragma("cache_size", "-8192");
                Reader::Sqlite(options.connect().await?)
            }
            Db::Postgres(pool, _) => Reader::Postgres(pool.acquire().await?),
        })
    }

    pub fn backend(&self) -> crate::store::Backend {
        match self {
            Reader::Sqlite(_) => crate::store::Backend::Sqlite,
            Reader::Postgres(_) => crate::store::Backend::Postgres,
        }
    }

    pub async fn close(self) {
        use sqlx::Connection;
        if let Reader::Sqlite(c) = self {
            let _ = c.close().await;
        }
    }
}

/// The rows of one page, as read from the database. Each row is parsed only when it is
/// written, its text borrowed from the page: the reader only counts the rows and finds the
/// last one's key, so that the next page can be read while this one is written.
pub enum PageRows {
    /// SQLite's page as one JSON array of rows (see `packed_page_query`).
    Json {
        text: String,
        count: usize,
        last: Option<Key>,
    },
    /// PostgreSQL's COPY text, a line a row (`ends`: where each line ends).
    Copy { text: Vec<u8>, ends: Vec<usize> },
}

impl PageRows {
    pub fn len(&self) -> usize {
        match self {
            PageRows::Json { count, .. } => *count,
            PageRows::Copy { ends, .. } => ends.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of the page's last row, where the next page starts.
    pub fn last_key(&self, range: &Range) -> StoreResult<Option<Key>> {
        Ok(match self {
            PageRows::Json { last, .. } => last.clone(),
            PageRows::Copy { text, ends } => match ends.len() {
                0 => None,
                n => {
                    let start = if n == 1 { 0 } else { ends[n - 2] + 1 };
                    Some(copy_row(&text[start..ends[n - 1]])?.key(range))
                }
            },
        })
    }

    /// Each row in page order; stops at the first row that cannot be read.
    pub fn each(&self, mut f: impl FnMut(&ExportRow<'_>)) -> StoreResult<()> {
        match self {
            PageRows::Json { text, .. } => {
                let rows: Vec<ExportRow<'_>> = serde_json::from_str(text).map_err(|e| {
                    crate::store::StoreError::Invalid(format!("a packed export page: {e}"))
                })?;
                rows.iter().for_each(f);
            }
            PageRows::Copy { text, ends } => {
                let mut start = 0;
                for &end in ends {
                    f(&copy_row(&text[start..end])?);
                    start = end + 1;
                }
            }
        }
        Ok(())
    }
}

/// One page of a pass, after `after` (or from the start), in key order.
///
/// SQLite packs the page into one JSON value (see `packed_page_query`). PostgreSQL streams
/// it with `COPY (…) TO STDOUT` in its text format: building JSON cost PostgreSQL more than
/// the rows themselves, COPY's rows arrive as they are made (so they are read while the
/// database is still producing the rest of the page), and each row is parsed only when it is
/// written, its text borrowed from the page.
pub async fn page(
    reader: &mut Reader,
    s: &Slice<'_>,
    after: Option<&Key>,
    limit: i64,
) -> StoreResult<PageRows> {
    match reader {
        Reader::Sqlite(conn) => {
            let mut sorted = false;
            loop {
                let built = packed_page_query(s, after, limit, sorted);
                let text: Option<String> = bound!(
                    sqlx::query_scalar::<_, Option<String>>(&built.sql),
                    &built.binds
                )
                .fetch_one(&mut *conn)
                .await?;
                let text = text.unwrap_or_else(|| "[]".into());
                let keys = JsonKeys::scan(&text, s.range)?;
                // The aggregate takes the rows in the subquery's order in practice, though
                // nothing promises it; should they come otherwise, the page is read again
                // with the order stated in the aggregate (which sorts once more).
                if keys.ordered || sorted {
                    return Ok(PageRows::Json {
                        text,
                        count: keys.count,
                        last: keys.last,
                    });
                }
                tracing::warn!("an export page came out of order; reading it again sorted");
                sorted = true;
            }
        }
        Reader::Postgres(conn) => {
            use futures::StreamExt;
            // COPY's rows come in the query's ORDER BY.
            let built = page_query(crate::store::Backend::Postgres, s, after, limit);
            let sql = format!(
                "COPY ({}) TO STDOUT",
                inline(crate::store::Backend::Postgres, &built)?
            );
            let mut stream = conn.copy_out_raw(&sql).await?;
            let mut page = CopyPage::with_capacity(limit);
            while let Some(chunk) = stream.next().await {
                page.push(&chunk?);
            }
            Ok(page.finish())
        }
    }
}

/// A page of COPY text as its messages arrive (a message may end part-way through a line).
struct CopyPage {
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl CopyPage {
    fn with_capacity(rows: i64) -> CopyPage {
        let rows = rows.clamp(0, 10_000) as usize;
        CopyPage {
            text: Vec::with_capacity(rows * 256),
            ends: Vec::with_capacity(rows),
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        let at = self.text.len();
        self.text.extend_from_slice(chunk);
        self.ends.extend(
            chunk
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| at + i),
        );
    }

    fn finish(mut self) -> PageRows {
        if self.text.last().is_some_and(|&b| b != b'\n') {
            self.ends.push(self.text.len());
        }
        PageRows::Copy {
            text: self.text,
            ends: self.ends,
        }
    }
}

/// How many rows a pass holds, counting at most `cap` (None: all of them).
pub async fn count(reader: &mut Reader, s: &Slice<'_>, cap: Option<i64>) -> StoreResult<i64> {
    let mut b = Builder::new(reader.backend());
    let (sql, _) = scope(&mut b, s, true);
    let sql = match cap {
        Some(cap) => {
            let lim = b.int(cap);
            format!("SELECT COUNT(*) FROM (SELECT 1 AS one FROM {sql} LIMIT {lim}) AS capped")
        }
        None => format!("SELECT COUNT(*) FROM {sql}"),
    };
    let built = b.finish(sql);
    Ok(
        on_reader!(reader, conn => bound!(sqlx::query_scalar::<_, i64>(&built.sql), &built.binds).fetch_one(conn).await?),
    )
}

/// The metadata keys these services' payments carry, in order, at most `limit`. Each service's
/// keys are walked one index seek at a time (a loose index scan), so the cost follows the
/// number of keys, not the millions of payments that carry them.
pub async fn metadata_keys(
    reader: &mut Reader,
    services: &[i64],
    limit: i64,
) -> StoreResult<Vec<String>> {
    let sql = "WITH RECURSIVE k(key, n) AS ( \
           SELECT (SELECT MIN(key) FROM journey_metadata WHERE service_id = $1), 1 \
           UNION ALL \
           SELECT (SELECT MIN(m.key) FROM journey_metadata m WHERE m.service_id = $1 AND m.key > k.key), n + 1 \
           FROM k WHERE k.key IS NOT NULL AND n < $2 \
         ) SELECT key FROM k WHERE key IS NOT NULL";
    let mut keys = std::collections::BTreeSet::new();
    for service in services {
        let found: Vec<String> = on_reader!(reader, conn => sqlx::query_scalar::<_, String>(sql)
            .bind(*service)
            .bind(limit)
            .fetch_all(conn)
            .await?);
        keys.extend(found);
    }
    Ok(keys.into_iter().take(limit.max(0) as usize).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::exports::copy::tests::{line, ROW};

    #[test]
    fn a_copy_line_becomes_a_row_across_message_boundaries() {
        let mut bytes = line(&ROW);
        bytes.push(b'\n');
        let mut second = ROW;
        second[0] = "8";
        bytes.extend(line(&second));
        bytes.push(b'\n');
        // Split the two lines at every point: the rows come out the same.
        for cut in 0..bytes.len() {
            let mut page = CopyPage::with_capacity(2);
            page.push(&bytes[..cut]);
            page.push(&bytes[cut..]);
            let page = page.finish();
            assert_eq!(page.len(), 2, "cut at {cut}");
            let mut rows = Vec::new();
            page.each(|r| {
                rows.push((
                    r.id,
                    r.reference.to_string(),
                    r.email.is_none(),
                    r.amount,
                    r.finished,
                    r.fee,
                    r.metadata.as_deref().map(str::to_string),
                ))
            })
            .unwrap();
            let range = Range::Created {
                from: 0,
                to: i64::MAX,
            };
            assert_eq!(page.last_key(&range).unwrap().map(|k| k.id), Some(8));
            assert_eq!((rows[0].0, rows[1].0), (7, 8));
            assert_eq!(rows[0].1, "REF\t1");
            assert!(rows[0].2);
            assert_eq!(rows[0].3, 1250);
            assert!(rows[0].4);
            assert_eq!(rows[0].5, Some(25));
            assert_eq!(rows[0].6.as_deref(), Some("{\"a\":\"b\"}"));
        }
        // The last line may come without its line end.
        let mut page = CopyPage::with_capacity(1);
        page.push(&line(&ROW));
        let page = page.finish();
        assert_eq!(page.len(), 1);
        page.each(|r| assert_eq!(r.id, 7)).unwrap();
    }
}
