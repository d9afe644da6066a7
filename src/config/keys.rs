//! The keys paydesk derives from its one secret key (one per purpose, so that purposes never
//! share a key), how that secret key is read, and the public development key.

use std::path::PathBuf;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{env_name, Config, ConfigError};

/// The development key used in debug and demo when no secret key is set. It is public, so
/// release refuses it.
pub(super) const DEV_KEY_SEED: &[u8] =
    b"paydesk insecure development key - never use in production";

impl Config {
    /// A key for one purpose, derived from the master secret so that purposes never share one.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.master_key).expect("HMAC accepts any key length");
        mac.update(b"paydesk/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn audit_checkpoint_key(&self) -> [u8; 32] {
        self.derive_key("audit-checkpoint/v1")
    }

    /// The folder this database's audit checkpoints go to: a folder per database under
    /// `audit_checkpoint_dir`, named by a hash of the database URL (without its password),
    /// so that paydesks on different databases never read each other's checkpoints.
    pub fn audit_checkpoint_folder(&self) -> PathBuf {
        let url = &self.database_url;
        let without_password = match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &url[scheme + 3..at];
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{}{user}{}", &url[..scheme + 3], &url[at..])
            }
            _ => url.clone(),
        };
        self.audit_checkpoint_dir
            .join(hex::encode(&sha256(without_password.as_bytes())[..8]))
    }

    /// The key that links the audit chain (each entry's hash is a MAC under it).
    pub fn audit_chain_key(&self) -> [u8; 32] {
        self.derive_key("audit-chain/v1")
    }

    /// The key that seals TOTP secrets at rest.
    pub fn totp_key(&self) -> [u8; 32] {
        self.derive_key("totp-secret/v1")
    }

    /// The key that seals service credentials and webhook secrets at rest.
    pub fn platform_key(&self) -> [u8; 32] {
        self.derive_key("platform-credentials/v1")
    }

    /// The key that seals outbound event endpoints' signing secrets at rest.
    pub fn events_key(&self) -> [u8; 32] {
        self.derive_key("event-endpoint-secrets/v1")
    }

    /// The key behind CSRF tokens.
    pub fn csrf_key(&self) -> [u8; 32] {
        self.derive_key("csrf/v1")
    }
}

pub(super) fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(bytes).into()
}

/// A secret key is at least 32 random bytes, written as hex or base64.
pub(super) fn parse_secret_key(text: &str) -> Result<[u8; 32], ConfigError> {
    use base64::Engine;
    let bytes = if text.len() >= 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    };
    match bytes {
        Some(b) if b.len() >= 32 => {
            if b.iter().all(|&x| x == b[0]) {
                return Err(ConfigError(format!(
                    "{} is not random (every byte is the same)",
                    env_name("secret_key")
                )));
            }
            Ok(sha256(&b))
        }
        _ => Err(ConfigError(format!(
            "{} must be at least 32 random bytes written as hex (64+ characters) or base64; \
             make one with `openssl rand -hex 32`",
            env_name("secret_key")
        ))),
    }
}
