//! Disputes on the sandbox: a payer's bank challenging a successful payment. A dispute is fixed
//! when it is raised (its times, reason and outcome) and its status follows from sandbox time:
//! `needs_response` until the evidence is due, `under_review` until it is decided, then `won`
//! or `lost`. So moving the sandbox clock moves disputes on. The platform sends no webhooks for
//! disputes (its webhook event types have none); a lost one shows its net amount and, once
//! taken from a payout, its settlement date.

use rand::rngs::StdRng;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use time::Date;

use super::primitives::{date_of, get_link, to_time, Id, Millis, DAY, HOUR};
use crate::platform::dispute_wire::{Dispute, DisputeLinks, DisputeStatus};
use crate::platform::types::{format_date, wire_time, RefundSettlement};

/// The reasons the platform gives, in its words.
pub const REASONS: [&str; 9] = [
    "credit_not_processed",
    "duplicate",
    "fraudulent",
    "general",
    "product_not_received",
    "product_unacceptable",
    "unrecognised",
    "subscription_cancelled",
    "other",
];

/// The provider's fee for a dispute, in pence (Stripe charges £20 in the UK).
pub const FEE: i64 = 2_000;
/// Evidence is due this long after the dispute is raised.
pub const EVIDENCE_DAYS: i64 = 10;
/// The bank decides this long after the evidence was due.
pub const REVIEW: Millis = 20 * DAY;
/// A lost dispute is taken from a payout this many days after it was decided.
pub const SETTLE_DAYS: i64 = 2;
/// Seeded disputes were raised within this long before the seed's anchor.
const SEED_WINDOW: Millis = 45 * DAY;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeRec {
    pub id: Id,
    pub created: Millis,
    pub evidence_due: Millis,
    pub decided_at: Millis,
    /// How the bank decides, once it does.
    pub lost: bool,
    /// An index into `REASONS`.
    pub reason: u8,
    pub fee: i64,
}

impl DisputeRec {
    /// A dispute raised at `at`: evidence due `evidence_days` later, decided `REVIEW` after.
    pub fn raised(id: Id, at: Millis, reason: u8, lost: bool, evidence_days: i64) -> DisputeRec {
        let evidence_due = at + evidence_days.clamp(0, 60) * DAY;
        DisputeRec {
            id,
            created: at,
            evidence_due,
            decided_at: evidence_due + REVIEW,
            lost,
            reason: reason.min(REASONS.len() as u8 - 1),
            fee: FEE,
        }
    }

    pub fn status_at(&self, now: Millis) -> DisputeStatus {
        if now < self.evidence_due {
            DisputeStatus::NeedsResponse
        } else if now < self.decided_at {
            DisputeStatus::UnderReview
        } else if self.lost {
            DisputeStatus::Lost
        } else {
            DisputeStatus::Won
        }
    }

    pub fn reason(&self) -> &'static str {
        REASONS
            .get(usize::from(self.reason))
            .copied()
            .unwrap_or("other")
    }

    /// When a lost dispute was taken from a payout, once that is in the past of `now`.
    pub fn settled_date(&self, now: Millis) -> Option<Date> {
        if self.status_at(now) != DisputeStatus::Lost {
            return None;
        }
        let d = date_of(self.decided_at).checked_add(time::Duration::days(SETTLE_DAYS))?;
        (d <= date_of(now)).then_some(d)
    }

    /// As the dispute search shows it: the dispute of payment `payment_id` of `amount`.
    pub fn wire(&self, payment_id: &Id, amount: i64, base: &str, now: Millis) -> Dispute {
        let status = self.status_at(now);
        let lost = status == DisputeStatus::Lost;
        Dispute {
            dispute_id: self.id.to_string(),
            payment_id: payment_id.to_string(),
            amount,
            fee: Some(self.fee),
            // What the provider takes from the next payout: the amount and the fee.
            net_amount: lost.then(|| -(amount + self.fee)),
            created_date: to_time(self.created),
            evidence_due_date: Some(wire_time::format(to_time(self.evidence_due))),
            reason: Some(self.reason().to_string()),
            status,
            settlement_summary: lost.then(|| RefundSettlement {
                settled_date: self.settled_date(now).map(format_date),
            }),
            links: Some(DisputeLinks {
                payment: Some(get_link(format!("{base}/v1/payments/{payment_id}"))),
            }),
        }
    }
}

/// The dispute of a seeded disputed payment (captured at `captured`), from its id alone (a hash): seeding draws
/// nothing more from the payment's random stream, so the payments stay as they were and the
/// same seed gives the same disputes. Raised within `SEED_WINDOW` before `anchor` (at least an
/// hour after capture), so a seed holds disputes at every stage; about half are lost.
pub fn seeded(payment_id: &Id, captured: Option<Millis>, anchor: Millis) -> Option<DisputeRec> {
    let captured = captured?;
    let hash = Sha256::digest(format!("dispute:{payment_id}").as_bytes());
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&hash[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let window = (anchor - captured - HOUR).clamp(0, SEED_WINDOW);
    let back = if window > 0 {
        (word(0) % window as u64) as Millis
    } else {
        0
    };
    let created = (anchor - back).max(captured);
    let id = Id::random(&mut StdRng::seed_from_u64(word(8)));
    let reason = (word(16) % REASONS.len() as u64) as u8;
    let lost = word(24) % 2 == 0;
    Some(DisputeRec::raised(id, created, reason, lost, EVIDENCE_DAYS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dispute_moves_on_with_time_and_shows_money_only_when_lost() {
        let id = Id::random(&mut rand::thread_rng());
        let t0: Millis = 1_767_225_600_000;
        let d = DisputeRec::raised(id, t0, 2, true, EVIDENCE_DAYS);
        assert_eq!(d.status_at(t0), DisputeStatus::NeedsResponse);
        assert_eq!(
            d.status_at(t0 + EVIDENCE_DAYS * DAY),
            DisputeStatus::UnderReview
        );
        assert_eq!(d.status_at(d.decided_at), DisputeStatus::Lost);
        assert_eq!(d.reason(), "fraudulent");
        assert_eq!(d.settled_date(d.decided_at), None);
        assert!(d.settled_date(d.decided_at + 3 * DAY).is_some());
        let won = DisputeRec {
            lost: false,
            ..d.clone()
        };
        assert_eq!(won.status_at(d.decided_at + DAY), DisputeStatus::Won);
        assert_eq!(won.settled_date(d.decided_at + 9 * DAY), None);
    }
}
