//! Retention beyond the journey: recurring agreements that ended before the retention period,
//! uploaded bulk refund files past every service's period, expired form drafts, and export
//! files made before a redaction that may still hold what it removed. Each change with data in
//! it is audited (counts and ids, never data). The parts that follow one journey's redaction
//! are in `store::personal_data::redact`.

use serde_json::json;
use time::OffsetDateTime;

use super::PersonalDataError;
use crate::audit::{self, Actor, AuditEvent};
use crate::store::personal_data_reach as reach_store;
use crate::store::{self, Db};

/// The reason the retention run's audit entries give.
const BY_RETENTION: &str = "retention";

/// Redact the agreements of a service that ended before `cutoff` and none of whose payments
/// still holds payer data; audited when there were any. How many.
pub async fn agreements_past(
    db: &Db,
    now: OffsetDateTime,
    service_id: i64,
    cutoff: i64,
) -> Result<u64, PersonalDataError> {
    let mut tx = db.begin().await?;
    let removed =
        reach_store::redact_ended_agreements(&mut tx, service_id, cutoff, store::to_micros(now))
            .await?;
    if removed.agreements == 0 {
        tx.rollback().await?;
        return Ok(0);
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            Actor::System,
            "personal_data_redacted",
            format!("service:{service_id}"),
        )
        .details(json!({
            "reason": BY_RETENTION,
            "agreements": removed.agreements,
            "agreement_reasons": removed.cancellation_reasons,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(removed.agreements)
}

/// What a run's tidying removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tidied {
    pub bulk_files: u64,
    pub form_drafts: u64,
}

/// Delete expired form drafts, and drop finished bulk refund files uploaded before the longest
/// retention period of any service (audited when any went).
pub async fn tidy(
    db: &Db,
    now: OffsetDateTime,
    longest_days: Option<i64>,
) -> Result<Tidied, PersonalDataError> {
    let at = store::to_micros(now);
    let mut tx = db.begin().await?;
    let form_drafts = reach_store::delete_drafts(&mut tx, &[], at).await?;
    let bulk_files = match longest_days {
        Some(days) => {
            let past = store::to_micros(now - time::Duration::days(days));
            reach_store::drop_batch_files(&mut tx, past, at).await?
        }
        None => 0,
    };
    if bulk_files > 0 {
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(Actor::System, "personal_data_redacted", "refund_batches")
                .details(json!({"reason": BY_RETENTION, "bulk_files": bulk_files})),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Tidied {
        bulk_files,
        form_drafts,
    })
}

/// The first day an export's filter asked for, if it says.
fn first_day(filter: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(filter)
        .ok()?
        .get("from")?
        .as_str()
        .map(str::to_string)
}

/// Bring forward the expiry of finished export files made before now that may hold data a
/// redaction removed: for retention (`cuts`: each service's cutoff), those of a service whose
/// dates reach back before its cutoff; for an erasure (`cuts` None), every one of `services`.
/// The export cleaner deletes the files within a minute and audits each. How many.
pub async fn expire_exports(
    db: &Db,
    now: OffsetDateTime,
    services: &[i64],
    cuts: Option<&[(i64, i64)]>,
) -> Result<u64, PersonalDataError> {
    let at = store::to_micros(now);
    let kept = reach_store::exports_made_before(db, at).await?;
    let day = |micros: i64| {
        store::from_micros(micros)
            .date()
            .format(time::macros::format_description!("[year]-[month]-[day]"))
            .unwrap_or_default()
    };
    let due: Vec<i64> = kept
        .iter()
        .filter(|e| {
            let of: Vec<i64> = serde_json::from_str(&e.service_ids).unwrap_or_default();
            match cuts {
                None => of.iter().any(|s| services.contains(s)),
                Some(cuts) => cuts.iter().any(|(s, cut)| {
                    of.contains(s)
                        && first_day(&e.filter)
                            .is_none_or(|from| from <= day(*cut + 86_400_000_000))
                }),
            }
        })
        .map(|e| e.id)
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let n = reach_store::expire_exports(&mut tx, &due, at).await?;
    if n > 0 {
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(Actor::System, "personal_data_exports_expired", "exports")
                .details(json!({"exports": due})),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_export_first_day_is_read() {
        assert_eq!(
            first_day(r#"{"from":"2026-01-01","to":"2026-01-31"}"#),
            Some("2026-01-01".into())
        );
        assert_eq!(first_day("nonsense"), None);
    }
}
