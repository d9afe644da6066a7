//! Integrations with a service's own systems (CRM, case management): links into their
//! consoles, and signed events sent to them.

pub mod deep_link;
pub mod events;
pub mod signature;
pub mod ssrf;
