//! What a change to a refund request leaves behind, written once: an entry in the journey's
//! timeline (what a person did, or what paydesk did by itself) and the matching audit entry,
//! both in the caller's transaction so neither can exist without the other.

use serde_json::Value;
use time::OffsetDateTime;

use super::RefundError;
use crate::audit::{self, Actor, AuditEvent};
use crate::store::journeys::{self as journey_store, SystemEvent};
use crate::store::{self, Tx};

/// Who made the change: a person (with where they were), or paydesk's own refund job.
pub(crate) enum By {
    Person { actor: Actor, ip: Option<String> },
    Paydesk(SystemEvent),
}

/// One change as the timeline and the audit log keep it.
pub(crate) struct Note<'a> {
    pub journey_id: i64,
    pub payment_id: &'a str,
    /// The audit action: `refund_requested`, `refund_approved`, ...
    pub action: &'static str,
    /// The timeline's words.
    pub message: String,
    /// Shared by both: what the change was.
    pub detail: Value,
    /// Audited as a failure (the refund did not happen).
    pub failed: bool,
}

/// Write `note`'s timeline entry and audit entry in `tx`.
pub(crate) async fn write(
    tx: &mut Tx,
    now: OffsetDateTime,
    by: By,
    note: Note<'_>,
) -> Result<(), RefundError> {
    let at = store::to_micros(now);
    let target = format!("payment:{}", note.payment_id);
    let event = match by {
        By::Person { actor, ip } => {
            journey_store::record_staff_event(tx, note.journey_id, &note.message, &note.detail, at)
                .await?;
            AuditEvent::new(actor, note.action, target).from_ip(ip)
        }
        By::Paydesk(what) => {
            journey_store::record_system_event(
                tx,
                note.journey_id,
                what,
                &note.message,
                &note.detail,
                at,
            )
            .await?;
            AuditEvent::new(Actor::System, note.action, target)
        }
    };
    let event = if note.failed { event.failed() } else { event };
    // A comment may name the payer: the chained entry holds its digest, the text sits beside
    // the chain where erasure and retention can remove it (`audit::personal`).
    let comment = note.detail.get("comment").and_then(|c| c.as_str());
    let event = match comment.filter(|c| !c.is_empty()) {
        Some(c) => event.personal("comment", c),
        None => event,
    };
    audit::append(tx, now, event.details(note.detail)).await?;
    Ok(())
}
