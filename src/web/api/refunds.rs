//! `POST /payments/<id>/refunds` (a refund request, honouring `Idempotency-Key`) and
//! `GET /refunds/<id>`.

use rocket::data::Data;
use rocket::http::{ContentType, Status};
use rocket::State;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::body::{json_body, text_field, unknown_fields};
use super::caller::{require, ApiCaller, IdempotencyKey};
use super::idempotent;
use super::problem::{field_error, ApiJson, ApiResult, Problem};
use super::shapes::{journey_of, payment_href, refund_json};
use super::BASE;
use crate::audit::{self};
use crate::integrations::api_tokens::Scope;
use crate::integrations::idempotency;
use crate::journeys::case;
use crate::money::MAX_PENCE;
use crate::refunds::{self, Ask, Asked, HowMuch, Requester};
use crate::store::{journeys as journey_store, refunds as refund_store};
use crate::AppState;

// ---- refunds --------------------------------------------------------------------------------

/// A refund request as posted, checked for shape (the refund rules check the rest).
struct RefundBody {
    amount: Option<i64>,
    reason: String,
    comment: String,
    case_reference: String,
}

fn refund_body(body: &Map<String, Value>) -> Result<RefundBody, Vec<Value>> {
    let mut errors = unknown_fields(body, &["amount", "reason", "comment", "case_reference"]);
    let amount = match body.get("amount") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(a) if (1..=MAX_PENCE).contains(&a) => Some(a),
            _ => {
                errors.push(field_error(
                    "amount",
                    format!("amount must be a whole number of pence from 1 to {MAX_PENCE}"),
                ));
                None
            }
        },
        Some(_) => {
            errors.push(field_error(
                "amount",
                "amount must be a whole number of pence, like 1250 for £12.50",
            ));
            None
        }
    };
    let reason = text_field(body, "reason", &mut errors);
    if reason.is_none() && !errors.iter().any(|e| e["field"] == "reason") {
        errors.push(field_error("reason", "Give the reason for the refund"));
    }
    let comment = text_field(body, "comment", &mut errors).unwrap_or_default();
    let case_reference = text_field(body, "case_reference", &mut errors).unwrap_or_default();
    if !case_reference.trim().is_empty() {
        if let Err(message) = case::check(&case_reference) {
            errors.push(field_error("case_reference", message));
        }
    }
    if errors.is_empty() {
        Ok(RefundBody {
            amount,
            reason: reason.unwrap_or_default(),
            comment,
            case_reference,
        })
    } else {
        Err(errors)
    }
}

/// The refund rules' field names, as the API's body names them.
fn api_field(field: &str) -> &str {
    match field {
        "how_much" => "amount",
        other => other,
    }
}

#[rocket::post("/payments/<id>/refunds", data = "<data>")]
#[allow(clippy::too_many_arguments)]
pub(super) async fn request_refund(
    state: &State<AppState>,
    caller: ApiCaller,
    id: &str,
    key: IdempotencyKey,
    content_type: Option<&ContentType>,
    data: Data<'_>,
) -> ApiResult {
    let path = format!("{}/refunds", payment_href(id));
    require(state, &caller, &path, &[Scope::RefundsRequest]).await?;
    let j = journey_of(state, &caller, id).await?;
    let key = idempotent::checked(key)?;
    let body = json_body(content_type, data).await?;
    let fields = refund_body(&body).map_err(Problem::invalid)?;
    let token_id = caller.caller.token.id;
    let now = state.clock.now();
    let print = idempotency::fingerprint(
        "POST",
        &payment_href(&j.payment_id),
        &audit::canonical_json(&Value::Object(body.clone())),
    );
    if let Some(first) = idempotent::begin(state, now, token_id, key.as_deref(), &print).await? {
        return Ok(first);
    }
    let outcome = make_refund(state, &caller, &j, &fields, key.as_deref(), now).await;
    idempotent::settle(state, token_id, key.as_deref(), &outcome).await?;
    outcome
}

/// Ask for the refund, as the token (for the member of staff who made it).
async fn make_refund(
    state: &AppState,
    caller: &ApiCaller,
    j: &journey_store::JourneyRow,
    fields: &RefundBody,
    key: Option<&str>,
    now: OffsetDateTime,
) -> ApiResult {
    let token = &caller.caller.token;
    // Asking twice with one key makes one request, even once the key's answer is forgotten.
    let form_key = match key {
        Some(k) => format!("api:{}:{}:{}", token.id, j.id, idempotency::key_digest(k)),
        None => format!("api:{}", uuid::Uuid::new_v4()),
    };
    let ask = Ask {
        service_id: j.service_id,
        journey_id: j.id,
        payment_id: j.payment_id.clone(),
        how_much: Ok(fields.amount.map_or(HowMuch::Full, HowMuch::Partial)),
        reason: fields.reason.clone(),
        comment: fields.comment.clone(),
        case_reference: fields.case_reference.clone(),
        form_key,
    };
    let who = Requester {
        staff_id: token.created_by,
        name: format!("API token “{}”", token.name),
        actor: caller.actor(),
        ip: caller.ip.clone(),
    };
    match refunds::request_as(&state.db, now, &who, &ask).await? {
        Asked::Made { id, .. } => {
            let row = refund_store::by_id(&state.db, id)
                .await?
                .ok_or_else(|| Problem::internal("a refund request just made cannot be read"))?;
            let body = refund_json(&row);
            Ok(ApiJson {
                status: Status::Created,
                location: Some(format!("{BASE}/refunds/{id}")),
                body: body.to_string(),
                replayed: false,
            })
        }
        Asked::Refused(problems) => {
            let mut errors: Vec<Value> = Vec::new();
            for (field, message) in problems {
                let field = api_field(field);
                if !errors.iter().any(|e| e["field"] == field) {
                    errors.push(field_error(field, message));
                }
            }
            Err(Problem::invalid(errors))
        }
    }
}

#[rocket::get("/refunds/<id>")]
pub(super) async fn get_refund(state: &State<AppState>, caller: ApiCaller, id: &str) -> ApiResult {
    let path = format!("{BASE}/refunds/{id}");
    require(
        state,
        &caller,
        &path,
        &[Scope::PaymentsRead, Scope::RefundsRequest],
    )
    .await?;
    let Some(id) = id.parse::<i64>().ok().filter(|n| *n > 0) else {
        return Err(Problem::not_found());
    };
    let row = refund_store::by_id(&state.db, id)
        .await?
        .filter(|r| r.service_id == caller.service_id())
        .ok_or_else(Problem::not_found)?;
    Ok(ApiJson::ok(&refund_json(&row)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refund_bodies_are_checked() {
        let ok = |v: Value| refund_body(v.as_object().unwrap_or(&Map::new()));
        assert!(ok(json!({"amount": 500, "reason": "duplicate"})).is_ok());
        assert!(ok(json!({"reason": "duplicate"})).is_ok_and(|b| b.amount.is_none()));
        for bad in [
            json!({"amount": 0, "reason": "duplicate"}),
            json!({"amount": 1.5, "reason": "duplicate"}),
            json!({"amount": "500", "reason": "duplicate"}),
            json!({"amount": 10_000_001, "reason": "duplicate"}),
            json!({"amount": 500}),
            json!({"amount": 500, "reason": "duplicate", "extra": 1}),
            json!({"amount": 500, "reason": "duplicate", "case_reference": "=1+1"}),
        ] {
            assert!(ok(bad.clone()).is_err(), "{bad}");
        }
    }
}
