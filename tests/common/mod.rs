//! Shared test harness by topic: database (`db`), app (`app`), pages and forms (`forms`), staff
//! (`staff`), the binary (`process`), real peers (`peers`), journeys, the sandbox process and a
//! refund world on it. The same tests run on SQLite and PostgreSQL.
#![allow(dead_code)]

mod api;
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
pub use api::*;
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
