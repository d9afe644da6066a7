//! Personal values an audit entry needs (a refund's comment, which may name the payer) are kept
//! outside the chained text, so they can be erased without breaking the chain. The entry's
//! details hold `{"personal": digest}` in the value's place, where digest = SHA-256 of a random
//! salt and the value; `audit_personal` keeps (digest, salt, value) with the entry's sequence
//! number. Erasing a value empties salt and value: the chain, which commits to the digest, still
//! verifies. Verify recomputes every value still kept, so a changed value is reported as a
//! break at its entry.

use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::store::personal_data as pd_store;
use crate::store::{Db, StoreResult, Tx};

const TAG: &[u8] = b"paydesk.audit.personal.v1";

/// One value to keep beside the chain.
pub(super) struct Side {
    pub digest: String,
    pub salt: String,
    pub value: String,
}

/// The digest the chain holds for `value` under `salt` (hex).
pub fn digest(salt: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(TAG);
    h.update((salt.len() as u64).to_be_bytes());
    h.update(salt.as_bytes());
    h.update(value.as_bytes());
    hex::encode(h.finalize())
}

/// Salt and digest each value and put `{"personal": digest}` in its place in `details`.
pub(super) fn take(details: &mut Value, personal: Vec<(String, String)>) -> Vec<Side> {
    let mut out = Vec::new();
    for (key, value) in personal {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let salt = hex::encode(salt);
        let digest = digest(&salt, &value);
        if let Some(obj) = details.as_object_mut() {
            obj.insert(key, json!({ "personal": digest }));
        }
        out.push(Side {
            digest,
            salt,
            value,
        });
    }
    out
}

/// Keep the values of entry `seq` beside the chain, in the entry's transaction.
pub(super) async fn keep(
    tx: &mut Tx,
    seq: i64,
    target: &str,
    sides: &[Side],
    now: i64,
) -> StoreResult<()> {
    for s in sides {
        pd_store::insert_audit_value(tx, &s.digest, seq, target, &s.salt, &s.value, now).await?;
    }
    Ok(())
}

/// The first entry whose kept personal value no longer matches the digest in its chained text.
pub async fn first_changed(db: &Db) -> StoreResult<Option<i64>> {
    for v in pd_store::kept_audit_values(db).await? {
        let ok = match (&v.salt, &v.value) {
            (Some(salt), Some(value)) => digest(salt, value) == v.digest,
            _ => false,
        };
        if !ok {
            return Ok(Some(v.seq));
        }
    }
    Ok(None)
}
