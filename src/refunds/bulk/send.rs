//! Sending a batch: a job takes the next rows waiting and makes each an ordinary refund
//! request (approved already: by the batch's approver when it needed one), each in its own
//! transaction with its timeline and audit entries, its outbound event and its submit job,
//! checked again by the single refund's rules with the payment locked. A row's request has
//! the key `batch-<batch>-<line>`, unique in its service, so a row can never make two
//! requests, whatever crashes or runs twice. A row refused when its turn comes is marked and
//! the others go on. A paused batch makes no new requests; resuming queues the job again.
//! Each row's transaction starts by taking the row (`batch_store::take_row`: still waiting,
//! its batch still sending), so a cancel or pause that commits first stops it, and one that
//! comes after waits for it.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::super::history::{self, By, Note};
use super::super::rules::{self, State};
use super::super::{check, submit, Ask, HowMuch, RefundError};
use crate::audit::{self, Actor, AuditEvent};
use crate::integrations::events::{self, EventType};
use crate::jobs::{self, JobContext, JobFailure, JobHandler, JobKind, JobRun};
use crate::store::{self, refund_batches as batch_store, refunds as refund_store, StoreError, Tx};

/// Sends the next rows of one batch, then queues itself again while rows are waiting.
pub const STEP: JobKind = JobKind {
    name: "refund_batch_send",
    retry_delays_secs: &[1, 2, 5, 15, 60, 300, 900],
};

/// Rows one run of the job sends (a pause takes effect within this many).
const ROWS_PER_RUN: i64 = 50;

pub async fn enqueue(tx: &mut Tx, batch_id: i64, now: OffsetDateTime) -> Result<i64, StoreError> {
    jobs::enqueue(tx, STEP, &json!({"batch": batch_id}), now, now).await
}

pub struct SendJob;

#[async_trait::async_trait]
impl JobHandler for SendJob {
    fn kind(&self) -> JobKind {
        STEP
    }

    async fn run(&self, ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let id = job
            .payload
            .get("batch")
            .and_then(Value::as_i64)
            .ok_or_else(|| JobFailure::permanent("the payload needs a batch id"))?;
        run_once(&ctx.db, ctx.clock.now(), id)
            .await
            .map(|_| ())
            .map_err(|e| JobFailure::retry(e.to_string()))
    }
}

/// Send up to `ROWS_PER_RUN` waiting rows of batch `id`; queue the next run or finish the
/// batch. Returns how many rows were handled.
pub async fn run_once(db: &store::Db, now: OffsetDateTime, id: i64) -> Result<usize, RefundError> {
    let Some(batch) = batch_store::by_id(db, id).await? else {
        return Ok(0);
    };
    if batch.state != "sending" {
        return Ok(0);
    }
    let uploader = crate::store::staff::staff_by_id(db, batch.uploaded_by).await?;
    let (name, email) = uploader
        .map(|s| (s.name, s.email))
        .unwrap_or_else(|| (format!("Account {}", batch.uploaded_by), String::new()));
    let actor = Actor::staff(batch.uploaded_by, &email);
    let rows = batch_store::waiting(db, id, ROWS_PER_RUN).await?;
    for row in &rows {
        send_row(db, now, &batch, row, &name, &actor).await?;
    }
    let mut tx = db.begin().await?;
    let left = batch_store::waiting_count(&mut tx, id).await?;
    if left > 0 {
        // Only while still sending: a pause stops here, and resuming queues a new run.
        if batch_store::by_id_in(&mut tx, id)
            .await?
            .is_some_and(|b| b.state == "sending")
        {
            enqueue(&mut tx, id, now).await?;
        }
    } else if batch_store::move_state(&mut tx, id, "sending", "sent", store::to_micros(now)).await?
    {
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(
                Actor::System,
                "refund_batch_sent",
                format!("refund_batch:{id}"),
            )
            .details(json!({"batch": id, "hash": batch.file_hash})),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// The key of the request a row makes.
pub fn row_key(batch_id: i64, line: i64) -> String {
    format!("batch-{batch_id}-{line}")
}

async fn send_row(
    db: &store::Db,
    now: OffsetDateTime,
    batch: &batch_store::BatchRow,
    row: &batch_store::RowRow,
    name: &str,
    actor: &Actor,
) -> Result<(), RefundError> {
    // Read before the transaction takes its row: on SQLite the row's write holds the one
    // writer, and a read from the pool inside it could wait on connections held by others
    // waiting for that writer.
    let settings = match row.service_id {
        Some(s) => Some(refund_store::settings(db, s).await?),
        None => None,
    };
    let mut tx = db.begin().await?;
    // The row is this transaction's until it ends: a cancel, a pause or another run of this
    // step that comes in between finds it taken, and one that came first leaves it alone.
    if !batch_store::take_row(&mut tx, batch.id, row.line).await? {
        tx.rollback().await?;
        return Ok(());
    }
    let (Some(service_id), Some(journey_id), Some(payment_id), Some(amount)) = (
        row.service_id,
        row.journey_id,
        row.payment_id.as_deref(),
        row.amount,
    ) else {
        batch_store::row_not_sent(&mut tx, batch.id, row.line, "The row names no payment").await?;
        return Ok(tx.commit().await?);
    };
    let key = row_key(batch.id, row.line);
    // Made already (a run cut short after its commit, or another instance).
    if let Some(existing) = refund_store::by_form_key(&mut tx, service_id, &key).await? {
        batch_store::row_requested(&mut tx, batch.id, row.line, existing.id).await?;
        return Ok(tx.commit().await?);
    }
    let settings = settings.unwrap_or_default();
    let Some((status, available)) = refund_store::lock_journey(&mut tx, journey_id).await? else {
        batch_store::row_not_sent(&mut tx, batch.id, row.line, "There is no such payment").await?;
        return Ok(tx.commit().await?);
    };
    let held = refund_store::held(&mut tx, journey_id).await?;
    let still = rules::still_available(available.unwrap_or(0), held);
    let ask = Ask {
        service_id,
        journey_id,
        payment_id: payment_id.to_string(),
        how_much: Ok(HowMuch::Partial(amount)),
        reason: row.reason.clone().unwrap_or_default(),
        comment: row.comment.clone().unwrap_or_default(),
        case_reference: row.case_reference.clone().unwrap_or_default(),
        form_key: key.clone(),
    };
    let checked = match check(&ask, &settings, status.as_deref(), still) {
        Ok(c) => c,
        Err(problems) => {
            let message = format!(
                "Not sent: {}",
                problems
                    .into_iter()
                    .map(|p| p.1)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            batch_store::row_not_sent(&mut tx, batch.id, row.line, &message).await?;
            return Ok(tx.commit().await?);
        }
    };
    let approval_required = row.needs_approval && batch.approved_by.is_some();
    let at = store::to_micros(now);
    let new = refund_store::NewRequest {
        service_id,
        journey_id,
        payment_id,
        amount: checked.amount,
        reason: checked.reason.name(),
        comment: checked.comment.as_deref(),
        case_reference: checked.case_reference.as_deref(),
        state: State::Approved.name(),
        form_key: &key,
        requested_by: batch.uploaded_by,
        approval_required,
        expires_at: store::to_micros(now + rules::APPROVAL_LIFETIME),
    };
    let Some(request_id) = batch_store::insert_request(
        &mut tx,
        &batch_store::BatchRequest {
            request: &new,
            batch_id: batch.id,
            decided_by: if approval_required {
                batch.approved_by
            } else {
                None
            },
        },
        at,
    )
    .await?
    else {
        // Made in between by another instance: the next run links it.
        tx.rollback().await?;
        return Ok(());
    };
    let detail = json!({
        "request": request_id, "amount": checked.amount, "reason": checked.reason.name(),
        "case_reference": checked.case_reference, "batch": batch.id, "hash": batch.file_hash,
        "line": row.line,
    });
    submit::enqueue(&mut tx, request_id, now).await?;
    if let Some(made) = refund_store::by_id_in(&mut tx, request_id).await? {
        events::refund_changed(&mut tx, EventType::RefundRequested, &made, now).await?;
    }
    batch_store::row_requested(&mut tx, batch.id, row.line, request_id).await?;
    // The timeline and audit entry last: the audit chain is one queue for every writer
    // (held from the append until commit), so nothing else waits inside it.
    history::write(
        &mut tx,
        now,
        By::Person {
            actor: actor.clone(),
            ip: None,
        },
        Note {
            journey_id,
            payment_id,
            action: "refund_requested",
            message: format!(
                "{name} asked for a refund of {} ({}) in bulk refund batch {} (row {}){}",
                rules::pounds(checked.amount),
                checked.reason.label(),
                batch.id,
                row.line,
                if approval_required {
                    "; the batch was approved"
                } else {
                    ""
                }
            ),
            detail,
            failed: false,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
