//! `GET /disputes` (a page of the token's service's disputes, those needing a response
//! first) and `GET /disputes/<id>`; another service's dispute is not found.

use rocket::http::uri::Origin;
use rocket::State;
use serde_json::{json, Value};

use super::caller::{require, ApiCaller};
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
    let raw = uri.query().map(|q| q.as_str()).unwrap_or("");
    if raw.len() > 8 * 1024 {
        return Err(Problem::invalid(vec![parameter_error(
            "query",
            "The query is too long",
        )]));
    }
    let mut errors = Vec::new();
    let (mut status, mut page) = (None, 1i64);
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        match k.as_ref() {
            "status" if STATUSES.contains(&v.as_ref()) => status = Some(v.to_string()),
            "status" => errors.push(parameter_error(
                "status",
                "status must be one of needs_response, under_review, won, lost",
            )),
            "page" => match v.parse::<i64>() {
                Ok(n) if (1..=100_000).contains(&n) => page = n,
                _ => errors.push(parameter_error(
                    "page",
                    "page must be a whole number from 1 to 100000",
                )),
            },
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
    let next = (page * disputes::PAGE_SIZE < total).then(|| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        if let Some(st) = &status {
            s.append_pair("status", st);
        }
        s.append_pair("page", &(page + 1).to_string());
        format!("{BASE}/disputes?{}", s.finish())
    });
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
