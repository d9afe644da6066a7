//! Secrets at rest: authenticated encryption (XChaCha20-Poly1305) with keys derived from the
//! configured secret key. A sealed value is `v1.<base64url(nonce ‖ ciphertext)>`; the
//! associated data binds it to what it belongs to (say `staff:42:totp`), so a sealed value
//! copied onto another row does not open.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

const PREFIX: &str = "v1.";
const NONCE_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored secret could not be opened (wrong key, or the value was altered)")]
pub struct SealError;

/// Encrypt `plaintext` under `key`, bound to `context`.
pub fn seal(key: &[u8; 32], context: &str, plaintext: &[u8]) -> String {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    // Encryption with a valid key and nonce only fails for absurd lengths (> 256 GiB).
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context.as_bytes(),
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ciphertext);
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    )
}

/// Decrypt a value made by `seal` with the same key and context.
pub fn open(key: &[u8; 32], context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
    let body = sealed.strip_prefix(PREFIX).ok_or(SealError)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| SealError)?;
    if bytes.len() < NONCE_LEN + 16 {
        return Err(SealError);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: context.as_bytes(),
            },
        )
        .map_err(|_| SealError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_evidence() {
        let key = [7u8; 32];
        let sealed = seal(&key, "staff:1:totp", b"JBSWY3DPEHPK3PXP");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("JBSWY3DP"));
        assert_eq!(
            open(&key, "staff:1:totp", &sealed).as_deref(),
            Ok(&b"JBSWY3DPEHPK3PXP"[..])
        );
        assert_ne!(
            sealed,
            seal(&key, "staff:1:totp", b"JBSWY3DPEHPK3PXP"),
            "fresh nonce each time"
        );
        assert_eq!(open(&[8u8; 32], "staff:1:totp", &sealed), Err(SealError));
        assert_eq!(
            open(&key, "staff:2:totp", &sealed),
            Err(SealError),
            "bound to its row"
        );
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            open(&key, "staff:1:totp", &String::from_utf8(altered).unwrap()),
            Err(SealError)
        );
        assert_eq!(open(&key, "staff:1:totp", "plain"), Err(SealError));
    }
}
