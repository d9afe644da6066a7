//! Accounts unused for 90 days are disabled (PCI DSS 8.2.6): no sign-in for 90 days, or
//! invited (or created) and never used in 90 days. An administrator's fresh start (re-enabling
//! the account, or sending its invitation again) counts as use. Each account disabled is
//! audited as a system action, and its sessions and unused links end with it.
//!
//! The check runs once a day across every instance: the scheduler tick (see
//! `schedule::run`, from `identity::periodic`) claims the day's run in `periodic_runs` and queues one
//! `staff_inactivity_sweep` job, which the job runner performs (and retries).

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::IdentityError;
use crate::audit::{self, Actor, AuditEvent};
use crate::jobs::{self, JobContext, JobFailure, JobHandler, JobKind, JobRun};
use crate::store::staff as staff_store;
use crate::store::staff_admin as admin_store;
use crate::store::{self, Db, StoreError};

pub const INACTIVE_AFTER: Duration = Duration::days(90);
pub const EVERY: Duration = Duration::days(1);
const TASK: &str = "staff_inactivity_sweep";

pub const SWEEP: JobKind = JobKind {
    name: "staff_inactivity_sweep",
    retry_delays_secs: &[60, 600, 3600],
};

/// Queue today's sweep if no instance has yet: true when this call queued it.
pub async fn schedule(db: &Db, now: OffsetDateTime) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let at = store::to_micros(now);
    if !admin_store::claim_periodic(&mut tx, TASK, at, store::to_micros(now + EVERY)).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let id = jobs::enqueue(&mut tx, SWEEP, &json!({}), now, now).await?;
    admin_store::note_periodic_job(&mut tx, TASK, id).await?;
    tx.commit().await?;
    Ok(true)
}

/// Disable every account unused since 90 days before `now`; returns their ids.
pub async fn disable_inactive(db: &Db, now: OffsetDateTime) -> Result<Vec<i64>, IdentityError> {
    let at = store::to_micros(now);
    let cutoff = store::to_micros(now - INACTIVE_AFTER);
    let mut tx = db.begin().await?;
    let disabled = admin_store::disable_unused_since(&mut tx, cutoff, at).await?;
    for row in &disabled {
        let ended = staff_store::delete_sessions_of(&mut tx, row.id, None).await?;
        let links = admin_store::expire_links(&mut tx, row.id, at).await?;
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(Actor::System, "user_disabled", format!("staff:{}", row.id)).details(
                json!({
                    "reason": "inactive",
                    "inactive_days": INACTIVE_AFTER.whole_days(),
                    "email": row.email,
                    "previous_status": row.status,
                    "last_sign_in_at": row.last_sign_in_at.map(|t| store::from_micros(t).unix_timestamp()),
                    "sessions_ended": ended,
                    "links_ended": links,
                }),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(disabled.into_iter().map(|r| r.id).collect())
}

/// The daily sweep, as a job.
pub struct InactivitySweep;

#[async_trait::async_trait]
impl JobHandler for InactivitySweep {
    fn kind(&self) -> JobKind {
        SWEEP
    }

    async fn run(&self, ctx: &JobContext, _job: &JobRun) -> Result<(), JobFailure> {
        let disabled = disable_inactive(&ctx.db, ctx.clock.now())
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?;
        if !disabled.is_empty() {
            tracing::info!(
                count = disabled.len(),
                "disabled staff accounts unused for 90 days"
            );
        }
        Ok(())
    }
}
