//! Webhooks from the platform: the signature is checked on the raw bytes with the service's
//! secret before anything is parsed; a verified message lands in the inbox by message id (a
//! duplicate changes nothing) together with a job that re-reads the payment. The webhook's
//! own copy of the payment is never trusted: it is only a hint that something changed.

use super::sync;
use crate::audit;
use crate::audit::refusals::{Kind, Refusals};
use crate::context::Context;
use crate::platform::signature;
use crate::platform::types::WebhookMessage;
use crate::services;
use crate::store::{self, journeys as journey_store};

/// What became of a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// New: stored, and a re-read of the payment is queued.
    Accepted,
    /// Seen before: nothing more to do.
    Duplicate,
    /// Valid, but about something paydesk does not follow (not a payment).
    Ignored,
    /// No such service, or it has no webhook secret.
    UnknownService,
    /// Missing or wrong signature.
    BadSignature,
    /// Signed, but not a message paydesk can read.
    Malformed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    Service(#[from] services::ServiceError),
}

pub async fn receive(
    ctx: &Context,
    refusals: &Refusals,
    slug: &str,
    signature_header: Option<&str>,
    body: &[u8],
    origin_ip: Option<String>,
) -> Result<Received, WebhookError> {
    let Some(service) = services::by_slug(&ctx.db, slug).await? else {
        return Ok(Received::UnknownService);
    };
    let Some(secret) = service.webhook_secret(&ctx.config)? else {
        return Ok(Received::UnknownService);
    };
    let now = ctx.clock.now();
    let verified = signature_header.is_some_and(|h| signature::verify(&secret, body, h));
    if !verified {
        // Counted, and summarised in the audit log per source and minute: a flood of forged
        // messages never writes one chained entry each.
        refusals.note(
            &ctx.metrics,
            now,
            Kind::Webhook,
            origin_ip.as_deref(),
            &format!("service:{}", service.id),
            if signature_header.is_some() {
                "signature does not match"
            } else {
                "no Pay-Signature header"
            },
        );
        return Ok(Received::BadSignature);
    }
    let message: WebhookMessage = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Received::Malformed(format!(
                "the body is not a webhook message: {e}"
            )))
        }
    };
    let Some(message_id) = message.message_id().map(str::to_string) else {
        return Ok(Received::Malformed(
            "the message has no webhook_message_id".into(),
        ));
    };
    if message.resource_id.trim().is_empty()
        || message_id.len() > 200
        || message.resource_id.len() > 200
    {
        return Ok(Received::Malformed(
            "the message's ids are empty or too long".into(),
        ));
    }
    if message
        .resource_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("payment"))
    {
        return Ok(Received::Ignored);
    }
    let mut tx = ctx.db.begin().await?;
    let fresh = journey_store::insert_webhook(
        &mut tx,
        service.id,
        &message_id,
        &message.event_type.chars().take(100).collect::<String>(),
        &message.resource_id,
        message.created_date.as_deref(),
        store::to_micros(now),
    )
    .await?;
    if !fresh {
        tx.rollback().await?;
        ctx.metrics.count("paydesk_webhooks_duplicate_total");
        return Ok(Received::Duplicate);
    }
    sync::enqueue_refresh(
        &mut tx,
        service.id,
        &message.resource_id,
        Some(&message_id),
        now,
    )
    .await?;
    tx.commit().await?;
    ctx.metrics.count("paydesk_webhooks_accepted_total");
    Ok(Received::Accepted)
}
