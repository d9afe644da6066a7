//! Sign-in pages: email and password, the code from the authenticator (or enrolling one),
//! set-up links for new staff, forgotten passwords, signing out and "stay signed in".

use rocket::form::FromForm;
use rocket::http::{CookieJar, Status};
use rocket::response::Redirect;
use rocket::{Route, State};
use serde_json::{json, Value};

use super::errors::PageError;
use super::pages::{self, problem, render, safe_next, Answer};
use super::ratelimit::SignInAttempt;
use super::session::{
    clear_session_cookie, origin, set_session_cookie, CsrfForm, CsrfToken, SignedIn, SigningIn,
};
use crate::identity::accounts::{self, PasswordOutcome};
use crate::identity::signin::{self, CodeStep, PasswordStep, Stage};
use crate::identity::{lockout, password, totp};
use crate::store::staff::StaffRow;
use crate::AppState;

pub fn routes() -> Vec<Route> {
    rocket::routes![
        login_page,
        login,
        code_page,
        code,
        enrol_page,
        enrol,
        logout,
        extend,
        setup_page,
        setup,
        forgot_page,
        forgot,
        forgot_sent,
        reset_page,
        reset,
    ]
}

/// The same words for every refused sign-in, whatever the reason.
pub const SIGN_IN_REFUSED: &str = "Enter a correct email address and password. After 10 wrong attempts an account is locked for 30 minutes.";

#[derive(FromForm)]
pub struct LoginForm {
    #[field(default = String::new())]
    email: String,
    #[field(default = String::new())]
    password: String,
    #[field(default = String::new())]
    next: String,
}

#[derive(FromForm)]
pub struct CodeForm {
    #[field(default = String::new())]
    code: String,
}

#[derive(FromForm)]
pub struct NewPasswordForm {
    #[field(default = String::new())]
    password: String,
    #[field(default = String::new())]
    password_confirmation: String,
    /// The authenticator code a reset of a locked account needs (`identity::lockout`).
    #[field(default = String::new())]
    code: String,
}

#[derive(FromForm)]
pub struct EmailForm {
    #[field(default = String::new())]
    email: String,
}

#[derive(FromForm)]
pub struct NextForm {
    #[field(default = String::new())]
    pub next: String,
}

fn providers(state: &AppState) -> Value {
    Value::Array(
        state
            .config
            .sso_providers
            .iter()
            .map(|p| json!({"id": p.id, "label": p.label}))
            .collect(),
    )
}

fn login_context(
    state: &AppState,
    csrf: &str,
    email: &str,
    next: Option<String>,
    notice: Option<&str>,
    errors: Vec<Value>,
) -> serde_json::Map<String, Value> {
    let mut c = pages::signed_out(state, csrf);
    c.insert("email".into(), json!(email));
    c.insert("next".into(), json!(next.unwrap_or_default()));
    c.insert("notice".into(), json!(notice.unwrap_or_default()));
    c.insert("errors".into(), Value::Array(errors));
    c.insert("providers".into(), providers(state));
    c
}

#[rocket::get("/login?<next>&<reason>")]
async fn login_page(
    state: &State<AppState>,
    csrf: CsrfToken,
    next: Option<&str>,
    reason: Option<&str>,
    signed_in: Option<SignedInProbe>,
) -> Answer {
    if signed_in.is_some() {
        return Answer::Redirect(Redirect::to(safe_next(next).unwrap_or_else(|| "/".into())));
    }
    let notice = match reason {
        Some("timeout") => Some("You were signed out because you did nothing for 15 minutes. Sign in again to carry on."),
        Some("signed_out") => Some("You have signed out."),
        Some("password_changed") => Some("Your password has been changed. Sign in with your new password."),
        Some("locked") => Some(SIGN_IN_REFUSED),
        _ => None,
    };
    Answer::Page(render(
        "auth/login",
        login_context(state, &csrf.0, "", safe_next(next), notice, vec![]),
    ))
}

/// Whether the visitor already has an active session (without enforcing anything).
pub struct SignedInProbe;

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for SignedInProbe {
    type Error = ();
    async fn from_request(req: &'r rocket::Request<'_>) -> rocket::request::Outcome<Self, ()> {
        use rocket::outcome::Outcome;
        let Some(state) = req.rocket().state::<AppState>() else {
            return Outcome::Forward(Status::Unauthorized);
        };
        let Some(id) = super::session::session_cookie_value(req, &state.config) else {
            return Outcome::Forward(Status::Unauthorized);
        };
        match signin::load_session(state, &id, Stage::Active).await {
            Ok(Ok(_)) => Outcome::Success(SignedInProbe),
            _ => Outcome::Forward(Status::Unauthorized),
        }
    }
}

#[rocket::post("/login", data = "<form>")]
async fn login(
    state: &State<AppState>,
    _limit: SignInAttempt,
    jar: &CookieJar<'_>,
    csrf: CsrfToken,
    form: CsrfForm<LoginForm>,
    req_origin: RequestOrigin,
) -> Result<Answer, PageError> {
    let form = form.0;
    let next = safe_next(Some(&form.next));
    let mut errors = Vec::new();
    if form.email.trim().is_empty() {
        errors.push(problem("email", "Enter your email address"));
    }
    if form.password.is_empty() {
        errors.push(problem("password", "Enter your password"));
    }
    if !errors.is_empty() {
        return Ok(Answer::Invalid(render(
            "auth/login",
            login_context(state, &csrf.0, &form.email, next, None, errors),
        )));
    }
    match signin::password_step(
        state,
        &form.email,
        &form.password,
        next.as_deref(),
        &req_origin.0,
    )
    .await?
    {
        PasswordStep::Refused => Ok(Answer::Invalid(render(
            "auth/login",
            login_context(
                state,
                &csrf.0,
                &form.email,
                next,
                None,
                vec![problem("email", SIGN_IN_REFUSED)],
            ),
        ))),
        PasswordStep::Next { session_id, stage } => {
            set_session_cookie(jar, &state.config, session_id);
            Ok(Answer::Redirect(Redirect::to(match stage {
                Stage::Enrol => "/login/enrol",
                _ => "/login/code",
            })))
        }
    }
}

/// Where a request came from, as a guard.
pub struct RequestOrigin(pub signin::Origin);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for RequestOrigin {
    type Error = std::convert::Infallible;
    async fn from_request(
        req: &'r rocket::Request<'_>,
    ) -> rocket::request::Outcome<Self, Self::Error> {
        rocket::outcome::Outcome::Success(RequestOrigin(origin(req)))
    }
}

fn code_context(
    state: &AppState,
    pending: &SigningIn,
    errors: Vec<Value>,
) -> serde_json::Map<String, Value> {
    let mut c = pages::signed_out(state, &pages::csrf_token(state, &pending.0));
    c.insert("errors".into(), Value::Array(errors));
    if let Some(code) = crate::demo::current_code(
        state,
        &pending.0.staff.email,
        pending.0.staff.totp_last_step,
    ) {
        c.insert("demo_code".into(), Value::String(code));
    }
    c
}

#[rocket::get("/login/code")]
async fn code_page(state: &State<AppState>, pending: SigningIn) -> Answer {
    if pending.0.stage() == Stage::Enrol {
        return Answer::Redirect(Redirect::to("/login/enrol"));
    }
    Answer::Page(render("auth/code", code_context(state, &pending, vec![])))
}

#[rocket::post("/login/code", data = "<form>")]
async fn code(
    state: &State<AppState>,
    _limit: SignInAttempt,
    jar: &CookieJar<'_>,
    pending: SigningIn,
    form: CsrfForm<CodeForm>,
    req_origin: RequestOrigin,
) -> Result<Answer, PageError> {
    if pending.0.stage() != Stage::SecondFactor {
        return Ok(Answer::Redirect(Redirect::to("/login/enrol")));
    }
    let code = form.0.code;
    if code.trim().is_empty() {
        return Ok(Answer::Invalid(render(
            "auth/code",
            code_context(
                state,
                &pending,
                vec![problem(
                    "code",
                    "Enter the 6-digit code from your authenticator app",
                )],
            ),
        )));
    }
    let outcome = signin::code_step(state, &pending.0, &code, &req_origin.0).await?;
    Ok(after_code(state, jar, &pending, outcome, "auth/code", None))
}

fn after_code(
    state: &AppState,
    jar: &CookieJar<'_>,
    pending: &SigningIn,
    outcome: CodeStep,
    template: &'static str,
    extra: Option<serde_json::Map<String, Value>>,
) -> Answer {
    match outcome {
        CodeStep::SignedIn {
            session_id,
            return_to,
        } => {
            set_session_cookie(jar, &state.config, session_id);
            Answer::Redirect(Redirect::to(
                safe_next(return_to.as_deref()).unwrap_or_else(|| "/".into()),
            ))
        }
        CodeStep::Locked => {
            clear_session_cookie(jar, &state.config);
            Answer::Redirect(Redirect::to("/login?reason=locked"))
        }
        CodeStep::Wrong => {
            let mut c = extra.unwrap_or_else(|| code_context(state, pending, vec![]));
            c.insert(
                "csrf_token".into(),
                json!(pages::csrf_token(state, &pending.0)),
            );
            c.insert(
                "errors".into(),
                json!([problem("code", "The code is not correct or has already been used. Enter the code your app shows now")]),
            );
            Answer::Invalid(render(template, c))
        }
    }
}

/// The enrolment page's context: the QR code, the key as text, the form.
pub fn enrol_context(
    state: &AppState,
    session: &signin::CurrentSession,
    secret: &[u8],
    action: &str,
) -> serde_json::Map<String, Value> {
    let uri = totp::provisioning_uri(secret, &state.config.service_name, &session.staff.email);
    let mut c = pages::signed_out(state, &pages::csrf_token(state, session));
    c.insert("qr_svg".into(), json!(qr_svg(&uri)));
    c.insert(
        "secret_grouped".into(),
        json!(totp::grouped(&totp::base32_encode(secret))),
    );
    c.insert("account".into(), json!(session.staff.email));
    c.insert("action".into(), json!(action));
    c.insert("errors".into(), json!([]));
    c
}

/// The provisioning URI as an inline SVG QR code (no image requests, nothing for the CSP to
/// allow).
fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            let start = svg.find("<svg").unwrap_or(0);
            svg[start..].replacen(
                "<svg",
                "<svg role=\"img\" aria-label=\"QR code to scan with your authenticator app\" class=\"paydesk-qr\"",
                1,
            )
        }
        Err(_) => String::new(),
    }
}

#[rocket::get("/login/enrol")]
async fn enrol_page(state: &State<AppState>, pending: SigningIn) -> Result<Answer, PageError> {
    if pending.0.stage() != Stage::Enrol {
        return Ok(Answer::Redirect(Redirect::to("/login/code")));
    }
    let secret = signin::enrolment_secret(state, &pending.0).await?;
    Ok(Answer::Page(render(
        "auth/enrol",
        enrol_context(state, &pending.0, &secret, "/login/enrol"),
    )))
}

#[rocket::post("/login/enrol", data = "<form>")]
async fn enrol(
    state: &State<AppState>,
    _limit: SignInAttempt,
    jar: &CookieJar<'_>,
    pending: SigningIn,
    form: CsrfForm<CodeForm>,
    req_origin: RequestOrigin,
) -> Result<Answer, PageError> {
    if pending.0.stage() != Stage::Enrol {
        return Ok(Answer::Redirect(Redirect::to("/login/code")));
    }
    let secret = signin::enrolment_secret(state, &pending.0).await?;
    let context = enrol_context(state, &pending.0, &secret, "/login/enrol");
    if form.0.code.trim().is_empty() {
        let mut c = context;
        c.insert(
            "errors".into(),
            json!([problem(
                "code",
                "Enter the 6-digit code from your authenticator app"
            )]),
        );
        return Ok(Answer::Invalid(render("auth/enrol", c)));
    }
    let outcome =
        signin::confirm_enrolment(state, &pending.0, &secret, &form.0.code, &req_origin.0).await?;
    Ok(after_code(
        state,
        jar,
        &pending,
        outcome,
        "auth/enrol",
        Some(context),
    ))
}

#[rocket::post("/logout", data = "<_form>")]
async fn logout(
    state: &State<AppState>,
    jar: &CookieJar<'_>,
    staff: SignedIn,
    _form: CsrfForm<NextForm>,
    req_origin: RequestOrigin,
) -> Result<Redirect, PageError> {
    signin::sign_out(state, &staff.0, &req_origin.0).await?;
    clear_session_cookie(jar, &state.config);
    Ok(Redirect::to("/login?reason=signed_out"))
}

/// "Stay signed in": the guard has already restarted the idle timer. Scripts get 204; a
/// plain form post goes back where it came from.
#[rocket::post("/session/extend", data = "<form>")]
async fn extend(_staff: SignedIn, form: CsrfForm<NextForm>, accept: AcceptsJson) -> Answer {
    if accept.0 {
        return Answer::Empty(Status::NoContent);
    }
    Answer::Redirect(Redirect::to(
        safe_next(Some(&form.0.next)).unwrap_or_else(|| "/".into()),
    ))
}

pub struct AcceptsJson(bool);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for AcceptsJson {
    type Error = std::convert::Infallible;
    async fn from_request(
        req: &'r rocket::Request<'_>,
    ) -> rocket::request::Outcome<Self, Self::Error> {
        let json = req
            .headers()
            .get_one("Accept")
            .is_some_and(|a| a.contains("application/json"));
        rocket::outcome::Outcome::Success(AcceptsJson(json))
    }
}

fn link_invalid(state: &AppState, purpose: &str) -> Answer {
    let mut c = pages::signed_out(state, "");
    let (heading, message) = if purpose == "setup" {
        ("This set-up link has expired or has already been used", "Set-up links work once, for 48 hours. Ask an administrator of your service to send you a new one.")
    } else {
        (
            "This reset link has expired or has already been used",
            "Reset links work once, for 90 minutes. You can ask for a new one.",
        )
    };
    c.insert("heading".into(), json!(heading));
    c.insert("message".into(), json!(message));
    c.insert("purpose".into(), json!(purpose));
    Answer::Status((Status::NotFound, render("auth/link_invalid", c)))
}

fn new_password_context(
    state: &AppState,
    csrf: &str,
    name: &str,
    action: String,
    heading: &str,
    errors: Vec<Value>,
    needs_code: bool,
) -> serde_json::Map<String, Value> {
    let mut c = pages::signed_out(state, csrf);
    c.insert("name".into(), json!(name));
    c.insert("action".into(), json!(action));
    c.insert("heading".into(), json!(heading));
    c.insert("min_length".into(), json!(password::MIN_LENGTH));
    c.insert("errors".into(), Value::Array(errors));
    c.insert("providers".into(), providers(state));
    c.insert("needs_code".into(), json!(needs_code));
    c
}

/// The two kinds of one-time link that lead to choosing a password, as their pages show them.
struct LinkPage {
    purpose: &'static str,
    path: &'static str,
    heading: &'static str,
}

const SETUP: LinkPage = LinkPage {
    purpose: "setup",
    path: "/setup",
    heading: "Create your password",
};

const RESET: LinkPage = LinkPage {
    purpose: "reset",
    path: "/reset-password",
    heading: "Choose a new password",
};

/// The new-password form for a link, or the page saying the link cannot be used.
async fn link_form(
    state: &AppState,
    csrf: &str,
    token: &str,
    page: &LinkPage,
) -> Result<Answer, PageError> {
    let Some(staff) =
        accounts::link_owner(&state.db, token, page.purpose, state.clock.now()).await?
    else {
        return Ok(link_invalid(state, page.purpose));
    };
    let action = format!("{}/{token}", page.path);
    let needs_code = lockout::link_needs_code(&staff, page.purpose, state.clock.now());
    Ok(Answer::Page(render(
        "auth/new_password",
        new_password_context(
            state,
            csrf,
            &staff.name,
            action,
            page.heading,
            vec![],
            needs_code,
        ),
    )))
}

/// Set the password a link's form sent: the account on success, otherwise the page to show.
async fn link_submit(
    state: &AppState,
    csrf: &str,
    token: &str,
    form: NewPasswordForm,
    origin: &signin::Origin,
    page: &LinkPage,
) -> Result<Result<StaffRow, Answer>, PageError> {
    let outcome = accounts::set_password_with_code(
        state,
        token,
        page.purpose,
        &form.password,
        &form.password_confirmation,
        Some(form.code.as_str()),
        origin.ip.clone(),
    )
    .await?;
    Ok(match outcome {
        PasswordOutcome::Done { staff } => Ok(staff),
        PasswordOutcome::LinkInvalid => Err(link_invalid(state, page.purpose)),
        PasswordOutcome::CodeWrong => {
            let mut c = pages::signed_out(state, "");
            c.insert("heading".into(), json!("The code was not right"));
            c.insert("message".into(), json!("Your account is still locked, and this link can no longer be used. Ask for a new reset link, and enter the code your authenticator app shows at the time."));
            c.insert("purpose".into(), json!(page.purpose));
            Err(Answer::Status((
                Status::Forbidden,
                render("auth/link_invalid", c),
            )))
        }
        PasswordOutcome::Problems {
            problems,
            name,
            needs_code,
        } => {
            let errors = problems
                .iter()
                .map(|p| problem(p.field, p.message.clone()))
                .collect();
            let action = format!("{}/{token}", page.path);
            Err(Answer::Invalid(render(
                "auth/new_password",
                new_password_context(state, csrf, &name, action, page.heading, errors, needs_code),
            )))
        }
    })
}

#[rocket::get("/setup/<token>")]
async fn setup_page(
    state: &State<AppState>,
    csrf: CsrfToken,
    token: &str,
) -> Result<Answer, PageError> {
    link_form(state, &csrf.0, token, &SETUP).await
}

#[rocket::post("/setup/<token>", data = "<form>")]
async fn setup(
    state: &State<AppState>,
    _limit: SignInAttempt,
    jar: &CookieJar<'_>,
    csrf: CsrfToken,
    token: &str,
    form: CsrfForm<NewPasswordForm>,
    req_origin: RequestOrigin,
) -> Result<Answer, PageError> {
    let staff = match link_submit(state, &csrf.0, token, form.0, &req_origin.0, &SETUP).await? {
        Ok(staff) => staff,
        Err(answer) => return Ok(answer),
    };
    // Straight on to enrolling an authenticator, in a session of its own.
    let session_id =
        signin::start_pending(state, &staff, Stage::Enrol, "password", None, &req_origin.0).await?;
    set_session_cookie(jar, &state.config, session_id);
    Ok(Answer::Redirect(Redirect::to("/login/enrol")))
}

#[rocket::get("/forgot-password")]
fn forgot_page(state: &State<AppState>, csrf: CsrfToken) -> Answer {
    let mut c = pages::signed_out(state, &csrf.0);
    c.insert("errors".into(), json!([]));
    c.insert("email".into(), json!(""));
    Answer::Page(render("auth/forgot", c))
}

#[rocket::post("/forgot-password", data = "<form>")]
async fn forgot(
    state: &State<AppState>,
    _limit: SignInAttempt,
    csrf: CsrfToken,
    form: CsrfForm<EmailForm>,
    req_origin: RequestOrigin,
) -> Result<Answer, PageError> {
    let email = form.0.email;
    if !accounts::is_valid_email(&email) {
        let mut c = pages::signed_out(state, &csrf.0);
        c.insert("email".into(), json!(email));
        c.insert(
            "errors".into(),
            json!([problem(
                "email",
                "Enter an email address in the correct format, like name@example.gov.uk"
            )]),
        );
        return Ok(Answer::Invalid(render("auth/forgot", c)));
    }
    accounts::request_password_reset(state, &email, req_origin.0.ip.clone()).await?;
    Ok(Answer::Redirect(Redirect::to("/forgot-password/sent")))
}

/// What the form said once sent (the same whatever the address was).
#[rocket::get("/forgot-password/sent")]
fn forgot_sent(state: &State<AppState>, csrf: CsrfToken) -> Answer {
    Answer::Page(render(
        "auth/forgot_sent",
        pages::signed_out(state, &csrf.0),
    ))
}

#[rocket::get("/reset-password/<token>")]
async fn reset_page(
    state: &State<AppState>,
    csrf: CsrfToken,
    token: &str,
) -> Result<Answer, PageError> {
    link_form(state, &csrf.0, token, &RESET).await
}

#[rocket::post("/reset-password/<token>", data = "<form>")]
async fn reset(
    state: &State<AppState>,
    _limit: SignInAttempt,
    jar: &CookieJar<'_>,
    csrf: CsrfToken,
    token: &str,
    form: CsrfForm<NewPasswordForm>,
    req_origin: RequestOrigin,
) -> Result<Answer, PageError> {
    if let Err(answer) = link_submit(state, &csrf.0, token, form.0, &req_origin.0, &RESET).await? {
        return Ok(answer);
    }
    // Every session of the person has ended, this browser's too.
    clear_session_cookie(jar, &state.config);
    Ok(Answer::Redirect(Redirect::to(
        "/login?reason=password_changed",
    )))
}
