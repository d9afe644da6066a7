//! Recurring agreements: a payer's consent for a service to take payments from their card.
//! This capability stores what the platform says of them (backfilled with the payments by
//! `journeys::sync`), never moving one back (`rules`), and answers what the pages ask.

pub mod cancel;
pub mod rules;

use crate::platform::agreement_wire::Agreement;
use crate::store::agreements::{self as agreement_store, AgreementRow};
use crate::store::{Db, StoreError, Tx};

/// Store what the platform said of `agreements` (read at `observed_at`), in the caller's
/// transaction. An agreement the store already holds further along is left as it is. Returns
/// how many were stored.
pub async fn record(
    tx: &mut Tx,
    service_id: i64,
    agreements: &[Agreement],
    observed_at: i64,
    now: i64,
) -> Result<usize, StoreError> {
    let mut stored = 0;
    for a in agreements {
        let r = rules::record_of(a);
        if agreement_store::upsert(tx, service_id, &r, observed_at, now)
            .await?
            .is_some()
        {
            stored += 1;
        }
    }
    Ok(stored)
}

/// Agreement `agreement_id` of `service_id`, as paydesk holds it.
pub async fn get(
    db: &Db,
    service_id: i64,
    agreement_id: &str,
) -> Result<Option<AgreementRow>, StoreError> {
    agreement_store::get(db, service_id, agreement_id).await
}

/// Agreement `agreement_id` in any of `services` (a payments search names it by its id).
pub async fn find(
    db: &Db,
    services: &[i64],
    agreement_id: &str,
) -> Result<Option<AgreementRow>, StoreError> {
    agreement_store::find_in(db, services, agreement_id).await
}

/// An agreement's status history, oldest first: (status, when in UTC microseconds, source).
pub async fn history(
    db: &Db,
    service_id: i64,
    agreement_id: &str,
) -> Result<Vec<(String, i64, String)>, StoreError> {
    agreement_store::events(db, service_id, agreement_id).await
}

/// Rows on one page of the agreements list.
pub const PAGE_SIZE: i64 = 50;

/// What the agreements list asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub services: Vec<i64>,
    pub reference: Option<String>,
    pub status: Option<String>,
    /// From 1.
    pub page: i64,
}

/// One page of the agreements list (newest first) and how many there are in all.
pub async fn list(db: &Db, q: &ListQuery) -> Result<(Vec<AgreementRow>, i64), StoreError> {
    let (filter, offset) = filter_of(q);
    agreement_store::list(db, &filter, PAGE_SIZE, offset).await
}

fn filter_of(q: &ListQuery) -> (agreement_store::AgreementFilter, i64) {
    let filter = agreement_store::AgreementFilter {
        services: q.services.clone(),
        reference: q.reference.clone(),
        status: q.status.clone(),
    };
    (filter, (q.page.max(1) - 1).saturating_mul(PAGE_SIZE))
}

/// The statements `list` runs for `q` (the page, the count), for the bench's query plans.
pub fn list_statements(
    backend: crate::store::Backend,
    q: &ListQuery,
) -> (crate::store::sql::Built, crate::store::sql::Built) {
    let (filter, offset) = filter_of(q);
    agreement_store::list_statements(backend, &filter, PAGE_SIZE, offset)
}

/// How a status is shown to people.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "created" => "Created",
        "active" => "Active",
        "cancelled" => "Cancelled",
        "inactive" => "Inactive",
        _ => "Unknown",
    }
}

/// This capability's job handlers: sending cancellations to the platform.
pub fn handlers() -> Vec<std::sync::Arc<dyn crate::jobs::JobHandler>> {
    vec![std::sync::Arc::new(cancel::CancelJob)]
}

/// Note which of `payments` were taken under an agreement, in the caller's transaction.
pub async fn link_payments(
    tx: &mut Tx,
    service_id: i64,
    payments: &[crate::platform::types::Payment],
) -> Result<(), StoreError> {
    let links: Vec<(&str, &str)> = payments
        .iter()
        .filter_map(|p| {
            p.agreement_id
                .as_deref()
                .map(|a| (p.payment_id.as_str(), a))
        })
        .collect();
    if links.is_empty() {
        return Ok(());
    }
    agreement_store::link_payments(tx, service_id, &links).await
}

/// The agreement a payment was taken under, if any.
pub async fn of_payment(
    db: &Db,
    service_id: i64,
    payment_id: &str,
) -> Result<Option<String>, StoreError> {
    agreement_store::of_payment(db, service_id, payment_id).await
}

/// The payments taken under an agreement, newest first (at most 100).
pub async fn payments(
    db: &Db,
    service_id: i64,
    agreement_id: &str,
) -> Result<Vec<agreement_store::AgreementPaymentRow>, StoreError> {
    agreement_store::payments(db, service_id, agreement_id, 100).await
}
