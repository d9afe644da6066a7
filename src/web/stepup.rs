//! The web side of asking for the second factor again before an action that moves money or
//! data (`identity::step_up` holds the rules: the code check, the lockout, the audit): reading
//! the code, the per-address limit, and the "Confirm it's you" page.
//!
//! Every page that needs a step-up calls `require` with its `Gate`.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::errors::PageError;
use super::pages::{render, Answer};
use super::ratelimit::SignInLimiter;
use crate::identity::signin::{CurrentSession, Origin};
use crate::identity::step_up::{self, StepUpOutcome};
use crate::AppState;

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

/// The one step-up check for pages: None when the second factor is fresh or the code just
/// given is right; otherwise the "Confirm it's you" page to show (200 the first time, 422 with
/// the message after a refused code).
pub async fn require(
    state: &AppState,
    limiter: &SignInLimiter,
    client_ip: Option<IpAddr>,
    session: &CurrentSession,
    origin: &Origin,
    gate: Gate<'_>,
) -> Result<Option<Answer>, PageError> {
    if session.second_factor_recent(state.clock.now()) {
        return Ok(None);
    }
    let message = if gate.code.trim().is_empty() && gate.stepping_up.is_empty() {
        None
    } else {
        match verify(
            state,
            Some(limiter),
            client_ip,
            session,
            gate.code,
            origin,
            gate.what,
        )
        .await?
        {
            StepUp::Done => return Ok(None),
            StepUp::Refused(m) => Some(m),
        }
    };
    let c = context(
        state,
        session,
        &gate.action,
        gate.hidden,
        &gate.purpose,
        gate.button,
        &gate.back,
        message,
    );
    let page = render("refunds/step_up", c);
    Ok(Some(if message.is_some() {
        Answer::Invalid(page)
    } else {
        Answer::Page(page)
    }))
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
