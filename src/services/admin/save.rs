//! Reading and saving a service's settings: what it holds now (credentials opened, to know
//! what a blank secret keeps), and `save`, which seals what changed and audits it without secrets.

use serde_json::json;

use crate::audit::{self, Actor, AuditEvent};
use crate::context::Context;
use crate::crypto;
use crate::platform::client::Credentials;
use crate::services::{by_id, seal_credentials, webhook_context, ServiceError};
use crate::store;
use crate::store::service_admin::{self as admin_store, ExtraSettingsRow, ServiceUpdate};
use crate::store::services::{self as service_store, NewServiceRow};

use super::{check, Change, Current, Problem, SettingsForm};

/// The service's settings as the edit page starts from: the account with its credentials
/// opened (to know what a blank secret keeps).
pub async fn current(ctx: &Context, id: i64) -> Result<Option<Current>, ServiceError> {
    let Some(service) = by_id(&ctx.db, id).await? else {
        return Ok(None);
    };
    // Credentials sealed for another address are as good as none: they must be entered again.
    let credentials = match service.credentials(&ctx.config) {
        Err(ServiceError::Moved(_)) => None,
        other => other?,
    };
    let has_webhook_secret = service.row.webhook_secret.is_some();
    Ok(Some(Current {
        service,
        credentials,
        has_webhook_secret,
    }))
}

/// The other settings (refunds, emails, deep link).
pub async fn extra(ctx: &Context, id: i64) -> Result<ExtraSettingsRow, ServiceError> {
    Ok(admin_store::extra_settings(&ctx.db, id)
        .await?
        .unwrap_or_default())
}

/// What the audit log says about credentials: their kind, never a part of them.
fn credentials_kind(c: Option<&Credentials>) -> &'static str {
    match c {
        None => "none",
        Some(Credentials::ApiKey { .. }) => "api_key",
        Some(Credentials::ClientCredentials { .. }) => "oauth2",
    }
}

/// A service saved: its id, and whether secrets saved for an old address were removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub id: i64,
    pub secrets_cleared: bool,
}

/// Create (`target` None) or change a service. `Ok(Err(problems))` when the settings are
/// not acceptable; nothing is saved then.
pub async fn save(
    ctx: &Context,
    actor: Actor,
    ip: Option<String>,
    current: Option<&Current>,
    form: &SettingsForm,
) -> Result<Result<Saved, Vec<Problem>>, ServiceError> {
    let checked = match check(form, current, &ctx.config.platform_hosts) {
        Ok(c) => c,
        Err(p) => return Ok(Err(p)),
    };
    let except = current.map(|c| c.service.id);
    if admin_store::slug_taken(&ctx.db, &checked.slug, except).await? {
        return Ok(Err(vec![(
            "slug",
            format!("Another service already has the slug {}", checked.slug),
        )]));
    }
    let now = ctx.clock.now();
    let key = ctx.config.platform_key();
    let mut tx = ctx.db.begin().await?;
    let (id, action) = match current {
        Some(c) => (c.service.id, "service_updated"),
        None => {
            let id = service_store::insert(
                &mut tx,
                &NewServiceRow {
                    slug: &checked.slug,
                    name: &checked.name,
                    time_zone: &checked.time_zone,
                    platform_url: None,
                    credentials: None,
                    webhook_secret: None,
                },
                store::to_micros(now),
            )
            .await?;
            (id, "service_created")
        }
    };
    // Sealed with the row's id, so a sealed value copied to another service does not open.
    let old_credentials = current.and_then(|c| c.service.row.credentials.clone());
    let old_secret = current.and_then(|c| c.service.row.webhook_secret.clone());
    let new_credentials: Option<Credentials> = match &checked.credentials {
        Change::Keep => current.and_then(|c| c.credentials.clone()),
        Change::Set(c) => Some(c.clone()),
        Change::Remove => None,
    };
    let sealed_credentials = match (&checked.credentials, &checked.platform_url) {
        (Change::Keep, _) => old_credentials,
        // Sealed with the address they are for: they are never sent anywhere else.
        (Change::Set(c), Some(url)) => Some(seal_credentials(&ctx.config, id, url, c)),
        (Change::Set(_), None) | (Change::Remove, _) => None,
    };
    let cleared_by_move = checked.cleared_by_move;
    let sealed_secret = match &checked.webhook_secret {
        Change::Keep => old_secret,
        Change::Set(s) => Some(crypto::seal(&key, &webhook_context(id), s.as_bytes())),
        Change::Remove => None,
    };
    admin_store::update(
        &mut tx,
        id,
        &ServiceUpdate {
            slug: &checked.slug,
            name: &checked.name,
            time_zone: &checked.time_zone,
            platform_url: checked.platform_url.as_deref(),
            credentials: sealed_credentials.as_deref(),
            webhook_secret: sealed_secret.as_deref(),
            extra: &checked.extra,
        },
        store::to_micros(now),
    )
    .await?;
    let mut details = json!({
        "slug": checked.slug,
        "name": checked.name,
        "time_zone": checked.time_zone,
        "platform_url": checked.platform_url,
        "credentials_kind": credentials_kind(new_credentials.as_ref()),
        "credentials_changed": !matches!(checked.credentials, Change::Keep),
        "webhook_signing_changed": !matches!(checked.webhook_secret, Change::Keep),
        "webhook_signing_set": sealed_secret.is_some(),
        "credentials_cleared_by_address_change": cleared_by_move,
        "refund_approval_threshold": checked.extra.refund_approval_threshold,
        "refund_case_reference_required": checked.extra.refund_case_reference_required,
        "refund_email_enabled": checked.extra.refund_email_enabled,
        "refund_email_wording_set": checked.extra.refund_email_subject.is_some() || checked.extra.refund_email_text.is_some(),
        "deep_link_template": checked.extra.deep_link_template,
    });
    if let Some(c) = current {
        details["previous_slug"] = json!(c.service.slug);
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, action, format!("service:{id}"))
            .from_ip(ip)
            .details(details),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(Saved {
        id,
        secrets_cleared: cleared_by_move,
    }))
}
