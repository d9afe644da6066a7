//! Lockout that cannot be used to keep someone out. Ten wrong passwords or codes in a row lock
//! an account for 30 minutes (PCI DSS 8.3.4; `signin`). Because anyone who knows a person's
//! email address can do that, the person is told at once by email (when, after what, and from
//! which client address, as sign-in records it), and can unlock the account themselves with a
//! password reset: while the account is locked, the reset link from the email is not enough
//! on its own, the reset also needs a current code from the person's authenticator app. So
//! someone holding only the mailbox can neither unlock the account nor change its password
//! while it is locked, and a wrong code uses the link up (one guess per emailed link, and the
//! reset form is rate-limited per client address like sign-in).

use serde_json::json;
use time::macros::format_description;
use time::OffsetDateTime;

use super::{totp, IdentityError};
use crate::context::Context;
use crate::crypto;
use crate::mail;
use crate::store::staff::StaffRow;
use crate::store::{self, to_micros};

pub const MAX_FAILED_ATTEMPTS: i64 = 10;
pub const LOCKOUT: time::Duration = time::Duration::minutes(30);

/// Whether the account is locked at `now`.
pub fn is_locked(staff: &StaffRow, now: OffsetDateTime) -> bool {
    staff
        .locked_until
        .is_some_and(|until| until > to_micros(now))
}

/// Whether a link of `purpose` for `staff` needs a code from the authenticator app as well:
/// a reset of a locked account does.
pub fn link_needs_code(staff: &StaffRow, purpose: &str, now: OffsetDateTime) -> bool {
    purpose == "reset" && is_locked(staff, now)
}

/// The problem with the code given to unlock, before it is checked against the app: None
/// when there is a code to check.
pub fn code_problem(staff: &StaffRow, code: Option<&str>) -> Option<&'static str> {
    if staff.totp_secret.is_none() {
        return Some(
            "Your account is locked after too many wrong attempts, and it has no authenticator \
             app to unlock it with. It unlocks by itself 30 minutes after the last wrong attempt, \
             or an administrator can help",
        );
    }
    if code.is_none_or(|c| c.trim().is_empty()) {
        return Some(
            "Your account is locked after too many wrong attempts: enter the code from your \
             authenticator app to unlock it",
        );
    }
    None
}

/// The time step of a right code from the person's authenticator app (not yet marked used).
pub fn verify_code(
    ctx: &Context,
    staff: &StaffRow,
    code: &str,
    now: OffsetDateTime,
) -> Option<i64> {
    let key = ctx.config.totp_key();
    let secret = staff
        .totp_secret
        .as_deref()
        .and_then(|sealed| crypto::open(&key, &super::totp::totp_context(staff.id), sealed).ok())?;
    totp::verify(&secret, code, now.unix_timestamp(), staff.totp_last_step)
}

fn when(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[hour]:[minute] UTC on [day padding:none] [month repr:long] [year]"
    ))
    .unwrap_or_else(|_| t.to_string())
}

/// Queue the email that tells a person their account was just locked, in the transaction that
/// locks it: when, after which step (wrong passwords, or wrong codes after a right password or
/// when confirming an action),
/// from which client address, until when, and how to unlock it.
pub async fn notify_locked(
    ctx: &Context,
    tx: &mut store::Tx,
    staff: &StaffRow,
    ip: Option<&str>,
    step: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<(), IdentityError> {
    let message = ctx.mail.render(
        "account_locked",
        &staff.email,
        &json!({
            "name": staff.name,
            "service_name": ctx.config.service_name,
            "at": when(now),
            "until": when(until),
            "ip": ip.unwrap_or("an unknown address"),
            "after_code": step != "password",
            "attempts": MAX_FAILED_ATTEMPTS,
            "forgot_link": format!("{}/forgot-password", ctx.config.public_url),
        }),
    )?;
    mail::enqueue(tx, &message, now).await?;
    Ok(())
}

/// What a wrong code on a locked account's reset page leaves on the account: the failures
/// counted so far and the lock. Each `MAX_FAILED_ATTEMPTS`-th wrong code lengthens the lock to
/// `LOCKOUT` from now; the account never comes out of its lock this way.
pub fn after_wrong_unlock_code(staff: &StaffRow, now: OffsetDateTime) -> (i64, Option<i64>) {
    let failures = staff.failed_attempts + 1;
    let current = staff.locked_until;
    if failures % MAX_FAILED_ATTEMPTS == 0 {
        let longer = to_micros(now + LOCKOUT);
        (failures, Some(current.map_or(longer, |c| c.max(longer))))
    } else {
        (failures, current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn staff(locked_until: Option<OffsetDateTime>, totp: bool) -> StaffRow {
        StaffRow {
            id: 1,
            email: "a@example.gov.uk".into(),
            name: "A".into(),
            status: "active".into(),
            password_hash: Some("x".into()),
            totp_secret: totp.then(|| "sealed".into()),
            totp_last_step: None,
            failed_attempts: 0,
            locked_until: locked_until.map(to_micros),
            last_sign_in_at: None,
            password_changed_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_reset_needs_a_code_only_while_locked() {
        let now = datetime!(2026-12-07 10:00 UTC);
        let locked = staff(Some(now + time::Duration::minutes(5)), true);
        let lapsed = staff(Some(now - time::Duration::minutes(5)), true);
        assert!(link_needs_code(&locked, "reset", now));
        assert!(!link_needs_code(&locked, "setup", now));
        assert!(!link_needs_code(&lapsed, "reset", now));
        assert!(!link_needs_code(&staff(None, true), "reset", now));
        assert!(code_problem(&locked, None).is_some());
        assert!(code_problem(&locked, Some("  ")).is_some());
        assert_eq!(code_problem(&locked, Some("123456")), None);
        let no_app = staff(Some(now + time::Duration::minutes(5)), false);
        assert!(code_problem(&no_app, Some("123456")).is_some());
    }

    #[test]
    fn times_read_plainly() {
        assert_eq!(
            when(datetime!(2026-12-07 09:05 UTC)),
            "09:05 UTC on 7 December 2026"
        );
    }

    #[test]
    fn wrong_unlock_codes_count_and_lengthen_the_lock_but_never_lift_it() {
        let now = datetime!(2026-12-07 10:00 UTC);
        let until = now + time::Duration::minutes(5);
        let mut row = staff(Some(until), true);
        for n in 1..MAX_FAILED_ATTEMPTS {
            let (failures, lock) = after_wrong_unlock_code(&row, now);
            assert_eq!(failures, n);
            assert_eq!(lock, Some(to_micros(until)), "the lock stands as it was");
            row.failed_attempts = failures;
        }
        let (failures, lock) = after_wrong_unlock_code(&row, now);
        assert_eq!(failures, MAX_FAILED_ATTEMPTS);
        assert_eq!(
            lock,
            Some(to_micros(now + LOCKOUT)),
            "the tenth lengthens it"
        );
        // A lock already longer than LOCKOUT from now is never shortened.
        let far = now + time::Duration::hours(5);
        let mut long = staff(Some(far), true);
        long.failed_attempts = MAX_FAILED_ATTEMPTS - 1;
        assert_eq!(after_wrong_unlock_code(&long, now).1, Some(to_micros(far)));
    }
}
