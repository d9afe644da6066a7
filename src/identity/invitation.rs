//! An invitation grants what its inviter may grant when it is accepted, not when it was
//! sent. An invited person's roles are stored when the invitation is sent; when they accept
//! it (set a password with the set-up link, or first sign in with single sign-on), each role
//! a member of staff gave them is kept only if that person, as they are now, could still give
//! it (`permissions::check_grant`: active, and holding staff:manage and every permission of
//! the role in that service). Roles that fail are taken away in the same transaction,
//! audited; if nothing is left, the invitation is refused and nothing changes.

use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, Actor, AuditEvent};
use crate::identity::permissions::{check_grant, Grant, Grants, Role};
use crate::store::standing::{self as standing_store, GivenRow};
use crate::store::{staff_admin as admin_store, StoreError, Tx};

use super::IdentityError;

/// What accepting came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Some roles stand (those whose givers can no longer give them were taken away).
    Stands { lapsed: usize },
    /// No role stands: the invitation is refused (the caller rolls back).
    NothingLeft,
}

/// The staff id in a `granted_by` reference, when a member of staff gave the role.
fn giver(granted_by: &str) -> Option<i64> {
    granted_by.strip_prefix("staff:")?.parse().ok()
}

/// Whether the giver of `g`, holding `status` and `roles` now, could give it to `invitee`.
fn still_givable(
    g: &GivenRow,
    invitee: i64,
    giver_id: i64,
    status: Option<&str>,
    roles: &[GivenRow],
) -> bool {
    if status != Some("active") {
        return false;
    }
    let Ok(role) = g.role.parse::<Role>() else {
        return false;
    };
    let held = Grants(
        roles
            .iter()
            .filter_map(|r| {
                Some(Grant {
                    role: r.role.parse().ok()?,
                    service_id: r.service_id,
                })
            })
            .collect(),
    );
    check_grant(giver_id, &held, invitee, role, g.service_id).is_ok()
}

/// Take away, in `tx`, the roles of `invitee` whose givers could not give them now.
pub async fn accept(
    tx: &mut Tx,
    now: OffsetDateTime,
    invitee: i64,
    invitee_email: &str,
) -> Result<Accepted, IdentityError> {
    let roles = standing_store::given(tx, invitee).await?;
    let mut lapsed = Vec::new();
    for g in &roles {
        let Some(giver_id) = giver(&g.granted_by) else {
            continue; // given by the system (the command line, the demo): not a person's grant
        };
        let (status, held) = standing_store::status_and_roles(tx, giver_id).await?;
        if !still_givable(g, invitee, giver_id, status.as_deref(), &held) {
            lapsed.push(g.clone());
        }
    }
    if lapsed.len() == roles.len() && !roles.is_empty() {
        return Ok(Accepted::NothingLeft);
    }
    for g in &lapsed {
        remove(tx, invitee, g).await?;
    }
    if !lapsed.is_empty() {
        audit::append(
            tx,
            now,
            AuditEvent::new(
                Actor::staff(invitee, invitee_email),
                "authz_invitation_narrowed",
                format!("staff:{invitee}"),
            )
            .details(json!({
                "lapsed": lapsed.iter().map(|g| json!({
                    "service_id": g.service_id, "role": g.role, "granted_by": g.granted_by,
                })).collect::<Vec<_>>(),
                "why": "the person who gave these roles can no longer give them",
            })),
        )
        .await?;
    }
    Ok(Accepted::Stands {
        lapsed: lapsed.len(),
    })
}

async fn remove(tx: &mut Tx, invitee: i64, g: &GivenRow) -> Result<(), StoreError> {
    admin_store::delete_grant(tx, invitee, g.service_id).await?;
    Ok(())
}
