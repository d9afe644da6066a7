//! Keeping journeys in step with the platform:
//! - `refresh` re-reads one payment (its state, history, refunds and disputes) and upserts it;
//! - `backfill` pages through the platform's payment, refund and dispute searches from a stored
//!   cursor (with overlap; disputes also from the oldest still open, so they are read again
//!   until decided), committing its progress with every page so a crash resumes where it
//!   stopped;
//! - `flag_stuck` marks journeys that never reached a final state;
//! - `schedule` queues each connected service's sync job, once across all instances.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::record::{stuck_before, JourneyRecord, RefundRecord};
use crate::jobs::{self, JobContext, JobFailure, JobHandler, JobKind, JobRun};
use crate::platform::agreement_wire::{AgreementSearch, AgreementsPage};
use crate::platform::client::{PaymentPlatform, PlatformError};
use crate::platform::dispute_wire::{Dispute, DisputeSearch, DisputesPage};
use crate::platform::types::{Payment, PaymentSearch, Refund, RefundSearch, SearchPage};
use crate::services::{self, ServiceAccount, ServiceError};
use crate::store::journeys::{self as journey_store, Source, StateEvent, SyncStateRow};
use crate::store::{self, services as service_store, Db, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

impl SyncError {
    fn into_job_failure(self) -> JobFailure {
        let permanent = matches!(
            &self,
            SyncError::Platform(PlatformError::Api { status, .. }) if *status == 404
        );
        let retry_after = match &self {
            SyncError::Platform(e) => e.retry_after(),
            _ => None,
        };
        JobFailure {
            message: self.to_string(),
            permanent,
            retry_after,
        }
    }
}

/// What a refresh found.
#[derive(Debug, Clone, PartialEq)]
pub struct Refreshed {
    pub journey_id: i64,
    pub status: String,
}

/// Re-read one payment from the platform now and bring its journey up to date.
pub async fn refresh(
    ctx: &JobContext,
    service: &ServiceAccount,
    payment_id: &str,
) -> Result<Refreshed, SyncError> {
    let client = ctx.platforms.client(&ctx.config, service)?;
    refresh_with(
        &ctx.db,
        ctx.clock.now(),
        client.as_ref(),
        service.id,
        payment_id,
    )
    .await
}

pub async fn refresh_with(
    db: &Db,
    started: OffsetDateTime,
    client: &dyn PaymentPlatform,
    service_id: i64,
    payment_id: &str,
) -> Result<Refreshed, SyncError> {
    let read = read_payment(client, payment_id).await?;
    let mut tx = db.begin().await?;
    let journey_id = store_payment(&mut tx, service_id, &read, started).await?.id;
    tx.commit().await?;
    let stored = journey_store::journey(db, service_id, payment_id).await?;
    Ok(Refreshed {
        journey_id,
        status: stored
            .map(|j| j.status)
            .unwrap_or_else(|| read.payment.state.status.as_str().into()),
    })
}

/// One payment as the platform tells it: its state, its history and its refunds.
pub(crate) struct PaymentRead {
    /// The payment asked for.
    payment_id: String,
    pub payment: Payment,
    events: Vec<crate::platform::types::PaymentEvent>,
    refunds: Vec<Refund>,
    disputes: Vec<Dispute>,
    agreement: Option<crate::platform::agreement_wire::Agreement>,
}

/// Ask the platform for one payment, its history and its refunds (nothing is written).
pub(crate) async fn read_payment(
    client: &dyn PaymentPlatform,
    payment_id: &str,
) -> Result<PaymentRead, SyncError> {
    let (payment, events, refunds) = tokio::try_join!(
        client.get_payment(payment_id),
        client.payment_events(payment_id),
        client.payment_refunds(payment_id),
    )?;
    let disputes = crate::disputes::read_for_payment(client, &payment).await?;
    // A payment taken under an agreement brings its agreement up to date too.
    let agreement = match payment.agreement_id.as_deref() {
        Some(id) => Some(client.agreement(id).await?),
        None => None,
    };
    Ok(PaymentRead {
        payment_id: payment_id.to_string(),
        payment,
        events,
        refunds,
        disputes,
        agreement,
    })
}

/// Write what was read at `started` into the journey, its timeline and its refunds, within
/// the caller's transaction. Returns the journey as the write left it.
pub(crate) async fn store_payment(
    tx: &mut store::Tx,
    service_id: i64,
    read: &PaymentRead,
    started: OffsetDateTime,
) -> Result<journey_store::Upserted, SyncError> {
    let observed_at = store::to_micros(started);
    let payment_id = read.payment_id.as_str();
    let record = JourneyRecord::from_payment(&read.payment);
    let refund_records: Vec<RefundRecord> = read
        .refunds
        .iter()
        .filter_map(|r| RefundRecord::from_refund(r, Some(payment_id)))
        .collect();
    let now = observed_at;
    let upserted = upsert_announcing(tx, service_id, &[record], observed_at, now).await?;
    let Some(journey) = upserted.into_iter().next() else {
        return Err(SyncError::Store(StoreError::Invalid(
            "the journey upsert returned nothing".into(),
        )));
    };
    let history: Vec<StateEvent> = read
        .events
        .iter()
        .map(|e| StateEvent {
            journey_id: journey.id,
            status: e.state.status.as_str().to_string(),
            code: e.state.code.clone(),
            message: e.state.message.clone(),
            occurred_at: store::to_micros(e.updated),
            source: Source::Platform,
        })
        .collect();
    journey_store::insert_state_events(tx, &history, now).await?;
    journey_store::upsert_refunds(tx, service_id, &refund_records, observed_at, now).await?;
    crate::disputes::record(tx, service_id, &read.disputes, observed_at, now).await?;
    if let Some(a) = &read.agreement {
        crate::agreements::record(tx, service_id, std::slice::from_ref(a), observed_at, now)
            .await?;
    }
    crate::agreements::link_payments(tx, service_id, std::slice::from_ref(&read.payment)).await?;
    Ok(journey)
}

/// Upsert journeys read from the platform and, in the same transaction, emit the outbound
/// events for those that reached a final state here (`integrations::events`).
async fn upsert_announcing(
    tx: &mut store::Tx,
    service_id: i64,
    records: &[JourneyRecord],
    observed_at: i64,
    now: i64,
) -> Result<Vec<journey_store::Upserted>, StoreError> {
    let upserted =
        journey_store::upsert_journeys(tx, service_id, records, observed_at, now).await?;
    let changes: Vec<crate::integrations::events::PaymentChange> = upserted
        .iter()
        .map(|u| crate::integrations::events::PaymentChange::of(u, now))
        .collect();
    crate::integrations::events::payments_changed(
        tx,
        service_id,
        &changes,
        store::from_micros(now),
    )
    .await?;
    Ok(upserted)
}

/// The searches a backfill walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Payments,
    Refunds,
    Disputes,
    Agreements,
}

impl Stream {
    pub const ALL: [Stream; 4] = [
        Stream::Payments,
        Stream::Refunds,
        Stream::Disputes,
        Stream::Agreements,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Payments => "payments",
            Stream::Refunds => "refunds",
            Stream::Disputes => "disputes",
            Stream::Agreements => "agreements",
        }
    }
}

/// How a backfill pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The whole window is imported; the cursor moved on.
    Complete,
    /// The time budget ran out; the progress is saved and the next pass resumes it.
    Paused,
}

/// Settings for a backfill pass.
#[derive(Debug, Clone, Copy)]
pub struct BackfillSettings {
    pub overlap: Duration,
    pub page_size: u32,
    /// Stop starting new pages after this long (the job's lease must outlast it).
    pub budget: Option<Duration>,
}

enum Page {
    Payments(SearchPage<Payment>),
    Refunds(SearchPage<Refund>),
    Disputes(DisputesPage),
    Agreements(AgreementsPage),
}

impl Page {
    fn next(&self) -> Option<String> {
        let links = match self {
            Page::Payments(p) => &p.links,
            Page::Refunds(p) => &p.links,
            Page::Disputes(p) => &p.links,
            Page::Agreements(p) => &p.links,
        };
        links.next_page.as_ref().map(|l| l.href.clone())
    }
}

async fn fetch(
    client: &dyn PaymentPlatform,
    stream: Stream,
    state: &SyncStateRow,
    href: Option<&str>,
    page_size: u32,
) -> Result<Page, PlatformError> {
    let from = state.run_from.map(store::from_micros);
    let to = state.run_to.map(store::from_micros);
    match (stream, href) {
        (Stream::Payments, Some(h)) => client.payments_page(h).await.map(Page::Payments),
        (Stream::Refunds, Some(h)) => client.refunds_page(h).await.map(Page::Refunds),
        (Stream::Disputes, Some(h)) => client.disputes_page(h).await.map(Page::Disputes),
        (Stream::Agreements, Some(h)) => client.agreements_page(h).await.map(Page::Agreements),
        // The agreement search has no dates: every run reads them all (they are few, and an
        // agreement moves on long after it was created).
        (Stream::Agreements, None) => client
            .search_agreements(&AgreementSearch {
                display_size: Some(page_size),
                ..Default::default()
            })
            .await
            .map(Page::Agreements),
        (Stream::Disputes, None) => client
            .search_disputes(&DisputeSearch {
                from_date: from,
                to_date: to,
                display_size: Some(page_size),
                ..Default::default()
            })
            .await
            .map(Page::Disputes),
        (Stream::Payments, None) => client
            .search_payments(&PaymentSearch {
                from_date: from,
                to_date: to,
                display_size: Some(page_size),
                ..Default::default()
            })
            .await
            .map(Page::Payments),
        (Stream::Refunds, None) => client
            .search_refunds(&RefundSearch {
                from_date: from,
                to_date: to,
                display_size: Some(page_size),
                ..Default::default()
            })
            .await
            .map(Page::Refunds),
    }
}

async fn fetch_link(
    client: &dyn PaymentPlatform,
    stream: Stream,
    href: &str,
) -> Result<Page, PlatformError> {
    match stream {
        Stream::Payments => client.payments_page(href).await.map(Page::Payments),
        Stream::Refunds => client.refunds_page(href).await.map(Page::Refunds),
        Stream::Disputes => client.disputes_page(href).await.map(Page::Disputes),
        Stream::Agreements => client.agreements_page(href).await.map(Page::Agreements),
    }
}

/// Walk one stream of one service from its stored progress. Each page is written in one
/// transaction with the progress that follows it; the next page is fetched while the current
/// one is written.
pub async fn backfill(
    db: &Db,
    clock_now: impl Fn() -> OffsetDateTime,
    client: &dyn PaymentPlatform,
    service_id: i64,
    stream: Stream,
    settings: BackfillSettings,
) -> Result<Pass, SyncError> {
    let started = Instant::now();
    let now = clock_now();
    let mut state = journey_store::sync_state(db, service_id, stream.as_str())
        .await?
        .unwrap_or_else(|| SyncStateRow {
            service_id,
            stream: stream.as_str().into(),
            ..Default::default()
        });
    if state.run_started_at.is_none() {
        // A new run: from a little before the cursor (the search is eventually consistent) to
        // now. Everything created in that window is fetched, newest first.
        let overlap = time::Duration::try_from(settings.overlap).unwrap_or(time::Duration::ZERO);
        state.run_from = state
            .cursor_at
            .map(|c| store::to_micros(store::from_micros(c) - overlap));
        // A dispute moves on after it was raised: read the open ones again until decided.
        if let (Stream::Disputes, Some(from)) = (stream, state.run_from) {
            let open = crate::disputes::oldest_open(db, service_id).await?;
            state.run_from = Some(open.map_or(from, |o| o.min(from)));
        }
        state.run_to = Some(store::to_micros(now));
        state.run_next_page = None;
        state.run_imported = 0;
        state.run_reached = None;
        state.run_started_at = Some(store::to_micros(now));
    }
    let mut page = fetch(
        client,
        stream,
        &state,
        state.run_next_page.as_deref(),
        settings.page_size,
    )
    .await?;
    loop {
        let next_href = page.next();
        let over_budget = settings.budget.is_some_and(|b| started.elapsed() >= b);
        // Write this page while the next one is on its way.
        let prefetch = async {
            match (&next_href, over_budget) {
                (Some(h), false) => Some(fetch_link(client, stream, h).await),
                _ => None,
            }
        };
        let write = write_page(
            db,
            &clock_now,
            service_id,
            &mut state,
            &page,
            next_href.clone(),
        );
        let (written, fetched) = tokio::join!(write, prefetch);
        written?;
        match fetched {
            Some(Ok(p)) => page = p,
            Some(Err(e)) => return Err(e.into()),
            None if next_href.is_some() => return Ok(Pass::Paused),
            None => return Ok(Pass::Complete),
        }
    }
}

async fn write_page(
    db: &Db,
    clock_now: &impl Fn() -> OffsetDateTime,
    service_id: i64,
    state: &mut SyncStateRow,
    page: &Page,
    next_href: Option<String>,
) -> Result<(), SyncError> {
    let now = store::to_micros(clock_now());
    // The page was read just before now; nothing in it is newer than this.
    let observed_at = now;
    let mut tx = db.begin().await?;
    // A page lost to a crash is fetched again from the saved progress.
    tx.relax_durability().await?;
    let (count, oldest) = match page {
        Page::Payments(p) => {
            let records: Vec<JourneyRecord> =
                p.results.iter().map(JourneyRecord::from_payment).collect();
            upsert_announcing(&mut tx, service_id, &records, observed_at, now).await?;
            crate::agreements::link_payments(&mut tx, service_id, &p.results).await?;
            (
                records.len(),
                p.results
                    .iter()
                    .map(|r| store::to_micros(r.created_date))
                    .min(),
            )
        }
        Page::Agreements(p) => (
            crate::agreements::record(&mut tx, service_id, &p.results, observed_at, now).await?,
            p.results
                .iter()
                .map(|a| store::to_micros(a.created_date))
                .min(),
        ),
        Page::Disputes(p) => (
            crate::disputes::record(&mut tx, service_id, &p.results, observed_at, now).await?,
            p.results
                .iter()
                .map(|d| store::to_micros(d.created_date))
                .min(),
        ),
        Page::Refunds(p) => {
            let records: Vec<RefundRecord> = p
                .results
                .iter()
                .filter_map(|r| RefundRecord::from_refund(r, None))
                .collect();
            journey_store::upsert_refunds(&mut tx, service_id, &records, observed_at, now).await?;
            (
                records.len(),
                p.results
                    .iter()
                    .map(|r| store::to_micros(r.created_date))
                    .min(),
            )
        }
    };
    state.run_imported += count as i64;
    state.imported_total += count as i64;
    if let Some(o) = oldest {
        state.run_reached = Some(state.run_reached.map_or(o, |r| r.min(o)));
    }
    match next_href {
        Some(h) => state.run_next_page = Some(h),
        None => {
            state.cursor_at = state.run_to;
            state.run_from = None;
            state.run_to = None;
            state.run_next_page = None;
            state.run_started_at = None;
            state.last_success_at = Some(now);
            state.last_error = None;
        }
    }
    state.updated_at = now;
    journey_store::save_sync_state(&mut tx, state).await?;
    tx.commit().await?;
    Ok(())
}

/// Re-read journeys that should have finished long ago, and flag those the platform still
/// shows unfinished. Returns how many were flagged.
pub async fn flag_stuck(
    db: &Db,
    now: OffsetDateTime,
    client: &dyn PaymentPlatform,
    service_id: i64,
    grace: Duration,
) -> Result<usize, SyncError> {
    let before = store::to_micros(stuck_before(
        now,
        time::Duration::try_from(grace).unwrap_or(time::Duration::ZERO),
    ));
    let candidates = journey_store::unfinished_before(db, service_id, before, 200).await?;
    let mut flagged = 0;
    for payment_id in candidates {
        match refresh_with(db, now, client, service_id, &payment_id).await {
            Ok(r)
                if crate::platform::types::PaymentStatus::parse(&r.status)
                    .is_some_and(|s| s.is_finished()) =>
            {
                continue
            }
            Ok(_) => {}
            // Gone from the platform, or unreadable: a person should look either way.
            Err(SyncError::Platform(e)) if !e.is_transient() => {}
            Err(e) => return Err(e),
        }
        let mut tx = db.begin().await?;
        if journey_store::flag_stuck(
            &mut tx,
            service_id,
            &payment_id,
            before,
            store::to_micros(now),
        )
        .await?
        {
            flagged += 1;
        }
        tx.commit().await?;
    }
    Ok(flagged)
}

// ---- jobs -------------------------------------------------------------------------------

/// Re-read one payment (after a webhook, or when asked).
pub const REFRESH: JobKind = JobKind {
    name: "journey_refresh",
    retry_delays_secs: &[5, 30, 120, 600, 3600],
};

/// One service's sync: both backfill streams, then the stuck-journey check.
/// A refund webhook arrived for a payment: whoever follows refunds up (the refunds
/// capability registers the handler) looks at that payment's submitted refunds at once.
/// Payload: `{"service_id", "payment_id"}`.
pub const REFUND_WEBHOOK_SEEN: JobKind = JobKind {
    name: "refund_webhook_seen",
    retry_delays_secs: &[2, 10, 60, 300],
};

pub const SYNC: JobKind = JobKind {
    name: "service_sync",
    retry_delays_secs: &[10, 60, 300],
};

pub struct RefreshJob;

#[async_trait::async_trait]
impl JobHandler for RefreshJob {
    fn kind(&self) -> JobKind {
        REFRESH
    }

    async fn run(&self, ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let service_id = job.payload.get("service_id").and_then(Value::as_i64);
        let payment_id = job.payload.get("payment_id").and_then(Value::as_str);
        let (Some(service_id), Some(payment_id)) = (service_id, payment_id) else {
            return Err(JobFailure::permanent(
                "the payload needs service_id and payment_id",
            ));
        };
        let service = services::by_id(&ctx.db, service_id)
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?
            .ok_or_else(|| JobFailure::permanent(format!("there is no service {service_id}")))?;
        refresh(ctx, &service, payment_id)
            .await
            .map_err(SyncError::into_job_failure)?;
        // The webhook that asked for this read joins the journey's timeline.
        if let Some(message_id) = job.payload.get("message_id").and_then(Value::as_str) {
            let received = journey_store::webhook(&ctx.db, service_id, message_id)
                .await
                .map_err(|e| JobFailure::retry(e.to_string()))?;
            if let Some((received_at, event_type)) = received {
                let record = async {
                    let mut tx = ctx.db.begin().await?;
                    journey_store::record_webhook_event(
                        &mut tx,
                        service_id,
                        payment_id,
                        message_id,
                        &event_type,
                        received_at,
                        store::to_micros(ctx.clock.now()),
                    )
                    .await?;
                    // A refund webhook: look at this payment's submitted refunds now rather
                    // than at their follow-up's next turn.
                    if event_type == "card_payment_refunded" {
                        let now = ctx.clock.now();
                        jobs::enqueue(
                            &mut tx,
                            REFUND_WEBHOOK_SEEN,
                            &json!({"service_id": service_id, "payment_id": payment_id}),
                            now,
                            now,
                        )
                        .await?;
                    }
                    tx.commit().await
                };
                record.await.map_err(|e| JobFailure::retry(e.to_string()))?;
            }
        }
        Ok(())
    }
}

pub struct SyncJob;

#[async_trait::async_trait]
impl JobHandler for SyncJob {
    fn kind(&self) -> JobKind {
        SYNC
    }

    async fn run(&self, ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let Some(service_id) = job.payload.get("service_id").and_then(Value::as_i64) else {
            return Err(JobFailure::permanent("the payload needs service_id"));
        };
        let service = services::by_id(&ctx.db, service_id)
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?
            .ok_or_else(|| JobFailure::permanent(format!("there is no service {service_id}")))?;
        let client = ctx
            .platforms
            .client(&ctx.config, &service)
            .map_err(|e| JobFailure::permanent(e.to_string()))?;
        // Leave a margin inside the lease for the last page and the bookkeeping.
        let budget = Duration::from_secs(ctx.config.job_lease_secs).mul_f64(0.5);
        let settings = BackfillSettings {
            overlap: Duration::from_secs(ctx.config.sync_overlap_secs),
            page_size: 500,
            budget: Some(budget),
        };
        for stream in Stream::ALL {
            let clock = ctx.clock.clone();
            let result = backfill(
                &ctx.db,
                move || clock.now(),
                client.as_ref(),
                service_id,
                stream,
                settings,
            )
            .await;
            match result {
                Ok(Pass::Complete) => {}
                Ok(Pass::Paused) => {
                    // More to do: a continuation takes over the service's sync slot.
                    continue_sync(ctx, service_id)
                        .await
                        .map_err(|e| JobFailure::retry(e.to_string()))?;
                    return Ok(());
                }
                Err(e) => {
                    let _ = journey_store::note_sync_error(
                        &ctx.db,
                        service_id,
                        stream.as_str(),
                        &e.to_string(),
                        store::to_micros(ctx.clock.now()),
                    )
                    .await;
                    return Err(e.into_job_failure());
                }
            }
        }
        flag_stuck(
            &ctx.db,
            ctx.clock.now(),
            client.as_ref(),
            service_id,
            Duration::from_secs(ctx.config.stuck_after_minutes * 60),
        )
        .await
        .map_err(SyncError::into_job_failure)?;
        let next = ctx.clock.now() + Duration::from_secs(ctx.config.sync_interval_secs);
        let mut tx = ctx
            .db
            .begin()
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?;
        service_store::set_next_sync(&mut tx, service_id, store::to_micros(next))
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?;
        tx.commit()
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?;
        Ok(())
    }
}

async fn continue_sync(ctx: &JobContext, service_id: i64) -> Result<(), StoreError> {
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    let id = jobs::enqueue(&mut tx, SYNC, &json!({"service_id": service_id}), now, now).await?;
    service_store::hand_over_sync(&mut tx, service_id, id).await?;
    tx.commit().await
}

/// Queue a sync job for every connected service whose sync is due and not already queued or
/// running (here or in another instance). Returns how many were queued.
pub async fn schedule(db: &Db, now: OffsetDateTime) -> Result<usize, StoreError> {
    let mut queued = 0;
    for service_id in service_store::due_for_sync(db, store::to_micros(now)).await? {
        let mut tx = db.begin().await?;
        let id = jobs::enqueue(&mut tx, SYNC, &json!({"service_id": service_id}), now, now).await?;
        if service_store::claim_sync(&mut tx, service_id, id, store::to_micros(now)).await? {
            tx.commit().await?;
            queued += 1;
        } else {
            tx.rollback().await?;
        }
    }
    Ok(queued)
}

/// Queue a re-read of one payment inside the caller's transaction.
pub async fn enqueue_refresh(
    tx: &mut store::Tx,
    service_id: i64,
    payment_id: &str,
    message_id: Option<&str>,
    now: OffsetDateTime,
) -> Result<i64, StoreError> {
    let mut payload = json!({"service_id": service_id, "payment_id": payment_id});
    if let Some(m) = message_id {
        payload["message_id"] = json!(m);
    }
    jobs::enqueue(tx, REFRESH, &payload, now, now).await
}

/// The handlers this module provides.
pub fn handlers() -> Vec<Arc<dyn JobHandler>> {
    vec![Arc::new(RefreshJob), Arc::new(SyncJob)]
}
