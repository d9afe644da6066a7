//! Bulk refunds: a CSV file of refunds is uploaded and checked at once by a dry run (nothing
//! is sent), the uploader goes on when no row is refused (or chooses to leave the refused
//! rows out), a second person approves the batch as a whole when it is large, and the rows
//! then become ordinary refund requests one by one (`send`), each submitted by the refunds'
//! own exactly-once job. Every step is audited with the batch and its file's hash.

pub mod dry_run;
pub mod file;
pub mod send;

use std::collections::{BTreeSet, HashMap};

use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{RefundError, Staff};
use crate::audit::{self, Actor, AuditEvent};
use crate::store::{self, refund_batches as batch_store, refunds as refund_store, Db};
pub use batch_store::{BatchRow, RowRow};
use dry_run::{DryRun, PaymentFacts, Payments};
use file::FileProblem;

/// Where the person may make bulk refunds: some services, or every service (None).
pub type Scope<'a> = Option<&'a BTreeSet<i64>>;

fn in_scope(scope: Scope<'_>, service_id: i64) -> bool {
    scope.is_none_or(|s| s.contains(&service_id))
}

/// The SHA-256 of a file's bytes, in hex.
pub fn hash_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read a file and dry-run every row, changing nothing.
pub async fn dry_run(
    db: &Db,
    scope: Scope<'_>,
    bytes: &[u8],
) -> Result<Result<DryRun, FileProblem>, RefundError> {
    let parsed = match file::read(bytes) {
        Ok(f) => f,
        Err(problem) => return Ok(Err(problem)),
    };
    let mut ids: Vec<String> = Vec::new();
    let mut refs: Vec<String> = Vec::new();
    for r in &parsed.rows {
        let id = r.payment_id.trim();
        if !id.is_empty() {
            ids.push(id.to_string());
        } else if !r.reference.trim().is_empty() {
            refs.push(r.reference.trim().to_lowercase());
        }
    }
    for v in [&mut ids, &mut refs] {
        v.sort();
        v.dedup();
    }
    let mut payments = Payments::default();
    let mut services = BTreeSet::new();
    for (keys, by_reference) in [(&ids, false), (&refs, true)] {
        for (journey_id, service_id, payment_id, reference, status, available, held) in
            batch_store::payments(db, keys, by_reference).await?
        {
            services.insert(service_id);
            payments.add(PaymentFacts {
                journey_id,
                service_id,
                payment_id,
                reference,
                refund_status: status,
                available: super::rules::still_available(available.unwrap_or(0), held),
            });
        }
    }
    let mut settings = HashMap::new();
    for s in services {
        settings.insert(s, refund_store::settings(db, s).await?);
    }
    Ok(Ok(dry_run::run(
        &parsed.rows,
        &payments,
        &|s| in_scope(scope, s),
        &settings,
    )))
}

/// Upload a file: read it, dry-run it and keep it with its outcome as a new batch. A file
/// that cannot be read keeps nothing.
pub async fn upload(
    db: &Db,
    now: OffsetDateTime,
    who: &Staff,
    scope: Scope<'_>,
    file_name: &str,
    bytes: &[u8],
) -> Result<Result<i64, FileProblem>, RefundError> {
    upload_as(db, now, who, &who.actor(), None, scope, file_name, bytes).await
}

/// A batch sent through the CRM API: the token's service (the only one it may refund in,
/// and the one whose tokens see the batch) and the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiOrigin {
    pub service_id: i64,
    pub token_id: i64,
}

/// `upload`, recorded as done by `actor` (an API token acting for `who`).
#[allow(clippy::too_many_arguments)]
pub async fn upload_as(
    db: &Db,
    now: OffsetDateTime,
    who: &Staff,
    actor: &Actor,
    api: Option<ApiOrigin>,
    scope: Scope<'_>,
    file_name: &str,
    bytes: &[u8],
) -> Result<Result<i64, FileProblem>, RefundError> {
    let run = match dry_run(db, scope, bytes).await? {
        Ok(run) => run,
        Err(problem) => {
            audit::record(
                db,
                now,
                AuditEvent::new(actor.clone(), "refund_batch_uploaded", "refund_batch:none")
                    .failed()
                    .from_ip(who.ip.clone())
                    .details(json!({"hash": hash_of(bytes), "refused": problem.message()})),
            )
            .await?;
            return Ok(Err(problem));
        }
    };
    let hash = hash_of(bytes);
    let name: String = file_name
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let mut tx = db.begin().await?;
    let id = batch_store::insert(
        &mut tx,
        &batch_store::NewBatch {
            file_name: if name.is_empty() {
                "refunds.csv"
            } else {
                &name
            },
            file_bytes: bytes,
            file_hash: &hash,
            row_count: run.rows.len() as i64,
            ready_count: run.ready as i64,
            refused_count: run.refused as i64,
            total_amount: run.total,
            approval_rows: run.rows_needing_approval as i64,
            needs_approval: run.needs_approval,
            uploaded_by: who.id,
            service_id: api.map(|a| a.service_id),
            api_token_id: api.map(|a| a.token_id),
        },
        store::to_micros(now),
    )
    .await?;
    let rows: Vec<batch_store::NewRow<'_>> = run
        .rows
        .iter()
        .map(|r| batch_store::NewRow {
            line: r.input.line as i64,
            input: serde_json::to_string(&r.input).unwrap_or_default(),
            ready: r.ready(),
            refusal: r.refusal.map(|k| k.label()),
            message: &r.message,
            service_id: r.service_id,
            journey_id: r.journey_id,
            payment_id: r.payment_id.as_deref(),
            amount: r.amount,
            reason: r.reason.as_deref(),
            comment: r.comment.as_deref(),
            case_reference: r.case_reference.as_deref(),
            needs_approval: r.needs_approval,
        })
        .collect();
    batch_store::insert_rows(&mut tx, id, &rows).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor.clone(),
            "refund_batch_uploaded",
            format!("refund_batch:{id}"),
        )
        .from_ip(who.ip.clone())
        .details(json!({
            "batch": id, "hash": hash, "rows": run.rows.len(), "ready": run.ready,
            "refused": run.refused, "total": run.total, "needs_approval": run.needs_approval,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(id))
}

/// Why a step on a batch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchRefusal {
    NotFound,
    /// Not in the state the step needs (already confirmed, approved, sent...).
    NotNow,
    /// The file changed since the person looked at it.
    FileChanged,
    /// Rows were refused and the person did not choose to leave them out.
    RefusedRows,
    NothingReady,
    OwnBatch,
    NotUploader,
    /// Cancelling a batch while it sends: pause it first.
    PauseFirst,
}

impl BatchRefusal {
    pub fn message(self) -> &'static str {
        match self {
            BatchRefusal::NotFound => "There is no such batch",
            BatchRefusal::NotNow => "This batch has moved on since you looked at it: check where it is now",
            BatchRefusal::FileChanged => "This is not the file you looked at: check the batch again",
            BatchRefusal::RefusedRows => "Some rows were refused: fix the file and upload it again, or choose to leave the refused rows out",
            BatchRefusal::NothingReady => "No row of this file can be refunded: fix the file and upload it again",
            BatchRefusal::OwnBatch => "You uploaded this batch, so someone else must approve it",
            BatchRefusal::NotUploader => "Only the person who uploaded this batch can send it on",
            BatchRefusal::PauseFirst => "This batch is sending: pause it first, then cancel it",
        }
    }
}

/// Who asked for what on which batch: enough to record a refusal.
struct Asked<'a> {
    db: &'a Db,
    now: OffsetDateTime,
    who: &'a Staff,
    actor: Actor,
    action: &'a str,
    id: i64,
}

impl Asked<'_> {
    /// Record the refusal in the audit log (as failed, naming the file's hash when the batch
    /// was found) and answer it.
    async fn refuse<T>(
        &self,
        batch: Option<&BatchRow>,
        why: BatchRefusal,
    ) -> Result<Result<T, BatchRefusal>, RefundError> {
        let id = self.id;
        audit::record(
            self.db,
            self.now,
            AuditEvent::new(self.actor.clone(), self.action, format!("refund_batch:{id}"))
                .failed()
                .from_ip(self.who.ip.clone())
                .details(json!({"batch": id, "hash": batch.map(|b| b.file_hash.clone()), "refused": why.message()})),
        )
        .await?;
        Ok(Err(why))
    }
}

/// Go on from the dry run, for the file whose hash the uploader saw: to approval when the
/// batch needs it, otherwise straight to sending.
pub async fn confirm(
    db: &Db,
    now: OffsetDateTime,
    who: &Staff,
    id: i64,
    hash_seen: &str,
    leave_out_refused: bool,
) -> Result<Result<(), BatchRefusal>, RefundError> {
    confirm_as(db, now, who, &who.actor(), id, hash_seen, leave_out_refused).await
}

/// `confirm`, recorded as done by `actor` (an API token acting for `who`).
pub async fn confirm_as(
    db: &Db,
    now: OffsetDateTime,
    who: &Staff,
    actor: &Actor,
    id: i64,
    hash_seen: &str,
    leave_out_refused: bool,
) -> Result<Result<(), BatchRefusal>, RefundError> {
    const ACTION: &str = "refund_batch_confirmed";
    let asked = Asked {
        db,
        now,
        who,
        actor: actor.clone(),
        action: ACTION,
        id,
    };
    let Some(batch) = batch_store::by_id(db, id).await? else {
        return asked.refuse(None, BatchRefusal::NotFound).await;
    };
    let why = if batch.uploaded_by != who.id {
        Some(BatchRefusal::NotUploader)
    } else if batch.file_hash != hash_seen {
        Some(BatchRefusal::FileChanged)
    } else if batch.state != "checked" {
        Some(BatchRefusal::NotNow)
    } else if batch.ready_count == 0 {
        Some(BatchRefusal::NothingReady)
    } else if batch.refused_count > 0 && !leave_out_refused {
        Some(BatchRefusal::RefusedRows)
    } else {
        None
    };
    if let Some(why) = why {
        return asked.refuse(Some(&batch), why).await;
    }
    let to = if batch.needs_approval {
        "awaiting_approval"
    } else {
        "sending"
    };
    let mut tx = db.begin().await?;
    let at = store::to_micros(now);
    if !batch_store::confirm(&mut tx, id, who.id, hash_seen, leave_out_refused, to, at).await? {
        tx.rollback().await?;
        return asked.refuse(Some(&batch), BatchRefusal::NotNow).await;
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor.clone(), ACTION, format!("refund_batch:{id}"))
            .from_ip(who.ip.clone())
            .details(json!({"batch": id, "hash": batch.file_hash, "leave_out_refused": leave_out_refused, "next": to})),
    )
    .await?;
    if to == "sending" {
        send::enqueue(&mut tx, id, now).await?;
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// Approve a batch as a whole, for the file whose hash the approver saw; sending starts.
pub async fn approve(
    db: &Db,
    now: OffsetDateTime,
    who: &Staff,
    id: i64,
    hash_seen: &str,
) -> Result<Result<(), BatchRefusal>, RefundError> {
    const ACTION: &str = "refund_batch_approved";
    let asked = Asked {
        db,
        now,
        who,
        actor: who.actor(),
        action: ACTION,
        id,
    };
    let Some(batch) = batch_store::by_id(db, id).await? else {
        return asked.refuse(None, BatchRefusal::NotFound).await;
    };
    let why = if batch.uploaded_by == who.id {
        Some(BatchRefusal::OwnBatch)
    } else if batch.file_hash != hash_seen {
        Some(BatchRefusal::FileChanged)
    } else if batch.state != "awaiting_approval" {
        Some(BatchRefusal::NotNow)
    } else {
        None
    };
    if let Some(why) = why {
        return asked.refuse(Some(&batch), why).await;
    }
    let mut tx = db.begin().await?;
    if !batch_store::approve(&mut tx, id, who.id, hash_seen, store::to_micros(now)).await? {
        tx.rollback().await?;
        return asked.refuse(Some(&batch), BatchRefusal::NotNow).await;
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(who.actor(), ACTION, format!("refund_batch:{id}"))
            .from_ip(who.ip.clone())
            .details(json!({"batch": id, "hash": batch.file_hash, "total": batch.total_amount, "rows": batch.ready_count})),
    )
    .await?;
    send::enqueue(&mut tx, id, now).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Pause a sending batch (rows already requested go on; no new row is sent), or resume it.
pub async fn pause(
    db: &Db,
    now: OffsetDateTime,
    who: &Staff,
    id: i64,
    resume: bool,
) -> Result<Result<(), BatchRefusal>, RefundError> {
    let (from, to, action) = if resume {
        ("paused", "sending", "refund_batch_resumed")
    } else {
        ("sending", "paused", "refund_batch_paused")
    };
    let asked = Asked {
        db,
        now,
        who,
        actor: who.actor(),
        action,
        id,
    };
    let Some(batch) = batch_store::by_id(db, id).await? else {
        return asked.refuse(None, BatchRefusal::NotFound).await;
    };
    let mut tx = db.begin().await?;
    if !batch_store::move_state(&mut tx, id, from, to, store::to_micros(now)).await? {
        tx.rollback().await?;
        return asked.refuse(Some(&batch), BatchRefusal::NotNow).await;
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(who.actor(), action, format!("refund_batch:{id}"))
            .from_ip(who.ip.clone())
            .details(json!({"batch": id, "hash": batch.file_hash})),
    )
    .await?;
    if resume {
        send::enqueue(&mut tx, id, now).await?;
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// Cancel a batch that has sent nothing yet (checked, awaiting approval) or is paused: its
/// rows not yet made into refund requests are never sent (each is marked "not sent", saying
/// who cancelled it); requests already made go on. A row being made into a request at that
/// moment holds its row until it commits, so it is either made or cancelled, never both
/// (`batch_store::take_row`). Returns how many rows were left unsent.
pub async fn cancel(
    db: &Db,
    now: OffsetDateTime,
    who: &Staff,
    id: i64,
) -> Result<Result<u64, BatchRefusal>, RefundError> {
    const ACTION: &str = "refund_batch_cancelled";
    let asked = Asked {
        db,
        now,
        who,
        actor: who.actor(),
        action: ACTION,
        id,
    };
    let Some(batch) = batch_store::by_id(db, id).await? else {
        return asked.refuse(None, BatchRefusal::NotFound).await;
    };
    let mut tx = db.begin().await?;
    if !batch_store::cancel(&mut tx, id, who.id, store::to_micros(now)).await? {
        tx.rollback().await?;
        let why = if batch.state == "sending" {
            BatchRefusal::PauseFirst
        } else {
            BatchRefusal::NotNow
        };
        return asked.refuse(Some(&batch), why).await;
    }
    let message = format!("{} by {}", batch_store::CANCELLED_PREFIX, who.name);
    let unsent = batch_store::cancel_rows(&mut tx, id, &message).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(who.actor(), ACTION, format!("refund_batch:{id}"))
            .from_ip(who.ip.clone())
            .details(json!({"batch": id, "hash": batch.file_hash, "from": batch.state, "rows_not_sent": unsent})),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(unsent))
}

/// How far a batch has got.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Rows that will be sent (ready in the dry run).
    pub to_send: i64,
    /// Rows that became refund requests.
    pub requested: i64,
    pub succeeded: i64,
    /// Requests that failed, and rows refused when their turn came.
    pub failed: i64,
    /// Requests on their way (approved, sending, submitted).
    pub in_flight: i64,
    pub waiting: i64,
    /// Rows never sent because the batch was cancelled.
    pub cancelled: i64,
    /// Whole percent of the rows to send that are finished (succeeded or failed).
    pub percent: i64,
}

pub async fn progress(db: &Db, id: i64) -> Result<Progress, RefundError> {
    let mut p = Progress::default();
    let mut not_sent = 0;
    for (state, n) in batch_store::progress(db, id).await? {
        match state.as_str() {
            "left_out" => continue,
            "cancelled" => p.cancelled += n,
            "waiting" => p.waiting += n,
            "not_sent" => {
                not_sent += n;
                p.failed += n
            }
            "succeeded" => {
                p.requested += n;
                p.succeeded += n
            }
            "failed" | "rejected" | "expired" => {
                p.requested += n;
                p.failed += n
            }
            _ => {
                p.requested += n;
                p.in_flight += n
            }
        }
    }
    p.to_send = p.waiting + p.requested + not_sent;
    p.percent = if p.to_send > 0 {
        (p.succeeded + p.failed) * 100 / p.to_send
    } else {
        0
    };
    Ok(p)
}

/// The batch's rows as a CSV: the input columns, then the outcome and its message (the dry
/// run's, or where the refund has got since). Text from the file is neutralised.
pub async fn results_csv(db: &Db, id: i64) -> Result<Vec<u8>, RefundError> {
    let mut out = Vec::new();
    crate::csv::Record::start(&mut out)
        .plain("line")
        .plain("payment_id")
        .plain("reference")
        .plain("amount")
        .plain("reason")
        .plain("comment")
        .plain("case_reference")
        .plain("outcome")
        .plain("message")
        .plain("refund_request")
        .end();
    let mut after = 0;
    loop {
        let rows = batch_store::rows(db, id, after, 1000).await?;
        let Some(last) = rows.last() else { break };
        after = last.line;
        for r in &rows {
            let input: file::InputRow = serde_json::from_str(&r.input).unwrap_or_default();
            let (outcome, message) = outcome_of(r);
            crate::csv::Record::start(&mut out)
                .int(r.line)
                .text(&input.payment_id)
                .text(&input.reference)
                .text(&input.amount)
                .text(&input.reason)
                .text(&input.comment)
                .text(&input.case_reference)
                .plain(outcome)
                .text(&message)
                .plain(&r.request_id.map(|i| i.to_string()).unwrap_or_default())
                .end();
        }
    }
    Ok(out)
}

/// A row's outcome, in a word and in words.
pub fn outcome_of(r: &RowRow) -> (&'static str, String) {
    match (r.send_state.as_str(), r.request_state.as_deref()) {
        ("left_out", _) if !r.ready => ("refused", r.message.clone()),
        ("not_sent", _) => ("not sent", r.message.clone()),
        ("waiting", _) => ("ready", String::new()),
        (_, Some("succeeded")) => ("refunded", String::new()),
        (_, Some("failed" | "rejected" | "expired")) => {
            ("failed", r.request_failure.clone().unwrap_or_default())
        }
        (_, Some(_)) => ("sending", String::new()),
        _ => ("ready", String::new()),
    }
}
