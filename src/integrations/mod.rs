//! Integrations with other systems: API tokens for CRM and case-management systems, and the
//! answers kept for their `Idempotency-Key` retries.

pub mod api_tokens;
pub mod idempotency;
