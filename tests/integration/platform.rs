//! Journeys kept in step with a real sandbox platform process: backfill, webhooks, refresh,
//! retries and faults, stuck journeys, and a backfill that survives `kill -9`.

use std::time::Duration;

use paydesk::audit::Actor;
use paydesk::journeys::sync::{self, BackfillSettings, Pass, Stream};
use paydesk::platform::client::{
    Account, ClientSettings, Credentials, GovUkPay, PaymentPlatform, PlatformError,
};
use paydesk::platform::signature;
use paydesk::platform::types::{CreatePayment, RefundRequest};
use paydesk::services::{self, NewService};
use paydesk::store::journeys as journey_store;
use rocket::http::{ContentType, Header, Status};
use serde_json::{json, Value};

use crate::common::sandbox::SandboxProcess;
use crate::common::{eventually, TestApp};

const SECRET: &str = "webhook-secret-for-tests-0123";

fn key(n: usize) -> String {
    format!("sandbox-key-{n}")
}

fn fast() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(3),
        retries: 3,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_secs(3),
    }
}

fn client(sandbox: &SandboxProcess, credentials: Credentials) -> GovUkPay {
    GovUkPay::new(
        &Account {
            base_url: sandbox.base_url.clone(),
            credentials,
        },
        fast(),
    )
    .unwrap()
}

fn api_key(n: usize) -> Credentials {
    Credentials::ApiKey { api_key: key(n) }
}

/// A service on the test app pointing at sandbox account `n`.
async fn connect(app: &TestApp, sandbox: &SandboxProcess, slug: &str, n: usize) -> i64 {
    services::add(
        &app.state,
        Actor::System,
        &NewService {
            slug: slug.into(),
            name: format!("Service {slug}"),
            time_zone: "Europe/London".into(),
            platform_url: Some(sandbox.base_url.clone()),
            credentials: Some(api_key(n)),
            webhook_secret: Some(SECRET.into()),
        },
    )
    .await
    .unwrap()
    .unwrap()
}

fn settings(page_size: u32) -> BackfillSettings {
    BackfillSettings {
        overlap: Duration::from_secs(900),
        page_size,
        budget: None,
    }
}

async fn backfill_all(app: &TestApp, platform: &GovUkPay, service_id: i64) {
    for stream in [Stream::Payments, Stream::Refunds] {
        let pass = sync::backfill(
            &app.state.db,
            time::OffsetDateTime::now_utc,
            platform,
            service_id,
            stream,
            settings(200),
        )
        .await
        .unwrap();
        assert_eq!(pass, Pass::Complete);
    }
}

#[tokio::test]
async fn backfill_imports_every_payment_and_refund_exactly_once() {
    let sandbox = SandboxProcess::start_with(&["--seed", "1100", "--accounts", "1"]);
    let app = TestApp::new().await;
    let service_id = connect(&app, &sandbox, "parking", 1).await;
    let platform = client(&sandbox, api_key(1));

    backfill_all(&app, &platform, service_id).await;
    let expected = sandbox.totals("account-1").await;
    let (payments, paid, refunds, refunded) = journey_store::totals(&app.state.db, service_id)
        .await
        .unwrap();
    assert_eq!(payments, expected["payments"].as_i64().unwrap());
    assert_eq!(paid, expected["payments_amount"].as_i64().unwrap());
    assert_eq!(refunds, expected["refunds"].as_i64().unwrap());
    assert_eq!(refunded, expected["refunds_amount"].as_i64().unwrap());
    assert!(
        payments >= 1100 && refunds > 0,
        "{payments} payments, {refunds} refunds"
    );
    // Every status the sandbox has, in the same numbers.
    let by_status: Vec<(String, i64)> = journey_store::status_counts(&app.state.db, service_id)
        .await
        .unwrap();
    for (status, n) in &by_status {
        assert_eq!(
            expected["by_status"][status]["count"].as_i64(),
            Some(*n),
            "{status}"
        );
    }
    let progress = journey_store::sync_states(&app.state.db, service_id)
        .await
        .unwrap();
    assert_eq!(progress.len(), 2);
    assert!(progress
        .iter()
        .all(|p| p.cursor_at.is_some() && p.run_started_at.is_none()));

    // A second run overlaps the first and changes nothing.
    backfill_all(&app, &platform, service_id).await;
    assert_eq!(
        journey_store::totals(&app.state.db, service_id)
            .await
            .unwrap(),
        (payments, paid, refunds, refunded)
    );
}

/// The webhook body and its signature as the platform would send them.
fn webhook(message_id: &str, payment_id: &str, event: &str) -> (String, String) {
    let body = json!({
        "webhook_message_id": message_id,
        "created_date": "2026-11-20T10:00:00.000Z",
        "resource_id": payment_id,
        "api_version": 1,
        "resource_type": "payment",
        "event_type": event,
        "resource": {"payment_id": payment_id, "amount": 100}
    })
    .to_string();
    let sig = signature::sign(SECRET, body.as_bytes());
    (body, sig)
}

async fn post_hook(app: &TestApp, slug: &str, body: &str, sig: Option<&str>) -> (Status, String) {
    let mut req = app
        .client
        .post(format!("/hooks/govuk-pay/{slug}"))
        .header(ContentType::JSON)
        .body(body);
    if let Some(s) = sig {
        req = req.header(Header::new("Pay-Signature", s.to_string()));
    }
    let res = req.dispatch().await;
    let status = res.status();
    (status, res.into_string().await.unwrap_or_default())
}

async fn new_payment(platform: &GovUkPay, reference: &str) -> String {
    platform
        .create_payment(&CreatePayment {
            amount: 2500,
            reference: reference.into(),
            description: "Resident parking permit".into(),
            return_url: "https://service.example/done".into(),
            email: Some("payer@example.com".into()),
            language: None,
            metadata: json!({"case_reference": "CASE-77"}).as_object().cloned(),
            delayed_capture: None,
            moto: None,
        })
        .await
        .unwrap()
        .payment_id
}

#[tokio::test]
async fn webhooks_are_verified_deduplicated_and_end_in_the_platforms_true_state() {
    let sandbox = SandboxProcess::start_with(&["--seed", "5", "--accounts", "1"]);
    let app = TestApp::new().await;
    let service_id = connect(&app, &sandbox, "parking", 1).await;
    let platform = client(&sandbox, api_key(1));
    let payment_id = new_payment(&platform, "REF-HOOK").await;

    // Forged, truncated, missing and re-serialised signatures are all refused.
    let (body, sig) = webhook("msg-1", &payment_id, "card_payment_started");
    let forged = signature::sign("not-the-secret-at-all", body.as_bytes());
    let reserialised =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    for (b, s) in [
        (body.as_str(), Some(forged.as_str())),
        (body.as_str(), Some(&sig[..40])),
        (body.as_str(), None),
        (reserialised.as_str(), Some(sig.as_str())),
    ] {
        let (status, _) = post_hook(&app, "parking", b, s).await;
        assert_eq!(status, Status::Unauthorized);
    }
    // An unknown service answers the same way.
    assert_eq!(
        post_hook(&app, "nope", &body, Some(&sig)).await.0,
        Status::Unauthorized
    );
    assert_eq!(
        app.state.metrics.counter("paydesk_webhooks_rejected_total"),
        4
    );
    // Summarised per source and minute once the minute is written: one entry counting the
    // four (the unknown service has no row to audit against).
    app.state
        .refusals
        .flush(&app.state.db, app.state.clock.now(), true)
        .await
        .unwrap();
    let audited = paydesk::store::audit::by_action(&app.state.db, "webhook_signature_fail")
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    assert!(
        audited[0].details.contains("\"count\":4"),
        "{}",
        audited[0].details
    );

    // Signed but malformed: a 4xx, never a 5xx.
    let junk = "{not json";
    let (status, _) = post_hook(
        &app,
        "parking",
        junk,
        Some(&signature::sign(SECRET, junk.as_bytes())),
    )
    .await;
    assert_eq!(status, Status::UnprocessableEntity);

    // The payer pays; the platform's webhooks arrive newest first, and one twice.
    sandbox.advance_payment(&payment_id, "started", None).await;
    sandbox
        .advance_payment(&payment_id, "submitted", None)
        .await;
    sandbox.advance_payment(&payment_id, "success", None).await;
    let (succeeded, sig_s) = webhook("msg-3", &payment_id, "card_payment_succeeded");
    let (started, sig_st) = webhook("msg-2", &payment_id, "card_payment_started");
    assert_eq!(
        post_hook(&app, "parking", &succeeded, Some(&sig_s)).await.0,
        Status::Ok
    );
    let (status, text) = post_hook(&app, "parking", &succeeded, Some(&sig_s)).await;
    assert_eq!(status, Status::Ok);
    assert!(text.contains("already received"), "{text}");
    assert_eq!(
        post_hook(&app, "parking", &started, Some(&sig_st)).await.0,
        Status::Ok
    );

    // Two refreshes were queued (the duplicate queued nothing); run them.
    let mut ran = 0;
    for _ in 0..5 {
        let pass = app.state.job_runner().run_due().await.unwrap();
        ran += pass.succeeded;
        if pass.claimed == 0 {
            break;
        }
    }
    assert_eq!(ran, 2);
    let journey = journey_store::journey(&app.state.db, service_id, &payment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(journey.status, "success");
    assert_eq!(journey.case_reference.as_deref(), Some("CASE-77"));
    let events = journey_store::events(&app.state.db, journey.id)
        .await
        .unwrap();
    let states: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "state")
        .filter_map(|e| e.status.as_deref())
        .collect();
    assert!(
        states.contains(&"created") && states.contains(&"success"),
        "{states:?}"
    );
    assert_eq!(events.iter().filter(|e| e.kind == "webhook").count(), 2);
}

#[tokio::test]
async fn a_journey_never_moves_backwards() {
    let app = TestApp::new().await;
    let service_id = app.service("parking").await;
    let payment: paydesk::platform::types::Payment = serde_json::from_value(json!({
        "payment_id": "p-mono", "amount": 100, "description": "d", "reference": "r",
        "state": {"status": "success", "finished": true},
        "created_date": "2026-11-20T09:00:00.000Z"
    }))
    .unwrap();
    let mut older = payment.clone();
    older.state = paydesk::platform::types::PaymentState::of(
        paydesk::platform::types::PaymentStatus::Started,
    );
    let rec = paydesk::journeys::record::JourneyRecord::from_payment(&payment);
    let old = paydesk::journeys::record::JourneyRecord::from_payment(&older);
    let mut tx = app.state.db.begin().await.unwrap();
    journey_store::upsert_journeys(&mut tx, service_id, &[rec], 2_000, 2_000)
        .await
        .unwrap();
    // A later read that says "started" (a stale replica, a replayed message) changes nothing.
    journey_store::upsert_journeys(&mut tx, service_id, &[old], 3_000, 3_000)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let j = journey_store::journey(&app.state.db, service_id, "p-mono")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.status, "success");
    assert!(j.finished);
}

#[tokio::test]
async fn reads_are_retried_through_faults_and_persistent_failures_are_reported_clearly() {
    let sandbox = SandboxProcess::start_with(&["--seed", "3", "--accounts", "1"]);
    let platform = client(&sandbox, api_key(1));
    let payment_id = new_payment(&platform, "REF-RETRY").await;

    sandbox
        .set_faults("account-1", json!({"error_next": 2}))
        .await;
    assert_eq!(
        platform.get_payment(&payment_id).await.unwrap().payment_id,
        payment_id
    );

    sandbox
        .set_faults(
            "account-1",
            json!({"rate_limit_next": 1, "retry_after_secs": 1}),
        )
        .await;
    let t = std::time::Instant::now();
    platform.get_payment(&payment_id).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );

    sandbox
        .set_faults("account-1", json!({"error_next": 50}))
        .await;
    let err = platform.get_payment(&payment_id).await.unwrap_err();
    assert_eq!(err.code(), Some("P0999"));
    assert!(err.to_string().contains("500 P0999"), "{err}");

    sandbox
        .set_faults("account-1", json!({"latency_ms": 5000}))
        .await;
    let err = platform.payment_events(&payment_id).await.unwrap_err();
    assert!(matches!(err, PlatformError::Timeout(_)), "{err:?}");
    assert!(err.to_string().contains("did not answer"), "{err}");

    // A refund POST is not retried after a 500: exactly one attempt reached the platform.
    sandbox.set_faults("account-1", json!({})).await;
    sandbox.advance_payment(&payment_id, "success", None).await;
    sandbox
        .set_faults("account-1", json!({"error_next": 1}))
        .await;
    let err = platform
        .create_refund(
            &payment_id,
            &RefundRequest {
                amount: 100,
                refund_amount_available: Some(2500),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(platform
        .payment_refunds(&payment_id)
        .await
        .unwrap()
        .is_empty());
    // The platform's own refusal keeps its code: a stale amount available is P0604.
    let err = platform
        .create_refund(
            &payment_id,
            &RefundRequest {
                amount: 100,
                refund_amount_available: Some(1),
            },
        )
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(412), Some("P0604")));
}

#[tokio::test]
async fn oauth_client_credentials_are_used_and_bad_ones_are_named() {
    let sandbox = SandboxProcess::start_with(&["--seed", "20", "--accounts", "1"]);
    let token_url = format!("{}/oauth/token", sandbox.base_url);
    let good = client(
        &sandbox,
        Credentials::ClientCredentials {
            client_id: "sandbox-client-1".into(),
            client_secret: "sandbox-secret-1".into(),
            token_url: token_url.clone(),
            scopes: vec![],
        },
    );
    let page = good.search_payments(&Default::default()).await.unwrap();
    assert_eq!(page.total, 20);
    let bad = client(
        &sandbox,
        Credentials::ClientCredentials {
            client_id: "sandbox-client-1".into(),
            client_secret: "wrong".into(),
            token_url,
            scopes: vec![],
        },
    );
    let err = bad.search_payments(&Default::default()).await.unwrap_err();
    assert!(
        matches!(err, PlatformError::InvalidCredentials(_)),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("Invalid client credentials"),
        "{err}"
    );
    let wrong_key = client(
        &sandbox,
        Credentials::ApiKey {
            api_key: "nope".into(),
        },
    );
    assert!(matches!(
        wrong_key.get_payment("x").await.unwrap_err(),
        PlatformError::InvalidCredentials(_)
    ));
}

#[tokio::test]
async fn journeys_without_a_final_state_are_flagged_after_expiry() {
    let sandbox = SandboxProcess::start_with(&["--seed", "0", "--accounts", "1"]);
    let app = TestApp::new().await;
    let service_id = connect(&app, &sandbox, "parking", 1).await;
    let platform = client(&sandbox, api_key(1));
    let stuck = new_payment(&platform, "REF-STUCK").await;
    let paid = new_payment(&platform, "REF-PAID").await;
    sandbox.advance_payment(&paid, "success", None).await;
    // The platform's search counts time in whole seconds: payments made in the second the
    // backfill runs can fall after its window and wait for the next run. Let that second pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    backfill_all(&app, &platform, service_id).await;

    // paydesk's clock is two hours on; the platform still shows the first payment unfinished
    // (its clock was not moved), which is exactly the case to flag.
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let flagged = sync::flag_stuck(
        &app.state.db,
        later,
        &platform,
        service_id,
        Duration::from_secs(900),
    )
    .await
    .unwrap();
    assert_eq!(flagged, 1);
    let j = journey_store::journey(&app.state.db, service_id, &stuck)
        .await
        .unwrap()
        .unwrap();
    assert!(j.needs_attention);
    assert_eq!(j.attention_reason.as_deref(), Some("stuck"));
    let ok = journey_store::journey(&app.state.db, service_id, &paid)
        .await
        .unwrap()
        .unwrap();
    assert!(!ok.needs_attention);

    // When the platform finally expires it, the flag clears on the next read.
    sandbox.advance_clock(100 * 60).await;
    sync::refresh_with(
        &app.state.db,
        time::OffsetDateTime::now_utc(),
        &platform,
        service_id,
        &stuck,
    )
    .await
    .unwrap();
    let j = journey_store::journey(&app.state.db, service_id, &stuck)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (j.status.as_str(), j.state_code.as_deref()),
        ("failed", Some("P0020"))
    );
    assert!(!j.needs_attention);
}

#[tokio::test]
async fn a_backfill_killed_mid_way_resumes_and_ends_with_exact_counts() {
    let sandbox = SandboxProcess::start_with(&["--seed", "6000", "--accounts", "1"]);
    let db = crate::common::TestDb::new().await;
    let env = [
        ("PAYDESK_JOB_LEASE_SECS", "4"),
        ("PAYDESK_JOB_POLL_MS", "100"),
        ("PAYDESK_SYNC_INTERVAL_SECS", "1"),
    ];
    crate::common::paydesk_ok(
        db.url(),
        &[
            "service",
            "add",
            "--slug",
            "parking",
            "--name",
            "Parking permits",
            "--platform-url",
            &sandbox.base_url,
            "--api-key",
            &key(1),
        ],
    );
    // Slow pages, so the kill lands part-way through.
    sandbox
        .set_faults("account-1", json!({"latency_ms": 150}))
        .await;

    let server = crate::common::Server::start(db.url(), &env);
    let check_db = db.connect().await;
    let service_id = services::by_slug(&check_db, "parking")
        .await
        .unwrap()
        .unwrap()
        .id;
    let part_way = eventually(Duration::from_secs(60), || async {
        let s = journey_store::sync_state(&check_db, service_id, "payments")
            .await
            .ok()??;
        (s.run_imported > 0 && s.run_next_page.is_some()).then_some(s.run_imported)
    })
    .await
    .expect("the backfill got going");
    server.kill_hard();
    assert!(part_way < 6000);

    sandbox.set_faults("account-1", json!({})).await;
    let _server = crate::common::Server::start(db.url(), &env);
    let expected = sandbox.totals("account-1").await;
    let done = eventually(Duration::from_secs(90), || async {
        let states = journey_store::sync_states(&check_db, service_id)
            .await
            .ok()?;
        // Payments, refunds, disputes and agreements.
        (states.len() == 4 && states.iter().all(|s| s.cursor_at.is_some())).then_some(())
    })
    .await;
    assert!(done.is_some(), "the backfill finished after the restart");
    let status = crate::common::paydesk_command(db.url())
        .arg("sync-status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(
        text.contains("Parking permits (parking)") && text.contains("complete up to 20"),
        "{text}"
    );
    let (payments, paid, refunds, refunded) =
        journey_store::totals(&check_db, service_id).await.unwrap();
    assert_eq!(payments, expected["payments"].as_i64().unwrap());
    assert_eq!(paid, expected["payments_amount"].as_i64().unwrap());
    assert_eq!(refunds, expected["refunds"].as_i64().unwrap());
    assert_eq!(refunded, expected["refunds_amount"].as_i64().unwrap());
    check_db.close().await;
}

/// The sandbox's own webhooks, sent twice each and newest first, reach a running console:
/// each message is stored once and the journey ends in the platform's true state.
#[tokio::test]
async fn real_webhooks_duplicated_and_reordered_end_in_the_true_state() {
    let sandbox = SandboxProcess::start_with(&["--seed", "0", "--accounts", "1"]);
    let db = crate::common::TestDb::new().await;
    crate::common::paydesk_ok(
        db.url(),
        &[
            "service",
            "add",
            "--slug",
            "parking",
            "--name",
            "Parking permits",
            "--platform-url",
            &sandbox.base_url,
            "--api-key",
            &key(1),
            "--webhook-secret",
            SECRET,
        ],
    );
    let server = crate::common::Server::start(db.url(), &[("PAYDESK_JOB_POLL_MS", "100")]);
    sandbox
        .set_webhook("account-1", &server.url("/hooks/govuk-pay/parking"), SECRET)
        .await;
    sandbox
        .set_faults(
            "account-1",
            json!({"webhook_duplicate": true, "webhook_reorder": true}),
        )
        .await;
    let payment_id = sandbox.create_payment(&key(1), 1800, "REF-LIVE").await["payment_id"]
        .as_str()
        .unwrap()
        .to_string();
    sandbox.advance_payment(&payment_id, "started", None).await;
    sandbox
        .advance_payment(&payment_id, "submitted", None)
        .await;
    sandbox.advance_payment(&payment_id, "success", None).await;

    let check = db.connect().await;
    let service_id = services::by_slug(&check, "parking")
        .await
        .unwrap()
        .unwrap()
        .id;
    let journey = eventually(Duration::from_secs(30), || async {
        let j = journey_store::journey(&check, service_id, &payment_id)
            .await
            .ok()??;
        let events = journey_store::events(&check, j.id).await.ok()?;
        let webhooks = events.iter().filter(|e| e.kind == "webhook").count();
        (j.status == "success" && webhooks == 2).then_some((j, events))
    })
    .await;
    let (journey, events) = journey.expect("both webhooks processed, ending in success");
    assert!(journey.finished);
    // Sent four times (two messages, each twice), stored twice.
    let inbox: i64 = paydesk::on_db!(&check, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_inbox WHERE resource_id = $1")
        .bind(&payment_id).fetch_one(pool).await.unwrap());
    assert_eq!(inbox, 2);
    assert!(events
        .iter()
        .any(|e| e.kind == "state" && e.status.as_deref() == Some("success")));
    drop(server);
    check.close().await;
}
