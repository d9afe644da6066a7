//! The rules of disputes, pure: how a platform dispute is stored, that a dispute never moves
//! back, and how long is left to answer one.

use crate::integrations::events::EventType;
use crate::platform::dispute_wire::{Dispute, DisputeStatus};
use crate::platform::types::{parse_date, wire_time};
use crate::store::disputes::DisputeRecord;
use crate::store::to_micros;

/// Whether a dispute stored as `from` may become `to`: forwards only (needs_response →
/// under_review → won or lost), and a decided dispute never changes. The store's upsert says
/// the same in SQL.
pub fn may_move(from: DisputeStatus, to: DisputeStatus) -> bool {
    to.rank() > from.rank() || to == from
}

/// A platform dispute as paydesk stores it.
pub fn record_of(d: &Dispute) -> DisputeRecord {
    DisputeRecord {
        dispute_id: d.dispute_id.clone(),
        payment_id: d.payment_id.clone(),
        amount: d.amount,
        fee: d.fee,
        net_amount: d.net_amount,
        reason: d.reason.clone().filter(|r| !r.trim().is_empty()),
        status: d.status.as_str(),
        status_rank: d.status.rank(),
        evidence_due_at: d
            .evidence_due_date
            .as_deref()
            .and_then(wire_time::parse)
            .map(to_micros),
        created_at: to_micros(d.created_date),
        settled_date: d
            .settlement_summary
            .as_ref()
            .and_then(|s| s.settled_date.as_deref())
            .and_then(parse_date)
            .map(crate::platform::types::format_date),
    }
}

/// Which event a stored dispute announces: `dispute.created` the first time paydesk sees it,
/// if it is still open or was raised within a day of `now` (a first backfill does not replay
/// decided history); `dispute.updated` when its status moved on. Times in UTC microseconds.
pub fn announces(
    before: Option<&str>,
    now_status: &str,
    created_at: i64,
    now: i64,
) -> Option<EventType> {
    const DAY: i64 = 86_400_000_000;
    match before {
        None if DisputeStatus::parse(now_status).is_some_and(|s| s.rank() < 2)
            || now - created_at <= DAY =>
        {
            Some(EventType::DisputeCreated)
        }
        None => None,
        Some(b) if b != now_status => Some(EventType::DisputeUpdated),
        Some(_) => None,
    }
}

/// Whole days left to send evidence, from `now` to `due` (UTC microseconds): 0 on the day it
/// is due, negative once it has passed.
pub fn days_left(due: i64, now: i64) -> i64 {
    const DAY: i64 = 86_400_000_000;
    (due - now).div_euclid(DAY)
}

/// How a status is put to people (GOV.UK Pay's transaction filter names).
pub fn status_label(status: &str) -> &'static str {
    match status {
        "needs_response" => "Needs response",
        "under_review" => "Under review",
        "won" => "Won",
        "lost" => "Lost",
        _ => "Unknown",
    }
}

/// How a platform reason is put to people.
pub fn reason_label(reason: &str) -> String {
    match reason {
        "credit_not_processed" => "Credit not processed".into(),
        "duplicate" => "Duplicate".into(),
        "fraudulent" => "Fraudulent".into(),
        "general" => "General".into(),
        "product_not_received" => "Product not received".into(),
        "product_unacceptable" => "Product unacceptable".into(),
        "unrecognised" => "Unrecognised".into(),
        "subscription_cancelled" => "Subscription cancelled".into(),
        "other" => "Other".into(),
        other => other.replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DisputeStatus::*;

    #[test]
    fn a_dispute_only_moves_forwards_and_a_decided_one_stays() {
        assert!(may_move(NeedsResponse, UnderReview));
        assert!(may_move(NeedsResponse, Lost));
        assert!(may_move(UnderReview, Won));
        assert!(may_move(Won, Won));
        assert!(!may_move(UnderReview, NeedsResponse));
        assert!(!may_move(Won, UnderReview));
        assert!(!may_move(Lost, NeedsResponse));
        assert!(!may_move(Won, Lost));
        assert!(!may_move(Lost, Won));
    }

    #[test]
    fn a_platform_dispute_is_stored_in_microseconds_and_days_left_count_down() {
        let d: Dispute = serde_json::from_value(serde_json::json!({
            "dispute_id": "d1", "payment_id": "p1", "amount": 1200, "fee": 2000,
            "net_amount": -3200, "created_date": "2022-07-28T16:43:00.000Z",
            "evidence_due_date": "2022-08-07T16:43:00.000Z", "reason": "fraudulent",
            "status": "lost", "settlement_summary": {"settled_date": "2022-08-30"}
        }))
        .unwrap();
        let r = record_of(&d);
        assert_eq!((r.status, r.status_rank), ("lost", 2));
        assert_eq!(r.settled_date.as_deref(), Some("2022-08-30"));
        let due = r.evidence_due_at.unwrap();
        assert_eq!(due - r.created_at, 10 * 86_400_000_000);
        assert_eq!(days_left(due, r.created_at), 10);
        assert_eq!(days_left(due, due - 1), 0);
        assert_eq!(days_left(due, due + 1), -1);
        assert_eq!(reason_label("product_not_received"), "Product not received");
    }

    #[test]
    fn a_dispute_is_announced_when_first_seen_open_or_recent_and_when_it_moves() {
        let day = 86_400_000_000;
        let now = 100 * day;
        assert_eq!(
            announces(None, "needs_response", 0, now),
            Some(EventType::DisputeCreated)
        );
        assert_eq!(
            announces(None, "lost", now - day / 2, now),
            Some(EventType::DisputeCreated)
        );
        assert_eq!(announces(None, "lost", now - 30 * day, now), None);
        assert_eq!(
            announces(Some("needs_response"), "under_review", 0, now),
            Some(EventType::DisputeUpdated)
        );
        assert_eq!(
            announces(Some("under_review"), "under_review", 0, now),
            None
        );
    }
}
