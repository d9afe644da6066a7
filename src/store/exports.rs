//! Exports: the rows of a reconciliation export, page by page in a stable order (keyset, never
//! OFFSET), their count, the metadata keys that become columns, the month-end totals by
//! settlement date, and the records of background exports.
//!
//! Payment rows are journeys; refund rows are the platform's successful refunds joined to
//! their payment (and, when paydesk made the refund, to the request: reason, who asked, who
//! approved). The page, count and totals queries share one WHERE clause per pass, so that a
//! pack's totals are the sums of the exported rows by construction.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::sql::{bound, inline, Builder, Built};
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

/// A row as the export writes it, its text borrowed from the page it was read from where it
/// can (a field with escapes in its JSON or COPY text is unescaped into its own string).
/// A page of SQLite rows comes from the database as one JSON array of arrays (see
/// `packed_page_query`), each inner array holding these fields in this order.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportRow<'a> {
    /// The journey's id (payment rows) or the platform refund's row id (refund rows).
    pub id: i64,
    /// The row's own settlement date.
    #[serde(borrow)]
    pub settled_date: Option<Cow<'a, str>>,
    /// When the payment (or the refund) was created.
    pub created_at: i64,
    #[serde(borrow)]
    pub payment_id: Cow<'a, str>,
    #[serde(borrow)]
    pub reference: Cow<'a, str>,
    #[serde(borrow)]
    pub description: Cow<'a, str>,
    #[serde(borrow)]
    pub email: Option<Cow<'a, str>>,
    pub amount: i64,
    #[serde(borrow)]
    pub card_brand: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub cardholder_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub expiry_date: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub last_digits: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub status: Cow<'a, str>,
    #[serde(borrow)]
    pub state_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub state_message: Option<Cow<'a, str>>,
    /// SQLite gives 0 / 1, PostgreSQL true / false.
    #[serde(deserialize_with = "flag")]
    pub finished: bool,
    #[serde(borrow)]
    pub provider_id: Option<Cow<'a, str>>,
    pub corporate_surcharge: Option<i64>,
    pub total_amount: Option<i64>,
    #[serde(borrow)]
    pub wallet_type: Option<Cow<'a, str>>,
    pub fee: Option<i64>,
    #[serde(borrow)]
    pub card_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub payment_provider: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub case_reference: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub metadata: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub refund_id: Option<Cow<'a, str>>,
    pub refund_amount: Option<i64>,
    #[serde(borrow)]
    pub refund_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub requested_by: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub approved_by: Option<Cow<'a, str>>,
}

impl ExportRow<'_> {
    pub fn key(&self, range: &Range) -> Key {
        Key {
            date: match range {
                Range::Created { .. } => None,
                Range::Settled { .. } => self.settled_date.as_deref().map(str::to_string),
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
/// Without `lower`, the range's start is left out (a keyed page on PostgreSQL states it as
/// a row comparison instead).
fn scope(b: &mut Builder, s: &Slice<'_>, lower: bool) -> (String, [&'static str; 3]) {
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
    cond.extend(match s.range {
        Range::Created { from, to } => b.half_open(
            &format!("{table}.created_at"),
            lower.then_some(*from),
            Some(*to),
        ),
        Range::Settled { from, to } => b.dates(
            &format!("{table}.settled_date"),
            lower.then_some(from.as_str()),
            Some(to),
        ),
    });
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
    let by_settled = matches!(s.range, Range::Settled { .. });
    let columns = match s.pass {
        Pass::Payments => PAYMENT_COLUMNS,
        Pass::Refunds => REFUND_COLUMNS,
    };
    let (sql, [date, created, id]) = match (after, backend) {
        (None, _) => scope(&mut b, s, true),
        // After a key, SQLite's range starts at the key itself, and the rows sharing its date
        // or time are told apart by what follows. (Left as a row-value comparison beside the
        // range's own start, SQLite seeks to the range's start and skips every row before the
        // key: each page then costs as much as all the pages before it.)
        (Some(k), super::Backend::Sqlite) => {
            let from_key = match s.range {
                Range::Created { to, .. } => Range::Created {
                    from: k.created_at,
                    to: *to,
                },
                Range::Settled { to, .. } => Range::Settled {
                    from: k.date.clone().unwrap_or_default(),
                    to: to.clone(),
                },
            };
            let keyed = Slice {
                range: &from_key,
                ..s.clone()
            };
            let (mut sql, [date, created, id]) = scope(&mut b, &keyed, true);
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
            (sql, [date, created, id])
        }
        // PostgreSQL takes the key as a row comparison, which its index seeks to; the range's
        // start is left out, as the key is past it. (With the start kept, or the key spelt as
        // an OR, the planner multiplies the selectivities, expects a few hundred rows, and
        // sorts everything left in the range for each page.)
        (Some(k), super::Backend::Postgres) => {
            let (mut sql, [date, created, id]) = scope(&mut b, s, false);
            let (c, i) = (b.int(k.created_at), b.int(k.id));
            if by_settled {
                let d = b.text(k.date.as_deref().unwrap_or(""));
                sql.push_str(&format!(" AND ({date}, {created}, {id}) > ({d}, {c}, {i})"));
            } else {
                sql.push_str(&format!(" AND ({created}, {id}) > ({c}, {i})"));
            }
            (sql, [date, created, id])
        }
    };
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

/// A flag as SQLite (0 / 1) or PostgreSQL (true / false) gives it, read without trying one
/// form and then the other.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct Flag;
    impl serde::de::Visitor<'_> for Flag {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a boolean or 0 / 1")
        }
        fn visit_bool<E>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_i64<E>(self, v: i64) -> Result<bool, E> {
            Ok(v != 0)
        }
        fn visit_u64<E>(self, v: u64) -> Result<bool, E> {
            Ok(v != 0)
        }
    }
    d.deserialize_any(Flag)
}

/// `ExportRow`'s fields, in order, as the page query names them.
const ROW_FIELDS: &str = "id, settled_date, created_at, payment_id, reference, description, \
    email, amount, card_brand, cardholder_name, expiry_date, last_digits, status, state_code, \
    state_message, finished, provider_id, corporate_surcharge, total_amount, wallet_type, fee, \
    card_type, payment_provider, case_reference, metadata, refund_id, refund_amount, \
    refund_reason, requested_by, approved_by";

/// One page of a pass packed by SQLite into a single JSON value: an array with one array of
/// `ExportRow`'s fields per row, in page order. sqlx's SQLite driver pays a fixed cost for
/// every value of every row it hands over (it copies each value and passes each row between
/// threads); one value per page of 5,000 rows keeps that cost out of the export, and SQLite's
/// JSON writer is fast. The aggregate takes the rows as the ordered subquery gives them
/// (checked as they are read); `sorted` states the order in the aggregate too.
pub fn packed_page_query(s: &Slice<'_>, after: Option<&Key>, limit: i64, sorted: bool) -> Built {
    let Built { sql, binds } = page_query(super::Backend::Sqlite, s, after, limit);
    let order = match (sorted, s.range) {
        (false, _) => "",
        (true, Range::Created { .. }) => " ORDER BY created_at, id",
        (true, Range::Settled { .. }) => " ORDER BY settled_date, created_at, id",
    };
    Built {
        sql: format!(
            "SELECT json_group_array(json_array({ROW_FIELDS}){order}) FROM ({sql}) AS page"
        ),
        binds,
    }
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
                    super::StoreError::Invalid(format!("a packed export page: {e}"))
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

/// What the reader needs of a JSON page: how many rows, the last one's key, and whether
/// the rows came in key order.
struct JsonKeys {
    by_settled: bool,
    count: usize,
    last: Option<Key>,
    ordered: bool,
}

impl JsonKeys {
    fn scan(text: &str, range: &Range) -> StoreResult<JsonKeys> {
        use serde::de::Deserializer as _;
        let mut keys = JsonKeys {
            by_settled: matches!(range, Range::Settled { .. }),
            count: 0,
            last: None,
            ordered: true,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        (&mut de)
            .deserialize_seq(&mut keys)
            .and_then(|()| de.end())
            .map_err(|e| super::StoreError::Invalid(format!("a packed export page: {e}")))?;
        Ok(keys)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut JsonKeys {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of export rows")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut rows: A) -> Result<(), A::Error> {
        while let Some(RowKey(id, date, created_at)) = rows.next_element::<RowKey<'de>>()? {
            let key = Key {
                date: if self.by_settled {
                    date.map(Cow::into_owned)
                } else {
                    None
                },
                created_at,
                id,
            };
            if let Some(before) = &self.last {
                let order = |k: &Key| (k.date.clone(), k.created_at, k.id);
                if order(before) >= order(&key) {
                    self.ordered = false;
                }
            }
            self.last = Some(key);
            self.count += 1;
        }
        Ok(())
    }
}

/// The key fields at the head of a packed row (id, settled date, created), the rest skipped.
struct RowKey<'a>(i64, Option<Cow<'a, str>>, i64);

impl<'de> Deserialize<'de> for RowKey<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = RowKey<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an export row")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut row: A,
            ) -> Result<RowKey<'de>, A::Error> {
                use serde::de::Error;
                #[derive(Deserialize)]
                struct Date<'a>(#[serde(borrow)] Option<Cow<'a, str>>);
                let id: i64 = row
                    .next_element()?
                    .ok_or_else(|| A::Error::custom("no id"))?;
                let Date(date) = row
                    .next_element()?
                    .ok_or_else(|| A::Error::custom("no settled date"))?;
                let created: i64 = row
                    .next_element()?
                    .ok_or_else(|| A::Error::custom("no created time"))?;
                while row.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(RowKey(id, date, created))
            }
        }
        d.deserialize_seq(Fields)
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
            let built = page_query(super::Backend::Postgres, s, after, limit);
            let sql = format!(
                "COPY ({}) TO STDOUT",
                inline(super::Backend::Postgres, &built)?
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

/// One line of PostgreSQL's COPY text format as an `ExportRow` (its fields in `ROW_FIELDS`
/// order): fields split by tabs, `\N` for NULL, and backslash escapes for backslash, tab,
/// newline and the other control characters.
fn copy_row(line: &[u8]) -> StoreResult<ExportRow<'_>> {
    let bad = |what: &str| super::StoreError::Invalid(format!("an export row from COPY: {what}"));
    let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
    let mut fields = line.split('\t').map(copy_field);
    let mut next = || fields.next().ok_or_else(|| bad("too few fields"));
    let int = |v: Option<Cow<'_, str>>| -> StoreResult<Option<i64>> {
        v.map(|t| {
            t.parse::<i64>()
                .map_err(|_| bad(&format!("not a number: {t}")))
        })
        .transpose()
    };
    fn required<'a>(v: Option<Cow<'a, str>>, name: &str) -> StoreResult<Cow<'a, str>> {
        v.ok_or_else(|| super::StoreError::Invalid(format!("an export row from COPY: no {name}")))
    }
    let row = ExportRow {
        id: int(next()?)?.ok_or_else(|| bad("no id"))?,
        settled_date: next()?,
        created_at: int(next()?)?.ok_or_else(|| bad("no created_at"))?,
        payment_id: required(next()?, "payment_id")?,
        reference: required(next()?, "reference")?,
        description: required(next()?, "description")?,
        email: next()?,
        amount: int(next()?)?.ok_or_else(|| bad("no amount"))?,
        card_brand: next()?,
        cardholder_name: next()?,
        expiry_date: next()?,
        last_digits: next()?,
        status: required(next()?, "status")?,
        state_code: next()?,
        state_message: next()?,
        finished: matches!(next()?.as_deref(), Some("t" | "true" | "1")),
        provider_id: next()?,
        corporate_surcharge: int(next()?)?,
        total_amount: int(next()?)?,
        wallet_type: next()?,
        fee: int(next()?)?,
        card_type: next()?,
        payment_provider: next()?,
        case_reference: next()?,
        metadata: next()?,
        refund_id: next()?,
        refund_amount: int(next()?)?,
        refund_reason: next()?,
        requested_by: next()?,
        approved_by: next()?,
    };
    if fields.next().is_some() {
        return Err(bad("too many fields"));
    }
    Ok(row)
}

/// One field of a COPY text line: None for `\N`, else its text with escapes undone
/// (borrowed when it has none).
fn copy_field(raw: &str) -> Option<Cow<'_, str>> {
    if raw == "\\N" {
        return None;
    }
    if !raw.contains('\\') {
        return Some(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('v') => '\u{b}',
            Some(other) => other,
            None => '\\',
        });
    }
    Some(Cow::Owned(out))
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
    let (sql, [date, ..]) = scope(&mut b, &s, true);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_fields_are_unescaped_and_null_is_told_from_its_text() {
        assert_eq!(copy_field("\\N"), None);
        assert_eq!(copy_field("\\\\N").as_deref(), Some("\\N"));
        assert_eq!(
            copy_field("a\\tb\\nc\\rd\\\\e").as_deref(),
            Some("a\tb\nc\rd\\e")
        );
        assert!(matches!(copy_field("plain"), Some(Cow::Borrowed("plain"))));
        assert_eq!(copy_field("").as_deref(), Some(""));
        assert!(copy_row(&[0xff, 0xfe]).is_err());
    }

    fn line(fields: &[&str]) -> Vec<u8> {
        fields.join("\t").into_bytes()
    }

    const ROW: [&str; 30] = [
        "7",
        "2026-10-02",
        "1790000000000000",
        "pay-1",
        "REF\\t1",
        "A description",
        "\\N",
        "1250",
        "Visa",
        "\\N",
        "04/29",
        "4242",
        "success",
        "\\N",
        "\\N",
        "t",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
        "25",
        "debit",
        "sandbox",
        "CASE-1",
        "{\"a\":\"b\"}",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
    ];

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

    #[test]
    fn a_copy_line_of_the_wrong_shape_is_an_error_not_a_row() {
        assert!(copy_row(&line(&ROW[..29])).is_err());
        let mut more = ROW.to_vec();
        more.push("extra");
        assert!(copy_row(&line(&more)).is_err());
        let mut not_number = ROW;
        not_number[7] = "12.50";
        assert!(copy_row(&line(&not_number)).is_err());
        let mut no_id = ROW;
        no_id[0] = "\\N";
        assert!(copy_row(&line(&no_id)).is_err());
    }

    #[test]
    fn a_json_page_gives_its_count_last_key_and_order_before_its_rows_are_read() {
        let row = |id: i64, date: &str, created: i64, reference: &str| {
            serde_json::json!([
                id,
                date,
                created,
                "pay",
                reference,
                "d",
                null,
                100,
                null,
                null,
                null,
                null,
                "success",
                null,
                null,
                1,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                "{\"k\":\"v\"}",
                null,
                null,
                null,
                null,
                null
            ])
        };
        let created = Range::Created {
            from: 0,
            to: i64::MAX,
        };
        let settled = Range::Settled {
            from: "2026-01-01".into(),
            to: "2026-12-31".into(),
        };
        let text = serde_json::json!([
            row(1, "2026-10-02", 10, "A"),
            row(2, "2026-10-01", 10, "tab\there \"quoted\""),
            row(3, "2026-10-01", 11, "C"),
        ])
        .to_string();
        let keys = JsonKeys::scan(&text, &created).unwrap();
        assert_eq!((keys.count, keys.ordered), (3, true));
        assert_eq!(
            keys.last,
            Some(Key {
                date: None,
                created_at: 11,
                id: 3
            })
        );
        // By settlement date the same rows are out of order.
        let keys = JsonKeys::scan(&text, &settled).unwrap();
        assert!(!keys.ordered);
        assert_eq!(
            keys.last.and_then(|k| k.date).as_deref(),
            Some("2026-10-01")
        );
        // Rows are read with their text borrowed, escapes undone.
        let page = PageRows::Json {
            text,
            count: 3,
            last: None,
        };
        let mut seen = Vec::new();
        page.each(|r| seen.push((r.id, r.reference.to_string(), r.finished)))
            .unwrap();
        assert_eq!(seen[1], (2, "tab\there \"quoted\"".to_string(), true));
        assert_eq!(seen.len(), 3);
        // An empty page, and text that is not a page.
        let empty = JsonKeys::scan("[]", &created).unwrap();
        assert_eq!((empty.count, empty.last), (0, None));
        assert!(JsonKeys::scan("[[1]]", &created).is_err());
        assert!(JsonKeys::scan("{}", &created).is_err());
    }
}
