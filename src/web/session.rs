//! Sessions and CSRF on the web side: the session cookie, the `SignedIn` and `SigningIn`
//! guards (which enforce `access::ROUTES`), the CSRF token for pages and the `CsrfForm` data
//! guard that every state-changing form goes through.

use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::form::{Form, FromForm};
use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};
use serde_json::json;

use super::access::{self, Access};
use super::csrf;
use super::request::origin_ip;
use crate::audit::{self, Actor, AuditEvent};
use crate::config::Config;
use crate::identity::permissions::Permission;
use crate::identity::sessions::{COOKIE_NAME, INSECURE_COOKIE_NAME};
use crate::identity::signin::{self, CurrentSession, NoSession, Origin, Stage};
use crate::AppState;

/// Holds a random value for people who are not signed in, so that their forms (sign in,
/// forgot password) carry a CSRF token too.
const PRE_COOKIE_NAME: &str = "__Host-paydesk_csrf";
const INSECURE_PRE_COOKIE_NAME: &str = "paydesk_csrf";

pub fn session_cookie_name(config: &Config) -> &'static str {
    if config.secure_cookies {
        COOKIE_NAME
    } else {
        INSECURE_COOKIE_NAME
    }
}

fn pre_cookie_name(config: &Config) -> &'static str {
    if config.secure_cookies {
        PRE_COOKIE_NAME
    } else {
        INSECURE_PRE_COOKIE_NAME
    }
}

fn cookie(config: &Config, name: &'static str, value: String) -> Cookie<'static> {
    // A session cookie (no Max-Age): the server decides when a session ends.
    Cookie::build((name, value))
        .path("/")
        .secure(config.secure_cookies)
        .http_only(true)
        .same_site(SameSite::Lax)
        .build()
}

pub fn set_session_cookie(jar: &CookieJar<'_>, config: &Config, session_id: String) {
    jar.add(cookie(config, session_cookie_name(config), session_id));
}

pub fn clear_session_cookie(jar: &CookieJar<'_>, config: &Config) {
    jar.remove(cookie(config, session_cookie_name(config), String::new()));
}

pub fn session_cookie_value(req: &Request<'_>, config: &Config) -> Option<String> {
    req.cookies()
        .get(session_cookie_name(config))
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

pub fn origin(req: &Request<'_>) -> Origin {
    Origin {
        ip: origin_ip(req),
        user_agent: req.headers().get_one("User-Agent").map(str::to_string),
    }
}

/// Why a request was turned away, for the error page to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Refusal {
    #[default]
    None,
    /// The session ran out; the sign-in page says so.
    TimedOut,
    /// The CSRF check failed; the 403 page explains what to do.
    Csrf,
    /// Too many attempts from this address.
    RateLimited,
}

pub fn refusal(req: &Request<'_>) -> Refusal {
    refusal_slot(req).lock().map(|r| *r).unwrap_or_default()
}

pub fn mark(req: &Request<'_>, r: Refusal) {
    set_refusal(req, r)
}

fn set_refusal(req: &Request<'_>, r: Refusal) {
    if let Ok(mut slot) = refusal_slot(req).lock() {
        *slot = r;
    }
}

fn refusal_slot<'r>(req: &'r Request<'_>) -> &'r std::sync::Mutex<Refusal> {
    req.local_cache(|| std::sync::Mutex::new(Refusal::None))
}

/// A signed-in member of staff on a route they are allowed to use.
pub struct SignedIn(pub CurrentSession);

impl std::ops::Deref for SignedIn {
    type Target = CurrentSession;
    fn deref(&self) -> &CurrentSession {
        &self.0
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SignedIn {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let Some(state) = req.rocket().state::<AppState>() else {
            return Outcome::Error((Status::InternalServerError, ()));
        };
        let declared = req.route().and_then(access::for_route);
        let one;
        let needed: &[Permission] = match declared {
            Some(Access::SignedIn) => &[],
            Some(Access::Permission(p)) => {
                one = [p];
                &one
            }
            Some(Access::AnyPermission(any)) => any,
            other => {
                // Deny by default: a route must say who may use it.
                tracing::error!(route = ?req.route().map(|r| r.uri.to_string()), declared = ?other, "route has no access declaration for signed-in use; refusing");
                return Outcome::Error((Status::NotFound, ()));
            }
        };
        let session = match load(req, state, Stage::Active).await {
            Ok(s) => s,
            Err(status) => return Outcome::Error((status, ())),
        };
        if !needed.is_empty() && !needed.iter().any(|p| session.grants.can_somewhere(*p)) {
            let names: Vec<&str> = needed.iter().map(|p| p.name()).collect();
            let _ = audit::record(
                &state.db,
                state.clock.now(),
                AuditEvent::new(session.actor(), "authz_fail", req.uri().path().to_string())
                    .failed()
                    .from_ip(origin_ip(req))
                    .details(json!({"needs": names.join(" or ")})),
            )
            .await;
            return Outcome::Error((Status::Forbidden, ()));
        }
        Outcome::Success(SignedIn(session))
    }
}

async fn load(req: &Request<'_>, state: &AppState, stage: Stage) -> Result<CurrentSession, Status> {
    let Some(id) = session_cookie_value(req, &state.config) else {
        return Err(Status::Unauthorized);
    };
    match signin::load_session(state, &id, stage).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(NoSession::TimedOut)) => {
            set_refusal(req, Refusal::TimedOut);
            Err(Status::Unauthorized)
        }
        Ok(Err(NoSession::Missing)) => Err(Status::Unauthorized),
        Err(e) => {
            tracing::error!(error = %e, "could not load a session");
            Err(Status::InternalServerError)
        }
    }
}

/// Someone part-way through signing in: password given, code or enrolment to come.
pub struct SigningIn(pub CurrentSession);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SigningIn {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let Some(state) = req.rocket().state::<AppState>() else {
            return Outcome::Error((Status::InternalServerError, ()));
        };
        if req.route().and_then(access::for_route) != Some(Access::SigningIn) {
            return Outcome::Error((Status::NotFound, ()));
        }
        for stage in [Stage::SecondFactor, Stage::Enrol] {
            match load(req, state, stage).await {
                Ok(s) => return Outcome::Success(SigningIn(s)),
                Err(Status::Unauthorized) => continue,
                Err(status) => return Outcome::Error((status, ())),
            }
        }
        Outcome::Error((Status::Unauthorized, ()))
    }
}

/// The CSRF token to put in this page's forms. For signed-out visitors it makes sure the
/// cookie the token is bound to exists.
pub struct CsrfToken(pub String);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CsrfToken {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let Some(state) = req.rocket().state::<AppState>() else {
            return Outcome::Error((Status::InternalServerError, ()));
        };
        let config = &state.config;
        let key = config.csrf_key();
        if let Some(bound) = csrf_binding(req, config) {
            return Outcome::Success(CsrfToken(csrf::token_for(&key, &bound)));
        }
        let value = crate::identity::sessions::new_session_id();
        req.cookies()
            .add(cookie(config, pre_cookie_name(config), value.clone()));
        Outcome::Success(CsrfToken(csrf::token_for(&key, &format!("pre:{value}"))))
    }
}

/// What a request's CSRF token is bound to: the session cookie when there is one, otherwise
/// the signed-out visitor's cookie.
fn csrf_binding(req: &Request<'_>, config: &Config) -> Option<String> {
    if let Some(session) = session_cookie_value(req, config) {
        return Some(session);
    }
    req.cookies()
        .get(pre_cookie_name(config))
        .map(|c| format!("pre:{}", c.value()))
        .filter(|v| v.len() > 4)
}

/// A form that passed the CSRF checks (origin and token), parsed into `T`.
pub struct CsrfForm<T>(pub T);

#[rocket::async_trait]
impl<'r, T> FromData<'r> for CsrfForm<T>
where
    T: for<'a> FromForm<'a> + Send + 'static,
{
    type Error = ();

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let Some(state) = req.rocket().state::<AppState>() else {
            return Outcome::Error((Status::InternalServerError, ()));
        };
        if !req.content_type().is_some_and(|ct| ct.is_form()) {
            return Outcome::Error((Status::UnsupportedMediaType, ()));
        }
        let limit = req.limits().get("form").unwrap_or_else(|| 64.kibibytes());
        let body = match data.open(limit).into_string().await {
            Ok(s) if s.is_complete() => s.into_inner(),
            Ok(_) => return Outcome::Error((Status::PayloadTooLarge, ())),
            // Not UTF-8, or the connection broke.
            Err(_) => return Outcome::Error((Status::BadRequest, ())),
        };
        if let Err(reason) = check(req, state, &body) {
            return Outcome::Error((refuse(req, state, reason).await, ()));
        }
        match Form::<T>::parse_encoded(rocket::http::RawStr::new(&body)) {
            Ok(value) => Outcome::Success(CsrfForm(value)),
            Err(_) => Outcome::Error((Status::UnprocessableEntity, ())),
        }
    }
}

fn check(req: &Request<'_>, state: &AppState, body: &str) -> Result<(), &'static str> {
    let submitted = Form::values(body)
        .find(|f| f.name == "csrf_token")
        .map(|f| f.value.to_string())
        .unwrap_or_default();
    check_token(req, state, &submitted)
}

/// The origin checks, and the token a form carried.
fn check_token(req: &Request<'_>, state: &AppState, submitted: &str) -> Result<(), &'static str> {
    check_origin(req, state)?;
    let Some(bound) = csrf_binding(req, &state.config) else {
        return Err("no cookie to bind the token to");
    };
    if csrf::token_matches(&state.config.csrf_key(), &bound, submitted) {
        Ok(())
    } else {
        Err("token missing or wrong")
    }
}

fn check_origin(req: &Request<'_>, state: &AppState) -> Result<(), &'static str> {
    let headers = req.headers();
    let mut own = vec![state.config.public_url.clone()];
    if let Some(host) = headers.get_one("Host") {
        own.push(format!("http://{host}"));
        own.push(format!("https://{host}"));
    }
    csrf::check_origin(
        headers.get_one("Sec-Fetch-Site"),
        headers.get_one("Origin"),
        &own,
    )
    .map_err(|_| "request from another site")
}

/// A form refused by the CSRF checks: noted (summarised for strangers, audited for staff), 403.
async fn refuse(req: &Request<'_>, state: &AppState, reason: &'static str) -> Status {
    set_refusal(req, Refusal::Csrf);
    let actor = match session_cookie_value(req, &state.config) {
        Some(id) => match signin::load_session(state, &id, Stage::Active).await {
            Ok(Ok(s)) => s.actor(),
            _ => Actor::Anonymous,
        },
        None => Actor::Anonymous,
    };
    if actor == Actor::Anonymous {
        // Summarised per source and minute, never one chained entry per request.
        state.refusals.note(
            &state.metrics,
            state.clock.now(),
            crate::audit::refusals::Kind::Csrf,
            origin_ip(req).as_deref(),
            req.uri().path().as_str(),
            reason,
        );
        return Status::Forbidden;
    }
    let _ = audit::record(
        &state.db,
        state.clock.now(),
        AuditEvent::new(actor, "csrf_fail", req.uri().path().to_string())
            .failed()
            .from_ip(origin_ip(req))
            .details(json!({"reason": reason})),
    )
    .await;
    Status::Forbidden
}

/// A form that carries its CSRF token as a field (a file upload's multipart form).
pub trait CarriesCsrf {
    fn csrf_token(&self) -> &str;
}

/// A file upload (`multipart/form-data`) that passed the CSRF checks, parsed into `T`; or,
/// when the body could not be read as the form (larger than the limits, say), `Err` so that
/// the page can say so. Either way nothing was acted on.
pub struct CsrfUpload<T>(pub Result<T, ()>);

#[rocket::async_trait]
impl<'r, T> FromData<'r> for CsrfUpload<T>
where
    T: FromForm<'r> + CarriesCsrf + Send + 'r,
{
    type Error = ();

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let Some(state) = req.rocket().state::<AppState>() else {
            return Outcome::Error((Status::InternalServerError, ()));
        };
        if !req.content_type().is_some_and(|ct| ct.is_form_data()) {
            return Outcome::Error((Status::UnsupportedMediaType, ()));
        }
        if let Err(reason) = check_origin(req, state) {
            return Outcome::Error((refuse(req, state, reason).await, ()));
        }
        match Form::<T>::from_data(req, data).await {
            Outcome::Success(form) => {
                let form = form.into_inner();
                if let Err(reason) = check_token(req, state, form.csrf_token()) {
                    return Outcome::Error((refuse(req, state, reason).await, ()));
                }
                Outcome::Success(CsrfUpload(Ok(form)))
            }
            _ => Outcome::Success(CsrfUpload(Err(()))),
        }
    }
}
