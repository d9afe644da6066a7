//! The event types paydesk tells a service's systems about, as endpoints subscribe to them.
//! Shared by emitting (which endpoints hear an event) and endpoint management (which types
//! an endpoint may choose).

use crate::store::events::EndpointRow;

/// What paydesk tells a service's systems about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    PaymentSucceeded,
    PaymentFailed,
    RefundRequested,
    RefundApproved,
    RefundSucceeded,
    RefundFailed,
    CaseLinked,
    DisputeCreated,
    DisputeUpdated,
    AgreementCancelled,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::PaymentSucceeded,
        EventType::PaymentFailed,
        EventType::RefundRequested,
        EventType::RefundApproved,
        EventType::RefundSucceeded,
        EventType::RefundFailed,
        EventType::CaseLinked,
        EventType::DisputeCreated,
        EventType::DisputeUpdated,
        EventType::AgreementCancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventType::PaymentSucceeded => "payment.succeeded",
            EventType::PaymentFailed => "payment.failed",
            EventType::RefundRequested => "refund.requested",
            EventType::RefundApproved => "refund.approved",
            EventType::RefundSucceeded => "refund.succeeded",
            EventType::RefundFailed => "refund.failed",
            EventType::CaseLinked => "case.linked",
            EventType::DisputeCreated => "dispute.created",
            EventType::DisputeUpdated => "dispute.updated",
            EventType::AgreementCancelled => "agreement.cancelled",
        }
    }

    /// What the event means, for the endpoint form.
    pub fn label(self) -> &'static str {
        match self {
            EventType::PaymentSucceeded => "A payment succeeded",
            EventType::PaymentFailed => "A payment failed, was cancelled or ended in error",
            EventType::RefundRequested => "Someone asked for a refund",
            EventType::RefundApproved => "A second person approved a refund",
            EventType::RefundSucceeded => "The platform paid a refund",
            EventType::RefundFailed => "A refund failed",
            EventType::CaseLinked => "A payment was linked to a case",
            EventType::DisputeCreated => "A payer's bank disputed a payment",
            EventType::DisputeUpdated => "A dispute went under review, was won or was lost",
            EventType::AgreementCancelled => "A recurring agreement was cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// The event types an endpoint is subscribed to, as stored (space-separated).
pub fn types_of(endpoint: &EndpointRow) -> Vec<EventType> {
    endpoint
        .event_types
        .split_whitespace()
        .filter_map(EventType::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.name()), Some(t));
        }
        assert_eq!(EventType::parse("refund.rejected"), None);
    }
}
