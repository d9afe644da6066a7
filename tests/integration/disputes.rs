//! Disputes end to end for finance, against a real sandbox platform process, on SQLite and
//! PostgreSQL: they arrive by backfill and with their payment (a webhook's re-read), move on
//! and never move back; a disputed payment's refund is refused before any platform call (and
//! one asked for before the dispute is never sent); the disputes page, the payment page and
//! the dashboard show them only to whom they should.

use std::time::Duration;

use paydesk::audit::Actor;
use paydesk::identity::permissions::Role;
use paydesk::journeys::sync::{self, BackfillSettings, Pass, Stream};
use paydesk::platform::client::{Credentials, PaymentPlatform};
use paydesk::platform::dispute_wire::Dispute;
use paydesk::platform::signature;
use paydesk::refunds::{self, Ask, Asked, HowMuch, Staff};
use paydesk::services::{self, NewService};
use paydesk::store::{journeys as journey_store, refunds as refund_store};
use rocket::http::{ContentType, Cookie, Header, Status};
use serde_json::json;

use crate::common::sandbox::SandboxProcess;
use crate::common::{api_get, api_token, refund_sandbox, Person, TestApp};

const SECRET: &str = "webhook-secret-for-disputes-01";

/// A service `slug` on sandbox account `n`, with a webhook secret.
async fn connect(app: &TestApp, sandbox: &SandboxProcess, slug: &str, n: usize) -> i64 {
    services::add(
        &app.state,
        Actor::System,
        &NewService {
            slug: slug.into(),
            name: format!("Service {slug}"),
            time_zone: "Europe/London".into(),
            platform_url: Some(sandbox.base_url.clone()),
            credentials: Some(Credentials::ApiKey {
                api_key: SandboxProcess::api_key(n),
            }),
            webhook_secret: Some(SECRET.into()),
        },
    )
    .await
    .expect("add service")
    .expect("a valid service")
}

async fn client(app: &TestApp, slug: &str) -> std::sync::Arc<dyn PaymentPlatform> {
    let service = services::by_slug(&app.state.db, slug)
        .await
        .unwrap()
        .unwrap();
    app.state
        .platforms
        .client(&app.state.config, &service)
        .unwrap()
}

/// One backfill pass of `stream`, to the end.
async fn backfill(app: &TestApp, slug: &str, service_id: i64, stream: Stream) {
    let platform = client(app, slug).await;
    let pass = sync::backfill(
        &app.state.db,
        time::OffsetDateTime::now_utc,
        platform.as_ref(),
        service_id,
        stream,
        BackfillSettings {
            overlap: Duration::from_secs(900),
            page_size: 1,
            budget: None,
        },
    )
    .await
    .expect("backfill");
    assert_eq!(pass, Pass::Complete);
}

async fn stored(app: &TestApp, service_id: i64, payment_id: &str) -> Vec<(String, String)> {
    paydesk::disputes::of_payment(&app.state.db, service_id, payment_id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.dispute_id, d.status))
        .collect()
}

/// What the platform said of a dispute at some earlier time, delivered late.
async fn record_stale(app: &TestApp, service_id: i64, mut d: Dispute, status: &str) -> usize {
    d.status = paydesk::platform::dispute_wire::DisputeStatus::parse(status).unwrap();
    d.net_amount = None;
    let now = paydesk::store::to_micros(time::OffsetDateTime::now_utc());
    let mut tx = app.state.db.begin().await.unwrap();
    let n = paydesk::disputes::record(&mut tx, service_id, &[d], now, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    n
}

async fn platform_dispute(app: &TestApp, slug: &str, payment_id: &str) -> Dispute {
    let page = client(app, slug)
        .await
        .search_disputes(&Default::default())
        .await
        .unwrap();
    page.results
        .into_iter()
        .find(|d| d.payment_id == payment_id)
        .expect("the platform's dispute")
}

#[tokio::test]
async fn disputes_arrive_by_backfill_move_on_and_never_move_back() {
    let sandbox = refund_sandbox(2);
    let app = TestApp::new().await;
    let parking = connect(&app, &sandbox, "parking", 1).await;
    let planning = connect(&app, &sandbox, "planning", 2).await;
    let lost = sandbox
        .payment_in(&app, "parking", 1, 4_200, "DSP-LOST", Some("success"))
        .await;
    let won = sandbox
        .payment_in(&app, "parking", 1, 1_000, "DSP-WON", Some("success"))
        .await;
    let other = sandbox
        .payment_in(&app, "planning", 2, 900, "DSP-OTHER", Some("success"))
        .await;
    sandbox.raise_dispute(&lost.0, "lost", 10).await;
    sandbox.raise_dispute(&won.0, "won", 2).await;
    sandbox.raise_dispute(&other.0, "lost", 10).await;

    // Page by page (one a page), each service its own.
    backfill(&app, "parking", parking, Stream::Disputes).await;
    assert_eq!(stored(&app, parking, &lost.0).await[0].1, "needs_response");
    assert_eq!(stored(&app, parking, &won.0).await[0].1, "needs_response");
    assert!(stored(&app, parking, &other.0).await.is_empty());
    assert!(stored(&app, planning, &other.0).await.is_empty());
    let state = journey_store::sync_state(&app.state.db, parking, "disputes")
        .await
        .unwrap()
        .unwrap();
    assert!(state.cursor_at.is_some() && state.run_started_at.is_none());
    assert_eq!(
        paydesk::disputes::needing_response(&app.state.db, &[parking, planning])
            .await
            .unwrap(),
        2
    );

    // Time passes at the platform: the next pass reads the open disputes again.
    sandbox.advance_clock(3 * 86_400).await;
    backfill(&app, "parking", parking, Stream::Disputes).await;
    assert_eq!(stored(&app, parking, &won.0).await[0].1, "under_review");
    assert_eq!(stored(&app, parking, &lost.0).await[0].1, "needs_response");

    // A stale read delivered late does not move it back.
    let seen = platform_dispute(&app, "parking", &won.0).await;
    assert_eq!(record_stale(&app, parking, seen, "needs_response").await, 0);
    assert_eq!(stored(&app, parking, &won.0).await[0].1, "under_review");

    sandbox.advance_clock(40 * 86_400).await;
    backfill(&app, "parking", parking, Stream::Disputes).await;
    assert_eq!(stored(&app, parking, &won.0).await[0].1, "won");
    let decided = paydesk::disputes::of_payment(&app.state.db, parking, &lost.0)
        .await
        .unwrap();
    assert_eq!(decided[0].status, "lost");
    assert_eq!(decided[0].net_amount, Some(-(4_200 + 2_000)));
    assert_eq!(decided[0].fee, Some(2_000));
    assert!(decided[0].settled_date.is_some());
    let seen = platform_dispute(&app, "parking", &lost.0).await;
    assert_eq!(
        record_stale(&app, parking, seen.clone(), "under_review").await,
        0
    );
    assert_eq!(record_stale(&app, parking, seen, "won").await, 0);
    assert_eq!(stored(&app, parking, &lost.0).await[0].1, "lost");
    assert_eq!(
        paydesk::disputes::needing_response(&app.state.db, &[parking])
            .await
            .unwrap(),
        0
    );

    // The payment's timeline tells the dispute's story in the platform's words.
    let events = journey_store::events(&app.state.db, lost.1).await.unwrap();
    let j = journey_store::journey(&app.state.db, parking, &lost.0)
        .await
        .unwrap()
        .unwrap();
    let titles: Vec<String> = paydesk::journeys::timeline::entries(&j, &events, false)
        .into_iter()
        .map(|e| e.title)
        .collect();
    assert!(
        titles.contains(&"Dispute awaiting evidence".to_string())
            && titles.contains(&"Dispute lost to user".to_string()),
        "{titles:?}"
    );
    assert!(!titles.contains(&"Dispute under review".to_string()));

    // The other service has its own.
    backfill(&app, "planning", planning, Stream::Disputes).await;
    assert_eq!(stored(&app, planning, &other.0).await[0].1, "lost");
}

#[tokio::test]
async fn a_dispute_arrives_with_its_payment_when_a_webhook_asks_for_a_re_read() {
    let sandbox = refund_sandbox(1);
    let app = TestApp::new().await;
    let parking = connect(&app, &sandbox, "parking", 1).await;
    let (payment_id, journey_id) = sandbox
        .payment_in(&app, "parking", 1, 2_500, "DSP-HOOK", Some("success"))
        .await;
    sandbox.raise_dispute(&payment_id, "lost", 10).await;
    assert!(stored(&app, parking, &payment_id).await.is_empty());

    let body = json!({
        "webhook_message_id": "dispute-hook-1",
        "created_date": "2026-11-20T10:00:00.000Z",
        "resource_id": payment_id,
        "api_version": 1,
        "resource_type": "payment",
        "event_type": "card_payment_succeeded",
        "resource": {"payment_id": payment_id, "amount": 2500}
    })
    .to_string();
    let sig = signature::sign(SECRET, body.as_bytes());
    let r = app
        .client
        .post("/hooks/govuk-pay/parking")
        .header(ContentType::JSON)
        .header(Header::new("Pay-Signature", sig))
        .body(body)
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    for _ in 0..5 {
        if app.state.job_runner().run_due().await.unwrap().claimed == 0 {
            break;
        }
    }
    let got = paydesk::disputes::of_payment(&app.state.db, parking, &payment_id)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, "needs_response");
    let j = journey_store::journey(&app.state.db, parking, &payment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.id, journey_id);
    assert_eq!(j.refund_status.as_deref(), Some("unavailable"));
}

fn staff(p: &Person) -> Staff {
    Staff {
        id: p.id,
        email: p.email.clone(),
        name: "Casey Worker".into(),
        ip: None,
    }
}

fn ask(service_id: i64, payment: &(String, i64), key: &str) -> Ask {
    Ask {
        service_id,
        journey_id: payment.1,
        payment_id: payment.0.clone(),
        how_much: Ok(HowMuch::Partial(500)),
        reason: "duplicate".into(),
        form_key: key.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_disputed_payment_is_refused_before_any_platform_call_and_never_sent() {
    let sandbox = refund_sandbox(1);
    let app = TestApp::new().await;
    let parking = connect(&app, &sandbox, "parking", 1).await;
    let cw = app
        .person("cw@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let first = sandbox
        .payment_in(&app, "parking", 1, 3_000, "DSP-ASK", Some("success"))
        .await;
    let second = sandbox
        .payment_in(&app, "parking", 1, 3_000, "DSP-SENT", Some("success"))
        .await;
    let now = app.state.clock.now();

    // Asked for while nobody knew; approved (no threshold), waiting to be sent.
    let Asked::Made { id: waiting, .. } = refunds::request(
        &app.state.db,
        now,
        &staff(&cw),
        &ask(parking, &second, "k-1"),
    )
    .await
    .unwrap() else {
        panic!("the first request is made");
    };

    // Both payments are disputed; paydesk hears of it from the dispute search alone, so the
    // journeys still carry the platform's earlier "available".
    sandbox.raise_dispute(&first.0, "lost", 10).await;
    sandbox.raise_dispute(&second.0, "won", 10).await;
    backfill(&app, "parking", parking, Stream::Disputes).await;
    let j = journey_store::journey(&app.state.db, parking, &first.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.refund_status.as_deref(), Some("available"));

    let refused = refunds::request(
        &app.state.db,
        now,
        &staff(&cw),
        &ask(parking, &first, "k-2"),
    )
    .await
    .unwrap();
    match refused {
        Asked::Refused(problems) => assert!(problems[0].1.contains("disputed"), "{problems:?}"),
        other => panic!("a disputed payment's refund must be refused: {other:?}"),
    }
    // The one asked for before is never sent: the job fails it without calling the platform.
    for _ in 0..5 {
        if app.state.job_runner().run_due().await.unwrap().claimed == 0 {
            break;
        }
    }
    let row = refund_store::by_id(&app.state.db, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, "failed");
    assert!(row.failure.unwrap_or_default().contains("disputed"));
    assert_eq!(sandbox.totals("account-1").await["refunds"], 0);

    // The payment's page says why, with the dispute, and offers no refund.
    let cookie = app.session_for(&cw).await;
    let name = paydesk::web::session::session_cookie_name(&app.state.config);
    let html = app
        .client
        .get(format!("/payments/{}?service=parking", first.0))
        .cookie(Cookie::new(name, cookie.value().to_string()))
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap_or_default();
    assert!(html.contains("id=\"dispute-heading\""), "the dispute panel");
    assert!(html.contains("a disputed payment cannot be refunded"));
    assert!(!html.contains("Refund this payment"));
    assert!(html.contains("Dispute awaiting evidence"));
    // The refund form, reached by its address, says the same and offers no form.
    let (status, form) = page(
        &app,
        &cw,
        &format!("/payments/{}/refund?service=parking", first.0),
    )
    .await;
    assert_eq!(status, Status::Ok);
    assert!(
        form.contains("a disputed payment cannot be refunded"),
        "{form}"
    );
    assert!(!form.contains("name=\"how_much\""), "{form}");
}

/// Sign in as `p` by session cookie and GET `path`: (status, body).
async fn page(app: &TestApp, p: &Person, path: &str) -> (Status, String) {
    let cookie = app.session_for(p).await;
    let name = paydesk::web::session::session_cookie_name(&app.state.config);
    let r = app
        .client
        .get(path.to_string())
        .cookie(Cookie::new(name, cookie.value().to_string()))
        .dispatch()
        .await;
    let status = r.status();
    (status, r.into_string().await.unwrap_or_default())
}

#[tokio::test]
async fn finance_sees_disputes_others_see_them_on_the_payment_and_services_stay_apart() {
    let sandbox = refund_sandbox(2);
    let app = TestApp::new().await;
    // The console's clock reads the sandbox's time, so days left count from now.
    app.clock.set(time::OffsetDateTime::now_utc());
    let parking = connect(&app, &sandbox, "parking", 1).await;
    let planning = connect(&app, &sandbox, "planning", 2).await;
    let ours = sandbox
        .payment_in(&app, "parking", 1, 4_200, "DSP-OURS", Some("success"))
        .await;
    let theirs = sandbox
        .payment_in(&app, "planning", 2, 900, "DSP-THEIRS", Some("success"))
        .await;
    sandbox.raise_dispute(&ours.0, "lost", 10).await;
    sandbox.raise_dispute(&theirs.0, "lost", 10).await;
    backfill(&app, "parking", parking, Stream::Disputes).await;
    backfill(&app, "planning", planning, Stream::Disputes).await;

    let finance = app
        .person("fin@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    let viewer = app
        .person("view@example.gov.uk", Role::Viewer, Some("parking"))
        .await;

    let (status, html) = page(&app, &finance, "/disputes").await;
    assert_eq!(status, Status::Ok);
    assert!(
        html.contains("DSP-OURS") && !html.contains("DSP-THEIRS"),
        "{html}"
    );
    assert!(html.contains("Needs response") && html.contains("£42.00"));
    assert!(html.contains("£20.00") && html.contains("Fraudulent"));
    assert!(
        html.contains("9 days") || html.contains("10 days"),
        "days left"
    );
    // Linked to its payment (Tera writes `/` as `&#x2F;` in attributes).
    assert!(html.contains(&format!("payments&#x2F;{}?service=parking", ours.0)));
    let (_, filtered) = page(&app, &finance, "/disputes?status=won").await;
    assert!(!filtered.contains("DSP-OURS") && filtered.contains("No disputes match"));
    // Bad filters are explained, never a failure.
    let (status, bad) = page(&app, &finance, "/disputes?status=open&from=31/2/2026").await;
    assert_eq!(status, Status::Ok);
    assert!(bad.contains("Choose a status from the list") && bad.contains("Enter a real date"));
    let (status, elsewhere) = page(&app, &finance, "/disputes?service=planning").await;
    assert_eq!(status, Status::Ok);
    assert!(
        elsewhere.contains("Choose a service from the list") && !elsewhere.contains("DSP-THEIRS")
    );

    // Another service's disputed payment: not found.
    let (status, _) = page(
        &app,
        &finance,
        &format!("/payments/{}?service=planning", theirs.0),
    )
    .await;
    assert_eq!(status, Status::NotFound);

    // The dashboard counts those needing a response, and links to them.
    let (_, dash) = page(&app, &finance, "/").await;
    assert!(dash.contains("Disputes needing a response") && dash.contains("1 dispute<"));
    assert!(dash.contains("disputes?status=needs_response"));

    // A viewer has no disputes page and no count, but sees the dispute on the payment.
    let (status, _) = page(&app, &viewer, "/disputes").await;
    assert_eq!(status, Status::Forbidden);
    let (_, dash) = page(&app, &viewer, "/").await;
    assert!(!dash.contains("Disputes needing a response"));
    let (status, payment) = page(
        &app,
        &viewer,
        &format!("/payments/{}?service=parking", ours.0),
    )
    .await;
    assert_eq!(status, Status::Ok);
    assert!(payment.contains("id=\"dispute-heading\"") && payment.contains("Needs response"));
}

/// The store's upsert and `disputes::rules::may_move` are one rule: every pair of statuses,
/// the first stored and the second read after it, ends as the rule says.
#[tokio::test]
async fn the_store_keeps_the_never_backwards_rule_for_every_pair_of_statuses() {
    use paydesk::disputes::rules::may_move;
    use paydesk::platform::dispute_wire::DisputeStatus;
    let app = TestApp::new().await;
    let service_id = app.service("parking").await;
    let dispute = |id: &str, status: DisputeStatus| -> Dispute {
        serde_json::from_value(json!({
            "dispute_id": id, "payment_id": format!("pay-{id}"), "amount": 1000, "fee": 2000,
            "created_date": "2026-11-01T10:00:00.000Z",
            "evidence_due_date": "2026-11-11T10:00:00.000Z",
            "reason": "fraudulent", "status": status.as_str()
        }))
        .unwrap()
    };
    for from in DisputeStatus::ALL {
        for to in DisputeStatus::ALL {
            let id = format!("{}-{}", from.as_str(), to.as_str());
            let mut tx = app.state.db.begin().await.unwrap();
            let now = paydesk::store::to_micros(app.state.clock.now());
            paydesk::disputes::record(&mut tx, service_id, &[dispute(&id, from)], now, now)
                .await
                .unwrap();
            let moved =
                paydesk::disputes::record(&mut tx, service_id, &[dispute(&id, to)], now + 1, now)
                    .await
                    .unwrap();
            tx.commit().await.unwrap();
            let expected = if may_move(from, to) { to } else { from };
            assert_eq!(moved == 1, may_move(from, to), "{id}");
            assert_eq!(
                stored(&app, service_id, &format!("pay-{id}")).await[0].1,
                expected.as_str(),
                "{id}"
            );
        }
    }
}

/// Store a platform dispute directly, as the sync would.
async fn store_dispute(app: &TestApp, service_id: i64, id: &str, status: &str, amount: i64) {
    let d: Dispute = serde_json::from_value(json!({
        "dispute_id": id, "payment_id": format!("pay-{id}"), "amount": amount, "fee": 2000,
        "created_date": "2026-11-15T10:00:00.000Z",
        "evidence_due_date": "2026-11-25T10:00:00.000Z",
        "reason": "fraudulent", "status": status
    }))
    .unwrap();
    let now = paydesk::store::to_micros(app.state.clock.now());
    let mut tx = app.state.db.begin().await.unwrap();
    paydesk::disputes::record(&mut tx, service_id, &[d], now, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn the_dashboard_money_takes_away_disputes_lost_and_links_to_them() {
    let app = TestApp::new().await;
    app.clock.set(time::macros::datetime!(2026-11-20 12:00 UTC));
    let parking = app.service("parking").await;
    let planning = app.service("planning").await;
    store_dispute(&app, parking, "lost-1", "lost", 1_500).await;
    store_dispute(&app, parking, "won-1", "won", 9_900).await;
    store_dispute(&app, parking, "open-1", "needs_response", 7_700).await;
    store_dispute(&app, planning, "lost-2", "lost", 3_300).await;
    let finance = app
        .person("fin@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    let viewer = app
        .person("view@example.gov.uk", Role::Viewer, Some("parking"))
        .await;

    let (_, dash) = page(&app, &finance, "/").await;
    let money = dash.split("id=\"money\"").nth(1).unwrap_or_default();
    assert!(money.contains("Disputes lost"), "{money}");
    assert!(money.contains("£15.00") && money.contains("1 dispute raised"));
    assert!(money.contains("£20.00 in dispute fees"));
    assert!(!money.contains("£33.00") && !money.contains("£99.00"));
    assert!(
        money.contains("-£15.00") || money.contains("−£15.00"),
        "net"
    );
    assert!(money.contains("disputes?status=lost&amp;from=2026-10-22&amp;to=2026-11-20"));
    // The list behind it shows that dispute.
    let (_, list) = page(
        &app,
        &finance,
        "/disputes?status=lost&from=2026-10-22&to=2026-11-20",
    )
    .await;
    assert!(list.contains("£15.00") && !list.contains("£99.00"));

    // A viewer sees the money but no link to a list they may not read.
    let (_, dash) = page(&app, &viewer, "/").await;
    let money = dash.split("id=\"money\"").nth(1).unwrap_or_default();
    assert!(money.contains("Disputes lost") && money.contains("£15.00"));
    assert!(!money.contains("disputes?status=lost"));
}

#[tokio::test]
async fn the_api_lists_a_services_disputes_and_another_services_answer_404() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let planning = app.service("planning").await;
    store_dispute(&app, parking, "ours-lost", "lost", 1_500).await;
    store_dispute(&app, parking, "ours-open", "needs_response", 700).await;
    store_dispute(&app, planning, "theirs", "lost", 3_300).await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let reader = api_token(&app, parking, admin.id, &["disputes:read"]).await;
    let payments_only = api_token(&app, parking, admin.id, &["payments:read"]).await;

    let (status, list) = api_get(&app, &reader, "/api/v1/disputes").await;
    assert_eq!(status, Status::Ok, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dispute_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ours-open", "ours-lost"], "needing a response first");
    assert_eq!(list["total"], 2);
    let (_, lost) = api_get(&app, &reader, "/api/v1/disputes?status=lost").await;
    assert_eq!(lost["data"][0]["amount"], 1_500);
    assert_eq!(lost["data"][0]["fee"], 2_000);
    assert_eq!(
        lost["data"][0]["links"]["payment"],
        "/api/v1/payments/pay-ours-lost"
    );
    let (status, bad) = api_get(&app, &reader, "/api/v1/disputes?status=open").await;
    assert_eq!(status, Status::UnprocessableEntity, "{bad}");

    let (status, one) = api_get(&app, &reader, "/api/v1/disputes/ours-lost").await;
    assert_eq!((status, one["status"].as_str()), (Status::Ok, Some("lost")));
    // Another service's dispute is not found; without the scope, forbidden.
    let (status, _) = api_get(&app, &reader, "/api/v1/disputes/theirs").await;
    assert_eq!(status, Status::NotFound);
    let (status, _) = api_get(&app, &payments_only, "/api/v1/disputes").await;
    assert_eq!(status, Status::Forbidden);
    // A caseworker cannot give a token a scope they do not hold.
    let cw = app
        .person("cw@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let made = paydesk::integrations::api_tokens::create(
        &app.state.db,
        app.state.clock.now(),
        paydesk::audit::Actor::System,
        cw.id,
        None,
        &paydesk::integrations::api_tokens::NewToken {
            service_id: parking,
            name: "CRM of a caseworker".into(),
            scopes: vec!["disputes:read".into()],
            expires_in_days: None,
        },
    )
    .await;
    let usable = match made {
        Ok(Ok(t)) => api_get(&app, &t.secret, "/api/v1/disputes").await.0 == Status::Ok,
        _ => false,
    };
    assert!(!usable, "a caseworker's token reads no disputes");
}
