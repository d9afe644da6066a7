//! What a member of staff does to one payment from its page: read it again from the platform,
//! or cancel it while it is in progress. Each writes the journey, its timeline entry and its
//! audit entry (`payment_refreshed`, `payment_cancelled`) together, in one transaction.

use serde_json::json;
use time::OffsetDateTime;

use super::cancel::{self, Cancelled};
use super::sync::{self, SyncError};
use crate::audit::{self, Actor, AuditEvent};
use crate::config::Config;
use crate::platform::cache::Platforms;
use crate::refunds::Staff;
use crate::services::ServiceAccount;
use crate::store::journeys::{self as journey_store, JourneyRow};
use crate::store::{self, Db};

/// What is needed to reach a service's platform: the configuration and the client cache.
#[derive(Clone, Copy)]
pub struct PlatformAccess<'a> {
    pub config: &'a Config,
    pub platforms: &'a Platforms,
}

/// What a refresh came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Refresh {
    /// Read again; the journey's state moved, or the timeline gained events.
    Changed,
    /// Read again; nothing new: the same state and no new events.
    Unchanged,
    /// The platform could not be reached or did not answer (audited as a failed refresh).
    NoAnswer,
}

/// What a cancel asked from the page came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel {
    /// The platform cancelled it.
    Done,
    /// It had already finished: nothing to cancel.
    AlreadyFinished,
    /// The platform refused, with its message (audited as a failed cancel).
    Refused(String),
    /// The platform could not be reached or did not answer (audited as a failed cancel).
    NoAnswer,
}

/// Read `journey` again from its service's platform, as `who`, and note it in the timeline.
pub async fn refresh(
    db: &Db,
    now: OffsetDateTime,
    access: PlatformAccess<'_>,
    service: &ServiceAccount,
    journey: &JourneyRow,
    who: &Staff,
) -> Result<Refresh, SyncError> {
    let read = match access.platforms.client(access.config, service) {
        Ok(client) => sync::read_payment(client.as_ref(), &journey.payment_id)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let written = match read {
        Ok(read) => write_refresh(db, now, service, journey, who, &read).await?,
        Err(error) => Err(error),
    };
    match written {
        Ok(true) => Ok(Refresh::Changed),
        Ok(false) => Ok(Refresh::Unchanged),
        Err(error) => {
            tracing::warn!(payment = %journey.payment_id, service = %service.slug, %error, "refresh from platform failed");
            audit::record(
                db,
                now,
                AuditEvent::new(actor(who), "payment_refreshed", target(&journey.payment_id))
                    .failed()
                    .from_ip(who.ip.clone())
                    .details(json!({"service": service.slug, "error": error})),
            )
            .await?;
            Ok(Refresh::NoAnswer)
        }
    }
}

/// The refreshed journey, its timeline entry and its audit entry, in one transaction: whether
/// the state moved, or (inner error) why what was read could not be stored.
async fn write_refresh(
    db: &Db,
    now: OffsetDateTime,
    service: &ServiceAccount,
    journey: &JourneyRow,
    who: &Staff,
    read: &sync::PaymentRead,
) -> Result<Result<bool, String>, SyncError> {
    let mut tx = db.begin().await?;
    let events_before = journey_store::event_count(&mut tx, journey.id).await?;
    let stored = match sync::store_payment(&mut tx, service.id, read, now).await {
        Ok(stored) => stored,
        Err(e) => return Ok(Err(e.to_string())),
    };
    // Changed: the state moved, or the platform told of events (a refund, a step of the
    // payment) the timeline did not have yet.
    let events_after = journey_store::event_count(&mut tx, stored.id).await?;
    journey_store::record_staff_event(
        &mut tx,
        stored.id,
        &format!("{} refreshed the payment from the platform", who.name),
        &json!({"staff": who.email, "status_before": journey.status, "status_after": stored.status}),
        store::to_micros(now),
    )
    .await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor(who), "payment_refreshed", target(&journey.payment_id))
            .from_ip(who.ip.clone())
            .details(json!({"service": service.slug, "status_before": journey.status, "status_after": stored.status})),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(
        stored.status != journey.status || events_after > events_before
    ))
}

/// Cancel `payment_id` in `service` for `who`. Every way it can fail is audited as a failed
/// `payment_cancelled`, including a platform that cannot be reached at all.
pub async fn cancel(
    db: &Db,
    now: OffsetDateTime,
    access: PlatformAccess<'_>,
    service: &ServiceAccount,
    payment_id: &str,
    who: &Staff,
) -> Result<Cancel, SyncError> {
    let outcome = match access.platforms.client(access.config, service) {
        Ok(client) => cancel::cancel(db, now, client.as_ref(), who, service.id, payment_id)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(Cancelled::Done { .. }) => Ok(Cancel::Done),
        Ok(Cancelled::AlreadyFinished { .. }) => Ok(Cancel::AlreadyFinished),
        Ok(Cancelled::Refused(message)) => Ok(Cancel::Refused(message)),
        Err(error) => {
            tracing::warn!(payment = %payment_id, service = %service.slug, %error, "cancel through the platform failed");
            audit::record(
                db,
                now,
                AuditEvent::new(actor(who), "payment_cancelled", target(payment_id))
                    .failed()
                    .from_ip(who.ip.clone())
                    .details(json!({"service_id": service.id, "error": error})),
            )
            .await?;
            Ok(Cancel::NoAnswer)
        }
    }
}

fn target(payment_id: &str) -> String {
    format!("payment:{payment_id}")
}

fn actor(who: &Staff) -> Actor {
    Actor::staff(who.id, &who.email)
}
