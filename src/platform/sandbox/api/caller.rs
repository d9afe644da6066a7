//! Who calls the v1 API: the account its bearer token names (an API key or an OAuth access
//! token), admitted only past that account's faults (latency, rate limit, server errors).

use std::sync::Arc;
use std::time::Instant;

use rocket::data::{Data, ToByteUnit};
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};

use super::reply::Reply;
use crate::platform::sandbox::faults::Verdict;
use crate::platform::sandbox::shared::{Entry, Shared};

/// Who is calling and where from: resolved for every v1 request, never failing, so each
/// handler decides its own answer (401 included) in the platform's shape.
pub struct Caller {
    pub(super) shared: Arc<Shared>,
    entry: Option<Arc<Entry>>,
    /// `scheme://host` as the caller addressed the sandbox, for absolute links.
    pub(super) origin: String,
    is_post: bool,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Caller {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let Some(shared) = req.rocket().state::<Arc<Shared>>().cloned() else {
            return Outcome::Forward(Status::InternalServerError);
        };
        let bearer = req
            .headers()
            .get_one("Authorization")
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty());
        let entry = bearer.and_then(|t| shared.entry_by_key(t));
        let origin = req
            .host()
            .map(|h| format!("http://{h}"))
            .unwrap_or_else(|| shared.base_url().to_string());
        Outcome::Success(Caller {
            shared,
            entry,
            origin,
            is_post: req.method() == rocket::http::Method::Post,
        })
    }
}

impl Caller {
    /// Authenticate and apply the account's faults (latency first, on every answer).
    pub(super) async fn admit(&self) -> Result<Arc<Entry>, Reply> {
        let Some(entry) = self.entry.clone() else {
            return Err(Reply::unauthorized());
        };
        let (latency, verdict) = {
            let mut faults = entry.faults();
            (faults.latency(), faults.admit(self.is_post, Instant::now()))
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match verdict {
            Verdict::Proceed => Ok(entry),
            Verdict::TooManyRequests { retry_after } => {
                Err(
                    Reply::error(Status::TooManyRequests, "P0900", "Too many requests")
                        .header("Retry-After", retry_after.to_string()),
                )
            }
            Verdict::ServerError => Err(Reply::error(
                Status::InternalServerError,
                "P0999",
                "Downstream system error",
            )),
        }
    }
}

macro_rules! admit {
    ($caller:expr) => {
        match $caller.admit().await {
            Ok(entry) => entry,
            Err(reply) => return reply,
        }
    };
}

pub(super) use admit;

pub(super) async fn read_body(data: Data<'_>) -> Option<Vec<u8>> {
    let capped = data.open(1.mebibytes()).into_bytes().await.ok()?;
    capped.is_complete().then(|| capped.into_inner())
}
