//! The web side of asking for the second factor again before an action that moves money or
//! data (`identity::step_up` holds the rules: the code check, the lockout, the audit): reading
//! the code, the per-address limit, and the "Confirm it's you" page.
//!
//! Every action that needs a step-up takes a `Check` (a request guard) and calls its
//! `require` with the action's `Gate`. The first time, the action waits as a draft
//! (`crate::drafts`) and the browser is sent to `GET /confirm-identity` (post/redirect/get:
//! Back never offers to send a form again); the page's form sends the code to the action
//! itself, and the draft is forgotten once the action goes ahead.

use std::net::IpAddr;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::Redirect;
use rocket::{Route, State};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::errors::PageError;
use super::pages::{render, Answer};
use super::ratelimit::SignInLimiter;
use super::session::SignedIn;
use crate::identity::signin::{CurrentSession, Origin};
use crate::identity::step_up::{self, StepUpOutcome};
use crate::{drafts, AppState};

/// The kind of draft an action waiting for the second factor is.
const WAITING: &str = "step_up";

/// The key an action waits under: one per person and action, so that the action can forget
/// it once done without carrying it.
fn waiting_key(staff_id: i64, action: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("step-up:{staff_id}:{action}").as_bytes());
    hex::encode(&digest[..16])
}

pub use crate::identity::step_up::WRONG_CODE;

/// What a step-up code came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepUp {
    /// Accepted: the session's second factor is now fresh.
    Done,
    /// Wrong, reused, or the account is locked: ask again with this message.
    Refused(&'static str),
}

pub const NO_CODE: &str = "Enter the 6-digit code from your authenticator app";
pub const TOO_MANY: &str = "Too many attempts from your address. Wait a minute and try again";

/// Check a step-up `code` for the signed-in `session`. `what` names the action for the audit
/// log ("refund", "refund approval", ...).
async fn verify(
    state: &AppState,
    limiter: Option<&SignInLimiter>,
    client_ip: Option<IpAddr>,
    session: &CurrentSession,
    code: &str,
    origin: &Origin,
    what: &str,
) -> Result<StepUp, PageError> {
    if code.trim().is_empty() {
        return Ok(StepUp::Refused(NO_CODE));
    }
    // The same per-address limit as the sign-in code step.
    if let Some(limiter) = limiter {
        let ip = client_ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        if !limiter.allow(ip) {
            return Ok(StepUp::Refused(TOO_MANY));
        }
    }
    let now = state.clock.now();
    match step_up::verify(state, session, code, origin, what, now).await? {
        StepUpOutcome::Done => Ok(StepUp::Done),
        StepUpOutcome::Refused(message) => Ok(StepUp::Refused(message)),
        StepUpOutcome::Locked => Ok(StepUp::Refused(WRONG_CODE)),
    }
}

/// What the "Confirm it's you" page needs to send an action on, and what the form carried.
pub struct Gate<'a> {
    /// The code typed, and the form's `stepping_up` marker (set once the page was shown).
    pub code: &'a str,
    pub stepping_up: &'a str,
    /// For the audit log.
    pub what: &'a str,
    /// Where the page's form goes, and the fields it carries on (with `stepping_up`).
    pub action: String,
    pub hidden: Vec<(&'a str, String)>,
    /// "To {purpose}, enter the code ..."
    pub purpose: String,
    pub button: &'a str,
    pub back: String,
}

/// An action waiting for the second factor: what the "Confirm it's you" page shows and sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Waiting {
    action: String,
    hidden: Vec<(String, String)>,
    purpose: String,
    button: String,
    back: String,
}

/// What a step-up check needs from the request: the per-address limit and the address.
pub struct Check<'r> {
    limiter: &'r SignInLimiter,
    client_ip: Option<IpAddr>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Check<'r> {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        match req.rocket().state::<SignInLimiter>() {
            Some(limiter) => Outcome::Success(Check {
                limiter,
                client_ip: req.client_ip(),
            }),
            None => Outcome::Error((Status::InternalServerError, ())),
        }
    }
}

impl Check<'_> {
    /// The one step-up check for pages: None when the second factor is fresh or the code
    /// just given is right; otherwise what to answer: the first time, a redirect to the
    /// "Confirm it's you" page (the action waits for it); after a refused code, that page
    /// again with the message (422).
    pub async fn require(
        &self,
        state: &AppState,
        session: &CurrentSession,
        origin: &Origin,
        gate: Gate<'_>,
    ) -> Result<Option<Answer>, PageError> {
        let key = waiting_key(session.staff.id, &gate.action);
        if session.second_factor_recent(state.clock.now()) {
            forget(state, session, &key).await?;
            return Ok(None);
        }
        let waiting = Waiting {
            action: gate.action,
            hidden: gate
                .hidden
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            purpose: gate.purpose,
            button: gate.button.to_string(),
            back: gate.back,
        };
        if gate.code.trim().is_empty() && gate.stepping_up.is_empty() {
            let now = state.clock.now();
            drafts::keep(&state.db, now, session.staff.id, WAITING, &key, &waiting).await?;
            return Ok(Some(Answer::Redirect(Redirect::to(format!(
                "/confirm-identity?waiting={key}"
            )))));
        }
        match verify(
            state,
            Some(self.limiter),
            self.client_ip,
            session,
            gate.code,
            origin,
            gate.what,
        )
        .await?
        {
            StepUp::Done => {
                forget(state, session, &key).await?;
                Ok(None)
            }
            StepUp::Refused(message) => Ok(Some(Answer::Invalid(render(
                "refunds/step_up",
                page_context(state, session, &waiting, Some(message)),
            )))),
        }
    }
}

/// The action went ahead: nothing waits any more.
async fn forget(state: &AppState, session: &CurrentSession, key: &str) -> Result<(), PageError> {
    drafts::forget(&state.db, session.staff.id, key).await?;
    Ok(())
}

fn page_context(
    state: &AppState,
    session: &CurrentSession,
    w: &Waiting,
    error: Option<&str>,
) -> serde_json::Map<String, Value> {
    context(
        state,
        session,
        &w.action,
        w.hidden
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect(),
        &w.purpose,
        &w.button,
        &w.back,
        error,
    )
}

/// The "Confirm it's you" page of an action waiting for this person; once it is done (or
/// after an hour) the page says there is nothing to confirm.
#[rocket::get("/confirm-identity?<waiting>")]
async fn confirm_page(
    state: &State<AppState>,
    staff: SignedIn,
    waiting: Option<&str>,
) -> Result<Answer, PageError> {
    let now = state.clock.now();
    let found = match waiting.filter(|k| k.len() <= 64) {
        Some(key) => drafts::read::<Waiting>(&state.db, now, staff.staff.id, WAITING, key).await?,
        None => None,
    };
    Ok(match found {
        Some(w) => Answer::Page(render(
            "refunds/step_up",
            page_context(state, &staff, &w, None),
        )),
        None => {
            let mut c = super::pages::signed_in(state, &staff, "");
            c.insert("nothing".into(), json!(true));
            c.insert("errors".into(), json!([]));
            Answer::Page(render("refunds/step_up", c))
        }
    })
}

pub fn routes() -> Vec<Route> {
    rocket::routes![confirm_page]
}

/// The "Confirm it's you" page's context: where the form goes, what it carries, what it is
/// for, and (demo accounts in demo mode only) the current code.
#[allow(clippy::too_many_arguments)]
pub fn context(
    state: &AppState,
    session: &CurrentSession,
    action: &str,
    hidden: Vec<(&str, String)>,
    purpose: &str,
    button: &str,
    back_href: &str,
    error: Option<&str>,
) -> serde_json::Map<String, Value> {
    let mut c = super::pages::signed_in(state, session, "");
    c.insert("action".into(), json!(action));
    c.insert(
        "hidden".into(),
        Value::Array(
            hidden
                .into_iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect(),
        ),
    );
    c.insert("purpose".into(), json!(purpose));
    c.insert("button".into(), json!(button));
    c.insert("back_href".into(), json!(back_href));
    c.insert(
        "errors".into(),
        match error {
            Some(message) => json!([super::pages::problem("code", message)]),
            None => json!([]),
        },
    );
    if let Some(code) =
        crate::demo::current_code(state, &session.staff.email, session.staff.totp_last_step)
    {
        c.insert("demo_code".into(), Value::String(code));
    }
    c
}
