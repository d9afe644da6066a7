//! Outbound events to a service's CRM or case system, as Standard Webhooks: what they are
//! (`event_type`), writing them (`emit`), sending them (`deliver`) and their endpoints
//! (`endpoints`). This front door re-exports what callers use.

mod deliver;
mod emit;
mod endpoints;
mod event_type;

pub use super::error::EventsError;
pub use deliver::{
    excerpt, handlers, judge, retry_after, DeliveryJob, Sent, DELIVERY, EXCERPT_CHARS, SEND_TIMEOUT,
};
pub use emit::{announces, case_linked, emit, payments_changed, refund_changed, PaymentChange};
pub use endpoints::{
    check, create, replay, replay_failed, rotate, set_enabled, update, EndpointInput, Problem,
    ReplayRefusal, MAX_DESCRIPTION,
};
pub use event_type::{types_of, EventType};
