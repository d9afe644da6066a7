//! The tamper-evident audit log.
//!
//! Every entry is linked to the one before it by a MAC: `hash = HMAC-SHA256(chain key,
//! previous hash ‖ canonical encoding of every column)`, starting from 32 zero bytes. The chain
//! key is derived from `PAYDESK_SECRET_KEY` and never enters the database, so someone who can
//! only write the database cannot make a link that verifies. Logs written before links were
//! keyed carry on: their entries are plain `SHA-256(previous hash ‖ entry)` links, and the first
//! keyed entry (an `audit_chain_keyed` entry written at start-up, see `upgrade_chain`) commits to
//! their head. A log whose newest entry is not keyed does not verify.
//!
//! The database refuses UPDATE and DELETE on the table; `verify` finds the first entry whose
//! stored hash, link or sequence does not hold, and checkpoints (size + head hash, authenticated
//! with another derived key) kept outside the database — written automatically by `anchor` —
//! expose truncation.

pub mod anchor;
pub mod personal;
pub mod refusals;

use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::store::audit::{self as audit_store, AuditRow};
use crate::store::{self, Db, StoreError, Tx};

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Staff {
        id: String,
        label: String,
    },
    ApiToken {
        id: String,
        label: String,
    },
    System,
    /// Someone not signed in: a sign-in attempt, a password-reset request, a forged form.
    Anonymous,
}

impl Actor {
    /// `type:id`, as other records name who did something.
    pub fn reference(&self) -> String {
        let (kind, id, _) = self.parts();
        format!("{kind}:{id}")
    }

    /// A member of staff, labelled by their email address.
    pub fn staff(id: i64, email: &str) -> Actor {
        Actor::Staff {
            id: id.to_string(),
            label: email.to_string(),
        }
    }
}

impl Actor {
    fn parts(&self) -> (&str, &str, &str) {
        match self {
            Actor::Staff { id, label } => ("staff", id, label),
            Actor::ApiToken { id, label } => ("api_token", id, label),
            Actor::System => ("system", "paydesk", "paydesk"),
            Actor::Anonymous => ("anonymous", "-", "anonymous"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// Something to record. Built with `AuditEvent::new(..)` and the chained setters.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: Actor,
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    pub origin_ip: Option<String>,
    pub details: Value,
    /// Personal values kept beside the chain (`personal`), each under its key in `details`.
    pub personal: Vec<(String, String)>,
}

impl AuditEvent {
    /// `action` uses the OWASP logging vocabulary (`authn_login_fail`, `refund_requested`);
    /// `target` is `type:id`.
    pub fn new(actor: Actor, action: impl Into<String>, target: impl Into<String>) -> AuditEvent {
        AuditEvent {
            actor,
            action: action.into(),
            target: target.into(),
            outcome: Outcome::Success,
            origin_ip: None,
            details: Value::Object(Default::default()),
            personal: Vec::new(),
        }
    }

    pub fn failed(mut self) -> Self {
        self.outcome = Outcome::Failure;
        self
    }

    pub fn from_ip(mut self, ip: Option<String>) -> Self {
        self.origin_ip = ip;
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// A value that may name a payer: the chained details hold only its salted digest under
    /// `key`, the value itself sits beside the chain where it can be erased.
    pub fn personal(mut self, key: &str, value: &str) -> Self {
        self.personal.push((key.to_string(), value.to_string()));
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Checkpoint(String),
    #[error("the audit chain's key is not set on this database handle")]
    NoChainKey,
}

const GENESIS: [u8; 32] = [0u8; 32];
/// Plain links, before links were keyed.
const ENCODING_TAG: &[u8] = b"paydesk.audit.v1";
/// Keyed links.
const KEYED_TAG: &[u8] = b"paydesk.audit.v2";

/// Append an entry inside the caller's transaction, so that it commits or rolls back with
/// the change it records. Appends are linear: concurrent transactions (in this process or
/// another one on the same database) queue behind each other.
pub async fn append(
    tx: &mut Tx,
    now: OffsetDateTime,
    event: AuditEvent,
) -> Result<AuditRow, AuditError> {
    let key = tx.audit_chain_key().ok_or(AuditError::NoChainKey)?;
    let mut event = event;
    let sides = personal::take(&mut event.details, std::mem::take(&mut event.personal));
    let target = event.target.clone();
    let make = entry_maker(event, now, key);
    let row = audit_store::append(tx, make).await?;
    personal::keep(tx, row.seq, &target, &sides, store::to_micros(now)).await?;
    Ok(row)
}

/// Append an entry on its own (for events that change nothing else, such as a failed sign-in
/// or the process starting): one statement when this process knows the chain's head, a
/// transaction of its own otherwise.
pub async fn record(
    db: &Db,
    now: OffsetDateTime,
    event: AuditEvent,
) -> Result<AuditRow, AuditError> {
    let key = db.audit_chain_key().ok_or(AuditError::NoChainKey)?;
    if !event.personal.is_empty() {
        let mut tx = db.begin().await?;
        let row = append(&mut tx, now, event).await?;
        tx.commit().await?;
        return Ok(row);
    }
    let make = entry_maker(event, now, key);
    if let Some(row) = audit_store::append_alone(db, &make).await? {
        return Ok(row);
    }
    let mut tx = db.begin().await?;
    let row = audit_store::append(&mut tx, &make).await?;
    tx.commit().await?;
    Ok(row)
}

/// Builds the stored row for `event` once its place in the chain is known.
fn entry_maker(
    event: AuditEvent,
    now: OffsetDateTime,
    key: [u8; 32],
) -> impl Fn(i64, Option<&str>) -> AuditRow {
    let mac = chain_mac(&key);
    let (actor_type, actor_id, actor_label) = event.actor.parts();
    let (actor_type, actor_id, actor_label) = (
        actor_type.to_string(),
        actor_id.to_string(),
        actor_label.to_string(),
    );
    let details = canonical_json(&redact(event.details));
    let occurred_at = store::to_micros(now);
    let outcome = event.outcome.as_str().to_string();
    let (action, target, origin_ip) = (event.action, event.target, event.origin_ip);
    move |seq, prev_hash| {
        let prev = prev_hash.and_then(decode_hash).unwrap_or(GENESIS);
        let mut row = AuditRow {
            seq,
            occurred_at,
            actor_type: actor_type.clone(),
            actor_id: actor_id.clone(),
            actor_label: actor_label.clone(),
            action: action.clone(),
            target: target.clone(),
            outcome: outcome.clone(),
            origin_ip: origin_ip.clone(),
            details: details.clone(),
            hash: String::new(),
        };
        row.hash = hex::encode(keyed_link(mac.clone(), &prev, &row));
        row
    }
}

/// The HMAC state for the chain key, cloned for each link (so the key is hashed once).
fn chain_mac(key: &[u8; 32]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// The keyed link of `row` given its predecessor's hash: HMAC-SHA256 under the chain key
/// (`Config::audit_chain_key`, derived from the master secret) over every column.
pub fn keyed_entry_hash(key: &[u8; 32], prev: &[u8; 32], row: &AuditRow) -> [u8; 32] {
    keyed_link(chain_mac(key), prev, row)
}

fn keyed_link(mut mac: HmacSha256, prev: &[u8; 32], row: &AuditRow) -> [u8; 32] {
    encode_entry(&mut mac, prev, KEYED_TAG, row);
    mac.finalize().into_bytes().into()
}

/// The plain (unkeyed) link of `row` given its predecessor's hash, as entries were linked
/// before links were keyed. Anyone can compute it, so it only counts before the first keyed
/// entry.
pub fn entry_hash(prev: &[u8; 32], row: &AuditRow) -> [u8; 32] {
    let mut h = Sha256::new();
    encode_entry(&mut h, prev, ENCODING_TAG, row);
    h.finalize().into()
}

/// Every column of the entry except the stored hash itself, each length-prefixed.
fn encode_entry(h: &mut impl sha2::digest::Update, prev: &[u8; 32], tag: &[u8], row: &AuditRow) {
    h.update(prev);
    h.update(tag);
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(&row.seq.to_be_bytes());
    field(&row.occurred_at.to_be_bytes());
    field(row.actor_type.as_bytes());
    field(row.actor_id.as_bytes());
    field(row.actor_label.as_bytes());
    field(row.action.as_bytes());
    field(row.target.as_bytes());
    field(row.outcome.as_bytes());
    match &row.origin_ip {
        // A one-byte marker keeps "no address" distinct from an empty one.
        Some(ip) => {
            field(b"\x01");
            field(ip.as_bytes());
        }
        None => field(b"\x00"),
    }
    field(row.details.as_bytes());
}

/// Whether the stored hash is exactly the lowercase hex of `hash` (an upper-case or padded
/// copy of the right value is an edit too).
fn stored_hash_is(stored: &str, hash: &[u8; 32]) -> bool {
    let mut buf = [0u8; 64];
    hex::encode_to_slice(hash, &mut buf).is_ok() && stored.as_bytes() == &buf[..]
}

fn decode_hash(hex_hash: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_hash).ok()?;
    bytes.try_into().ok()
}

/// JSON with object keys sorted at every level, so the same details always encode the same.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&map[k]));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json may keep insertion order (its preserve_order feature), so the keys are
    // written out by hand in sorted order rather than trusting Map's iteration order.
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(&sorted(value), &mut out);
    out
}

/// Details must never carry secrets: any key that names one has its value replaced.
pub fn redact(value: Value) -> Value {
    const SENSITIVE: [&str; 7] = [
        "password",
        "secret",
        "token",
        "api_key",
        "apikey",
        "totp",
        "card_number",
    ];
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    if SENSITIVE.iter().any(|s| lower.contains(s)) {
                        (k, Value::String("[redacted]".into()))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

/// A statement of the log's size and head hash at one moment, authenticated with a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub size: i64,
    pub head: String,
    pub created_at: String,
    pub mac: String,
}

const CHECKPOINT_FORMAT: &str = "paydesk-audit-checkpoint/1";

type HmacSha256 = Hmac<Sha256>;

fn checkpoint_mac(key: &[u8], size: i64, head: &str, created_at: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(format!("{CHECKPOINT_FORMAT}\n{size}\n{head}\n{created_at}").as_bytes());
    mac
}

impl Checkpoint {
    /// Check the checkpoint was made with `key` and has not been altered.
    pub fn authenticate(&self, key: &[u8]) -> Result<(), AuditError> {
        if self.format != CHECKPOINT_FORMAT {
            return Err(AuditError::Checkpoint(format!(
                "unknown checkpoint format {:?}",
                self.format
            )));
        }
        let mac = hex::decode(&self.mac)
            .map_err(|_| AuditError::Checkpoint("checkpoint mac is not hex".into()))?;
        checkpoint_mac(key, self.size, &self.head, &self.created_at)
            .verify_slice(&mac)
            .map_err(|_| AuditError::Checkpoint("checkpoint does not authenticate with this paydesk's key: it was altered or made elsewhere".into()))
    }
}

/// Make a checkpoint of the log as it is now.
pub async fn checkpoint(
    db: &Db,
    key: &[u8],
    now: OffsetDateTime,
) -> Result<Checkpoint, AuditError> {
    let latest = audit_store::latest(db, 1).await?;
    let (size, head) = match latest.first() {
        Some(row) => (row.seq, row.hash.clone()),
        None => (0, hex::encode(GENESIS)),
    };
    let created_at = now.format(&Rfc3339).unwrap_or_default();
    let mac = hex::encode(
        checkpoint_mac(key, size, &head, &created_at)
            .finalize()
            .into_bytes(),
    );
    Ok(Checkpoint {
        format: CHECKPOINT_FORMAT.into(),
        size,
        head,
        created_at,
        mac,
    })
}

/// What is wrong with the log, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The entry's stored hash does not match its contents and its predecessor (under the
    /// chain key, or as a plain link before the first keyed entry).
    HashMismatch { seq: i64 },
    /// An entry is missing: `expected` was due, `found` came next.
    Gap { expected: i64, found: i64 },
    /// The log is shorter than a checkpoint says it was.
    Truncated { checkpoint_size: i64, log_size: i64 },
    /// The entry at the checkpoint's size does not have the checkpoint's hash: everything up to
    /// it was rewritten.
    CheckpointMismatch { seq: i64 },
    /// No entry is linked with this paydesk's key: the log was rewritten with plain hashes (or
    /// is checked with another secret key).
    NotKeyed { entries: i64 },
    /// A personal value kept beside the chain no longer matches the digest its entry holds.
    PersonalValue { seq: i64 },
}

impl Break {
    /// The first sequence number that does not hold.
    pub fn first_bad_seq(&self) -> i64 {
        match self {
            Break::HashMismatch { seq }
            | Break::CheckpointMismatch { seq }
            | Break::PersonalValue { seq } => *seq,
            Break::Gap { expected, .. } => *expected,
            Break::Truncated { log_size, .. } => log_size + 1,
            Break::NotKeyed { .. } => 1,
        }
    }
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::HashMismatch { seq } => write!(f, "entry {seq} does not match its hash: it, its stored hash, or the entry before it was changed"),
            Break::Gap { expected, found } => write!(f, "entry {expected} is missing (the next entry found is {found}): entries were deleted"),
            Break::Truncated { checkpoint_size, log_size } => write!(
                f,
                "the log has {log_size} entries but the checkpoint covers {checkpoint_size}: entries from {} on were deleted",
                log_size + 1
            ),
            Break::CheckpointMismatch { seq } => write!(f, "entry {seq} does not have the hash recorded in the checkpoint: the log up to it was rewritten"),
            Break::PersonalValue { seq } => write!(f, "the personal value kept beside entry {seq} was changed: it no longer matches the digest in the entry"),
            Break::NotKeyed { entries } => write!(f, "none of the {entries} entries is linked with this paydesk's key: the log was rewritten, or paydesk runs with another secret key"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub entries: i64,
    pub head: String,
    pub problem: Option<Break>,
    pub triggers_present: bool,
    pub checkpoint_checked: bool,
    /// The first keyed entry; the entries before it are plain links from before keying.
    pub keyed_from: Option<i64>,
}

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.problem.is_none() && self.triggers_present
    }
}

/// Walk the whole log once, in constant memory, and report the first break.
/// A checkpoint, when given, must already have been authenticated.
pub async fn verify(db: &Db, checkpoint: Option<&Checkpoint>) -> Result<VerifyReport, AuditError> {
    verify_against(
        db,
        checkpoint
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
            .as_slice(),
    )
    .await
}

/// `verify` against any number of (authenticated) checkpoints at once.
pub async fn verify_against(
    db: &Db,
    checkpoints: &[Checkpoint],
) -> Result<VerifyReport, AuditError> {
    let key = db.audit_chain_key().ok_or(AuditError::NoChainKey)?;
    let mac = chain_mac(&key);
    let triggers_present = audit_store::append_only_triggers_present(db).await?;
    let mut rows = audit_store::stream_all(db);
    let mut prev = GENESIS;
    let mut expected = 1i64;
    let mut problem = None;
    let mut keyed_from = None;
    while let Some(row) = rows.next().await {
        let row = row?;
        if row.seq != expected {
            problem = Some(Break::Gap {
                expected,
                found: row.seq,
            });
            break;
        }
        let keyed = keyed_link(mac.clone(), &prev, &row);
        // A plain link is only good before the first keyed entry.
        let plain = || Some(entry_hash(&prev, &row)).filter(|h| stored_hash_is(&row.hash, h));
        let hash = if stored_hash_is(&row.hash, &keyed) {
            keyed_from.get_or_insert(row.seq);
            keyed
        } else if let Some(plain) = keyed_from.is_none().then(plain).flatten() {
            plain
        } else {
            problem = Some(Break::HashMismatch { seq: row.seq });
            break;
        };
        if checkpoints
            .iter()
            .any(|cp| cp.size == row.seq && !row.hash.eq_ignore_ascii_case(&cp.head))
        {
            problem = Some(Break::CheckpointMismatch { seq: row.seq });
            break;
        }
        prev = hash;
        expected += 1;
    }
    drop(rows);
    let entries = expected - 1;
    if problem.is_none() {
        if let Some(cp) = checkpoints
            .iter()
            .filter(|cp| cp.size > entries)
            .max_by_key(|cp| cp.size)
        {
            problem = Some(Break::Truncated {
                checkpoint_size: cp.size,
                log_size: entries,
            });
        } else if entries > 0 && keyed_from.is_none() {
            problem = Some(Break::NotKeyed { entries });
        } else if let Some(seq) = personal::first_changed(db).await? {
            problem = Some(Break::PersonalValue { seq });
        }
    }
    Ok(VerifyReport {
        entries,
        head: hex::encode(prev),
        problem,
        triggers_present,
        checkpoint_checked: !checkpoints.is_empty(),
        keyed_from,
    })
}

/// Carry a log written before links were keyed on: when its newest entry is a plain link,
/// append an `audit_chain_keyed` entry, whose keyed link commits to that head. Called at
/// start-up; does nothing on an empty or already keyed log.
pub async fn upgrade_chain(db: &Db, now: OffsetDateTime) -> Result<Option<AuditRow>, AuditError> {
    let key = db.audit_chain_key().ok_or(AuditError::NoChainKey)?;
    let latest = audit_store::latest(db, 2).await?;
    let Some(head) = latest.first() else {
        return Ok(None);
    };
    let prev = latest
        .get(1)
        .and_then(|r| decode_hash(&r.hash))
        .unwrap_or(GENESIS);
    if stored_hash_is(&head.hash, &keyed_entry_hash(&key, &prev, head)) {
        return Ok(None);
    }
    let row = record(
        db,
        now,
        AuditEvent::new(Actor::System, "audit_chain_keyed", "audit_log")
            .details(serde_json::json!({"unkeyed_entries": head.seq, "previous_head": head.hash})),
    )
    .await?;
    Ok(Some(row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(seq: i64) -> AuditRow {
        AuditRow {
            seq,
            occurred_at: 1_700_000_000_000_000,
            actor_type: "system".into(),
            actor_id: "paydesk".into(),
            actor_label: "paydesk".into(),
            action: "sys_startup".into(),
            target: "system:paydesk".into(),
            outcome: "success".into(),
            origin_ip: None,
            details: "{}".into(),
            hash: String::new(),
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn redacts_secret_looking_keys() {
        let v = redact(
            json!({"password": "hunter2", "nested": {"api_key": "k", "amount": 5}, "Client_Secret": "s"}),
        );
        assert_eq!(
            v,
            json!({"password": "[redacted]", "nested": {"api_key": "[redacted]", "amount": 5}, "Client_Secret": "[redacted]"})
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = row(1);
        let h = entry_hash(&GENESIS, &base);
        let variants: Vec<fn(&mut AuditRow)> = vec![
            |r| r.seq = 2,
            |r| r.occurred_at += 1,
            |r| r.actor_type = "staff".into(),
            |r| r.actor_id = "x".into(),
            |r| r.actor_label = "x".into(),
            |r| r.action = "x".into(),
            |r| r.target = "x".into(),
            |r| r.outcome = "failure".into(),
            |r| r.origin_ip = Some(String::new()),
            |r| r.details = "{\"a\":1}".into(),
        ];
        for change in variants {
            let mut r = base.clone();
            change(&mut r);
            assert_ne!(entry_hash(&GENESIS, &r), h);
        }
        assert_ne!(
            entry_hash(&[1u8; 32], &base),
            h,
            "the previous hash is part of the link"
        );
    }

    #[test]
    fn keyed_links_need_the_key_and_differ_from_plain_ones() {
        let base = row(1);
        let k1 = keyed_entry_hash(&[1u8; 32], &GENESIS, &base);
        assert_ne!(k1, keyed_entry_hash(&[2u8; 32], &GENESIS, &base));
        assert_ne!(k1, entry_hash(&GENESIS, &base));
        let mut other = base.clone();
        other.actor_type = "staff".into();
        assert_ne!(k1, keyed_entry_hash(&[1u8; 32], &GENESIS, &other));
        assert!(stored_hash_is(&hex::encode(k1), &k1));
        assert!(!stored_hash_is(&hex::encode(k1).to_uppercase(), &k1));
        assert!(!stored_hash_is(&format!("{} ", hex::encode(k1)), &k1));
    }

    #[test]
    fn length_prefixes_stop_field_boundary_games() {
        let mut a = row(1);
        a.actor_id = "ab".into();
        a.actor_label = "c".into();
        let mut b = row(1);
        b.actor_id = "a".into();
        b.actor_label = "bc".into();
        assert_ne!(entry_hash(&GENESIS, &a), entry_hash(&GENESIS, &b));
    }

    #[test]
    fn checkpoint_mac_detects_changes_and_wrong_keys() {
        let key = b"k1";
        let created_at = "2026-11-20T00:00:00Z".to_string();
        let head = hex::encode([7u8; 32]);
        let mac = hex::encode(
            checkpoint_mac(key, 5, &head, &created_at)
                .finalize()
                .into_bytes(),
        );
        let cp = Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            size: 5,
            head,
            created_at,
            mac,
        };
        assert!(cp.authenticate(key).is_ok());
        assert!(cp.authenticate(b"k2").is_err());
        let mut altered = cp.clone();
        altered.size = 4;
        assert!(altered.authenticate(key).is_err());
    }
}
