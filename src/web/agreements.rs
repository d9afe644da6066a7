//! Recurring agreements for caseworkers (`/agreements`): a list searched by reference, status
//! and service, newest first; and one agreement's page with its payer, its card summary and
//! its status history. The rules and the reads live in `crate::agreements`.

use std::collections::BTreeSet;

use rocket::form::FromForm;
use rocket::http::Status;
use rocket::response::Redirect;
use rocket::State;
use serde_json::{json, Value};

use crate::agreements::cancel::{self as cancelling, Asked, Refusal};
use crate::agreements::{self, status_label, ListQuery};
use crate::audit::Actor;
use crate::identity::permissions::Permission;
use crate::store::agreements::AgreementRow;
use crate::web::auth::RequestOrigin;
use crate::web::dashboard::QueryPairs;
use crate::web::errors::PageError;
use crate::web::format::local_time;
use crate::web::list_filters::{ListFilters, ListPage};
use crate::web::pages::{self, problem, render, Answer};
use crate::web::session::CsrfForm;
use crate::web::session::SignedIn;
use crate::web::stepup;
use crate::AppState;

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![list_page, show_page, cancel_page, cancel]
}

const STATUSES: [&str; 4] = ["created", "active", "cancelled", "inactive"];

fn colour(status: &str) -> &'static str {
    match status {
        "active" => "green",
        "created" => "blue",
        "cancelled" => "red",
        _ => "grey",
    }
}

/// An agreement as a table row or a summary list shows it.
fn view(state: &AppState, a: &AgreementRow, slug: &str, service: &str) -> Value {
    let zone = state.config.time_zone;
    json!({
        "agreement_id": a.agreement_id,
        "reference": a.reference,
        "description": a.description,
        "user_identifier": a.user_identifier,
        "status": a.status,
        "status_text": status_label(&a.status),
        "status_colour": colour(&a.status),
        "card_brand": a.card_brand,
        "card_last4": a.card_last4,
        "card_expiry": a.card_expiry,
        "card_type": a.card_type,
        "created": local_time(zone, a.created_at),
        "cancelled": a.cancelled_at.map(|t| local_time(zone, t)),
        "href": format!("/agreements/{}/{}", slug, a.agreement_id),
        "service": service,
        "service_slug": slug,
    })
}

/// The services whose agreements `staff` may read.
async fn offered(
    state: &AppState,
    staff: &SignedIn,
) -> Result<Vec<crate::services::ServiceAccount>, PageError> {
    let allowed: Option<BTreeSet<i64>> = staff.grants.services_with(Permission::AgreementsRead);
    Ok(crate::services::all(&state.db)
        .await?
        .into_iter()
        .filter(|s| allowed.as_ref().is_none_or(|a| a.contains(&s.id)))
        .collect())
}

#[rocket::get("/agreements")]
async fn list_page(
    state: &State<AppState>,
    staff: SignedIn,
    query: QueryPairs,
) -> Result<Answer, PageError> {
    let mut c = pages::signed_in(state, &staff, "/agreements");
    let offered = offered(state, &staff).await?;
    let offered: Vec<&crate::services::ServiceAccount> = offered.iter().collect();
    let mut f = ListFilters::new(&query);
    let (reference, status, service) = (f.get("reference"), f.get("status"), f.get("service"));
    let page = ListFilters::page(&f.get("page"));
    if reference.chars().count() > 255 {
        f.refuse("reference", "Reference must be 255 characters or fewer");
    }
    let chosen_status = f.status(&status, &STATUSES);
    let services = f.services(&service, &offered);
    let (rows, total) = if f.ok() {
        agreements::list(
            &state.db,
            &ListQuery {
                services,
                reference: (!reference.is_empty()).then(|| reference.clone()),
                status: chosen_status,
                page,
            },
        )
        .await?
    } else {
        (Vec::new(), 0)
    };
    let shown: Vec<Value> = rows
        .iter()
        .map(|a| {
            let s = offered.iter().find(|s| s.id == a.service_id);
            view(
                state,
                a,
                s.map_or("", |s| s.slug.as_str()),
                s.map_or("", |s| s.name.as_str()),
            )
        })
        .collect();
    f.finish(
        &mut c,
        ListPage {
            path: "/agreements",
            rows: shown,
            total,
            page,
            page_size: agreements::PAGE_SIZE,
            fields: &[
                ("reference", reference.as_str()),
                ("status", status.as_str()),
                ("service", service.as_str()),
            ],
            statuses: &STATUSES,
            status_label,
            offered: &offered,
        },
    );
    c.insert("zone".into(), json!(state.config.time_zone.name()));
    Ok(Answer::Page(render("agreements/index", c)))
}

#[rocket::get("/agreements/<service>/<id>")]
async fn show_page(
    state: &State<AppState>,
    staff: SignedIn,
    service: &str,
    id: &str,
) -> Result<Answer, PageError> {
    // Another service's agreement, or one the person may not read, is simply not found.
    let offered = offered(state, &staff).await?;
    let Some(s) = offered.iter().find(|s| s.slug == service) else {
        return Err(PageError::Status(Status::NotFound));
    };
    let Some(a) = agreements::get(&state.db, s.id, id).await? else {
        return Err(PageError::Status(Status::NotFound));
    };
    let zone = state.config.time_zone;
    let history: Vec<Value> = agreements::history(&state.db, s.id, id)
        .await?
        .into_iter()
        .map(|(status, at, source)| {
            json!({
                "status_text": status_label(&status),
                "at": local_time(zone, at),
                "observed": source == "observed",
            })
        })
        .collect();
    let latest = cancelling::latest(&state.db, s.id, id).await?;
    let pending = latest.as_ref().is_some_and(|l| l.state == "pending");
    let mut c = pages::signed_in(state, &staff, "/agreements");
    c.insert("agreement".into(), view(state, &a, &s.slug, &s.name));
    c.insert(
        "cancellation".into(),
        json!(latest.map(|l| json!({"state": l.state, "outcome": l.outcome}))),
    );
    c.insert(
        "may_cancel".into(),
        json!(
            a.status == "active"
                && !pending
                && staff.grants.can(Permission::AgreementsCancel, s.id)
        ),
    );
    c.insert(
        "cancel_href".into(),
        json!(format!("/agreements/{}/{}/cancel", s.slug, a.agreement_id)),
    );
    c.insert("history".into(), Value::Array(history));
    let payments: Vec<Value> = agreements::payments(&state.db, s.id, id)
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "reference": p.reference.unwrap_or_else(|| p.payment_id.clone()),
                "href": crate::web::journey_lookup::page_href(&p.payment_id, &s.slug, "", &[]),
                "amount": p.amount.map(crate::money::pounds),
                "status": p.status,
                "created": p.created_at.map(|t| local_time(zone, t)),
            })
        })
        .collect();
    // The payments search, narrowed to this agreement, for whoever may search payments here.
    let search_href = staff.grants.can(Permission::PaymentsRead, s.id).then(|| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("service", &s.slug);
        q.append_pair("agreement", &a.agreement_id);
        format!("/payments?{}", q.finish())
    });
    c.insert("payments_search_href".into(), json!(search_href));
    c.insert("payments".into(), Value::Array(payments));
    c.insert("zone".into(), json!(zone.name()));
    Ok(Answer::Page(render("agreements/show", c)))
}

/// The agreement `id` of service `slug`, if `staff` may cancel agreements there; otherwise
/// not found (another service's agreement is not shown to exist).
async fn cancellable(
    state: &AppState,
    staff: &SignedIn,
    slug: &str,
    id: &str,
) -> Result<(crate::services::ServiceAccount, AgreementRow), PageError> {
    let allowed = staff.grants.services_with(Permission::AgreementsCancel);
    let service = crate::services::all(&state.db)
        .await?
        .into_iter()
        .find(|s| s.slug == slug && allowed.as_ref().is_none_or(|a| a.contains(&s.id)))
        .ok_or(PageError::Status(Status::NotFound))?;
    let agreement = agreements::get(&state.db, service.id, id)
        .await?
        .ok_or(PageError::Status(Status::NotFound))?;
    Ok((service, agreement))
}

fn cancel_context(
    state: &AppState,
    staff: &SignedIn,
    service: &crate::services::ServiceAccount,
    a: &AgreementRow,
    reason: &str,
    problem_text: Option<&str>,
) -> serde_json::Map<String, Value> {
    let mut c = pages::signed_in(state, staff, "/agreements");
    let back = format!("/agreements/{}/{}", service.slug, a.agreement_id);
    let refusal = (a.status != "active").then(|| Refusal::NotActive(a.status.clone()).message());
    c.insert(
        "agreement".into(),
        view(state, a, &service.slug, &service.name),
    );
    c.insert("action".into(), json!(format!("{back}/cancel")));
    c.insert("back_href".into(), json!(back));
    c.insert("reason".into(), json!(reason));
    c.insert("refusal".into(), json!(refusal));
    let (errors, field_errors) = match problem_text {
        Some(m) => (vec![problem("reason", m)], json!({"reason": m})),
        None => (Vec::new(), json!({})),
    };
    c.insert("errors".into(), Value::Array(errors));
    c.insert("field_errors".into(), field_errors);
    c
}

#[rocket::get("/agreements/<service>/<id>/cancel")]
async fn cancel_page(
    state: &State<AppState>,
    staff: SignedIn,
    service: &str,
    id: &str,
) -> Result<Answer, PageError> {
    let (svc, a) = cancellable(state, &staff, service, id).await?;
    let c = cancel_context(state, &staff, &svc, &a, "", None);
    Ok(Answer::Page(render("agreements/cancel", c)))
}

/// The cancel form, as posted (and as the "Confirm it's you" page sends it on).
#[derive(FromForm, Default, Debug)]
struct CancelFields {
    #[field(default = String::new())]
    reason: String,
    #[field(default = String::new())]
    code: String,
    #[field(default = String::new())]
    stepping_up: String,
}

#[rocket::post("/agreements/<service>/<id>/cancel", data = "<form>")]
async fn cancel(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    service: &str,
    id: &str,
    form: CsrfForm<CancelFields>,
) -> Result<Answer, PageError> {
    let f = form.0;
    let (svc, a) = cancellable(state, &staff, service, id).await?;
    let back = format!("/agreements/{}/{}", svc.slug, a.agreement_id);
    if let Err(Refusal::Reason(m)) = cancelling::check_reason(&f.reason) {
        let c = cancel_context(state, &staff, &svc, &a, &f.reason, Some(m));
        return Ok(Answer::Invalid(render("agreements/cancel", c)));
    }
    let gate = stepup::Gate {
        code: &f.code,
        stepping_up: &f.stepping_up,
        what: "agreement_cancel",
        action: format!("{back}/cancel"),
        hidden: vec![("reason", f.reason.clone()), ("stepping_up", "1".into())],
        purpose: format!("cancel agreement {}", a.reference),
        button: "Cancel the agreement",
        back: format!("{back}/cancel"),
    };
    if let Some(page) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(page);
    }
    let actor = Actor::staff(staff.staff.id, &staff.staff.email);
    let asked = cancelling::ask(
        &state.db,
        state.clock.now(),
        actor,
        origin.0.ip.clone(),
        svc.id,
        &a.agreement_id,
        &f.reason,
    )
    .await
    .map_err(PageError::internal)?;
    match asked {
        // Sent on (or already on its way): the agreement's page shows how it goes.
        Ok(Asked::Queued(_)) | Ok(Asked::AlreadyPending) => {
            Ok(Answer::Redirect(Redirect::to(back)))
        }
        Err(Refusal::NotFound) => Err(PageError::Status(Status::NotFound)),
        Err(Refusal::Reason(m)) => {
            let c = cancel_context(state, &staff, &svc, &a, &f.reason, Some(m));
            Ok(Answer::Invalid(render("agreements/cancel", c)))
        }
        // Ended since the form was shown: the page says so in plain words.
        Err(Refusal::NotActive(_)) => {
            let fresh = agreements::get(&state.db, svc.id, &a.agreement_id)
                .await?
                .unwrap_or(a);
            let c = cancel_context(state, &staff, &svc, &fresh, &f.reason, None);
            Ok(Answer::Page(render("agreements/cancel", c)))
        }
    }
}

/// The agreement a payment was taken under, for the payment's page: linked for whoever may
/// read agreements in its service (null when it was taken under none).
pub async fn payment_link(
    state: &AppState,
    staff: &SignedIn,
    service: &crate::services::ServiceAccount,
    payment_id: &str,
) -> Result<Value, PageError> {
    let Some(id) = agreements::of_payment(&state.db, service.id, payment_id).await? else {
        return Ok(Value::Null);
    };
    let stored = agreements::get(&state.db, service.id, &id).await?;
    let may = staff.grants.can(Permission::AgreementsRead, service.id);
    Ok(json!({
        "agreement_id": id,
        "reference": stored.as_ref().map(|a| a.reference.clone()),
        "href": (may && stored.is_some()).then(|| format!("/agreements/{}/{}", service.slug, id)),
    }))
}
