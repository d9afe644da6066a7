//! Session rules (SECURITY.md "Sign-in and sessions"): ids of 256 random bits, stored only
//! as SHA-256 hashes; 15 minutes idle, with a warning 2 minutes before; 12 hours at most.
//! Pure: the caller passes the times, so tests move a clock instead of sleeping.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// The cookie that carries the session id. `__Host-` makes the browser insist on Secure,
/// Path=/ and no Domain, so no other host can set or read it.
pub const COOKIE_NAME: &str = "__Host-paydesk_session";
/// Used instead only for plain-HTTP development and the demo on loopback, where a `__Host-`
/// cookie (which must be Secure) would never come back.
pub const INSECURE_COOKIE_NAME: &str = "paydesk_session";

pub const IDLE_TIMEOUT: Duration = Duration::minutes(15);
pub const ABSOLUTE_TIMEOUT: Duration = Duration::hours(12);
/// How long before the idle timeout the warning appears (WCAG 2.2.1 asks for at least 20 s;
/// SECURITY.md for 2 minutes).
pub const WARNING_BEFORE: Duration = Duration::minutes(2);

/// A new session id for the cookie: 32 random bytes from the OS, base64url without padding.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database stores for a session id: its SHA-256, so a copy of the table cannot be
/// replayed as cookies.
pub fn id_hash(session_id: &str) -> String {
    hex::encode(Sha256::digest(session_id.as_bytes()))
}

/// Whether a cookie value could be a session id at all (saves a database look-up for junk).
pub fn looks_like_session_id(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where a session stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Active,
    /// Active, and the idle timeout is close: show the "stay signed in" warning.
    Warn {
        expires_at: OffsetDateTime,
    },
    IdleExpired,
    AbsoluteExpired,
}

/// The state of a session created at `created` and last used at `last_seen`, at `now`.
pub fn state(
    created: OffsetDateTime,
    last_seen: OffsetDateTime,
    now: OffsetDateTime,
) -> SessionState {
    if now >= created + ABSOLUTE_TIMEOUT {
        return SessionState::AbsoluteExpired;
    }
    let idle_end = (last_seen + IDLE_TIMEOUT).min(created + ABSOLUTE_TIMEOUT);
    if now >= last_seen + IDLE_TIMEOUT {
        SessionState::IdleExpired
    } else if now >= idle_end - WARNING_BEFORE {
        SessionState::Warn {
            expires_at: idle_end,
        }
    } else {
        SessionState::Active
    }
}

/// When the session ends if nothing more happens, for the page's timeout warning.
pub fn expires_at(created: OffsetDateTime, last_seen: OffsetDateTime) -> OffsetDateTime {
    (last_seen + IDLE_TIMEOUT).min(created + ABSOLUTE_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-20 09:00 UTC);

    #[test]
    fn ids_are_long_random_and_stored_hashed() {
        let a = new_session_id();
        let b = new_session_id();
        assert_ne!(a, b);
        assert!(looks_like_session_id(&a), "{a}");
        assert!(
            !looks_like_session_id("short") && !looks_like_session_id(&format!("{}=", &a[..42]))
        );
        assert_eq!(id_hash(&a).len(), 64);
        assert_ne!(id_hash(&a), a);
    }

    #[test]
    fn idle_timeout_with_a_warning_two_minutes_before() {
        let seen = T0 + Duration::minutes(30);
        assert_eq!(
            state(T0, seen, seen + Duration::minutes(12)),
            SessionState::Active
        );
        assert_eq!(
            state(T0, seen, seen + Duration::minutes(13)),
            SessionState::Warn {
                expires_at: seen + Duration::minutes(15)
            }
        );
        assert_eq!(
            state(
                T0,
                seen,
                seen + Duration::minutes(15) - Duration::seconds(1)
            ),
            SessionState::Warn {
                expires_at: seen + IDLE_TIMEOUT
            }
        );
        assert_eq!(
            state(T0, seen, seen + Duration::minutes(15)),
            SessionState::IdleExpired
        );
    }

    #[test]
    fn absolute_timeout_whatever_the_activity() {
        let just_now = T0 + Duration::hours(12) - Duration::seconds(30);
        assert_eq!(
            state(
                T0,
                just_now,
                T0 + Duration::hours(12) - Duration::seconds(10)
            ),
            SessionState::Warn {
                expires_at: T0 + ABSOLUTE_TIMEOUT
            }
        );
        assert_eq!(
            state(T0, just_now, T0 + Duration::hours(12)),
            SessionState::AbsoluteExpired
        );
        assert_eq!(expires_at(T0, just_now), T0 + ABSOLUTE_TIMEOUT);
    }
}
