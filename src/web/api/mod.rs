//! The CRM / case API under `/api/v1`: JSON in and out, `Authorization: Bearer <token>`
//! (`crate::integrations::api_tokens`), every error an RFC 9457 problem document
//! (`application/problem+json`). A token sees only its own service: another service's payment
//! or refund answers 404. Each call checks its scope (403), and each token has a rate limit
//! (429 with `Retry-After`). `POST …/refunds`, `POST …/agreements/{id}/cancel`,
//! `POST /refund-batches` and `POST /refund-batches/{id}/submit` honour `Idempotency-Key`
//! (`crate::integrations::idempotency`). The OpenAPI document (`src/web/openapi.json`) and the
//! page about the API (`/api/docs`) describe exactly this.

mod agreements;
mod batches;
mod body;
mod caller;
mod disputes;
mod idempotent;
mod paging;
mod payments;
mod problem;
mod refunds;
mod shapes;

use rocket::http::Status;
use rocket::request::Request;
use rocket::{Catcher, Route};

pub use caller::{ApiCaller, ApiLimiter, IdempotencyKey};
pub use problem::{ApiJson, Problem};

use caller::{turned, Turned};

/// The OpenAPI document, as served.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Where the API is mounted.
pub const BASE: &str = "/api/v1";

/// The largest JSON body accepted.
const BODY_LIMIT_KIB: u64 = 16;

pub fn routes() -> Vec<Route> {
    rocket::routes![
        payments::list_payments,
        payments::get_payment,
        payments::link_case,
        refunds::request_refund,
        refunds::get_refund,
        disputes::list_disputes,
        disputes::get_dispute,
        agreements::list_agreements,
        agreements::get_agreement,
        agreements::cancel_agreement,
        batches::create_batch,
        batches::get_batch,
        batches::submit_batch,
        openapi
    ]
}

pub fn catchers() -> Vec<Catcher> {
    rocket::catchers![api_default]
}

#[rocket::catch(default)]
fn api_default(status: Status, req: &Request<'_>) -> Problem {
    match (status.code, turned(req)) {
        (401, Turned::BadToken(refused)) => {
            let said = refused.said();
            Problem::status(Status::Unauthorized, format!("{said}. Ask your service's administrator for a new one"))
                .header(
                    "WWW-Authenticate",
                    format!("Bearer realm=\"paydesk\", error=\"invalid_token\", error_description=\"{said}\""),
                )
        }
        (401, _) => Problem::status(
            Status::Unauthorized,
            "Send an API token in the Authorization header: Authorization: Bearer pdk_…",
        )
        .header("WWW-Authenticate", "Bearer realm=\"paydesk\""),
        (429, Turned::Limited(wait)) => Problem::status(
            Status::TooManyRequests,
            format!("This token has made too many requests. Wait {wait} seconds, then try again"),
        )
        .header("Retry-After", wait.to_string()),
        (404, _) => Problem::not_found(),
        (400, _) => Problem::status(Status::BadRequest, "The request could not be read"),
        (413, _) => Problem::status(
            Status::PayloadTooLarge,
            format!("The body must be {BODY_LIMIT_KIB} KiB or less"),
        ),
        (code, _) if code >= 500 => Problem::status(
            status,
            "Something went wrong in paydesk. Nothing was half-applied; try again later",
        ),
        _ => Problem::status(status, "The request could not be answered"),
    }
}

// ---- the document ---------------------------------------------------------------------------

#[rocket::get("/openapi.json")]
fn openapi() -> ApiJson {
    ApiJson {
        status: Status::Ok,
        body: OPENAPI.to_string(),
        location: None,
        replayed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_document_is_json() {
        let v: Value = serde_json::from_str(OPENAPI).unwrap_or(Value::Null);
        assert_eq!(v["openapi"].as_str().map(|s| &s[..2]), Some("3."));
    }
}
