//! Failed refunds, counted and listed by one definition so the dashboard, the refunds page
//! and the list behind them always agree: every refund paydesk asked for that ended `failed`
//! (refused by the platform, or made and then in error), and every platform refund in error
//! that was asked for elsewhere. Counted by when it was asked for.

use super::RefundError;
use crate::store::refunds::{self as refund_store, FailedRow};
use crate::store::{Db, StoreResult};

pub use refund_store::FailedRow as FailedRefund;

/// The most rows one list shows.
pub const LIST_MAX: i64 = 500;

/// The failed refunds of `services` asked for in `[from, to)` (UTC microseconds), newest
/// first, at most `LIST_MAX`, with how many there are in all.
pub async fn in_span(
    db: &Db,
    services: &[i64],
    from: i64,
    to: i64,
) -> Result<(Vec<FailedRow>, i64), RefundError> {
    Ok(refund_store::failed(db, services, from, to, LIST_MAX).await?)
}

/// How many failed refunds `services` had, asked for in `[from, to)`.
pub async fn count(db: &Db, services: &[i64], from: i64, to: i64) -> StoreResult<i64> {
    Ok(refund_store::failed(db, services, from, to, 0).await?.1)
}
