//! Exports: the rows of a reconciliation export, page by page in a stable order (keyset, never
//! OFFSET), their count, the metadata keys that become columns, the month-end totals by
//! settlement date, and the records of background exports.
//!
//! Payment rows are journeys; refund rows are the platform's successful refunds joined to
//! their payment (and, when paydesk made the refund, to the request: reason, who asked, who
//! approved). The page, count and totals queries share one WHERE clause per pass, so that a
//! pack's totals are the sums of the exported rows by construction.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::search::{bound, Bind, Builder, Built};
use super::{Db, StoreResult, Tx};
use crate::on_db;

/// Which date an export's range is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DateBasis {
    Created,
    Settled,
}

/// Which kind of row a pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    Payments,
    Refunds,
}

/// The range of one pass: microseconds `[from, to)` on the created time, or settlement
/// dates `from..=to` (`YYYY-MM-DD`; the platform gives settlement as a date).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    Created { from: i64, to: i64 },
    Settled { from: String, to: String },
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Key {
    pub date: Option<String>,
    pub created_at: i64,
    pub id: i64,
}

/// One pass of an export in one service.
#[derive(Debug, Clone)]
pub struct Slice<'a> {
    pub service_id: i64,
    pub pass: Pass,
    pub range: &'a Range,
    /// (status, state code) pairs a payment must match; empty: any status.
    pub statuses: &'a [(&'static str, Option<&'static str>)],
}

/// A row as the export writes it. A page of rows comes from the database as one JSON array of
/// arrays (see `packed_page_query`), each inner array holding these fields in this order.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportRow {
    /// The journey's id (payment rows) or the platform refund's row id (refund rows).
    pub id: i64,
    /// The row's own settlement date.
    pub settled_date: Option<String>,
    /// When the payment (or the refund) was created.
    pub created_at: i64,
    pub payment_id: String,
    pub reference: String,
    pub description: String,
    pub email: Option<String>,
    pub amount: i64,
    pub card_brand: Option<String>,
    pub cardholder_name: Option<String>,
    pub expiry_date: Option<String>,
    pub last_digits: Option<String>,
    pub status: String,
    pub state_code: Option<String>,
    pub state_message: Option<String>,
    /// SQLite gives 0 / 1, PostgreSQL true / false.
    #[serde(deserialize_with = "flag")]
    pub finished: bool,
    pub provider_id: Option<String>,
    pub corporate_surcharge: Option<i64>,
    pub total_amount: Option<i64>,
    pub wallet_type: Option<String>,
    pub fee: Option<i64>,
    pub card_type: Option<String>,
    pub payment_provider: Option<String>,
    pub case_reference: Option<String>,
    pub metadata: Option<String>,
    pub refund_id: Option<String>,
    pub refund_amount: Option<i64>,
    pub refund_reason: Option<String>,
    pub requested_by: Option<String>,
    pub approved_by: Option<String>,
}

impl ExportRow {
    pub fn key(&self, range: &Range) -> Key {
        Key {
            date: match range {
                Range::Created { .. } => None,
                Range::Settled { .. } => self.settled_date.clone(),
            },
            created_at: self.created_at,
            id: self.id,
        }
    }
}

const PAYMENT_COLUMNS: &str = "j.id, j.settled_date, j.created_at, j.payment_id, j.reference, \
    j.description, j.email, j.amount, j.card_brand, j.cardholder_name, j.expiry_date, j.last_digits, \
    j.status, j.state_code, j.state_message, j.finished, j.provider_id, j.corporate_surcharge, \
    j.total_amount, j.wallet_type, j.fee, j.card_type, j.payment_provider, j.case_reference, \
    j.metadata, CAST(NULL AS TEXT) AS refund_id, CAST(NULL AS BIGINT) AS refund_amount, \
    CAST(NULL AS TEXT) AS refund_reason, CAST(NULL AS TEXT) AS requested_by, \
    CAST(NULL AS TEXT) AS approved_by";

const REFUND_COLUMNS: &str = "r.id, r.settled_date, r.created_at, j.payment_id, j.reference, \
    j.description, j.email, j.amount, j.card_brand, j.cardholder_name, j.expiry_date, j.last_digits, \
    j.status, j.state_code, j.state_message, j.finished, j.provider_id, j.corporate_surcharge, \
    j.total_amount, j.wallet_type, j.fee, j.card_type, j.payment_provider, j.case_reference, \
    j.metadata, r.refund_id, r.amount AS refund_amount, rr.reason AS refund_reason, \
    asker.email AS requested_by, approver.email AS approved_by";

const REFUND_FROM: &str = "platform_refunds r \
    JOIN journeys j ON j.service_id = r.service_id AND j.payment_id = r.payment_id \
    LEFT JOIN refund_requests rr ON rr.service_id = r.service_id AND rr.platform_refund_id = r.refund_id \
    LEFT JOIN staff asker ON asker.id = rr.requested_by \
    LEFT JOIN staff approver ON approver.id = rr.decided_by AND rr.approval_required";

/// The FROM and WHERE of a pass, and its order columns (date column, created column, id).
fn scope(b: &mut Builder, s: &Slice<'_>) -> (String, [&'static str; 3]) {
    let (table, from, cols) = match s.pass {
        Pass::Payments => (
            "j",
            "journeys j",
            ["j.settled_date", "j.created_at", "j.id"],
        ),
        Pass::Refunds => ("r", REFUND_FROM, ["r.settled_date", "r.created_at", "r.id"]),
    };
    let service = b.int(s.service_id);
    let mut cond = vec![format!("{table}.service_id = {service}")];
    match s.range {
        Range::Created { from, to } => {
            let (f, t) = (b.int(*from), b.int(*to));
            cond.push(format!(
                "{table}.created_at >= {f} AND {table}.created_at < {t}"
            ));
        }
        Range::Settled { from, to } => {
            let (f, t) = (b.text(from), b.text(to));
            cond.push(format!(
                "{table}.settled_date >= {f} AND {table}.settled_date <= {t}"
            ));
        }
    }
    match s.pass {
        Pass::Payments if !s.statuses.is_empty() => {
            let any: Vec<String> = s
                .statuses
                .iter()
                .map(|(status, code)| {
                    let st = b.text(status);
                    match code {
                        Some(c) => format!("(j.status = {st} AND j.state_code = {})", b.text(c)),
                        None => format!("j.status = {st}"),
                    }
                })
                .collect();
            cond.push(format!("({})", any.join(" OR ")));
        }
        Pass::Payments => {}
        // Refund rows are money that has left: the refunds the platform says succeeded.
        Pass::Refunds => cond.push("r.status = 'success'".into()),
    }
    (format!("{from} WHERE {}", cond.join(" AND ")), cols)
}

/// One page of a pass, after `after` (or from the start).
pub fn page_query(
    backend: super::Backend,
    s: &Slice<'_>,
    after: Option<&Key>,
    limit: i64,
) -> Built {
    let mut b = Builder::new(backend);
    // After a key, the range starts at the key itself, and the rows sharing its date or time
    // are told apart by what follows. (Left as a row-value comparison beside the range's own
    // start, SQLite seeks to the range's start and skips every row before the key: each page
    // then costs as much as all the pages before it.)
    let from_key = after.map(|k| match s.range {
        Range::Created { to, .. } => Range::Created {
            from: k.created_at,
            to: *to,
        },
        Range::Settled { to, .. } => Range::Settled {
            from: k.date.clone().unwrap_or_default(),
            to: to.clone(),
        },
    });
    let keyed = Slice {
        range: from_key.as_ref().unwrap_or(s.range),
        ..s.clone()
    };
    let (mut sql, [date, created, id]) = scope(&mut b, &keyed);
    let columns = match s.pass {
        Pass::Payments => PAYMENT_COLUMNS,
        Pass::Refunds => REFUND_COLUMNS,
    };
    let by_settled = matches!(s.range, Range::Settled { .. });
    if let Some(k) = after {
        if by_settled {
            let d = b.text(k.date.as_deref().unwrap_or(""));
            let (c1, c2, i) = (b.int(k.created_at), b.int(k.created_at), b.int(k.id));
            sql.push_str(&format!(
                " AND ({date} > {d} OR {created} > {c1} OR ({created} = {c2} AND {id} > {i}))"
            ));
        } else {
            let (c, i) = (b.int(k.created_at), b.int(k.id));
            sql.push_str(&format!(" AND ({created} > {c} OR {id} > {i})"));
        }
    }
    let order = if by_settled {
        format!("{date}, {created}, {id}")
    } else {
        format!("{created}, {id}")
    };
    let lim = b.int(limit);
    b.finish(format!(
        "SELECT {columns} FROM {sql} ORDER BY {order} LIMIT {lim}"
    ))
}

fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Int(i) => i != 0,
    })
}

/// `ExportRow`'s fields, in order, as the page query names them.
const ROW_FIELDS: &str = "id, settled_date, created_at, payment_id, reference, description, \
    email, amount, card_brand, cardholder_name, expiry_date, last_digits, status, state_code, \
    state_message, finished, provider_id, corporate_surcharge, total_amount, wallet_type, fee, \
    card_type, payment_provider, case_reference, metadata, refund_id, refund_amount, \
    refund_reason, requested_by, approved_by";

/// One page of a pass packed by the database into a single JSON value: an array with one
/// array of `ExportRow`'s fields per row, in page order. Drivers pay a fixed cost for every
/// value of every row they hand over (sqlx's SQLite driver copies each value and passes each
/// row between threads); one value per page of 5,000 rows keeps that cost out of the export,
/// and the database's own JSON writer is fast.
pub fn packed_page_query(
    backend: super::Backend,
    s: &Slice<'_>,
    after: Option<&Key>,
    limit: i64,
) -> Built {
    let Built { sql, binds } = page_query(backend, s, after, limit);
    // The aggregate takes the rows as the ordered subquery gives them; `page` sorts them
    // again in any case, so the database need not sort twice.
    let sql = match backend {
        super::Backend::Sqlite => {
            format!("SELECT json_group_array(json_array({ROW_FIELDS})) FROM ({sql}) AS page")
        }
        super::Backend::Postgres => format!(
            "SELECT COALESCE(json_agg(json_build_array({ROW_FIELDS})), '[]')::text \
             FROM ({sql}) AS page"
        ),
    };
    Built { sql, binds }
}

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

    pub fn backend(&self) -> super::Backend {
        match self {
            Reader::Sqlite(_) => super::Backend::Sqlite,
            Reader::Postgres(_) => super::Backend::Postgres,
        }
    }

    pub async fn close(self) {
        use sqlx::Connection;
        if let Reader::Sqlite(c) = self {
            let _ = c.close().await;
        }
    }
}

/// The rows of a packed page (`packed_page_query`), in key order.
pub async fn page(
    reader: &mut Reader,
    built: &Built,
    range: &Range,
) -> StoreResult<Vec<ExportRow>> {
    let text: Option<String> = on_reader!(reader, conn => bound!(sqlx::query_scalar::<_, Option<String>>(&built.sql), &built.binds).fetch_one(conn).await?);
    let mut rows: Vec<ExportRow> = match text {
        Some(t) => serde_json::from_str(&t)
            .map_err(|e| super::StoreError::Invalid(format!("a packed export page: {e}")))?,
        None => Vec::new(),
    };
    // The page is in order already; this makes sure of it, cheaply.
    match range {
        Range::Created { .. } => rows.sort_by_key(|r| (r.created_at, r.id)),
        Range::Settled { .. } => rows.sort_by(|a, b| {
            (&a.settled_date, a.created_at, a.id).cmp(&(&b.settled_date, b.created_at, b.id))
        }),
    }
    Ok(rows)
}

/// How many rows a pass holds, counting at most `cap` (None: all of them).
pub async fn count(reader: &mut Reader, s: &Slice<'_>, cap: Option<i64>) -> StoreResult<i64> {
    let mut b = Builder::new(reader.backend());
    let (sql, _) = scope(&mut b, s);
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

/// One settlement date's payments, or refunds, in one service.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DayTotal {
    pub settled_date: String,
    pub count: i64,
    /// Payments: what the payers paid (total amount, with any surcharge). Refunds: refunded.
    pub gross: i64,
    /// Payments only: the platform's fees.
    pub fees: i64,
}

/// Totals by settlement date of one pass, over the same rows a settled-date export holds.
pub async fn totals_by_settlement(
    db: &Db,
    service_id: i64,
    pass: Pass,
    from: &str,
    to: &str,
) -> StoreResult<Vec<DayTotal>> {
    let range = Range::Settled {
        from: from.to_string(),
        to: to.to_string(),
    };
    let s = Slice {
        service_id,
        pass,
        range: &range,
        statuses: &[],
    };
    let mut b = Builder::new(db.backend());
    let (sql, [date, ..]) = scope(&mut b, &s);
    let sums = match pass {
        Pass::Payments => {
            "CAST(SUM(COALESCE(j.total_amount, j.amount)) AS BIGINT) AS gross, \
             CAST(SUM(COALESCE(j.fee, 0)) AS BIGINT) AS fees"
        }
        Pass::Refunds => "CAST(SUM(r.amount) AS BIGINT) AS gross, CAST(0 AS BIGINT) AS fees",
    };
    let built = b.finish(format!(
        "SELECT {date} AS settled_date, COUNT(*) AS count, {sums} FROM {sql} GROUP BY {date} ORDER BY {date}"
    ));
    Ok(
        on_db!(db, pool => bound!(sqlx::query_as::<_, DayTotal>(&built.sql), &built.binds).fetch_all(pool).await?),
    )
}

// ---- background exports -------------------------------------------------------------------

/// A background export as stored.
#[derive(Debug, Clone, FromRow)]
pub struct ExportRecord {
    pub id: i64,
    pub requested_by: i64,
    /// JSON array of service ids.
    pub service_ids: String,
    /// JSON: the filter as asked for (see `exports::Filter`).
    pub filter: String,
    pub gzip: bool,
    pub state: String,
    pub rows_expected: i64,
    pub rows_written: i64,
    pub bytes_written: i64,
    /// JSON: where the writing has got to (see `exports::Progress`).
    pub progress: Option<String>,
    pub file_name: String,
    pub failure: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub updated_at: i64,
}

const RECORD: &str = "id, requested_by, service_ids, filter, gzip, state, rows_expected, rows_written, bytes_written, progress, file_name, failure, created_at, started_at, finished_at, expires_at, updated_at";

/// What a new background export is.
pub struct NewExport<'a> {
    pub requested_by: i64,
    pub service_ids: &'a str,
    pub filter: &'a str,
    pub gzip: bool,
    pub rows_expected: i64,
    pub file_name: &'a str,
}

pub async fn insert(tx: &mut Tx, e: &NewExport<'_>, now: i64) -> StoreResult<i64> {
    Ok(crate::on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "INSERT INTO exports (requested_by, service_ids, filter, gzip, state, rows_expected, \
         rows_written, bytes_written, file_name, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'queued', $5, 0, 0, $6, $7, $7) RETURNING id")
        .bind(e.requested_by)
        .bind(e.service_ids)
        .bind(e.filter)
        .bind(e.gzip)
        .bind(e.rows_expected)
        .bind(e.file_name)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?))
}

pub async fn get(db: &Db, id: i64) -> StoreResult<Option<ExportRecord>> {
    let sql = format!("SELECT {RECORD} FROM exports WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, ExportRecord>(&sql).bind(id).fetch_optional(pool).await?),
    )
}

/// The newest exports, at most `limit`: everyone's (None) or one person's.
pub async fn recent(
    db: &Db,
    requested_by: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<ExportRecord>> {
    let mut b = Builder::new(db.backend());
    let filter = match requested_by {
        Some(who) => format!("WHERE requested_by = {}", b.int(who)),
        None => String::new(),
    };
    let lim = b.int(limit);
    let built = b.finish(format!(
        "SELECT {RECORD} FROM exports {filter} ORDER BY created_at DESC, id DESC LIMIT {lim}"
    ));
    Ok(
        on_db!(db, pool => bound!(sqlx::query_as::<_, ExportRecord>(&built.sql), &built.binds).fetch_all(pool).await?),
    )
}

/// Mark an export as being written (first slice) and return it, if it is still to be done.
pub async fn start(tx: &mut Tx, id: i64, now: i64) -> StoreResult<Option<ExportRecord>> {
    let sql = format!(
        "UPDATE exports SET state = 'running', started_at = COALESCE(started_at, $2), updated_at = $2 \
         WHERE id = $1 AND state IN ('queued', 'running') RETURNING {RECORD}"
    );
    Ok(
        crate::on_tx!(tx, conn => sqlx::query_as::<_, ExportRecord>(&sql)
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?),
    )
}

/// Record how far the writing has got: rows and bytes written and where to go on from.
pub async fn set_progress(
    db: &Db,
    id: i64,
    rows_written: i64,
    bytes_written: i64,
    progress: &str,
    now: i64,
) -> StoreResult<()> {
    on_db!(db, pool => sqlx::query(
        "UPDATE exports SET rows_written = $2, bytes_written = $3, progress = $4, updated_at = $5 \
         WHERE id = $1 AND state = 'running'")
        .bind(id)
        .bind(rows_written)
        .bind(bytes_written)
        .bind(progress)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// The exact row count, once the first slice has counted it.
pub async fn set_expected(db: &Db, id: i64, rows_expected: i64) -> StoreResult<()> {
    on_db!(db, pool => sqlx::query("UPDATE exports SET rows_expected = $2 WHERE id = $1")
        .bind(id)
        .bind(rows_expected)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

pub async fn finish(
    tx: &mut Tx,
    id: i64,
    rows_written: i64,
    bytes_written: i64,
    expires_at: i64,
    now: i64,
) -> StoreResult<bool> {
    let done = crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE exports SET state = 'finished', rows_written = $2, bytes_written = $3, \
         expires_at = $4, finished_at = $5, updated_at = $5, progress = NULL \
         WHERE id = $1 AND state = 'running'")
        .bind(id)
        .bind(rows_written)
        .bind(bytes_written)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    Ok(done == 1)
}

pub async fn fail(tx: &mut Tx, id: i64, failure: &str, now: i64) -> StoreResult<bool> {
    let done = crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE exports SET state = 'failed', failure = $2, finished_at = $3, updated_at = $3 \
         WHERE id = $1 AND state IN ('queued', 'running')")
        .bind(id)
        .bind(failure)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    Ok(done == 1)
}

/// Finished exports whose file is due for deletion.
pub async fn due_for_removal(db: &Db, now: i64, limit: i64) -> StoreResult<Vec<ExportRecord>> {
    let sql = format!(
        "SELECT {RECORD} FROM exports WHERE state = 'finished' AND expires_at <= $1 \
         ORDER BY expires_at LIMIT $2"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, ExportRecord>(&sql).bind(now).bind(limit).fetch_all(pool).await?),
    )
}

/// Mark an export's file as deleted; false if another instance got there first.
pub async fn expire(tx: &mut Tx, id: i64, now: i64) -> StoreResult<bool> {
    let done = crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE exports SET state = 'expired', updated_at = $2 WHERE id = $1 AND state = 'finished'")
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    Ok(done == 1)
}

/// The text of a built query with its values, for the bench's "same SQL run directly".
pub fn inline(built: &Built) -> String {
    let mut sql = built.sql.clone();
    // Highest placeholder first, so that $1 does not eat the start of $12.
    for (i, bind) in built.binds.iter().enumerate().rev() {
        let value = match bind {
            Bind::Int(v) => v.to_string(),
            Bind::Text(t) => format!("'{}'", t.replace('\'', "''")),
        };
        sql = sql.replace(&format!("${}", i + 1), &value);
    }
    sql
}
