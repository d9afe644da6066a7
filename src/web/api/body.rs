//! Reading a JSON request body: its content type, its size, and its fields.

use rocket::data::{Data, ToByteUnit};
use rocket::http::{ContentType, Status};
use serde_json::{json, Map, Value};

use super::problem::{field_error, Problem};
use super::BODY_LIMIT_KIB;

// ---- bodies ---------------------------------------------------------------------------------

/// A JSON object body: 415 for another content type, 400 when it is not JSON, 422 when it is
/// not an object.
pub(super) async fn json_body(
    content_type: Option<&ContentType>,
    data: Data<'_>,
) -> Result<Map<String, Value>, Problem> {
    if !content_type.is_some_and(|ct| ct.is_json() || ct.sub().as_str().ends_with("+json")) {
        return Err(Problem::status(
            Status::UnsupportedMediaType,
            "Send the body as JSON, with Content-Type: application/json",
        ));
    }
    let text = match data.open(BODY_LIMIT_KIB.kibibytes()).into_string().await {
        Ok(s) if s.is_complete() => s.into_inner(),
        Ok(_) => {
            return Err(Problem::status(
                Status::PayloadTooLarge,
                format!("The body must be {BODY_LIMIT_KIB} KiB or less"),
            ))
        }
        Err(_) => {
            return Err(Problem::typed(
                Status::BadRequest,
                "problem-malformed-json",
                "The body is not JSON",
                "The body is not valid UTF-8 text",
            ))
        }
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        Problem::typed(
            Status::BadRequest,
            "problem-malformed-json",
            "The body is not JSON",
            format!("The body could not be read as JSON: {e}"),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Problem::invalid(vec![
            json!({"field": "", "pointer": "", "detail": "The body must be a JSON object"}),
        ])),
    }
}

/// Fields of `body` that are not in `known`, as problems.
pub(super) fn unknown_fields(body: &Map<String, Value>, known: &[&str]) -> Vec<Value> {
    body.keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| field_error(k, format!("{k} is not a field of this request")))
        .collect()
}

/// An optional string field.
pub(super) fn text_field(
    body: &Map<String, Value>,
    name: &str,
    errors: &mut Vec<Value>,
) -> Option<String> {
    match body.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(field_error(name, format!("{name} must be a string")));
            None
        }
    }
}
