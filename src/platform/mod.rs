//! The payment platform: its wire format (`types`, `dispute_wire` for disputes and
//! `agreement_wire` for recurring agreements), webhook
//! signatures (`signature`), the client paydesk uses to call it (`client`), and a sandbox
//! platform that speaks the same API over real HTTP (`sandbox`), for demos and tests; `hosts` is
//! the allow-list of platform hosts and `cache` keeps one client per service.

pub mod agreement_wire;
pub mod cache;
pub mod client;
pub mod dispute_wire;
pub mod hosts;
pub mod sandbox;
pub mod signature;
pub mod types;
