//! Cancelling a payment that is still in progress (a payer stuck on the card page, say),
//! through the platform's cancel endpoint: audited, and noted in the journey's timeline.

use serde_json::json;
use time::OffsetDateTime;

use super::sync::{self, SyncError};
use crate::audit::{self, AuditEvent};
use crate::platform::client::PaymentPlatform;
use crate::refunds::Staff;
use crate::store::{self, journeys as journey_store, Db};

/// What a cancel came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// The platform cancelled it; the journey now shows its final state.
    Done { status: String },
    /// The payment had already finished (paid, failed, expired): nothing to cancel.
    AlreadyFinished { status: String },
    /// The platform refused, with its message.
    Refused(String),
}

/// Cancel `payment_id` through `client`. The platform's own word on the payment is read first
/// (a finished payment is left alone); whatever comes of it is written, with its timeline and
/// audit entries, in one transaction.
pub async fn cancel(
    db: &Db,
    now: OffsetDateTime,
    client: &dyn PaymentPlatform,
    who: &Staff,
    service_id: i64,
    payment_id: &str,
) -> Result<Cancelled, SyncError> {
    // The platform's word on the state, not paydesk's last copy of it (which may already
    // know the payment finished: states never go back).
    let before = sync::read_payment(client, payment_id).await?;
    let finished_here = journey_store::journey(db, service_id, payment_id)
        .await?
        .is_some_and(|j| j.finished);
    if finished_here || before.payment.state.status.is_finished() {
        let mut tx = db.begin().await?;
        let stored = sync::store_payment(&mut tx, service_id, &before, now).await?;
        tx.commit().await?;
        return Ok(Cancelled::AlreadyFinished {
            status: stored.status,
        });
    }
    let target = format!("payment:{payment_id}");
    let actor = || {
        AuditEvent::new(
            crate::audit::Actor::staff(who.id, &who.email),
            "payment_cancelled",
            target.clone(),
        )
        .from_ip(who.ip.clone())
    };
    if let Err(e) = client.cancel_payment(payment_id).await {
        let message = e.to_string();
        let mut tx = db.begin().await?;
        sync::store_payment(&mut tx, service_id, &before, now).await?;
        audit::append(
            &mut tx,
            now,
            actor()
                .failed()
                .details(json!({"service_id": service_id, "error": message})),
        )
        .await?;
        tx.commit().await?;
        return Ok(Cancelled::Refused(message));
    }
    let after = sync::read_payment(client, payment_id).await?;
    let mut tx = db.begin().await?;
    let status_before = sync::store_payment(&mut tx, service_id, &before, now)
        .await?
        .status;
    let stored = sync::store_payment(&mut tx, service_id, &after, now).await?;
    let detail = json!({"service_id": service_id, "status_before": status_before, "status_after": stored.status});
    journey_store::record_staff_event(
        &mut tx,
        stored.id,
        &format!("{} cancelled the payment", who.name),
        &detail,
        store::to_micros(now),
    )
    .await?;
    audit::append(&mut tx, now, actor().details(detail)).await?;
    tx.commit().await?;
    Ok(Cancelled::Done {
        status: stored.status,
    })
}
