//! `GET /disputes` (a page of the token's service's disputes, those needing a response
//! first) and `GET /disputes/<id>`; another service's dispute is not found.

use rocket::http::uri::Origin;
use rocket::State;
use serde_json::{json, Value};

use super::caller::{require, ApiCaller};
use super::paging::{next_page, page_number, query_pairs};
use super::problem::{parameter_error, ApiJson, ApiResult, Problem};
use super::shapes::{payment_href, rfc3339};
use super::BASE;
use crate::disputes::{self, ListQuery, StoredDispute};
use crate::integrations::api_tokens::Scope;
use crate::AppState;

const STATUSES: [&str; 4] = ["needs_response", "under_review", "won", "lost"];

fn dispute_href(dispute_id: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(dispute_id.as_bytes()).collect();
    format!("{BASE}/disputes/{id}")
}

/// A dispute as the API shows it: money in pence, times in UTC.
fn dispute_json(d: &StoredDispute) -> Value {
    json!({
        "dispute_id": d.dispute_id,
        "payment_id": d.payment_id,
        "reference": d.reference,
        "status": d.status,
        "amount": d.amount,
        "fee": d.fee,
        "net_amount": d.net_amount,
        "reason": d.reason,
        "created_date": rfc3339(d.created_at),
        "evidence_due_date": d.evidence_due_at.map(rfc3339),
        "settled_date": d.settled_date,
        "links": {
            "self": dispute_href(&d.dispute_id),
            "payment": payment_href(&d.payment_id),
        },
    })
}

#[rocket::get("/disputes")]
pub(super) async fn list_disputes(
    state: &State<AppState>,
    caller: ApiCaller,
    uri: &Origin<'_>,
) -> ApiResult {
    require(state, &caller, uri.path().as_str(), &[Scope::DisputesRead]).await?;
    let mut errors = Vec::new();
    let (mut status, mut page) = (None, 1i64);
    for (k, v) in query_pairs(uri)? {
        match k.as_str() {
            "status" if STATUSES.contains(&v.as_str()) => status = Some(v),
            "status" => errors.push(parameter_error(
                "status",
                "status must be one of needs_response, under_review, won, lost",
            )),
            "page" => page = page_number(&v, &mut errors).unwrap_or(page),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let q = ListQuery {
        services: vec![caller.service_id()],
        status: status.clone(),
        page,
        ..Default::default()
    };
    let (rows, total) = disputes::list(&state.db, &q).await?;
    let next = next_page(
        "/disputes",
        &[("status", &status)],
        page,
        disputes::PAGE_SIZE,
        total,
    );
    Ok(ApiJson::ok(&json!({
        "data": rows.iter().map(dispute_json).collect::<Vec<_>>(),
        "total": total,
        "page": page,
        "links": {"next": next},
    })))
}

#[rocket::get("/disputes/<id>")]
pub(super) async fn get_dispute(state: &State<AppState>, caller: ApiCaller, id: &str) -> ApiResult {
    require(state, &caller, &dispute_href(id), &[Scope::DisputesRead]).await?;
    match disputes::one(&state.db, caller.service_id(), id).await? {
        Some(d) => Ok(ApiJson::ok(&dispute_json(&d))),
        None => Err(Problem::not_found()),
    }
}
