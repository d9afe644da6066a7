//! Disputes for finance (`/disputes`): those needing a response first, soonest due first, with
//! days left, amount, fee, reason and status, filtered by status, service and the dates they
//! were raised, each linked to its payment; and the dispute panel of a payment's page (seen by
//! whoever may read the payment). The rules and the reads live in `crate::disputes`.

use std::collections::BTreeSet;

use rocket::State;
use serde_json::{json, Value};

use crate::disputes::{self, rules, ListQuery, StoredDispute};
use crate::identity::permissions::Permission;
use crate::money::pounds;
use crate::store;
use crate::web::dashboard::QueryPairs;
use crate::web::errors::PageError;
use crate::web::format::local_time;
use crate::web::journey_lookup::page_href;
use crate::web::list_filters::{ListFilters, ListPage};
use crate::web::pages::{self, render, Answer};
use crate::web::session::SignedIn;
use crate::AppState;

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![list_page]
}

/// A dispute as a table row or a summary list shows it.
fn view(state: &AppState, d: &StoredDispute, slug: &str, service: &str) -> Value {
    let zone = state.config.time_zone;
    let now = store::to_micros(state.clock.now());
    let needs_response = d.status == "needs_response";
    let days_left = d
        .evidence_due_at
        .filter(|_| needs_response)
        .map(|due| rules::days_left(due, now));
    json!({
        "dispute_id": d.dispute_id,
        "status": d.status,
        "status_text": rules::status_label(&d.status),
        "status_colour": match d.status.as_str() {
            "needs_response" => "red",
            "under_review" => "yellow",
            "won" => "green",
            _ => "grey",
        },
        "needs_response": needs_response,
        "due": d.evidence_due_at.map(|t| local_time(zone, t)),
        "days_left": days_left,
        "days_left_text": days_left.map(|n| match n {
            n if n < 0 => "Overdue".to_string(),
            0 => "Due today".to_string(),
            1 => "1 day".to_string(),
            n => format!("{n} days"),
        }),
        "amount": pounds(d.amount),
        "fee": d.fee.map(pounds),
        "net": d.net_amount.map(pounds),
        "reason": d.reason.as_deref().map(rules::reason_label),
        "raised": local_time(zone, d.created_at),
        "settled": d.settled_date,
        "reference": d.reference.clone().unwrap_or_else(|| d.payment_id.clone()),
        "payment_href": page_href(&d.payment_id, slug, "", &[]),
        "service": service,
    })
}

/// The dispute panel of a payment's page: its disputes, newest first (empty when none).
pub async fn panel(
    state: &AppState,
    service_id: i64,
    payment_id: &str,
) -> Result<Value, PageError> {
    let list = disputes::of_payment(&state.db, service_id, payment_id).await?;
    Ok(Value::Array(
        list.iter().map(|d| view(state, d, "", "")).collect(),
    ))
}

const STATUSES: [&str; 4] = ["needs_response", "under_review", "won", "lost"];

#[rocket::get("/disputes")]
async fn list_page(
    state: &State<AppState>,
    staff: SignedIn,
    query: QueryPairs,
) -> Result<Answer, PageError> {
    let mut c = pages::signed_in(state, &staff, "/disputes");
    let zone = state.config.time_zone;
    let all = crate::services::all(&state.db).await?;
    let allowed: Option<BTreeSet<i64>> = staff.grants.services_with(Permission::DisputesRead);
    let offered: Vec<_> = all
        .iter()
        .filter(|s| allowed.as_ref().is_none_or(|a| a.contains(&s.id)))
        .collect();
    let mut f = ListFilters::new(&query);
    let (status, service, from, to) = (
        f.get("status"),
        f.get("service"),
        f.get("from"),
        f.get("to"),
    );
    let page = ListFilters::page(&f.get("page"));
    let chosen_status = f.status(&status, &STATUSES);
    let services = f.services(&service, &offered);
    let from_day = f.date("from", &from);
    let to_day = f.date("to", &to);
    if let (Some(a), Some(b)) = (from_day, to_day) {
        if a > b {
            f.refuse(
                "to",
                "The end date must be the same as or after the start date",
            );
        }
    }
    let (rows, total) = if f.ok() {
        disputes::list(
            &state.db,
            &ListQuery {
                services,
                status: chosen_status,
                from: from_day.map(|d| zone.start_of(d)),
                to: to_day.and_then(|d| d.next_day()).map(|d| zone.start_of(d)),
                page,
            },
        )
        .await?
    } else {
        (Vec::new(), 0)
    };
    let names: std::collections::HashMap<i64, (&str, &str)> = all
        .iter()
        .map(|s| (s.id, (s.slug.as_str(), s.name.as_str())))
        .collect();
    let shown: Vec<Value> = rows
        .iter()
        .map(|d| {
            let (slug, name) = names.get(&d.service_id).copied().unwrap_or(("", ""));
            view(state, d, slug, name)
        })
        .collect();
    f.finish(
        &mut c,
        ListPage {
            path: "/disputes",
            rows: shown,
            total,
            page,
            page_size: disputes::PAGE_SIZE,
            fields: &[
                ("status", status.as_str()),
                ("service", service.as_str()),
                ("from", from.as_str()),
                ("to", to.as_str()),
            ],
            statuses: &STATUSES,
            status_label: rules::status_label,
            offered: &offered,
        },
    );
    c.insert("zone".into(), json!(zone.name()));
    Ok(Answer::Page(render("disputes/index", c)))
}
