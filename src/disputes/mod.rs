//! Disputes (chargebacks): a payer's bank challenging a payment. This capability stores what
//! the platform says of them (backfilled with the payments by `journeys::sync`, re-read with
//! their payment), never moving one back (`rules`), and answers what finance and the other
//! capabilities ask: the disputes list, a payment's dispute, how many need a response, and
//! whether a payment is disputed (a disputed payment is never refunded).

pub mod rules;

use time::OffsetDateTime;

use crate::integrations::events::{emit, EventType};
use crate::platform::client::{PaymentPlatform, PlatformError};
use crate::platform::dispute_wire::{Dispute, DisputeSearch};
use crate::platform::types::{Payment, PaymentStatus};
use crate::store::disputes::{self as dispute_store, DisputeFilter, DisputeRow};
use crate::store::{Db, StoreError, Tx};

pub use dispute_store::DisputeRow as StoredDispute;

/// Rows on one page of the disputes list.
pub const PAGE_SIZE: i64 = 50;

/// How many pages of the dispute search a payment's re-read walks at most.
const PAYMENT_PAGES: usize = 10;

/// Store what the platform said of `disputes` (read at `observed_at`), in the caller's
/// transaction. A dispute the store already holds further along is left as it is. Returns
/// how many were stored.
///
/// The service's systems hear of it in the same transaction: `dispute.created` when paydesk
/// first sees a dispute (one still open, or raised in the last day: a first backfill does not
/// replay old decided ones), `dispute.updated` when it moves on (under review, won, lost).
pub async fn record(
    tx: &mut Tx,
    service_id: i64,
    disputes: &[Dispute],
    observed_at: i64,
    now: i64,
) -> Result<usize, StoreError> {
    let mut stored = 0;
    for d in disputes {
        let r = rules::record_of(d);
        let before = dispute_store::status_in(tx, service_id, &r.dispute_id).await?;
        let Some(status) = dispute_store::upsert(tx, service_id, &r, observed_at, now).await?
        else {
            continue;
        };
        stored += 1;
        if let Some(event) = rules::announces(before.as_deref(), &status, r.created_at, now) {
            announce(tx, service_id, event, &r, &status, now).await?;
        }
    }
    Ok(stored)
}

/// Emit `event` for dispute `r`, now `status`, once per dispute and status.
async fn announce(
    tx: &mut Tx,
    service_id: i64,
    event: EventType,
    r: &crate::store::disputes::DisputeRecord,
    status: &str,
    now: i64,
) -> Result<(), StoreError> {
    let mut data = serde_json::Map::new();
    data.insert("dispute_id".into(), r.dispute_id.clone().into());
    data.insert("payment_id".into(), r.payment_id.clone().into());
    data.insert("status".into(), status.into());
    data.insert("amount".into(), r.amount.into());
    data.insert("fee".into(), r.fee.into());
    data.insert("currency".into(), "GBP".into());
    let key = format!("{}:{}:{}:{status}", event.name(), service_id, r.dispute_id);
    emit(
        tx,
        service_id,
        event,
        data,
        Some(&key),
        crate::store::from_micros(now),
    )
    .await?;
    Ok(())
}

/// Whether the platform's view of `payment` says it may be disputed: it says so, or it is a
/// successful payment whose refunds are unavailable (a platform may not send `disputed`).
pub fn may_be_disputed(payment: &Payment) -> bool {
    payment.disputed == Some(true)
        || (payment.state.status == PaymentStatus::Success
            && payment
                .refund_summary
                .as_ref()
                .is_some_and(|r| r.status == "unavailable"))
}

/// The disputes of one payment, read from the platform's dispute search (which has no payment
/// filter: it is searched from the payment's creation on, and disputes are few). Nothing when
/// the payment shows no sign of one.
pub async fn read_for_payment(
    client: &dyn PaymentPlatform,
    payment: &Payment,
) -> Result<Vec<Dispute>, PlatformError> {
    if !may_be_disputed(payment) {
        return Ok(Vec::new());
    }
    let mut page = client
        .search_disputes(&DisputeSearch {
            from_date: Some(payment.created_date - time::Duration::seconds(1)),
            ..Default::default()
        })
        .await?;
    let mut found = Vec::new();
    for _ in 0..PAYMENT_PAGES {
        found.extend(
            page.results
                .iter()
                .filter(|d| d.payment_id == payment.payment_id)
                .cloned(),
        );
        match page.links.next_page.as_ref().map(|l| l.href.clone()) {
            Some(next) => page = client.disputes_page(&next).await?,
            None => break,
        }
    }
    Ok(found)
}

/// Whether journey `journey_id`'s payment is disputed, in the caller's transaction.
pub async fn journey_disputed(tx: &mut Tx, journey_id: i64) -> Result<bool, StoreError> {
    dispute_store::journey_disputed(tx, journey_id).await
}

/// Whether payment `payment_id` of `service_id` is disputed.
pub async fn payment_disputed(
    db: &Db,
    service_id: i64,
    payment_id: &str,
) -> Result<bool, StoreError> {
    dispute_store::payment_disputed(db, service_id, payment_id).await
}

/// When the oldest dispute of `service_id` not yet decided was raised (the dispute backfill
/// reaches back that far).
pub async fn oldest_open(db: &Db, service_id: i64) -> Result<Option<i64>, StoreError> {
    dispute_store::oldest_open(db, service_id).await
}

/// A payment's disputes, newest first.
pub async fn of_payment(
    db: &Db,
    service_id: i64,
    payment_id: &str,
) -> Result<Vec<DisputeRow>, StoreError> {
    dispute_store::of_payment(db, service_id, payment_id).await
}

/// One dispute of `service_id`, by the platform's id (another service's is not found).
pub async fn one(
    db: &Db,
    service_id: i64,
    dispute_id: &str,
) -> Result<Option<DisputeRow>, StoreError> {
    dispute_store::by_id(db, service_id, dispute_id).await
}

/// How many disputes of `services` need a response (the dashboard's count).
pub async fn needing_response(db: &Db, services: &[i64]) -> Result<i64, StoreError> {
    dispute_store::needing_response(db, services).await
}

/// The disputes of `services` raised in `[from, to)` and lost (the dashboard's money).
pub async fn lost(
    db: &Db,
    services: &[i64],
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Lost, StoreError> {
    let (from, to) = (crate::store::to_micros(from), crate::store::to_micros(to));
    let (count, amount, fees) = dispute_store::lost_between(db, services, from, to).await?;
    Ok(Lost {
        count,
        amount,
        fees,
    })
}

/// Disputes lost: how many, the amounts taken and their fees (pence).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    pub count: i64,
    pub amount: i64,
    pub fees: i64,
}

/// What the disputes list asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub services: Vec<i64>,
    pub status: Option<String>,
    /// Raised in `[from, to)`.
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// From 1.
    pub page: i64,
}

/// One page of the disputes list (those needing a response first, soonest due first) and
/// how many there are in all.
pub async fn list(db: &Db, q: &ListQuery) -> Result<(Vec<DisputeRow>, i64), StoreError> {
    let (filter, offset) = filter_of(q);
    dispute_store::list(db, &filter, PAGE_SIZE, offset).await
}

fn filter_of(q: &ListQuery) -> (DisputeFilter, i64) {
    let filter = DisputeFilter {
        services: q.services.clone(),
        statuses: q.status.iter().cloned().collect(),
        from: q.from.map(crate::store::to_micros),
        to: q.to.map(crate::store::to_micros),
    };
    (filter, (q.page.max(1) - 1).saturating_mul(PAGE_SIZE))
}

/// The statements `list` runs for `q` (the page, the count), for the bench's query plans.
pub fn list_statements(
    backend: crate::store::Backend,
    q: &ListQuery,
) -> (crate::store::sql::Built, crate::store::sql::Built) {
    let (filter, offset) = filter_of(q);
    dispute_store::list_statements(backend, &filter, PAGE_SIZE, offset)
}
