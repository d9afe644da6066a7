//! A payment's refund figures as every page shows them: refunded, pending (at the platform, or
//! asked for in paydesk and not yet sent) and still available, with the platform's refund
//! status. One computation, so the payment page and the refund pages cannot disagree.

use crate::store::{journeys as journey_store, refunds as refund_store, Db};

use super::{available_now, RefundError};

/// What has happened to a payment's money so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundFigures {
    pub refunded: i64,
    pub pending: i64,
    pub available: i64,
    pub status: Option<String>,
    /// Of `pending`: asked for in paydesk and waiting for a second person's approval.
    pub awaiting_approval: i64,
    /// The payer has disputed the payment: nothing is available, whatever the platform said
    /// before the dispute.
    pub disputed: bool,
}

impl RefundFigures {
    /// Why nothing can be refunded now, in words for the payment's page; None when something
    /// can. `payment_status` is the journey's own status.
    pub fn why_none(&self, payment_status: &str) -> Option<&'static str> {
        if self.available > 0 {
            return None;
        }
        Some(match self.status.as_deref() {
            _ if self.disputed => {
                "This payment is disputed: the payer's bank has challenged it, and a disputed payment cannot be refunded. The dispute is shown on this page."
            }
            _ if payment_status != "success" => {
                "Only a successful payment can be refunded: this one did not take any money."
            }
            _ if self.awaiting_approval > 0 => {
                "Nothing more can be refunded now: a refund request is awaiting approval by someone with the finance role."
            }
            _ if self.pending > 0 => {
                "Nothing more can be refunded now: a refund is being sent to the platform or is waiting for it."
            }
            Some("full") => "This payment has been refunded in full.",
            Some("pending") => {
                "The platform cannot refund this payment yet: it has not been captured. Try again later."
            }
            Some("unavailable") => {
                "The platform does not allow this payment to be refunded (for example, it is disputed)."
            }
            _ if self.refunded > 0 => "This payment has been refunded in full.",
            _ => {
                "The platform has not said whether this payment can be refunded. Refresh it from the platform to find out."
            }
        })
    }
}

/// Request states whose amount is held back from what is still available.
pub fn holds_money(state: &str) -> bool {
    matches!(state, "awaiting_approval" | "approved" | "submitting")
}

/// The figures of one journey (`payment_id` in `service_id`).
pub async fn of_journey(
    db: &Db,
    service_id: i64,
    payment_id: &str,
    journey_id: i64,
) -> Result<RefundFigures, RefundError> {
    let (platform, requests, (status, available), disputed) = tokio::try_join!(
        async {
            journey_store::refunds_of(db, service_id, payment_id)
                .await
                .map_err(RefundError::from)
        },
        async {
            refund_store::for_journey(db, journey_id)
                .await
                .map_err(RefundError::from)
        },
        available_now(db, journey_id),
        async {
            crate::disputes::payment_disputed(db, service_id, payment_id)
                .await
                .map_err(RefundError::from)
        },
    )?;
    let refunded = platform
        .iter()
        .filter(|r| r.status == "success")
        .map(|r| r.amount)
        .sum();
    let at_platform: i64 = platform
        .iter()
        .filter(|r| r.status == "submitted")
        .map(|r| r.amount)
        .sum();
    let held: i64 = requests
        .iter()
        .filter(|r| holds_money(&r.state))
        .map(|r| r.amount)
        .sum();
    let awaiting_approval: i64 = requests
        .iter()
        .filter(|r| r.state == "awaiting_approval")
        .map(|r| r.amount)
        .sum();
    Ok(RefundFigures {
        refunded,
        pending: at_platform + held,
        available: if disputed { 0 } else { available },
        status,
        awaiting_approval,
        disputed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(available: i64, pending: i64, awaiting: i64, status: &str) -> RefundFigures {
        RefundFigures {
            refunded: 0,
            pending,
            available,
            status: Some(status.to_string()),
            awaiting_approval: awaiting,
            disputed: false,
        }
    }

    #[test]
    fn the_page_says_why_nothing_can_be_refunded() {
        assert_eq!(figures(100, 0, 0, "available").why_none("success"), None);
        let waiting = figures(0, 38_914, 38_914, "available").why_none("success");
        assert!(
            waiting.unwrap().contains("awaiting approval"),
            "{waiting:?}"
        );
        let sending = figures(0, 500, 0, "available").why_none("success");
        assert!(sending.unwrap().contains("being sent"), "{sending:?}");
        assert!(figures(0, 0, 0, "full")
            .why_none("success")
            .unwrap()
            .contains("in full"));
        assert!(figures(0, 0, 0, "pending")
            .why_none("success")
            .unwrap()
            .contains("captured"));
        assert!(figures(0, 0, 0, "unavailable")
            .why_none("success")
            .unwrap()
            .contains("disputed"));
        let disputed = RefundFigures {
            disputed: true,
            ..figures(0, 0, 0, "available")
        };
        assert!(disputed
            .why_none("success")
            .unwrap()
            .contains("disputed payment cannot be refunded"));
        assert!(figures(0, 0, 0, "unavailable")
            .why_none("failed")
            .unwrap()
            .contains("successful"));
    }
}
