//! The payment platform: its wire format (`types`), webhook signatures (`signature`), the
//! client paydesk uses to call it (`client`), and a sandbox platform that speaks the same API
//! over real HTTP (`sandbox`), for demos and tests.

pub mod client;
pub mod sandbox;
pub mod signature;
pub mod types;
