//! Failed refunds (`/refunds/failed`): the list behind the dashboard's "Failed refunds" figure,
//! for the same period and services, and the rows the refunds page shows under "Needs
//! attention". What counts as failed is `crate::refunds::failed`'s one definition.

use std::collections::HashMap;

use rocket::State;
use serde_json::{json, Value};

use super::shared::Names;
use crate::dashboard::{self, Span};
use crate::refunds::failed::{self, FailedRefund};
use crate::refunds::rules::pounds;
use crate::store;
use crate::web::dashboard::QueryPairs;
use crate::web::errors::PageError;
use crate::web::format::local_time;
use crate::web::journey_lookup::page_href;
use crate::web::pages::{self, render, Answer};
use crate::web::session::SignedIn;
use crate::AppState;

/// The rows of a failed-refunds table: when, amount, the payment (linked), its service, who
/// asked and what happened.
pub(super) async fn rows(
    state: &AppState,
    failed: &[FailedRefund],
    services: &HashMap<i64, (String, String)>,
) -> Result<Vec<Value>, PageError> {
    let zone = state.config.time_zone;
    let mut names = Names::default();
    let mut out = Vec::with_capacity(failed.len());
    for r in failed {
        let (slug, name) = services.get(&r.service_id).cloned().unwrap_or_default();
        let requester = match r.requested_by {
            Some(id) => names.of(state, id).await?,
            None => "Not asked for in paydesk".to_string(),
        };
        let failure = match (&r.failure, r.request_id) {
            (Some(why), _) => why.clone(),
            (None, Some(_)) => "No reason given".to_string(),
            (None, None) => "The platform could not pay the refund (its status is error)".into(),
        };
        out.push(json!({
            "when": local_time(zone, r.asked_at),
            "amount": pounds(r.amount),
            "reference": r.reference.clone().unwrap_or_else(|| r.payment_id.clone()),
            "payment_href": page_href(&r.payment_id, &slug, "", &[]),
            "service": name,
            "requester": requester,
            "failure": failure,
            "batch": r.batch_id,
        }));
    }
    Ok(out)
}

/// Services by id: (slug, name).
pub(super) async fn service_names(
    state: &AppState,
) -> Result<HashMap<i64, (String, String)>, PageError> {
    Ok(crate::services::all(&state.db)
        .await?
        .into_iter()
        .map(|s| (s.id, (s.slug, s.name)))
        .collect())
}

#[rocket::get("/refunds/failed")]
pub(super) async fn failed_page(
    state: &State<AppState>,
    staff: SignedIn,
    query: QueryPairs,
) -> Result<Answer, PageError> {
    let mut c = pages::signed_in(state, &staff, "/refunds");
    // The dashboard's own choice of period and services, read the same way.
    let offered = dashboard::services_for(&state.db, &staff.grants).await?;
    let ids: Vec<i64> = offered.iter().map(|(id, _)| *id).collect();
    let (choice, problems) = dashboard::choose(&query.0, &ids);
    if !problems.is_empty() {
        return Err(PageError::from(rocket::http::Status::UnprocessableEntity));
    }
    let zone = state.config.time_zone;
    let span = Span::at(choice.period, state.clock.now(), &zone);
    let (list, count) = failed::in_span(
        &state.db,
        &choice.services,
        store::to_micros(span.from),
        store::to_micros(span.to),
    )
    .await?;
    let names = service_names(state).await?;
    let shown: Vec<&str> = offered
        .iter()
        .filter(|(id, _)| choice.services.contains(id))
        .map(|(_, name)| name.as_str())
        .collect();
    c.insert(
        "failed_rows".into(),
        json!(rows(state, &list, &names).await?),
    );
    c.insert("failed_heading".into(), json!("failed-heading"));
    c.insert("count".into(), json!(count));
    c.insert("count_text".into(), json!(dashboard::thousands(count)));
    c.insert("more".into(), json!(count > list.len() as i64));
    c.insert(
        "span".into(),
        json!({
            "label": choice.period.label(),
            "first": dashboard::long_date(span.first),
            "last": dashboard::long_date(span.last),
            "services": shown,
            "all_services": !choice.narrowed,
        }),
    );
    let back: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            query
                .0
                .iter()
                .filter(|(k, _)| k == "period" || k == "service"),
        )
        .finish();
    c.insert(
        "dashboard_href".into(),
        json!(if back.is_empty() {
            "/".to_string()
        } else {
            format!("/?{back}")
        }),
    );
    Ok(Answer::Page(render("refunds/failed", c)))
}
