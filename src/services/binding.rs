//! Keeping saved credentials with their address: credentials sealed before paydesk bound
//! them to a platform address are bound, once, to the address their service has when paydesk
//! starts; and the demo, whose sandbox may listen elsewhere on each start, moves a service
//! together with credentials sealed for the new address.

use serde_json::json;

use super::{seal_credentials, ServiceAccount, ServiceError};
use crate::audit::{self, Actor, AuditEvent};
use crate::context::Context;
use crate::platform::client::Credentials;
use crate::store;
use crate::store::services as service_store;

/// Bind every unbound saved credentials to its service's current platform address (audited,
/// one entry per service). Returns how many were bound.
pub async fn bind_saved_credentials(ctx: &Context) -> Result<usize, ServiceError> {
    let mut bound = 0;
    for row in service_store::connected(&ctx.db).await? {
        let service = ServiceAccount::from_row(row);
        let (Some(url), Some(old)) = (&service.platform_url, &service.row.credentials) else {
            continue;
        };
        // Unreadable values (another secret key) are left as they are.
        let Ok(Some(super::Opened::Unbound(credentials))) = service.open_credentials(&ctx.config)
        else {
            continue;
        };
        let sealed = seal_credentials(&ctx.config, service.id, url, &credentials);
        let now = ctx.clock.now();
        let mut tx = ctx.db.begin().await?;
        if !service_store::replace_credentials(&mut tx, service.id, old, &sealed).await? {
            continue;
        }
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(
                Actor::System,
                "service_credentials_bound",
                format!("service:{}", service.id),
            )
            .details(json!({"platform_url": url, "credentials": credentials.describe()})),
        )
        .await?;
        tx.commit().await?;
        bound += 1;
    }
    Ok(bound)
}

/// Point `service` at `platform_url` with `credentials` sealed for that address (the demo's
/// sandbox), audited.
pub async fn repoint(
    ctx: &Context,
    service: &ServiceAccount,
    platform_url: &str,
    credentials: &Credentials,
) -> Result<(), ServiceError> {
    let sealed = seal_credentials(&ctx.config, service.id, platform_url, credentials);
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    service_store::set_platform_account(
        &mut tx,
        service.id,
        platform_url,
        &sealed,
        store::to_micros(now),
    )
    .await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            Actor::System,
            "service_updated",
            format!("service:{}", service.id),
        )
        .details(json!({
            "platform_url": platform_url,
            "previous_platform_url": service.platform_url,
            "credentials_changed": true,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
