//! The sandbox API's answers: a status, an optional body (JSON in the platform's error shape,
//! or a page) and extra headers, and the JSON answer for anything no route takes.

use std::io::Cursor;

use rocket::catch;
use rocket::http::{ContentType, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use serde::Serialize;

/// Anything no route answers: a JSON body rather than Rocket's HTML page.
#[catch(default)]
pub(super) fn fallback(status: Status, _req: &Request<'_>) -> Reply {
    Reply::json(
        status,
        &serde_json::json!({ "description": status.reason().unwrap_or("Request not handled") }),
    )
}

/// A response: status, optional JSON body, extra headers.
pub struct Reply {
    status: Status,
    body: Option<Vec<u8>>,
    content_type: ContentType,
    headers: Vec<(&'static str, String)>,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    code: &'a str,
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl Reply {
    pub fn json<T: Serialize>(status: Status, value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply {
                status,
                body: Some(body),
                content_type: ContentType::JSON,
                headers: Vec::new(),
            },
            Err(_) => Reply::error(
                Status::InternalServerError,
                "P0999",
                "Downstream system error",
            ),
        }
    }

    pub fn error(status: Status, code: &str, description: &str) -> Reply {
        Reply::json(
            status,
            &ErrorJson {
                code,
                description,
                field: None,
            },
        )
    }

    pub fn field_error(status: Status, code: &str, description: &str, field: &str) -> Reply {
        Reply::json(
            status,
            &ErrorJson {
                code,
                description,
                field: Some(field),
            },
        )
    }

    pub fn empty(status: Status) -> Reply {
        Reply {
            status,
            body: None,
            content_type: ContentType::JSON,
            headers: Vec::new(),
        }
    }

    pub fn html(status: Status, page: String) -> Reply {
        Reply {
            status,
            body: Some(page.into_bytes()),
            content_type: ContentType::HTML,
            headers: Vec::new(),
        }
    }

    pub fn redirect(to: &str) -> Reply {
        Reply::empty(Status::SeeOther).header("Location", to.to_string())
    }

    pub fn header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    pub fn unauthorized() -> Reply {
        Reply::empty(Status::Unauthorized).header("WWW-Authenticate", "Bearer".into())
    }
}

impl<'r> Responder<'r, 'static> for Reply {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut r = Response::build();
        r.status(self.status);
        if let Some(body) = self.body {
            r.header(self.content_type);
            r.sized_body(body.len(), Cursor::new(body));
        }
        for (name, value) in self.headers {
            r.raw_header(name, value);
        }
        r.ok()
    }
}

pub(super) fn invalid_parameters(code: &str, names: &[&str]) -> Reply {
    Reply::error(
        Status::UnprocessableEntity,
        code,
        &format!(
            "Invalid parameters: {}. See Public API documentation for the correct data formats",
            names.join(", ")
        ),
    )
}
