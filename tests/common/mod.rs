//! Shared test harness, by topic: a database per test (`db`), the app on it (`app`), pages
//! and forms (`forms`), staff and signing in (`staff`), the binary as a process
//! (`process`), real peers (`peers`), stored journeys (`journeys`), the sandbox platform as
//! a process (`sandbox`) and a refund world on it (`refund_world`). The same tests run on
//! SQLite and PostgreSQL.
#![allow(dead_code)]

mod app;
mod db;
mod forms;
mod journeys;
mod peers;
mod process;
mod refund_world;
pub mod sandbox;
mod staff;

// Each test binary (integration, browser) uses a part of what is re-exported here; what
// one leaves unused is not a defect.
#[allow(unused_imports)]
pub use app::*;
#[allow(unused_imports)]
pub use db::*;
#[allow(unused_imports)]
pub use forms::*;
#[allow(unused_imports)]
pub use journeys::*;
#[allow(unused_imports)]
pub use peers::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use refund_world::*;
#[allow(unused_imports)]
pub use staff::*;
