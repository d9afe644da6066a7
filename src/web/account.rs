//! "Your account": details and roles, changing the password, replacing the authenticator, and
//! the list of one's sessions with "sign out" on each.

use rocket::form::FromForm;
use rocket::http::Status;
use rocket::response::Redirect;
use rocket::{Route, State};
use serde_json::{json, Value};
use time::format_description::FormatItem;
use time::macros::format_description;

use super::auth::{enrol_context, RequestOrigin};
use super::errors::PageError;
use super::pages::{self, problem, render, Answer};
use super::session::{CsrfForm, SignedIn};
use crate::identity::accounts::{self, ChangeOutcome};
use crate::identity::signin::{self, CodeStep};
use crate::store::{from_micros, staff as staff_store};
use crate::AppState;

pub fn routes() -> Vec<Route> {
    rocket::routes![
        account,
        password_page,
        change_password,
        authenticator_page,
        authenticator,
        end_session,
        end_other_sessions
    ]
}

const WHEN: &[FormatItem<'static>] =
    format_description!("[day] [month repr:short] [year] at [hour]:[minute] UTC");

fn when(us: i64) -> String {
    from_micros(us).format(WHEN).unwrap_or_default()
}

#[rocket::get("/account?<notice>")]
async fn account(
    state: &State<AppState>,
    staff: SignedIn,
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let mut c = pages::signed_in(state, &staff, "/account");
    let sessions = staff_store::sessions_of(&state.db, staff.staff.id).await?;
    let sessions: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "current": s.id_hash == staff.session.id_hash,
                "started": when(s.created_at),
                "last_seen": when(s.last_seen_at),
                "ip": s.ip.clone().unwrap_or_else(|| "not known".into()),
                "browser": s.user_agent.clone().map(|a| browser_summary(&a)).unwrap_or_else(|| "not known".into()),
                "method": if s.auth_method.starts_with("sso:") { "Single sign-on" } else { "Password and code" },
            })
        })
        .collect();
    c.insert("name".into(), json!(staff.staff.name));
    c.insert("email".into(), json!(staff.staff.email));
    c.insert("sessions".into(), Value::Array(sessions));
    c.insert(
        "has_password".into(),
        json!(staff.staff.password_hash.is_some()),
    );
    let notice = match notice {
        Some("password") => "Your password has been changed.",
        Some("password_others") => {
            "Your password has been changed, and you have been signed out everywhere else."
        }
        Some("authenticator") => {
            "Your new authenticator app is set up. The old one no longer works."
        }
        Some("session_ended") => "That session has been signed out.",
        Some("others_ended") => "You have been signed out everywhere else.",
        _ => "",
    };
    c.insert("notice".into(), json!(notice));
    Ok(Answer::Page(render("account/index", c)))
}

/// "Firefox on Windows"-style words from a user-agent string, for recognising one's devices.
fn browser_summary(agent: &str) -> String {
    let browser = if agent.contains("Edg/") {
        "Edge"
    } else if agent.contains("Firefox/") {
        "Firefox"
    } else if agent.contains("Chrome/") || agent.contains("Chromium/") {
        "Chrome"
    } else if agent.contains("Safari/") {
        "Safari"
    } else {
        "A browser"
    };
    let system = if agent.contains("Windows") {
        " on Windows"
    } else if agent.contains("Android") {
        " on Android"
    } else if agent.contains("iPhone") || agent.contains("iPad") {
        " on iOS"
    } else if agent.contains("Mac OS") {
        " on macOS"
    } else if agent.contains("Linux") {
        " on Linux"
    } else {
        ""
    };
    format!("{browser}{system}")
}

#[derive(FromForm)]
pub struct ChangePasswordForm {
    #[field(default = String::new())]
    current_password: String,
    #[field(default = String::new())]
    password: String,
    #[field(default = String::new())]
    password_confirmation: String,
    #[field(default = String::new())]
    sign_out_others: String,
}

fn password_context(
    state: &AppState,
    staff: &SignedIn,
    errors: Vec<Value>,
    sign_out_others: bool,
) -> serde_json::Map<String, Value> {
    let mut c = pages::signed_in(state, staff, "/account");
    c.insert("errors".into(), Value::Array(errors));
    c.insert("sign_out_others".into(), json!(sign_out_others));
    c.insert(
        "min_length".into(),
        json!(crate::identity::password::MIN_LENGTH),
    );
    c
}

#[rocket::get("/account/password")]
fn password_page(state: &State<AppState>, staff: SignedIn) -> Answer {
    Answer::Page(render(
        "account/password",
        password_context(state, &staff, vec![], true),
    ))
}

#[rocket::post("/account/password", data = "<form>")]
async fn change_password(
    state: &State<AppState>,
    staff: SignedIn,
    form: CsrfForm<ChangePasswordForm>,
    req_origin: RequestOrigin,
) -> Result<Answer, PageError> {
    let form = form.0;
    let sign_out_others = form.sign_out_others == "yes";
    if form.current_password.is_empty() {
        return Ok(Answer::Invalid(render(
            "account/password",
            password_context(
                state,
                &staff,
                vec![problem("current_password", "Enter your current password")],
                sign_out_others,
            ),
        )));
    }
    let outcome = accounts::change_password(
        state,
        staff.staff.id,
        &staff.session.id_hash,
        &form.current_password,
        &form.password,
        &form.password_confirmation,
        sign_out_others,
        req_origin.0.ip.clone(),
    )
    .await?;
    let errors = match outcome {
        ChangeOutcome::Done { .. } => {
            let notice = if sign_out_others {
                "password_others"
            } else {
                "password"
            };
            return Ok(Answer::Redirect(Redirect::to(format!(
                "/account?notice={notice}"
            ))));
        }
        ChangeOutcome::WrongCurrentPassword => vec![problem(
            "current_password",
            "Your current password is not correct",
        )],
        ChangeOutcome::Problems(p) => p
            .iter()
            .map(|p| problem(p.field, p.message.clone()))
            .collect(),
    };
    Ok(Answer::Invalid(render(
        "account/password",
        password_context(state, &staff, errors, sign_out_others),
    )))
}

fn authenticator_context(
    state: &AppState,
    staff: &SignedIn,
    secret: &[u8],
) -> serde_json::Map<String, Value> {
    let mut c = enrol_context(state, staff, secret, "/account/authenticator");
    for (k, v) in pages::signed_in(state, staff, "/account") {
        c.insert(k, v);
    }
    c.insert("replacing".into(), json!(true));
    c
}

#[rocket::get("/account/authenticator")]
async fn authenticator_page(state: &State<AppState>, staff: SignedIn) -> Result<Answer, PageError> {
    let secret = signin::enrolment_secret(state, &staff).await?;
    Ok(Answer::Page(render(
        "auth/enrol",
        authenticator_context(state, &staff, &secret),
    )))
}

#[derive(FromForm)]
pub struct CodeForm {
    #[field(default = String::new())]
    code: String,
}

#[rocket::post("/account/authenticator", data = "<form>")]
async fn authenticator(
    state: &State<AppState>,
    staff: SignedIn,
    form: CsrfForm<CodeForm>,
    req_origin: RequestOrigin,
) -> Result<Answer, PageError> {
    let secret = signin::enrolment_secret(state, &staff).await?;
    let mut c = authenticator_context(state, &staff, &secret);
    if form.0.code.trim().is_empty() {
        c.insert(
            "errors".into(),
            json!([problem(
                "code",
                "Enter the 6-digit code from your authenticator app"
            )]),
        );
        return Ok(Answer::Invalid(render("auth/enrol", c)));
    }
    match signin::confirm_enrolment(state, &staff, &secret, &form.0.code, &req_origin.0).await? {
        CodeStep::SignedIn { .. } => Ok(Answer::Redirect(Redirect::to(
            "/account?notice=authenticator",
        ))),
        CodeStep::Wrong | CodeStep::Locked => {
            c.insert(
                "errors".into(),
                json!([problem(
                    "code",
                    "The code is not correct. Enter the code your app shows now"
                )]),
            );
            Ok(Answer::Invalid(render("auth/enrol", c)))
        }
    }
}

/// A form whose only field is the CSRF token.
#[derive(FromForm)]
pub struct EmptyForm {
    #[field(default = String::new())]
    #[allow(dead_code)]
    csrf_token: String,
}

#[rocket::post("/account/sessions/<id>/end", data = "<_form>")]
async fn end_session(
    state: &State<AppState>,
    staff: SignedIn,
    id: i64,
    _form: CsrfForm<EmptyForm>,
    req_origin: RequestOrigin,
) -> Result<Answer, PageError> {
    if !accounts::end_session(state, &staff.staff, id, req_origin.0.ip.clone()).await? {
        // Not one of theirs (or already gone): the same answer as a session that never was.
        return Err(Status::NotFound.into());
    }
    if id == staff.session.id {
        return Ok(Answer::Redirect(Redirect::to("/login?reason=signed_out")));
    }
    Ok(Answer::Redirect(Redirect::to(
        "/account?notice=session_ended",
    )))
}

#[rocket::post("/account/sessions/end-others", data = "<_form>")]
async fn end_other_sessions(
    state: &State<AppState>,
    staff: SignedIn,
    _form: CsrfForm<EmptyForm>,
    req_origin: RequestOrigin,
) -> Result<Answer, PageError> {
    accounts::end_sessions(
        state,
        staff.actor(),
        staff.staff.id,
        Some(&staff.session.id_hash),
        req_origin.0.ip.clone(),
    )
    .await?;
    Ok(Answer::Redirect(Redirect::to(
        "/account?notice=others_ended",
    )))
}
