//! Retention: each service keeps a journey's payer data for its retention period (2,555 days
//! unless changed; at least a year unless a platform admin lowers it), then a daily run —
//! claimed once across instances in `periodic_runs` and performed as the
//! `personal_data_retention` job — redacts it in batches. Held journeys are skipped until their
//! hold ends. Each batch commits with one audit entry of counts, never data.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::reach;
use super::PersonalDataError;
use crate::audit::{self, Actor, AuditEvent};
use crate::jobs::{self, JobContext, JobFailure, JobHandler, JobKind, JobRun};
use crate::store::personal_data::{self as pd_store, Due, Removed};
use crate::store::staff_admin as admin_store;
use crate::store::{self, Db, StoreError};

pub const DEFAULT_DAYS: i64 = 2555;
/// The shortest period a service admin may set; a platform admin may go lower.
pub const MIN_DAYS: i64 = 365;
/// The longest period anyone may set (a hundred years): beyond it is a typing slip.
pub const MAX_DAYS: i64 = 36_500;
/// Journeys redacted in one transaction when running flat out (GOV.UK Pay's ledger does 2,500
/// a run); the daily run goes in smaller, paced batches (`Pace::DEFAULT`).
pub const BATCH: i64 = 2500;
pub const EVERY: Duration = Duration::days(1);
const TASK: &str = "personal_data_retention";

pub const RUN: JobKind = JobKind {
    name: "personal_data_retention",
    retry_delays_secs: &[300, 1800, 7200],
};

/// Why a journey's data was removed, as stored on it and shown on its page.
pub const BY_RETENTION: &str = "retention";
pub const BY_ERASURE: &str = "erasure";

/// Read a retention period typed on the service page: whole days, at least a year unless the
/// person is a platform admin (then at least a day), at most a hundred years.
pub fn parse_days(typed: &str, platform_admin: bool) -> Result<i64, String> {
    let typed = typed.trim();
    if typed.is_empty() {
        return Err("Enter how many days payers' personal data is kept".into());
    }
    let days: i64 = typed
        .parse()
        .ok()
        .filter(|_| typed.bytes().all(|b| b.is_ascii_digit()))
        .ok_or("The retention period must be a whole number of days, like 2555")?;
    let min = if platform_admin { 1 } else { MIN_DAYS };
    if days < min {
        return Err(if platform_admin {
            "The retention period must be at least 1 day".into()
        } else {
            format!("The retention period must be at least {MIN_DAYS} days (only a platform admin can set a shorter one)")
        });
    }
    if days > MAX_DAYS {
        return Err(format!(
            "The retention period must be {MAX_DAYS} days or fewer"
        ));
    }
    Ok(days)
}

/// Journeys made before this moment are past a retention period of `days` at `now`.
pub fn cutoff(now: OffsetDateTime, days: i64) -> OffsetDateTime {
    now - Duration::days(days)
}

/// What a redacted payment's page says (the same whether retention or an erasure removed it).
pub fn redacted_notice(at: OffsetDateTime) -> String {
    let day = at
        .format(time::macros::format_description!(
            "[day padding:none] [month repr:long] [year]"
        ))
        .unwrap_or_default();
    format!("Personal details removed on {day} under the service's retention policy")
}

/// A service's retention setting.
pub async fn of_service(
    db: &Db,
    service_id: i64,
) -> Result<Option<pd_store::Retention>, PersonalDataError> {
    Ok(pd_store::retention_of(db, service_id).await?)
}

/// Change a service's retention period; audited.
pub async fn set_days(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    ip: Option<String>,
    service_id: i64,
    days: i64,
) -> Result<(), PersonalDataError> {
    let mut tx = db.begin().await?;
    let Some(before) =
        pd_store::set_retention_days(&mut tx, service_id, days, store::to_micros(now)).await?
    else {
        tx.rollback().await?;
        return Err(PersonalDataError::NotFound);
    };
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "retention_changed", format!("service:{service_id}"))
            .from_ip(ip)
            .details(json!({"retention_days": days, "before": before})),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What one retention run did, per service and in all.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunReport {
    pub redacted: u64,
    pub held: u64,
    pub batches: u64,
    pub agreements: u64,
    pub bulk_files: u64,
    pub form_drafts: u64,
    pub exports_expired: u64,
    /// Time spent pausing for people's searches (`Pace`).
    #[serde(skip)]
    pub paused: std::time::Duration,
    /// The run stopped at its time budget with journeys still due: another run follows.
    pub unfinished: bool,
}

/// How the run shares the database with people using paydesk (a configuration setting).
pub use crate::config::RetentionPace as Pace;

/// How long one job attempt redacts before it hands over to a follow-up job: well inside the
/// job queue's shortest run limit (five minutes), so a long, paced run is never cut off.
pub const JOB_BUDGET: std::time::Duration = std::time::Duration::from_secs(240);

/// The longest the run waits for searches in flight before its next batch.
pub const QUIET_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Redact every journey past its service's retention period that no hold keeps, at the
/// default pace.
pub async fn run(db: &Db, now: OffsetDateTime) -> Result<RunReport, PersonalDataError> {
    run_paced(db, now, Pace::DEFAULT, None).await
}

/// The same, at `pace`; with `budget`, it stops after that long (`unfinished`) and the journeys
/// still due wait for the next run.
pub async fn run_paced(
    db: &Db,
    now: OffsetDateTime,
    pace: Pace,
    budget: Option<std::time::Duration>,
) -> Result<RunReport, PersonalDataError> {
    let began = std::time::Instant::now();
    let mut report = RunReport::default();
    let services = pd_store::retention_of_services(db).await?;
    let mut since_tidy = 0;
    for service in &services {
        let cut = store::to_micros(cutoff(now, service.retention_days));
        let mut after = (i64::MIN, i64::MIN);
        loop {
            if budget.is_some_and(|b| began.elapsed() >= b) {
                report.unfinished = true;
                break;
            }
            if pace.pause_percent > 0 {
                report.paused += crate::foreground::quiet(QUIET_WAIT).await;
            }
            let started = std::time::Instant::now();
            let due = pd_store::due(db, service.id, cut, after, pace.batch.max(1)).await?;
            let Some(last) = due.last() else { break };
            after = (last.created_at, last.id);
            let (held, free): (Vec<Due>, Vec<Due>) =
                due.into_iter().partition(|d| d.held_by.is_some());
            report.held += held.len() as u64;
            if free.is_empty() {
                continue;
            }
            let details = json!({
                "reason": BY_RETENTION,
                "retention_days": service.retention_days,
                "held_skipped": held.len(),
            });
            let removed = redact(
                db,
                now,
                Actor::System,
                None,
                &format!("service:{}", service.id),
                &free,
                cut,
                BY_RETENTION,
                details,
            )
            .await?;
            report.redacted += removed.journeys;
            report.agreements += removed.agreements;
            report.bulk_files += removed.bulk_files;
            report.form_drafts += removed.form_drafts;
            report.batches += 1;
            since_tidy += removed.journeys;
            // A VACUUM on PostgreSQL: about a second at 1,000,000 journeys.
            if since_tidy >= pace.tidy_every.max(1) {
                since_tidy = 0;
                pd_store::tidy(db).await?;
            }
            let pause = pace.pause_after(started.elapsed());
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
                report.paused += pause;
            }
        }
        if report.unfinished {
            break;
        }
        report.agreements += reach::agreements_past(db, now, service.id, cut).await?;
    }
    let longest = services.iter().map(|s| s.retention_days).max();
    let tidy = reach::tidy(db, now, longest).await?;
    report.bulk_files += tidy.bulk_files;
    report.form_drafts += tidy.form_drafts;
    if report.redacted > 0 {
        let cuts: Vec<(i64, i64)> = services
            .iter()
            .map(|s| (s.id, store::to_micros(cutoff(now, s.retention_days))))
            .collect();
        report.exports_expired = reach::expire_exports(db, now, &[], Some(cuts.as_slice())).await?;
    }
    if report.redacted > 0 || report.agreements > 0 || report.bulk_files > 0 {
        pd_store::scrub(db).await?;
    }
    Ok(report)
}

/// Redact `journeys` in one transaction with one audit entry of counts (`details` plus what
/// was removed where). Shared by retention and erasure, so both leave a payment alike.
#[allow(clippy::too_many_arguments)]
pub(super) async fn redact(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    ip: Option<String>,
    target: &str,
    journeys: &[Due],
    mail_before: i64,
    reason: &str,
    mut details: serde_json::Value,
) -> Result<Removed, PersonalDataError> {
    let ids: Vec<(i64, String)> = journeys
        .iter()
        .map(|d| (d.id, d.payment_id.clone()))
        .collect();
    let mut emails: Vec<String> = journeys
        .iter()
        .filter_map(|d| d.email_key.clone())
        .collect();
    emails.sort();
    emails.dedup();
    let mut tx = db.begin().await?;
    let removed = pd_store::redact(
        &mut tx,
        &ids,
        &emails,
        mail_before,
        store::to_micros(now),
        reason,
    )
    .await?;
    if let (Some(obj), Ok(serde_json::Value::Object(counts))) =
        (details.as_object_mut(), serde_json::to_value(&removed))
    {
        obj.extend(counts);
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "personal_data_redacted", target)
            .from_ip(ip)
            .details(details),
    )
    .await?;
    tx.commit().await?;
    Ok(removed)
}

/// Queue today's run if no instance has yet: true when this call queued it.
pub async fn schedule(db: &Db, now: OffsetDateTime) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let at = store::to_micros(now);
    if !admin_store::claim_periodic(&mut tx, TASK, at, store::to_micros(now + EVERY)).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let id = jobs::enqueue(&mut tx, RUN, &json!({}), now, now).await?;
    admin_store::note_periodic_job(&mut tx, TASK, id).await?;
    tx.commit().await?;
    Ok(true)
}

/// The daily run, as a job.
pub struct RetentionRun;

#[async_trait::async_trait]
impl JobHandler for RetentionRun {
    fn kind(&self) -> JobKind {
        RUN
    }

    async fn run(&self, ctx: &JobContext, _job: &JobRun) -> Result<(), JobFailure> {
        let now = ctx.clock.now();
        let report = run_paced(&ctx.db, now, ctx.config.retention_pace, Some(JOB_BUDGET))
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?;
        if report.unfinished {
            // The rest in a follow-up job, so that no attempt runs into the queue's limit.
            let follow_up = async {
                let mut tx = ctx.db.begin().await?;
                jobs::enqueue(&mut tx, RUN, &json!({}), now, now).await?;
                tx.commit().await
            };
            follow_up
                .await
                .map_err(|e: StoreError| JobFailure::retry(e.to_string()))?;
        }
        tracing::info!(
            redacted = report.redacted,
            held = report.held,
            agreements = report.agreements,
            bulk_files = report.bulk_files,
            exports_expired = report.exports_expired,
            paused_ms = report.paused.as_millis() as u64,
            unfinished = report.unfinished,
            "personal data retention run"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_retention_days_are_read_strictly() {
        assert_eq!(parse_days("2555", false), Ok(2555));
        assert_eq!(parse_days(" 365 ", false), Ok(365));
        assert!(parse_days("364", false).is_err());
        assert_eq!(parse_days("30", true), Ok(30));
        assert!(parse_days("0", true).is_err());
        for bad in ["", "1e3", "-5", "2,555", "365.0", "+400", "36501"] {
            assert!(parse_days(bad, true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn personal_redacted_notice_names_the_day() {
        assert_eq!(
            redacted_notice(time::macros::datetime!(2033-12-07 03:00 UTC)),
            "Personal details removed on 7 December 2033 under the service's retention policy"
        );
    }

    #[test]
    fn personal_cutoff_is_days_before_now() {
        let now = time::macros::datetime!(2033-11-20 09:00 UTC);
        assert_eq!(
            cutoff(now, 2555),
            time::macros::datetime!(2026-11-22 09:00 UTC)
        );
    }
}
