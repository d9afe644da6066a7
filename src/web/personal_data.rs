//! Personal data pages: a service's retention period (`services:manage`, on the service's
//! settings). Rules and saving live in `crate::personal_data::retention`.

use rocket::form::FromForm;
use rocket::http::Status;
use rocket::response::Redirect;
use rocket::{Route, State};
use serde_json::json;

use super::auth::RequestOrigin;
use super::errors::PageError;
use super::pages::{self, problem, render, Answer};
use super::session::{CsrfForm, SignedIn};
use crate::identity::permissions::Permission;
use crate::personal_data::retention;
use crate::AppState;

pub fn routes() -> Vec<Route> {
    rocket::routes![retention_form, retention_save]
}

#[derive(Debug, Default, FromForm)]
pub struct Fields {
    #[field(default = String::new())]
    days: String,
}

fn path(id: i64) -> String {
    format!("/admin/services/{id}/retention")
}

async fn page(
    state: &AppState,
    staff: &SignedIn,
    id: i64,
    days: &str,
    error: Option<String>,
) -> Result<Answer, PageError> {
    let Some(current) = retention::of_service(&state.db, id).await? else {
        return Err(Status::NotFound.into());
    };
    let mut c = pages::signed_in(state, staff, "/admin/services");
    c.insert(
        "errors".into(),
        json!(error
            .iter()
            .map(|e| problem("days", e.clone()))
            .collect::<Vec<_>>()),
    );
    c.insert("error".into(), json!(error));
    c.insert("days".into(), json!(days));
    c.insert("service".into(), json!({"id": id, "slug": current.slug}));
    c.insert("action".into(), json!(path(id)));
    c.insert("back_href".into(), json!(format!("/admin/services/{id}")));
    c.insert(
        "platform_admin".into(),
        json!(staff.grants.is_platform_admin()),
    );
    c.insert("minimum".into(), json!(retention::MIN_DAYS));
    Ok(Answer::Page(render("admin/services/retention", c)))
}

#[rocket::get("/admin/services/<id>/retention")]
async fn retention_form(
    state: &State<AppState>,
    staff: SignedIn,
    id: i64,
) -> Result<Answer, PageError> {
    if !staff.grants.can(Permission::ServicesManage, id) {
        return Err(Status::NotFound.into());
    }
    let days = retention::of_service(&state.db, id)
        .await?
        .map(|r| r.retention_days.to_string())
        .unwrap_or_default();
    page(state, &staff, id, &days, None).await
}

#[rocket::post("/admin/services/<id>/retention", data = "<form>")]
async fn retention_save(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: i64,
    form: CsrfForm<Fields>,
) -> Result<Answer, PageError> {
    if !staff.grants.can(Permission::ServicesManage, id) {
        return Err(Status::NotFound.into());
    }
    let typed = form.0.days.chars().take(50).collect::<String>();
    match retention::parse_days(&typed, staff.grants.is_platform_admin()) {
        Err(message) => page(state, &staff, id, &typed, Some(message)).await,
        Ok(days) => {
            retention::set_days(
                &state.db,
                state.clock.now(),
                staff.actor(),
                origin.0.ip.clone(),
                id,
                days,
            )
            .await?;
            Ok(Answer::Redirect(Redirect::to(format!(
                "/admin/services/{id}?notice=saved"
            ))))
        }
    }
}
