//! What the API shows of a payment and a refund request, and the lookup of a payment in the
//! caller's own service.

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;

use super::caller::ApiCaller;
use super::problem::Problem;
use super::BASE;
use crate::refunds::RequestRow;
use crate::search::query::StatusGroup;
use crate::store::{self, journeys as journey_store};
use crate::AppState;

// ---- shapes ---------------------------------------------------------------------------------

pub(super) fn rfc3339(us: i64) -> String {
    store::from_micros(us).format(&Rfc3339).unwrap_or_default()
}

pub(super) fn payment_href(payment_id: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(payment_id.as_bytes()).collect();
    format!("{BASE}/payments/{id}")
}

/// A payment as the API shows it. Card numbers: the first 6 and last 4 digits only.
pub(super) fn payment_json(j: &journey_store::JourneyRow) -> Value {
    let metadata = j
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Map<String, Value>>(m).ok())
        .map(Value::Object)
        .unwrap_or(Value::Null);
    let card = if j.card_brand.is_some() || j.last_digits.is_some() || j.first_digits.is_some() {
        json!({
            "brand": j.card_brand,
            "type": j.card_type,
            "first_digits": j.first_digits.as_deref().filter(|d| d.len() == 6 && d.bytes().all(|b| b.is_ascii_digit())),
            "last_digits": j.last_digits.as_deref().filter(|d| d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit())),
            "expiry_date": j.expiry_date,
            "cardholder_name": j.cardholder_name,
        })
    } else {
        Value::Null
    };
    json!({
        "payment_id": j.payment_id,
        "reference": j.reference,
        "description": j.description,
        "email": j.email,
        "amount": j.amount,
        "status": j.status,
        "status_group": StatusGroup::of(&j.status, j.state_code.as_deref()).name(),
        "finished": j.finished,
        "state_code": j.state_code,
        "state_message": j.state_message,
        "created_at": rfc3339(j.created_at),
        "case_reference": j.case_reference,
        "card": card,
        "refund_summary": {
            "status": j.refund_status,
            "amount_available": j.refund_available,
            "amount_submitted": j.refund_submitted,
        },
        "metadata": metadata,
        "needs_attention": j.needs_attention,
        "links": {"self": payment_href(&j.payment_id)},
    })
}

pub(super) fn refund_json(r: &RequestRow) -> Value {
    json!({
        "id": r.id,
        "payment_id": r.payment_id,
        "amount": r.amount,
        "reason": r.reason,
        "comment": r.comment,
        "case_reference": r.case_reference,
        "state": r.state,
        "approval_required": r.approval_required,
        "requested_at": rfc3339(r.requested_at),
        "decided_at": r.decided_at.map(rfc3339),
        "submitted_at": r.submitted_at.map(rfc3339),
        "finished_at": r.finished_at.map(rfc3339),
        "platform_refund_id": r.platform_refund_id,
        "failure": r.failure,
        "batch_id": r.batch_id,
        "links": {
            "self": format!("{BASE}/refunds/{}", r.id),
            "payment": payment_href(&r.payment_id),
        },
    })
}

/// The journey of `payment_id` in the caller's service; 404 for anything else.
pub(super) async fn journey_of(
    state: &AppState,
    caller: &ApiCaller,
    payment_id: &str,
) -> Result<journey_store::JourneyRow, Problem> {
    if payment_id.is_empty() || payment_id.len() > 100 || payment_id.chars().any(char::is_control) {
        return Err(Problem::not_found());
    }
    journey_store::journey(&state.db, caller.service_id(), payment_id)
        .await?
        .ok_or_else(Problem::not_found)
}
