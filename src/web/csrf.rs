//! Cross-site request forgery defences for every state-changing request: a synchronizer
//! token bound to the session (hidden field `csrf_token`), and a check that the browser says
//! the request came from this site (`Sec-Fetch-Site`, or `Origin` for browsers without it).
//! This file holds the rules; the request guard that applies them comes with sessions.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The token for a session: an HMAC of the session's secret id, so it is stable for the
/// session's life, differs between sessions, and cannot be made without the server's key.
pub fn token_for(key: &[u8; 32], session_id: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail; if it somehow did, the empty token
    // matches nothing (see `token_matches`).
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(b"csrf/v1\n");
    mac.update(session_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether a submitted token is the session's, compared in constant time.
pub fn token_matches(key: &[u8; 32], session_id: &str, submitted: &str) -> bool {
    let expected = token_for(key, session_id);
    !expected.is_empty()
        && submitted.len() == expected.len()
        && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossSite {
    /// The browser said the request came from another site.
    ForeignSite,
    /// The `Origin` header names another origin.
    ForeignOrigin,
}

/// Whether the browser's own account of where the request came from allows a state change.
/// `Sec-Fetch-Site` wins when present (`same-origin`, or `none` for a user typing or
/// bookmarking); otherwise `Origin`, when present, must be this site's origin. Requests with
/// neither (old browsers, command-line clients) rely on the token alone.
pub fn check_origin(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    own_origins: &[String],
) -> Result<(), CrossSite> {
    if let Some(site) = sec_fetch_site {
        return match site.trim().to_ascii_lowercase().as_str() {
            "same-origin" | "none" => Ok(()),
            _ => Err(CrossSite::ForeignSite),
        };
    }
    match origin {
        None => Ok(()),
        Some(o)
            if own_origins
                .iter()
                .any(|own| own.eq_ignore_ascii_case(o.trim())) =>
        {
            Ok(())
        }
        Some(_) => Err(CrossSite::ForeignOrigin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [9u8; 32];

    #[test]
    fn tokens_are_bound_to_the_session_and_the_key() {
        let t = token_for(&KEY, "session-a");
        assert_eq!(t.len(), 64);
        assert!(token_matches(&KEY, "session-a", &t));
        assert!(
            !token_matches(&KEY, "session-b", &t),
            "another session's token"
        );
        assert!(!token_matches(&[8u8; 32], "session-a", &t), "another key");
        assert!(!token_matches(&KEY, "session-a", ""));
        assert!(!token_matches(&KEY, "session-a", &t[..63]));
        assert!(!token_matches(&KEY, "session-a", &format!("{t}0")));
    }

    #[test]
    fn only_same_origin_requests_may_change_state() {
        let own = vec!["https://paydesk.council.example".to_string()];
        assert_eq!(check_origin(Some("same-origin"), None, &own), Ok(()));
        assert_eq!(check_origin(Some("none"), None, &own), Ok(()));
        assert_eq!(
            check_origin(
                Some("cross-site"),
                Some("https://paydesk.council.example"),
                &own
            ),
            Err(CrossSite::ForeignSite),
            "Sec-Fetch-Site wins"
        );
        assert_eq!(
            check_origin(Some("same-site"), None, &own),
            Err(CrossSite::ForeignSite),
            "a sibling subdomain is not us"
        );
        assert_eq!(
            check_origin(None, Some("https://evil.example"), &own),
            Err(CrossSite::ForeignOrigin)
        );
        assert_eq!(
            check_origin(None, Some("null"), &own),
            Err(CrossSite::ForeignOrigin)
        );
        assert_eq!(
            check_origin(None, Some("https://PAYDESK.council.example"), &own),
            Ok(())
        );
        assert_eq!(
            check_origin(None, None, &own),
            Ok(()),
            "the token alone decides"
        );
    }
}
