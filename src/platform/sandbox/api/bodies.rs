//! Request bodies checked as the platform checks them: a new payment and a new refund, each
//! refused with the platform's status, error code and field.

use rocket::http::Status;
use serde_json::{Map, Value};

use super::reply::Reply;
use crate::platform::sandbox::account::NewPayment;
use crate::platform::sandbox::data::{Language, MetaVal, Metadata, MAX_AMOUNT};

/// Why a create-payment body was refused: (status, code, description, field).
pub(super) type Refusal = (Status, &'static str, String, Option<&'static str>);

fn missing(field: &'static str) -> Refusal {
    (
        Status::BadRequest,
        "P0101",
        format!("Missing mandatory attribute: {field}"),
        Some(field),
    )
}

fn invalid(field: &'static str, why: &str) -> Refusal {
    (
        Status::UnprocessableEntity,
        "P0102",
        format!("Invalid attribute value: {field}. {why}"),
        Some(field),
    )
}

fn check_amount(v: &Value) -> Result<i64, &'static str> {
    let n = match v {
        Value::Number(n) => n.as_i64().ok_or("Must be a valid numeric format")?,
        _ => return Err("Must be a valid numeric format"),
    };
    if n < 1 {
        return Err("Must be greater than or equal to 1");
    }
    if n > MAX_AMOUNT {
        return Err("Must be less than or equal to 10000000");
    }
    Ok(n)
}

fn text(
    obj: &Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, Refusal> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => Err(invalid(
            field,
            &format!("Must be less than or equal to {max} characters length"),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(field, "Must be of type String")),
    }
}

fn flag(obj: &Map<String, Value>, field: &'static str) -> Result<bool, Refusal> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(field, "Must be true or false")),
    }
}

fn metadata(v: Option<&Value>) -> Result<Option<Metadata>, Refusal> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(invalid(
                "metadata",
                "Must be an object of JSON key-value pairs",
            ))
        }
    };
    if obj.len() > 15 {
        return Err(invalid(
            "metadata",
            "Cannot have more than 15 key-value pairs",
        ));
    }
    let mut out = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        if k.is_empty() || k.chars().count() > 30 {
            return Err(invalid(
                "metadata",
                "Keys must be between 1 and 30 characters long",
            ));
        }
        if let Value::String(s) = v {
            if s.chars().count() > 100 {
                return Err(invalid(
                    "metadata",
                    "Values must be no greater than 100 characters long",
                ));
            }
        }
        let val = MetaVal::from_value(v).ok_or_else(|| {
            invalid(
                "metadata",
                "Values must be of type String, Boolean or Number",
            )
        })?;
        out.push((Box::from(k.as_str()), val));
    }
    Ok(Some(out.into_boxed_slice()))
}

/// The body as a JSON object, or the platform's "Unable to parse JSON" refusal with `code`.
fn json_object(body: &[u8], code: &'static str) -> Result<serde_json::Map<String, Value>, Refusal> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        _ => Err((
            Status::BadRequest,
            code,
            "Unable to parse JSON".to_string(),
            None,
        )),
    }
}

/// Validate a `POST /v1/payments` body as the platform does.
pub fn parse_create(body: &[u8]) -> Result<NewPayment, Refusal> {
    let obj = json_object(body, "P0197")?;
    for field in ["amount", "description", "reference", "return_url"] {
        if obj.get(field).is_none_or(Value::is_null) {
            return Err(missing(field));
        }
    }
    let amount = obj
        .get("amount")
        .map(check_amount)
        .unwrap_or(Err("Must be a valid numeric format"))
        .map_err(|why| invalid("amount", why))?;
    let description = text(&obj, "description", 255)?.unwrap_or_default();
    let reference = text(&obj, "reference", 255)?.unwrap_or_default();
    if reference.trim().is_empty() {
        return Err(invalid("reference", "Must not be blank"));
    }
    if description.trim().is_empty() {
        return Err(invalid("description", "Must not be blank"));
    }
    let return_url = text(&obj, "return_url", 2000)?.unwrap_or_default();
    let url_ok = url::Url::parse(&return_url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !url_ok {
        return Err(invalid("return_url", "Must be a valid URL format"));
    }
    let email = text(&obj, "email", 254)?;
    if email.as_deref().is_some_and(|e| !e.contains('@')) {
        return Err(invalid("email", "Must be a valid email address"));
    }
    let language = match text(&obj, "language", 2)? {
        None => Language::En,
        Some(l) => {
            Language::parse(&l).ok_or_else(|| invalid("language", "Must be \"en\" or \"cy\""))?
        }
    };
    Ok(NewPayment {
        amount,
        reference,
        description,
        return_url,
        email,
        language,
        metadata: metadata(obj.get("metadata"))?,
        delayed_capture: flag(&obj, "delayed_capture")?,
        moto: flag(&obj, "moto")?,
    })
}

/// A refund request, validated: (amount, refund_amount_available).
pub(super) fn parse_refund(body: &[u8]) -> Result<(i64, Option<i64>), Refusal> {
    let obj = json_object(body, "P0697")?;
    let amount = match obj.get("amount") {
        None | Some(Value::Null) => {
            return Err((
                Status::BadRequest,
                "P0601",
                "Missing mandatory attribute: amount".to_string(),
                Some("amount"),
            ))
        }
        Some(v) => check_amount(v).map_err(|why| {
            (
                Status::BadRequest,
                "P0602",
                format!("Invalid attribute value: amount. {why}"),
                Some("amount"),
            )
        })?,
    };
    let expected =
        match obj.get("refund_amount_available") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n >= 0) => n.as_i64(),
            Some(_) => return Err((
                Status::BadRequest,
                "P0602",
                "Invalid attribute value: refund_amount_available. Must be a valid numeric format"
                    .to_string(),
                Some("refund_amount_available"),
            )),
        };
    Ok((amount, expected))
}

pub(super) fn refusal_reply((status, code, description, field): Refusal) -> Reply {
    match field {
        Some(f) => Reply::field_error(status, code, &description, f),
        None => Reply::error(status, code, &description),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str) -> (u16, &'static str, Option<&'static str>) {
        match parse_create(body.as_bytes()) {
            Ok(_) => panic!("accepted {body}"),
            Err((status, code, _, field)) => (status.code, code, field),
        }
    }

    #[test]
    fn create_payment_validation_uses_the_platform_codes() {
        let ok = r#"{"amount":1200,"reference":"R1","description":"D","return_url":"https://example.org/r"}"#;
        assert!(parse_create(ok.as_bytes()).is_ok());
        assert_eq!(refusal("{"), (400, "P0197", None));
        assert_eq!(refusal("[1]"), (400, "P0197", None));
        assert_eq!(
            refusal(r#"{"reference":"R1","description":"D","return_url":"https://e.org"}"#),
            (400, "P0101", Some("amount"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":0,"reference":"R1","description":"D","return_url":"https://e.org"}"#
            ),
            (422, "P0102", Some("amount"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":10000001,"reference":"R1","description":"D","return_url":"https://e.org"}"#
            ),
            (422, "P0102", Some("amount"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":12.5,"reference":"R1","description":"D","return_url":"https://e.org"}"#
            ),
            (422, "P0102", Some("amount"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":100,"reference":"R1","description":"D","return_url":"not a url"}"#
            ),
            (422, "P0102", Some("return_url"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":100,"reference":"R1","description":"D","return_url":"https://e.org","metadata":{"k":[1]}}"#
            ),
            (422, "P0102", Some("metadata"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":100,"reference":"R1","description":"D","return_url":"https://e.org","language":"fr"}"#
            ),
            (422, "P0102", Some("language"))
        );
    }

    #[test]
    fn refund_requests_are_checked_before_the_payment_is_looked_up() {
        assert!(parse_refund(b"nope").is_err());
        assert!(parse_refund(br#"{"refund_amount_available": 5}"#).is_err());
        assert!(parse_refund(br#"{"amount": 0}"#).is_err());
        assert_eq!(
            parse_refund(br#"{"amount": 500, "refund_amount_available": 1000}"#).ok(),
            Some((500, Some(1000)))
        );
    }
}
