//! Signing in and staying signed in: the password step, the second factor (or enrolling an
//! authenticator), lockout, server-side sessions and signing out.
//!
//! A correct password (or a single sign-on) yields a *pending* session, good only for the next
//! step and for ten minutes. Completing the second factor deletes it and creates the real
//! session under a new id, so a session id seen before sign-in is never the signed-in one.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::lockout::{LOCKOUT, MAX_FAILED_ATTEMPTS};
use super::permissions::{Grant, Grants, Role};
use super::totp::{pending_totp_context, totp_context};
use super::{password, sessions, totp, IdentityError};
use crate::audit::{self, Actor, AuditEvent};
use crate::context::Context;
use crate::crypto;
use crate::store::staff::{self as staff_store, NewSession, SessionRow, StaffRow};
use crate::store::{self, from_micros, to_micros};

/// Demo accounts' addresses end with this; nothing else is ever treated as a demo account
/// (and outside demo mode such an account cannot sign in).
pub const DEMO_DOMAIN: &str = "@demo.paydesk.test";

pub fn is_demo_account(email: &str) -> bool {
    email.to_ascii_lowercase().ends_with(DEMO_DOMAIN)
}

/// How long the code or enrolment step may take after the password.
pub const PENDING_STEP_VALID: Duration = Duration::minutes(10);
/// Actions that move money or data re-ask the second factor when the last one is older.
pub const STEP_UP_AFTER: Duration = Duration::minutes(5);

/// Where a request comes from, for the audit log and the sessions list.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The stage a session is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    SecondFactor,
    Enrol,
    Active,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::SecondFactor => "second_factor",
            Stage::Enrol => "enrol",
            Stage::Active => "active",
        }
    }
}

/// The answer to the password step.
#[derive(Debug)]
pub enum PasswordStep {
    /// Wrong email, wrong password, locked, disabled or not set up: all look the same.
    Refused,
    /// Go on to the code (or enrolment) step with this pending session id.
    Next { session_id: String, stage: Stage },
}

fn staff_actor(staff: &StaffRow) -> Actor {
    Actor::staff(staff.id, &staff.email)
}

/// An audit event by `staff` about themselves, from where the request came.
fn staff_event(staff: &StaffRow, action: &str, origin: &Origin) -> AuditEvent {
    AuditEvent::new(staff_actor(staff), action, format!("staff:{}", staff.id))
        .from_ip(origin.ip.clone())
}

/// The password step. Every refusal takes as long as a success (a real or dummy hash is
/// always verified) and reads the same, so nobody learns whether an address has an account.
pub async fn password_step(
    ctx: &Context,
    email: &str,
    password_given: &str,
    return_to: Option<&str>,
    origin: &Origin,
) -> Result<PasswordStep, IdentityError> {
    let key = super::email::email_key(email);
    let staff = if key.is_empty() || key.len() > 254 {
        None
    } else {
        staff_store::staff_by_email_key(&ctx.db, &key).await?
    };
    let stored = staff.as_ref().and_then(|s| s.password_hash.clone());
    // Bound the work an attacker can ask for; the rules cap real passwords at the same length.
    let given: String = password_given
        .chars()
        .take(password::MAX_LENGTH + 1)
        .collect();
    let matched = password::verify(given, stored).await;
    let now = ctx.clock.now();

    let Some(staff) = staff else {
        audit::record(
            &ctx.db,
            now,
            AuditEvent::new(Actor::Anonymous, "authn_login_fail", "staff:unknown")
                .failed()
                .from_ip(origin.ip.clone())
                .details(json!({"reason": "unknown email", "email": truncate(email, 100)})),
        )
        .await?;
        return Ok(PasswordStep::Refused);
    };

    let mut tx = ctx.db.begin().await?;
    let Some(current) = staff_store::staff_for_update(&mut tx, staff.id).await? else {
        tx.rollback().await?;
        return Ok(PasswordStep::Refused);
    };
    let locked = current
        .locked_until
        .is_some_and(|until| until > to_micros(now));
    let refusal = if current.status == "disabled" {
        Some("account disabled")
    } else if !ctx.config.is_demo() && is_demo_account(&current.email) {
        // Demo accounts have published passwords: they work only in demo mode.
        Some("demo account outside demo mode")
    } else if locked {
        Some("account locked")
    } else if !matched {
        Some("wrong password")
    } else {
        None
    };
    if let Some(reason) = refusal {
        if reason == "wrong password" {
            count_failure(ctx, &mut tx, &current, now, origin, "password").await?;
        } else {
            audit::append(
                &mut tx,
                now,
                staff_event(&current, "authn_login_fail", origin)
                    .failed()
                    .details(json!({"reason": reason, "step": "password"})),
            )
            .await?;
        }
        tx.commit().await?;
        return Ok(PasswordStep::Refused);
    }
    let stage = if current.totp_secret.is_some() {
        Stage::SecondFactor
    } else {
        Stage::Enrol
    };
    let session_id = insert_session(
        &mut tx, &current, stage, "password", None, return_to, origin, now,
    )
    .await?;
    audit::append(
        &mut tx,
        now,
        staff_event(&current, "authn_password_ok", origin).details(json!({"next": stage.as_str()})),
    )
    .await?;
    tx.commit().await?;
    Ok(PasswordStep::Next { session_id, stage })
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Count a failed password or code; the tenth in a row locks the account for 30 minutes and
/// emails the person about it (`lockout`).
async fn count_failure(
    ctx: &Context,
    tx: &mut store::Tx,
    staff: &StaffRow,
    now: OffsetDateTime,
    origin: &Origin,
    step: &str,
) -> Result<bool, IdentityError> {
    let details = json!({"reason": format!("wrong {step}"), "step": step});
    count_failure_as(ctx, tx, staff, now, origin, step, details).await
}

/// `count_failure` with the failure's own audit `details` (a step-up names what it was for);
/// the running count is added to them as `failures`.
pub(super) async fn count_failure_as(
    ctx: &Context,
    tx: &mut store::Tx,
    staff: &StaffRow,
    now: OffsetDateTime,
    origin: &Origin,
    step: &str,
    mut details: serde_json::Value,
) -> Result<bool, IdentityError> {
    // A lock that has run out starts the count again.
    let previous = if staff.locked_until.is_some() {
        0
    } else {
        staff.failed_attempts
    };
    let failures = previous + 1;
    let lock = failures >= MAX_FAILED_ATTEMPTS;
    let (count, until) = if lock {
        (0, Some(to_micros(now + LOCKOUT)))
    } else {
        (failures, None)
    };
    staff_store::record_failure(tx, staff.id, count, until, to_micros(now)).await?;
    details["failures"] = json!(failures);
    audit::append(
        tx,
        now,
        staff_event(staff, "authn_login_fail", origin)
            .failed()
            .details(details),
    )
    .await?;
    if lock {
        audit::append(
            tx,
            now,
            staff_event(staff, "authn_login_lock", origin)
                .details(json!({"failures": failures, "locked_minutes": LOCKOUT.whole_minutes()})),
        )
        .await?;
        super::lockout::notify_locked(
            ctx,
            tx,
            staff,
            origin.ip.as_deref(),
            step,
            now,
            now + LOCKOUT,
        )
        .await?;
    }
    Ok(lock)
}

#[allow(clippy::too_many_arguments)]
async fn insert_session(
    tx: &mut store::Tx,
    staff: &StaffRow,
    stage: Stage,
    auth_method: &str,
    second_factor_at: Option<OffsetDateTime>,
    return_to: Option<&str>,
    origin: &Origin,
    now: OffsetDateTime,
) -> Result<String, IdentityError> {
    let session_id = sessions::new_session_id();
    let agent = origin.user_agent.as_deref().map(|a| truncate(a, 200));
    staff_store::insert_session(
        tx,
        &NewSession {
            id_hash: &sessions::id_hash(&session_id),
            staff_id: staff.id,
            stage: stage.as_str(),
            auth_method,
            second_factor_at: second_factor_at.map(to_micros),
            return_to,
            ip: origin.ip.as_deref(),
            user_agent: agent.as_deref(),
        },
        to_micros(now),
    )
    .await?;
    Ok(session_id)
}

/// Start a pending session for someone an identity provider vouched for.
pub async fn start_pending(
    ctx: &Context,
    staff: &StaffRow,
    stage: Stage,
    auth_method: &str,
    return_to: Option<&str>,
    origin: &Origin,
) -> Result<String, IdentityError> {
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    let id = insert_session(
        &mut tx,
        staff,
        stage,
        auth_method,
        None,
        return_to,
        origin,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Sign someone straight in (single sign-on whose provider already did multi-factor).
pub async fn start_active(
    ctx: &Context,
    staff: &StaffRow,
    auth_method: &str,
    origin: &Origin,
    details: serde_json::Value,
) -> Result<String, IdentityError> {
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    let id = open_signed_in_session(&mut tx, staff, auth_method, origin, now, details).await?;
    tx.commit().await?;
    Ok(id)
}

/// The end of every sign-in: the account's counters reset, a new active session (a new id,
/// second factor given now), and `authn_login_success` in the audit log.
async fn open_signed_in_session(
    tx: &mut store::Tx,
    staff: &StaffRow,
    auth_method: &str,
    origin: &Origin,
    now: OffsetDateTime,
    details: serde_json::Value,
) -> Result<String, IdentityError> {
    staff_store::record_sign_in(tx, staff.id, to_micros(now)).await?;
    let id = insert_session(
        tx,
        staff,
        Stage::Active,
        auth_method,
        Some(now),
        None,
        origin,
        now,
    )
    .await?;
    audit::append(
        tx,
        now,
        staff_event(staff, "authn_login_success", origin).details(details),
    )
    .await?;
    Ok(id)
}

/// A session found from its cookie, with the person and what they hold.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub session_id: String,
    pub session: SessionRow,
    pub staff: StaffRow,
    pub grants: Grants,
    /// (service name or None for global, role) for display.
    pub roles: Vec<(Option<String>, Role)>,
    pub expires_at: OffsetDateTime,
}

impl CurrentSession {
    pub fn id_hash(&self) -> &str {
        &self.session.id_hash
    }

    pub fn actor(&self) -> Actor {
        staff_actor(&self.staff)
    }

    pub fn stage(&self) -> Stage {
        match self.session.stage.as_str() {
            "second_factor" => Stage::SecondFactor,
            "enrol" => Stage::Enrol,
            _ => Stage::Active,
        }
    }

    /// Whether the second factor was given recently enough for a sensitive action.
    pub fn second_factor_recent(&self, now: OffsetDateTime) -> bool {
        self.session
            .second_factor_at
            .is_some_and(|t| from_micros(t) + STEP_UP_AFTER > now)
    }
}

/// Why a cookie did not lead to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSession {
    /// No cookie, or one that names no session.
    Missing,
    /// The session ran out (idle or absolute); it has been deleted.
    TimedOut,
}

/// Look up the session for a cookie value at `stage`, end it if it has run out, and record
/// this use (which restarts the idle timer).
pub async fn load_session(
    ctx: &Context,
    session_id: &str,
    stage: Stage,
) -> Result<Result<CurrentSession, NoSession>, IdentityError> {
    if !sessions::looks_like_session_id(session_id) {
        return Ok(Err(NoSession::Missing));
    }
    let now = ctx.clock.now();
    let hash = sessions::id_hash(session_id);
    let Some(session) = staff_store::session_by_hash(&ctx.db, &hash).await? else {
        return Ok(Err(NoSession::Missing));
    };
    if session.stage != stage.as_str() {
        return Ok(Err(NoSession::Missing));
    }
    let created = from_micros(session.created_at);
    let last_seen = from_micros(session.last_seen_at);
    let timed_out = match stage {
        Stage::Active => matches!(
            sessions::state(created, last_seen, now),
            sessions::SessionState::IdleExpired | sessions::SessionState::AbsoluteExpired
        ),
        _ => now >= created + PENDING_STEP_VALID,
    };
    let staff = staff_store::staff_with_grants(&ctx.db, session.staff_id).await?;
    let (staff, grant_rows) = match staff {
        Some((s, g)) if s.status != "disabled" && !timed_out => (s, g),
        _ => {
            let mut tx = ctx.db.begin().await?;
            let gone = staff_store::delete_session(&mut tx, &hash).await?;
            if gone && timed_out && stage == Stage::Active {
                audit::append(
                    &mut tx,
                    now,
                    AuditEvent::new(
                        Actor::System,
                        "session_expired",
                        format!("session:{}", session.id),
                    )
                    .details(json!({"staff": session.staff_id})),
                )
                .await?;
            }
            tx.commit().await?;
            return Ok(Err(if timed_out {
                NoSession::TimedOut
            } else {
                NoSession::Missing
            }));
        }
    };
    // Writing on every request would make every page view a write; a few seconds of slack
    // on a 15-minute timer is harmless.
    if stage == Stage::Active && now - last_seen >= Duration::seconds(5) {
        staff_store::touch_session(&ctx.db, &hash, to_micros(now)).await?;
    }
    let last_seen = if stage == Stage::Active {
        now
    } else {
        last_seen
    };
    let mut grants = Vec::new();
    let mut roles = Vec::new();
    for g in grant_rows {
        if let Ok(role) = g.role.parse::<Role>() {
            grants.push(Grant {
                role,
                service_id: g.service_id,
            });
            roles.push((g.service_name.clone(), role));
        }
    }
    Ok(Ok(CurrentSession {
        session_id: session_id.to_string(),
        expires_at: sessions::expires_at(created, last_seen),
        session,
        staff,
        grants: Grants(grants),
        roles,
    }))
}

/// The answer to a code (or enrolment) step.
#[derive(Debug)]
pub enum CodeStep {
    /// Wrong or reused code; try again.
    Wrong,
    /// Too many failures: the account is locked and the pending session has ended.
    Locked,
    /// Signed in: the new session's id, and where to go.
    SignedIn {
        session_id: String,
        return_to: Option<String>,
    },
}

/// Check the code from the authenticator for a pending `second_factor` session.
pub async fn code_step(
    ctx: &Context,
    pending: &CurrentSession,
    code: &str,
    origin: &Origin,
) -> Result<CodeStep, IdentityError> {
    let key = ctx.config.totp_key();
    let secret = pending
        .staff
        .totp_secret
        .as_deref()
        .and_then(|sealed| crypto::open(&key, &totp_context(pending.staff.id), sealed).ok());
    let now = ctx.clock.now();
    let step = secret
        .as_deref()
        .and_then(|s| totp::verify(s, code, now.unix_timestamp(), pending.staff.totp_last_step));
    finish_second_factor(ctx, pending, step, None, origin, now).await
}

/// The secret being enrolled in this session, made on first use and kept until confirmed.
pub async fn enrolment_secret(
    ctx: &Context,
    session: &CurrentSession,
) -> Result<Vec<u8>, IdentityError> {
    let key = ctx.config.totp_key();
    let context = pending_totp_context(session.staff.id);
    if let Some(secret) = session
        .session
        .pending_totp_secret
        .as_deref()
        .and_then(|sealed| crypto::open(&key, &context, sealed).ok())
    {
        return Ok(secret);
    }
    let secret = totp::generate_secret();
    let sealed = crypto::seal(&key, &context, &secret);
    let mut tx = ctx.db.begin().await?;
    staff_store::set_session_pending_totp(&mut tx, session.id_hash(), Some(&sealed)).await?;
    tx.commit().await?;
    Ok(secret)
}

/// Confirm an authenticator being enrolled (`secret`, from `enrolment_secret`) with a code
/// from it. In a pending `enrol` session this completes sign-in; in an active session it
/// replaces the person's authenticator.
pub async fn confirm_enrolment(
    ctx: &Context,
    session: &CurrentSession,
    secret: &[u8],
    code: &str,
    origin: &Origin,
) -> Result<CodeStep, IdentityError> {
    let key = ctx.config.totp_key();
    let now = ctx.clock.now();
    let step = totp::verify(secret, code, now.unix_timestamp(), None);
    let sealed = crypto::seal(&key, &totp_context(session.staff.id), secret);
    finish_second_factor(ctx, session, step, Some(sealed), origin, now).await
}

/// Shared end of the code and enrolment steps.
async fn finish_second_factor(
    ctx: &Context,
    session: &CurrentSession,
    step: Option<i64>,
    new_secret: Option<String>,
    origin: &Origin,
    now: OffsetDateTime,
) -> Result<CodeStep, IdentityError> {
    let staff = &session.staff;
    let mut tx = ctx.db.begin().await?;
    let Some(current) = staff_store::staff_for_update(&mut tx, staff.id).await? else {
        tx.rollback().await?;
        return Ok(CodeStep::Locked);
    };
    let accepted = match (step, &new_secret) {
        (Some(step), Some(sealed)) => {
            staff_store::set_totp(&mut tx, staff.id, sealed, step, to_micros(now)).await?;
            true
        }
        (Some(step), None) => {
            staff_store::use_totp_step(&mut tx, staff.id, step, to_micros(now)).await?
        }
        (None, _) => false,
    };
    let locked_now = current.locked_until.is_some_and(|u| u > to_micros(now));
    if !accepted || locked_now {
        let locked = if locked_now {
            true
        } else {
            count_failure(ctx, &mut tx, &current, now, origin, "code").await?
        };
        if locked && session.stage() != Stage::Active {
            staff_store::delete_session(&mut tx, session.id_hash()).await?;
        }
        tx.commit().await?;
        return Ok(if locked && session.stage() != Stage::Active {
            CodeStep::Locked
        } else {
            CodeStep::Wrong
        });
    }
    if session.stage() == Stage::Active {
        // Re-enrolment from the account page: the session carries on.
        staff_store::set_session_pending_totp(&mut tx, session.id_hash(), None).await?;
        staff_store::set_session_second_factor(&mut tx, session.id_hash(), to_micros(now)).await?;
        audit::append(
            &mut tx,
            now,
            staff_event(staff, "authn_mfa_enrolled", origin).details(json!({"replaced": true})),
        )
        .await?;
        tx.commit().await?;
        return Ok(CodeStep::SignedIn {
            session_id: session.session_id.clone(),
            return_to: None,
        });
    }
    // Promote: the pending session goes, a new one (new id) takes its place.
    let Some(pending) = staff_store::take_session(&mut tx, session.id_hash()).await? else {
        tx.rollback().await?;
        return Ok(CodeStep::Locked);
    };
    if new_secret.is_some() {
        audit::append(
            &mut tx,
            now,
            staff_event(staff, "authn_mfa_enrolled", origin),
        )
        .await?;
    }
    let session_id = open_signed_in_session(
        &mut tx,
        staff,
        &pending.auth_method,
        origin,
        now,
        json!({"method": pending.auth_method, "second_factor": "totp"}),
    )
    .await?;
    tx.commit().await?;
    Ok(CodeStep::SignedIn {
        session_id,
        return_to: pending.return_to,
    })
}

/// Sign out: the session row goes, so the cookie is worthless even if copied.
pub async fn sign_out(
    ctx: &Context,
    session: &CurrentSession,
    origin: &Origin,
) -> Result<(), IdentityError> {
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    staff_store::delete_session(&mut tx, session.id_hash()).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            session.actor(),
            "authn_logout",
            format!("session:{}", session.session.id),
        )
        .from_ip(origin.ip.clone()),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Mark the second factor as just given (after a step-up code).
pub async fn record_step_up(ctx: &Context, session: &CurrentSession) -> Result<(), IdentityError> {
    let mut tx = ctx.db.begin().await?;
    staff_store::set_session_second_factor(&mut tx, session.id_hash(), to_micros(ctx.clock.now()))
        .await?;
    tx.commit().await?;
    Ok(())
}
