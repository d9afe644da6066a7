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

pub async fn cancel(
    db: &Db,
    now: OffsetDateTime,
    client: &dyn PaymentPlatform,
    who: &Staff,
    service_id: i64,
    payment_id: &str,
) -> Result<Cancelled, SyncError> {
    // The platform's word on the state, not paydesk's last copy of it.
    let before = sync::refresh_with(db, now, client, service_id, payment_id).await?;
    let target = format!("payment:{payment_id}");
    let actor = || {
        AuditEvent::new(
            crate::audit::Actor::staff(who.id, &who.email),
            "payment_cancelled",
            target.clone(),
        )
        .from_ip(who.ip.clone())
    };
    let journey = journey_store::journey_by_id(db, before.journey_id).await?;
    if journey.as_ref().is_some_and(|j| j.finished) {
        return Ok(Cancelled::AlreadyFinished {
            status: before.status,
        });
    }
    if let Err(e) = client.cancel_payment(payment_id).await {
        let message = e.to_string();
        audit::record(
            db,
            now,
            actor()
                .failed()
                .details(json!({"service_id": service_id, "error": message})),
        )
        .await?;
        return Ok(Cancelled::Refused(message));
    }
    let after = sync::refresh_with(db, now, client, service_id, payment_id).await?;
    let mut tx = db.begin().await?;
    let detail = json!({"service_id": service_id, "status_before": before.status, "status_after": after.status});
    journey_store::record_staff_event(
        &mut tx,
        after.journey_id,
        &format!("{} cancelled the payment", who.name),
        &detail,
        store::to_micros(now),
    )
    .await?;
    audit::append(&mut tx, now, actor().details(detail)).await?;
    tx.commit().await?;
    Ok(Cancelled::Done {
        status: after.status,
    })
}
