//! Emitting events in the same transaction as the change that causes them (`refund_changed`,
//! `payments_changed`, `case_linked`): one delivery and one `event_delivery` job per subscribed
//! endpoint, so an event is sent if and only if its change is committed.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::deliver::DELIVERY;
use super::event_type::{types_of, EventType};
use crate::jobs;
use crate::store::events::{self as event_store, EndpointRow};
use crate::store::refunds::RequestRow;
use crate::store::{self, StoreError, Tx};

/// A payment first seen already finished emits its event only if it is this recent, so
/// that importing a service's history does not replay years of payments to its CRM.
const FIRST_SEEN_RECENT: time::Duration = time::Duration::hours(24);

/// A Standard Webhooks message id: `msg_` and a time-ordered UUID.
fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// A time as a message's `timestamp` says it (RFC 3339); the audit of a secret rotation
/// uses the same form.
pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Write an event inside the caller's transaction and fan it out to every enabled endpoint
/// of the service that subscribes to it. `data` gets the service's slug. With a
/// `dedupe_key`, an event already written under that key is not written again. Returns how
/// many deliveries were queued.
pub async fn emit(
    tx: &mut Tx,
    service_id: i64,
    event_type: EventType,
    mut data: Map<String, Value>,
    dedupe_key: Option<&str>,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let endpoints: Vec<EndpointRow> = event_store::enabled_endpoints(tx, service_id)
        .await?
        .into_iter()
        .filter(|e| types_of(e).contains(&event_type))
        .collect();
    // Nobody listens: nothing to keep.
    if endpoints.is_empty() {
        return Ok(0);
    }
    let slug = event_store::service_slug(tx, service_id)
        .await?
        .unwrap_or_default();
    data.insert("service".into(), json!(slug));
    let payload = json!({
        "type": event_type.name(),
        "timestamp": rfc3339(now),
        "data": Value::Object(data),
    })
    .to_string();
    let at = store::to_micros(now);
    let message_id = new_message_id();
    let Some(event_id) = event_store::insert_event(
        tx,
        &event_store::NewEventRow {
            service_id,
            message_id: &message_id,
            event_type: event_type.name(),
            payload: &payload,
            dedupe_key,
        },
        at,
    )
    .await?
    else {
        return Ok(0);
    };
    for endpoint in &endpoints {
        let delivery_id = event_store::insert_delivery(tx, event_id, endpoint.id, at).await?;
        let job_id =
            jobs::enqueue(tx, DELIVERY, &json!({ "delivery": delivery_id }), now, now).await?;
        event_store::set_delivery_job(tx, delivery_id, job_id, at).await?;
    }
    Ok(endpoints.len())
}

/// A refund request moved on: `refund.requested` (just made), `refund.approved`,
/// `refund.succeeded` or `refund.failed`. Each happens once per request.
pub async fn refund_changed(
    tx: &mut Tx,
    event_type: EventType,
    row: &RequestRow,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let status = match event_type {
        EventType::RefundRequested => row.state.as_str(),
        EventType::RefundApproved => "approved",
        EventType::RefundSucceeded => "succeeded",
        EventType::RefundFailed => "failed",
        _ => return Ok(0),
    };
    let mut data = Map::new();
    data.insert("refund_request_id".into(), json!(row.id));
    data.insert("refund_id".into(), json!(row.platform_refund_id));
    data.insert("payment_id".into(), json!(row.payment_id));
    data.insert("status".into(), json!(status));
    data.insert("amount".into(), json!(row.amount));
    data.insert("currency".into(), json!("GBP"));
    data.insert("approval_required".into(), json!(row.approval_required));
    data.insert("case_reference".into(), json!(row.case_reference));
    // The bulk refund batch whose row made the request (null for a single refund).
    data.insert("batch_id".into(), json!(row.batch_id));
    let key = format!("{}:{}", event_type.name(), row.id);
    emit(tx, row.service_id, event_type, data, Some(&key), now).await
}

/// A journey's state as an upsert left it, for `payments_changed`.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentChange {
    pub journey_id: i64,
    pub payment_id: String,
    pub status: String,
    pub amount: i64,
    pub case_reference: Option<String>,
    /// Its state moved forward in this write.
    pub moved: bool,
    /// This write is the first time paydesk saw it.
    pub first_seen: bool,
    pub created_at: OffsetDateTime,
}

impl PaymentChange {
    /// A journey as the upsert at `now` (micros) left it.
    pub fn of(u: &crate::store::journeys::Upserted, now: i64) -> PaymentChange {
        PaymentChange {
            journey_id: u.id,
            payment_id: u.payment_id.clone(),
            status: u.status.clone(),
            amount: u.amount,
            case_reference: u.case_reference.clone(),
            moved: u.moved(now),
            first_seen: u.first_seen(now),
            created_at: store::from_micros(u.created_at),
        }
    }
}

/// The event a payment's state calls for, if any.
fn payment_event(status: &str) -> Option<EventType> {
    match status {
        "success" => Some(EventType::PaymentSucceeded),
        "failed" | "cancelled" | "error" => Some(EventType::PaymentFailed),
        _ => None,
    }
}

/// Whether a change is a payment reaching its final state that the CRM should hear about:
/// a real transition of a journey paydesk knew, or a journey first seen already finished
/// that was made recently (not history being imported).
pub fn announces(change: &PaymentChange, now: OffsetDateTime) -> Option<EventType> {
    let event = payment_event(&change.status)?;
    let recent = change.created_at >= now - FIRST_SEEN_RECENT;
    (change.moved || (change.first_seen && recent)).then_some(event)
}

/// Journeys were written from the platform: emit `payment.succeeded` / `payment.failed` for
/// each that reached its final state here. Once per journey, however often it is read.
pub async fn payments_changed(
    tx: &mut Tx,
    service_id: i64,
    changes: &[PaymentChange],
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let due: Vec<(&PaymentChange, EventType)> = changes
        .iter()
        .filter_map(|c| announces(c, now).map(|e| (c, e)))
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    // One look at the endpoints for the whole batch: most services have none.
    if event_store::enabled_endpoints(tx, service_id)
        .await?
        .iter()
        .all(|e| !due.iter().any(|(_, t)| types_of(e).contains(t)))
    {
        return Ok(0);
    }
    let mut queued = 0;
    for (c, event_type) in due {
        let mut data = Map::new();
        data.insert("payment_id".into(), json!(c.payment_id));
        data.insert("status".into(), json!(c.status));
        data.insert("amount".into(), json!(c.amount));
        data.insert("currency".into(), json!("GBP"));
        data.insert("case_reference".into(), json!(c.case_reference));
        let key = format!("payment.final:{}", c.journey_id);
        queued += emit(tx, service_id, event_type, data, Some(&key), now).await?;
    }
    Ok(queued)
}

/// A payment was linked to a case (by the case API): emit `case.linked` with the journey as
/// it is now in this transaction. False when the journey is not the service's.
pub async fn case_linked(
    tx: &mut Tx,
    service_id: i64,
    journey_id: i64,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let Some(j) = event_store::journey_facts(tx, journey_id).await? else {
        return Ok(false);
    };
    if j.service_id != service_id {
        return Ok(false);
    }
    let mut data = Map::new();
    data.insert("payment_id".into(), json!(j.payment_id));
    data.insert("status".into(), json!(j.status));
    data.insert("amount".into(), json!(j.amount));
    data.insert("currency".into(), json!("GBP"));
    data.insert("case_reference".into(), json!(j.case_reference));
    emit(tx, service_id, EventType::CaseLinked, data, None, now).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(status: &str, moved: bool, first_seen: bool, age_hours: i64) -> PaymentChange {
        let now = time::macros::datetime!(2026-11-20 09:00:00 UTC);
        PaymentChange {
            journey_id: 1,
            payment_id: "p".into(),
            status: status.into(),
            amount: 100,
            case_reference: None,
            moved,
            first_seen,
            created_at: now - time::Duration::hours(age_hours),
        }
    }

    #[test]
    fn only_real_arrivals_at_a_final_state_are_announced() {
        let now = time::macros::datetime!(2026-11-20 09:00:00 UTC);
        assert_eq!(
            announces(&change("success", true, false, 100), now),
            Some(EventType::PaymentSucceeded)
        );
        assert_eq!(
            announces(&change("cancelled", true, false, 1), now),
            Some(EventType::PaymentFailed)
        );
        assert_eq!(
            announces(&change("success", false, false, 1), now),
            None,
            "no change"
        );
        assert_eq!(
            announces(&change("started", true, false, 1), now),
            None,
            "not final"
        );
        assert_eq!(
            announces(&change("success", false, true, 1), now),
            Some(EventType::PaymentSucceeded)
        );
        assert_eq!(
            announces(&change("success", false, true, 48), now),
            None,
            "history"
        );
    }
}
