//! Asking for the second factor again before an action that moves money (a refund, an
//! approval, a rejection) when the last one is older than `signin::STEP_UP_AFTER`.
//!
//! The code is checked by the same rules as at sign-in: the sealed secret opened with the
//! person's own context, `totp::verify` against the last step used (so each code works
//! once), a wrong code counted towards the same lockout (10 in a row lock the account for
//! 30 minutes) and audited as sign-in audits it, and no code accepted while locked.

use std::net::IpAddr;

use rocket::http::Status;
use serde_json::{json, Value};

use super::pages::internal;
use super::ratelimit::SignInLimiter;
use crate::audit::{self, AuditEvent};
use crate::crypto;
use crate::identity::lockout::{LOCKOUT, MAX_FAILED_ATTEMPTS};
use crate::identity::signin::{self, CurrentSession, Origin};
use crate::identity::totp;
use crate::store::staff as staff_store;
use crate::store::to_micros;
use crate::AppState;

/// What a step-up code came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUp {
    /// Accepted: the session's second factor is now fresh.
    Done,
    /// Wrong, reused, or the account is locked: ask again with this message.
    Refused(&'static str),
}

pub const WRONG_CODE: &str =
    "The code is not correct or has already been used. Enter the code your app shows now";
pub const NO_CODE: &str = "Enter the 6-digit code from your authenticator app";
pub const TOO_MANY: &str = "Too many attempts from your address. Wait a minute and try again";

/// Check a step-up `code` for the signed-in `session`. `what` names the action for the audit
/// log ("refund", "refund approval", ...).
pub async fn verify(
    state: &AppState,
    limiter: Option<&SignInLimiter>,
    client_ip: Option<IpAddr>,
    session: &CurrentSession,
    code: &str,
    origin: &Origin,
    what: &str,
) -> Result<StepUp, Status> {
    if code.trim().is_empty() {
        return Ok(StepUp::Refused(NO_CODE));
    }
    // The same per-address limit as the sign-in code step.
    if let Some(limiter) = limiter {
        let ip = client_ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        if !limiter.allow(ip) {
            return Ok(StepUp::Refused(TOO_MANY));
        }
    }
    let staff = &session.staff;
    let now = state.clock.now();
    let at = to_micros(now);
    let key = state.config.totp_key();
    let secret = staff.totp_secret.as_deref().and_then(|sealed| {
        crypto::open(&key, &crate::identity::totp::totp_context(staff.id), sealed).ok()
    });
    let target = format!("staff:{}", staff.id);
    let event = |action: &str| {
        AuditEvent::new(session.actor(), action, target.clone()).from_ip(origin.ip.clone())
    };
    let mut tx = state.db.begin().await.map_err(internal)?;
    let Some(current) = staff_store::staff_for_update(&mut tx, staff.id)
        .await
        .map_err(internal)?
    else {
        tx.rollback().await.map_err(internal)?;
        return Ok(StepUp::Refused(WRONG_CODE));
    };
    let locked = current.locked_until.is_some_and(|until| until > at);
    let step = secret
        .as_deref()
        .and_then(|s| totp::verify(s, code, now.unix_timestamp(), current.totp_last_step));
    let accepted = match step {
        Some(step) if !locked => staff_store::use_totp_step(&mut tx, staff.id, step, at)
            .await
            .map_err(internal)?,
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
            .await
            .map_err(internal)?;
        } else {
            // Counted as sign-in counts a wrong code: the tenth in a row locks the account.
            let previous = if current.locked_until.is_some() {
                0
            } else {
                current.failed_attempts
            };
            let failures = previous + 1;
            let lock = failures >= MAX_FAILED_ATTEMPTS;
            let (count, until) = if lock {
                (0, Some(to_micros(now + LOCKOUT)))
            } else {
                (failures, None)
            };
            staff_store::record_failure(&mut tx, staff.id, count, until, at)
                .await
                .map_err(internal)?;
            audit::append(
                &mut tx,
                now,
                event("authn_login_fail").failed().details(json!({
                    "reason": "wrong code", "step": "step_up", "for": what, "failures": failures,
                })),
            )
            .await
            .map_err(internal)?;
            if lock {
                audit::append(
                    &mut tx,
                    now,
                    event("authn_login_lock").details(json!({
                        "failures": failures, "locked_minutes": LOCKOUT.whole_minutes(),
                    })),
                )
                .await
                .map_err(internal)?;
                crate::identity::lockout::notify_locked(
                    state,
                    &mut tx,
                    &current,
                    origin.ip.as_deref(),
                    "step_up",
                    now,
                    now + LOCKOUT,
                )
                .await
                .map_err(internal)?;
            }
        }
        tx.commit().await.map_err(internal)?;
        return Ok(StepUp::Refused(WRONG_CODE));
    }
    if current.failed_attempts > 0 {
        staff_store::record_failure(&mut tx, staff.id, 0, None, at)
            .await
            .map_err(internal)?;
    }
    audit::append(
        &mut tx,
        now,
        event("authn_step_up").details(json!({"for": what, "second_factor": "totp"})),
    )
    .await
    .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    signin::record_step_up(state, session)
        .await
        .map_err(internal)?;
    Ok(StepUp::Done)
}

/// The "Confirm it's you" page's context: where the form goes, what it carries, what it is
/// for, and (demo accounts in demo mode only) the current code.
#[allow(clippy::too_many_arguments)]
pub fn context(
    state: &AppState,
    session: &CurrentSession,
    action: &str,
    hidden: Vec<(&str, String)>,
    purpose: &str,
    button: &str,
    back_href: &str,
    error: Option<&str>,
) -> serde_json::Map<String, Value> {
    let mut c = super::pages::signed_in(state, session, "");
    c.insert("action".into(), json!(action));
    c.insert(
        "hidden".into(),
        Value::Array(
            hidden
                .into_iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect(),
        ),
    );
    c.insert("purpose".into(), json!(purpose));
    c.insert("button".into(), json!(button));
    c.insert("back_href".into(), json!(back_href));
    c.insert(
        "errors".into(),
        match error {
            Some(message) => json!([super::pages::problem("code", message)]),
            None => json!([]),
        },
    );
    if let Some(code) =
        crate::demo::current_code(state, &session.staff.email, session.staff.totp_last_step)
    {
        c.insert("demo_code".into(), Value::String(code));
    }
    c
}
