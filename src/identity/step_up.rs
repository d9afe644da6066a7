//! Asking for the second factor again before an action that moves money or data (a refund, an
//! approval, an API token, ...) when the last one is older than `signin::STEP_UP_AFTER`.
//!
//! The code is checked by the same rules as at sign-in: the sealed secret opened with the
//! person's own context, `totp::verify` against the last step used (so each code works
//! once), a wrong code counted towards the same lockout as sign-in counts it
//! (`signin::count_failure_as`: `lockout::MAX_FAILED_ATTEMPTS` in a row lock the account for
//! `lockout::LOCKOUT` and email the person) and audited as sign-in audits it, and no code
//! accepted while locked.

use serde_json::json;
use time::OffsetDateTime;

use super::signin::{self, CurrentSession, Origin};
use super::{lockout, IdentityError};
use crate::audit::{self, AuditEvent};
use crate::context::Context;
use crate::store::staff as staff_store;
use crate::store::to_micros;

/// Shown when a code is wrong, already used, or given while the account is locked.
pub const WRONG_CODE: &str =
    "The code is not correct or has already been used. Enter the code your app shows now";

/// What a step-up code came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUpOutcome {
    /// Accepted: the session's second factor is now fresh.
    Done,
    /// Wrong or already used (and counted towards the lockout): ask again with this message.
    Refused(&'static str),
    /// The account is locked: no code is accepted (the attempt is audited, not counted).
    Locked,
}

/// Check a step-up `code` for the signed-in `session` at `now`. `what` names the action for
/// the audit log ("refund", "refund approval", ...).
pub async fn verify(
    ctx: &Context,
    session: &CurrentSession,
    code: &str,
    origin: &Origin,
    what: &str,
    now: OffsetDateTime,
) -> Result<StepUpOutcome, IdentityError> {
    let staff = &session.staff;
    let at = to_micros(now);
    let target = format!("staff:{}", staff.id);
    let event = |action: &str| {
        AuditEvent::new(session.actor(), action, target.clone()).from_ip(origin.ip.clone())
    };
    let mut tx = ctx.db.begin().await?;
    let Some(current) = staff_store::staff_for_update(&mut tx, staff.id).await? else {
        tx.rollback().await?;
        return Ok(StepUpOutcome::Refused(WRONG_CODE));
    };
    let locked = lockout::is_locked(&current, now);
    // The secret as the session loaded it, the last step used as the locked row has it.
    let mut checked = current.clone();
    checked.totp_secret = staff.totp_secret.clone();
    let step = lockout::verify_code(ctx, &checked, code, now);
    let accepted = match step {
        Some(step) if !locked => staff_store::use_totp_step(&mut tx, staff.id, step, at).await?,
        _ => false,
    };
    if !accepted {
        if locked {
            audit::append(
                &mut tx,
                now,
                event("authn_login_fail")
                    .failed()
                    .details(json!({"reason": "account locked", "step": "step_up", "for": what})),
            )
            .await?;
        } else {
            let details = json!({"reason": "wrong code", "step": "step_up", "for": what});
            signin::count_failure_as(ctx, &mut tx, &current, now, origin, "step_up", details)
                .await?;
        }
        tx.commit().await?;
        return Ok(if locked {
            StepUpOutcome::Locked
        } else {
            StepUpOutcome::Refused(WRONG_CODE)
        });
    }
    if current.failed_attempts > 0 {
        staff_store::record_failure(&mut tx, staff.id, 0, None, at).await?;
    }
    audit::append(
        &mut tx,
        now,
        event("authn_step_up").details(json!({"for": what, "second_factor": "totp"})),
    )
    .await?;
    tx.commit().await?;
    signin::record_step_up(ctx, session).await?;
    Ok(StepUpOutcome::Done)
}
