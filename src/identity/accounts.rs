//! Staff accounts: creating them (with a one-time set-up link), setting and changing
//! passwords, password reset by email, and disabling. Every change is audited in the same
//! transaction; nobody ever chooses a password for somebody else.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::lockout;
use super::password::{self, PasswordContext, PasswordProblem};
use super::permissions::Role;
use super::sessions;
use super::IdentityError;
use crate::audit::{self, Actor, AuditEvent};
use crate::context::Context;
use crate::mail;
use crate::store::staff::{self as staff_store, StaffRow};
use crate::store::{self, Db};

pub use super::email::{email_key, is_valid_email};

pub const SETUP_LINK_VALID: Duration = Duration::hours(48);
pub const RESET_LINK_VALID: Duration = Duration::minutes(90);
/// Reset links one account may be sent in an hour, whoever asks and from wherever.
pub const RESET_LINKS_PER_HOUR: i64 = 5;
/// A new password may not be any of this many most recent ones (PCI DSS 8.3.7), the current
/// one included.
pub const PASSWORD_HISTORY: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddStaffError {
    #[error("Enter an email address in the correct format, like name@example.gov.uk")]
    InvalidEmail,
    #[error("Enter a name")]
    MissingName,
    #[error("There is already an account for that email address")]
    EmailTaken,
    #[error("There is no service called {0:?}")]
    NoSuchService(String),
    #[error("A {0} role is held in a service: say which one")]
    ServiceRequired(&'static str),
    #[error("A platform admin holds the role in every service: do not name one")]
    ServiceNotAllowed,
}

/// A new account and its one-time set-up link token.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub staff_id: i64,
    pub setup_token: String,
    pub expires_at: OffsetDateTime,
}

/// Create an invited account holding `role` (in `service_slug`, unless the role is global),
/// with a set-up link valid for 48 hours.
pub async fn add_staff(
    ctx: &Context,
    actor: Actor,
    email: &str,
    name: &str,
    role: Role,
    service_slug: Option<&str>,
) -> Result<Result<NewAccount, AddStaffError>, IdentityError> {
    let email = email.trim();
    let name = name.trim();
    if !is_valid_email(email) {
        return Ok(Err(AddStaffError::InvalidEmail));
    }
    if name.is_empty() {
        return Ok(Err(AddStaffError::MissingName));
    }
    let service_id = match (role.is_global(), service_slug) {
        (true, None) => None,
        (true, Some(_)) => return Ok(Err(AddStaffError::ServiceNotAllowed)),
        (false, None) => return Ok(Err(AddStaffError::ServiceRequired(role.label()))),
        (false, Some(slug)) => match crate::store::services::by_slug(&ctx.db, slug).await? {
            Some(s) => Some(s.id),
            None => return Ok(Err(AddStaffError::NoSuchService(slug.to_string()))),
        },
    };
    let now = ctx.clock.now();
    let token = sessions::new_session_id();
    let expires_at = now + SETUP_LINK_VALID;
    let mut tx = ctx.db.begin().await?;
    let Some(staff_id) = staff_store::insert_staff(
        &mut tx,
        email,
        &email_key(email),
        name,
        store::to_micros(now),
    )
    .await?
    else {
        tx.rollback().await?;
        return Ok(Err(AddStaffError::EmailTaken));
    };
    let granted_by = actor.reference();
    staff_store::insert_grant(
        &mut tx,
        staff_id,
        service_id,
        role.name(),
        &granted_by,
        store::to_micros(now),
    )
    .await?;
    staff_store::insert_link(
        &mut tx,
        &sessions::id_hash(&token),
        staff_id,
        "setup",
        store::to_micros(expires_at),
        store::to_micros(now),
    )
    .await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "user_created", format!("staff:{staff_id}")).details(json!({
            "email": email,
            "name": name,
            "role": role.name(),
            "service": service_slug,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(NewAccount {
        staff_id,
        setup_token: token,
        expires_at,
    }))
}

/// The account a one-time link belongs to, if the link can still be used.
pub async fn link_owner(
    db: &Db,
    token: &str,
    purpose: &str,
    now: OffsetDateTime,
) -> Result<Option<StaffRow>, IdentityError> {
    if !sessions::looks_like_session_id(token) {
        return Ok(None);
    }
    let Some(link) = staff_store::link(db, &sessions::id_hash(token)).await? else {
        return Ok(None);
    };
    if link.purpose != purpose || link.used_at.is_some() || link.expires_at <= store::to_micros(now)
    {
        return Ok(None);
    }
    let staff = staff_store::staff_by_id(db, link.staff_id).await?;
    Ok(staff.filter(|s| s.status != "disabled"))
}

/// What became of a new password.
#[derive(Debug)]
pub enum PasswordOutcome {
    /// It broke a rule; nothing changed. `name` is the person's, for the page shown again;
    /// `needs_code` when the account is locked and the page must ask for a code as well.
    Problems {
        problems: Vec<PasswordProblem>,
        name: String,
        needs_code: bool,
    },
    /// The account is locked and the code from the authenticator app was wrong: the link is
    /// used up and nothing else changed (`lockout`).
    CodeWrong,
    /// The link was unknown, used or expired; nothing changed.
    LinkInvalid,
    Done {
        staff: StaffRow,
    },
}

/// Check a new password against the rules and the person's recent passwords.
async fn password_problems(
    ctx: &Context,
    staff: &StaffRow,
    new_password: &str,
    confirmation: &str,
) -> Result<Vec<PasswordProblem>, IdentityError> {
    let problems = password::check_new_password(
        new_password,
        confirmation,
        &PasswordContext {
            email: &staff.email,
            service_name: &ctx.config.service_name,
        },
    );
    if !problems.is_empty() {
        return Ok(problems);
    }
    let mut recent: Vec<String> = staff.password_hash.iter().cloned().collect();
    recent.extend(
        staff_store::password_history(&ctx.db, staff.id, PASSWORD_HISTORY as i64 - 1).await?,
    );
    for old in recent.into_iter().take(PASSWORD_HISTORY) {
        if password::verify(new_password.to_string(), Some(old)).await {
            return Ok(vec![PasswordProblem {
                field: "password",
                message: format!(
                    "Password must not be one of your last {PASSWORD_HISTORY} passwords"
                ),
            }]);
        }
    }
    Ok(Vec::new())
}

/// Use a set-up or reset link to set a password. The link is used up only when the password
/// is accepted. A reset ends every session of the person. A reset of a locked account needs
/// a code from the authenticator app as well: see `set_password_with_code`.
pub async fn set_password_with_link(
    ctx: &Context,
    token: &str,
    purpose: &str,
    new_password: &str,
    confirmation: &str,
    ip: Option<String>,
) -> Result<PasswordOutcome, IdentityError> {
    set_password_with_code(ctx, token, purpose, new_password, confirmation, None, ip).await
}

/// `set_password_with_link`, with the code from the person's authenticator app that a reset
/// of a locked account needs (`lockout`): with a right code the reset also unlocks the
/// account; a wrong one uses the link up and changes nothing else; without one, nothing
/// changes and the page asks for it.
pub async fn set_password_with_code(
    ctx: &Context,
    token: &str,
    purpose: &str,
    new_password: &str,
    confirmation: &str,
    code: Option<&str>,
    ip: Option<String>,
) -> Result<PasswordOutcome, IdentityError> {
    let now = ctx.clock.now();
    let Some(staff) = link_owner(&ctx.db, token, purpose, now).await? else {
        return Ok(PasswordOutcome::LinkInvalid);
    };
    let needs_code = lockout::link_needs_code(&staff, purpose, now);
    let mut problems = password_problems(ctx, &staff, new_password, confirmation).await?;
    if needs_code {
        if let Some(message) = lockout::code_problem(&staff, code) {
            problems.push(PasswordProblem {
                field: "code",
                message: message.into(),
            });
        }
    }
    if !problems.is_empty() {
        return Ok(PasswordOutcome::Problems {
            problems,
            name: staff.name,
            needs_code,
        });
    }
    let hash = password::hash(new_password.to_string()).await?;
    let mut tx = ctx.db.begin().await?;
    let now_us = store::to_micros(now);
    // Read the account again, locked for this transaction: it may have been locked since.
    let Some(current) = staff_store::staff_for_update(&mut tx, staff.id).await? else {
        tx.rollback().await?;
        return Ok(PasswordOutcome::LinkInvalid);
    };
    let locked = lockout::link_needs_code(&current, purpose, now);
    if locked && !needs_code {
        tx.rollback().await?;
        return Ok(PasswordOutcome::Problems {
            problems: vec![PasswordProblem {
                field: "code",
                message: lockout::code_problem(&current, None)
                    .unwrap_or("Enter the code from your authenticator app")
                    .into(),
            }],
            name: current.name,
            needs_code: true,
        });
    }
    let code_step = if locked {
        lockout::verify_code(ctx, &current, code.unwrap_or(""), now)
    } else {
        None
    };
    let code_accepted = match code_step {
        Some(step) => staff_store::use_totp_step(&mut tx, staff.id, step, now_us).await?,
        None => false,
    };
    if staff_store::use_link(&mut tx, &sessions::id_hash(token), purpose, now_us)
        .await?
        .is_none()
    {
        // Used by a concurrent request a moment ago.
        tx.rollback().await?;
        return Ok(PasswordOutcome::LinkInvalid);
    }
    if locked && !code_accepted {
        // One guess per emailed link: the link is used up, the account stays locked, and the
        // wrong code counts against the account as a wrong sign-in code would; every
        // MAX_FAILED_ATTEMPTS of them lengthen the lock (reset links are capped per account,
        // so guessing codes through the mailbox stays slow).
        let (failures, until) = lockout::after_wrong_unlock_code(&current, now);
        staff_store::record_failure(&mut tx, staff.id, failures, until, now_us).await?;
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(
                Actor::staff(staff.id, &staff.email),
                "authn_unlock",
                format!("staff:{}", staff.id),
            )
            .failed()
            .from_ip(ip)
            .details(json!({"reason": "wrong code", "link_used_up": true, "failures": failures})),
        )
        .await?;
        tx.commit().await?;
        return Ok(PasswordOutcome::CodeWrong);
    }
    // An invitation grants only what its inviters may still grant now.
    if purpose == "setup"
        && super::invitation::accept(&mut tx, now, staff.id, &staff.email).await?
            == super::invitation::Accepted::NothingLeft
    {
        tx.rollback().await?;
        return Ok(PasswordOutcome::LinkInvalid);
    }
    staff_store::set_password(&mut tx, staff.id, &hash, now_us).await?;
    if locked {
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(
                Actor::staff(staff.id, &staff.email),
                "authn_unlock",
                format!("staff:{}", staff.id),
            )
            .from_ip(ip.clone())
            .details(json!({"by": "password reset and authenticator code"})),
        )
        .await?;
    }
    let ended = staff_store::delete_sessions_of(&mut tx, staff.id, None).await?;
    let action = if purpose == "setup" {
        "authn_password_set"
    } else {
        "authn_password_reset"
    };
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            Actor::staff(staff.id, &staff.email),
            action,
            format!("staff:{}", staff.id),
        )
        .from_ip(ip)
        .details(json!({"sessions_ended": ended})),
    )
    .await?;
    tx.commit().await?;
    Ok(PasswordOutcome::Done { staff })
}

/// "Forgot your password": if `email` belongs to an active account with a password, mail it
/// a reset link valid for 90 minutes. The caller answers the same whatever happens here.
pub async fn request_password_reset(
    ctx: &Context,
    email: &str,
    ip: Option<String>,
) -> Result<(), IdentityError> {
    let now = ctx.clock.now();
    let staff = staff_store::staff_by_email_key(&ctx.db, &email_key(email)).await?;
    let Some(staff) = staff.filter(|s| s.status == "active" && s.password_hash.is_some()) else {
        audit::record(
            &ctx.db,
            now,
            AuditEvent::new(
                Actor::Anonymous,
                "authn_password_reset_requested",
                "staff:unknown",
            )
            .failed()
            .from_ip(ip)
            .details(json!({"reason": "no active account with a password for that address"})),
        )
        .await?;
        return Ok(());
    };
    let issued = staff_store::links_created_since(
        &ctx.db,
        staff.id,
        "reset",
        store::to_micros(now - Duration::hours(1)),
    )
    .await?;
    if issued >= RESET_LINKS_PER_HOUR {
        // Said the same way as any other request: the page never tells who has an account.
        audit::record(
            &ctx.db,
            now,
            AuditEvent::new(
                Actor::Anonymous,
                "authn_password_reset_requested",
                format!("staff:{}", staff.id),
            )
            .failed()
            .from_ip(ip)
            .details(json!({"reason": "too many reset links for this account in the last hour"})),
        )
        .await?;
        return Ok(());
    }
    let token = sessions::new_session_id();
    let link = format!("{}/reset-password/{token}", ctx.config.public_url);
    let message = ctx.mail.render(
        "password_reset",
        &staff.email,
        &json!({
            "name": staff.name,
            "link": link,
            "minutes": RESET_LINK_VALID.whole_minutes(),
            "service_name": ctx.config.service_name,
        }),
    )?;
    let mut tx = ctx.db.begin().await?;
    staff_store::insert_link(
        &mut tx,
        &sessions::id_hash(&token),
        staff.id,
        "reset",
        store::to_micros(now + RESET_LINK_VALID),
        store::to_micros(now),
    )
    .await?;
    mail::enqueue(&mut tx, &message, now).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            Actor::Anonymous,
            "authn_password_reset_requested",
            format!("staff:{}", staff.id),
        )
        .from_ip(ip),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug)]
pub enum ChangeOutcome {
    WrongCurrentPassword,
    Problems(Vec<PasswordProblem>),
    Done { other_sessions_ended: u64 },
}

/// Change one's own password: the current one is needed; the last four are refused; other
/// sessions end if asked (the one in use stays).
#[allow(clippy::too_many_arguments)]
pub async fn change_password(
    ctx: &Context,
    staff_id: i64,
    current_session_hash: &str,
    current_password: &str,
    new_password: &str,
    confirmation: &str,
    sign_out_others: bool,
    ip: Option<String>,
) -> Result<ChangeOutcome, IdentityError> {
    let Some(staff) = staff_store::staff_by_id(&ctx.db, staff_id).await? else {
        return Ok(ChangeOutcome::WrongCurrentPassword);
    };
    if !password::verify(current_password.to_string(), staff.password_hash.clone()).await {
        audit::record(
            &ctx.db,
            ctx.clock.now(),
            AuditEvent::new(
                Actor::staff(staff.id, &staff.email),
                "authn_password_change",
                format!("staff:{}", staff.id),
            )
            .failed()
            .from_ip(ip)
            .details(json!({"reason": "current password wrong"})),
        )
        .await?;
        return Ok(ChangeOutcome::WrongCurrentPassword);
    }
    let problems = password_problems(ctx, &staff, new_password, confirmation).await?;
    if !problems.is_empty() {
        return Ok(ChangeOutcome::Problems(problems));
    }
    let hash = password::hash(new_password.to_string()).await?;
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    staff_store::set_password(&mut tx, staff.id, &hash, store::to_micros(now)).await?;
    let ended = if sign_out_others {
        staff_store::delete_sessions_of(&mut tx, staff.id, Some(current_session_hash)).await?
    } else {
        0
    };
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            Actor::staff(staff.id, &staff.email),
            "authn_password_change",
            format!("staff:{}", staff.id),
        )
        .from_ip(ip)
        .details(json!({"other_sessions_ended": ended})),
    )
    .await?;
    tx.commit().await?;
    Ok(ChangeOutcome::Done {
        other_sessions_ended: ended,
    })
}

/// Disable an account: it can no longer sign in, and every session it has ends at once.
pub async fn disable_staff(
    ctx: &Context,
    actor: Actor,
    staff_id: i64,
    ip: Option<String>,
) -> Result<bool, IdentityError> {
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    if !staff_store::set_status(&mut tx, staff_id, "disabled", store::to_micros(now)).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let ended = staff_store::delete_sessions_of(&mut tx, staff_id, None).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "user_disabled", format!("staff:{staff_id}"))
            .from_ip(ip)
            .details(json!({"sessions_ended": ended})),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// End every session of a person ("sign out everywhere"), or every one but `keep`.
pub async fn end_sessions(
    ctx: &Context,
    actor: Actor,
    staff_id: i64,
    keep: Option<&str>,
    ip: Option<String>,
) -> Result<u64, IdentityError> {
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    let ended = staff_store::delete_sessions_of(&mut tx, staff_id, keep).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "session_revoked_all", format!("staff:{staff_id}"))
            .from_ip(ip)
            .details(json!({"sessions_ended": ended, "kept_current": keep.is_some()})),
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

/// End one of a person's own sessions by its handle; false when it is not theirs.
pub async fn end_session(
    ctx: &Context,
    staff: &StaffRow,
    handle: i64,
    ip: Option<String>,
) -> Result<bool, IdentityError> {
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    if !staff_store::delete_session_of(&mut tx, staff.id, handle).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            Actor::staff(staff.id, &staff.email),
            "session_revoked",
            format!("session:{handle}"),
        )
        .from_ip(ip),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses() {
        assert!(is_valid_email("ada@example.gov.uk"));
        assert!(is_valid_email("  Ada.Lovelace+pay@Example.GOV.uk "));
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.gov",
            "ada@example",
            "a da@example.gov",
            "ada@.gov",
            "<ada@x.gov>",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
        assert_eq!(email_key(" Ada@Example.GOV.uk "), "ada@example.gov.uk");
    }
}
