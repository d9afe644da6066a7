//! API token pages (`/admin/tokens`) for people holding `integrations:manage`, and the page
//! about the API (`/api/docs`). A service admin sees and manages only their services' tokens
//! (another service's token answers 404). Making a token asks for the second factor again when
//! the last one is older than 5 minutes; the token is shown once, on the page that answers
//! the form, and never again. The rules and every change live in
//! `crate::integrations::api_tokens`.

use std::collections::{BTreeSet, HashMap};

use rocket::form::FromForm;
use rocket::http::{CookieJar, Status};
use rocket::response::Redirect;
use rocket::{Route, State};
use rocket_dyn_templates::Template;
use serde_json::{json, Map, Value};

use super::auth::RequestOrigin;
use super::errors::PageError;
use super::format::local_time;
use super::pages::{self, problem, render, Answer};
use super::reveal::{self, Reveal};
use super::session::{CsrfForm, SignedIn};
use super::stepup;
use crate::identity::permissions::Permission;
use crate::integrations::api_tokens::{self, NewToken, Scope, Standing};
use crate::services::{self, ServiceAccount};
use crate::store::api_tokens::TokenWithMaker;
use crate::store::{api_tokens as token_store, staff as staff_store};
use crate::AppState;

pub fn routes() -> Vec<Route> {
    rocket::routes![index, new_form, create, made, show, revoke, hand_over, docs]
}

/// How long a new token lasts: (form value, label, days).
const EXPIRY_CHOICES: [(&str, &str, Option<i64>); 4] = [
    ("30", "30 days", Some(30)),
    ("90", "90 days", Some(90)),
    ("365", "1 year", Some(365)),
    ("never", "It does not expire", None),
];

/// The services in which this person manages integrations, by name.
async fn manageable(state: &AppState, staff: &SignedIn) -> Result<Vec<ServiceAccount>, PageError> {
    let all = services::all(&state.db).await?;
    Ok(
        match staff.grants.services_with(Permission::IntegrationsManage) {
            None => all,
            Some(ids) => all.into_iter().filter(|s| ids.contains(&s.id)).collect(),
        },
    )
}

/// Staff names by id, looked up once each.
#[derive(Default)]
struct Names(HashMap<i64, String>);

impl Names {
    async fn of(&mut self, state: &AppState, id: i64) -> Result<String, PageError> {
        if let Some(n) = self.0.get(&id) {
            return Ok(n.clone());
        }
        let name = staff_store::staff_by_id(&state.db, id)
            .await?
            .map(|s| format!("{} ({})", s.name, s.email))
            .unwrap_or_else(|| format!("Account {id}"));
        self.0.insert(id, name.clone());
        Ok(name)
    }
}

fn standing_tag(s: Standing) -> (&'static str, &'static str) {
    match s {
        Standing::Active => ("Active", "green"),
        Standing::Expired => ("Expired", "grey"),
        Standing::Revoked => ("Revoked", "red"),
    }
}

/// A token as the pages show it, with whether its maker still holds what it needs now.
async fn token_view(
    state: &AppState,
    names: &mut Names,
    services: &[ServiceAccount],
    found: &TokenWithMaker,
) -> Result<Value, PageError> {
    let t = &found.token;
    let zone = state.config.time_zone;
    let standing = Standing::of(t, state.clock.now());
    let (mut tag, mut colour) = standing_tag(standing);
    let scopes: Vec<&str> = api_tokens::scopes_of(&t.scopes)
        .into_iter()
        .map(Scope::name)
        .collect();
    let service = services
        .iter()
        .find(|s| s.id == t.service_id)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    // A live token whose maker lost what it needs is inactive (or, for some scopes, limited).
    let reach = api_tokens::reach(found);
    let inactive_reason = if standing == Standing::Active {
        reach.maker.reason("maker", &service)
    } else {
        None
    };
    if inactive_reason.is_some() {
        (tag, colour) = if reach.usable.is_empty() {
            ("Inactive", "orange")
        } else {
            ("Limited", "yellow")
        };
    }
    let created_by = names.of(state, t.created_by).await?;
    let revoked = match (t.revoked_at, t.revoked_by) {
        (Some(at), Some(by)) => Some(format!(
            "{} by {}",
            local_time(zone, at),
            names.of(state, by).await?
        )),
        (Some(at), None) => Some(local_time(zone, at)),
        (None, _) => None,
    };
    Ok(json!({
        "id": t.id,
        "href": format!("/admin/tokens/{}", t.id),
        "name": t.name,
        "prefix": format!("{}…", t.token_prefix),
        "service": service,
        "scopes": scopes,
        "created": local_time(zone, t.created_at),
        "created_by": created_by,
        "expires": t.expires_at.map(|e| local_time(zone, e)).unwrap_or_else(|| "Never".into()),
        "last_used": t.last_used_at.map(|u| local_time(zone, u)).unwrap_or_else(|| "Never used".into()),
        "revoked": revoked,
        "standing": standing.label(),
        "tag": tag,
        "colour": colour,
        "inactive_reason": inactive_reason,
        "revocable": standing != Standing::Revoked,
    }))
}

#[rocket::get("/admin/tokens?<notice>")]
async fn index(
    state: &State<AppState>,
    staff: SignedIn,
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let mine = manageable(state, &staff).await?;
    let ids: Vec<i64> = mine.iter().map(|s| s.id).collect();
    let tokens = token_store::in_services_with_makers(&state.db, &ids).await?;
    let mut names = Names::default();
    let mut rows = Vec::new();
    for t in &tokens {
        rows.push(token_view(state, &mut names, &mine, t).await?);
    }
    let mut c = pages::signed_in(state, &staff, "/admin/tokens");
    c.insert("rows".into(), Value::Array(rows));
    c.insert("has_services".into(), json!(!mine.is_empty()));
    c.insert(
        "notice".into(),
        json!(match notice {
            Some("revoked") =>
                "The token has been revoked. Requests with it are refused from now on.",
            Some("already-revoked") => "The token had already been revoked.",
            Some("handed-over") =>
                "The token has been handed over. It now acts for its new owner, with their permissions.",
            _ => "",
        }),
    );
    c.insert("zone".into(), json!(state.config.time_zone.name()));
    Ok(Answer::Page(render("api_tokens/index", c)))
}

/// The new-token form, as posted.
#[derive(FromForm, Default, Debug, Clone)]
struct Fields {
    #[field(default = String::new())]
    name: String,
    #[field(default = String::new())]
    service: String,
    #[field(default = Vec::new())]
    scopes: Vec<String>,
    #[field(default = String::new())]
    expires: String,
    /// The step-up code, when the "Confirm it's you" page sent it.
    #[field(default = String::new())]
    code: String,
    /// Set by the "Confirm it's you" page, so an empty code there is a problem.
    #[field(default = String::new())]
    stepping_up: String,
}

/// The form's page with `fields` and `problems`.
fn form_page(
    state: &AppState,
    staff: &SignedIn,
    services: &[ServiceAccount],
    fields: &Fields,
    problems: &[(String, String)],
) -> Map<String, Value> {
    let mut c = pages::signed_in(state, staff, "/admin/tokens");
    let mut errors = Vec::new();
    let mut field_errors = Map::new();
    for (field, message) in problems {
        if !field_errors.contains_key(field) {
            field_errors.insert(field.clone(), json!(message));
            errors.push(problem(field, message.clone()));
        }
    }
    let cut = |s: &str| s.chars().take(500).collect::<String>();
    let service = if fields.service.is_empty() && services.len() == 1 {
        services[0].slug.clone()
    } else {
        cut(&fields.service)
    };
    c.insert(
        "fields".into(),
        json!({
            "name": cut(&fields.name),
            "service": service,
            "scopes": fields.scopes.iter().take(10).map(|s| cut(s)).collect::<Vec<_>>(),
            "expires": cut(&fields.expires),
        }),
    );
    c.insert("errors".into(), Value::Array(errors));
    c.insert("field_errors".into(), Value::Object(field_errors));
    c.insert(
        "service_options".into(),
        Value::Array(
            services
                .iter()
                .map(|s| json!({"value": s.slug, "text": s.name}))
                .collect(),
        ),
    );
    c.insert(
        "scope_options".into(),
        Value::Array(
            Scope::ALL
                .iter()
                .map(|s| json!({"value": s.name(), "text": s.label()}))
                .collect(),
        ),
    );
    c.insert(
        "expiry_options".into(),
        Value::Array(
            EXPIRY_CHOICES
                .iter()
                .map(|(v, t, _)| json!({"value": v, "text": t}))
                .collect(),
        ),
    );
    c
}

#[rocket::get("/admin/tokens/new")]
async fn new_form(state: &State<AppState>, staff: SignedIn) -> Result<Answer, PageError> {
    let mine = manageable(state, &staff).await?;
    let fields = Fields {
        expires: "90".into(),
        ..Default::default()
    };
    let c = form_page(state, &staff, &mine, &fields, &[]);
    Ok(Answer::Page(render("api_tokens/new", c)))
}

#[rocket::post("/admin/tokens", data = "<form>")]
async fn create(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    jar: &CookieJar<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    form: CsrfForm<Fields>,
) -> Result<Answer, PageError> {
    let f = form.0;
    let mine = manageable(state, &staff).await?;
    let mut problems: Vec<(String, String)> = Vec::new();
    let service = mine.iter().find(|s| s.slug == f.service);
    if service.is_none() {
        problems.push((
            "service".into(),
            "Choose the service the token is for".into(),
        ));
    }
    let expires = EXPIRY_CHOICES.iter().find(|(v, _, _)| *v == f.expires);
    if expires.is_none() {
        problems.push(("expires".into(), "Choose when the token expires".into()));
    }
    let new = NewToken {
        service_id: service.map(|s| s.id).unwrap_or_default(),
        name: f.name.clone(),
        scopes: f.scopes.clone(),
        expires_in_days: expires.and_then(|(_, _, d)| *d),
    };
    match api_tokens::check(&new) {
        Ok((_, scopes)) => {
            if let Some(svc) = service {
                if !api_tokens::may_manage(&staff.grants, svc.id, &scopes) {
                    problems.push((
                        "scopes".into(),
                        "You cannot give a token something you cannot do yourself in this service"
                            .into(),
                    ));
                }
            }
        }
        Err(found) => problems.extend(found.into_iter().map(|(f, m)| (f.to_string(), m))),
    }
    if !problems.is_empty() {
        let c = form_page(state, &staff, &mine, &f, &problems);
        return Ok(Answer::Invalid(render("api_tokens/new", c)));
    }
    let Some(svc) = service else {
        return Err(Status::NotFound.into());
    };
    let now = state.clock.now();
    let mut hidden: Vec<(&str, String)> = vec![
        ("name", f.name.chars().take(500).collect()),
        ("service", svc.slug.clone()),
        ("expires", f.expires.clone()),
        ("stepping_up", "1".into()),
    ];
    for s in f.scopes.iter().take(10) {
        hidden.push(("scopes", s.chars().take(100).collect()));
    }
    let gate = stepup::Gate {
        code: &f.code,
        stepping_up: &f.stepping_up,
        what: "API token",
        action: "/admin/tokens".into(),
        hidden,
        purpose: "make an API token".into(),
        button: "Make the token",
        back: "/admin/tokens/new".into(),
    };
    if let Some(page) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(page);
    }
    match api_tokens::create(
        &state.db,
        now,
        staff.actor(),
        staff.staff.id,
        origin.0.ip.clone(),
        &new,
    )
    .await?
    {
        Ok(created) => {
            let id = created.token.id;
            reveal::hold(
                jar,
                &state.config,
                &Reveal {
                    what: "api_token".into(),
                    id,
                    secret: created.secret,
                    until: None,
                },
            );
            Ok(Answer::Redirect(Redirect::to(format!(
                "/admin/tokens/{id}/made"
            ))))
        }
        Err(found) => {
            let problems: Vec<(String, String)> =
                found.into_iter().map(|(f, m)| (f.to_string(), m)).collect();
            let c = form_page(state, &staff, &mine, &f, &problems);
            Ok(Answer::Invalid(render("api_tokens/new", c)))
        }
    }
}

/// A token in one of the person's services; 404 for any other.
async fn token_of(
    state: &AppState,
    staff: &SignedIn,
    id: &str,
) -> Result<(Vec<ServiceAccount>, TokenWithMaker), PageError> {
    let id: i64 = id.parse().map_err(|_| Status::NotFound)?;
    let mine = manageable(state, staff).await?;
    let ids: BTreeSet<i64> = mine.iter().map(|s| s.id).collect();
    let token = token_store::by_id_with_maker(&state.db, id)
        .await?
        .filter(|t| ids.contains(&t.token.service_id))
        .ok_or(Status::NotFound)?;
    Ok((mine, token))
}

/// The token just made, with its secret this once (post/redirect/get); read again, the page
/// says the secret is not kept.
#[rocket::get("/admin/tokens/<id>/made")]
async fn made(
    state: &State<AppState>,
    staff: SignedIn,
    jar: &CookieJar<'_>,
    id: &str,
) -> Result<Answer, PageError> {
    let (mine, token) = token_of(state, &staff, id).await?;
    let mut names = Names::default();
    let mut c = pages::signed_in(state, &staff, "/admin/tokens");
    c.insert(
        "token".into(),
        token_view(state, &mut names, &mine, &token).await?,
    );
    let shown = reveal::take(jar, "api_token", token.token.id);
    c.insert("secret".into(), json!(shown.map(|r| r.secret)));
    Ok(Answer::Page(render("api_tokens/created", c)))
}

#[rocket::get("/admin/tokens/<id>")]
async fn show(state: &State<AppState>, staff: SignedIn, id: &str) -> Result<Answer, PageError> {
    let (mine, token) = token_of(state, &staff, id).await?;
    let c = show_page(state, &staff, &mine, &token, "", None).await?;
    Ok(Answer::Page(render("api_tokens/show", c)))
}

/// The token's page: its details, revoking it, and handing it to someone else (`chosen`
/// and `problem` when that form comes back with a problem).
async fn show_page(
    state: &AppState,
    staff: &SignedIn,
    mine: &[ServiceAccount],
    token: &TokenWithMaker,
    chosen: &str,
    problem_text: Option<&str>,
) -> Result<Map<String, Value>, PageError> {
    let t = &token.token;
    let mut names = Names::default();
    let mut c = pages::signed_in(state, staff, "/admin/tokens");
    c.insert(
        "token".into(),
        token_view(state, &mut names, mine, token).await?,
    );
    c.insert(
        "revoke_action".into(),
        json!(format!("/admin/tokens/{}/revoke", t.id)),
    );
    c.insert(
        "hand_over_action".into(),
        json!(format!("/admin/tokens/{}/hand-over", t.id)),
    );
    let candidates = api_tokens::hand_over_candidates(&state.db, t).await?;
    let options: Vec<Value> = candidates
        .iter()
        .map(|p| {
            json!({
                "value": p.id.to_string(),
                "text": format!("{} ({})", p.name, p.email),
            })
        })
        .collect();
    c.insert("hand_over_options".into(), Value::Array(options));
    c.insert("hand_over_selected".into(), json!(chosen));
    let mut errors = Vec::new();
    if let Some(text) = problem_text {
        errors.push(problem("to", text.to_string()));
    }
    c.insert("hand_over_error".into(), json!(problem_text));
    c.insert("errors".into(), Value::Array(errors));
    c.insert("zone".into(), json!(state.config.time_zone.name()));
    Ok(c)
}

/// The hand-over form, as posted.
#[derive(FromForm, Default, Debug, Clone)]
struct HandOverFields {
    #[field(default = String::new())]
    to: String,
    #[field(default = String::new())]
    code: String,
    #[field(default = String::new())]
    stepping_up: String,
}

/// Hand a token to another person, who must hold what its scopes need in its service now.
/// Asks for the second factor again as making a token does; audited.
#[rocket::post("/admin/tokens/<id>/hand-over", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn hand_over(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<HandOverFields>,
) -> Result<Answer, PageError> {
    let f = form.0;
    let (mine, found) = token_of(state, &staff, id).await?;
    let token = &found.token;
    let scopes = api_tokens::scopes_of(&token.scopes);
    if !api_tokens::may_manage(&staff.grants, token.service_id, &scopes) {
        let c = show_page(
            state,
            &staff,
            &mine,
            &found,
            &f.to,
            Some("You cannot hand over a token that can do something you cannot do yourself in this service"),
        )
        .await?;
        return Ok(Answer::Status((
            Status::Forbidden,
            render("api_tokens/show", c),
        )));
    }
    let Ok(to) = f.to.trim().parse::<i64>() else {
        let c = show_page(
            state,
            &staff,
            &mine,
            &found,
            "",
            Some("Choose a person from the list"),
        )
        .await?;
        return Ok(Answer::Invalid(render("api_tokens/show", c)));
    };
    let now = state.clock.now();
    let gate = stepup::Gate {
        code: &f.code,
        stepping_up: &f.stepping_up,
        what: "API token hand-over",
        action: format!("/admin/tokens/{}/hand-over", token.id),
        hidden: vec![("to", to.to_string()), ("stepping_up", "1".into())],
        purpose: "hand over an API token".into(),
        button: "Hand over the token",
        back: format!("/admin/tokens/{}", token.id),
    };
    if let Some(page) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(page);
    }
    match api_tokens::hand_over(
        &state.db,
        now,
        staff.actor(),
        origin.0.ip.clone(),
        token,
        to,
    )
    .await?
    {
        Ok(()) => Ok(Answer::Redirect(Redirect::to(
            "/admin/tokens?notice=handed-over",
        ))),
        Err(refusal) => {
            let c = show_page(
                state,
                &staff,
                &mine,
                &found,
                &f.to,
                Some(&refusal.to_string()),
            )
            .await?;
            Ok(Answer::Invalid(render("api_tokens/show", c)))
        }
    }
}

#[rocket::post("/admin/tokens/<id>/revoke", data = "<_form>")]
async fn revoke(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    _form: CsrfForm<super::account::EmptyForm>,
) -> Result<Answer, PageError> {
    let (_, found) = token_of(state, &staff, id).await?;
    let token = found.token;
    if !api_tokens::may_manage(&staff.grants, token.service_id, &[]) {
        return Err(Status::NotFound.into());
    }
    let done = api_tokens::revoke(
        &state.db,
        state.clock.now(),
        staff.actor(),
        staff.staff.id,
        origin.0.ip.clone(),
        &token,
    )
    .await?;
    Ok(Answer::Redirect(Redirect::to(if done {
        "/admin/tokens?notice=revoked"
    } else {
        "/admin/tokens?notice=already-revoked"
    })))
}

/// The page about the API: for the developers of CRM and case systems, who may not be
/// paydesk staff, so it is public (it holds nothing that the OpenAPI document does not).
#[rocket::get("/api/docs")]
fn docs(state: &State<AppState>) -> Template {
    let mut c = Map::new();
    c.insert("app".into(), super::app_context(state));
    c.insert(
        "rate_per_minute".into(),
        json!(state.config.api_rate_per_minute),
    );
    c.insert("public_url".into(), json!(state.config.public_url));
    c.insert(
        "scopes".into(),
        Value::Array(
            Scope::ALL
                .iter()
                .map(|s| json!({"name": s.name(), "label": s.label()}))
                .collect(),
        ),
    );
    render("api/docs", c)
}
