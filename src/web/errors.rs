//! Error pages. Every error answer, whatever its cause, is a friendly page (or an RFC 9457
//! problem document under `/api/`) with a correlation id, and never shows internals.
//! `PageError` is what a page handler's failure is: handlers write `?` and it answers itself.

use rocket::http::{ContentType, Status};
use rocket::response::{self, Responder};
use rocket::{Catcher, Request, Response};
use rocket_dyn_templates::{context, Template};

use super::request::meta;
use crate::AppState;

pub fn catchers() -> Vec<Catcher> {
    rocket::catchers![default_catcher, unauthorized]
}

/// Not signed in (or no longer): pages send people to sign in, keeping where they were going;
/// the API answers 401.
#[rocket::catch(401)]
fn unauthorized(req: &Request<'_>) -> Result<rocket::response::Redirect, ErrorPage> {
    if req.uri().path().starts_with("/api/") {
        return Err(ErrorPage {
            status: Status::Unauthorized,
            correlation_id: meta(req).correlation_id.clone(),
        });
    }
    let timed_out = super::session::refusal(req) == super::session::Refusal::TimedOut;
    // After a POST the path alone is where to come back to (the form's page).
    let back = if req.method() == rocket::http::Method::Get {
        req.uri().to_string()
    } else {
        req.uri().path().to_string()
    };
    let mut target = String::from("/login");
    let mut sep = '?';
    if let Some(next) = super::pages::safe_next(Some(&back)).filter(|n| n != "/") {
        target.push_str(&format!("{sep}next={}", urlencode(&next)));
        sep = '&';
    }
    if timed_out {
        target.push_str(&format!("{sep}reason=timeout"));
    }
    Ok(rocket::response::Redirect::to(target))
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Words for people, per status. Anything unlisted gets the nearest sensible wording.
pub fn wording(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("Sorry, we could not understand that request", "Check the web address or the form you sent, and try again."),
        401 => ("You need to sign in", "Sign in to continue."),
        403 => ("You do not have permission to do this", "If you think you should, ask an administrator of your service."),
        404 | 405 => ("Page not found", "If you typed the web address, check it is correct. If you pasted it, check you copied the entire address."),
        408 => ("The request took too long", "Try again."),
        413 => ("That was too much to send", "The form or file you sent is larger than paydesk accepts. Send something smaller."),
        415 => ("Sorry, we could not understand that request", "That kind of content is not accepted here."),
        422 => ("Sorry, we could not process that request", "Some of what was sent is not in a form paydesk understands. Check it and try again."),
        429 => ("Too many requests", "Wait a minute, then try again."),
        503 => ("Sorry, the service is unavailable", "Try again later."),
        s if s >= 500 => ("Sorry, there is a problem with the service", "Try again later. Nothing you sent has been lost or half-applied."),
        _ => ("Sorry, something went wrong", "Try again."),
    }
}

#[rocket::catch(default)]
fn default_catcher(status: Status, req: &Request<'_>) -> ErrorPage {
    ErrorPage {
        status,
        correlation_id: meta(req).correlation_id.clone(),
    }
}

/// A page handler's failure. A refusal (403, 404, ...) is answered by the catcher's friendly page
/// for its status; a failure inside paydesk is logged with its cause and the request's correlation
/// id, then answered 500 with the same friendly page. Every capability error converts into it.
#[derive(Debug)]
pub enum PageError {
    /// An answer that is just its status (the catcher words it).
    Status(Status),
    /// Something failed inside paydesk; the text is the cause, for the log only.
    Internal(String),
}

impl PageError {
    /// An internal failure with this cause (for failures that are not an error value).
    pub fn internal(cause: impl std::fmt::Display) -> PageError {
        PageError::Internal(cause.to_string())
    }

    /// The status this failure answers with.
    pub fn status(&self) -> Status {
        match self {
            PageError::Status(s) => *s,
            PageError::Internal(_) => Status::InternalServerError,
        }
    }
}

impl From<Status> for PageError {
    fn from(status: Status) -> PageError {
        PageError::Status(status)
    }
}

/// Each error a handler can meet is an internal failure, whatever its kind.
macro_rules! internal_from {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for PageError {
            fn from(e: $t) -> PageError {
                PageError::internal(e)
            }
        })*
    };
}

internal_from!(
    crate::store::StoreError,
    crate::identity::IdentityError,
    crate::identity::password::HashError,
    crate::services::ServiceError,
    crate::platform::client::PlatformError,
    crate::journeys::case::CaseError,
    crate::journeys::sync::SyncError,
    crate::exports::ExportError,
    crate::mail::MailError,
    crate::refunds::RefundError,
    crate::audit::AuditError,
    crate::integrations::api_tokens::TokenError,
    crate::integrations::error::EventsError,
    crate::crypto::SealError,
    std::io::Error,
);

/// Personal data: something not found (or not the person's) is a 404; the rest is internal.
impl From<crate::personal_data::PersonalDataError> for PageError {
    fn from(e: crate::personal_data::PersonalDataError) -> PageError {
        match e {
            crate::personal_data::PersonalDataError::NotFound => {
                PageError::Status(Status::NotFound)
            }
            other => PageError::internal(other),
        }
    }
}

impl<'r> Responder<'r, 'static> for PageError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        if let PageError::Internal(cause) = &self {
            tracing::error!(request_id = %meta(req).correlation_id, error = %cause, "request failed");
        }
        // The catcher for the status renders the page (or, for 401, sends people to sign in).
        Err(self.status())
    }
}

/// A rendered error answer.
pub struct ErrorPage {
    pub status: Status,
    pub correlation_id: String,
}

impl<'r> Responder<'r, 'static> for ErrorPage {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        // A method that is not allowed is presented as "not found": it tells a prober nothing.
        let status = if self.status.code == 405 {
            Status::NotFound
        } else {
            self.status
        };
        let (mut heading, mut message) = wording(status.code);
        match super::session::refusal(req) {
            super::session::Refusal::Csrf => {
                heading = "This form has expired";
                message = "For your security, forms stop working after a while or when you sign in again. Go back, reload the page and send the form again.";
            }
            super::session::Refusal::RateLimited => {
                heading = "Too many attempts";
                message = "There have been too many attempts to sign in from your network. Wait a minute, then try again.";
            }
            _ => {}
        }
        if status.code >= 500 {
            tracing::error!(request_id = %self.correlation_id, status = status.code, path = %req.uri().path(), "request failed");
        }
        if req.uri().path().starts_with("/api/") {
            let body = serde_json::json!({
                "type": "about:blank",
                "title": heading,
                "status": status.code,
                "detail": message,
                "correlation_id": self.correlation_id,
            })
            .to_string();
            return Response::build()
                .status(status)
                .header(ContentType::new("application", "problem+json"))
                .sized_body(body.len(), std::io::Cursor::new(body))
                .ok();
        }
        let app = req
            .rocket()
            .state::<AppState>()
            .map(super::app_context)
            .unwrap_or_default();
        let page = Template::render(
            "errors/error",
            context! { app, status: status.code, heading, message, correlation_id: &self.correlation_id },
        );
        Response::build_from(page.respond_to(req)?)
            .status(status)
            .ok()
    }
}
