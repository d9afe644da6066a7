//! The OAuth2 token endpoint: the client-credentials grant that gives an account's client a
//! bearer token for the v1 API.

use std::sync::Arc;

use rocket::data::Data;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::{post, State};
use serde_json::Value;

use super::caller::read_body;
use super::reply::Reply;
use crate::platform::sandbox::shared::Shared;

/// HTTP Basic credentials, if the header carries them.
fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, rest) = header?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

pub struct AuthorizationHeader(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthorizationHeader {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(AuthorizationHeader(
            req.headers().get_one("Authorization").map(str::to_string),
        ))
    }
}

/// OAuth2 client-credentials grant: client id and secret by HTTP Basic or in the form.
#[post("/oauth/token", data = "<data>")]
pub(super) async fn oauth_token(
    shared: &State<Arc<Shared>>,
    auth: AuthorizationHeader,
    data: Data<'_>,
) -> Reply {
    let body = read_body(data).await.unwrap_or_default();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let oauth_error = |status: Status, error: &str, description: &str| {
        Reply::json(
            status,
            &serde_json::json!({"error": error, "error_description": description}),
        )
        .header("Cache-Control", "no-store".into())
    };
    let basic = basic_credentials(auth.0.as_deref());
    let (client_id, client_secret) = match (&basic, field("client_id"), field("client_secret")) {
        (Some((id, secret)), _, _) => (Some(id.clone()), Some(secret.clone())),
        (None, id, secret) => (id, secret),
    };
    let entry = match (client_id, client_secret) {
        (Some(id), Some(secret)) => shared.entry_by_client(&id, &secret),
        _ => None,
    };
    let Some(entry) = entry else {
        let reply = oauth_error(
            Status::Unauthorized,
            "invalid_client",
            "Invalid client credentials",
        );
        return if basic.is_some() {
            reply.header("WWW-Authenticate", "Basic realm=\"sandbox\"".into())
        } else {
            reply
        };
    };
    if field("grant_type").as_deref() != Some("client_credentials") {
        return oauth_error(
            Status::BadRequest,
            "unsupported_grant_type",
            "Only the client_credentials grant is supported",
        );
    }
    let token = shared.issue_token(entry);
    let mut answer = serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": shared.token_ttl / 1000,
    });
    if let Some(scope) = field("scope").filter(|s| !s.is_empty()) {
        answer["scope"] = Value::String(scope);
    }
    Reply::json(Status::Ok, &answer).header("Cache-Control", "no-store".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read() {
        use base64::Engine;
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("sandbox-client-1:s%3Acret")
        );
        assert_eq!(
            basic_credentials(Some(&header)),
            Some(("sandbox-client-1".into(), "s:cret".into()))
        );
        assert_eq!(basic_credentials(Some("Bearer x")), None);
    }
}
