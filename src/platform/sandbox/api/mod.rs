//! The platform's v1 API and OAuth2 token endpoint as the sandbox serves them: callers are
//! authenticated and pass their account's faults (`caller`), then are answered in the
//! platform's shapes and codes (`reply`, `bodies`), per resource (`payments`, `refunds`, `disputes`,
//! `agreements`, `oauth`).

mod agreements;
mod bodies;
mod caller;
mod disputes;
mod oauth;
mod payments;
mod refunds;
mod reply;

use rocket::{catchers, routes, Catcher, Route};

pub use bodies::parse_create;
pub use caller::Caller;
pub use oauth::AuthorizationHeader;
pub use reply::Reply;

pub fn routes() -> Vec<Route> {
    routes![
        payments::create_payment,
        payments::search_payments,
        payments::get_payment,
        payments::get_events,
        payments::cancel_payment,
        refunds::list_refunds,
        refunds::create_refund,
        refunds::get_refund,
        refunds::search_refunds,
        disputes::search_disputes,
        agreements::create_agreement,
        agreements::search_agreements,
        agreements::get_agreement,
        agreements::cancel_agreement,
        oauth::oauth_token,
    ]
}

pub fn catchers() -> Vec<Catcher> {
    catchers![reply::fallback]
}
