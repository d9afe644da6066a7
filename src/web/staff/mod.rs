//! Staff administration pages (`staff:manage`): the list of people in the services an
//! administrator manages (`/admin/staff`), inviting someone by email, a person's page with
//! their roles and the account actions, and the access review download. Role changes,
//! disabling, re-enabling, authenticator resets, invitations and the access review ask for the
//! second factor again when the last one is more than 5 minutes old. The rules and every
//! change live in `crate::identity::staff_admin`; this module reads forms and shows pages.

mod invite;
mod person;

use rocket::http::{ContentType, Header, Status};
use rocket::{Route, State};
use serde_json::{json, Value};

use super::auth::RequestOrigin;
use super::errors::PageError;
use super::format::local_time;
use super::pages::{self, render, Answer};
use super::session::{CsrfForm, SignedIn};
use super::stepup;
use crate::identity::access_review as review;
use crate::identity::permissions::Role;
use crate::identity::staff_admin::{self, Admin, Person, Scope};
use crate::AppState;
use person::PersonFields;

pub fn routes() -> Vec<Route> {
    rocket::routes![
        list,
        invite::invite_page,
        invite::invite,
        person::person_page,
        person::set_role,
        person::remove,
        person::disable,
        person::enable,
        person::sign_out,
        person::reset_authenticator,
        person::resend,
        person::revoke,
        access_review,
    ]
}

const LIST: &str = "/admin/staff";
/// Longest value a page shows again from a form.
const ECHO_LIMIT: usize = 300;

fn cut(s: &str) -> String {
    s.chars().take(ECHO_LIMIT).collect()
}

fn admin_of(staff: &SignedIn, origin: &RequestOrigin) -> Admin {
    Admin {
        id: staff.staff.id,
        email: staff.staff.email.clone(),
        name: staff.staff.name.clone(),
        grants: staff.grants.clone(),
        ip: origin.0.ip.clone(),
    }
}

fn person_path(id: i64) -> String {
    format!("{LIST}/{id}")
}

/// The person a page or form is about, if this administrator may see them; 404 otherwise
/// (someone of another service looks exactly like nobody).
async fn find(state: &AppState, admin: &Admin, id: &str) -> Result<Person, PageError> {
    let id = id.parse::<i64>().map_err(|_| Status::NotFound)?;
    staff_admin::person(&state.db, admin, id)
        .await?
        .ok_or(Status::NotFound.into())
}

fn status_tag(status: &str) -> (&'static str, &'static str) {
    match status {
        "active" => ("Active", "green"),
        "invited" => ("Invited", "blue"),
        "disabled" => ("Disabled", "grey"),
        _ => ("Unknown", "grey"),
    }
}

fn role_options(roles: &[Role]) -> Value {
    Value::Array(
        roles
            .iter()
            .map(|r| json!({"value": r.name(), "text": r.label()}))
            .collect(),
    )
}

// ---- the list ---------------------------------------------------------------------------

#[rocket::get("/admin/staff?<notice>")]
async fn list(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let admin = admin_of(&staff, &origin);
    let people = staff_admin::people(&state.db, &admin).await?;
    let zone = state.config.time_zone;
    let rows: Vec<Value> = people
        .iter()
        .map(|p| {
            let (text, colour) = status_tag(&p.status);
            json!({
                "href": person_path(p.id),
                "name": if p.name.is_empty() { p.email.clone() } else { p.name.clone() },
                "email": p.email,
                "access": p.access.iter().map(|a| format!("{} in {}", a.role.label(), a.service_name())).collect::<Vec<_>>(),
                "status_text": text,
                "status_colour": colour,
                "last_sign_in": p.last_sign_in_at.map(|t| local_time(zone, t)).unwrap_or_else(|| "Never".into()),
                "you": p.id == admin.id,
            })
        })
        .collect();
    let notice = match notice {
        Some("revoked") => "Invitation withdrawn",
        Some("removed") => {
            "Access removed. The person no longer has access to any service you manage"
        }
        _ => "",
    };
    let mut c = pages::signed_in(state, &staff, LIST);
    c.insert("people".into(), Value::Array(rows));
    c.insert("notice".into(), json!(notice));
    c.insert("zone".into(), json!(zone.name()));
    c.insert("every_service".into(), json!(admin.scope() == Scope::Every));
    Ok(Answer::Page(render("staff/index", c)))
}

// ---- the access review ------------------------------------------------------------------

/// A CSV download.
#[derive(rocket::Responder)]
pub struct CsvFile {
    body: (ContentType, String),
    disposition: Header<'static>,
}

#[derive(rocket::Responder)]
pub enum Download {
    File(CsvFile),
    Page(Answer),
}

#[rocket::post("/admin/staff/access-review", data = "<form>")]
async fn access_review(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    form: CsrfForm<PersonFields>,
) -> Result<Download, PageError> {
    let f = form.0;
    let admin = admin_of(&staff, &origin);
    let gate = stepup::Gate {
        code: &f.code,
        stepping_up: &f.stepping_up,
        what: "access review export",
        action: format!("{LIST}/access-review"),
        hidden: vec![("stepping_up", "1".into())],
        purpose: "download the access review".into(),
        button: "Download access review",
        back: LIST.into(),
    };
    if let Some(page) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(Download::Page(page));
    }
    let (csv, _rows) = review::export(state, &admin).await?;
    let date = state
        .clock
        .now()
        .format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default();
    Ok(Download::File(CsvFile {
        body: (ContentType::CSV, csv),
        disposition: Header::new(
            "Content-Disposition",
            format!("attachment; filename=\"access-review-{date}.csv\""),
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_tag() {
        for s in ["active", "invited", "disabled"] {
            assert_ne!(status_tag(s).0, "Unknown");
        }
    }
}
