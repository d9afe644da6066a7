//! The CRM / case API (`/api/v1`) and its tokens, as a CRM system and a service admin see
//! them: a token shown once and stored hashed, refused once revoked or expired; scopes (403)
//! and services (404) kept apart; pages of payments; case links audited; refunds under and
//! over the approval threshold against a real sandbox platform; Idempotency-Key replays,
//! mismatches and 20 simultaneous retries making one refund; the rate limit; problem
//! documents everywhere; and an OpenAPI document that lists every route.

use std::collections::BTreeSet;

use paydesk::identity::permissions::Role;
use paydesk::integrations::api_tokens::{self, NewToken};
use paydesk::refunds::RefundSettings;
use paydesk::store::refunds as refund_store;
use rocket::http::{ContentType, Header, Method, Status};
use serde_json::{json, Value};

use crate::common::sandbox::SandboxProcess;
use crate::common::*;

/// An answer, with the headers the tests look at.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
    location: Option<String>,
    replayed: bool,
    json: Value,
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    key: Option<&str>,
) -> Answer {
    let mut request = match method {
        Method::Get => app.client.get(path.to_string()),
        Method::Post => app.client.post(path.to_string()),
        Method::Put => app.client.put(path.to_string()),
        other => panic!("unexpected {other}"),
    };
    if let Some(t) = token {
        request = request.header(Header::new("Authorization", format!("Bearer {t}")));
    }
    if let Some(k) = key {
        request = request.header(Header::new("Idempotency-Key", k.to_string()));
    }
    if let Some(b) = body {
        request = request.header(ContentType::JSON).body(b);
    }
    let r = request.dispatch().await;
    let h = |name: &str| r.headers().get_one(name).map(str::to_string);
    let status = r.status().code;
    let content_type = h("Content-Type").unwrap_or_default();
    let www_authenticate = h("WWW-Authenticate");
    let retry_after = h("Retry-After");
    let location = h("Location");
    let replayed = h("Idempotent-Replayed").is_some();
    let text = r.into_string().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        www_authenticate,
        retry_after,
        location,
        replayed,
        json,
    }
}

async fn get(app: &TestApp, path: &str, token: &str) -> Answer {
    call(app, Method::Get, path, Some(token), None, None).await
}

/// Every error is a problem document with the RFC 9457 members.
fn assert_problem(a: &Answer, status: u16) {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.content_type, "application/problem+json", "{a:?}");
    assert_eq!(a.json["status"], status, "{a:?}");
    for member in ["type", "title", "detail"] {
        assert!(a.json[member].is_string(), "{member} in {a:?}");
    }
}

/// A token for `service_id`, made by `creator`, as the tokens page would make it.
async fn token_for(app: &TestApp, service_id: i64, creator: i64, scopes: &[&str]) -> String {
    token_named(app, service_id, creator, scopes, &format!("CRM {scopes:?}")).await
}

async fn token_named(
    app: &TestApp,
    service_id: i64,
    creator: i64,
    scopes: &[&str],
    name: &str,
) -> String {
    api_tokens::create(
        &app.state.db,
        app.state.clock.now(),
        paydesk::audit::Actor::System,
        creator,
        None,
        &NewToken {
            service_id,
            name: name.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_in_days: None,
        },
    )
    .await
    .unwrap()
    .unwrap()
    .secret
}

const ALL: [&str; 3] = ["payments:read", "refunds:request", "cases:link"];

/// A sandbox with two accounts, services `parking` (account 1) and `zoo` (account 2), and a
/// service admin of each.
struct World {
    app: TestApp,
    sandbox: SandboxProcess,
    parking: i64,
    zoo: i64,
    admin: Person,
    zoo_admin: Person,
}

async fn world(configure: impl FnOnce(&mut paydesk::config::Config)) -> World {
    let sandbox = refund_sandbox(2);
    let app = refund_app(configure).await;
    let parking = sandbox.connect(&app, "parking", 1).await;
    let zoo = sandbox.connect(&app, "zoo", 2).await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let zoo_admin = app
        .person("zoo@example.gov.uk", Role::ServiceAdmin, Some("zoo"))
        .await;
    World {
        app,
        sandbox,
        parking,
        zoo,
        admin,
        zoo_admin,
    }
}

impl World {
    async fn paid(&self, slug: &str, amount: i64, reference: &str) -> (String, i64) {
        let n = if slug == "parking" { 1 } else { 2 };
        self.sandbox
            .payment_in(&self.app, slug, n, amount, reference, Some("success"))
            .await
    }

    async fn threshold(&self, pence: Option<i64>) {
        set_refund_settings(
            &self.app,
            self.parking,
            &RefundSettings {
                refund_approval_threshold: pence,
                ..Default::default()
            },
        )
        .await;
    }
}

async fn audit_actions(app: &TestApp) -> Vec<(String, String, String, String)> {
    paydesk::store::audit::latest(&app.state.db, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.actor_type, r.target, r.outcome))
        .collect()
}

#[tokio::test]
async fn a_token_is_shown_once_stored_hashed_and_refused_once_revoked_or_expired() {
    let w = world(|_| {}).await;
    let app = &w.app;
    app.sign_in(&w.admin).await;
    // Made through the pages: the second factor is asked for again after 5 minutes.
    app.clock.advance(time::Duration::minutes(6));
    let token = app.token();
    let fields = [
        ("csrf_token", token.as_str()),
        ("name", "Case system"),
        ("service", "parking"),
        ("scopes", "payments:read"),
        ("scopes", "cases:link"),
        ("expires", "30"),
    ];
    let r = app.post_form("/admin/tokens", &fields).await;
    assert_eq!(r.status(), Status::SeeOther);
    let wait = crate::common::location(&r);
    let html = app
        .client
        .get(wait)
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("Confirm it"), "step-up first");
    assert!(!html.contains("pdk_"), "no token before the code");
    app.next_code_window();
    let code = app.code_now(&w.admin.secret);
    let mut with_code = fields.to_vec();
    with_code.push(("stepping_up", "1"));
    with_code.push(("code", &code));
    let r = app.post_form("/admin/tokens", &with_code).await;
    let made = crate::common::location(&r);
    let html = app.follow(r).await;
    let secret = input_value(&html, "token-secret").expect("the token is shown");
    // Read again (Back, a refresh): the token is not shown.
    let again = app
        .client
        .get(made)
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(
        !again.contains(&secret) && again.contains("shown once"),
        "{again}"
    );
    assert!(secret.starts_with("pdk_") && secret.len() == 47, "{secret}");

    // Stored hashed: the row holds SHA-256 of the token and nothing of the rest of it.
    let row = paydesk::store::api_tokens::by_hash(&app.state.db, &api_tokens::hash(&secret))
        .await
        .unwrap()
        .expect("found by its hash");
    assert_eq!(row.token_prefix, &secret[..10]);
    assert_eq!(row.scopes, "payments:read cases:link");
    assert!(row.expires_at.is_some());
    assert!(row.last_used_at.is_none());

    // Never shown again: the list and the token's page carry only its first characters.
    let list = app
        .client
        .get("/admin/tokens")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(list.contains("Case system") && list.contains("Never used"));
    assert!(!list.contains(&secret));
    let page = app
        .client
        .get(format!("/admin/tokens/{}", row.id))
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(!page.contains(&secret) && page.contains(&secret[..10]));
    // The same name again is refused while the first is live (a refreshed form makes no
    // second token).
    let r = app.post_form("/admin/tokens", &with_code).await;
    assert_eq!(r.status(), Status::UnprocessableEntity);

    let a = get(app, "/api/v1/payments", &secret).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.content_type, "application/json");
    let used = paydesk::store::api_tokens::by_id(&app.state.db, row.id)
        .await
        .unwrap()
        .unwrap();
    assert!(used.last_used_at.is_some(), "last used is noted");

    // Another service's admin neither sees it nor reaches it.
    let other = app.session_for(&w.zoo_admin).await;
    // A client of its own, carrying only the other admin's cookie.
    let untracked = rocket::local::asynchronous::Client::untracked(paydesk::app(app.state.clone()))
        .await
        .unwrap();
    let r = untracked
        .get(format!("/admin/tokens/{}", row.id))
        .cookie(other.clone())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::NotFound);
    let theirs = untracked
        .get("/admin/tokens")
        .cookie(other)
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(!theirs.contains("Case system"));

    // Revoked: 401 with a Bearer challenge, at once.
    let r = app
        .post_form(
            &format!("/admin/tokens/{}/revoke", row.id),
            &[("csrf_token", &app.token())],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    let a = get(app, "/api/v1/payments", &secret).await;
    assert_problem(&a, 401);
    let challenge = a.www_authenticate.clone().unwrap_or_default();
    assert!(challenge.starts_with("Bearer") && challenge.contains("invalid_token"));
    assert!(a.json["detail"].as_str().unwrap().contains("revoked"));

    // Expired: 401 too.
    let short = api_tokens::create(
        &app.state.db,
        app.state.clock.now(),
        paydesk::audit::Actor::System,
        w.admin.id,
        None,
        &NewToken {
            service_id: w.parking,
            name: "Short".into(),
            scopes: vec!["payments:read".into()],
            expires_in_days: Some(1),
        },
    )
    .await
    .unwrap()
    .unwrap()
    .secret;
    assert_eq!(get(app, "/api/v1/payments", &short).await.status, 200);
    app.clock.advance(time::Duration::days(2));
    let a = get(app, "/api/v1/payments", &short).await;
    assert_problem(&a, 401);
    assert!(a.json["detail"].as_str().unwrap().contains("expired"));

    // A token stops working when the person it acts for is disabled.
    let theirs = token_named(app, w.parking, w.admin.id, &["payments:read"], "Maker's").await;
    assert_eq!(get(app, "/api/v1/payments", &theirs).await.status, 200);
    paydesk::identity::accounts::disable_staff(
        &app.state,
        paydesk::audit::Actor::System,
        w.admin.id,
        None,
    )
    .await
    .unwrap();
    let a = get(app, "/api/v1/payments", &theirs).await;
    assert_problem(&a, 401);
    assert!(a.json["detail"].as_str().unwrap().contains("maker"));

    // No token, or a made-up one.
    let a = call(app, Method::Get, "/api/v1/payments", None, None, None).await;
    assert_problem(&a, 401);
    assert_eq!(
        a.www_authenticate.as_deref(),
        Some("Bearer realm=\"paydesk\"")
    );
    let fake = format!("pdk_{}", "A".repeat(43));
    assert_problem(&get(app, "/api/v1/payments", &fake).await, 401);

    app.state
        .refusals
        .flush(&app.state.db, app.state.clock.now(), true)
        .await
        .unwrap();
    let actions = audit_actions(app).await;
    let has =
        |action: &str, actor: &str| actions.iter().any(|(a, t, _, _)| a == action && t == actor);
    assert!(has("api_token_created", "staff"));
    assert!(has("api_token_revoked", "staff"));
    assert!(has("authn_token_fail", "anonymous"));
    // No audit entry carries the token.
    let all = paydesk::store::audit::latest(&app.state.db, 1000)
        .await
        .unwrap();
    assert!(all.iter().all(|r| !r.details.contains(&secret[10..])));
}

#[tokio::test]
async fn scopes_and_services_are_kept_apart() {
    let w = world(|_| {}).await;
    let app = &w.app;
    let ours = w.paid("parking", 1000, "PARK-1").await;
    let theirs = w.paid("zoo", 2000, "ZOO-1").await;
    let read_only = token_for(app, w.parking, w.admin.id, &["payments:read"]).await;
    let link_only = token_for(app, w.parking, w.admin.id, &["cases:link"]).await;
    let zoo = token_for(app, w.zoo, w.zoo_admin.id, &ALL).await;

    // Scopes: 403 problems, audited.
    let a = call(
        app,
        Method::Put,
        &format!("/api/v1/payments/{}/case", ours.0),
        Some(&read_only),
        Some(r#"{"case_reference": "C-1"}"#),
        None,
    )
    .await;
    assert_problem(&a, 403);
    assert!(a.json["detail"].as_str().unwrap().contains("cases:link"));
    let a = call(
        app,
        Method::Post,
        &format!("/api/v1/payments/{}/refunds", ours.0),
        Some(&read_only),
        Some(r#"{"reason": "duplicate"}"#),
        None,
    )
    .await;
    assert_problem(&a, 403);
    assert_problem(&get(app, "/api/v1/payments", &link_only).await, 403);
    assert!(audit_actions(app)
        .await
        .iter()
        .any(|(a, t, _, o)| a == "authz_fail" && t == "api_token" && o == "failure"));

    // Services: another service's payment is 404 and never listed.
    assert_eq!(
        get(app, &format!("/api/v1/payments/{}", ours.0), &read_only)
            .await
            .status,
        200
    );
    assert_problem(
        &get(app, &format!("/api/v1/payments/{}", theirs.0), &read_only).await,
        404,
    );
    assert_problem(
        &get(app, &format!("/api/v1/payments/{}", ours.0), &zoo).await,
        404,
    );
    let a = call(
        app,
        Method::Put,
        &format!("/api/v1/payments/{}/case", ours.0),
        Some(&zoo),
        Some(r#"{"case_reference": "C-1"}"#),
        None,
    )
    .await;
    assert_problem(&a, 404);
    let ids = |a: &Answer| -> Vec<String> {
        a.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["payment_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&get(app, "/api/v1/payments", &read_only).await),
        std::slice::from_ref(&ours.0)
    );
    assert_eq!(
        ids(&get(app, "/api/v1/payments", &zoo).await),
        std::slice::from_ref(&theirs.0)
    );

    // A refund of another service is 404 too.
    let a = call(
        app,
        Method::Post,
        &format!("/api/v1/payments/{}/refunds", theirs.0),
        Some(&zoo),
        Some(r#"{"amount": 100, "reason": "duplicate"}"#),
        None,
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    let refund = a.json["id"].as_i64().unwrap();
    assert_problem(
        &get(app, &format!("/api/v1/refunds/{refund}"), &read_only).await,
        404,
    );
    assert_eq!(
        get(app, &format!("/api/v1/refunds/{refund}"), &zoo)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn payments_come_a_page_at_a_time_with_filters() {
    let w = world(|_| {}).await;
    let app = &w.app;
    let mut made = BTreeSet::new();
    for i in 0..5 {
        made.insert(w.paid("parking", 100 + i, &format!("PAGE-{i}")).await.0);
        app.clock.advance(time::Duration::seconds(1));
    }
    let t = token_for(app, w.parking, w.admin.id, &["payments:read"]).await;
    let mut seen = Vec::new();
    let mut path = "/api/v1/payments?limit=2".to_string();
    let mut pages = 0;
    loop {
        let a = get(app, &path, &t).await;
        assert_eq!(a.status, 200, "{a:?}");
        let data = a.json["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        for p in data {
            seen.push(p["payment_id"].as_str().unwrap().to_string());
            // Card numbers: never more than the first 6 and last 4.
            let card = &p["card"];
            if card.is_object() {
                assert!(card["last_digits"].as_str().is_none_or(|d| d.len() == 4));
                assert!(card["first_digits"].as_str().is_none_or(|d| d.len() == 6));
            }
        }
        pages += 1;
        match a.json["links"]["next"].as_str() {
            Some(next) => {
                assert!(a.json["next_cursor"].is_string());
                path = next.to_string();
            }
            None => {
                assert!(a.json["next_cursor"].is_null());
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), made);

    let a = get(app, "/api/v1/payments?reference=page-3", &t).await;
    assert_eq!(a.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(a.json["data"][0]["reference"], "PAGE-3");
    let a = get(app, "/api/v1/payments?email=payer-page-1%40", &t).await;
    assert_eq!(a.json["data"].as_array().unwrap().len(), 1, "{a:?}");
    let a = get(
        app,
        "/api/v1/payments?created_from=2000-01-01T00:00:00Z&created_to=2000-01-02T00:00:00Z",
        &t,
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a.json["data"].as_array().unwrap().is_empty());

    for bad in [
        "limit=0",
        "limit=101",
        "cursor=nonsense!",
        "created_from=soon",
        "colour=red",
    ] {
        let a = get(app, &format!("/api/v1/payments?{bad}"), &t).await;
        assert_problem(&a, 422);
        assert!(a.json["errors"][0]["parameter"].is_string(), "{bad}: {a:?}");
    }
}

#[tokio::test]
async fn a_case_link_is_validated_audited_kept_and_searchable() {
    let w = world(|_| {}).await;
    let app = &w.app;
    let (payment, journey) = w.paid("parking", 1500, "CASE-PAY").await;
    let t = token_for(app, w.parking, w.admin.id, &ALL).await;
    // The case system listens for case.linked.
    {
        let mut tx = app.state.db.begin().await.unwrap();
        paydesk::store::events::insert_endpoint(
            &mut tx,
            &paydesk::store::events::NewEndpointRow {
                service_id: w.parking,
                url: "https://crm.example.gov/hooks",
                description: "Case system",
                event_types: "case.linked",
                created_by: None,
            },
            0,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let path = format!("/api/v1/payments/{payment}/case");
    for (body, field) in [
        (r#"{"case_reference": ""}"#, "case_reference"),
        (r#"{"case_reference": "=SUM(A1)"}"#, "case_reference"),
        (r#"{"case_reference": 42}"#, "case_reference"),
        (r#"{}"#, "case_reference"),
        (r#"{"case_reference": "C-1", "colour": "red"}"#, "colour"),
    ] {
        let a = call(app, Method::Put, &path, Some(&t), Some(body), None).await;
        assert_problem(&a, 422);
        assert!(
            a.json["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body}: {a:?}"
        );
    }
    let long = format!(r#"{{"case_reference": "{}"}}"#, "a".repeat(101));
    assert_problem(
        &call(app, Method::Put, &path, Some(&t), Some(&long), None).await,
        422,
    );
    assert_problem(
        &call(app, Method::Put, &path, Some(&t), Some("{not json"), None).await,
        400,
    );
    let a = app
        .client
        .put(path.clone())
        .header(Header::new("Authorization", format!("Bearer {t}")))
        .header(ContentType::Form)
        .body("case_reference=C-1")
        .dispatch()
        .await;
    assert_eq!(a.status().code, 415);

    let a = call(
        app,
        Method::Put,
        &path,
        Some(&t),
        Some(r#"{"case_reference": " CASE-2026/0001 "}"#),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json["case_reference"], "CASE-2026/0001");
    let linked: Vec<_> = audit_actions(app)
        .await
        .into_iter()
        .filter(|(a, _, _, _)| a == "case_linked")
        .collect();
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0].1, "api_token");
    assert_eq!(linked[0].2, format!("payment:{payment}"));
    // The case system hears of it: a case.linked event, written with the link.
    let events: Vec<(String, String)> = paydesk::on_db!(&app.state.db, pool => sqlx::query_as::<_, (String, String)>(
        "SELECT event_type, payload FROM outbound_events ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap());
    let case_events: Vec<&(String, String)> =
        events.iter().filter(|(t, _)| t == "case.linked").collect();
    assert_eq!(case_events.len(), 1, "{events:?}");
    assert!(case_events[0].1.contains("CASE-2026/0001"));
    // The same link again changes nothing and records nothing.
    call(
        app,
        Method::Put,
        &path,
        Some(&t),
        Some(r#"{"case_reference": "CASE-2026/0001"}"#),
        None,
    )
    .await;
    assert_eq!(
        audit_actions(app)
            .await
            .iter()
            .filter(|(a, _, _, _)| a == "case_linked")
            .count(),
        1
    );

    // A later read from the platform keeps it; the timeline says who linked it.
    let service = paydesk::services::by_id(&app.state.db, w.parking)
        .await
        .unwrap()
        .unwrap();
    let client = app
        .state
        .platforms
        .client(&app.state.config, &service)
        .unwrap();
    paydesk::journeys::sync::refresh_with(
        &app.state.db,
        app.state.clock.now(),
        client.as_ref(),
        w.parking,
        &payment,
    )
    .await
    .unwrap();
    let j = paydesk::store::journeys::journey_by_id(&app.state.db, journey)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.case_reference.as_deref(), Some("CASE-2026/0001"));
    let a = get(app, &format!("/api/v1/payments/{payment}"), &t).await;
    assert_eq!(a.status, 200);
    assert!(a.json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["text"]
            .as_str()
            .unwrap_or("")
            .contains("linked the payment to case CASE-2026/0001")));
    assert!(audit_actions(app)
        .await
        .iter()
        .any(|(a, t, _, _)| a == "sensitive_read" && t == "api_token"));
    let a = get(app, "/api/v1/payments?case_reference=case-2026%2F0001", &t).await;
    assert_eq!(a.json["data"].as_array().unwrap().len(), 1, "{a:?}");
}

#[tokio::test]
async fn refunds_follow_the_consoles_rules_under_and_over_the_threshold() {
    let w = world(|_| {}).await;
    let app = &w.app;
    w.threshold(Some(1000)).await;
    let (payment, journey) = w.paid("parking", 5000, "REF-1").await;
    let t = token_for(app, w.parking, w.admin.id, &ALL).await;
    let path = format!("/api/v1/payments/{payment}/refunds");

    // Under the threshold: approved and sent to the platform.
    let a = call(
        app,
        Method::Post,
        &path,
        Some(&t),
        Some(r#"{"amount": 500, "reason": "duplicate", "case_reference": "CASE-9"}"#),
        None,
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.json["state"], "approved");
    assert_eq!(a.json["approval_required"], false);
    assert_eq!(a.json["amount"], 500);
    let small = a.json["id"].as_i64().unwrap();
    assert_eq!(
        a.location.as_deref(),
        Some(&*format!("/api/v1/refunds/{small}"))
    );
    let row = refund_store::by_id(&app.state.db, small)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.requested_by, w.admin.id,
        "on behalf of the token's maker"
    );
    app.state.job_runner().run_due().await.unwrap();
    let a = get(app, &format!("/api/v1/refunds/{small}"), &t).await;
    assert!(
        ["submitting", "submitted", "succeeded"].contains(&a.json["state"].as_str().unwrap()),
        "{a:?}"
    );
    // The payment's timeline says paydesk sent it by itself: not a "Staff action".
    let payment = get(app, path.trim_end_matches("/refunds"), &t).await;
    let timeline = payment.json["timeline"].as_array().expect("a timeline");
    let sent = timeline
        .iter()
        .find(|e| e["title"] == "Refund sent to the platform")
        .unwrap_or_else(|| panic!("{timeline:?}"));
    assert_eq!(sent["kind"], "system");
    assert_eq!(sent["source"], "paydesk");

    // Over it: waits for approval.
    let a = call(
        app,
        Method::Post,
        &path,
        Some(&t),
        Some(r#"{"amount": 2000, "reason": "requested_by_payer"}"#),
        None,
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.json["state"], "awaiting_approval");
    assert_eq!(a.json["approval_required"], true);

    // The rules refuse what the console refuses, field by field.
    for (body, field) in [
        (r#"{"amount": 999999, "reason": "duplicate"}"#, "amount"),
        (r#"{"amount": 100, "reason": "other"}"#, "comment"),
        (r#"{"amount": 100, "reason": "because"}"#, "reason"),
        (r#"{"amount": 1.5, "reason": "duplicate"}"#, "amount"),
        (r#"{"amount": 100}"#, "reason"),
    ] {
        let a = call(app, Method::Post, &path, Some(&t), Some(body), None).await;
        assert_problem(&a, 422);
        assert!(
            a.json["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body}: {a:?}"
        );
    }
    let requests = refund_store::for_journey(&app.state.db, journey)
        .await
        .unwrap();
    assert_eq!(requests.len(), 2);
    let asked: Vec<_> = audit_actions(app)
        .await
        .into_iter()
        .filter(|(a, _, _, _)| a == "refund_requested")
        .collect();
    assert_eq!(asked.len(), 2);
    assert!(asked.iter().all(|(_, actor, _, _)| actor == "api_token"));
    // The token's maker cannot approve what the token asked for.
    let maker = paydesk::refunds::Staff {
        id: w.admin.id,
        email: w.admin.email.clone(),
        name: "Admin".into(),
        ip: None,
    };
    let big = requests.iter().find(|r| r.amount == 2000).unwrap();
    let refused = paydesk::refunds::approve(
        &app.state.db,
        app.state.clock.now(),
        &maker,
        big.id,
        2000,
        None,
    )
    .await
    .unwrap();
    assert!(refused.is_err());
}

#[tokio::test]
async fn an_idempotency_key_replays_refuses_a_different_body_and_makes_one_refund_under_a_storm() {
    let w = world(|_| {}).await;
    let app = &w.app;
    let (payment, journey) = w.paid("parking", 5000, "IDEM-1").await;
    let t = token_for(app, w.parking, w.admin.id, &ALL).await;
    let path = format!("/api/v1/payments/{payment}/refunds");
    let body = r#"{"amount": 300, "reason": "duplicate"}"#;
    let first = call(
        app,
        Method::Post,
        &path,
        Some(&t),
        Some(body),
        Some("key-1"),
    )
    .await;
    assert_eq!(first.status, 201, "{first:?}");
    assert!(!first.replayed);
    // The same body written differently is the same request.
    let again = call(
        app,
        Method::Post,
        &path,
        Some(&t),
        Some(r#"{ "reason": "duplicate", "amount": 300 }"#),
        Some("key-1"),
    )
    .await;
    assert_eq!(again.status, 201);
    assert!(again.replayed);
    assert_eq!(again.json, first.json);
    assert_eq!(again.location, first.location);
    let other = call(
        app,
        Method::Post,
        &path,
        Some(&t),
        Some(r#"{"amount": 301, "reason": "duplicate"}"#),
        Some("key-1"),
    )
    .await;
    assert_problem(&other, 422);
    assert!(other.json["type"]
        .as_str()
        .unwrap()
        .ends_with("#problem-idempotency-key-reused"));
    assert_problem(
        &call(
            app,
            Method::Post,
            &path,
            Some(&t),
            Some(body),
            Some("bad key"),
        )
        .await,
        400,
    );
    // Another token's key of the same name is its own.
    let t2 = token_named(app, w.parking, w.admin.id, &ALL, "Second system").await;
    let theirs = call(
        app,
        Method::Post,
        &path,
        Some(&t2),
        Some(body),
        Some("key-1"),
    )
    .await;
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.json["id"], first.json["id"]);
    // A refused request keeps nothing: corrected, the same key goes through.
    let refused = call(
        app,
        Method::Post,
        &path,
        Some(&t),
        Some(r#"{"amount": 100, "reason": "other"}"#),
        Some("key-2"),
    )
    .await;
    assert_problem(&refused, 422);
    let fixed = call(
        app,
        Method::Post,
        &path,
        Some(&t),
        Some(r#"{"amount": 100, "reason": "other", "comment": "Paid twice"}"#),
        Some("key-2"),
    )
    .await;
    assert_eq!(fixed.status, 201, "{fixed:?}");
    assert_eq!(
        refund_store::for_journey(&app.state.db, journey)
            .await
            .unwrap()
            .len(),
        3
    );

    // 20 at once with one key: one refund request, and every answer names it.
    let storm_body = r#"{"amount": 200, "reason": "duplicate"}"#;
    let answers = futures::future::join_all((0..20).map(|_| {
        call(
            app,
            Method::Post,
            &path,
            Some(&t),
            Some(storm_body),
            Some("storm"),
        )
    }))
    .await;
    let ids: BTreeSet<i64> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 201, "{a:?}");
            a.json["id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one refund for one key");
    let requests = refund_store::for_journey(&app.state.db, journey)
        .await
        .unwrap();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests.iter().filter(|r| r.amount == 200).count(), 1);
    // A day later the key's answer is forgotten, but asking again still makes no second
    // refund.
    app.clock.advance(time::Duration::hours(25));
    let late = call(
        app,
        Method::Post,
        &path,
        Some(&t),
        Some(storm_body),
        Some("storm"),
    )
    .await;
    assert_eq!(late.status, 201);
    assert_eq!(late.json["id"].as_i64(), ids.first().copied());
    assert_eq!(
        refund_store::for_journey(&app.state.db, journey)
            .await
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn each_token_has_a_rate_limit() {
    let app = TestApp::with_config(|c| c.api_rate_per_minute = 3).await;
    let service = app.service("parking").await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let t = token_for(&app, service, admin.id, &["payments:read"]).await;
    let other = token_named(&app, service, admin.id, &["payments:read"], "Other").await;
    for _ in 0..3 {
        assert_eq!(get(&app, "/api/v1/payments", &t).await.status, 200);
    }
    let a = get(&app, "/api/v1/payments", &t).await;
    assert_problem(&a, 429);
    let wait: u64 = a.retry_after.as_deref().unwrap_or("").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Per token: another token is not held back.
    assert_eq!(get(&app, "/api/v1/payments", &other).await.status, 200);
    // Refused tokens are limited per address too (as sign-in attempts are), so nobody fills
    // the audit log with them.
    let fake = format!("pdk_{}", "B".repeat(43));
    let mut statuses = Vec::new();
    for _ in 0..35 {
        statuses.push(get(&app, "/api/v1/payments", &fake).await.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 30);
    assert_eq!(statuses[34], 429);
    // Summarised: one entry for the address and minute, counting the 30 refused.
    app.state
        .refusals
        .flush(&app.state.db, app.state.clock.now(), true)
        .await
        .unwrap();
    let audited: Vec<_> = paydesk::store::audit::latest(&app.state.db, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "authn_token_fail")
        .collect();
    assert_eq!(audited.len(), 1);
    assert!(
        audited[0].details.contains("\"count\":30"),
        "{}",
        audited[0].details
    );
    assert_eq!(
        app.state
            .metrics
            .counter("paydesk_api_tokens_refused_total"),
        30
    );
}

#[tokio::test]
async fn every_error_is_a_problem_document_and_never_html() {
    let app = TestApp::new().await;
    let service = app.service("parking").await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let t = token_for(&app, service, admin.id, &ALL).await;
    assert_problem(&get(&app, "/api/v1/nowhere", &t).await, 404);
    assert_problem(
        &call(&app, Method::Get, "/api/v1/nowhere", None, None, None).await,
        404,
    );
    assert_problem(
        &get(&app, "/api/v1/payments/no-such-payment", &t).await,
        404,
    );
    assert_problem(&get(&app, "/api/v1/refunds/abc", &t).await, 404);
    assert_problem(&get(&app, "/api/v1/refunds/999", &t).await, 404);
    let a = call(
        &app,
        Method::Post,
        "/api/v1/payments/nope/refunds",
        Some(&t),
        Some("{"),
        None,
    )
    .await;
    assert_problem(&a, 404);
    let a = call(
        &app,
        Method::Get,
        "/api/v1/payments",
        Some("not-a-token"),
        None,
        None,
    )
    .await;
    assert_problem(&a, 401);
    assert!(a.json["correlation_id"].is_string());
}

#[tokio::test]
async fn the_openapi_document_parses_and_lists_every_route() {
    let app = TestApp::new().await;
    let r = app.client.get("/api/v1/openapi.json").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    let doc: Value = serde_json::from_str(&r.into_string().await.unwrap()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    let mut missing = Vec::new();
    let mut mounted = 0;
    for route in app.client.rocket().routes() {
        let uri = route.uri.to_string();
        if !uri.starts_with("/api/v1") {
            continue;
        }
        mounted += 1;
        // Rocket's <id> is OpenAPI's {id}.
        let path = uri.replace('<', "{").replace('>', "}");
        let method = route.method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][&path][&method];
        if !op.is_object() {
            missing.push(format!("{method} {path}"));
            continue;
        }
        // Every operation but the document itself needs the token and documents the
        // problems it can answer.
        if path != "/api/v1/openapi.json" {
            for status in ["401", "403", "404", "429"] {
                assert!(op["responses"][status].is_object(), "{path} {status}");
            }
        }
    }
    assert!(mounted >= 6);
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    // And nothing documented that is not mounted.
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, mounted);
    // The page about the API is public and links to the document.
    let r = app.client.get("/api/docs").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    let html = r.into_string().await.unwrap();
    assert!(html.contains("/api/v1/openapi.json"));
    for anchor in [
        "problem-validation",
        "problem-malformed-json",
        "problem-idempotency-key-reused",
        "problem-idempotency-key-in-flight",
    ] {
        assert!(html.contains(&format!("id=\"{anchor}\"")), "{anchor}");
    }
    let _ = json!({});
}

/// `paydesk token create` (what CI's API fuzzing uses): the token is the last line printed,
/// works, and is only made for someone who may make it.
#[tokio::test]
async fn the_command_line_makes_a_token_for_someone_who_may_make_it() {
    let db = TestDb::new().await;
    let run = |args: &[&str]| {
        let out = paydesk_command(db.url()).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(
        run(&["service", "add", "--slug", "parking", "--name", "Parking"]).0,
        0
    );
    for (email, role) in [
        ("admin@example.gov.uk", "service_admin"),
        ("cw@example.gov.uk", "caseworker"),
    ] {
        let r = run(&[
            "user",
            "add",
            "--email",
            email,
            "--name",
            "Someone",
            "--role",
            role,
            "--service",
            "parking",
        ]);
        assert_eq!(r.0, 0, "{r:?}");
    }
    let make = |who: &str, service: &str, scopes: &str| {
        run(&[
            "token",
            "create",
            "--service",
            service,
            "--name",
            &format!("CRM {who} {scopes}"),
            "--scopes",
            scopes,
            "--for",
            who,
        ])
    };
    let (code, out, err) = make(
        "admin@example.gov.uk",
        "parking",
        "payments:read,cases:link",
    );
    assert_eq!(code, 0, "{err}");
    let secret = out.lines().last().unwrap_or_default().trim().to_string();
    assert!(secret.starts_with("pdk_") && secret.len() == 47, "{out}");
    let store = db.connect().await;
    let caller = api_tokens::authenticate(&store, time::OffsetDateTime::now_utc(), &secret)
        .await
        .unwrap()
        .expect("the printed token works");
    assert_eq!(caller.token.scopes, "payments:read cases:link");
    // A caseworker does not manage integrations; an unknown service or scope is refused.
    assert_eq!(make("cw@example.gov.uk", "parking", "payments:read").0, 2);
    assert_eq!(make("admin@example.gov.uk", "zoo", "payments:read").0, 2);
    assert_eq!(make("admin@example.gov.uk", "parking", "everything").0, 2);
    assert_eq!(
        make("nobody@example.gov.uk", "parking", "payments:read").0,
        2
    );
    store.close().await;
}
