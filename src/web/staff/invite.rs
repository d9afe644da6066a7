//! Inviting someone to paydesk by email (`/admin/staff/invite`): the form, its checks and the
//! invitation, behind a fresh second factor.

use std::collections::HashMap;

use rocket::form::FromForm;
use rocket::response::Redirect;
use rocket::State;
use serde_json::{json, Map, Value};

use super::{admin_of, cut, person_path, role_options, LIST};
use crate::identity::staff_admin::{self, Admin, InviteForm, Invited, Scope};
use crate::web::auth::RequestOrigin;
use crate::web::errors::PageError;
use crate::web::pages::{self, problem, render, Answer};
use crate::web::session::{CsrfForm, SignedIn};
use crate::web::stepup;
use crate::AppState;

// ---- inviting ---------------------------------------------------------------------------

/// The invitation form, as posted.
#[derive(FromForm, Default, Debug)]
pub struct InviteFields {
    #[field(default = String::new())]
    email: String,
    #[field(default = String::new())]
    name: String,
    /// `roles[<service slug>] = <role name>`; empty for no access.
    #[field(default = HashMap::new())]
    roles: HashMap<String, String>,
    #[field(default = String::new())]
    platform_admin: String,
    #[field(default = String::new())]
    code: String,
    #[field(default = String::new())]
    stepping_up: String,
}

async fn invite_context(
    state: &AppState,
    staff: &SignedIn,
    admin: &Admin,
    fields: &InviteFields,
    problems: &[(String, String)],
) -> Result<Map<String, Value>, PageError> {
    let services = staff_admin::managed_services(&state.db, admin).await?;
    let first_field = services
        .first()
        .map(|s| format!("role-{}", s.slug))
        .unwrap_or_else(|| "email".into());
    let field_error = |field: &str| {
        problems
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };
    let rows: Vec<Value> = services
        .iter()
        .map(|s| {
            let field = format!("role-{}", s.slug);
            let mut options = vec![json!({"value": "", "text": "No access"})];
            if let Value::Array(more) =
                role_options(&staff_admin::grantable_roles(&admin.grants, Some(s.id)))
            {
                options.extend(more);
            }
            json!({
                "slug": s.slug,
                "name": s.name,
                "field": field,
                "options": options,
                "selected": fields.roles.get(&s.slug).cloned().unwrap_or_default(),
                "error": field_error(&field),
            })
        })
        .collect();
    let mut errors = Vec::new();
    for (field, message) in problems {
        let target = if field == "roles" {
            first_field.clone()
        } else {
            field.clone()
        };
        errors.push(problem(&target, message.clone()));
    }
    let mut c = pages::signed_in(state, staff, LIST);
    c.insert("services".into(), Value::Array(rows));
    c.insert(
        "fields".into(),
        json!({
            "email": cut(&fields.email),
            "name": cut(&fields.name),
            "platform_admin": !fields.platform_admin.is_empty(),
        }),
    );
    c.insert(
        "can_grant_global".into(),
        json!(admin.scope() == Scope::Every),
    );
    c.insert("roles_error".into(), json!(field_error("roles")));
    c.insert("email_error".into(), json!(field_error("email")));
    c.insert("name_error".into(), json!(field_error("name")));
    c.insert("errors".into(), Value::Array(errors));
    c.insert(
        "hours".into(),
        json!(staff_admin::INVITE_VALID.whole_hours()),
    );
    Ok(c)
}

#[rocket::get("/admin/staff/invite")]
pub(super) async fn invite_page(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
) -> Result<Answer, PageError> {
    let admin = admin_of(&staff, &origin);
    let c = invite_context(
        state,
        &staff,
        &admin,
        &<InviteFields as Default>::default(),
        &[],
    )
    .await?;
    Ok(Answer::Page(render("staff/invite", c)))
}

#[rocket::post("/admin/staff/invite", data = "<form>")]
pub(super) async fn invite(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    form: CsrfForm<InviteFields>,
) -> Result<Answer, PageError> {
    let fields = form.0;
    let admin = admin_of(&staff, &origin);
    let mut roles: Vec<(String, String)> = fields
        .roles
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    roles.sort();
    let ask = InviteForm {
        email: fields.email.clone(),
        name: fields.name.clone(),
        roles: roles.clone(),
        platform_admin: !fields.platform_admin.is_empty(),
    };
    let role_fields: Vec<(String, String)> = (roles.iter())
        .map(|(slug, role)| (format!("roles[{slug}]"), role.clone()))
        .collect();
    let mut hidden = vec![
        ("email", cut(&fields.email)),
        ("name", cut(&fields.name)),
        ("platform_admin", fields.platform_admin.clone()),
    ];
    hidden.extend(role_fields.iter().map(|(k, v)| (k.as_str(), v.clone())));
    hidden.push(("stepping_up", "1".into()));
    let gate = stepup::Gate {
        code: &fields.code,
        stepping_up: &fields.stepping_up,
        what: "staff invitation",
        action: "/admin/staff/invite".into(),
        hidden,
        purpose: format!("invite {}", cut(fields.email.trim())),
        button: "Send invitation",
        back: "/admin/staff/invite".into(),
    };
    if let Some(page) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(page);
    }
    let outcome = staff_admin::invite(state, &admin, &ask).await?;
    match outcome {
        Ok(Invited::New { staff_id }) => Ok(Answer::Redirect(Redirect::to(format!(
            "{}?notice=invited",
            person_path(staff_id)
        )))),
        Ok(Invited::AddedTo { staff_id, .. }) => Ok(Answer::Redirect(Redirect::to(format!(
            "{}?notice=added",
            person_path(staff_id)
        )))),
        Err(problems) => {
            let c = invite_context(state, &staff, &admin, &fields, &problems).await?;
            Ok(Answer::Invalid(render("staff/invite", c)))
        }
    }
}
