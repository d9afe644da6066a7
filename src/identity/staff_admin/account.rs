//! Whole-account actions: disabling and re-enabling an account, signing it out everywhere
//! and resetting its authenticator, each only for someone wholly in the administrator's services.

use serde_json::json;

use super::{Admin, Person, Refusal};
use crate::audit::{self};
use crate::context::Context;
use crate::identity::accounts;
use crate::identity::IdentityError;
use crate::store::staff::{self as staff_store, StaffRow};
use crate::store::staff_admin as admin_store;
use crate::store::{self};

/// The checks every whole-account action makes. Whole-account actions act on a person's
/// account as a whole rather than on their role in one service (disabling and re-enabling it,
/// resetting its authenticator, signing it out everywhere, sending its invitation again). An
/// administrator may take one only on someone else whose every role is in services they
/// manage: a service admin of A cannot reach a person's work in B.
pub fn whole_account(admin: &Admin, person: &Person) -> Result<(), Refusal> {
    if person.id == admin.id {
        Err(Refusal::OwnAccount)
    } else if !person.wholly_managed() {
        Err(Refusal::OtherServices)
    } else {
        Ok(())
    }
}

/// Disable an account: it cannot sign in, its sessions end at once and its unused links die.
pub async fn disable(
    ctx: &Context,
    admin: &Admin,
    person: &Person,
) -> Result<Result<u64, Refusal>, IdentityError> {
    if let Err(r) = whole_account(admin, person) {
        return Ok(Err(r));
    }
    let now = ctx.clock.now();
    let at = store::to_micros(now);
    let mut tx = ctx.db.begin().await?;
    let current = staff_store::staff_for_update(&mut tx, person.id).await?;
    if current.as_ref().is_none_or(|s| s.status == "disabled") {
        tx.rollback().await?;
        return Ok(Err(Refusal::AlreadyDisabled));
    }
    staff_store::set_status(&mut tx, person.id, "disabled", at).await?;
    let ended = staff_store::delete_sessions_of(&mut tx, person.id, None).await?;
    let links = admin_store::expire_links(&mut tx, person.id, at).await?;
    audit::append(
        &mut tx,
        now,
        admin.event("user_disabled", person.id).details(json!({
            "sessions_ended": ended,
            "links_ended": links,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(ended))
}

/// The status a re-enabled account returns to: active if it was ever set up, else invited.
fn status_after_enable(staff: &StaffRow) -> &'static str {
    if staff.last_sign_in_at.is_some() || staff.password_hash.is_some() {
        "active"
    } else {
        "invited"
    }
}

/// Re-enable a disabled account. The 90-day inactivity check counts from now. Returns the
/// status it returned to.
pub async fn enable(
    ctx: &Context,
    admin: &Admin,
    person: &Person,
) -> Result<Result<&'static str, Refusal>, IdentityError> {
    if let Err(r) = whole_account(admin, person) {
        return Ok(Err(r));
    }
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    let Some(current) = staff_store::staff_for_update(&mut tx, person.id)
        .await?
        .filter(|s| s.status == "disabled")
    else {
        tx.rollback().await?;
        return Ok(Err(Refusal::NotDisabled));
    };
    let status = status_after_enable(&current);
    admin_store::reactivate(&mut tx, person.id, status, store::to_micros(now)).await?;
    audit::append(
        &mut tx,
        now,
        admin
            .event("user_enabled", person.id)
            .details(json!({"status": status})),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(status))
}

/// End every session of a person at once (a whole-account action).
pub async fn sign_out_everywhere(
    ctx: &Context,
    admin: &Admin,
    person: &Person,
) -> Result<Result<u64, Refusal>, IdentityError> {
    if let Err(r) = whole_account(admin, person) {
        return Ok(Err(r));
    }
    let ended =
        accounts::end_sessions(ctx, admin.actor(), person.id, None, admin.ip.clone()).await?;
    Ok(Ok(ended))
}

/// Forget a person's authenticator and end their sessions: at their next sign-in, after the
/// password, they set up an authenticator again.
pub async fn reset_authenticator(
    ctx: &Context,
    admin: &Admin,
    person: &Person,
) -> Result<Result<u64, Refusal>, IdentityError> {
    if let Err(r) = whole_account(admin, person) {
        return Ok(Err(r));
    }
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    admin_store::clear_totp(&mut tx, person.id, store::to_micros(now)).await?;
    let ended = staff_store::delete_sessions_of(&mut tx, person.id, None).await?;
    audit::append(
        &mut tx,
        now,
        admin
            .event("user_mfa_reset", person.id)
            .details(json!({"sessions_ended": ended})),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(ended))
}
