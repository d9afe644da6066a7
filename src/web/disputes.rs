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
use crate::web::pages::{self, problem, render, Answer};
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
    let get = |name: &str| {
        query
            .0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let (status, service, from, to, page) = (
        get("status"),
        get("service"),
        get("from"),
        get("to"),
        get("page"),
    );
    let mut errors = Vec::new();
    let mut field_errors = serde_json::Map::new();
    let mut refuse = |field: &str, message: &str| {
        errors.push(problem(field, message));
        field_errors.insert(field.into(), json!(message));
    };
    if !status.is_empty() && !STATUSES.contains(&status.as_str()) {
        refuse("status", "Choose a status from the list");
    }
    let services: Vec<i64> = if service.is_empty() {
        offered.iter().map(|s| s.id).collect()
    } else {
        match offered.iter().find(|s| s.slug == service) {
            Some(s) => vec![s.id],
            None => {
                refuse("service", "Choose a service from the list");
                Vec::new()
            }
        }
    };
    let mut date = |field: &str, raw: &str| {
        if raw.is_empty() {
            return None;
        }
        let parsed = crate::search::query::parse_date(raw);
        if parsed.is_none() {
            refuse(field, "Enter a real date, like 27/3/2026");
        }
        parsed
    };
    let from_day = date("from", &from);
    let to_day = date("to", &to);
    if let (Some(f), Some(t)) = (from_day, to_day) {
        if f > t {
            refuse(
                "to",
                "The end date must be the same as or after the start date",
            );
        }
    }
    let page_no = match page.parse::<i64>() {
        Ok(n) if (1..=100_000).contains(&n) => n,
        _ => 1,
    };
    let (rows, total) = if errors.is_empty() {
        disputes::list(
            &state.db,
            &ListQuery {
                services,
                status: (!status.is_empty()).then(|| status.clone()),
                from: from_day.map(|d| zone.start_of(d)),
                to: to_day.and_then(|d| d.next_day()).map(|d| zone.start_of(d)),
                page: page_no,
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
    let href = |n: i64| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &status),
            ("service", &service),
            ("from", &from),
            ("to", &to),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        q.append_pair("page", &n.to_string());
        format!("/disputes?{}", q.finish())
    };
    let last = (total + disputes::PAGE_SIZE - 1) / disputes::PAGE_SIZE;
    c.insert("rows".into(), Value::Array(shown));
    c.insert("total".into(), json!(total));
    c.insert("errors".into(), Value::Array(errors));
    c.insert("field_errors".into(), Value::Object(field_errors));
    c.insert(
        "fields".into(),
        json!({"status": status, "service": service, "from": from, "to": to}),
    );
    let mut status_options = vec![json!({"value": "", "text": "Any status"})];
    status_options.extend(
        STATUSES
            .iter()
            .map(|s| json!({"value": s, "text": rules::status_label(s)})),
    );
    c.insert("status_options".into(), Value::Array(status_options));
    let mut service_options = vec![json!({"value": "", "text": "All your services"})];
    service_options.extend(
        offered
            .iter()
            .map(|s| json!({"value": s.slug, "text": s.name})),
    );
    c.insert("service_options".into(), Value::Array(service_options));
    c.insert(
        "prev_href".into(),
        json!((page_no > 1).then(|| href(page_no - 1))),
    );
    c.insert(
        "next_href".into(),
        json!((page_no < last).then(|| href(page_no + 1))),
    );
    c.insert("page".into(), json!(page_no));
    c.insert("zone".into(), json!(zone.name()));
    Ok(Answer::Page(render("disputes/index", c)))
}
