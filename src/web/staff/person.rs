//! A person's page (`/admin/staff/<id>`): their roles and sessions, and the account actions on
//! it (role, removal, disable, enable, sign-out, authenticator reset, invitation resend or revoke).

use rocket::form::FromForm;
use rocket::http::Status;
use rocket::response::Redirect;
use rocket::State;
use serde_json::{json, Map, Value};

use super::{admin_of, cut, find, person_path, role_options, status_tag, LIST};
use crate::audit::{self, AuditEvent};
use crate::identity::permissions::Role;
use crate::identity::staff_admin::{self, Admin, Person, Refusal, Scope};
use crate::store;
use crate::web::auth::RequestOrigin;
use crate::web::errors::PageError;
use crate::web::format::local_time;
use crate::web::pages::{self, problem, render, Answer};
use crate::web::session::{CsrfForm, SignedIn};
use crate::web::stepup;
use crate::AppState;

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
pub(super) async fn person_page(
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
    pub(super) code: String,
    #[field(default = String::new())]
    pub(super) stepping_up: String,
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
pub(super) async fn set_role(
    state: &State<AppState>,
    check: stepup::Check<'_>,
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
    if let Some(page) = check.require(state, &staff, &origin.0, gate).await? {
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
pub(super) async fn remove(
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
    check: &stepup::Check<'_>,
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
    if let Some(page) = check.require(state, staff, &origin.0, gate).await? {
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
pub(super) async fn disable(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<PersonFields>,
) -> Result<Answer, PageError> {
    account_action(
        state,
        &check,
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
pub(super) async fn enable(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<PersonFields>,
) -> Result<Answer, PageError> {
    account_action(
        state,
        &check,
        &staff,
        &origin,
        id,
        form.0,
        AccountAction::Enable,
    )
    .await
}

#[rocket::post("/admin/staff/<id>/sign-out", data = "<_form>")]
pub(super) async fn sign_out(
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
pub(super) async fn reset_authenticator(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<PersonFields>,
) -> Result<Answer, PageError> {
    account_action(
        state,
        &check,
        &staff,
        &origin,
        id,
        form.0,
        AccountAction::ResetAuthenticator,
    )
    .await
}

#[rocket::post("/admin/staff/<id>/resend", data = "<_form>")]
pub(super) async fn resend(
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
pub(super) async fn revoke(
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
