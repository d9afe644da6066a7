//! The platform's v1 API as the sandbox serves it, and its OAuth2 token endpoint. Every v1
//! request is authenticated (an account's API key or an OAuth access token, as a bearer
//! token: `caller`), then passes the account's faults, then is answered in the platform's
//! shapes and error codes (`reply`, `bodies`), per resource (`payments`, `refunds`, `oauth`).

mod bodies;
mod caller;
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
        oauth::oauth_token,
    ]
}

pub fn catchers() -> Vec<Catcher> {
    catchers![reply::fallback]
}
