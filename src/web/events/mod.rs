//! Outbound event pages (`integrations:manage`, each person only in their own services): the
//! endpoints of every service they manage, adding and changing one, its secret (shown once,
//! rotated with an overlap), turning it on and off, and its delivery log with replays. The
//! rules and every change live in `crate::integrations::events`; this module reads forms,
//! shows pages and says what happened. Another service's endpoint answers 404.

use std::collections::HashMap;

use rocket::form::FromForm;
use rocket::http::{CookieJar, Status};
use rocket::response::Redirect;
use rocket::{Route, State};
use serde_json::{json, Map, Value};

use super::auth::RequestOrigin;
use super::errors::PageError;
use super::format::local_time;
use super::pages::{self, problem, render, Answer};
use super::session::{CsrfForm, SignedIn};
use super::stepup;
use crate::identity::permissions::Permission;
use crate::integrations::events::{self, EndpointInput, EventType, ReplayRefusal};
use crate::services::{self, ServiceAccount};
use crate::store;
use crate::store::events::{self as event_store, EndpointRow};
use crate::AppState;

mod secret;
use secret::show_secret;

const SECRET_STEP_UP: &str = "event endpoint secret"; // the step-up's name in the audit log

pub fn routes() -> Vec<Route> {
    rocket::routes![
        index,
        new_form,
        create,
        show,
        edit_form,
        edit,
        enable,
        disable,
        rotate,
        secret::secret,
        replay,
        replay_failed
    ]
}

/// Messages shown per page of the delivery log.
const LOG_PAGE: i64 = 25;

/// The services in which this person manages integrations.
async fn manageable(state: &AppState, staff: &SignedIn) -> Result<Vec<ServiceAccount>, PageError> {
    let all = services::all(&state.db).await?;
    Ok(
        match staff.grants.services_with(Permission::IntegrationsManage) {
            None => all,
            Some(ids) => all.into_iter().filter(|s| ids.contains(&s.id)).collect(),
        },
    )
}

/// An endpoint this person may manage, with its service; anything else is 404.
async fn endpoint_of(
    state: &AppState,
    staff: &SignedIn,
    id: &str,
) -> Result<(EndpointRow, ServiceAccount), PageError> {
    let id = id.parse::<i64>().map_err(|_| Status::NotFound)?;
    let endpoint = event_store::endpoint(&state.db, id)
        .await?
        .ok_or(Status::NotFound)?;
    if !staff
        .grants
        .can(Permission::IntegrationsManage, endpoint.service_id)
    {
        return Err(Status::NotFound.into());
    }
    let service = services::by_id(&state.db, endpoint.service_id)
        .await?
        .ok_or(Status::NotFound)?;
    Ok((endpoint, service))
}

fn endpoint_href(id: i64) -> String {
    format!("/integrations/events/{id}")
}

/// The types an endpoint listens to, as people read them.
fn type_names(endpoint: &EndpointRow) -> Vec<&'static str> {
    events::types_of(endpoint)
        .into_iter()
        .map(EventType::name)
        .collect()
}

fn status_tag(endpoint: &EndpointRow) -> Value {
    if endpoint.enabled {
        json!({"text": "Enabled", "colour": "green"})
    } else {
        json!({"text": "Disabled", "colour": "grey"})
    }
}

#[rocket::get("/integrations/events")]
async fn index(state: &State<AppState>, staff: SignedIn) -> Result<Answer, PageError> {
    let services = manageable(state, &staff).await?;
    let endpoints = event_store::all_endpoints(&state.db).await?;
    let mut by_service: HashMap<i64, Vec<Value>> = HashMap::new();
    for e in endpoints {
        if !services.iter().any(|s| s.id == e.service_id) {
            continue;
        }
        by_service.entry(e.service_id).or_default().push(json!({
            "href": endpoint_href(e.id),
            "url": e.url,
            "description": e.description,
            "types": type_names(&e).join(", "),
            "status": status_tag(&e),
        }));
    }
    let rows: Vec<Value> = services
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "slug": s.slug,
                "new_href": format!("/integrations/events/new?service={}", s.slug),
                "endpoints": by_service.remove(&s.id).unwrap_or_default(),
            })
        })
        .collect();
    let mut c = pages::signed_in(state, &staff, "/integrations/events");
    c.insert("services".into(), Value::Array(rows));
    Ok(Answer::Page(render("events/index", c)))
}

/// An endpoint's form, as posted (and as the step-up page carries it back).
#[derive(FromForm, Default, Debug, Clone)]
pub struct EndpointFields {
    #[field(default = String::new())]
    service: String,
    #[field(default = String::new())]
    url: String,
    #[field(default = String::new())]
    description: String,
    #[field(default = Vec::new())]
    event_types: Vec<String>,
    #[field(default = String::new())]
    code: String,
    #[field(default = String::new())]
    stepping_up: String,
}

impl EndpointFields {
    fn input(&self) -> EndpointInput {
        EndpointInput {
            url: self.url.clone(),
            description: self.description.clone(),
            event_types: self.event_types.clone(),
        }
    }

    fn hidden(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("service", self.service.clone()),
            ("url", self.url.clone()),
            ("description", self.description.clone()),
        ];
        for t in &self.event_types {
            h.push(("event_types", t.clone()));
        }
        h.push(("stepping_up", "1".into()));
        h
    }
}

/// Longest value a form shows again.
const ECHO_LIMIT: usize = 2_100;

fn cut(s: &str) -> String {
    s.chars().take(ECHO_LIMIT).collect()
}

/// The endpoint form's page. `editing` is the endpoint being changed, if any.
fn form_page(
    state: &AppState,
    staff: &SignedIn,
    services: &[ServiceAccount],
    editing: Option<(&EndpointRow, &ServiceAccount)>,
    fields: &EndpointFields,
    problems: &[(&'static str, String)],
) -> Map<String, Value> {
    let mut c = pages::signed_in(state, staff, "/integrations/events");
    let errors: Vec<Value> = problems
        .iter()
        .map(|(f, m)| problem(f, m.clone()))
        .collect();
    let field_error = |name: &str| {
        problems
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };
    c.insert("errors".into(), Value::Array(errors));
    c.insert(
        "field_errors".into(),
        json!({
            "service": field_error("service"),
            "url": field_error("url"),
            "description": field_error("description"),
            "event_types": field_error("event_types"),
        }),
    );
    c.insert(
        "kept".into(),
        json!({
            "service": cut(&fields.service),
            "url": cut(&fields.url),
            "description": cut(&fields.description),
            "event_types": fields.event_types.iter().map(|t| cut(t)).collect::<Vec<_>>(),
        }),
    );
    c.insert(
        "type_options".into(),
        Value::Array(
            EventType::ALL
                .iter()
                .map(
                    |t| json!({"value": t.name(), "text": format!("{} ({})", t.name(), t.label())}),
                )
                .collect(),
        ),
    );
    c.insert(
        "service_options".into(),
        Value::Array(
            services
                .iter()
                .map(|s| json!({"value": s.slug, "text": s.name}))
                .collect(),
        ),
    );
    match editing {
        Some((e, s)) => {
            c.insert(
                "action".into(),
                json!(format!("{}/edit", endpoint_href(e.id))),
            );
            c.insert("back_href".into(), json!(endpoint_href(e.id)));
            c.insert("editing".into(), json!(true));
            c.insert("service_name".into(), json!(s.name));
        }
        None => {
            c.insert("action".into(), json!("/integrations/events/new"));
            c.insert("back_href".into(), json!("/integrations/events"));
            c.insert("editing".into(), json!(false));
        }
    }
    c
}

#[rocket::get("/integrations/events/new?<service>")]
async fn new_form(
    state: &State<AppState>,
    staff: SignedIn,
    service: Option<&str>,
) -> Result<Answer, PageError> {
    let services = manageable(state, &staff).await?;
    let chosen = match service {
        Some(slug) => services
            .iter()
            .find(|s| s.slug == slug)
            .ok_or(Status::NotFound)?
            .slug
            .clone(),
        None if services.len() == 1 => services[0].slug.clone(),
        None => String::new(),
    };
    let fields = EndpointFields {
        service: chosen,
        ..Default::default()
    };
    let c = form_page(state, &staff, &services, None, &fields, &[]);
    Ok(Answer::Page(render("events/form", c)))
}

#[rocket::post("/integrations/events/new", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn create(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    jar: &CookieJar<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    form: CsrfForm<EndpointFields>,
) -> Result<Answer, PageError> {
    let f = form.0;
    let services = manageable(state, &staff).await?;
    let Some(service) = services.iter().find(|s| s.slug == f.service).cloned() else {
        let problems = [(
            "service",
            "Choose the service whose events these are".to_string(),
        )];
        let c = form_page(state, &staff, &services, None, &f, &problems);
        return Ok(Answer::Invalid(render("events/form", c)));
    };
    if let Err(problems) = events::check(&state.config, &f.input()).await {
        let c = form_page(state, &staff, &services, None, &f, &problems);
        return Ok(Answer::Invalid(render("events/form", c)));
    }
    let gate = stepup::Gate {
        code: &f.code,
        stepping_up: &f.stepping_up,
        what: SECRET_STEP_UP,
        action: "/integrations/events/new".into(),
        hidden: f.hidden(),
        purpose: "add an event endpoint and make its signing secret".into(),
        button: "Add endpoint",
        back: "/integrations/events".into(),
    };
    if let Some(page) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(page);
    }
    let made = events::create(
        &state.db,
        &state.config,
        state.clock.now(),
        staff.actor(),
        origin.0.ip.clone(),
        service.id,
        Some(staff.staff.id),
        &f.input(),
    )
    .await?;
    match made {
        Ok((id, secret)) => Ok(show_secret(jar, state, id, secret, None)),
        Err(problems) => {
            let c = form_page(state, &staff, &services, None, &f, &problems);
            Ok(Answer::Invalid(render("events/form", c)))
        }
    }
}

/// Words for the notices the endpoint page shows after a change.
fn notice_text(notice: &str) -> Option<String> {
    Some(match notice {
        "updated" => "The endpoint was changed".into(),
        "enabled" => "The endpoint was enabled".into(),
        "disabled" => "The endpoint was disabled: no events go to it".into(),
        "replayed" => "The message will be sent again in a moment".into(),
        n => {
            let count = n.strip_prefix("replayed-")?.parse::<u64>().ok()?;
            if count == 1 {
                "1 failed message will be sent again in a moment".into()
            } else {
                format!("{count} failed messages will be sent again in a moment")
            }
        }
    })
}

fn delivery_status(status: &str) -> (&'static str, &'static str) {
    match status {
        "pending" => ("Pending", "blue"),
        "retrying" => ("Retrying", "yellow"),
        "succeeded" => ("Delivered", "green"),
        "failed" => ("Failed", "red"),
        _ => ("Unknown", "grey"),
    }
}

/// The endpoint page's context: its details, actions and one page of its delivery log.
async fn show_page(
    state: &AppState,
    staff: &SignedIn,
    endpoint: &EndpointRow,
    service: &ServiceAccount,
    before: Option<i64>,
    notice: Option<String>,
    errors: Vec<Value>,
) -> Result<Map<String, Value>, PageError> {
    let zone = state.config.time_zone;
    let now = store::to_micros(state.clock.now());
    let deliveries =
        event_store::deliveries_of(&state.db, endpoint.id, before, LOG_PAGE + 1).await?;
    let more = deliveries.len() as i64 > LOG_PAGE;
    let deliveries: Vec<_> = deliveries.into_iter().take(LOG_PAGE as usize).collect();
    let ids: Vec<i64> = deliveries.iter().map(|d| d.id).collect();
    let attempts = event_store::attempts_of(&state.db, &ids).await?;
    let counts = event_store::status_counts(&state.db, endpoint.id).await?;
    let failed = counts
        .iter()
        .find(|(s, _)| s == "failed")
        .map(|(_, n)| *n)
        .unwrap_or(0);
    let log: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            let (text, colour) = delivery_status(&d.status);
            let tries: Vec<Value> = attempts
                .iter()
                .filter(|a| a.delivery_id == d.id)
                .map(|a| {
                    let result = match (a.http_status, &a.error) {
                        (Some(s), _) if a.succeeded => format!("HTTP {s}"),
                        (_, Some(e)) => e.clone(),
                        (Some(s), None) => format!("HTTP {s}"),
                        (None, None) => "No answer".into(),
                    };
                    json!({
                        "when": local_time(zone, a.attempted_at),
                        "result": result,
                        "succeeded": a.succeeded,
                        "latency": format!("{} ms", a.latency_ms),
                        "excerpt": a.response_excerpt.clone().unwrap_or_default(),
                    })
                })
                .collect();
            let busy = matches!(d.job_state.as_deref(), Some("queued" | "running"));
            json!({
                "id": d.id,
                "message_id": d.message_id,
                "event_type": d.event_type,
                "created": local_time(zone, d.created_at),
                "status_text": text,
                "status_colour": colour,
                "attempts": d.attempts,
                "tries": tries,
                "next": d.next_attempt_at.map(|t| local_time(zone, t)),
                "payload": d.payload,
                "replayable": !busy && endpoint.enabled,
            })
        })
        .collect();
    let rotating = endpoint.previous_secret.is_some()
        && endpoint.previous_secret_until.is_some_and(|t| t > now);
    let previous_until = if rotating {
        endpoint.previous_secret_until.map(|t| local_time(zone, t))
    } else {
        None
    };
    let older_href = if more {
        ids.last()
            .map(|last| format!("{}?before={last}", endpoint_href(endpoint.id)))
    } else {
        None
    };
    let mut c = pages::signed_in(state, staff, "/integrations/events");
    c.insert(
        "endpoint".into(),
        json!({
            "id": endpoint.id,
            "href": endpoint_href(endpoint.id),
            "url": endpoint.url,
            "description": endpoint.description,
            "types": type_names(endpoint),
            "enabled": endpoint.enabled,
            "status": status_tag(endpoint),
            "disabled_reason": endpoint.disabled_reason,
            "created": local_time(zone, endpoint.created_at),
            "previous_secret_until": previous_until,
            "failed": failed,
        }),
    );
    c.insert(
        "service".into(),
        json!({"name": service.name, "slug": service.slug}),
    );
    c.insert("log".into(), Value::Array(log));
    c.insert("older_href".into(), json!(older_href));
    c.insert(
        "newest_href".into(),
        json!(before.map(|_| endpoint_href(endpoint.id))),
    );
    c.insert("notice".into(), json!(notice.unwrap_or_default()));
    c.insert("errors".into(), Value::Array(errors));
    c.insert("zone".into(), json!(zone.name()));
    Ok(c)
}

#[rocket::get("/integrations/events/<id>?<notice>&<before>")]
async fn show(
    state: &State<AppState>,
    staff: SignedIn,
    id: &str,
    notice: Option<&str>,
    before: Option<i64>,
) -> Result<Answer, PageError> {
    let (endpoint, service) = endpoint_of(state, &staff, id).await?;
    let c = show_page(
        state,
        &staff,
        &endpoint,
        &service,
        before,
        notice.and_then(notice_text),
        Vec::new(),
    )
    .await?;
    Ok(Answer::Page(render("events/show", c)))
}

#[rocket::get("/integrations/events/<id>/edit")]
async fn edit_form(
    state: &State<AppState>,
    staff: SignedIn,
    id: &str,
) -> Result<Answer, PageError> {
    let (endpoint, service) = endpoint_of(state, &staff, id).await?;
    let fields = EndpointFields {
        service: service.slug.clone(),
        url: endpoint.url.clone(),
        description: endpoint.description.clone(),
        event_types: type_names(&endpoint)
            .into_iter()
            .map(String::from)
            .collect(),
        ..Default::default()
    };
    let c = form_page(
        state,
        &staff,
        std::slice::from_ref(&service),
        Some((&endpoint, &service)),
        &fields,
        &[],
    );
    Ok(Answer::Page(render("events/form", c)))
}

#[rocket::post("/integrations/events/<id>/edit", data = "<form>")]
async fn edit(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<EndpointFields>,
) -> Result<Answer, PageError> {
    let (endpoint, service) = endpoint_of(state, &staff, id).await?;
    let mut f = form.0;
    f.service = service.slug.clone();
    let changed = events::update(
        &state.db,
        &state.config,
        state.clock.now(),
        staff.actor(),
        origin.0.ip.clone(),
        endpoint.id,
        &f.input(),
    )
    .await?;
    match changed {
        Ok(()) => Ok(Answer::Redirect(Redirect::to(format!(
            "{}?notice=updated",
            endpoint_href(endpoint.id)
        )))),
        Err(problems) => {
            let c = form_page(
                state,
                &staff,
                std::slice::from_ref(&service),
                Some((&endpoint, &service)),
                &f,
                &problems,
            );
            Ok(Answer::Invalid(render("events/form", c)))
        }
    }
}

/// A form that carries nothing but its CSRF token (checked by `CsrfForm`).
#[derive(FromForm, Default, Debug, Clone)]
pub struct Plain {
    #[field(default = String::new())]
    code: String,
    #[field(default = String::new())]
    stepping_up: String,
}

async fn switch(
    state: &AppState,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    on: bool,
) -> Result<Answer, PageError> {
    let (endpoint, _) = endpoint_of(state, &staff, id).await?;
    events::set_enabled(
        &state.db,
        state.clock.now(),
        staff.actor(),
        origin.0.ip.clone(),
        endpoint.id,
        on,
    )
    .await?;
    Ok(Answer::Redirect(Redirect::to(format!(
        "{}?notice={}",
        endpoint_href(endpoint.id),
        if on { "enabled" } else { "disabled" }
    ))))
}

#[rocket::post("/integrations/events/<id>/enable", data = "<_form>")]
async fn enable(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    _form: CsrfForm<Plain>,
) -> Result<Answer, PageError> {
    switch(state, staff, origin, id, true).await
}

#[rocket::post("/integrations/events/<id>/disable", data = "<_form>")]
async fn disable(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    _form: CsrfForm<Plain>,
) -> Result<Answer, PageError> {
    switch(state, staff, origin, id, false).await
}

#[rocket::post("/integrations/events/<id>/rotate", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn rotate(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    jar: &CookieJar<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<Plain>,
) -> Result<Answer, PageError> {
    let (endpoint, _) = endpoint_of(state, &staff, id).await?;
    let href = endpoint_href(endpoint.id);
    let gate = stepup::Gate {
        code: &form.0.code,
        stepping_up: &form.0.stepping_up,
        what: SECRET_STEP_UP,
        action: format!("{href}/rotate"),
        hidden: vec![("stepping_up", "1".into())],
        purpose: "make a new signing secret for this endpoint".into(),
        button: "Make a new secret",
        back: href.clone(),
    };
    if let Some(page) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(page);
    }
    let rotated = events::rotate(
        &state.db,
        &state.config,
        state.clock.now(),
        staff.actor(),
        origin.0.ip.clone(),
        endpoint.id,
    )
    .await?
    .ok_or(Status::NotFound)?;
    let (secret, until) = rotated;
    let until = local_time(state.config.time_zone, store::to_micros(until));
    Ok(show_secret(jar, state, endpoint.id, secret, Some(until)))
}

/// A replay the rules refused: the endpoint page again, saying why.
async fn refused(
    state: &AppState,
    staff: &SignedIn,
    endpoint: &EndpointRow,
    service: &ServiceAccount,
    why: ReplayRefusal,
) -> Result<Answer, PageError> {
    let c = show_page(
        state,
        staff,
        endpoint,
        service,
        None,
        None,
        vec![problem("", why.to_string())],
    )
    .await?;
    Ok(Answer::Status((Status::Conflict, render("events/show", c))))
}

#[rocket::post(
    "/integrations/events/<id>/deliveries/<delivery>/replay",
    data = "<_form>"
)]
async fn replay(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    delivery: &str,
    _form: CsrfForm<Plain>,
) -> Result<Answer, PageError> {
    let (endpoint, service) = endpoint_of(state, &staff, id).await?;
    let delivery_id = delivery.parse::<i64>().map_err(|_| Status::NotFound)?;
    let row = event_store::delivery(&state.db, delivery_id)
        .await?
        .filter(|d| d.endpoint_id == endpoint.id)
        .ok_or(Status::NotFound)?;
    let outcome = events::replay(
        &state.db,
        state.clock.now(),
        staff.actor(),
        origin.0.ip.clone(),
        endpoint.id,
        row.id,
    )
    .await?;
    match outcome {
        Ok(()) => Ok(Answer::Redirect(Redirect::to(format!(
            "{}?notice=replayed",
            endpoint_href(endpoint.id)
        )))),
        Err(why) => refused(state, &staff, &endpoint, &service, why).await,
    }
}

#[rocket::post("/integrations/events/<id>/replay-failed", data = "<_form>")]
async fn replay_failed(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    _form: CsrfForm<Plain>,
) -> Result<Answer, PageError> {
    let (endpoint, service) = endpoint_of(state, &staff, id).await?;
    let outcome = events::replay_failed(
        &state.db,
        state.clock.now(),
        staff.actor(),
        origin.0.ip.clone(),
        endpoint.id,
    )
    .await?;
    match outcome {
        Ok(n) => Ok(Answer::Redirect(Redirect::to(format!(
            "{}?notice=replayed-{n}",
            endpoint_href(endpoint.id)
        )))),
        Err(why) => refused(state, &staff, &endpoint, &service, why).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_fixed_texts() {
        assert_eq!(
            notice_text("updated").as_deref(),
            Some("The endpoint was changed")
        );
        assert_eq!(
            notice_text("replayed-3").as_deref(),
            Some("3 failed messages will be sent again in a moment")
        );
        assert_eq!(notice_text("<script>"), None);
        assert_eq!(notice_text("replayed-x"), None);
    }
}
