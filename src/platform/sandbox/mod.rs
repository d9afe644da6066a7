//! The sandbox payment platform: a real HTTP server speaking the GOV.UK Pay v1 API (`api`),
//! with a payer's card page (`card_page`), seeded accounts (`seed`, `data`, `account`),
//! disputes (`disputes`), recurring agreements (`agreements`), webhooks (`webhooks`), fault injection (`faults`), admin endpoints
//! (`admin`) and an optional data file (`persist`). `paydesk sandbox` runs it as a command
//! (`cli`); `paydesk demo` and the benchmarks start it in-process with [`start`] (`server`), as `options` say;
//! the handlers share one state (`shared`).
//!
//! Sandbox time is real time plus an offset that `POST /sandbox/clock` moves forwards, so
//! expiry (90 minutes) and refund settlement can be tested without waiting.

pub mod account;
pub mod admin;
pub mod agreements;
pub mod api;
pub mod card_page;
pub mod cli;
pub mod data;
pub mod disputes;
pub mod faults;
mod options;
pub mod persist;
pub mod primitives;
pub mod search;
pub mod seed;
mod server;
mod shared;
pub mod webhooks;

pub use options::{default_accounts, validate_spec, AccountSpec, SandboxError, SandboxOptions};
pub use server::{start, RunningSandbox};
