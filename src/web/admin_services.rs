//! Service settings pages (`services:manage`) under `/admin/services`: the list, a service's
//! settings with secrets masked and a "Test connection" button, and the create and change
//! forms. A service admin manages only their own services (anything else answers 404);
//! creating a service needs the platform admin role. Rules and saving live in
//! `crate::services::admin`.

use std::collections::BTreeSet;

use rocket::form::FromForm;
use rocket::http::Status;
use rocket::response::Redirect;
use rocket::{Route, State};
use serde_json::{json, Value};

use super::auth::RequestOrigin;
use super::errors::PageError;
use super::pages::{self, render, Answer};
use super::session::{CsrfForm, SignedIn};
use crate::audit::{self, AuditEvent};
use crate::identity::permissions::Permission;
use crate::refunds::rules::pounds;
use crate::services::admin::{self, ConnectionCheck, Current, SettingsForm};
use crate::services::{self, ServiceAccount};
use crate::store::service_admin::ExtraSettingsRow;
use crate::AppState;

pub fn routes() -> Vec<Route> {
    rocket::routes![list, new_form, create, show, edit_form, update, test]
}

const LIST: &str = "/admin/services";

/// The service form as posted.
#[derive(FromForm, Default, Debug, Clone)]
pub struct Fields {
    #[field(default = String::new())]
    name: String,
    #[field(default = String::new())]
    slug: String,
    #[field(default = String::new())]
    time_zone: String,
    #[field(default = String::new())]
    platform_url: String,
    #[field(default = String::new())]
    auth: String,
    #[field(default = String::new())]
    api_key: String,
    #[field(default = String::new())]
    client_id: String,
    #[field(default = String::new())]
    client_secret: String,
    #[field(default = String::new())]
    token_url: String,
    #[field(default = String::new())]
    scopes: String,
    #[field(default = String::new())]
    webhook_secret: String,
    /// A secret paydesk made on the "Generate" press, carried until it is saved.
    #[field(default = String::new())]
    generated_webhook_secret: String,
    #[field(default = String::new())]
    remove_webhook_secret: String,
    #[field(default = String::new())]
    refund_approval_threshold: String,
    #[field(default = String::new())]
    refund_case_reference_required: String,
    #[field(default = String::new())]
    refund_email_enabled: String,
    #[field(default = String::new())]
    refund_email_subject: String,
    #[field(default = String::new())]
    refund_email_text: String,
    #[field(default = String::new())]
    deep_link_template: String,
    /// Set by the "Generate a new secret" button: show the form again with one.
    #[field(default = String::new())]
    generate: String,
}

impl Fields {
    fn settings(&self) -> SettingsForm {
        let secret = if self.webhook_secret.is_empty() {
            self.generated_webhook_secret.clone()
        } else {
            self.webhook_secret.clone()
        };
        SettingsForm {
            name: self.name.clone(),
            slug: self.slug.clone(),
            time_zone: self.time_zone.clone(),
            platform_url: self.platform_url.clone(),
            auth: self.auth.clone(),
            api_key: self.api_key.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            token_url: self.token_url.clone(),
            scopes: self.scopes.clone(),
            webhook_secret: secret,
            remove_webhook_secret: self.remove_webhook_secret == "true",
            refund_approval_threshold: self.refund_approval_threshold.clone(),
            refund_case_reference_required: self.refund_case_reference_required == "true",
            refund_email_enabled: self.refund_email_enabled == "true",
            refund_email_subject: self.refund_email_subject.clone(),
            refund_email_text: self.refund_email_text.clone(),
            deep_link_template: self.deep_link_template.clone(),
        }
    }
}

/// The values a form shows again: never a secret that was typed.
fn echo(f: &SettingsForm) -> Value {
    let cut = |s: &str| s.chars().take(5_000).collect::<String>();
    json!({
        "name": cut(&f.name),
        "slug": cut(&f.slug),
        "time_zone": cut(&f.time_zone),
        "platform_url": cut(&f.platform_url),
        "auth": f.auth,
        "client_id": cut(&f.client_id),
        "token_url": cut(&f.token_url),
        "scopes": cut(&f.scopes),
        "remove_webhook_secret": if f.remove_webhook_secret { "true" } else { "" },
        "refund_approval_threshold": cut(&f.refund_approval_threshold),
        "refund_case_reference_required": if f.refund_case_reference_required { "true" } else { "" },
        "refund_email_enabled": if f.refund_email_enabled { "true" } else { "" },
        "refund_email_subject": cut(&f.refund_email_subject),
        "refund_email_text": cut(&f.refund_email_text),
        "deep_link_template": cut(&f.deep_link_template),
    })
}

/// The services this person manages: None means every service.
fn managed(staff: &SignedIn) -> Option<BTreeSet<i64>> {
    staff.grants.services_with(Permission::ServicesManage)
}

/// The service at `id`, if this person manages it; 404 otherwise, whether or not it exists.
async fn managed_service(
    state: &AppState,
    staff: &SignedIn,
    id: i64,
) -> Result<Current, PageError> {
    if !staff.grants.can(Permission::ServicesManage, id) {
        return Err(Status::NotFound.into());
    }
    admin::current(state, id)
        .await?
        .ok_or(Status::NotFound.into())
}

/// Creating services is for platform admins; anyone else finds no such page (audited).
async fn may_create(
    state: &AppState,
    staff: &SignedIn,
    origin: &RequestOrigin,
) -> Result<(), PageError> {
    if staff.grants.is_platform_admin() {
        return Ok(());
    }
    let _ = audit::record(
        &state.db,
        state.clock.now(),
        AuditEvent::new(staff.actor(), "authz_fail", "/admin/services/new")
            .failed()
            .from_ip(origin.0.ip.clone())
            .details(json!({"needs": "platform_admin"})),
    )
    .await;
    Err(Status::NotFound.into())
}

fn service_path(id: i64) -> String {
    format!("{LIST}/{id}")
}

#[rocket::get("/admin/services?<notice>")]
async fn list(
    state: &State<AppState>,
    staff: SignedIn,
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let all = services::all(&state.db).await?;
    let mine: Vec<ServiceAccount> = match managed(&staff) {
        None => all,
        Some(ids) => all.into_iter().filter(|s| ids.contains(&s.id)).collect(),
    };
    let rows: Vec<Value> = mine
        .iter()
        .map(|s| {
            json!({
                "href": service_path(s.id),
                "name": s.name,
                "slug": s.slug,
                "time_zone": s.time_zone,
                "connected": s.is_connected(),
            })
        })
        .collect();
    let mut c = pages::signed_in(state, &staff, LIST);
    c.insert("services".into(), Value::Array(rows));
    c.insert("may_create".into(), json!(staff.grants.is_platform_admin()));
    c.insert("notice".into(), json!(notice.filter(|n| *n == "created")));
    Ok(Answer::Page(render("admin/services/index", c)))
}

/// The form's page: `current` None for a new service.
#[allow(clippy::too_many_arguments)]
fn form_page(
    state: &AppState,
    staff: &SignedIn,
    current: Option<&Current>,
    form: &SettingsForm,
    errors: Vec<(&'static str, String)>,
    generated: Option<&str>,
) -> rocket_dyn_templates::Template {
    let mut c = pages::signed_in(state, staff, LIST);
    pages::insert_problems(&mut c, errors);
    c.insert("form".into(), echo(form));
    c.insert("generated".into(), json!(generated));
    let one = |text: &str| json!([{"value": "true", "text": text}]);
    c.insert(
        "options".into(),
        json!({
            "auth": [
                {"value": "none", "text": "No platform account"},
                {"value": "api_key", "text": "API key"},
                {"value": "oauth2", "text": "OAuth2 client credentials"},
            ],
            "remove_secret": one("Remove the saved secret (the platform's webhooks will be refused)"),
            "case_reference": one("A refund needs a case reference"),
            "emails": one("Email the payer when their refund succeeds"),
        }),
    );
    match current {
        Some(cur) => {
            c.insert(
                "service".into(),
                json!({
                    "id": cur.service.id,
                    "name": cur.service.name,
                    "href": service_path(cur.service.id),
                    "credentials": cur.credentials.as_ref().map(|c| c.describe()),
                    "api_key_saved": matches!(cur.credentials, Some(crate::platform::client::Credentials::ApiKey { .. })),
                    "client_secret_saved": matches!(cur.credentials, Some(crate::platform::client::Credentials::ClientCredentials { .. })),
                    "webhook_secret_saved": cur.has_webhook_secret,
                }),
            );
            c.insert(
                "action".into(),
                json!(format!("{}/edit", service_path(cur.service.id))),
            );
            c.insert(
                "heading".into(),
                json!(format!("Change {}", cur.service.name)),
            );
            c.insert("back_href".into(), json!(service_path(cur.service.id)));
        }
        None => {
            c.insert("action".into(), json!(format!("{LIST}/new")));
            c.insert("heading".into(), json!("Add a service"));
            c.insert("back_href".into(), json!(LIST));
        }
    }
    render("admin/services/form", c)
}

#[rocket::get("/admin/services/new")]
async fn new_form(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
) -> Result<Answer, PageError> {
    may_create(state, &staff, &origin).await?;
    let form = SettingsForm {
        time_zone: state.config.time_zone.name().to_string(),
        auth: "none".into(),
        ..Default::default()
    };
    Ok(Answer::Page(form_page(
        state,
        &staff,
        None,
        &form,
        vec![],
        None,
    )))
}

/// Save the form, or show it again with its problems (or with a newly generated secret).
async fn save(
    state: &AppState,
    staff: &SignedIn,
    origin: &RequestOrigin,
    current: Option<&Current>,
    fields: &Fields,
) -> Result<Answer, PageError> {
    let form = fields.settings();
    if !fields.generate.is_empty() {
        let secret = admin::generate_webhook_secret();
        return Ok(Answer::Page(form_page(
            state,
            staff,
            current,
            &form,
            vec![],
            Some(&secret),
        )));
    }
    let generated = Some(fields.generated_webhook_secret.as_str())
        .filter(|s| !s.is_empty() && fields.webhook_secret.is_empty() && s.len() <= 200);
    match admin::save(state, staff.actor(), origin.0.ip.clone(), current, &form).await? {
        Ok(saved) => {
            let id = saved.id;
            let notice = match current {
                None => "created",
                Some(_) if saved.secrets_cleared => "cleared",
                Some(_) => "saved",
            };
            Ok(Answer::Redirect(Redirect::to(format!(
                "{}?notice={notice}",
                service_path(id)
            ))))
        }
        Err(problems) => Ok(Answer::Invalid(form_page(
            state, staff, current, &form, problems, generated,
        ))),
    }
}

#[rocket::post("/admin/services/new", data = "<form>")]
async fn create(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    form: CsrfForm<Fields>,
) -> Result<Answer, PageError> {
    may_create(state, &staff, &origin).await?;
    save(state, &staff, &origin, None, &form.0).await
}

fn threshold_text(t: Option<i64>) -> String {
    match t {
        None => "No refund needs a second person's approval".into(),
        Some(0) => "Every refund needs a second person's approval".into(),
        Some(t) => format!(
            "Refunds above {} need a second person's approval",
            pounds(t)
        ),
    }
}

#[rocket::get("/admin/services/<id>?<notice>&<test>")]
async fn show(
    state: &State<AppState>,
    staff: SignedIn,
    id: i64,
    notice: Option<&str>,
    test: Option<&str>,
) -> Result<Answer, PageError> {
    let current = managed_service(state, &staff, id).await?;
    let extra: ExtraSettingsRow = admin::extra(state, id).await?;
    let s = &current.service;
    let oauth2 = matches!(
        current.credentials,
        Some(crate::platform::client::Credentials::ClientCredentials { .. })
    );
    let test = test.and_then(ConnectionCheck::parse).map(|t| {
        json!({"ok": t.ok(), "text": t.message(s.platform_url.as_deref().unwrap_or("the platform"), oauth2)})
    });
    let mut c = pages::signed_in(state, &staff, LIST);
    c.insert(
        "service".into(),
        json!({
            "id": s.id,
            "name": s.name,
            "slug": s.slug,
            "time_zone": s.time_zone,
            "platform_url": s.platform_url,
            "credentials": current.credentials.as_ref().map(|c| c.describe()),
            "webhook_secret": if current.has_webhook_secret { "Set (hidden)" } else { "Not set" },
            "webhook_address": format!("{}/hooks/govuk-pay/{}", state.config.public_url.trim_end_matches('/'), s.slug),
            "threshold": threshold_text(extra.refund_approval_threshold),
            "case_reference": if extra.refund_case_reference_required { "Required" } else { "Optional" },
            "emails": if extra.refund_email_enabled { "On" } else { "Off" },
            "email_wording": if extra.refund_email_subject.is_some() || extra.refund_email_text.is_some() { "The service's own wording" } else { "paydesk's standard wording" },
            "deep_link": extra.deep_link_template,
            "retention_days": crate::personal_data::retention::of_service(&state.db, id).await?.map(|r| r.retention_days),
            "retention_href": format!("{}/retention", service_path(s.id)),
            "edit_href": format!("{}/edit", service_path(s.id)),
            "test_action": format!("{}/test", service_path(s.id)),
            "connected": s.is_connected(),
        }),
    );
    c.insert(
        "notice".into(),
        json!(notice.filter(|n| matches!(*n, "created" | "saved" | "cleared"))),
    );
    c.insert("test".into(), json!(test));
    Ok(Answer::Page(render("admin/services/show", c)))
}

#[rocket::get("/admin/services/<id>/edit")]
async fn edit_form(state: &State<AppState>, staff: SignedIn, id: i64) -> Result<Answer, PageError> {
    let current = managed_service(state, &staff, id).await?;
    let extra = admin::extra(state, id).await?;
    let form = admin::form_of(&current, &extra);
    Ok(Answer::Page(form_page(
        state,
        &staff,
        Some(&current),
        &form,
        vec![],
        None,
    )))
}

#[rocket::post("/admin/services/<id>/edit", data = "<form>")]
async fn update(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: i64,
    form: CsrfForm<Fields>,
) -> Result<Answer, PageError> {
    let current = managed_service(state, &staff, id).await?;
    save(state, &staff, &origin, Some(&current), &form.0).await
}

#[rocket::post("/admin/services/<id>/test", data = "<form>")]
async fn test(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: i64,
    form: CsrfForm<Fields>,
) -> Result<Answer, PageError> {
    let _ = form;
    let current = managed_service(state, &staff, id).await?;
    let result = admin::test_connection(
        state,
        &state.platforms,
        staff.actor(),
        origin.0.ip.clone(),
        &current.service,
    )
    .await?;
    Ok(Answer::Redirect(Redirect::to(format!(
        "{}?test={}",
        service_path(id),
        result.code()
    ))))
}
