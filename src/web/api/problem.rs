//! The API's answers: a JSON body, or an RFC 9457 problem document that logs the cause of a
//! failure inside paydesk with the request's correlation id.

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use serde_json::{json, Value};

use crate::web::request::meta;
use crate::AppState;

// ---- answers --------------------------------------------------------------------------------

/// An RFC 9457 problem document.
#[derive(Debug)]
pub struct Problem {
    status: Status,
    /// The fragment of `/api/docs` that explains this kind of problem; None: `about:blank`.
    kind: Option<&'static str>,
    title: String,
    detail: String,
    errors: Vec<Value>,
    headers: Vec<(&'static str, String)>,
    /// What failed inside paydesk (a 500), for the log only.
    cause: Option<String>,
}

impl Problem {
    /// A problem that is just its HTTP status (`type` is `about:blank`).
    pub fn status(status: Status, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            kind: None,
            title: status.reason().unwrap_or("Error").to_string(),
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
            cause: None,
        }
    }

    pub(super) fn typed(
        status: Status,
        kind: &'static str,
        title: &str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            status,
            kind: Some(kind),
            title: title.to_string(),
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
            cause: None,
        }
    }

    /// 422 with a message per field.
    pub(super) fn invalid(errors: Vec<Value>) -> Problem {
        let detail = if errors.len() == 1 {
            errors[0]["detail"]
                .as_str()
                .unwrap_or("A value is not valid")
                .to_string()
        } else {
            format!("{} values are not valid", errors.len())
        };
        Problem {
            errors,
            ..Problem::typed(
                Status::UnprocessableEntity,
                "problem-validation",
                "Your request is not valid",
                detail,
            )
        }
    }

    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Problem {
        self.headers.push((name, value.into()));
        self
    }

    pub(super) fn not_found() -> Problem {
        Problem::status(
            Status::NotFound,
            "There is nothing here, or this token's service has no such thing",
        )
    }

    /// A failure inside paydesk: 500, with its cause kept for the log.
    pub(super) fn internal<E: std::fmt::Display>(e: E) -> Problem {
        Problem {
            cause: Some(e.to_string()),
            ..Problem::status(
                Status::InternalServerError,
                "Something went wrong in paydesk. Nothing was half-applied; try again later",
            )
        }
    }
}

/// Each error an API handler can meet is a failure inside paydesk, whatever its kind.
macro_rules! internal_from {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for Problem {
            fn from(e: $t) -> Problem {
                Problem::internal(e)
            }
        })*
    };
}

internal_from!(
    crate::store::StoreError,
    crate::journeys::case::CaseError,
    crate::refunds::RefundError,
    crate::audit::AuditError,
    crate::agreements::cancel::CancelError,
);

/// A problem about one query parameter.
pub(super) fn parameter_error(name: &str, detail: impl Into<String>) -> Value {
    json!({"parameter": name, "detail": detail.into()})
}

/// A problem about one field of the JSON body.
pub(super) fn field_error(name: &str, detail: impl Into<String>) -> Value {
    json!({"field": name, "pointer": format!("/{name}"), "detail": detail.into()})
}

impl<'r> Responder<'r, 'static> for Problem {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        if let Some(cause) = &self.cause {
            tracing::error!(request_id = %meta(req).correlation_id, error = %cause, "API request failed");
        }
        if self.status.code >= 500 {
            tracing::error!(request_id = %meta(req).correlation_id, status = self.status.code, path = %req.uri().path(), "API request failed");
        }
        let kind = match self.kind {
            Some(fragment) => {
                let base = req
                    .rocket()
                    .state::<AppState>()
                    .map(|s| s.config.public_url.clone())
                    .unwrap_or_default();
                format!("{base}/api/docs#{fragment}")
            }
            None => "about:blank".to_string(),
        };
        let mut body = json!({
            "type": kind,
            "title": self.title,
            "status": self.status.code,
            "detail": self.detail,
            "correlation_id": meta(req).correlation_id,
        });
        if !self.errors.is_empty() {
            body["errors"] = Value::Array(self.errors);
        }
        let text = body.to_string();
        let mut r = Response::build();
        r.status(self.status)
            .header(ContentType::new("application", "problem+json"))
            .sized_body(text.len(), std::io::Cursor::new(text));
        for (name, value) in self.headers {
            r.header(Header::new(name, value));
        }
        r.ok()
    }
}

/// A JSON answer.
pub struct ApiJson {
    pub(super) status: Status,
    pub(super) body: String,
    pub(super) location: Option<String>,
    pub(super) replayed: bool,
}

impl ApiJson {
    pub(super) fn ok(body: &Value) -> ApiJson {
        ApiJson {
            status: Status::Ok,
            body: body.to_string(),
            location: None,
            replayed: false,
        }
    }
}

impl<'r> Responder<'r, 'static> for ApiJson {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut r = Response::build();
        r.status(self.status)
            .header(ContentType::JSON)
            .sized_body(self.body.len(), std::io::Cursor::new(self.body));
        if let Some(l) = self.location {
            r.header(Header::new("Location", l));
        }
        if self.replayed {
            r.header(Header::new("Idempotent-Replayed", "true"));
        }
        r.ok()
    }
}

pub(super) type ApiResult = Result<ApiJson, Problem>;
