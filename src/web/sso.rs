//! Single sign-on routes: the button's POST starts a flow at the provider; the provider sends
//! the person back to the callback.

use rocket::http::{CookieJar, Status};
use rocket::response::Redirect;
use rocket::{Route, State};
use serde_json::json;

use super::auth::{NextForm, RequestOrigin};
use super::errors::PageError;
use super::pages::{self, render, safe_next, Answer};
use super::session::{set_session_cookie, CsrfForm};
use crate::identity::oidc::{self, SsoOutcome};
use crate::identity::signin::{self, Stage};
use crate::AppState;

pub use crate::identity::oidc::Providers;

pub fn routes() -> Vec<Route> {
    rocket::routes![start, callback]
}

fn refused(state: &AppState, message: &str) -> Answer {
    let mut c = pages::signed_out(state, "");
    c.insert("message".into(), json!(message));
    Answer::Status((Status::Forbidden, render("auth/sso_refused", c)))
}

#[rocket::post("/login/sso/<provider>", data = "<form>")]
async fn start(
    state: &State<AppState>,
    providers: &State<Providers>,
    provider: &str,
    form: CsrfForm<NextForm>,
) -> Result<Answer, PageError> {
    let next = safe_next(Some(&form.0.next));
    match oidc::begin(state, providers, provider, next.as_deref()).await {
        Ok(Some(url)) => Ok(Answer::Redirect(Redirect::to(url))),
        Ok(None) => Err(Status::NotFound.into()),
        Err(e) => {
            tracing::error!(error = %e, provider, "could not start single sign-on");
            Ok(refused(state, "Your organisation's sign-in service cannot be reached at the moment. Try again later, or sign in with your email address and password if you have one."))
        }
    }
}

#[rocket::get("/login/sso/<provider>/callback?<state>&<code>&<error>")]
#[allow(clippy::too_many_arguments)]
async fn callback(
    app: &State<AppState>,
    providers: &State<Providers>,
    jar: &CookieJar<'_>,
    provider: &str,
    state: Option<&str>,
    code: Option<&str>,
    error: Option<&str>,
    req_origin: RequestOrigin,
) -> Result<Answer, PageError> {
    if !app.config.sso_providers.iter().any(|p| p.id == provider) {
        return Err(Status::NotFound.into());
    }
    let outcome = oidc::finish(
        app,
        providers,
        provider,
        state,
        code,
        error,
        req_origin.0.ip.clone(),
    )
    .await?;
    match outcome {
        SsoOutcome::Refused(r) => Ok(refused(app, r.message)),
        SsoOutcome::Matched {
            staff,
            needs_code,
            return_to,
            provider,
        } => {
            let method = format!("sso:{provider}");
            if needs_code {
                let stage = if staff.totp_secret.is_some() {
                    Stage::SecondFactor
                } else {
                    Stage::Enrol
                };
                let id = signin::start_pending(
                    app,
                    &staff,
                    stage,
                    &method,
                    return_to.as_deref(),
                    &req_origin.0,
                )
                .await?;
                set_session_cookie(jar, &app.config, id);
                Ok(Answer::Redirect(Redirect::to(if stage == Stage::Enrol {
                    "/login/enrol"
                } else {
                    "/login/code"
                })))
            } else {
                let id = signin::start_active(
                    app,
                    &staff,
                    &method,
                    &req_origin.0,
                    json!({"method": method, "second_factor": "provider"}),
                )
                .await?;
                set_session_cookie(jar, &app.config, id);
                Ok(Answer::Redirect(Redirect::to(
                    safe_next(return_to.as_deref()).unwrap_or_else(|| "/".into()),
                )))
            }
        }
    }
}
