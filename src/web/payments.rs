//! Finding a payment: the search page (`/payments`), a journey's page with its timeline
//! (`/payments/<id>`), and "refresh from platform". Everything is scoped to the services in
//! which the person holds `payments:read`; another service's payment answers 404.

use rocket::http::uri::Origin;
use rocket::http::Status;
use rocket::response::Redirect;
use rocket::{FromForm, Route, State};
use rocket_dyn_templates::Metadata;
use serde_json::{json, Map, Value};

use super::auth::RequestOrigin;
use super::errors::PageError;
use super::exports::search::download_href;
use super::format::{local_time, thousands};
use super::journey_lookup::{back_query, find_journey, page_href, readable_services};
use super::pages::{self, problem, render, Answer};
use super::payment_rows::{card_summary, result_rows};
use super::session::{CsrfForm, SignedIn};
use crate::audit::{self, AuditEvent};
use crate::dashboard::money;
use crate::identity::permissions::Permission;
use crate::journeys::actions::{self, Cancel, PlatformAccess, Refresh};
use crate::search::query::{self, Form, Period, Sort, StatusGroup, BRANDS, COUNT_CAP};
use crate::services::ServiceAccount;
use crate::store::journeys as journey_store;
use crate::timezone::Zone;
use crate::AppState;

pub fn routes() -> Vec<Route> {
    rocket::routes![list, journey, refresh, cancel_page, cancel]
}

fn options<T: Copy>(all: &[T], name: fn(T) -> &'static str, label: fn(T) -> &'static str) -> Value {
    Value::Array(
        all.iter()
            .map(|x| json!({"value": name(*x), "text": label(*x)}))
            .collect(),
    )
}

/// Links into case management for the journeys (id, service id, payment id, reference) whose
/// service (among `services`) has a deep-link template and which have a case reference:
/// journey id → (case reference, link).
async fn case_links(
    state: &AppState,
    services: &[ServiceAccount],
    rows: &[(i64, i64, &str, &str)],
) -> Result<std::collections::HashMap<i64, (String, String)>, PageError> {
    let templates: std::collections::HashMap<i64, &str> = services
        .iter()
        .filter_map(|s| Some((s.id, s.deep_link_template()?)))
        .collect();
    if templates.is_empty() {
        return Ok(Default::default());
    }
    let ids: Vec<i64> = rows
        .iter()
        .filter(|r| templates.contains_key(&r.1))
        .map(|r| r.0)
        .collect();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let refs: std::collections::HashMap<i64, String> =
        crate::store::service_admin::case_references(&state.db, &ids)
            .await?
            .into_iter()
            .collect();
    Ok(rows
        .iter()
        .filter_map(|&(journey, service, payment_id, reference)| {
            let template = templates.get(&service)?;
            let case_ref = refs.get(&journey)?;
            crate::integrations::deep_link::render(template, case_ref, payment_id, reference)
                .map(|link| (journey, (case_ref.clone(), link)))
        })
        .collect())
}

/// What the search box and filters show: the form as typed, its problems and the choices.
fn filters_context(
    form: &Form,
    field_errors: Map<String, Value>,
    mine: &[ServiceAccount],
    zone: Zone,
) -> Map<String, Value> {
    let mut c = Map::new();
    // The form keeps no page position, so a search paged through shows one form.
    c.insert("form".into(), json!(form.first_page()));
    // The panel opens when a filter inside it is set, or one of its fields has a problem.
    let panel_problem = field_errors.keys().any(|k| k != "q");
    c.insert("field_errors".into(), Value::Object(field_errors));
    c.insert("filtered".into(), json!(form.is_filtered()));
    c.insert(
        "filters_open".into(),
        json!(form.panel_filters_set() || panel_problem),
    );
    c.insert(
        "service_options".into(),
        Value::Array(
            mine.iter()
                .map(|s| json!({"value": s.slug, "text": s.name}))
                .collect(),
        ),
    );
    c.insert(
        "status_options".into(),
        options(&StatusGroup::ALL, StatusGroup::name, StatusGroup::label),
    );
    let mut periods = vec![json!({"value": "", "text": "All time"})];
    periods.extend(
        Period::ALL
            .iter()
            .map(|p| json!({"value": p.key(), "text": p.label()})),
    );
    c.insert("period_options".into(), Value::Array(periods));
    c.insert(
        "sort_options".into(),
        options(&Sort::ALL, Sort::name, Sort::label),
    );
    let mut brands = vec![json!({"value": "", "text": "Any card brand"})];
    brands.extend(BRANDS.iter().map(|(v, t)| json!({"value": v, "text": t})));
    c.insert("brand_options".into(), Value::Array(brands));
    c.insert(
        "date_field_options".into(),
        json!([{"value": "created", "text": "Date created"}, {"value": "settled", "text": "Date settled"}]),
    );
    c.insert(
        "reference_match_options".into(),
        json!([{"value": "exact", "text": "Exactly this reference"}, {"value": "prefix", "text": "References starting with this"}]),
    );
    c.insert(
        "attention_options".into(),
        json!([{"value": "yes", "text": "Only payments that need attention"}]),
    );
    c.insert(
        "attention_selected".into(),
        json!(if form.attention { "yes" } else { "" }),
    );
    c.insert("zone".into(), json!(zone.name()));
    c
}

/// The search box and filters as last rendered for each recent context (the form as typed,
/// its problems, the person's services, the time zone). Rendering them is some thirty
/// design-system macros, most of what the page's templates cost, and most list pages show a
/// form someone has shown before: the plain list, the same search paged through. The key is
/// the whole context, so an entry can only ever be the HTML the template would write.
#[derive(Default)]
pub struct FilterForms {
    rendered: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<str>>>,
}

impl FilterForms {
    const MAX_ENTRIES: usize = 256;

    fn render(&self, templates: &Metadata<'_>, context: Map<String, Value>) -> Option<String> {
        let context = Value::Object(context);
        let key = context.to_string();
        let known = self.rendered.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some(html) = known {
            return Some(html.to_string());
        }
        let (_, html) = templates.render("payments/filters", &context)?;
        if let Ok(mut m) = self.rendered.lock() {
            if m.len() >= Self::MAX_ENTRIES {
                m.clear();
            }
            m.insert(key, html.as_str().into());
        }
        Some(html)
    }
}

#[rocket::get("/payments")]
async fn list(
    state: &State<AppState>,
    forms: &State<FilterForms>,
    templates: Metadata<'_>,
    staff: SignedIn,
    uri: &Origin<'_>,
) -> Result<Answer, PageError> {
    let raw = uri.query().map(|q| q.as_str()).unwrap_or("");
    let form = Form::from_query(raw);
    let zone = state.config.time_zone;
    let mine = readable_services(state, &staff).await?;
    let mut c = pages::signed_in(state, &staff, "/payments");
    let mut errors: Vec<Value> = Vec::new();
    let parsed = query::parse(&form, state.clock.now(), zone);
    let mut field_errors = Map::new();
    if raw.len() > 8 * 1024 {
        errors.push(problem(
            "q",
            "Your search is too long. Enter fewer or shorter filters",
        ));
    }
    if let Err(problems) = &parsed {
        for (field, message) in problems {
            if !field_errors.contains_key(*field) {
                field_errors.insert((*field).to_string(), json!(message));
                errors.push(problem(field, message.clone()));
            }
        }
    }
    // Services asked for that the person does not hold are not searched, and not named.
    let chosen: Vec<&ServiceAccount> = if form.services.is_empty() {
        mine.iter().collect()
    } else {
        mine.iter()
            .filter(|s| form.services.contains(&s.slug))
            .collect()
    };
    if !form.services.is_empty() && chosen.is_empty() && !mine.is_empty() {
        errors.push(problem("service", "Choose services from the list"));
        field_errors.insert("service".into(), json!("Choose services from the list"));
    }
    let names: std::collections::HashMap<i64, (&str, &str)> = mine
        .iter()
        .map(|s| (s.id, (s.slug.as_str(), s.name.as_str())))
        .collect();

    if let (Ok(search), true) = (&parsed, errors.is_empty()) {
        // A journey page's "Back" returns to this very page of results.
        let back = form.to_query();
        let ids: Vec<i64> = chosen.iter().map(|s| s.id).collect();
        let results = crate::search::run_with(&state.db, Some(&state.counts), &ids, search).await?;
        let links = case_links(
            state,
            &mine,
            &results
                .rows
                .iter()
                .map(|r| {
                    (
                        r.id,
                        r.service_id,
                        r.payment_id.as_str(),
                        r.reference.as_str(),
                    )
                })
                .collect::<Vec<_>>(),
        )
        .await?;
        let rows_html = result_rows(&results.rows, &names, &links, &back, zone);
        let count_text = if results.count_capped() {
            format!("More than {} payments", thousands(COUNT_CAP))
        } else if results.count == 1 {
            "1 payment".to_string()
        } else {
            format!("{} payments", thousands(results.count))
        };
        let link = |after: Option<&String>, before: Option<&String>| {
            let mut f = form.first_page();
            f.after = after.cloned().unwrap_or_default();
            f.before = before.cloned().unwrap_or_default();
            format!("/payments?{}", f.to_query())
        };
        // What the results add up to, and their download, when the count is whole; the
        // download only where the person may export every service searched.
        let may_download = !chosen.is_empty()
            && chosen
                .iter()
                .all(|s| staff.grants.can(Permission::ExportsCreate, s.id));
        let totals = results.totals.filter(|_| results.count > 0).map(|t| {
            json!({
                "amount": crate::money::pounds(t.amount),
                "taken": crate::money::pounds(t.taken),
            })
        });
        let download_href = (may_download && results.totals.is_some() && results.count > 0)
            .then(|| download_href(&form));
        c.insert(
            "results".into(),
            json!({
                "rows_html": rows_html,
                "has_rows": !results.rows.is_empty(),
                "count_text": count_text,
                "totals": totals,
                "download_href": download_href,
                "count_capped": results.count_capped(),
                "next_href": results.next.as_ref().map(|n| link(Some(n), None)),
                "prev_href": results.previous.as_ref().map(|p| link(None, Some(p))),
                "first_href": search.cursor.map(|_| link(None, None)),
                "understood": search.text.as_ref().map(|t| t.explain()),
                "agreement": agreement_named(state, &staff, &chosen, search).await?,
            }),
        );
    }
    c.insert("form".into(), json!(form));
    c.insert("errors".into(), Value::Array(errors.clone()));
    c.insert("has_services".into(), json!(!mine.is_empty()));
    c.insert("zone".into(), json!(zone.name()));
    let filters = filters_context(&form, field_errors, &mine, zone);
    c.insert(
        "filters_html".into(),
        Value::String(forms.render(&templates, filters).ok_or_else(|| {
            PageError::internal(
                "the payments filter form did not render (see the template error above)",
            )
        })?),
    );
    let page = render("payments/index", c);
    // A search with problems is still a page the person asked for: 200, with the form kept.
    Ok(Answer::Page(page))
}

/// The recurring agreement a search is narrowed to, as its summary line names it: its
/// reference (its id when paydesk does not hold it in the services searched), linked for
/// whoever may read agreements in its service.
async fn agreement_named(
    state: &AppState,
    staff: &SignedIn,
    chosen: &[&ServiceAccount],
    search: &query::Search,
) -> Result<Value, PageError> {
    let Some(id) = &search.agreement else {
        return Ok(Value::Null);
    };
    let ids: Vec<i64> = chosen.iter().map(|s| s.id).collect();
    let found = crate::agreements::find(&state.db, &ids, id).await?;
    let href = found.as_ref().and_then(|a| {
        let s = chosen.iter().find(|s| s.id == a.service_id)?;
        staff
            .grants
            .can(Permission::AgreementsRead, s.id)
            .then(|| format!("/agreements/{}/{}", s.slug, a.agreement_id))
    });
    Ok(json!({
        "agreement_id": id,
        "reference": found.map_or_else(|| id.clone(), |a| a.reference),
        "href": href,
    }))
}

#[allow(clippy::too_many_arguments)]
#[rocket::get("/payments/<id>?<service>&<events>&<notice>&<back>")]
async fn journey(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    service: Option<&str>,
    events: Option<&str>,
    notice: Option<&str>,
    back: Option<&str>,
) -> Result<Answer, PageError> {
    let (svc, j) = find_journey(state, &staff, id, service).await?;
    let back = back_query(back);
    let zone = state.config.time_zone;
    let now = state.clock.now();
    // Who looked at whose personal data: recorded before the page is shown.
    audit::record(
        &state.db,
        now,
        AuditEvent::new(
            staff.actor(),
            "sensitive_read",
            format!("payment:{}", j.payment_id),
        )
        .from_ip(origin.0.ip.clone())
        .details(json!({"service": svc.slug, "what": "journey page"})),
    )
    .await?;
    let (timeline, refunds) = tokio::try_join!(
        journey_store::events(&state.db, j.id),
        journey_store::refunds_of(&state.db, svc.id, &j.payment_id)
    )?;

    let case_link = case_links(
        state,
        std::slice::from_ref(&svc),
        &[(j.id, svc.id, j.payment_id.as_str(), j.reference.as_str())],
    )
    .await?
    .remove(&j.id)
    .map(|(_, link)| link);
    let mut c = pages::signed_in(state, &staff, "/payments");
    let group = StatusGroup::of(&j.status, j.state_code.as_deref());
    // The refund figures every page shows, from the refunds capability (open requests count).
    let figures =
        crate::refunds::figures::of_journey(&state.db, svc.id, &j.payment_id, j.id).await?;
    let metadata: Vec<Value> = j
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Map<String, Value>>(m).ok())
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    json!({"key": k, "value": text})
                })
                .collect()
        })
        .unwrap_or_default();

    // The timeline, newest first. The "show all events" toggle adds the webhooks received and
    // repeated observations; the default shows what changed.
    let show_all = events == Some("all");
    let entries: Vec<Value> = crate::journeys::timeline::entries(&j, &timeline, show_all)
        .iter()
        .map(|e| {
            json!({
                "when": local_time(zone, e.at),
                "title": e.title,
                "text": e.text,
                "source": e.source_label(),
                "batch": e.batch,
            })
        })
        .collect();

    c.insert(
        "journey".into(),
        json!({
            "payment_id": j.payment_id,
            "redacted": j.redacted_at.map(|at| crate::personal_data::retention::redacted_notice(
                crate::store::from_micros(at).to_offset(zone.offset_at(crate::store::from_micros(at))))),
            "service": svc.name,
            "service_slug": svc.slug,
            "amount": money(j.amount),
            "status": group.name(),
            "status_raw": j.status,
            "code": j.state_code,
            "message": j.state_message,
            "reference": j.reference,
            "description": j.description,
            "email": j.email,
            "cardholder_name": j.cardholder_name,
            "card_brand": card_summary(j.card_brand.as_deref(), None),
            "card_type": j.card_type,
            "first_digits": j.first_digits,
            "last_digits": j.last_digits,
            "expiry": j.expiry_date,
            "wallet": j.wallet_type,
            "provider": j.payment_provider,
            "provider_id": j.provider_id,
            "created": local_time(zone, j.created_at),
            "captured": j.captured_date,
            "settled": j.settled_date,
            "fee": j.fee.map(money),
            "net": j.net_amount.map(money),
            "surcharge": j.corporate_surcharge.map(money),
            "total": j.total_amount.map(money),
            "metadata": metadata,
            "case_reference": j.case_reference,
            "case_link": case_link,
            "attention": j.attention_reason.as_ref().filter(|_| j.needs_attention),
            "observed": local_time(zone, j.observed_at),
            "refunded": money(figures.refunded),
            "pending": money(figures.pending),
            "refundable": j.refund_available.map(|_| money(figures.available)),
            "refund_status": j.refund_status,
        }),
    );
    c.insert(
        "refunds".into(),
        Value::Array(
            refunds
                .iter()
                .map(|r| {
                    json!({
                        "id": r.refund_id,
                        "amount": money(r.amount),
                        "status": r.status,
                        "created": local_time(zone, r.created_at),
                        "settled": r.settled_date,
                    })
                })
                .collect(),
        ),
    );
    c.insert("timeline".into(), Value::Array(entries));
    let refund_part =
        super::refunds::journey_section(state, &staff, &svc, &j, &figures, &back).await?;
    c.insert("refund_requests".into(), refund_part);
    let disputes = super::disputes::panel(state, svc.id, &j.payment_id).await?;
    c.insert("disputes".into(), disputes);
    c.insert(
        "agreement".into(),
        super::agreements::payment_link(state, &staff, &svc, &j.payment_id).await?,
    );
    c.insert(
        "personal_hold".into(),
        super::holds::payment_panel(state, &staff, &svc, j.id, &j.payment_id, zone).await?,
    );
    c.insert("show_all".into(), json!(show_all));
    c.insert(
        "all_href".into(),
        json!(page_href(
            &j.payment_id,
            &svc.slug,
            &back,
            &[("events", "all")]
        )),
    );
    c.insert(
        "changes_href".into(),
        json!(page_href(&j.payment_id, &svc.slug, &back, &[])),
    );
    let id_path: String = url::form_urlencoded::byte_serialize(j.payment_id.as_bytes()).collect();
    c.insert(
        "refresh_action".into(),
        json!(format!("/payments/{id_path}/refresh")),
    );
    c.insert("back".into(), json!(back));
    c.insert("back_href".into(), json!(format!("/payments?{back}")));
    c.insert("zone".into(), json!(zone.name()));
    // A payment still in progress can be cancelled by those allowed to.
    if !j.finished && staff.grants.can(Permission::PaymentsCancel, svc.id) {
        c.insert(
            "cancel_href".into(),
            json!(format!("/payments/{id_path}/cancel?service={}", svc.slug)),
        );
    }
    let refund_notice = super::refunds::journey_notice(state, &j, notice).await?;
    let notice = match notice {
        _ if refund_notice.is_some() => refund_notice.as_deref().unwrap_or_default(),
        Some("refreshed") => "The payment has been read again from the platform.",
        Some("cancelled") => "The payment has been cancelled. The payer can no longer pay it.",
        Some("finished") => "The payment had already finished, so there was nothing to cancel.",
        Some("unchanged") => {
            "The payment has been read again from the platform. Nothing had changed."
        }
        _ => "",
    };
    c.insert("notice".into(), json!(notice));
    Ok(Answer::Page(render("payments/show", c)))
}

#[derive(FromForm)]
struct RefreshForm {
    service: String,
    back: Option<String>,
}

#[rocket::post("/payments/<id>/refresh", data = "<form>")]
async fn refresh(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<RefreshForm>,
) -> Result<Answer, PageError> {
    let (svc, j) = find_journey(state, &staff, id, Some(form.0.service.as_str())).await?;
    let back_to = back_query(form.0.back.as_deref());
    let notice = match actions::refresh(
        &state.db,
        state.clock.now(),
        platform_access(state),
        &svc,
        &j,
        &acting(&staff, &origin),
    )
    .await?
    {
        Refresh::Changed => "refreshed",
        Refresh::Unchanged => "unchanged",
        Refresh::NoAnswer => return Ok(no_answer(state, &staff, &svc, &j)),
    };
    Ok(Answer::Redirect(Redirect::to(page_href(
        &j.payment_id,
        &svc.slug,
        &back_to,
        &[("notice", notice)],
    ))))
}

/// Who is acting, as the journeys capability records them.
fn acting(staff: &SignedIn, origin: &RequestOrigin) -> crate::refunds::Staff {
    crate::refunds::Staff {
        id: staff.staff.id,
        email: staff.staff.email.clone(),
        name: staff.staff.name.clone(),
        ip: origin.0.ip.clone(),
    }
}

fn platform_access(state: &AppState) -> PlatformAccess<'_> {
    PlatformAccess {
        config: &state.config,
        platforms: &state.platforms,
    }
}

/// The platform did not answer a refresh or a cancel (already audited): the page says so.
fn no_answer(
    state: &AppState,
    staff: &SignedIn,
    svc: &ServiceAccount,
    j: &journey_store::JourneyRow,
) -> Answer {
    let mut c = pages::signed_in(state, staff, "/payments");
    c.insert("title".into(), json!("The platform did not answer"));
    c.insert(
        "message".into(),
        json!("paydesk could not read this payment from the payment platform just now. The page shows what paydesk last saw. Try again in a few minutes."),
    );
    c.insert(
        "back_href".into(),
        json!(page_href(&j.payment_id, &svc.slug, "", &[])),
    );
    Answer::Status((Status::BadGateway, render("payments/refresh_failed", c)))
}

/// Cancelling a payment still in progress: a confirmation page first.
#[rocket::get("/payments/<id>/cancel?<service>")]
async fn cancel_page(
    state: &State<AppState>,
    staff: SignedIn,
    id: &str,
    service: Option<&str>,
) -> Result<Answer, PageError> {
    let (svc, j) = find_journey(state, &staff, id, service).await?;
    if !staff.grants.can(Permission::PaymentsCancel, svc.id) {
        return Err(Status::Forbidden.into());
    }
    let mut c = pages::signed_in(state, &staff, "/payments");
    let id_path: String = url::form_urlencoded::byte_serialize(j.payment_id.as_bytes()).collect();
    c.insert(
        "journey".into(),
        json!({
            "reference": j.reference,
            "service": svc.name,
            "service_slug": svc.slug,
            "amount": money(j.amount),
            "status": j.status,
            "finished": j.finished,
        }),
    );
    c.insert(
        "action".into(),
        json!(format!("/payments/{id_path}/cancel")),
    );
    c.insert(
        "back_href".into(),
        json!(page_href(&j.payment_id, &svc.slug, "", &[])),
    );
    Ok(Answer::Page(render("payments/cancel", c)))
}

#[derive(FromForm)]
struct CancelForm {
    service: String,
}

#[rocket::post("/payments/<id>/cancel", data = "<form>")]
async fn cancel(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<CancelForm>,
) -> Result<Answer, PageError> {
    let (svc, j) = find_journey(state, &staff, id, Some(form.0.service.as_str())).await?;
    if !staff.grants.can(Permission::PaymentsCancel, svc.id) {
        return Err(Status::Forbidden.into());
    }
    let outcome = actions::cancel(
        &state.db,
        state.clock.now(),
        platform_access(state),
        &svc,
        &j.payment_id,
        &acting(&staff, &origin),
    )
    .await?;
    let notice = match outcome {
        Cancel::Done => "cancelled",
        Cancel::AlreadyFinished => "finished",
        Cancel::Refused(message) => {
            let mut c = pages::signed_in(state, &staff, "/payments");
            c.insert(
                "title".into(),
                json!("The platform did not cancel the payment"),
            );
            c.insert(
                "message".into(),
                json!(format!(
                    "The payment platform refused to cancel this payment: {message}"
                )),
            );
            c.insert(
                "back_href".into(),
                json!(page_href(&j.payment_id, &svc.slug, "", &[])),
            );
            return Ok(Answer::Status((
                Status::Conflict,
                render("payments/refresh_failed", c),
            )));
        }
        Cancel::NoAnswer => return Ok(no_answer(state, &staff, &svc, &j)),
    };
    Ok(Answer::Redirect(Redirect::to(page_href(
        &j.payment_id,
        &svc.slug,
        "",
        &[("notice", notice)],
    ))))
}
