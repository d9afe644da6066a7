//! Webhooks in: `POST /hooks/govuk-pay/<service>`. The body is read as raw bytes (the
//! signature covers them exactly) and handed to `journeys::webhooks`. Answers are short JSON
//! so the platform's logs say what happened; a 5xx would only make the platform retry a
//! message that can never succeed, so every refusal is a 4xx.

use rocket::data::{Data, ToByteUnit};
use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::State;

use super::auth::RequestOrigin;
use crate::journeys::webhooks::{self, Received};
use crate::platform::signature;
use crate::AppState;

/// The largest webhook accepted; the platform's messages are a few kilobytes.
const MAX_BODY: u64 = 256 * 1024;

pub struct PaySignature(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for PaySignature {
    type Error = std::convert::Infallible;
    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(PaySignature(
            req.headers().get_one(signature::HEADER).map(str::to_string),
        ))
    }
}

fn answer(status: Status, message: &str) -> (Status, (ContentType, String)) {
    (
        status,
        (
            ContentType::JSON,
            serde_json::json!({ "message": message }).to_string(),
        ),
    )
}

#[rocket::post("/hooks/govuk-pay/<service>", data = "<body>")]
async fn govuk_pay(
    state: &State<AppState>,
    service: &str,
    sig: PaySignature,
    origin: RequestOrigin,
    body: Data<'_>,
) -> (Status, (ContentType, String)) {
    let bytes = match body.open(MAX_BODY.bytes()).into_bytes().await {
        Ok(b) if b.is_complete() => b.into_inner(),
        Ok(_) => return answer(Status::PayloadTooLarge, "the message is too large"),
        Err(_) => return answer(Status::BadRequest, "the message could not be read"),
    };
    match webhooks::receive(
        state,
        &state.refusals,
        service,
        sig.0.as_deref(),
        &bytes,
        origin.0.ip,
    )
    .await
    {
        Ok(Received::Accepted) => answer(Status::Ok, "accepted"),
        Ok(Received::Duplicate) => answer(Status::Ok, "already received"),
        Ok(Received::Ignored) => answer(Status::Ok, "not a payment message; ignored"),
        // An unknown service gets the same answer as a bad signature, so that probing does
        // not reveal which services exist.
        Ok(Received::UnknownService) | Ok(Received::BadSignature) => {
            answer(Status::Unauthorized, "invalid webhook signature")
        }
        Ok(Received::Malformed(why)) => answer(Status::UnprocessableEntity, &why),
        Err(e) => {
            tracing::error!(error = %e, service, "could not store a webhook");
            // The platform retries a 503; the message is not lost.
            answer(Status::ServiceUnavailable, "try again later")
        }
    }
}

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![govuk_pay]
}
