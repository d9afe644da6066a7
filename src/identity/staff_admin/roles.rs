//! Giving and taking away a person's role in one service, under the grant rules.

use serde_json::json;

use super::people::resolve_service;
use super::{Admin, Person, Refusal};
use crate::audit::{self};
use crate::context::Context;
use crate::identity::permissions::{check_grant, Role};
use crate::identity::IdentityError;
use crate::store::staff_admin as admin_store;
use crate::store::{self};

fn role_of(name: &str) -> Result<Role, Refusal> {
    name.trim().parse::<Role>().map_err(|_| Refusal::NoSuchRole)
}

/// What a role change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChanged {
    pub service: String,
    pub from: Option<Role>,
    pub to: Role,
}

/// Give `person` `role` in the service named `service_key` (a slug, or `*` for the platform
/// admin role), replacing the role they held there.
pub async fn set_role(
    ctx: &Context,
    admin: &Admin,
    person: &Person,
    service_key: &str,
    role: &str,
) -> Result<Result<RoleChanged, Refusal>, IdentityError> {
    if person.id == admin.id {
        return Ok(Err(Refusal::OwnAccount));
    }
    let service = match resolve_service(&ctx.db, admin, service_key).await? {
        Ok(s) => s,
        Err(r) => return Ok(Err(r)),
    };
    let role = match role_of(role) {
        Ok(r) => r,
        Err(r) => return Ok(Err(r)),
    };
    let service_id = service.as_ref().map(|s| s.id);
    if role.is_global() != service_id.is_none() {
        return Ok(Err(Refusal::NoSuchRole));
    }
    if let Err(e) = check_grant(admin.id, &admin.grants, person.id, role, service_id) {
        return Ok(Err(e.into()));
    }
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    let old = admin_store::grant_in(&mut tx, person.id, service_id)
        .await?
        .and_then(|r| r.parse::<Role>().ok());
    if let Some(old) = old {
        let refusal = if old == role {
            Some(Refusal::Unchanged)
        } else {
            // Taking the old role away is a change of its own: the same rule applies.
            check_grant(admin.id, &admin.grants, person.id, old, service_id)
                .err()
                .map(Refusal::from)
        };
        if let Some(r) = refusal {
            tx.rollback().await?;
            return Ok(Err(r));
        }
    }
    admin_store::put_grant(
        &mut tx,
        person.id,
        service_id,
        role.name(),
        &admin.actor().reference(),
        store::to_micros(now),
    )
    .await?;
    let service_name = service
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_else(|| "Every service".into());
    let action = if old.is_some() {
        "user_role_changed"
    } else {
        "user_access_granted"
    };
    audit::append(
        &mut tx,
        now,
        admin.event(action, person.id).details(json!({
            "service": service.as_ref().map(|s| s.slug.clone()),
            "from": old.map(Role::name),
            "to": role.name(),
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(RoleChanged {
        service: service_name,
        from: old,
        to: role,
    }))
}

/// Take away `person`'s role in the service named `service_key`.
pub async fn remove_access(
    ctx: &Context,
    admin: &Admin,
    person: &Person,
    service_key: &str,
) -> Result<Result<String, Refusal>, IdentityError> {
    if person.id == admin.id {
        return Ok(Err(Refusal::OwnAccount));
    }
    let service = match resolve_service(&ctx.db, admin, service_key).await? {
        Ok(s) => s,
        Err(r) => return Ok(Err(r)),
    };
    let service_id = service.as_ref().map(|s| s.id);
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    let Some(old) = admin_store::grant_in(&mut tx, person.id, service_id)
        .await?
        .and_then(|r| r.parse::<Role>().ok())
    else {
        tx.rollback().await?;
        return Ok(Err(Refusal::NoAccess));
    };
    if let Err(e) = check_grant(admin.id, &admin.grants, person.id, old, service_id) {
        tx.rollback().await?;
        return Ok(Err(e.into()));
    }
    admin_store::delete_grant(&mut tx, person.id, service_id).await?;
    audit::append(
        &mut tx,
        now,
        admin
            .event("user_access_removed", person.id)
            .details(json!({
                "service": service.as_ref().map(|s| s.slug.clone()),
                "role": old.name(),
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(service
        .map(|s| s.name)
        .unwrap_or_else(|| "Every service".into())))
}
