//! Managing a service's event endpoints: their URL, description, event types and on/off
//! switch, their secret (shown once, sealed at rest, rotated with an overlap), and replays
//! of messages already sent.

use serde_json::json;
use time::OffsetDateTime;

use super::deliver::{secret_context, DELIVERY};
use super::emit::rfc3339;
use super::event_type::EventType;
use crate::audit::{self, Actor, AuditEvent};
use crate::config::Config;
use crate::crypto;
use crate::integrations::error::EventsError;
use crate::integrations::event_owner as owner;
use crate::integrations::signature;
use crate::integrations::ssrf;
use crate::jobs;
use crate::store::events as event_store;
use crate::store::{self, Db, StoreError, Tx};

/// The longest description kept for an endpoint.
pub const MAX_DESCRIPTION: usize = 200;

/// An endpoint as typed into its form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointInput {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
}

/// A field's problem: (field name, message).
pub type Problem = (&'static str, String);

/// The input, checked: the URL (without the network), the description and the types.
fn check_fields(
    input: &EndpointInput,
    allow_loopback: bool,
) -> Result<(String, String, String), Vec<Problem>> {
    let mut problems = Vec::new();
    let url = input.url.trim().to_string();
    if url.is_empty() {
        problems.push(("url", "Enter the endpoint's URL".to_string()));
    } else if let Err(refusal) = ssrf::check_url(&url, allow_loopback) {
        problems.push(("url", refusal.to_string()));
    }
    let description = input.description.trim().to_string();
    if description.chars().count() > MAX_DESCRIPTION {
        problems.push((
            "description",
            format!("The description must be {MAX_DESCRIPTION} characters or fewer"),
        ));
    } else if description.chars().any(char::is_control) {
        problems.push((
            "description",
            "Use letters, numbers and punctuation only".to_string(),
        ));
    }
    let mut types = Vec::new();
    for t in &input.event_types {
        match EventType::parse(t.trim()) {
            Some(t) if !types.contains(&t) => types.push(t),
            Some(_) => {}
            None => {
                problems.push((
                    "event_types",
                    "Choose event types from the list".to_string(),
                ));
                break;
            }
        }
    }
    if input.event_types.is_empty() {
        problems.push(("event_types", "Choose at least one event type".to_string()));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    types.sort();
    let types = types.iter().map(|t| t.name()).collect::<Vec<_>>().join(" ");
    Ok((url, description, types))
}

/// Check an endpoint's input, resolving its host: the URL must reach a public address now.
pub async fn check(
    config: &Config,
    input: &EndpointInput,
) -> Result<(String, String, String), Vec<Problem>> {
    let (url, description, types) = check_fields(input, config.events_allow_loopback)?;
    if let Err(refusal) = ssrf::resolve(&url, config.events_allow_loopback).await {
        return Err(vec![("url", refusal.to_string())]);
    }
    Ok((url, description, types))
}

/// Make an endpoint for `service_id`: its secret is returned to be shown once.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    db: &Db,
    config: &Config,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    service_id: i64,
    created_by: Option<i64>,
    input: &EndpointInput,
) -> Result<Result<(i64, String), Vec<Problem>>, EventsError> {
    let (url, description, types) = match check(config, input).await {
        Ok(c) => c,
        Err(p) => return Ok(Err(p)),
    };
    let at = store::to_micros(now);
    let mut tx = db.begin().await?;
    let id = event_store::insert_endpoint(
        &mut tx,
        &event_store::NewEndpointRow {
            service_id,
            url: &url,
            description: &description,
            event_types: &types,
            created_by,
        },
        at,
    )
    .await?;
    let secret = signature::new_secret();
    let sealed = crypto::seal(&config.events_key(), &secret_context(id), secret.as_bytes());
    event_store::set_secrets(&mut tx, id, &sealed, None, None, at).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor,
            "event_endpoint_created",
            format!("event_endpoint:{id}"),
        )
        .from_ip(origin_ip)
        .details(json!({
            "service": service_id, "url": url, "description": description, "event_types": types,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok((id, secret)))
}

/// Change an endpoint's URL, description and event types.
pub async fn update(
    db: &Db,
    config: &Config,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    endpoint_id: i64,
    input: &EndpointInput,
) -> Result<Result<(), Vec<Problem>>, EventsError> {
    let (url, description, types) = match check(config, input).await {
        Ok(c) => c,
        Err(p) => return Ok(Err(p)),
    };
    let mut tx = db.begin().await?;
    let Some(before) = event_store::endpoint_for_update(&mut tx, endpoint_id).await? else {
        tx.rollback().await?;
        return Ok(Ok(()));
    };
    event_store::update_endpoint(
        &mut tx,
        endpoint_id,
        &url,
        &description,
        &types,
        store::to_micros(now),
    )
    .await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "event_endpoint_updated", format!("event_endpoint:{endpoint_id}"))
            .from_ip(origin_ip)
            .details(json!({
                "before": {"url": before.url, "description": before.description, "event_types": before.event_types},
                "after": {"url": url, "description": description, "event_types": types},
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Turn an endpoint on or off; false when it already was.
pub async fn set_enabled(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    endpoint_id: i64,
    enabled: bool,
) -> Result<bool, EventsError> {
    let mut tx = db.begin().await?;
    let reason = (!enabled).then_some("Disabled by staff");
    if !event_store::set_enabled(&mut tx, endpoint_id, enabled, reason, store::to_micros(now))
        .await?
    {
        tx.rollback().await?;
        return Ok(false);
    }
    let action = owner::switched(&mut tx, endpoint_id, enabled, &actor).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, action, format!("event_endpoint:{endpoint_id}")).from_ip(origin_ip),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Give an endpoint a new secret, returned to be shown once. The old one keeps signing
/// beside it for the configured overlap, so the receiver can switch without losing events.
pub async fn rotate(
    db: &Db,
    config: &Config,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    endpoint_id: i64,
) -> Result<Option<(String, OffsetDateTime)>, EventsError> {
    let mut tx = db.begin().await?;
    let Some(endpoint) = event_store::endpoint_for_update(&mut tx, endpoint_id).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    let overlap = time::Duration::seconds(config.events_rotation_overlap_secs as i64);
    let until = now + overlap;
    let secret = signature::new_secret();
    let sealed = crypto::seal(
        &config.events_key(),
        &secret_context(endpoint_id),
        secret.as_bytes(),
    );
    let previous = endpoint
        .secret
        .as_deref()
        .filter(|_| overlap > time::Duration::ZERO);
    event_store::set_secrets(
        &mut tx,
        endpoint_id,
        &sealed,
        previous,
        previous.map(|_| store::to_micros(until)),
        store::to_micros(now),
    )
    .await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "event_endpoint_secret_rotated", format!("event_endpoint:{endpoint_id}"))
            .from_ip(origin_ip)
            .details(json!({"old_secret_signs_until": rfc3339(until), "overlap_secs": config.events_rotation_overlap_secs})),
    )
    .await?;
    tx.commit().await?;
    Ok(Some((secret, until)))
}

/// Why a replay was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayRefusal {
    #[error("This message is already on its way: wait for its next attempt")]
    InProgress,
    #[error("The endpoint is disabled: enable it before sending messages again")]
    Disabled,
    #[error("There are no failed messages to send again")]
    NothingFailed,
}

async fn queue_again(tx: &mut Tx, delivery_id: i64, now: OffsetDateTime) -> Result<(), StoreError> {
    let job_id = jobs::enqueue(tx, DELIVERY, &json!({ "delivery": delivery_id }), now, now).await?;
    event_store::set_delivery_job(tx, delivery_id, job_id, store::to_micros(now)).await
}

/// Send one message to its endpoint again, now, with the same `webhook-id`.
pub async fn replay(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    endpoint_id: i64,
    delivery_id: i64,
) -> Result<Result<(), ReplayRefusal>, EventsError> {
    let mut tx = db.begin().await?;
    let endpoint = event_store::endpoint_for_update(&mut tx, endpoint_id).await?;
    let delivery = event_store::delivery_in(&mut tx, delivery_id).await?;
    let (Some(endpoint), Some(delivery)) = (endpoint, delivery) else {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::NothingFailed));
    };
    if delivery.endpoint_id != endpoint.id {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::NothingFailed));
    }
    if !endpoint.enabled {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::Disabled));
    }
    if matches!(delivery.job_state.as_deref(), Some("queued" | "running")) {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::InProgress));
    }
    queue_again(&mut tx, delivery_id, now).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor,
            "event_replayed",
            format!("event_endpoint:{endpoint_id}"),
        )
        .from_ip(origin_ip)
        .details(json!({
            "delivery": delivery_id, "message_id": delivery.message_id,
            "event_type": delivery.event_type, "status_before": delivery.status,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Send every failed message of an endpoint again. Returns how many.
pub async fn replay_failed(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    endpoint_id: i64,
) -> Result<Result<usize, ReplayRefusal>, EventsError> {
    let mut tx = db.begin().await?;
    let Some(endpoint) = event_store::endpoint_for_update(&mut tx, endpoint_id).await? else {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::NothingFailed));
    };
    if !endpoint.enabled {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::Disabled));
    }
    let failed = event_store::failed_of(&mut tx, endpoint_id).await?;
    if failed.is_empty() {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::NothingFailed));
    }
    for id in &failed {
        queue_again(&mut tx, *id, now).await?;
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor,
            "event_replayed",
            format!("event_endpoint:{endpoint_id}"),
        )
        .from_ip(origin_ip)
        .details(json!({"all_failed": true, "count": failed.len(), "deliveries": failed})),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(failed.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_input_is_checked_field_by_field() {
        let ok = EndpointInput {
            url: " https://crm.example.gov.uk/hook ".into(),
            description: "CRM".into(),
            event_types: vec![
                "refund.succeeded".into(),
                "payment.succeeded".into(),
                "refund.succeeded".into(),
            ],
        };
        let (url, _, types) = check_fields(&ok, false).unwrap();
        assert_eq!(url, "https://crm.example.gov.uk/hook");
        assert_eq!(types, "payment.succeeded refund.succeeded");
        let bad = EndpointInput {
            url: "http://crm.example.gov.uk/".into(),
            description: "x".repeat(MAX_DESCRIPTION + 1),
            event_types: vec!["refund.rejected".into()],
        };
        let fields: Vec<&str> = check_fields(&bad, false)
            .unwrap_err()
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(fields, ["url", "description", "event_types"]);
        let none = EndpointInput {
            url: "https://a.example/".into(),
            ..Default::default()
        };
        assert_eq!(check_fields(&none, false).unwrap_err()[0].0, "event_types");
    }
}
