//! Personal data (issue 21): the legal holds pages (place with a reason, list, release;
//! audited; the payment page says it is held), and redacted payments going on working in the
//! CRM API, outbound events, exports, the search and the dashboard (empty personal fields,
//! never an error).

use paydesk::identity::permissions::Role;
use paydesk::integrations::api_tokens::{self, NewToken};
use paydesk::integrations::events::{self, EndpointInput};
use paydesk::personal_data::retention;
use rocket::http::{ContentType, Header, Status};
use serde_json::Value;
use time::Duration;

use crate::common::{location, start_time, store_journeys, TestApp};
use crate::personal_data::{payer, scan};

async fn actions(app: &TestApp, n: i64) -> Vec<String> {
    paydesk::store::audit::latest(&app.state.db, n)
        .await
        .expect("latest")
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test]
async fn holds_are_placed_listed_and_released_on_their_pages() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let made = start_time() - Duration::days(10);
    store_journeys(&app, parking, &[payer(1, "zqhold", made)]).await;
    let admin = app
        .person("admin@example.gov", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;

    // The payment page offers a hold to someone who manages personal data.
    let page = app
        .client
        .get("/payments/pay1?service=parking")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap_or_default();
    assert!(
        page.contains("holds?service=parking&amp;payment=pay1"),
        "{page}"
    );
    let form = app
        .client
        .get("/personal-data/holds?service=parking&payment=pay1")
        .dispatch()
        .await;
    assert_eq!(form.status(), Status::Ok);
    let html = form.into_string().await.unwrap_or_default();
    assert!(html.contains("value=\"pay1\""), "{html}");
    let token = app.token();
    // A reason is needed, and the payment must be the service's.
    let r = app
        .post_form(
            "/personal-data/holds",
            &[
                ("csrf_token", &token),
                ("service", "parking"),
                ("payment_id", "pay1"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    assert!(r.into_string().await.unwrap_or_default().contains("Error:"));
    let r = app
        .post_form(
            "/personal-data/holds",
            &[
                ("csrf_token", &token),
                ("service", "parking"),
                ("payment_id", "nope"),
                ("reason", "Court claim 42"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    assert!(r
        .into_string()
        .await
        .unwrap_or_default()
        .contains("no payment with this ID"));
    let r = app
        .post_form(
            "/personal-data/holds",
            &[
                ("csrf_token", &token),
                ("service", "parking"),
                ("payment_id", "pay1"),
                ("reason", "Court claim 42"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    let list = app.follow(r).await;
    assert!(
        list.contains("Hold placed") && list.contains("Court claim 42"),
        "{list}"
    );
    assert_eq!(actions(&app, 1).await, ["personal_data_hold_placed"]);
    let page = app
        .client
        .get("/payments/pay1?service=parking")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap_or_default();
    assert!(
        page.contains("Personal data held") && page.contains("Court claim 42"),
        "{page}"
    );

    // Held, retention leaves it.
    app.clock.advance(Duration::days(2556));
    let report = retention::run(&app.state.db, app.state.clock.now())
        .await
        .expect("run");
    assert_eq!((report.redacted, report.held), (0, 1));

    // Released (signed in again: years have passed), the next run takes it.
    app.sign_in(&admin).await;
    let token = app.token();
    let r = app
        .post_form("/personal-data/holds/1/release", &[("csrf_token", &token)])
        .await;
    let list = app.follow(r).await;
    assert!(list.contains("Hold released"), "{list}");
    assert!(list.contains("no open holds"), "{list}");
    assert_eq!(actions(&app, 1).await, ["personal_data_hold_released"]);
    let report = retention::run(&app.state.db, app.state.clock.now())
        .await
        .expect("run");
    assert_eq!(report.redacted, 1);
    assert!(scan(&app.state.db, "zqholdname1").await.is_empty());

    // Someone without personal_data:manage finds no such pages.
    let viewer = app
        .person("viewer@example.gov", Role::Viewer, Some("parking"))
        .await;
    app.post_form("/logout", &[("csrf_token", &token)]).await;
    app.sign_in(&viewer).await;
    let r = app.client.get("/personal-data/holds").dispatch().await;
    assert_ne!(r.status(), Status::Ok);
}

/// Item 7: after retention, the CRM API, outbound events, exports, the search and the
/// dashboard all answer for the redacted payments, with their personal fields empty.
#[tokio::test]
async fn redacted_payments_keep_working_in_the_api_events_exports_and_dashboard() {
    let app = TestApp::with_config(|c| c.events_allow_loopback = true).await;
    let db = &app.state.db;
    let parking = app.service("parking").await;
    let admin = app
        .person("admin@example.gov", Role::ServiceAdmin, Some("parking"))
        .await;
    let made = start_time() - Duration::days(10);
    store_journeys(
        &app,
        parking,
        &(0..2).map(|n| payer(n, "zqred", made)).collect::<Vec<_>>(),
    )
    .await;
    events::create(
        db,
        &app.state.config,
        app.state.clock.now(),
        paydesk::audit::Actor::System,
        None,
        parking,
        None,
        &EndpointInput {
            url: "http://127.0.0.1:9/hook".into(),
            description: "CRM".into(),
            event_types: vec!["case.linked".into()],
        },
    )
    .await
    .expect("endpoint")
    .expect("saved");
    let secret = api_tokens::create(
        db,
        app.state.clock.now(),
        paydesk::audit::Actor::System,
        admin.id,
        None,
        &NewToken {
            service_id: parking,
            name: "CRM".into(),
            scopes: vec!["payments:read".into(), "cases:link".into()],
            expires_in_days: None,
        },
    )
    .await
    .expect("token")
    .expect("made")
    .secret;

    app.clock.advance(Duration::days(2556));
    let report = retention::run(db, app.state.clock.now())
        .await
        .expect("run");
    assert_eq!(report.redacted, 2);
    assert!(scan(db, "zqred").await.is_empty());
    let auth = || Header::new("Authorization", format!("Bearer {secret}"));

    // The CRM API: one payment, and the list.
    let r = app
        .client
        .get("/api/v1/payments/pay0")
        .header(auth())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let one: Value =
        serde_json::from_str(&r.into_string().await.unwrap_or_default()).expect("json");
    assert_eq!(one["payment_id"], "pay0", "{one}");
    assert_eq!(one["reference"], "REF-0", "{one}");
    for field in ["email", "cardholder_name"] {
        assert!(
            one.get(field).is_none_or(|v| v.is_null() || v == ""),
            "{field} in {one}"
        );
    }
    let r = app
        .client
        .get("/api/v1/payments")
        .header(auth())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let list = r.into_string().await.unwrap_or_default();
    assert!(list.contains("pay0") && list.contains("pay1"), "{list}");

    // Linking a case through the API emits an outbound event for the redacted payment.
    let r = app
        .client
        .put("/api/v1/payments/pay0/case")
        .header(auth())
        .header(ContentType::JSON)
        .body(r#"{"case_reference":"CASE-9"}"#)
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok, "{:?}", r.into_string().await);
    let payloads: Vec<String> = paydesk::on_db!(db, pool => sqlx::query_scalar(
        "SELECT payload FROM outbound_events ORDER BY id")
        .fetch_all(pool).await.expect("events"));
    assert_eq!(payloads.len(), 1);
    let event: Value = serde_json::from_str(&payloads[0]).expect("json");
    assert_eq!(event["type"], "case.linked");
    assert_eq!(event["data"]["payment_id"], "pay0");
    assert_eq!(event["data"]["case_reference"], "CASE-9");

    // The pages: dashboard, search, the payment, exports.
    app.sign_in(&admin).await;
    for path in [
        "/",
        "/?period=today",
        "/payments",
        "/payments?q=REF-0",
        "/payments/pay0?service=parking",
        "/exports/pack.csv?service=parking&month=2026-11",
        "/payments/download?q=REF",
    ] {
        let r = app.client.get(path).dispatch().await;
        let status = r.status();
        let body = r.into_string().await.unwrap_or_default();
        assert_eq!(status, Status::Ok, "{path}: {body}");
        assert!(!body.contains("zqred"), "{path}");
    }
    let page = app
        .client
        .get("/payments/pay1?service=parking")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap_or_default();
    assert!(page.contains("Personal details removed on"), "{page}");
    // A background export of the redacted month works too.
    let token = app.token();
    let r = app
        .post_form(
            "/exports",
            &[
                ("csrf_token", &token),
                ("services", "parking"),
                ("by", "created"),
                ("from", "1/11/2026"),
                ("to", "30/11/2026"),
                ("time_zone", "Europe/London"),
                ("include", "payments"),
            ],
        )
        .await;
    let status = r.status();
    let to = if status == Status::SeeOther {
        location(&r)
    } else {
        String::new()
    };
    let body = r.into_string().await.unwrap_or_default();
    assert!(
        status == Status::Ok || status == Status::SeeOther,
        "{status}: {body}"
    );
    if status == Status::Ok {
        assert!(body.contains("REF-0") && !body.contains("zqred"), "{body}");
    } else {
        assert!(!to.is_empty());
    }
}
