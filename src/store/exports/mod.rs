//! Exports: the rows of a reconciliation export, page by page in a stable order (keyset, never
//! OFFSET), their count, the metadata keys that become columns, the month-end totals by
//! settlement date, and the records of background exports.
//!
//! Payment rows are journeys; refund rows are the platform's successful refunds joined to
//! their payment (and, when paydesk made the refund, to the request: reason, who asked, who
//! approved); dispute rows are the disputes joined to their payment. The page, count and totals queries share one WHERE clause per pass, so that a
//! pack's totals are the sums of the exported rows by construction.
//!
//! Here: what a pass and a row are. The SQL of a pass is in `query`; the row reader (one
//! connection, SQLite's JSON pages and PostgreSQL's COPY text) in `reader`, `json` and
//! `copy`; the bookkeeping of background exports in `records`.

mod copy;
mod json;
mod query;
mod reader;
mod records;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub use query::{packed_page_query, page_query, totals_by_settlement, DayTotal};
pub use reader::{count, metadata_keys, page, PageRows, Reader};
pub use records::{
    due_for_removal, expire, fail, finish, get, insert, recent, set_expected, set_progress, start,
    ExportRecord, NewExport,
};

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
    Disputes,
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
    /// Only these journeys (the payments a search found), when given.
    pub journeys: Option<&'a [i64]>,
}

/// A row as the export writes it, its text borrowed from the page it was read from where it
/// can (a field with escapes in its JSON or COPY text is unescaped into its own string).
/// A page of SQLite rows comes from the database as one JSON array of arrays (see
/// `packed_page_query`), each inner array holding these fields in this order.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportRow<'a> {
    /// The journey's id (payment rows), the platform refund's row id (refund rows) or the
    /// dispute's (dispute rows).
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
    /// Dispute rows: the platform's dispute, its status, amount, fee and reason.
    #[serde(borrow)]
    pub dispute_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub dispute_status: Option<Cow<'a, str>>,
    pub dispute_amount: Option<i64>,
    pub dispute_fee: Option<i64>,
    #[serde(borrow)]
    pub dispute_reason: Option<Cow<'a, str>>,
    /// Refund rows: the bulk refund batch whose row asked for the refund.
    pub batch_id: Option<i64>,
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
