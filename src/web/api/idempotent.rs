//! `Idempotency-Key` handling shared by the calls that make something (a refund request, an
//! agreement's cancellation): the key is checked, a repeat of an answered request gets its
//! first answer again, a key reused for a different request or still being answered is
//! refused, and only answers that made something are kept (a refused request frees its key).

use rocket::http::Status;
use serde_json::Value;
use time::OffsetDateTime;

use super::caller::IdempotencyKey;
use super::problem::{ApiJson, ApiResult, Problem};
use crate::integrations::idempotency::{self, Begun};
use crate::AppState;

/// The key sent, if any, once checked (a malformed one answers 400).
// The error is the answer itself, made once per request: its size does not matter.
#[allow(clippy::result_large_err)]
pub(super) fn checked(key: IdempotencyKey) -> Result<Option<String>, Problem> {
    match key.0 {
        Some(k) if idempotency::valid_key(&k) => Ok(Some(k)),
        Some(_) => Err(Problem::status(
            Status::BadRequest,
            format!(
                "Idempotency-Key must be 1 to {} visible ASCII characters",
                idempotency::KEY_MAX
            ),
        )),
        None => Ok(None),
    }
}

/// Claim `key` for the request whose fingerprint is `print`. None: go on and answer it;
/// Some: the first answer, given again.
pub(super) async fn begin(
    state: &AppState,
    now: OffsetDateTime,
    token_id: i64,
    key: Option<&str>,
    print: &str,
) -> Result<Option<ApiJson>, Problem> {
    let Some(k) = key else {
        return Ok(None);
    };
    match idempotency::begin(&state.db, now, token_id, k, print).await? {
        Begun::Proceed => Ok(None),
        Begun::Replay { status, body } => {
            let location = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["links"]["self"].as_str().map(str::to_string));
            Ok(Some(ApiJson {
                status: Status::from_code(status).unwrap_or(Status::Ok),
                body,
                location: location.filter(|_| status == 201 || status == 202),
                replayed: true,
            }))
        }
        Begun::Mismatch => Err(Problem::typed(
            Status::UnprocessableEntity,
            "problem-idempotency-key-reused",
            "This Idempotency-Key was used for a different request",
            "Each Idempotency-Key may only be sent with one request. Send a new key for a new request",
        )),
        Begun::InFlight => Err(Problem::typed(
            Status::Conflict,
            "problem-idempotency-key-in-flight",
            "A request with this Idempotency-Key is still being answered",
            "Wait a moment, then send the same request again to get its answer",
        )
        .header("Retry-After", "1")),
    }
}

/// Keep the answer that made something under `key`; free the key of a refused request, so that
/// a retry (corrected, or the same) starts afresh.
pub(super) async fn settle(
    state: &AppState,
    token_id: i64,
    key: Option<&str>,
    outcome: &ApiResult,
) -> Result<(), Problem> {
    let Some(k) = key else {
        return Ok(());
    };
    match outcome {
        Ok(answer) => {
            idempotency::keep(&state.db, token_id, k, answer.status.code, &answer.body).await?;
        }
        Err(_) => {
            if let Err(e) = idempotency::release(&state.db, token_id, k).await {
                tracing::error!(error = %e, "could not release an idempotency key");
            }
        }
    }
    Ok(())
}
