//! Calling the CRM API as a client would: a token made for a member of staff, and JSON
//! requests with it.

use rocket::http::{ContentType, Header, Status};
use serde_json::Value;

use super::TestApp;

/// A token of `service_id` made by `maker`, with `scopes`.
pub async fn api_token(app: &TestApp, service_id: i64, maker: i64, scopes: &[&str]) -> String {
    paydesk::integrations::api_tokens::create(
        &app.state.db,
        app.state.clock.now(),
        paydesk::audit::Actor::System,
        maker,
        None,
        &paydesk::integrations::api_tokens::NewToken {
            service_id,
            name: format!("CRM {scopes:?}"),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_in_days: None,
        },
    )
    .await
    .expect("make a token")
    .expect("a valid token")
    .secret
}

/// `GET` `path` with `token`: the status and the JSON body (null when not JSON).
pub async fn api_get(app: &TestApp, token: &str, path: &str) -> (Status, Value) {
    let r = app
        .client
        .get(path.to_string())
        .header(Header::new("Authorization", format!("Bearer {token}")))
        .dispatch()
        .await;
    let status = r.status();
    let body = r.into_string().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or_default())
}

/// `POST` `body` to `path` with `token` and, when given, an `Idempotency-Key`: the status,
/// the JSON body and the `Idempotent-Replayed` header.
pub async fn api_post(
    app: &TestApp,
    token: &str,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> (Status, Value, Option<String>) {
    let mut req = app
        .client
        .post(path.to_string())
        .header(ContentType::JSON)
        .header(Header::new("Authorization", format!("Bearer {token}")))
        .body(body.to_string());
    if let Some(k) = key {
        req = req.header(Header::new("Idempotency-Key", k.to_string()));
    }
    let r = req.dispatch().await;
    let status = r.status();
    let replayed = r
        .headers()
        .get_one("Idempotent-Replayed")
        .map(str::to_string);
    let body = r.into_string().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&body).unwrap_or_default(),
        replayed,
    )
}
