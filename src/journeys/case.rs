//! Linking a payment journey to a case in a CRM or case-management system. The case reference
//! lives in paydesk's own record (a payment's metadata is fixed once it is created), survives
//! later reads from the platform, and each link is audited and shown in the timeline.

use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, Actor, AuditError, AuditEvent};
use crate::store::{self, journeys as journey_store, Db, StoreError};

/// The longest case reference kept.
pub const MAX_LEN: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Check a case reference as typed: trimmed, 1 to 100 characters, letters, digits, spaces
/// and `- _ / . : #` only (what case systems' references are made of, and nothing a
/// spreadsheet or a page could take for markup or a formula).
pub fn check(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("Enter the case reference".into());
    }
    if t.chars().count() > MAX_LEN {
        return Err(format!(
            "The case reference must be {MAX_LEN} characters or fewer"
        ));
    }
    if !t.chars().next().is_some_and(|c| c.is_alphanumeric()) {
        return Err("The case reference must start with a letter or a number".into());
    }
    if !t
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '/' | '.' | ':' | '#'))
    {
        return Err(
            "The case reference can only contain letters, numbers, spaces and - _ / . : #".into(),
        );
    }
    crate::card_data::refuse_card_number(t).map_err(String::from)?;
    Ok(t.to_string())
}

/// What linking came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linked {
    /// The journey now carries the reference; `before` is what it carried until now.
    Changed {
        before: Option<String>,
    },
    /// It already carried exactly this reference: nothing was written.
    Unchanged,
    NoSuchJourney,
}

/// Link `journey_id` (of payment `payment_id` in `service_id`) to `case_reference` (already
/// checked), as `actor` (named `by` in the timeline). The service's `case.linked` event is
/// written in the same transaction.
#[allow(clippy::too_many_arguments)]
pub async fn link(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    by: &str,
    ip: Option<String>,
    service_id: i64,
    journey_id: i64,
    payment_id: &str,
    case_reference: &str,
) -> Result<Linked, CaseError> {
    let mut tx = db.begin().await?;
    let Some(before) = journey_store::case_reference_for_update(&mut tx, journey_id).await? else {
        tx.rollback().await?;
        return Ok(Linked::NoSuchJourney);
    };
    if before.as_deref() == Some(case_reference) {
        tx.rollback().await?;
        return Ok(Linked::Unchanged);
    }
    let at = store::to_micros(now);
    journey_store::set_case_reference(&mut tx, journey_id, case_reference, at).await?;
    let detail = json!({"case_reference": case_reference, "before": before});
    let message = match &before {
        Some(old) => {
            format!("{by} linked the payment to case {case_reference} (it was linked to {old})")
        }
        None => format!("{by} linked the payment to case {case_reference}"),
    };
    journey_store::record_staff_event(&mut tx, journey_id, &message, &detail, at).await?;
    crate::integrations::events::case_linked(&mut tx, service_id, journey_id, now).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "case_linked", format!("payment:{payment_id}"))
            .from_ip(ip)
            .details(detail),
    )
    .await?;
    tx.commit().await?;
    Ok(Linked::Changed { before })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_references_are_checked() {
        assert_eq!(
            check("CASE 4012-8888-8888-1881"),
            Err(crate::card_data::REFUSAL.to_string())
        );
        assert!(check("CASE 4012-8888-8888-1882").is_ok());
        assert_eq!(check("  CASE-2026/0001 ").unwrap(), "CASE-2026/0001");
        assert_eq!(check("Ticket #42: refund").unwrap(), "Ticket #42: refund");
        for bad in [
            "",
            "   ",
            "=HYPERLINK(\"x\")",
            "-1",
            "<b>x</b>",
            "a\u{0}b",
            "a\nb",
            "a;b",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check(&"a".repeat(100)).is_ok());
        assert!(check(&"a".repeat(101)).is_err());
    }
}
