//! Integrations with other systems: links into case-management and CRM consoles.

pub mod deep_link;
