//! Standard Webhooks signatures for the events paydesk sends (DOMAIN.md §4). Pure: no I/O.
//!
//! A secret is 24 to 64 random bytes shown as `whsec_<base64>`. A message is signed as
//! `v1,<base64 HMAC-SHA256(secret bytes, "{id}.{timestamp}.{body}")>`; during a key rotation
//! the `webhook-signature` header carries one such signature per secret, space-separated.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";

/// How many random bytes a new secret has (Standard Webhooks allows 24 to 64).
pub const NEW_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a webhook secret (expected whsec_ and the base64 of 24 to 64 bytes)")]
pub struct BadSecret;

/// A new random secret, as shown to people: `whsec_<base64>`.
pub fn new_secret() -> String {
    let mut bytes = [0u8; NEW_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a `whsec_` secret.
pub fn secret_bytes(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or(BadSecret)?;
    let bytes = STANDARD.decode(encoded).map_err(|_| BadSecret)?;
    if (24..=64).contains(&bytes.len()) {
        Ok(bytes)
    } else {
        Err(BadSecret)
    }
}

/// One signature: `v1,<base64>`.
pub fn sign(
    secret: &str,
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let key = secret_bytes(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: one signature per secret (the current one first),
/// space-separated.
pub fn header(
    secrets: &[&str],
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let mut out = Vec::with_capacity(secrets.len());
    for s in secrets {
        out.push(sign(s, message_id, timestamp, body)?);
    }
    Ok(out.join(" "))
}

/// Whether a `webhook-signature` header holds a valid signature by `secret` (what a receiver
/// does; paydesk uses it in tests and nowhere else). Compared in constant time.
pub fn verify(secret: &str, message_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    use subtle::ConstantTimeEq;
    let Ok(expected) = sign(secret, message_id, timestamp, body) else {
        return false;
    };
    header.split(' ').any(|candidate| {
        candidate.len() == expected.len()
            && bool::from(candidate.as_bytes().ct_eq(expected.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks test vector, as DOMAIN.md §4 gives it.
    #[test]
    fn the_standard_webhooks_test_vector() {
        let signature = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn new_secrets_are_random_and_well_formed() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert_eq!(secret_bytes(&a).unwrap().len(), NEW_SECRET_BYTES);
        for bad in [
            "",
            "whsec_",
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_!!!",
            "whsec_c2hvcnQ=",
        ] {
            assert_eq!(secret_bytes(bad), Err(BadSecret), "{bad:?}");
        }
    }

    #[test]
    fn rotation_sends_both_signatures_and_either_verifies() {
        let old = new_secret();
        let new = new_secret();
        let h = header(&[&new, &old], "msg_1", 1_700_000_000, b"{}").unwrap();
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert!(verify(&new, "msg_1", 1_700_000_000, b"{}", &h));
        assert!(verify(&old, "msg_1", 1_700_000_000, b"{}", &h));
        assert!(!verify(&new_secret(), "msg_1", 1_700_000_000, b"{}", &h));
        assert!(
            !verify(&new, "msg_1", 1_700_000_001, b"{}", &h),
            "the timestamp is signed"
        );
        assert!(
            !verify(&new, "msg_2", 1_700_000_000, b"{}", &h),
            "the id is signed"
        );
        assert!(
            !verify(&new, "msg_1", 1_700_000_000, b"{ }", &h),
            "the body is signed"
        );
    }
}
