//! Payment journeys: paydesk's own record of every platform payment, kept in step by webhooks,
//! a recurring backfill and on-demand refreshes, with a timeline of what happened to each.

pub mod cancel;
pub mod case;
pub mod record;
pub mod sync;
pub mod timeline;
pub mod webhooks;

/// Register this capability's job kinds.
pub fn register_jobs(registry: &mut crate::jobs::Registry) {
    for handler in sync::handlers() {
        registry.register(handler);
    }
}
