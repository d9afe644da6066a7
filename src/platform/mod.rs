//! The payment platform: its wire format (`types`, and `dispute_wire` for disputes), webhook
//! signatures (`signature`), the client paydesk uses to call it (`client`), and a sandbox
//! platform that speaks the same API over real HTTP (`sandbox`), for demos and tests; `hosts` is
//! the allow-list of platform hosts and `cache` keeps one client per service.

pub mod cache;
pub mod client;
pub mod dispute_wire;
pub mod hosts;
pub mod sandbox;
pub mod signature;
pub mod types;
