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
    let (platform, requests, (status, available)) = tokio::try_join!(
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
    Ok(RefundFigures {
        refunded,
        pending: at_platform + held,
        available,
        status,
    })
}
