//! Whose permissions an event endpoint delivers with. An endpoint sends a service's payer
//! data to another system, so it acts with the permissions of the person who set it up (its
//! owner), as they are at the moment of each delivery: while the owner holds
//! integrations:manage in the endpoint's service, it delivers; once they are removed from
//! the service, demoted or disabled, the endpoint pauses (disabled, with the reason shown on
//! its page, audited) and sends nothing more. Someone who holds integrations:manage there
//! now can turn it back on, and from then on it acts for them.

use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, Actor, AuditEvent};
use crate::identity::permissions::Permission;
use crate::identity::standing;
use crate::store::events::{self as event_store, Outgoing};
use crate::store::{self, Db, StoreError, Tx};

use super::error::EventsError;

/// What an owner must hold for their endpoint to deliver.
pub const NEEDS: Permission = Permission::IntegrationsManage;

/// Why `out` must not be sent now, if it must not: its endpoint is disabled, or its owner no
/// longer holds integrations:manage in the service (then the endpoint is paused, audited).
/// An endpoint without an owner (none recorded) is judged by its switch alone.
pub async fn held(
    db: &Db,
    now: OffsetDateTime,
    out: &Outgoing,
) -> Result<Option<String>, EventsError> {
    if !out.enabled {
        return Ok(Some("the endpoint is disabled".into()));
    }
    let Some(owner) = out.created_by else {
        return Ok(None);
    };
    let judged = standing::of(db, owner, out.service_id, &[NEEDS]).await?;
    let Some(why) = judged.reason("owner", &service_label(db, out.service_id).await?) else {
        return Ok(None);
    };
    let reason = format!("Paused: {why}");
    let mut tx = db.begin().await?;
    if event_store::set_enabled(
        &mut tx,
        out.endpoint_id,
        false,
        Some(&reason),
        store::to_micros(now),
    )
    .await?
    {
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(
                Actor::System,
                "event_endpoint_disabled",
                format!("event_endpoint:{}", out.endpoint_id),
            )
            .details(json!({"reason": reason, "owner": owner})),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(format!("the endpoint is paused ({why})")))
}

/// The service's name, for the reason shown.
async fn service_label(db: &Db, service_id: i64) -> Result<String, StoreError> {
    Ok(crate::store::services::by_id(db, service_id)
        .await?
        .map(|s| s.name)
        .unwrap_or_else(|| format!("service {service_id}")))
}

/// The audit action for switching an endpoint on or off; switching it on as a member of
/// staff makes them its owner (they were checked for integrations:manage there).
pub async fn switched(
    tx: &mut Tx,
    endpoint_id: i64,
    enabled: bool,
    actor: &Actor,
) -> Result<&'static str, StoreError> {
    if !enabled {
        return Ok("event_endpoint_disabled");
    }
    if let Actor::Staff { id, .. } = actor {
        if let Ok(staff_id) = id.parse::<i64>() {
            event_store::set_owner(tx, endpoint_id, staff_id).await?;
        }
    }
    Ok("event_endpoint_enabled")
}
