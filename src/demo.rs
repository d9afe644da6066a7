//! Demo mode (`paydesk demo`): three services on the sandbox platform and one demo account
//! per role, with fixed passwords and authenticator keys so that a newcomer can try every
//! part of paydesk on one machine. Demo accounts exist only in demo mode; the code step shows
//! their current code, labelled as a demo convenience, so no authenticator app is needed.

use serde_json::json;

use crate::audit::{self, Actor, AuditEvent};
use crate::context::Context;
use crate::crypto;
use crate::identity::permissions::Role;
use crate::identity::signin::{is_demo_account, DEMO_DOMAIN};
use crate::identity::{password, totp};
use crate::platform::client::Credentials;
use crate::platform::sandbox::AccountSpec;
use crate::services::{self, NewService};
use crate::store::{self, staff as staff_store};

/// One demo account per role.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoAccount {
    pub role: Role,
    pub email: String,
    pub name: String,
    pub password: String,
    /// The authenticator key, base32, for anyone who would rather use an app.
    pub totp_key: String,
}

fn totp_secret(role: Role) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(format!("paydesk demo authenticator {role}").as_bytes())[..20].to_vec()
}

pub fn accounts() -> Vec<DemoAccount> {
    Role::ALL
        .into_iter()
        .map(|role| {
            let slug = role.to_string().replace('_', "-");
            DemoAccount {
                role,
                email: format!("{slug}{DEMO_DOMAIN}"),
                name: format!("Demo {}", role.label()),
                password: format!("demo-{slug}-password"),
                totp_key: totp::base32_encode(&totp_secret(role)),
            }
        })
        .collect()
}

/// The code a demo account's authenticator would show now (or, if this window's code has
/// been used, the next one): for the demo code step only.
pub fn current_code(ctx: &Context, email: &str, last_step: Option<i64>) -> Option<String> {
    if !ctx.config.is_demo() || !is_demo_account(email) {
        return None;
    }
    let account = accounts()
        .into_iter()
        .find(|a| a.email.eq_ignore_ascii_case(email))?;
    let step = totp::step_at(ctx.clock.now().unix_timestamp());
    let step = if last_step.is_some_and(|l| l >= step) {
        step + 1
    } else {
        step
    };
    Some(totp::code_for_step(&totp_secret(account.role), step))
}

/// The three demo services and the sandbox accounts behind them.
pub fn services(payments_total: usize) -> Vec<(&'static str, &'static str, AccountSpec)> {
    let per = payments_total.div_ceil(3);
    [
        ("parking-permits", "Parking permits"),
        ("planning-applications", "Planning applications"),
        ("pest-control", "Pest control"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (slug, name))| {
        (
            slug,
            name,
            AccountSpec {
                id: slug.to_string(),
                name: name.to_string(),
                api_key: format!("demo-api-key-{}", i + 1),
                client_id: None,
                client_secret: None,
                webhook_url: None,
                webhook_secret: Some(format!("demo-webhook-secret-{slug}")),
                payments: per,
            },
        )
    })
    .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    Service(#[from] services::ServiceError),
    #[error("could not hash a demo password: {0}")]
    Hash(String),
}

/// Create (or point at the running sandbox) the demo services.
pub async fn ensure_services(
    ctx: &Context,
    sandbox_url: &str,
    specs: &[(&str, &str, AccountSpec)],
) -> Result<(), DemoError> {
    for (slug, name, spec) in specs {
        if let Some(existing) = services::by_slug(&ctx.db, slug).await? {
            if existing.platform_url.as_deref() != Some(sandbox_url) {
                // Saved credentials stay with their address: the sandbox's moves with them.
                let credentials = Credentials::ApiKey {
                    api_key: spec.api_key.clone(),
                };
                services::binding::repoint(ctx, &existing, sandbox_url, &credentials).await?;
            }
            continue;
        }
        let new = NewService {
            slug: slug.to_string(),
            name: name.to_string(),
            time_zone: "Europe/London".into(),
            platform_url: Some(sandbox_url.to_string()),
            credentials: Some(Credentials::ApiKey {
                api_key: spec.api_key.clone(),
            }),
            webhook_secret: spec.webhook_secret.clone(),
        };
        if let Err(problems) = services::add(ctx, Actor::System, &new).await? {
            return Err(DemoError::Refused(problems.join("; ")));
        }
    }
    ensure_refund_settings(ctx, specs).await
}

/// Refunds above £100 need a second person, and payers hear of their refunds, in every demo
/// service (unless someone has set the service's refund settings already).
async fn ensure_refund_settings(
    ctx: &Context,
    specs: &[(&str, &str, AccountSpec)],
) -> Result<(), DemoError> {
    for (slug, _, _) in specs {
        let Some(service) = services::by_slug(&ctx.db, slug).await? else {
            continue;
        };
        let current = store::refunds::settings(&ctx.db, service.id).await?;
        if current.refund_approval_threshold.is_some() {
            continue;
        }
        let mut tx = ctx.db.begin().await?;
        store::refunds::set_settings(
            &mut tx,
            service.id,
            &store::refunds::RefundSettings {
                refund_approval_threshold: Some(10_000),
                refund_email_enabled: true,
                ..current
            },
            store::to_micros(ctx.clock.now()),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Create the demo accounts that do not exist yet, active, with their passwords and keys.
pub async fn ensure_accounts(
    ctx: &Context,
    service_slugs: &[&str],
) -> Result<Vec<DemoAccount>, DemoError> {
    if !ctx.config.is_demo() {
        return Err(DemoError::Refused(
            "demo accounts exist only in demo mode".into(),
        ));
    }
    let mut service_ids = Vec::new();
    for slug in service_slugs {
        if let Some(s) = services::by_slug(&ctx.db, slug).await? {
            service_ids.push(s.id);
        }
    }
    let all = accounts();
    for account in &all {
        let key = crate::identity::email::email_key(&account.email);
        if staff_store::staff_by_email_key(&ctx.db, &key)
            .await?
            .is_some()
        {
            continue;
        }
        let hash = password::hash(account.password.clone())
            .await
            .map_err(|e| DemoError::Hash(e.to_string()))?;
        let now = ctx.clock.now();
        let micros = store::to_micros(now);
        let mut tx = ctx.db.begin().await?;
        let Some(id) =
            staff_store::insert_staff(&mut tx, &account.email, &key, &account.name, micros).await?
        else {
            continue;
        };
        staff_store::set_password(&mut tx, id, &hash, micros).await?;
        let sealed = crypto::seal(
            &ctx.config.totp_key(),
            &crate::identity::totp::totp_context(id),
            &totp_secret(account.role),
        );
        staff_store::set_totp(&mut tx, id, &sealed, 0, micros).await?;
        staff_store::set_status(&mut tx, id, "active", micros).await?;
        if account.role.is_global() {
            staff_store::insert_grant(
                &mut tx,
                id,
                None,
                &account.role.to_string(),
                "system:demo",
                micros,
            )
            .await?;
        } else {
            for service_id in &service_ids {
                staff_store::insert_grant(
                    &mut tx,
                    id,
                    Some(*service_id),
                    &account.role.to_string(),
                    "system:demo",
                    micros,
                )
                .await?;
            }
        }
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(Actor::System, "user_created", format!("staff:{id}")).details(
                json!({"email": account.email, "role": account.role.to_string(), "demo": true}),
            ),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_demo_account_per_role_with_a_valid_password() {
        let all = accounts();
        assert_eq!(all.len(), Role::ALL.len());
        for a in &all {
            assert!(is_demo_account(&a.email));
            assert!(
                crate::identity::accounts::is_valid_email(&a.email),
                "{}",
                a.email
            );
            assert!(a.password.len() >= 12);
            assert_eq!(
                totp::base32_decode(&a.totp_key).unwrap(),
                totp_secret(a.role)
            );
        }
        assert!(!is_demo_account("caseworker@example.gov.uk"));
    }

    #[test]
    fn the_demo_services_hold_the_payments_between_them() {
        let s = services(20_000);
        assert_eq!(s.len(), 3);
        assert!(s.iter().map(|(_, _, a)| a.payments).sum::<usize>() >= 20_000);
    }
}
