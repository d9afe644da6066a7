//! Integrations with a service's own systems (CRM, case management): links into their
//! consoles, signed events sent to them, and the API tokens they call paydesk with (with the
//! answers kept for their `Idempotency-Key` retries).

pub mod api_tokens;
pub mod deep_link;
pub mod error;
pub mod event_owner;
pub mod events;
pub mod idempotency;
pub mod signature;
pub mod ssrf;
