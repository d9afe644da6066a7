//! Bulk refunds through the API (scope `refunds:bulk`): `POST /refund-batches` sends a file of
//! refunds as the body (`Content-Type: text/csv`, the very file the console's upload takes)
//! and answers its dry run — nothing is sent; `POST /refund-batches/<id>/submit` goes on with
//! it for the file's SHA-256 the caller saw (a batch that needs a second person's approval is
//! refused, in plain words, until someone approves it on the console, which starts the
//! sending); `GET /refund-batches/<id>` follows its progress. Both POSTs honour
//! `Idempotency-Key` as `POST …/refunds` does. A token sees only the batches sent with its own
//! service's tokens; another's answer 404. The rules live in `crate::refunds::bulk`.

use std::collections::BTreeSet;

use rocket::data::{Data, ToByteUnit};
use rocket::http::uri::Origin;
use rocket::http::{ContentType, Status};
use rocket::State;
use serde_json::{json, Value};

use super::body::{json_body, text_field, unknown_fields};
use super::caller::{require, ApiCaller, IdempotencyKey};
use super::idempotent;
use super::problem::{field_error, parameter_error, ApiJson, ApiResult, Problem};
use super::shapes::rfc3339;
use super::BASE;
use crate::audit;
use crate::integrations::api_tokens::Scope;
use crate::integrations::idempotency;
use crate::refunds::bulk::{self, file, ApiOrigin, BatchRefusal, BatchRow};
use crate::refunds::Staff;
use crate::store::refund_batches as batch_store;
use crate::AppState;

/// Rows of a batch in one answer, at most.
const ROWS_MAX: i64 = 10_000;

fn batch_href(id: i64) -> String {
    format!("{BASE}/refund-batches/{id}")
}

/// The person a token acts for, as the batch rules name them.
fn who(caller: &ApiCaller) -> Staff {
    let token = &caller.caller.token;
    Staff {
        id: token.created_by,
        email: String::new(),
        name: format!("API token “{}”", token.name),
        ip: caller.ip.clone(),
    }
}

fn scope(caller: &ApiCaller) -> BTreeSet<i64> {
    BTreeSet::from([caller.service_id()])
}

/// The batch, if this token's service sent it.
async fn batch_of(state: &AppState, caller: &ApiCaller, id: &str) -> Result<BatchRow, Problem> {
    let Some(id) = id.parse::<i64>().ok().filter(|n| *n > 0) else {
        return Err(Problem::not_found());
    };
    batch_store::by_id(&state.db, id)
        .await?
        .filter(|b| b.service_id == Some(caller.service_id()))
        .ok_or_else(Problem::not_found)
}

/// A batch as the API shows it: the dry run's summary, where it stands, its progress and,
/// from row `after` on, up to `limit` rows with their outcomes.
async fn batch_json(
    state: &AppState,
    b: &BatchRow,
    after: i64,
    limit: i64,
) -> Result<Value, Problem> {
    let refused_by: Vec<Value> = batch_store::refusals(&state.db, b.id)
        .await?
        .into_iter()
        .map(|(reason, count)| json!({"reason": reason, "count": count}))
        .collect();
    let progress = bulk::progress(&state.db, b.id).await?;
    let rows = if limit > 0 {
        batch_store::rows(&state.db, b.id, after, limit + 1).await?
    } else {
        Vec::new()
    };
    let more = limit > 0 && rows.len() as i64 > limit;
    let shown: Vec<Value> = rows
        .iter()
        .take(limit.max(0) as usize)
        .map(|r| {
            let input: file::InputRow = serde_json::from_str(&r.input).unwrap_or_default();
            let (outcome, message) = bulk::outcome_of(r);
            json!({
                "line": r.line,
                "payment_id": input.payment_id,
                "reference": input.reference,
                "amount_given": input.amount,
                "amount": r.amount.filter(|_| r.ready),
                "outcome": outcome,
                "message": message,
                "refund_id": r.request_id,
            })
        })
        .collect();
    let mut links = json!({
        "self": batch_href(b.id),
        "submit": format!("{}/submit", batch_href(b.id)),
    });
    // `more` means there are more than `limit` (at least 1) rows: the last shown is there.
    if let Some(last) = rows.get(limit.max(1) as usize - 1).filter(|_| more) {
        links["next_rows"] = json!(format!(
            "{}?after={}&limit={limit}",
            batch_href(b.id),
            last.line
        ));
    }
    Ok(json!({
        "batch_id": b.id,
        "state": b.state,
        "file_sha256": b.file_hash,
        "rows": b.row_count,
        "ready": b.ready_count,
        "refused": b.refused_count,
        "refused_by": refused_by,
        "total_amount": b.total_amount,
        "rows_needing_approval": b.approval_rows,
        "needs_approval": b.needs_approval,
        "leave_out_refused": b.leave_out_refused,
        "uploaded_at": rfc3339(b.uploaded_at),
        "approved_at": b.approved_at.map(rfc3339),
        "cancelled_at": b.cancelled_at.map(rfc3339),
        "progress": progress,
        "row_outcomes": shown,
        "links": links,
    }))
}

/// `POST /refund-batches`: the file is the body. Its dry run is kept as a new batch and
/// answered; nothing is sent.
#[rocket::post("/refund-batches", data = "<data>")]
pub(super) async fn create_batch(
    state: &State<AppState>,
    caller: ApiCaller,
    key: IdempotencyKey,
    content_type: Option<&ContentType>,
    data: Data<'_>,
) -> ApiResult {
    let path = format!("{BASE}/refund-batches");
    require(state, &caller, &path, &[Scope::RefundsBulk]).await?;
    let key = idempotent::checked(key)?;
    if !content_type.is_some_and(|ct| ct.top() == "text" && ct.sub() == "csv") {
        return Err(Problem::status(
            Status::UnsupportedMediaType,
            "Send the file of refunds as the body, with Content-Type: text/csv",
        ));
    }
    let bytes = match data.open((file::MAX_BYTES + 1).bytes()).into_bytes().await {
        Ok(b) if b.is_complete() => b.into_inner(),
        Ok(_) => {
            return Err(Problem::status(
                Status::PayloadTooLarge,
                file::FileProblem::TooBig.message(),
            ))
        }
        Err(_) => {
            return Err(Problem::status(
                Status::BadRequest,
                "The body could not be read",
            ))
        }
    };
    let token_id = caller.caller.token.id;
    let print = idempotency::fingerprint("POST", &path, &bulk::hash_of(&bytes));
    let now = state.clock.now();
    if let Some(replay) = idempotent::begin(state, now, token_id, key.as_deref(), &print).await? {
        return Ok(replay);
    }
    let outcome = make_batch(state, &caller, &bytes).await;
    idempotent::settle(state, token_id, key.as_deref(), &outcome).await?;
    outcome
}

async fn make_batch(state: &AppState, caller: &ApiCaller, bytes: &[u8]) -> ApiResult {
    let origin = ApiOrigin {
        service_id: caller.service_id(),
        token_id: caller.caller.token.id,
    };
    let scope = scope(caller);
    let made = bulk::upload_as(
        &state.db,
        state.clock.now(),
        &who(caller),
        &caller.actor(),
        Some(origin),
        Some(&scope),
        "api.csv",
        bytes,
    )
    .await?;
    match made {
        Ok(id) => {
            let b = batch_store::by_id(&state.db, id)
                .await?
                .ok_or_else(|| Problem::internal("a batch just made cannot be read"))?;
            let body = batch_json(state, &b, 0, ROWS_MAX).await?;
            Ok(ApiJson {
                status: Status::Created,
                location: Some(batch_href(id)),
                body: body.to_string(),
                replayed: false,
            })
        }
        Err(problem) => Err(Problem::invalid(vec![field_error(
            "file",
            problem.message(),
        )])),
    }
}

/// `GET /refund-batches/<id>`: the summary, where it stands, progress, and its rows (from
/// `after`, a row number, at most `limit`, 1,000 unless asked).
#[rocket::get("/refund-batches/<id>")]
pub(super) async fn get_batch(
    state: &State<AppState>,
    caller: ApiCaller,
    id: &str,
    uri: &Origin<'_>,
) -> ApiResult {
    let path = format!("{BASE}/refund-batches/{id}");
    require(state, &caller, &path, &[Scope::RefundsBulk]).await?;
    let b = batch_of(state, &caller, id).await?;
    let (after, limit) =
        rows_query(uri.query().map(|q| q.as_str()).unwrap_or("")).map_err(Problem::invalid)?;
    Ok(ApiJson::ok(&batch_json(state, &b, after, limit).await?))
}

/// `after` (a row number, 0 or more) and `limit` (1 to `ROWS_MAX`, 1,000 unless given);
/// anything else in the query is refused.
fn rows_query(raw: &str) -> Result<(i64, i64), Vec<Value>> {
    let mut errors = Vec::new();
    let (mut after, mut limit) = (0, 1000);
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        match k.as_ref() {
            "after" => match v.parse::<i64>() {
                Ok(n) if n >= 0 => after = n,
                _ => errors.push(parameter_error(
                    "after",
                    "after must be a row number, 0 or more",
                )),
            },
            "limit" => match v.parse::<i64>() {
                Ok(n) if (1..=ROWS_MAX).contains(&n) => limit = n,
                _ => errors.push(parameter_error(
                    "limit",
                    format!("limit must be a whole number from 1 to {ROWS_MAX}"),
                )),
            },
            other => errors.push(parameter_error(
                other,
                format!("{other} is not a parameter of this request"),
            )),
        }
    }
    if errors.is_empty() {
        Ok((after, limit))
    } else {
        Err(errors)
    }
}

/// What a submit names: the file's SHA-256 the caller saw, and whether to leave out the rows
/// the dry run refused.
struct SubmitBody {
    file_sha256: String,
    leave_out_refused: bool,
}

fn submit_body(body: &serde_json::Map<String, Value>) -> Result<SubmitBody, Vec<Value>> {
    let mut errors = unknown_fields(body, &["file_sha256", "leave_out_refused"]);
    let hash = text_field(body, "file_sha256", &mut errors);
    if hash.is_none() && !errors.iter().any(|e| e["field"] == "file_sha256") {
        errors.push(field_error(
            "file_sha256",
            "Give the file's SHA-256 from the dry run's answer (file_sha256), so that only the file you checked is sent",
        ));
    }
    let leave_out = match body.get("leave_out_refused") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(field_error(
                "leave_out_refused",
                "leave_out_refused must be true or false",
            ));
            false
        }
    };
    if errors.is_empty() {
        Ok(SubmitBody {
            file_sha256: hash.unwrap_or_default(),
            leave_out_refused: leave_out,
        })
    } else {
        Err(errors)
    }
}

/// `POST /refund-batches/<id>/submit`: go on with a dry-run batch, for the file the caller
/// saw.
#[rocket::post("/refund-batches/<id>/submit", data = "<data>")]
pub(super) async fn submit_batch(
    state: &State<AppState>,
    caller: ApiCaller,
    id: &str,
    key: IdempotencyKey,
    content_type: Option<&ContentType>,
    data: Data<'_>,
) -> ApiResult {
    let path = format!("{BASE}/refund-batches/{id}/submit");
    require(state, &caller, &path, &[Scope::RefundsBulk]).await?;
    let b = batch_of(state, &caller, id).await?;
    let key = idempotent::checked(key)?;
    let body = json_body(content_type, data).await?;
    let fields = submit_body(&body).map_err(Problem::invalid)?;
    let token_id = caller.caller.token.id;
    let print = idempotency::fingerprint(
        "POST",
        &format!("{}/submit", batch_href(b.id)),
        &audit::canonical_json(&Value::Object(body.clone())),
    );
    let now = state.clock.now();
    if let Some(replay) = idempotent::begin(state, now, token_id, key.as_deref(), &print).await? {
        return Ok(replay);
    }
    let outcome = submit(state, &caller, &b, &fields).await;
    idempotent::settle(state, token_id, key.as_deref(), &outcome).await?;
    outcome
}

fn needs_approval(b: &BatchRow) -> Problem {
    Problem::typed(
        Status::Conflict,
        "problem-batch-needs-approval",
        "This batch needs a second person's approval",
        format!(
            "Nothing has been sent. Batch {} refunds {} in all{}, so a second person holding refunds:approve must approve it in paydesk (Bulk refunds, batch {}) before it is sent; the person this token acts for cannot approve it. Sending starts as soon as it is approved: follow it with GET {}",
            b.id,
            crate::refunds::rules::pounds(b.total_amount),
            if b.approval_rows > 0 {
                format!(" and {} of its rows are above the service's approval threshold", b.approval_rows)
            } else {
                ", above the service's approval threshold".to_string()
            },
            b.id,
            batch_href(b.id)
        ),
    )
}

fn refusal(why: BatchRefusal) -> Problem {
    let (status, kind, title) = match why {
        BatchRefusal::NotFound => return Problem::not_found(),
        BatchRefusal::FileChanged => (
            Status::Conflict,
            "problem-batch-file-changed",
            "This is not the file you checked",
        ),
        BatchRefusal::RefusedRows => (
            Status::Conflict,
            "problem-batch-rows-refused",
            "Some rows were refused",
        ),
        BatchRefusal::NothingReady => (
            Status::Conflict,
            "problem-batch-nothing-ready",
            "No row of this file can be refunded",
        ),
        BatchRefusal::NotUploader | BatchRefusal::OwnBatch => (
            Status::Forbidden,
            "problem-batch-not-yours",
            "Only the person who sent this batch can submit it",
        ),
        BatchRefusal::NotNow | BatchRefusal::PauseFirst => (
            Status::Conflict,
            "problem-batch-moved-on",
            "This batch has moved on",
        ),
    };
    let detail = match why {
        BatchRefusal::RefusedRows => "Some rows were refused in the dry run: fix the file and send it again, or submit with \"leave_out_refused\": true to send only the rows that are ready".to_string(),
        BatchRefusal::NotUploader | BatchRefusal::OwnBatch => "This batch was sent with a token acting for someone else: only a token acting for the person who sent it can submit it".to_string(),
        other => other.message().to_string(),
    };
    Problem::typed(status, kind, title, detail)
}

async fn submit(
    state: &AppState,
    caller: &ApiCaller,
    b: &BatchRow,
    fields: &SubmitBody,
) -> ApiResult {
    if b.file_hash != fields.file_sha256 {
        return Err(refusal(BatchRefusal::FileChanged));
    }
    match b.state.as_str() {
        "checked" => {
            let who = who(caller);
            if let Err(why) = bulk::confirm_as(
                &state.db,
                state.clock.now(),
                &who,
                &caller.actor(),
                b.id,
                &fields.file_sha256,
                fields.leave_out_refused,
            )
            .await?
            {
                return Err(refusal(why));
            }
        }
        "awaiting_approval" => return Err(needs_approval(b)),
        "cancelled" => {
            return Err(Problem::typed(
                Status::Conflict,
                "problem-batch-moved-on",
                "This batch was cancelled",
                "This batch was cancelled in paydesk: nothing more of it will be sent. Send the file again as a new batch if the refunds are still owed",
            ))
        }
        // Sending, paused or sent: submitted already; answered as it stands.
        _ => {}
    }
    let now = batch_store::by_id(&state.db, b.id)
        .await?
        .ok_or_else(|| Problem::internal("a batch just submitted cannot be read"))?;
    if now.state == "awaiting_approval" {
        return Err(needs_approval(&now));
    }
    let body = batch_json(state, &now, 0, 0).await?;
    Ok(ApiJson {
        status: Status::Accepted,
        location: None,
        body: body.to_string(),
        replayed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_bodies_are_checked() {
        let ok = |v: Value| submit_body(v.as_object().unwrap_or(&serde_json::Map::new()));
        assert!(ok(json!({"file_sha256": "ab"})).is_ok_and(|b| !b.leave_out_refused));
        assert!(ok(json!({"file_sha256": "ab", "leave_out_refused": true}))
            .is_ok_and(|b| b.leave_out_refused));
        for bad in [
            json!({}),
            json!({"file_sha256": 1}),
            json!({"file_sha256": "ab", "leave_out_refused": "yes"}),
            json!({"file_sha256": "ab", "extra": 1}),
        ] {
            assert!(ok(bad.clone()).is_err(), "{bad}");
        }
    }
}
