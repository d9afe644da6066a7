//! What a capability works with: the database, the clock, the configuration, the mail
//! templates and the metrics. Cheap to clone (handles and `Arc`s); the web's `AppState`
//! wraps one and hands it down, so no capability needs the whole application state.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::mail;
use crate::metrics::Metrics;
use crate::store::Db;

/// The shared things a capability call may use.
#[derive(Clone)]
pub struct Context {
    pub db: Db,
    pub clock: SharedClock,
    pub config: Arc<Config>,
    pub mail: mail::Templates,
    pub metrics: Arc<Metrics>,
}
