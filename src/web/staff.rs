//! Staff administration pages (`staff:manage`): the list of people in the services an
//! administrator manages (`/admin/staff`), inviting someone by email, a person's page with
//! their roles and the account actions, and the access review download. Role changes,
//! disabling, re-enabling, authenticator resets, invitations and the access review ask for the
//! second factor again when the last one is more than 5 minutes old. The rules and every
//! change live in `crate::identity::staff_admin`; this module reads forms and shows pages.

use std::collections::HashMap;
use std::net::IpAddr;

use rocket::form::FromForm;
use rocket::http::{ContentType, Header, Status};
use rocket::response::Redirect;
use rocket::{Route, State};
use serde_json::{json, Map, Value};

use super::auth::RequestOrigin;
use super::errors::PageError;
use super::format::local_time;
use super::pages::{self, problem, render, Answer};
use super::ratelimit::SignInLimiter;
use super::session::{CsrfForm, SignedIn};
use super::stepup;
use crate::audit::{self, AuditEvent};
use crate::identity::access_review as review;
use crate::identity::permissions::Role;
use crate::identity::staff_admin::{self, Admin, InviteForm, Invited, Person, Refusal, Scope};
use crate::store;
use crate::AppState;

pub fn routes() -> Vec<Route> {
    rocket::routes![
        list,
        invite_page,
        invite,
        person_page,
        set_role,
        remove,
        disable,
        enable,
        sign_out,
        reset_authenticator,
        resend,
        revoke,
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
async fn invite_page(
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
async fn invite(
    state: &State<AppState>,
    limiter: &State<SignInLimiter>,
    client_ip: Option<IpAddr>,
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
    if let Some(page) = stepup::require(state, limiter, client_ip, &staff, &origin.0, gate).await? {
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

// ---- a person's page --------------------------------------------------------------------

fn person_notice(kind: &str, person: &Person) -> Option<String> {
    Some(match kind {
        "invited" => format!(
            "Invitation sent to {}. The link in it works once, for {} hours",
            person.email,
            staff_admin::INVITE_VALID.whole_hours()
        ),
        "added" => format!(
            "{} already had an account, so they now have the access you chose. No email was sent",
            person.email
        ),
        "role" => "Role changed".into(),
        "granted" => "Access given".into(),
        "removed" => "Access removed".into(),
        "disabled" => "Account disabled. Every session they had has ended".into(),
        "enabled" => "Account re-enabled".into(),
        "signed-out" => "Signed out everywhere".into(),
        "mfa-reset" => {
            "Authenticator reset. They will set up a new one the next time they sign in".into()
        }
        "resent" => {
            "A new invitation has been sent. The link in the old one no longer works".into()
        }
        _ => return None,
    })
}

async fn person_context(
    state: &AppState,
    staff: &SignedIn,
    admin: &Admin,
    person: &Person,
    notice: Option<&str>,
    errors: Vec<Value>,
) -> Result<Map<String, Value>, PageError> {
    let zone = state.config.time_zone;
    let now = store::to_micros(state.clock.now());
    let own = person.id == admin.id;
    let (sessions, link, managed) = tokio::try_join!(
        async { staff_admin::session_count(&state.db, person.id).await },
        async { staff_admin::invitation(&state.db, person.id).await },
        async { staff_admin::managed_services(&state.db, admin).await },
    )?;
    let (text, colour) = status_tag(&person.status);
    let invitation = link.filter(|_| person.status == "invited").map(|l| {
        json!({
            "sent": local_time(zone, l.created_at),
            "expires": local_time(zone, l.expires_at),
            "usable": l.used_at.is_none() && l.expires_at > now,
        })
    });
    let access: Vec<Value> = person
        .access
        .iter()
        .map(|a| {
            let roles = staff_admin::grantable_roles(&admin.grants, a.service_id());
            json!({
                "key": a.service_key(),
                "id": a.service.as_ref().map(|s| s.slug.clone()).unwrap_or_else(|| "every".into()),
                "service": a.service_name(),
                "role": a.role.label(),
                "role_name": a.role.name(),
                "global": a.service.is_none(),
                "options": role_options(&roles),
            })
        })
        .collect();
    let held: Vec<Option<i64>> = person.access.iter().map(|a| a.service_id()).collect();
    let add_services: Vec<Value> = managed
        .iter()
        .filter(|s| !held.contains(&Some(s.id)))
        .map(|s| json!({"value": s.slug, "text": s.name}))
        .collect();
    let add_roles: Vec<Role> = Role::ALL.into_iter().filter(|r| !r.is_global()).collect();
    let can_make_platform_admin = admin.scope() == Scope::Every && !held.contains(&None) && !own;
    let mut c = pages::signed_in(state, staff, LIST);
    c.insert(
        "person".into(),
        json!({
            "id": person.id,
            "href": person_path(person.id),
            "name": if person.name.is_empty() { person.email.clone() } else { person.name.clone() },
            "email": person.email,
            "status": person.status,
            "status_text": text,
            "status_colour": colour,
            "last_sign_in": person.last_sign_in_at.map(|t| local_time(zone, t)).unwrap_or_else(|| "Never".into()),
            "created": local_time(zone, person.created_at),
            "has_totp": person.has_totp,
            "sessions": sessions,
            "invitation": invitation,
        }),
    );
    c.insert("own".into(), json!(own));
    c.insert("wholly_managed".into(), json!(person.wholly_managed()));
    c.insert("access".into(), Value::Array(access));
    c.insert("add_services".into(), Value::Array(add_services));
    c.insert("add_roles".into(), role_options(&add_roles));
    c.insert(
        "can_make_platform_admin".into(),
        json!(can_make_platform_admin),
    );
    c.insert(
        "notice".into(),
        json!(notice
            .and_then(|n| person_notice(n, person))
            .unwrap_or_default()),
    );
    c.insert("errors".into(), Value::Array(errors));
    c.insert("zone".into(), json!(zone.name()));
    Ok(c)
}

#[rocket::get("/admin/staff/<id>?<notice>")]
async fn person_page(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let admin = admin_of(&staff, &origin);
    let person = find(state, &admin, id).await?;
    let c = person_context(state, &staff, &admin, &person, notice, vec![]).await?;
    Ok(Answer::Page(render("staff/person", c)))
}

/// The person's page again with why an action was refused: 403 when it is about who is
/// asking, 422 when about what was asked.
async fn refused(
    state: &AppState,
    staff: &SignedIn,
    admin: &Admin,
    person: &Person,
    refusal: Refusal,
) -> Result<Answer, PageError> {
    if refusal.is_forbidden() {
        // Someone trying what their role does not allow is worth a line in the log.
        let _ = audit::record(
            &state.db,
            state.clock.now(),
            AuditEvent::new(admin.actor(), "authz_fail", format!("staff:{}", person.id))
                .failed()
                .from_ip(admin.ip.clone())
                .details(json!({"reason": refusal.to_string()})),
        )
        .await;
    }
    let errors = vec![problem(refusal.field(), refusal.to_string())];
    let c = person_context(state, staff, admin, person, None, errors).await?;
    let page = render("staff/person", c);
    Ok(if refusal.is_forbidden() {
        Answer::Status((Status::Forbidden, page))
    } else {
        Answer::Invalid(page)
    })
}

/// Any of the forms on a person's page.
#[derive(FromForm, Default, Debug, Clone)]
pub struct PersonFields {
    #[field(default = String::new())]
    service: String,
    #[field(default = String::new())]
    role: String,
    #[field(default = String::new())]
    code: String,
    #[field(default = String::new())]
    stepping_up: String,
}

fn gate_for<'a>(
    f: &'a PersonFields,
    person: &Person,
    what: &'a str,
    verb: &str,
    purpose: String,
    button: &'a str,
) -> stepup::Gate<'a> {
    stepup::Gate {
        code: &f.code,
        stepping_up: &f.stepping_up,
        what,
        action: format!("{}/{verb}", person_path(person.id)),
        hidden: vec![
            ("service", cut(&f.service)),
            ("role", cut(&f.role)),
            ("stepping_up", "1".into()),
        ],
        purpose,
        button,
        back: person_path(person.id),
    }
}

fn to_person(person: &Person, notice: &str) -> Answer {
    Answer::Redirect(Redirect::to(format!(
        "{}?notice={notice}",
        person_path(person.id)
    )))
}

#[rocket::post("/admin/staff/<id>/role", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn set_role(
    state: &State<AppState>,
    limiter: &State<SignInLimiter>,
    client_ip: Option<IpAddr>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<PersonFields>,
) -> Result<Answer, PageError> {
    let f = form.0;
    let admin = admin_of(&staff, &origin);
    let person = find(state, &admin, id).await?;
    if person.id == admin.id {
        return refused(state, &staff, &admin, &person, Refusal::OwnAccount).await;
    }
    let gate = gate_for(
        &f,
        &person,
        "role change",
        "role",
        format!("change {}'s access", person.name),
        "Change access",
    );
    if let Some(page) = stepup::require(state, limiter, client_ip, &staff, &origin.0, gate).await? {
        return Ok(page);
    }
    match staff_admin::set_role(state, &admin, &person, &f.service, &f.role).await? {
        Ok(changed) => Ok(to_person(
            &person,
            if changed.from.is_some() {
                "role"
            } else {
                "granted"
            },
        )),
        Err(r) => refused(state, &staff, &admin, &person, r).await,
    }
}

#[rocket::post("/admin/staff/<id>/remove", data = "<form>")]
async fn remove(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<PersonFields>,
) -> Result<Answer, PageError> {
    let admin = admin_of(&staff, &origin);
    let person = find(state, &admin, id).await?;
    match staff_admin::remove_access(state, &admin, &person, &form.0.service).await? {
        Ok(_) => {
            let still = staff_admin::person(&state.db, &admin, person.id).await?;
            Ok(match still {
                Some(p) => to_person(&p, "removed"),
                None => Answer::Redirect(Redirect::to(format!("{LIST}?notice=removed"))),
            })
        }
        Err(r) => refused(state, &staff, &admin, &person, r).await,
    }
}

/// An action on a whole account (every service's access at once), which asks for the code
/// again when the last one is old.
#[derive(Clone, Copy)]
enum AccountAction {
    Disable,
    Enable,
    ResetAuthenticator,
}

impl AccountAction {
    /// (what the step-up page calls it, the path's last part, the button, the notice)
    fn words(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            AccountAction::Disable => (
                "disabling an account",
                "disable",
                "Disable account",
                "disabled",
            ),
            AccountAction::Enable => (
                "re-enabling an account",
                "enable",
                "Re-enable account",
                "enabled",
            ),
            AccountAction::ResetAuthenticator => (
                "authenticator reset",
                "reset-authenticator",
                "Reset authenticator",
                "mfa-reset",
            ),
        }
    }

    fn purpose(self, person: &Person) -> String {
        match self {
            AccountAction::Disable => format!("disable {}'s account", person.name),
            AccountAction::Enable => format!("re-enable {}'s account", person.name),
            AccountAction::ResetAuthenticator => {
                format!("reset {}'s authenticator app", person.name)
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn account_action(
    state: &AppState,
    limiter: &SignInLimiter,
    client_ip: Option<IpAddr>,
    staff: &SignedIn,
    origin: &RequestOrigin,
    id: &str,
    f: PersonFields,
    action: AccountAction,
) -> Result<Answer, PageError> {
    let admin = admin_of(staff, origin);
    let person = find(state, &admin, id).await?;
    if let Err(r) = staff_admin::whole_account(&admin, &person) {
        return refused(state, staff, &admin, &person, r).await;
    }
    let (what, verb, button, notice) = action.words();
    let gate = gate_for(&f, &person, what, verb, action.purpose(&person), button);
    if let Some(page) = stepup::require(state, limiter, client_ip, staff, &origin.0, gate).await? {
        return Ok(page);
    }
    let outcome = match action {
        AccountAction::Disable => staff_admin::disable(state, &admin, &person)
            .await
            .map(|r| r.map(|_| ())),
        AccountAction::Enable => staff_admin::enable(state, &admin, &person)
            .await
            .map(|r| r.map(|_| ())),
        AccountAction::ResetAuthenticator => {
            staff_admin::reset_authenticator(state, &admin, &person)
                .await
                .map(|r| r.map(|_| ()))
        }
    }?;
    match outcome {
        Ok(()) => Ok(to_person(&person, notice)),
        Err(r) => refused(state, staff, &admin, &person, r).await,
    }
}

#[rocket::post("/admin/staff/<id>/disable", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn disable(
    state: &State<AppState>,
    limiter: &State<SignInLimiter>,
    client_ip: Option<IpAddr>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<PersonFields>,
) -> Result<Answer, PageError> {
    account_action(
        state,
        limiter,
        client_ip,
        &staff,
        &origin,
        id,
        form.0,
        AccountAction::Disable,
    )
    .await
}

#[rocket::post("/admin/staff/<id>/enable", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn enable(
    state: &State<AppState>,
    limiter: &State<SignInLimiter>,
    client_ip: Option<IpAddr>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<PersonFields>,
) -> Result<Answer, PageError> {
    account_action(
        state,
        limiter,
        client_ip,
        &staff,
        &origin,
        id,
        form.0,
        AccountAction::Enable,
    )
    .await
}

#[rocket::post("/admin/staff/<id>/sign-out", data = "<_form>")]
async fn sign_out(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    _form: CsrfForm<PersonFields>,
) -> Result<Answer, PageError> {
    let admin = admin_of(&staff, &origin);
    let person = find(state, &admin, id).await?;
    match staff_admin::sign_out_everywhere(state, &admin, &person).await? {
        Ok(_) => Ok(to_person(&person, "signed-out")),
        Err(r) => refused(state, &staff, &admin, &person, r).await,
    }
}

#[rocket::post("/admin/staff/<id>/reset-authenticator", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn reset_authenticator(
    state: &State<AppState>,
    limiter: &State<SignInLimiter>,
    client_ip: Option<IpAddr>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<PersonFields>,
) -> Result<Answer, PageError> {
    account_action(
        state,
        limiter,
        client_ip,
        &staff,
        &origin,
        id,
        form.0,
        AccountAction::ResetAuthenticator,
    )
    .await
}

#[rocket::post("/admin/staff/<id>/resend", data = "<_form>")]
async fn resend(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    _form: CsrfForm<PersonFields>,
) -> Result<Answer, PageError> {
    let admin = admin_of(&staff, &origin);
    let person = find(state, &admin, id).await?;
    match staff_admin::resend_invitation(state, &admin, &person).await? {
        Ok(_) => Ok(to_person(&person, "resent")),
        Err(r) => refused(state, &staff, &admin, &person, r).await,
    }
}

#[rocket::post("/admin/staff/<id>/revoke", data = "<_form>")]
async fn revoke(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    _form: CsrfForm<PersonFields>,
) -> Result<Answer, PageError> {
    let admin = admin_of(&staff, &origin);
    let person = find(state, &admin, id).await?;
    match staff_admin::revoke_invitation(state, &admin, &person).await? {
        Ok(_) => Ok(Answer::Redirect(Redirect::to(format!(
            "{LIST}?notice=revoked"
        )))),
        Err(r) => refused(state, &staff, &admin, &person, r).await,
    }
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
    limiter: &State<SignInLimiter>,
    client_ip: Option<IpAddr>,
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
    if let Some(page) = stepup::require(state, limiter, client_ip, &staff, &origin.0, gate).await? {
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
