//! Cancelling an agreement: a person (or an API client) asks, with a reason; the request is
//! written with its job and its audit entry in one transaction, at most one pending per
//! agreement, so any number of simultaneous asks make one platform call. The job calls the
//! platform's cancel; after an attempt that may have reached it (a timeout), the agreement is
//! read first and a cancelled one is taken as done, so the cancel is never sent twice. A refusal
//! is kept in plain words for the agreement's page.

use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, Actor, AuditEvent};
use crate::jobs::{self, JobContext, JobFailure, JobHandler, JobKind, JobRun};
use crate::platform::agreement_wire::{Agreement, AgreementStatus};
use crate::platform::client::{PaymentPlatform, PlatformError};
use crate::services;
use crate::store::agreements::{self as agreement_store, CancellationRow};
use crate::store::{self, Db, StoreError};

pub const CANCEL: JobKind = JobKind {
    name: "agreement_cancel",
    retry_delays_secs: &[2, 5, 15, 60, 300, 900],
};

/// The longest reason kept.
pub const REASON_MAX: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

/// What became of an ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// Written, with its job: cancellation `id`.
    Queued(i64),
    /// A cancellation of this agreement is already on its way.
    AlreadyPending,
}

/// Why an ask was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    /// Only an active agreement can be cancelled; it is in this status.
    NotActive(String),
    /// The reason is missing or too long (the message says which).
    Reason(&'static str),
}

impl Refusal {
    /// In plain words, for a page or a problem document.
    pub fn message(&self) -> String {
        match self {
            Refusal::NotFound => "There is no such agreement".into(),
            Refusal::NotActive(s) if s == "cancelled" => {
                "This agreement has already been cancelled".into()
            }
            Refusal::NotActive(s) if s == "created" => {
                "This agreement cannot be cancelled yet: it is set up by its first payment".into()
            }
            Refusal::NotActive(_) => {
                "This agreement is inactive: its card can no longer be used, so there is nothing to cancel".into()
            }
            Refusal::Reason(m) => (*m).into(),
        }
    }
}

/// Check a reason as a person typed it.
pub fn check_reason(raw: &str) -> Result<String, Refusal> {
    let reason = raw.trim();
    if reason.is_empty() {
        return Err(Refusal::Reason(
            "Enter why the agreement is being cancelled",
        ));
    }
    if reason.chars().count() > REASON_MAX {
        return Err(Refusal::Reason(
            "The reason must be 500 characters or fewer",
        ));
    }
    Ok(reason.to_string())
}

/// Ask for agreement `agreement_id` of `service_id` to be cancelled.
pub async fn ask(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    service_id: i64,
    agreement_id: &str,
    reason: &str,
) -> Result<Result<Asked, Refusal>, CancelError> {
    let reason = match check_reason(reason) {
        Ok(r) => r,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let at = store::to_micros(now);
    let mut tx = db.begin().await?;
    match agreement_store::status_in(&mut tx, service_id, agreement_id).await? {
        None => return Ok(Err(Refusal::NotFound)),
        Some(s) if s != "active" => return Ok(Err(Refusal::NotActive(s))),
        Some(_) => {}
    }
    let by = match &actor {
        Actor::Staff { id, .. } => format!("staff:{id}"),
        Actor::ApiToken { id, .. } => format!("api_token:{id}"),
        _ => "system".to_string(),
    };
    let Some(id) =
        agreement_store::insert_cancellation(&mut tx, service_id, agreement_id, &by, &reason, at)
            .await?
    else {
        return Ok(Ok(Asked::AlreadyPending));
    };
    jobs::enqueue(&mut tx, CANCEL, &json!({"cancellation": id}), now, now).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor,
            "agreement_cancel_requested",
            format!("agreement:{agreement_id}"),
        )
        .from_ip(origin_ip)
        .details(json!({"service_id": service_id, "cancellation": id, "reason": reason})),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(Asked::Queued(id)))
}

/// The latest cancellation asked for of an agreement (its page shows how it went).
pub async fn latest(
    db: &Db,
    service_id: i64,
    agreement_id: &str,
) -> Result<Option<CancellationRow>, StoreError> {
    agreement_store::latest_cancellation(db, service_id, agreement_id).await
}

pub struct CancelJob;

fn retry<E: std::fmt::Display>(e: E) -> JobFailure {
    JobFailure::retry(e.to_string())
}

#[async_trait::async_trait]
impl JobHandler for CancelJob {
    fn kind(&self) -> JobKind {
        CANCEL
    }

    async fn run(&self, ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let id = job
            .payload
            .get("cancellation")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| JobFailure::permanent("the job names no cancellation"))?;
        let row = agreement_store::cancellation(&ctx.db, id)
            .await
            .map_err(retry)?
            .ok_or_else(|| JobFailure::permanent(format!("there is no cancellation {id}")))?;
        if row.state != "pending" {
            return Ok(());
        }
        let service = services::by_id(&ctx.db, row.service_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| JobFailure::permanent("the service has gone"))?;
        let client = ctx.platforms.client(&ctx.config, &service).map_err(retry)?;
        send(ctx, client.as_ref(), &row, job.attempt).await
    }
}

/// Send `row` to the platform (attempt `attempt`), or find that it was sent.
pub async fn send(
    ctx: &JobContext,
    client: &dyn PaymentPlatform,
    row: &CancellationRow,
    attempt: i32,
) -> Result<(), JobFailure> {
    // An earlier attempt may have reached the platform without an answer: look first.
    if attempt > 1 {
        let seen = client.agreement(&row.agreement_id).await.map_err(retry)?;
        if seen.status == AgreementStatus::Cancelled {
            return finish(ctx, row, Some(seen), "sent", "Cancelled").await;
        }
    }
    match client.cancel_agreement(&row.agreement_id).await {
        Ok(()) => {
            let seen = client.agreement(&row.agreement_id).await.ok();
            finish(ctx, row, seen, "sent", "Cancelled").await
        }
        Err(PlatformError::Api { status, .. }) if status == 400 || status == 404 => {
            let seen = client.agreement(&row.agreement_id).await.ok();
            let words = match seen.as_ref().map(|a| a.status) {
                Some(AgreementStatus::Cancelled) => {
                    "Not cancelled by paydesk: the payment platform says the agreement was already cancelled"
                }
                Some(AgreementStatus::Inactive) => {
                    "Not cancelled: the payment platform says the agreement is inactive (its card can no longer be used)"
                }
                _ if status == 404 => {
                    "Not cancelled: the payment platform does not know this agreement"
                }
                _ => "Not cancelled: the payment platform refused to cancel this agreement",
            };
            finish(ctx, row, seen, "refused", words).await
        }
        Err(e) if e.is_transient() => Err(retry(e)),
        Err(e) => {
            tracing::warn!(cancellation = row.id, error = %e, "agreement cancel refused");
            finish(
                ctx,
                row,
                None,
                "refused",
                "Not cancelled: the payment platform could not be asked (its settings for this service may need checking)",
            )
            .await
        }
    }
}

/// Close `row` as `state`, store what the platform now says of the agreement, and audit it,
/// in one transaction.
async fn finish(
    ctx: &JobContext,
    row: &CancellationRow,
    seen: Option<Agreement>,
    state: &str,
    outcome: &str,
) -> Result<(), JobFailure> {
    let now = ctx.clock.now();
    let at = store::to_micros(now);
    let mut tx = ctx.db.begin().await.map_err(retry)?;
    if !agreement_store::finish_cancellation(&mut tx, row.id, state, outcome, at)
        .await
        .map_err(retry)?
    {
        return Ok(());
    }
    match seen {
        Some(a) => {
            super::record(&mut tx, row.service_id, &[a], at, at)
                .await
                .map_err(retry)?;
        }
        None if state == "sent" => {
            agreement_store::mark_cancelled(&mut tx, row.service_id, &row.agreement_id, at)
                .await
                .map_err(retry)?;
        }
        None => {}
    }
    if state == "sent" {
        // The service's CRM hears of it in the same transaction as the change.
        let mut data = serde_json::Map::new();
        data.insert("agreement_id".into(), json!(row.agreement_id));
        data.insert("reason".into(), json!(row.reason));
        data.insert(
            "cancelled_at".into(),
            json!(crate::platform::types::wire_time::format(now)),
        );
        crate::integrations::events::emit(
            &mut tx,
            row.service_id,
            crate::integrations::events::EventType::AgreementCancelled,
            data,
            Some(&format!(
                "agreement.cancelled:{}:{}",
                row.service_id, row.agreement_id
            )),
            now,
        )
        .await
        .map_err(retry)?;
    }
    let mut event = AuditEvent::new(
        Actor::System,
        if state == "sent" {
            "agreement_cancelled"
        } else {
            "agreement_cancel_refused"
        },
        format!("agreement:{}", row.agreement_id),
    )
    .details(json!({"service_id": row.service_id, "cancellation": row.id, "outcome": outcome}));
    if state != "sent" {
        event = event.failed();
    }
    audit::append(&mut tx, now, event).await.map_err(retry)?;
    tx.commit().await.map_err(retry)?;
    Ok(())
}
