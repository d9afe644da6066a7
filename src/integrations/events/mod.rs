//! Outbound events to a service's CRM or case-management system, as Standard Webhooks: what
//! an event is (`event_type`), writing one with the change that causes it (`emit`), sending
//! it (`deliver`) and the endpoints that receive it (`endpoints`). This front door names
//! what callers use, so they need not know which part holds it.

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
