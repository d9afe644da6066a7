//! The platform's webhook signature: `Pay-Signature` is the lowercase hex HMAC-SHA256 of the
//! exact raw body, keyed with the signing secret. Verified on the raw bytes before any parsing,
//! in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const HEADER: &str = "Pay-Signature";

/// The `Pay-Signature` value for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts a key of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `header` is the signature of `body` under `secret`. Upper-case hex and surrounding
/// spaces are tolerated; anything else (a truncated or re-encoded value) is refused.
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let expected = sign(secret, body);
    let given = header.trim().to_ascii_lowercase();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_the_exact_bytes() {
        let body = br#"{"webhook_message_id":"a","resource_id":"p"}"#;
        let sig = sign("secret", body);
        assert_eq!(sig.len(), 64);
        assert!(verify("secret", body, &sig));
        assert!(verify("secret", body, &sig.to_ascii_uppercase()));
        assert!(!verify("other", body, &sig));
        assert!(!verify("secret", body, &sig[..63]));
        assert!(!verify(
            "secret",
            br#"{"webhook_message_id": "a","resource_id":"p"}"#,
            &sig
        ));
        assert!(!verify("secret", body, ""));
    }

    #[test]
    fn matches_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
