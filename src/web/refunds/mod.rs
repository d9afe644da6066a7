//! Refund pages. Asking for a refund from a payment's page: the form
//! (`/payments/<id>/refund`), "Check your answers", and the confirmation, which asks for the
//! second factor again when the last one is more than 5 minutes old. Approving: the queue of
//! requests awaiting a decision (`/refunds`) and a request's review page with its Approve and
//! Reject forms. Bulk refunds: a file uploaded, its dry run, its approval and its progress
//! (`/refunds/bulk`). The rules and every change live in `crate::refunds`; this module only reads
//! forms, shows pages and says what happened.

mod ask;
mod bulk;
mod decide;
mod failed;
mod journey;
mod list;
mod shared;

pub use journey::{journey_notice, journey_section};

use rocket::Route;

pub fn routes() -> Vec<Route> {
    rocket::routes![
        ask::form,
        ask::answers,
        ask::check,
        ask::confirm,
        decide::queue,
        failed::failed_page,
        list::requests,
        decide::review,
        decide::approve,
        decide::reject,
        bulk::upload_form,
        bulk::step_up,
        bulk::upload,
        bulk::batch,
        bulk::confirm,
        bulk::approve,
        bulk::pause,
        bulk::resume,
        bulk::cancel,
        bulk::progress,
        bulk::results
    ]
}
