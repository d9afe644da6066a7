//! Submitting an approved refund to the platform exactly once, and following it until the
//! platform says it succeeded or failed.
//!
//! Exactly once rests on three things. Only the caller whose UPDATE moves the request from
//! `approved` to `submitting` may call the platform. Every call carries
//! `refund_amount_available` as read just before it, so a second refund of the same money is
//! refused by the platform (412, P0604). And whenever the outcome of a call is unknown (a
//! timeout, a dropped connection, a previous attempt cut short), the payment's refunds are
//! read and matched to this request before anything is sent again.

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::history::{self, By, Note};
use super::rules::{self, State};
use crate::integrations::events::{self, EventType};
use crate::jobs::{self, JobContext, JobFailure, JobHandler, JobKind, JobRun};
use crate::platform::client::{PaymentPlatform, PlatformError};
use crate::platform::types::{Refund, RefundRequest, RefundStatus};
use crate::services;
use crate::store::journeys::SystemEvent;
use crate::store::{self, refunds as refund_store, StoreError, Tx};

/// Submits one approved request.
pub const SUBMIT: JobKind = JobKind {
    name: "refund_submit",
    retry_delays_secs: &[1, 2, 5, 15, 60, 300, 900],
};

/// Follows one submitted refund until the platform settles it.
pub const FOLLOW: JobKind = JobKind {
    name: "refund_follow",
    retry_delays_secs: &[2, 3, 5, 10, 30, 60, 300, 900, 3600, 3600, 3600],
};

/// A refund the platform made this long before the submission started is not this request's.
const MATCH_SLACK: Duration = Duration::minutes(2);

/// The longest one submission attempt can take: a few platform calls, each bounded by the
/// platform timeout and its retries, and a margin.
fn attempt_limit(ctx: &JobContext) -> Duration {
    let call = ctx.config.platform_timeout_ms as i64 * (ctx.config.platform_retries as i64 + 1);
    Duration::milliseconds(call * 4) + Duration::seconds(10)
}

pub async fn enqueue(tx: &mut Tx, request_id: i64, now: OffsetDateTime) -> Result<i64, StoreError> {
    jobs::enqueue(tx, SUBMIT, &json!({"request": request_id}), now, now).await
}

/// Check this payment's submitted refunds at once (a refund webhook arrived).
pub async fn follow_now(
    tx: &mut Tx,
    service_id: i64,
    payment_id: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for id in refund_store::submitted_for_payment(tx, service_id, payment_id).await? {
        jobs::enqueue(tx, FOLLOW, &json!({"request": id}), now, now).await?;
    }
    Ok(())
}

pub fn handlers() -> Vec<std::sync::Arc<dyn JobHandler>> {
    vec![
        std::sync::Arc::new(SubmitJob),
        std::sync::Arc::new(FollowJob),
        std::sync::Arc::new(RefundWebhookSeen),
    ]
}

/// A refund webhook arrived for a payment (journeys queues this when it records one): its
/// submitted refunds are followed up now rather than at their next turn.
pub struct RefundWebhookSeen;

#[async_trait::async_trait]
impl JobHandler for RefundWebhookSeen {
    fn kind(&self) -> JobKind {
        crate::journeys::sync::REFUND_WEBHOOK_SEEN
    }

    async fn run(&self, ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let service_id = job.payload.get("service_id").and_then(Value::as_i64);
        let payment_id = job.payload.get("payment_id").and_then(Value::as_str);
        let (Some(service_id), Some(payment_id)) = (service_id, payment_id) else {
            return Err(JobFailure::permanent(
                "the payload needs a service id and a payment id",
            ));
        };
        let mut tx = ctx.db.begin().await.map_err(retry)?;
        follow_now(&mut tx, service_id, payment_id, ctx.clock.now())
            .await
            .map_err(retry)?;
        tx.commit().await.map_err(retry)
    }
}

fn retry<E: std::fmt::Display>(e: E) -> JobFailure {
    JobFailure::retry(e.to_string())
}

fn request_id(job: &JobRun) -> Result<i64, JobFailure> {
    job.payload
        .get("request")
        .and_then(Value::as_i64)
        .ok_or_else(|| JobFailure::permanent("the payload needs a request id"))
}

/// The request a job's payload names.
async fn request_of(
    ctx: &JobContext,
    job: &JobRun,
) -> Result<refund_store::RequestRow, JobFailure> {
    let id = request_id(job)?;
    refund_store::by_id(&ctx.db, id)
        .await
        .map_err(retry)?
        .ok_or_else(|| JobFailure::permanent(format!("there is no refund request {id}")))
}

pub struct SubmitJob;

#[async_trait::async_trait]
impl JobHandler for SubmitJob {
    fn kind(&self) -> JobKind {
        SUBMIT
    }

    async fn run(&self, ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let row = request_of(ctx, job).await?;
        let id = row.id;
        let cut_short = match State::parse(&row.state) {
            Some(State::Approved) => {
                let mut tx = ctx.db.begin().await.map_err(retry)?;
                let now = store::to_micros(ctx.clock.now());
                if !refund_store::start_submit(&mut tx, id, now)
                    .await
                    .map_err(retry)?
                {
                    // Someone else moved it on first (another worker, an expiry).
                    return Ok(());
                }
                tx.commit().await.map_err(retry)?;
                false
            }
            // A previous attempt started and did not finish: it may or may not have reached
            // the platform. Only once it is surely over (older than the longest an attempt
            // can take) may one caller take it over; until then, wait.
            Some(State::Submitting) => {
                let now = ctx.clock.now();
                let stale_before = now - attempt_limit(ctx);
                let mut tx = ctx.db.begin().await.map_err(retry)?;
                if !refund_store::retake_submit(
                    &mut tx,
                    id,
                    store::to_micros(now),
                    store::to_micros(stale_before),
                )
                .await
                .map_err(retry)?
                {
                    return Err(JobFailure::retry(
                        "another attempt at this refund is still under way",
                    ));
                }
                tx.commit().await.map_err(retry)?;
                true
            }
            // Submitted already, or over: nothing to send.
            _ => return Ok(()),
        };
        let row = refund_store::by_id(&ctx.db, id)
            .await
            .map_err(retry)?
            .ok_or_else(|| JobFailure::permanent(format!("there is no refund request {id}")))?;
        let service = services::by_id(&ctx.db, row.service_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| JobFailure::permanent("the service has gone"))?;
        // Money moves only while the people it rests on hold their permissions now. (An
        // attempt taken over may already have reached the platform: it is followed through.)
        if !cut_short {
            if let Some(why) = lapsed(ctx, &row, &service.name).await.map_err(retry)? {
                return fail(ctx, &row, &why).await;
            }
            // Disputed since it was asked for: never sent.
            if crate::disputes::payment_disputed(&ctx.db, row.service_id, &row.payment_id)
                .await
                .map_err(retry)?
            {
                return fail(ctx, &row, super::DISPUTED_NOT_SENT).await;
            }
        }
        let client = ctx.platforms.client(&ctx.config, &service).map_err(retry)?;
        submit(ctx, client.as_ref(), &row, cut_short).await
    }
}

/// Why a request about to be sent must not be: the person who asked no longer holds
/// refunds:request (refunds:bulk for a batch's row) in its service, or the person who approved it no longer holds
/// refunds:approve there (demoted, removed or disabled since).
async fn lapsed(
    ctx: &JobContext,
    row: &refund_store::RequestRow,
    service_name: &str,
) -> Result<Option<String>, StoreError> {
    use crate::identity::permissions::Permission;
    use crate::identity::standing;
    // A batch's row was asked for with refunds:bulk, a single refund with refunds:request.
    let asked_with = if row.batch_id.is_some() {
        Permission::RefundsBulk
    } else {
        Permission::RefundsRequest
    };
    let asker = standing::of(&ctx.db, row.requested_by, row.service_id, &[asked_with]).await?;
    if let Some(why) = asker.reason("requester", service_name) {
        return Ok(Some(format!("Not sent: {why}")));
    }
    if let (true, Some(approver)) = (row.approval_required, row.decided_by) {
        let approver = standing::of(
            &ctx.db,
            approver,
            row.service_id,
            &[Permission::RefundsApprove],
        )
        .await?;
        if let Some(why) = approver.reason("approver", service_name) {
            return Ok(Some(format!("Not sent: {why}")));
        }
    }
    Ok(None)
}

/// Send `row` (already `submitting`) to the platform, or find that it was sent.
pub async fn submit(
    ctx: &JobContext,
    client: &dyn PaymentPlatform,
    row: &refund_store::RequestRow,
    cut_short: bool,
) -> Result<(), JobFailure> {
    if cut_short {
        if let Some(refund) = find_ours(ctx, client, row).await? {
            return record_submitted(ctx, row, &refund).await;
        }
    }
    let payment = match client.get_payment(&row.payment_id).await {
        Ok(p) => p,
        // Nothing was sent: hand the request back so the next attempt starts afresh.
        Err(e) => return release(ctx, row, e).await,
    };
    let summary = payment.refund_summary.clone().unwrap_or_default();
    if payment.disputed == Some(true) {
        return fail(ctx, row, super::DISPUTED_NOT_SENT).await;
    }
    if summary.status != "available" || summary.amount_available < row.amount {
        return fail(
            ctx,
            row,
            &format!(
                "There is not enough left to refund: the platform says {} can be refunded. Someone may have refunded this payment already.",
                rules::pounds(summary.amount_available.max(0))
            ),
        )
        .await;
    }
    refund_store::note_available(
        &ctx.db,
        row.id,
        summary.amount_available,
        store::to_micros(ctx.clock.now()),
    )
    .await
    .map_err(retry)?;
    let ask = RefundRequest {
        amount: row.amount,
        refund_amount_available: Some(summary.amount_available),
    };
    match client.create_refund(&row.payment_id, &ask).await {
        Ok(refund) => record_submitted(ctx, row, &refund).await,
        Err(e) if e.status() == Some(412) || e.code() == Some("P0604") => {
            // The platform's available amount moved under us: was it this request?
            match find_ours(ctx, client, row).await? {
                Some(refund) => record_submitted(ctx, row, &refund).await,
                None => fail(ctx, row, "Someone else refunded this payment at the same time, so this refund was not sent. Check the payment and ask again if money is still owed.").await,
            }
        }
        Err(
            e @ (PlatformError::Timeout(_)
            | PlatformError::BadResponse(_)
            | PlatformError::Connect(_)),
        ) => {
            // The platform may have made the refund: look before trying again.
            match find_ours(ctx, client, row).await? {
                Some(refund) => record_submitted(ctx, row, &refund).await,
                None => Err(retry(e)),
            }
        }
        // Rate limited: the platform did not take the request.
        Err(e @ PlatformError::RateLimited { .. }) => release(ctx, row, e).await,
        // A 5xx may have followed a refund made: keep the submission, so the next attempt
        // (after the longest an attempt can take) matches before it sends.
        Err(e) if e.is_transient() => Err(platform_retry(e)),
        Err(e) => fail(ctx, row, &format!("The platform refused the refund: {e}")).await,
    }
}

/// Give a submission back (submitting -> approved) when the platform certainly did not
/// receive the refund, and retry: the next attempt need not wait for this one to go stale.
async fn release(
    ctx: &JobContext,
    row: &refund_store::RequestRow,
    e: PlatformError,
) -> Result<(), JobFailure> {
    if let Some(started) = row.submit_started_at {
        refund_store::release_submit(&ctx.db, row.id, started, store::to_micros(ctx.clock.now()))
            .await
            .map_err(retry)?;
    }
    Err(platform_retry(e))
}

fn platform_retry(e: PlatformError) -> JobFailure {
    let after = e.retry_after();
    let mut f = JobFailure::retry(e.to_string());
    f.retry_after = after;
    f
}

/// The platform refund that is this request's, if it reached the platform: the same amount,
/// made after the submission started, and not already another request's.
async fn find_ours(
    ctx: &JobContext,
    client: &dyn PaymentPlatform,
    row: &refund_store::RequestRow,
) -> Result<Option<Refund>, JobFailure> {
    let refunds = client
        .payment_refunds(&row.payment_id)
        .await
        .map_err(platform_retry)?;
    let claimed = refund_store::claimed_refund_ids(&ctx.db, row.service_id, &row.payment_id)
        .await
        .map_err(retry)?;
    let since = row
        .submit_started_at
        .map(|t| store::from_micros(t) - MATCH_SLACK)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut ours: Vec<Refund> = refunds
        .into_iter()
        .filter(|r| r.amount == row.amount)
        .filter(|r| r.created_date >= since)
        .filter(|r| !claimed.contains(&r.refund_id))
        .collect();
    ours.sort_by_key(|r| r.created_date);
    Ok(ours.into_iter().next())
}

async fn record_submitted(
    ctx: &JobContext,
    row: &refund_store::RequestRow,
    refund: &Refund,
) -> Result<(), JobFailure> {
    let now = ctx.clock.now();
    let at = store::to_micros(now);
    let mut tx = ctx.db.begin().await.map_err(retry)?;
    if !refund_store::mark_submitted(&mut tx, row.id, &refund.refund_id, at)
        .await
        .map_err(retry)?
    {
        return Ok(());
    }
    let detail = json!({"request": row.id, "refund_id": refund.refund_id, "amount": row.amount});
    let message = format!(
        "The refund of {} was sent to the platform",
        rules::pounds(row.amount)
    );
    let follow_at = now + Duration::seconds(1);
    jobs::enqueue(&mut tx, FOLLOW, &json!({"request": row.id}), follow_at, now)
        .await
        .map_err(retry)?;
    // The audit entry last: its chain is one queue for every writer, held until commit.
    paydesk_did(
        &mut tx,
        now,
        row,
        SystemEvent::RefundSent,
        "refund_submitted",
        message,
        detail,
    )
    .await?;
    tx.commit().await.map_err(retry)?;
    Ok(())
}

async fn fail(
    ctx: &JobContext,
    row: &refund_store::RequestRow,
    why: &str,
) -> Result<(), JobFailure> {
    let now = ctx.clock.now();
    let at = store::to_micros(now);
    let mut tx = ctx.db.begin().await.map_err(retry)?;
    if !refund_store::mark_failed(&mut tx, row.id, why, at)
        .await
        .map_err(retry)?
    {
        return Ok(());
    }
    refund_store::flag_attention(
        &mut tx,
        row.journey_id,
        &format!("refund failed: {why}"),
        at,
    )
    .await
    .map_err(retry)?;
    let detail = json!({"request": row.id, "amount": row.amount, "failure": why});
    let message = format!("The refund of {} failed: {why}", rules::pounds(row.amount));
    events::refund_changed(&mut tx, EventType::RefundFailed, row, now)
        .await
        .map_err(retry)?;
    // The audit entry last: its chain is one queue for every writer, held until commit.
    paydesk_did(
        &mut tx,
        now,
        row,
        SystemEvent::RefundFailed,
        "refund_failed",
        message,
        detail,
    )
    .await?;
    tx.commit().await.map_err(retry)?;
    Ok(())
}

/// What the refund job did to `row`, in the journey's timeline and the audit log (a failed
/// refund is audited as a failure).
async fn paydesk_did(
    tx: &mut Tx,
    now: OffsetDateTime,
    row: &refund_store::RequestRow,
    what: SystemEvent,
    action: &'static str,
    message: String,
    detail: Value,
) -> Result<(), JobFailure> {
    let note = Note {
        journey_id: row.journey_id,
        payment_id: &row.payment_id,
        action,
        message,
        detail,
        failed: what == SystemEvent::RefundFailed,
    };
    history::write(tx, now, By::Paydesk(what), note)
        .await
        .map_err(retry)
}

pub struct FollowJob;

#[async_trait::async_trait]
impl JobHandler for FollowJob {
    fn kind(&self) -> JobKind {
        FOLLOW
    }

    async fn run(&self, ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let row = request_of(ctx, job).await?;
        let (Some(State::Submitted), Some(refund_id)) =
            (State::parse(&row.state), row.platform_refund_id.clone())
        else {
            return Ok(());
        };
        let service = services::by_id(&ctx.db, row.service_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| JobFailure::permanent("the service has gone"))?;
        let client = ctx.platforms.client(&ctx.config, &service).map_err(retry)?;
        let refund = client
            .get_refund(&row.payment_id, &refund_id)
            .await
            .map_err(platform_retry)?;
        match refund.status {
            RefundStatus::Success => succeeded(ctx, &row).await,
            RefundStatus::Error => {
                fail(ctx, &row, "The platform could not pay the refund (its status is error). It can be asked for again.").await
            }
            _ => Err(JobFailure::retry("the platform has not finished the refund yet")),
        }
    }
}

async fn succeeded(ctx: &JobContext, row: &refund_store::RequestRow) -> Result<(), JobFailure> {
    let now = ctx.clock.now();
    let at = store::to_micros(now);
    let settings = refund_store::settings(&ctx.db, row.service_id)
        .await
        .map_err(retry)?;
    let payer = refund_store::payer_email(&ctx.db, row.journey_id)
        .await
        .map_err(retry)?;
    let service = services::by_id(&ctx.db, row.service_id)
        .await
        .map_err(retry)?;
    let mut tx = ctx.db.begin().await.map_err(retry)?;
    if !refund_store::mark_succeeded(&mut tx, row.id, at)
        .await
        .map_err(retry)?
    {
        return Ok(());
    }
    let detail =
        json!({"request": row.id, "amount": row.amount, "refund_id": row.platform_refund_id});
    let message = format!("The refund of {} succeeded", rules::pounds(row.amount));
    if let (true, Some((Some(email), reference)), Some(service)) =
        (settings.refund_email_enabled, payer, service)
    {
        let mail = payer_mail(&settings, &service.name, &reference, row.amount, &email);
        crate::mail::enqueue(&mut tx, &mail, now)
            .await
            .map_err(retry)?;
    }
    events::refund_changed(&mut tx, EventType::RefundSucceeded, row, now)
        .await
        .map_err(retry)?;
    // The journey's own figures (refunded, still refundable) come from the platform.
    crate::journeys::sync::enqueue_refresh(&mut tx, row.service_id, &row.payment_id, None, now)
        .await
        .map_err(retry)?;
    // The audit entry last: its chain is one queue for every writer, held until commit.
    paydesk_did(
        &mut tx,
        now,
        row,
        SystemEvent::RefundSucceeded,
        "refund_succeeded",
        message,
        detail,
    )
    .await?;
    tx.commit().await.map_err(retry)?;
    Ok(())
}

/// The payer's email: the service's own wording or paydesk's, with `((amount))`,
/// `((reference))` and `((service))` filled in. The wording is the service's, never code: it
/// is filled by plain replacement, and the HTML part is escaped.
pub fn payer_mail(
    settings: &refund_store::RefundSettings,
    service: &str,
    reference: &str,
    amount: i64,
    to: &str,
) -> crate::mail::Mail {
    let subject = settings
        .refund_email_subject
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "Your refund from ((service))".into());
    let text = settings
        .refund_email_text
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| {
            "We have refunded ((amount)) for your payment ((reference)) to ((service)).\n\n\
             The money should reach your account within 5 working days.\n\n\
             This email was sent automatically; please do not reply to it."
                .into()
        });
    let fill = |s: &str| {
        s.replace("((amount))", &rules::pounds(amount))
            .replace("((reference))", reference)
            .replace("((service))", service)
    };
    let text = fill(&text);
    let html = text
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", html_escape(p).replace('\n', "<br>")))
        .collect::<Vec<_>>()
        .join("\n");
    crate::mail::Mail {
        to: to.to_string(),
        subject: fill(&subject).replace(['\r', '\n'], " "),
        text,
        html,
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payer_email_fills_the_wording_and_escapes_the_html() {
        let s = refund_store::RefundSettings {
            refund_email_enabled: true,
            refund_email_subject: Some("Refund for ((reference))\nBcc: x@y".into()),
            refund_email_text: Some("Hello <b>you</b>\n\n((amount)) is on its way.".into()),
            ..Default::default()
        };
        let m = payer_mail(&s, "Parking", "PERMIT-1", 1250, "payer@example.org");
        assert_eq!(m.subject, "Refund for PERMIT-1 Bcc: x@y");
        assert!(m.text.contains("£12.50 is on its way."));
        assert!(
            m.html.contains("&lt;b&gt;you&lt;&#x2F;b&gt;")
                || m.html.contains("&lt;b&gt;you&lt;/b&gt;")
        );
        let standard = payer_mail(&Default::default(), "Parking", "P-9", 500, "a@b.c");
        assert_eq!(standard.subject, "Your refund from Parking");
        assert!(standard.text.contains("£5.00") && standard.text.contains("P-9"));
    }
}
