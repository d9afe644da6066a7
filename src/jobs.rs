//! The durable job queue. A job is written in the same transaction as the change that causes
//! it (transactional outbox); workers in any number of processes claim due jobs, run them,
//! record every attempt, retry on a per-kind schedule with jitter, and mark a job dead after
//! its last attempt. A worker renews the lease of each job it runs (a heartbeat every third of
//! the lease), so a long job is never taken from a live worker, and a job whose worker dies is
//! claimed again once its lease runs out (a minute by default). A renewal, like the result of
//! an attempt, is fenced by the attempt number and worker: once another worker has taken a job
//! over, the old worker stops it and can neither renew nor record anything.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::audit::{self, Actor, AuditEvent};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::jobs::{self as job_store, ClaimedJob};
use crate::store::{self, Db, StoreError, Tx};

/// A kind of job: its name and how long to wait before each retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobKind {
    pub name: &'static str,
    /// Seconds to wait after failed attempt 1, 2, …; the job has `len + 1` attempts in all.
    pub retry_delays_secs: &'static [u64],
}

impl JobKind {
    pub fn max_attempts(&self) -> i32 {
        self.retry_delays_secs.len() as i32 + 1
    }

    /// When to try again after `attempt` failed, or `None` when that was the last attempt.
    /// `jitter` in [0, 1) stretches the wait by up to a fifth, so that jobs that failed
    /// together do not all retry in the same instant.
    pub fn retry_delay(&self, attempt: i32, jitter: f64) -> Option<Duration> {
        let base = *self
            .retry_delays_secs
            .get(usize::try_from(attempt - 1).ok()?)?;
        let jitter = jitter.clamp(0.0, 0.999_999);
        Some(Duration::from_millis(
            base * 1000 + (base as f64 * 200.0 * jitter) as u64,
        ))
    }
}

/// What a job is given to run.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub id: i64,
    pub attempt: i32,
    pub payload: Value,
}

/// Why an attempt failed.
#[derive(Debug, Clone)]
pub struct JobFailure {
    pub message: String,
    /// Retrying cannot help (bad payload, say): the job goes straight to dead.
    pub permanent: bool,
    /// The far side asked us to wait at least this long (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl JobFailure {
    pub fn retry(message: impl Into<String>) -> Self {
        JobFailure {
            message: message.into(),
            permanent: false,
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        JobFailure {
            message: message.into(),
            permanent: true,
            retry_after: None,
        }
    }
}

/// What a job may use.
#[derive(Clone)]
pub struct JobContext {
    pub db: Db,
    pub clock: SharedClock,
    pub config: Arc<Config>,
    pub platforms: Arc<crate::platform::cache::Platforms>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

#[async_trait::async_trait]
pub trait JobHandler: Send + Sync {
    fn kind(&self) -> JobKind;
    /// Whether the payload holds something secret (a one-time link in an email, say) that
    /// should not outlive the job: it is blanked once the job succeeds.
    fn scrub_on_success(&self) -> bool {
        false
    }
    async fn run(&self, ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure>;
}

/// The handlers this build knows, by kind name.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
}

impl Registry {
    /// Every job kind paydesk ships.
    /// A registry of these handlers (the composition root, `lib.rs`, gathers them from each
    /// capability; the queue itself knows none).
    pub fn of(handlers: impl IntoIterator<Item = Arc<dyn JobHandler>>) -> Registry {
        let mut r = Registry::default();
        r.register(Arc::new(SelfTest));
        for handler in handlers {
            r.register(handler);
        }
        r
    }

    pub fn register(&mut self, handler: Arc<dyn JobHandler>) {
        self.handlers.insert(handler.kind().name, handler);
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn JobHandler>> {
        self.handlers.get(kind)
    }
}

/// Queue a job inside the caller's transaction: it exists only if that transaction commits.
pub async fn enqueue(
    tx: &mut Tx,
    kind: JobKind,
    payload: &Value,
    run_at: time::OffsetDateTime,
    now: time::OffsetDateTime,
) -> Result<i64, StoreError> {
    let id = job_store::insert(
        tx,
        kind.name,
        &payload.to_string(),
        kind.max_attempts(),
        store::to_micros(run_at),
        store::to_micros(now),
    )
    .await?;
    Ok(id)
}

/// Put a dead job back in the queue for another full set of attempts, and record who did.
pub async fn requeue(
    db: &Db,
    job_id: i64,
    registry: &Registry,
    actor: Actor,
    now: time::OffsetDateTime,
) -> Result<bool, audit::AuditError> {
    let Some(job) = job_store::get(db, job_id).await? else {
        return Ok(false);
    };
    let extra = registry
        .get(&job.kind)
        .map(|h| h.kind().max_attempts())
        .unwrap_or(1);
    let mut tx = db.begin().await?;
    if !job_store::requeue(&mut tx, job_id, extra, store::to_micros(now)).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "job_requeued", format!("job:{job_id}"))
            .details(json!({"kind": job.kind, "extra_attempts": extra})),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// What one pass of the runner did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassSummary {
    pub claimed: usize,
    pub succeeded: usize,
    pub retrying: usize,
    pub dead: usize,
    /// Results not recorded because another worker had taken the job over.
    pub fenced_off: usize,
}

/// Claims and runs jobs. Several runners (in one process or many) can share a database.
#[derive(Clone)]
pub struct JobRunner {
    ctx: JobContext,
    registry: Arc<Registry>,
    worker_id: String,
    lease: Duration,
    batch: usize,
    poll: Duration,
    wake: Arc<Notify>,
    /// Source of jitter in [0, 1); tests fix it.
    jitter: Arc<dyn Fn() -> f64 + Send + Sync>,
}

impl JobRunner {
    pub fn new(ctx: JobContext, registry: Arc<Registry>) -> JobRunner {
        let config = ctx.config.clone();
        JobRunner {
            ctx,
            registry,
            worker_id: format!(
                "{}-{}-{}",
                hostname(),
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            lease: Duration::from_secs(config.job_lease_secs),
            batch: config.job_concurrency,
            poll: Duration::from_millis(config.job_poll_ms),
            wake: Arc::new(Notify::new()),
            jitter: Arc::new(|| rand::thread_rng().gen::<f64>()),
        }
    }

    pub fn with_jitter(mut self, jitter: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter = Arc::new(jitter);
        self
    }

    pub fn with_worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = id.into();
        self
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Wake the loop now rather than at its next poll (after enqueueing in this process).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Claim due jobs once and run them to the end of their attempt, concurrently.
    pub async fn run_due(&self) -> Result<PassSummary, StoreError> {
        let now = self.ctx.clock.now();
        let lease_until = now + self.lease;
        let claimed = job_store::claim(
            &self.ctx.db,
            &self.worker_id,
            store::to_micros(now),
            store::to_micros(lease_until),
            self.batch as i64,
        )
        .await?;
        let mut summary = PassSummary {
            claimed: claimed.len(),
            ..Default::default()
        };
        let results =
            futures::future::join_all(claimed.into_iter().map(|job| self.run_one(job))).await;
        for result in results {
            match result? {
                Finished::Succeeded => summary.succeeded += 1,
                Finished::Retrying => summary.retrying += 1,
                Finished::Dead => summary.dead += 1,
                Finished::FencedOff => summary.fenced_off += 1,
            }
        }
        Ok(summary)
    }

    async fn run_one(&self, job: ClaimedJob) -> Result<Finished, StoreError> {
        let handler = self.registry.get(&job.kind).cloned();
        let outcome = if job.attempts > job.max_attempts {
            // Claimed again after its last attempt was lost: nothing left to try.
            Err(JobFailure::permanent(
                "the last attempt was lost: its worker stopped or ran past its lease",
            ))
        } else {
            match (handler, serde_json::from_str::<Value>(&job.payload)) {
                (None, _) => Err(JobFailure::retry(format!(
                    "no handler for job kind {:?} in this version of paydesk",
                    job.kind
                ))),
                (Some(_), Err(e)) => {
                    Err(JobFailure::permanent(format!("payload is not JSON: {e}")))
                }
                (Some(handler), Ok(payload)) => {
                    let run = JobRun {
                        id: job.id,
                        attempt: job.attempts,
                        payload,
                    };
                    // The worker renews the lease while the handler runs (`keep_lease`), so
                    // a long job keeps it as long as this process lives, and stops at once
                    // when another worker has taken the job over. The time limit only
                    // catches a handler that hangs.
                    let limit = self.run_limit();
                    let ctx = &self.ctx;
                    let work = tokio::time::timeout(
                        limit,
                        AssertUnwindSafe(handler.run(ctx, &run)).catch_unwind(),
                    );
                    tokio::select! {
                        biased;
                        done = work => match done {
                            Ok(Ok(result)) => result,
                            Ok(Err(_panic)) => Err(JobFailure::retry("the job panicked")),
                            Err(_) => Err(JobFailure::retry(format!(
                                "timed out after {} s",
                                limit.as_secs()
                            ))),
                        },
                        () = self.keep_lease(job.id, job.attempts) => {
                            tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, worker = %self.worker_id,
                                "job lease taken over by another worker, or not renewed in time; this attempt stopped");
                            self.ctx.metrics.count("paydesk_job_leases_lost_total");
                            return Ok(Finished::FencedOff);
                        }
                    }
                }
            }
        };

        let kind = self
            .registry
            .get(&job.kind)
            .map(|h| h.kind())
            .unwrap_or(UNKNOWN_KIND);
        let now = self.ctx.clock.now();
        let mut tx = self.ctx.db.begin().await?;
        let finished = match outcome {
            Ok(()) => {
                if job_store::finish(
                    &mut tx,
                    job.id,
                    job.attempts,
                    &self.worker_id,
                    store::to_micros(now),
                    None,
                    None,
                )
                .await?
                {
                    if self
                        .registry
                        .get(&job.kind)
                        .is_some_and(|h| h.scrub_on_success())
                    {
                        job_store::scrub_payload(&mut tx, job.id).await?;
                    }
                    Finished::Succeeded
                } else {
                    Finished::FencedOff
                }
            }
            Err(failure) => {
                let delay = if failure.permanent || job.attempts >= job.max_attempts {
                    None
                } else {
                    kind.retry_delay(job.attempts, (self.jitter)())
                        .map(|d| d.max(failure.retry_after.unwrap_or_default()))
                };
                let next = delay.map(|d| store::to_micros(now + d));
                let error = truncate(&failure.message, 2000);
                if !job_store::finish(
                    &mut tx,
                    job.id,
                    job.attempts,
                    &self.worker_id,
                    store::to_micros(now),
                    Some(&error),
                    next,
                )
                .await?
                {
                    Finished::FencedOff
                } else if next.is_some() {
                    tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, error = %error, "job attempt failed; will retry");
                    Finished::Retrying
                } else {
                    tracing::error!(job = job.id, kind = %job.kind, attempt = job.attempts, error = %error, "job is dead");
                    audit::append(
                        &mut tx,
                        now,
                        AuditEvent::new(Actor::System, "job_dead", format!("job:{}", job.id))
                            .failed()
                            .details(
                                json!({"kind": job.kind, "attempts": job.attempts, "error": error}),
                            ),
                    )
                    .await
                    .map_err(|e| match e {
                        audit::AuditError::Store(s) => s,
                        other => StoreError::Invalid(other.to_string()),
                    })?;
                    Finished::Dead
                }
            }
        };
        tx.commit().await?;
        Ok(finished)
    }

    /// How often a running attempt renews its lease: a third of the lease, at most every
    /// 20 s, so that two renewals can fail before the lease runs out.
    pub fn heartbeat_interval(lease: Duration) -> Duration {
        (lease / 3).clamp(Duration::from_millis(50), Duration::from_secs(20))
    }

    /// The longest one attempt may run even while its worker renews the lease: five leases,
    /// and at least five minutes (a handler that hangs is stopped and retried).
    fn run_limit(&self) -> Duration {
        (self.lease * 5).max(Duration::from_secs(300))
    }

    /// Renew this attempt's lease every `heartbeat_interval` for as long as it runs. Returns
    /// only when the lease is no longer this worker's (another worker took the job over after
    /// the lease ran out): the caller then stops the attempt without recording anything. A
    /// renewal that fails for a database error is retried at the next beat.
    async fn keep_lease(&self, job_id: i64, attempt: i32) {
        let every = Self::heartbeat_interval(self.lease);
        // As far as this worker can be sure, its lease runs until here: the claim set it a
        // moment ago, and each renewal sets it from when the renewal was sent.
        let mut held_until = tokio::time::Instant::now() + self.lease;
        loop {
            tokio::time::sleep(every).await;
            let sent = tokio::time::Instant::now();
            let now = self.ctx.clock.now();
            match job_store::renew(
                &self.ctx.db,
                job_id,
                attempt,
                &self.worker_id,
                store::to_micros(now),
                store::to_micros(now + self.lease),
            )
            .await
            {
                Ok(true) => held_until = sent + self.lease,
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(job = job_id, error = %e, "could not renew a job lease; will try again");
                }
            }
            // Renewals failing (the database busy or away): stop before the lease can lapse,
            // since another worker may claim the job the moment it does.
            if tokio::time::Instant::now() + every >= held_until {
                return;
            }
        }
    }

    /// Run until `shutdown` turns true. Up to `job_concurrency` attempts run at once, and a
    /// slot is filled again as soon as it frees (one slow attempt, such as a batch's send
    /// step or a refund whose platform hangs, never holds the others' slots idle); with no
    /// job due, the loop waits for the poll interval, a wake-up or a slot freeing. Claiming
    /// is unchanged (`job_store::claim`, one worker per attempt), so this decides only how
    /// soon due jobs start. At shutdown the attempts under way are finished.
    pub async fn run_until(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.worker_id, "job worker started");
        let slots = self.batch.max(1);
        let mut running: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let free = slots.saturating_sub(running.len());
            if free > 0 {
                match self.claim(free).await {
                    Ok(jobs) => {
                        for job in jobs {
                            let runner = self.clone();
                            running.spawn(async move {
                                if let Err(e) = runner.run_one(job).await {
                                    tracing::error!(error = %e, "job worker could not record an attempt");
                                }
                            });
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "job worker could not claim jobs"),
                }
            }
            tokio::select! {
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        while running.join_next().await.is_some() {}
        tracing::info!(worker = %self.worker_id, "job worker stopped");
    }

    async fn claim(&self, n: usize) -> Result<Vec<ClaimedJob>, StoreError> {
        let now = self.ctx.clock.now();
        job_store::claim(
            &self.ctx.db,
            &self.worker_id,
            store::to_micros(now),
            store::to_micros(now + self.lease),
            n as i64,
        )
        .await
    }
}

enum Finished {
    Succeeded,
    Retrying,
    Dead,
    FencedOff,
}

const UNKNOWN_KIND: JobKind = JobKind {
    name: "unknown",
    retry_delays_secs: &[60, 300, 3600],
};

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "paydesk".into())
}

/// A job kind for checking the queue end to end: it sleeps for `sleep_ms`, then fails its
/// first `fail_times` attempts and succeeds after that.
pub struct SelfTest;

pub const SELFTEST: JobKind = JobKind {
    name: "selftest",
    retry_delays_secs: &[1, 2, 4],
};

#[async_trait::async_trait]
impl JobHandler for SelfTest {
    fn kind(&self) -> JobKind {
        SELFTEST
    }

    async fn run(&self, _ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let sleep_ms = job
            .payload
            .get("sleep_ms")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let fail_times = job
            .payload
            .get("fail_times")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        }
        if i64::from(job.attempt) <= fail_times {
            return Err(JobFailure::retry(format!(
                "selftest failure {} of {fail_times}, as asked",
                job.attempt
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_schedule_follows_the_kind_with_bounded_jitter() {
        let kind = JobKind {
            name: "k",
            retry_delays_secs: &[5, 60],
        };
        assert_eq!(kind.max_attempts(), 3);
        assert_eq!(kind.retry_delay(1, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(kind.retry_delay(2, 0.0), Some(Duration::from_secs(60)));
        assert_eq!(
            kind.retry_delay(3, 0.0),
            None,
            "no retry after the last attempt"
        );
        let stretched = kind.retry_delay(2, 0.99).unwrap();
        assert!(
            stretched > Duration::from_secs(60) && stretched <= Duration::from_secs(72),
            "{stretched:?}"
        );
        assert_eq!(kind.retry_delay(0, 0.5), None);
    }

    #[test]
    fn truncates_on_a_character_boundary() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
