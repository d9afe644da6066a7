//! Signed checkpoints of the audit log's head, written outside the database: to the folder
//! `PAYDESK_AUDIT_CHECKPOINT_DIR`, at most `CHECKPOINT_EVERY` apart while entries are being
//! appended, and at shutdown. `verify_with_folder` (used by `paydesk audit verify` and the
//! `/audit` page) checks the log against the newest one by itself, so that deleting the newest
//! entries, or rewriting the log under them, is caught even though the rest of the chain
//! still holds.
//!
//! "Newest" is the checkpoint that covers the most entries (then the latest made): every
//! checkpoint in the folder was authenticated with the key, and a larger one claims more.
//! Before writing, the periodic task checks that the log still holds the entry the previous
//! checkpoint named; if it does not, it writes nothing, so a rolled-back log is never
//! "blessed" by a fresh checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;

use super::refusals::Refusals;
use super::{AuditError, Checkpoint, VerifyReport};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::audit as audit_store;
use crate::store::Db;

/// While the log grows, a new checkpoint at most this long after the last one.
pub const CHECKPOINT_EVERY: Duration = Duration::minutes(1);
/// How often the periodic task looks (real time).
pub const TICK: StdDuration = StdDuration::from_secs(15);
/// Checkpoint files kept in the folder; older ones are removed.
pub const KEEP: usize = 50;

const PREFIX: &str = "audit-checkpoint-";

fn created(cp: &Checkpoint) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(&cp.created_at, &Rfc3339).ok()
}

/// Every checkpoint file in `dir` that authenticates with `key`, with its path, oldest
/// (fewest entries) first. A missing folder holds none; files that do not parse or
/// authenticate are skipped with a warning.
fn list(dir: &Path, key: &[u8]) -> Vec<(Checkpoint, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with(PREFIX) || !name.ends_with(".json") {
            continue;
        }
        let parsed = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Checkpoint>(t.trim()).ok());
        match parsed {
            Some(cp) if cp.authenticate(key).is_ok() => found.push((cp, path)),
            _ => {
                tracing::warn!(file = %path.display(), "an audit checkpoint file does not authenticate with this paydesk's key; ignored")
            }
        }
    }
    found.sort_by_key(|(cp, _)| (cp.size, created(cp)));
    found
}

/// The newest authenticated checkpoint in `dir`.
pub fn newest(dir: &Path, key: &[u8]) -> Option<Checkpoint> {
    list(dir, key).pop().map(|(cp, _)| cp)
}

/// Write `cp` to `dir` (created when missing), atomically, and remove all but the newest
/// `KEEP` checkpoint files.
pub fn write(dir: &Path, cp: &Checkpoint, key: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let stamp = created(cp)
        .map(|t| t.unix_timestamp_nanos() / 1000)
        .unwrap_or(0);
    let path = dir.join(format!("{PREFIX}{:012}-{stamp}.json", cp.size));
    let temp = dir.join(format!(".{PREFIX}{}.tmp", std::process::id()));
    let text = serde_json::to_string(cp).map_err(std::io::Error::other)?;
    std::fs::write(&temp, text + "\n")?;
    std::fs::rename(&temp, &path)?;
    let all = list(dir, key);
    if all.len() > KEEP {
        for (_, old) in &all[..all.len() - KEEP] {
            let _ = std::fs::remove_file(old);
        }
    }
    Ok(path)
}

/// Write a checkpoint of the log's head when the log has grown since the newest one and that
/// one is at least `CHECKPOINT_EVERY` old (or at once when `force`). Returns the checkpoint
/// written, if any. Refuses (an error, nothing written) when the log no longer holds what the
/// newest checkpoint recorded.
pub async fn tick(
    db: &Db,
    config: &Config,
    now: OffsetDateTime,
    force: bool,
) -> Result<Option<Checkpoint>, AuditError> {
    let key = config.audit_checkpoint_key();
    let dir = &config.audit_checkpoint_folder();
    let last = newest(dir, &key);
    if let Some(last) = &last {
        if !force && created(last).is_some_and(|t| now - t < CHECKPOINT_EVERY) {
            return Ok(None);
        }
    }
    let cp = super::checkpoint(db, &key, now).await?;
    if let Some(last) = &last {
        if cp.size == last.size && cp.head.eq_ignore_ascii_case(&last.head) {
            return Ok(None);
        }
        let held = audit_store::at(db, last.size).await?;
        if last.size > 0 && !held.is_some_and(|r| r.hash.eq_ignore_ascii_case(&last.head)) {
            return Err(AuditError::Checkpoint(format!(
                "the audit log no longer holds entry {} as the newest checkpoint recorded it: no new checkpoint was written (run `paydesk audit verify`)",
                last.size
            )));
        }
    }
    write(dir, &cp, &key).map_err(|e| {
        AuditError::Checkpoint(format!(
            "could not write an audit checkpoint to {}: {e}",
            dir.display()
        ))
    })?;
    Ok(Some(cp))
}

/// At start-up: carry a log written before links were keyed on (`super::upgrade_chain`), but
/// only while no checkpoint of this database exists outside it. Once one does, this paydesk
/// has keyed the log already, and a log whose head is a plain link was rewritten: it is left
/// as it is for `verify` to report, never "carried on".
pub async fn carry_on(
    db: &Db,
    config: &Config,
    now: OffsetDateTime,
) -> Result<Option<crate::store::audit::AuditRow>, AuditError> {
    let folder = config.audit_checkpoint_folder();
    if newest(&folder, &config.audit_checkpoint_key()).is_some() {
        return Ok(None);
    }
    super::upgrade_chain(db, now).await
}

/// The periodic task: summaries of refusals whose minute has closed, then a checkpoint when
/// due. Runs until `stop` says true.
pub async fn run(
    db: Db,
    clock: SharedClock,
    config: Arc<Config>,
    refusals: Arc<Refusals>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
        if *stop.borrow() {
            break;
        }
        if let Err(e) = refusals.flush(&db, clock.now(), false).await {
            tracing::error!(error = %e, "could not write the summary of refused requests");
        }
        if let Err(e) = tick(&db, &config, clock.now(), false).await {
            tracing::error!(error = %e, "could not checkpoint the audit log");
        }
    }
}

/// Verify the log against the newest checkpoint in the configured folder, and `extra` (one
/// given by hand, already authenticated) when there is one. Returns the report and the
/// folder's checkpoint.
pub async fn verify_with_folder(
    db: &Db,
    dir: &Path,
    key: &[u8],
    extra: Option<Checkpoint>,
) -> Result<(VerifyReport, Option<Checkpoint>), AuditError> {
    let newest = newest(dir, key);
    let checkpoints: Vec<Checkpoint> = newest.iter().cloned().chain(extra).collect();
    let report = super::verify_against(db, &checkpoints).await?;
    Ok((report, newest))
}

/// `paydesk audit verify [--checkpoint FILE]`: prints the outcome; the exit code is 0 when
/// intact, 1 when not, 2 when the log or the checkpoint could not be read.
pub async fn verify_command(db: &Db, config: &Config, checkpoint: Option<PathBuf>) -> u8 {
    let key = config.audit_checkpoint_key();
    let extra = match checkpoint {
        None => None,
        Some(path) => {
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|text| {
                    serde_json::from_str::<Checkpoint>(text.trim())
                        .map_err(|e| format!("{} is not a paydesk checkpoint: {e}", path.display()))
                })
                .and_then(|cp| cp.authenticate(&key).map(|_| cp).map_err(|e| e.to_string()));
            match parsed {
                Ok(cp) => Some(cp),
                Err(e) => {
                    eprintln!("paydesk: {e}");
                    return 2;
                }
            }
        }
    };
    let given = extra.is_some();
    let dir = &config.audit_checkpoint_folder();
    let (report, newest) = match verify_with_folder(db, dir, &key, extra).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("paydesk: {e}");
            return 2;
        }
    };
    if let Some(problem) = &report.problem {
        println!(
            "audit log is NOT intact: first bad entry is sequence {}",
            problem.first_bad_seq()
        );
        println!("{problem}");
    }
    if !report.triggers_present {
        println!("audit log is NOT protected: the triggers that refuse UPDATE and DELETE are missing or disabled");
    }
    match &newest {
        Some(cp) => println!(
            "newest checkpoint in {}: {} entries, made {}",
            dir.display(),
            cp.size,
            cp.created_at
        ),
        None => println!(
            "no checkpoint in {} yet: a deleted tail cannot be detected without one",
            dir.display()
        ),
    }
    if let Some(first) = report.keyed_from.filter(|f| *f > 1) {
        println!(
            "entries 1 to {} were linked before links were keyed (plain SHA-256); keyed from {first}",
            first - 1
        );
    }
    if report.intact() {
        println!(
            "audit log intact: {} entries, head {}{}",
            report.entries,
            report.head,
            if given {
                ", consistent with the checkpoint"
            } else {
                ""
            }
        );
        0
    } else {
        1
    }
}
