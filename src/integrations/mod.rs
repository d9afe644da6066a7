//! Integrations with a service's own systems (CRM, case management).

pub mod events;
pub mod signature;
pub mod ssrf;
