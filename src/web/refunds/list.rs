//! The list of refund requests (`/refunds/requests`): a caseworker's own requests, and for
//! finance every request of their services, with their states, filters in the address (so
//! the page is a bookmark and Back works), pages of 50 and the count and total of what
//! matches. Who sees which and every figure come from `crate::refunds::list`.

use rocket::State;
use serde_json::{json, Value};

use super::shared::{reason_label, state_tag};
use crate::refunds::list::{self, ListedRequest, Listing, Scope};
use crate::refunds::list_filters::{self, Form, Problem, STATE_CHOICES};
use crate::refunds::rules::pounds;
use crate::web::dashboard::QueryPairs;
use crate::web::errors::PageError;
use crate::web::format::{local_time, thousands};
use crate::web::journey_lookup::page_href;
use crate::web::pages::{self, render, Answer};
use crate::web::session::SignedIn;
use crate::AppState;

const PATH: &str = "/refunds/requests";

/// Who decided, and when; or why nobody did.
fn decision(state: &AppState, r: &ListedRequest) -> String {
    match (&r.decided_by_name, r.decided_by, r.decided_at) {
        (Some(name), _, Some(at)) => format!("{name}, {}", local_time(state.config.time_zone, at)),
        (None, Some(id), Some(at)) => {
            format!("Account {id}, {}", local_time(state.config.time_zone, at))
        }
        _ if r.state == "expired" => "Not decided in time".into(),
        _ if r.state == "awaiting_approval" => "Not decided yet".into(),
        _ if !r.approval_required => "No approval needed".into(),
        _ => String::new(),
    }
}

fn rows(state: &AppState, scope: &Scope, listing: &Listing) -> Vec<Value> {
    let zone = state.config.time_zone;
    listing
        .rows
        .iter()
        .map(|r| {
            let svc = scope.services.iter().find(|s| s.id == r.service_id);
            let (state_text, state_colour) = state_tag(&r.state);
            json!({
                "requested": local_time(zone, r.requested_at),
                "reference": r.reference.clone().unwrap_or_else(|| r.payment_id.clone()),
                "payment_href": page_href(&r.payment_id, svc.map(|s| s.slug.as_str()).unwrap_or(""), "", &[]),
                "service": svc.map(|s| s.name.clone()).unwrap_or_default(),
                "amount": pounds(r.amount),
                "reason": reason_label(&r.reason),
                "case_reference": r.case_reference.clone().unwrap_or_default(),
                "state_text": state_text,
                "state_colour": state_colour,
                "requester": r.requested_by_name.clone().unwrap_or_else(|| format!("Account {}", r.requested_by)),
                "decided": decision(state, r),
                "batch": r.batch_id,
            })
        })
        .collect()
}

fn href(query: String) -> String {
    if query.is_empty() {
        PATH.to_string()
    } else {
        format!("{PATH}?{query}")
    }
}

#[rocket::get("/refunds/requests")]
pub(super) async fn requests(
    state: &State<AppState>,
    staff: SignedIn,
    query: QueryPairs,
) -> Result<Answer, PageError> {
    let scope = list::scope(&state.db, &staff.grants, staff.staff.id).await?;
    let finance = scope.sees_others();
    let mut c = pages::signed_in(state, &staff, if finance { "/refunds" } else { PATH });
    let form = Form::from_pairs(&query.0);
    c.insert("finance".into(), json!(finance));
    c.insert(
        "heading".into(),
        json!(if finance {
            "Refund requests"
        } else {
            "Your refund requests"
        }),
    );
    c.insert(
        "form".into(),
        json!({
            "states": form.states,
            "service": form.service,
            "from": form.from,
            "to": form.to,
            "mine": form.mine,
        }),
    );
    c.insert(
        "state_options".into(),
        STATE_CHOICES
            .iter()
            .map(|s| json!({"value": s.name(), "text": state_tag(s.name()).0}))
            .collect(),
    );
    let mut services = vec![json!({"value": "", "text": "All your services"})];
    services.extend(
        scope
            .services
            .iter()
            .map(|s| json!({"value": s.slug, "text": s.name})),
    );
    c.insert("service_options".into(), Value::Array(services));
    c.insert("show_service".into(), json!(scope.services.len() > 1));
    c.insert(
        "mine_options".into(),
        json!([{"value": "yes", "text": "Only the refunds I asked for"}]),
    );
    c.insert("filtered".into(), json!(form.is_filtered()));
    c.insert("zone".into(), json!(state.config.time_zone.name()));
    c.insert("clear_href".into(), json!(PATH));
    let filters = match list_filters::read(&form, &scope.offered(), state.config.time_zone) {
        Ok(f) => f,
        Err(problems) => {
            c.insert("errors".into(), errors(&problems));
            c.insert("field_errors".into(), field_errors(&problems));
            return Ok(Answer::Invalid(render("refunds/requests", c)));
        }
    };
    c.insert("errors".into(), json!([]));
    c.insert("field_errors".into(), json!({}));
    let listing = list::list(&state.db, &scope, &filters).await?;
    c.insert("rows".into(), Value::Array(rows(state, &scope, &listing)));
    c.insert(
        "count_text".into(),
        json!(match listing.count {
            1 => "1 refund request".to_string(),
            n => format!("{} refund requests", thousands(n)),
        }),
    );
    c.insert("total".into(), json!(pounds(listing.total)));
    c.insert("count".into(), json!(listing.count));
    c.insert(
        "newer_href".into(),
        json!(listing
            .newer
            .map(|n| href(form.query(Some(("newer_than", n)))))
            .unwrap_or_default()),
    );
    c.insert(
        "older_href".into(),
        json!(listing
            .older
            .map(|o| href(form.query(Some(("older_than", o)))))
            .unwrap_or_default()),
    );
    Ok(Answer::Page(render("refunds/requests", c)))
}

fn errors(problems: &[Problem]) -> Value {
    problems
        .iter()
        .map(|p| pages::problem(p.field, p.message.clone()))
        .collect()
}

/// Each field's first problem, by field.
fn field_errors(problems: &[Problem]) -> Value {
    let mut m = serde_json::Map::new();
    for p in problems {
        m.entry(p.field).or_insert_with(|| json!(p.message.clone()));
    }
    Value::Object(m)
}
