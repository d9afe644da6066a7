//! `Idempotency-Key` for the API's state-changing calls: the first request with a key claims
//! it, does the work and keeps its answer; a retry with the same key and the same request gets
//! that answer again, a request with the same key and a different body is refused, and a
//! retry that arrives while the first is still being answered waits for it. Keys are kept per
//! token for `KEPT_FOR`. A claim whose request died (the process stopped) is taken over after
//! `STALE_AFTER`; the work itself must be safe to do again (a refund request uses a form key
//! derived from the idempotency key, so doing it again finds the request already made).

use std::time::Duration as StdDuration;

use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::store::api_tokens as token_store;
use crate::store::{self, Db, StoreError};

/// How long a key's answer is kept.
pub const KEPT_FOR: Duration = Duration::hours(24);
/// How long a claim may go unanswered before another request takes it over.
pub const STALE_AFTER: Duration = Duration::seconds(60);
/// How long a retry waits for the first request with its key to be answered.
const WAIT_FOR_FIRST: StdDuration = StdDuration::from_secs(10);
const POLL: StdDuration = StdDuration::from_millis(50);
/// The longest key accepted.
pub const KEY_MAX: usize = 255;

/// Whether a key is acceptable: 1 to 255 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= KEY_MAX && key.bytes().all(|b| b.is_ascii_graphic())
}

/// A request's fingerprint: what it asks for, whatever the key.
pub fn fingerprint(method: &str, path: &str, canonical_body: &str) -> String {
    let mut h = Sha256::new();
    for part in [method, path, canonical_body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A short, fixed-length stand-in for a key, for use inside other identifiers.
pub fn key_digest(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

/// What to do with a request that carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// The key is this request's: do the work, then `keep` the answer or `release` the key.
    Proceed,
    /// The same request was answered before: answer this again.
    Replay { status: u16, body: String },
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key is still being answered.
    InFlight,
}

/// Claim `key` for the request with `fingerprint`, or learn what became of it.
pub async fn begin(
    db: &Db,
    now: OffsetDateTime,
    token_id: i64,
    key: &str,
    fingerprint: &str,
) -> Result<Begun, StoreError> {
    token_store::forget_keys_before(db, token_id, store::to_micros(now - KEPT_FOR)).await?;
    let at = store::to_micros(now);
    let started = std::time::Instant::now();
    loop {
        if token_store::claim_key(db, token_id, key, fingerprint, at).await? {
            return Ok(Begun::Proceed);
        }
        if let Some(kept) = token_store::kept(db, token_id, key).await? {
            if kept.fingerprint != fingerprint {
                return Ok(Begun::Mismatch);
            }
            if let (Some(status), Some(body)) = (kept.status, kept.body) {
                return Ok(Begun::Replay {
                    status: u16::try_from(status).unwrap_or(500),
                    body,
                });
            }
            if kept.created_at < store::to_micros(now - STALE_AFTER)
                && token_store::retake_key(
                    db,
                    token_id,
                    key,
                    at,
                    store::to_micros(now - STALE_AFTER),
                )
                .await?
            {
                return Ok(Begun::Proceed);
            }
        }
        // Released in between (the first request changed nothing): try to claim it again.
        if started.elapsed() > WAIT_FOR_FIRST {
            return Ok(Begun::InFlight);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Keep the answer to a claimed key.
pub async fn keep(
    db: &Db,
    token_id: i64,
    key: &str,
    status: u16,
    body: &str,
) -> Result<(), StoreError> {
    token_store::keep_answer(db, token_id, key, i64::from(status), body).await
}

/// Give up a claimed key: its request changed nothing, so a retry may start afresh.
pub async fn release(db: &Db, token_id: i64, key: &str) -> Result<(), StoreError> {
    token_store::release_key(db, token_id, key).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_fingerprints() {
        assert!(valid_key("a8f3-01"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"k".repeat(256)));
        assert!(!valid_key("é"));
        let a = fingerprint("POST", "/api/v1/payments/x/refunds", "{\"amount\":1}");
        assert_eq!(
            a,
            fingerprint("POST", "/api/v1/payments/x/refunds", "{\"amount\":1}")
        );
        assert_ne!(
            a,
            fingerprint("POST", "/api/v1/payments/y/refunds", "{\"amount\":1}")
        );
        assert_ne!(
            a,
            fingerprint("POST", "/api/v1/payments/x/refunds", "{\"amount\":2}")
        );
        assert_eq!(key_digest("k").len(), 32);
    }
}
