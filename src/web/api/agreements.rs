//! `GET /agreements` (a page of the token's service's recurring agreements, newest first, by
//! reference, status and service), `GET /agreements/<id>` and `POST /agreements/<id>/cancel`
//! (with a reason, honouring `Idempotency-Key`): the cancel goes through the same job as the
//! console's, so any number of asks make one platform call. Another service's agreement is not
//! found.

use rocket::data::Data;
use rocket::http::uri::Origin;
use rocket::http::{ContentType, Status};
use rocket::State;
use serde_json::{json, Map, Value};

use super::body::{json_body, text_field, unknown_fields};
use super::caller::{require, ApiCaller, IdempotencyKey};
use super::idempotent;
use super::paging::{next_page, page_number, query_pairs};
use super::problem::{field_error, parameter_error, ApiJson, ApiResult, Problem};
use super::shapes::rfc3339;
use super::BASE;
use crate::agreements::cancel::{self as cancelling, Asked, Refusal};
use crate::agreements::{self, ListQuery};
use crate::audit;
use crate::integrations::api_tokens::Scope;
use crate::integrations::idempotency;
use crate::store::agreements::{AgreementRow, CancellationRow};
use crate::AppState;

const STATUSES: [&str; 4] = ["created", "active", "cancelled", "inactive"];

/// The longest reference searched for.
const REFERENCE_MAX: usize = 255;

fn agreement_href(agreement_id: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(agreement_id.as_bytes()).collect();
    format!("{BASE}/agreements/{id}")
}

/// An agreement as the API shows it: times in UTC, the card as a summary only.
fn agreement_json(a: &AgreementRow, cancellation: Option<&CancellationRow>) -> Value {
    let instrument = (a.card_brand.is_some() || a.card_last4.is_some()).then(|| {
        json!({
            "card_brand": a.card_brand,
            "last_digits_card_number": a.card_last4,
            "expiry_date": a.card_expiry,
            "card_type": a.card_type,
        })
    });
    let href = agreement_href(&a.agreement_id);
    json!({
        "agreement_id": a.agreement_id,
        "reference": a.reference,
        "description": a.description,
        "user_identifier": a.user_identifier,
        "status": a.status,
        "created_date": rfc3339(a.created_at),
        "cancelled_date": a.cancelled_at.map(rfc3339),
        "payment_instrument": instrument,
        "cancellation": cancellation.map(|c| json!({
            "state": c.state,
            "outcome": c.outcome,
            "reason": c.reason,
            "requested_date": rfc3339(c.requested_at),
            "finished_date": c.finished_at.map(rfc3339),
        })),
        "links": {
            "self": href,
            "cancel": format!("{href}/cancel"),
        },
    })
}

#[rocket::get("/agreements")]
pub(super) async fn list_agreements(
    state: &State<AppState>,
    caller: ApiCaller,
    uri: &Origin<'_>,
) -> ApiResult {
    require(
        state,
        &caller,
        uri.path().as_str(),
        &[Scope::AgreementsRead],
    )
    .await?;
    let pairs = query_pairs(uri)?;
    let own = crate::services::by_id(&state.db, caller.service_id())
        .await
        .map_err(Problem::internal)?
        .ok_or_else(Problem::not_found)?;
    let mut errors = Vec::new();
    let (mut reference, mut status, mut service, mut page) = (None, None, None, 1i64);
    for (k, v) in &pairs {
        let v = v.trim();
        match k.as_str() {
            "reference" if v.is_empty() => {}
            "reference" if v.chars().count() > REFERENCE_MAX => errors.push(parameter_error(
                "reference",
                format!("reference must be {REFERENCE_MAX} characters or fewer"),
            )),
            "reference" => reference = Some(v.to_string()),
            "status" if STATUSES.contains(&v) => status = Some(v.to_string()),
            "status" => errors.push(parameter_error(
                "status",
                "status must be one of created, active, cancelled, inactive",
            )),
            "service" if v.is_empty() => {}
            "service" if v == own.slug => service = Some(own.slug.clone()),
            "service" => errors.push(parameter_error(
                "service",
                format!(
                    "A token reads only its own service's agreements: service must be {} or left out",
                    own.slug
                ),
            )),
            "page" => page = page_number(v, &mut errors).unwrap_or(page),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let q = ListQuery {
        services: vec![own.id],
        reference: reference.clone(),
        status: status.clone(),
        page,
    };
    let (rows, total) = agreements::list(&state.db, &q).await?;
    let next = next_page(
        "/agreements",
        &[
            ("reference", &reference),
            ("status", &status),
            ("service", &service),
        ],
        page,
        agreements::PAGE_SIZE,
        total,
    );
    Ok(ApiJson::ok(&json!({
        "data": rows.iter().map(|a| agreement_json(a, None)).collect::<Vec<_>>(),
        "total": total,
        "page": page,
        "links": {"next": next},
    })))
}

/// Agreement `id` of the caller's service with its latest cancellation, or 404.
async fn agreement_of(
    state: &AppState,
    caller: &ApiCaller,
    id: &str,
) -> Result<(AgreementRow, Option<CancellationRow>), Problem> {
    let a = agreements::get(&state.db, caller.service_id(), id)
        .await?
        .ok_or_else(Problem::not_found)?;
    let latest = cancelling::latest(&state.db, caller.service_id(), id).await?;
    Ok((a, latest))
}

#[rocket::get("/agreements/<id>")]
pub(super) async fn get_agreement(
    state: &State<AppState>,
    caller: ApiCaller,
    id: &str,
) -> ApiResult {
    require(
        state,
        &caller,
        &agreement_href(id),
        &[Scope::AgreementsRead, Scope::AgreementsCancel],
    )
    .await?;
    let (a, latest) = agreement_of(state, &caller, id).await?;
    Ok(ApiJson::ok(&agreement_json(&a, latest.as_ref())))
}

/// The cancel's body: `{"reason": "…"}`.
fn cancel_body(body: &Map<String, Value>) -> Result<String, Vec<Value>> {
    let mut errors = unknown_fields(body, &["reason"]);
    let reason = text_field(body, "reason", &mut errors);
    if errors.is_empty() {
        match cancelling::check_reason(reason.as_deref().unwrap_or("")) {
            Ok(r) => return Ok(r),
            Err(refusal) => errors.push(field_error("reason", refusal.message())),
        }
    }
    Err(errors)
}

/// A cancel the agreement's status refuses, in plain words.
fn not_cancellable(refusal: &Refusal) -> Problem {
    Problem::typed(
        Status::Conflict,
        "problem-agreement-not-cancellable",
        "This agreement cannot be cancelled",
        refusal.message(),
    )
}

#[rocket::post("/agreements/<id>/cancel", data = "<data>")]
pub(super) async fn cancel_agreement(
    state: &State<AppState>,
    caller: ApiCaller,
    id: &str,
    key: IdempotencyKey,
    content_type: Option<&ContentType>,
    data: Data<'_>,
) -> ApiResult {
    let path = format!("{}/cancel", agreement_href(id));
    require(state, &caller, &path, &[Scope::AgreementsCancel]).await?;
    let (a, _) = agreement_of(state, &caller, id).await?;
    let key = idempotent::checked(key)?;
    let body = json_body(content_type, data).await?;
    let reason = cancel_body(&body).map_err(Problem::invalid)?;
    let token_id = caller.caller.token.id;
    let now = state.clock.now();
    let print = idempotency::fingerprint(
        "POST",
        &path,
        &audit::canonical_json(&Value::Object(body.clone())),
    );
    if let Some(first) = idempotent::begin(state, now, token_id, key.as_deref(), &print).await? {
        return Ok(first);
    }
    let outcome = ask(state, &caller, &a, &reason).await;
    idempotent::settle(state, token_id, key.as_deref(), &outcome).await?;
    outcome
}

/// Ask for the cancel, as the token; 202 with the agreement and its cancellation on its way.
async fn ask(state: &AppState, caller: &ApiCaller, a: &AgreementRow, reason: &str) -> ApiResult {
    let asked = cancelling::ask(
        &state.db,
        state.clock.now(),
        caller.actor(),
        caller.ip.clone(),
        caller.service_id(),
        &a.agreement_id,
        reason,
    )
    .await
    .map_err(Problem::internal)?;
    match asked {
        Ok(Asked::Queued(_)) | Ok(Asked::AlreadyPending) => {
            let (a, latest) = agreement_of(state, caller, &a.agreement_id).await?;
            Ok(ApiJson {
                status: Status::Accepted,
                location: Some(agreement_href(&a.agreement_id)),
                body: agreement_json(&a, latest.as_ref()).to_string(),
                replayed: false,
            })
        }
        Err(Refusal::NotFound) => Err(Problem::not_found()),
        Err(Refusal::Reason(m)) => Err(Problem::invalid(vec![field_error("reason", m)])),
        Err(refusal @ Refusal::NotActive(_)) => Err(not_cancellable(&refusal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_bodies_are_checked() {
        let check = |v: Value| cancel_body(v.as_object().unwrap_or(&Map::new()));
        assert_eq!(
            check(json!({"reason": "  The payer phoned  "})),
            Ok("The payer phoned".to_string())
        );
        for bad in [
            json!({}),
            json!({"reason": ""}),
            json!({"reason": 5}),
            json!({"reason": "x".repeat(501)}),
            json!({"reason": "phoned", "extra": true}),
        ] {
            assert!(check(bad.clone()).is_err(), "{bad}");
        }
    }
}
