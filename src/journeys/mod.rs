//! Payment journeys: paydesk's own record of every platform payment, kept in step by webhooks,
//! a recurring backfill and on-demand refreshes, with a timeline of what happened to each.

pub mod actions;
pub mod cancel;
pub mod case;
pub mod record;
pub mod sync;
pub mod timeline;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use crate::jobs::JobHandler;
use crate::schedule::Periodic;

/// This capability's job handlers.
pub fn handlers() -> Vec<Arc<dyn JobHandler>> {
    sync::handlers()
}

/// This capability's periodic work: queue each connected service's sync when it is due, and
/// refresh the search planner's statistics hourly (SQLite keeps none of its own; the first
/// waits a few minutes so that a first import has rows to describe).
pub fn periodic() -> Vec<Periodic> {
    vec![
        Periodic::each_tick("service syncs", |db, now| async move {
            sync::schedule(&db, now).await.map(|_| ())
        }),
        Periodic::each_tick("search statistics", |db, _| async move {
            crate::store::search::refresh_statistics(&db).await
        })
        .every(Duration::from_secs(3600), Duration::from_secs(300)),
    ]
}
