//! Refunds happen once or not at all, against a real sandbox platform process: simultaneous
//! submits and approvals, a double-submitted form, a refund that commits and then times out,
//! someone else refunding first, amount attacks refused before any platform call, and the
//! follow-up to success with the payer's email queued.

use std::sync::Arc;

use paydesk::identity::permissions::Role;
use paydesk::jobs::{JobHandler, JobRun};
use paydesk::platform::client::Credentials;
use paydesk::refunds::rules::{ApprovalRefusal, State};
use paydesk::refunds::{self, Ask, Asked, RefundSettings, Staff};
use paydesk::store::refunds as refund_store;
use serde_json::json;

use crate::common::sandbox::SandboxProcess;
use crate::common::{refund_app, refund_sandbox, set_refund_settings, TestApp};

struct World {
    app: TestApp,
    sandbox: SandboxProcess,
    service_id: i64,
    caseworker: Staff,
    finance: Staff,
}

/// A sandbox with no seeded payments, a service on it, and a caseworker and a finance person.
async fn world(threshold: Option<i64>) -> World {
    let sandbox = refund_sandbox(1);
    let app = refund_app(|_| {}).await;
    let service_id = sandbox.connect(&app, "parking", 1).await;
    set_refund_settings(
        &app,
        service_id,
        &RefundSettings {
            refund_approval_threshold: threshold,
            refund_email_enabled: true,
            ..Default::default()
        },
    )
    .await;
    let cw = app
        .person("cw@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let fin = app
        .person("fin@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    World {
        app,
        sandbox,
        service_id,
        caseworker: Staff {
            id: cw.id,
            email: cw.email,
            name: "Casey Worker".into(),
            ip: None,
        },
        finance: Staff {
            id: fin.id,
            email: fin.email,
            name: "Fin Ance".into(),
            ip: None,
        },
    }
}

impl World {
    /// A successful payment of `amount` on the platform, known to paydesk: (payment id,
    /// journey id).
    async fn paid(&self, amount: i64, reference: &str) -> (String, i64) {
        self.sandbox
            .payment_in(&self.app, "parking", 1, amount, reference, Some("success"))
            .await
    }

    fn ask(&self, payment: &(String, i64), amount: &str, key: &str) -> Ask {
        Ask {
            service_id: self.service_id,
            journey_id: payment.1,
            payment_id: payment.0.clone(),
            how_much: refunds::HowMuch::from_form("partial", amount),
            reason: "duplicate".into(),
            comment: String::new(),
            case_reference: "CASE-1".into(),
            form_key: key.into(),
        }
    }

    async fn request(&self, ask: &Ask) -> Asked {
        refunds::request(
            &self.app.state.db,
            self.app.state.clock.now(),
            &self.caseworker,
            ask,
        )
        .await
        .unwrap()
    }

    /// Refunds the platform holds for this payment.
    async fn platform_refunds(&self, payment_id: &str) -> usize {
        let service = paydesk::services::by_id(&self.app.state.db, self.service_id)
            .await
            .unwrap()
            .unwrap();
        let client = self
            .app
            .state
            .platforms
            .client(&self.app.state.config, &service)
            .unwrap();
        client.payment_refunds(payment_id).await.unwrap().len()
    }

    async fn state_of(&self, id: i64) -> State {
        let row = refund_store::by_id(&self.app.state.db, id)
            .await
            .unwrap()
            .unwrap();
        State::parse(&row.state).unwrap()
    }

    /// Run due jobs until none is left (advancing paydesk's clock past follow-up delays).
    async fn run_jobs(&self) {
        let runner = self.app.state.job_runner();
        for _ in 0..40 {
            let pass = runner.run_due().await.unwrap();
            self.app.clock.advance(time::Duration::seconds(4));
            if pass.claimed == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(60)).await;
                if runner.run_due().await.unwrap().claimed == 0 {
                    break;
                }
            }
        }
    }
}

fn made(a: Asked) -> (i64, State) {
    match a {
        Asked::Made { id, state } => (id, state),
        Asked::Refused(p) => panic!("refused: {p:?}"),
    }
}

#[tokio::test]
async fn twenty_simultaneous_submits_make_one_platform_refund() {
    let w = world(None).await;
    let payment = w.paid(5000, "TWENTY-SUBMITS").await;
    let (id, state) = made(w.request(&w.ask(&payment, "12.00", "form-1")).await);
    assert_eq!(state, State::Approved, "below the threshold: no approval");
    // 20 workers run the same submit job at once.
    let ctx = Arc::new(w.app.state.job_context());
    let mut tasks = Vec::new();
    for n in 0..20 {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            paydesk::refunds::submit::SubmitJob
                .run(
                    &ctx,
                    &JobRun {
                        id: n,
                        attempt: 1,
                        payload: json!({"request": id}),
                    },
                )
                .await
        }));
    }
    for t in tasks {
        let _ = t.await.unwrap();
    }
    assert_eq!(
        w.platform_refunds(&payment.0).await,
        1,
        "exactly one refund"
    );
    assert_eq!(w.state_of(id).await, State::Submitted);
    // And the queued job, run as well, sends nothing more; the follow-up sees it succeed.
    w.run_jobs().await;
    assert_eq!(w.platform_refunds(&payment.0).await, 1);
    assert_eq!(w.state_of(id).await, State::Succeeded);
    // The payer's email is queued (the mail tests show delivery).
    let mails: Vec<_> = paydesk::store::jobs::list(&w.app.state.db, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == "mail_send")
        .collect();
    assert_eq!(mails.len(), 1, "one email to the payer");
}

#[tokio::test]
async fn twenty_simultaneous_approvals_make_one_platform_refund() {
    let w = world(Some(1000)).await;
    let payment = w.paid(9000, "TWENTY-APPROVALS").await;
    let (id, state) = made(w.request(&w.ask(&payment, "50.00", "form-2")).await);
    assert_eq!(state, State::AwaitingApproval);
    // The requester may not approve their own request.
    let own = refunds::approve(
        &w.app.state.db,
        w.app.state.clock.now(),
        &w.caseworker,
        id,
        5000,
        None,
    )
    .await
    .unwrap();
    assert_eq!(own, Err(ApprovalRefusal::OwnRequest));
    // An approval is bound to the amount the approver saw.
    let wrong = refunds::approve(
        &w.app.state.db,
        w.app.state.clock.now(),
        &w.finance,
        id,
        4999,
        None,
    )
    .await
    .unwrap();
    assert_eq!(wrong, Err(ApprovalRefusal::AmountChanged));
    let db = w.app.state.db.clone();
    let now = w.app.state.clock.now();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let db = db.clone();
        let who = w.finance.clone();
        tasks.push(tokio::spawn(async move {
            refunds::approve(&db, now, &who, id, 5000, Some("ok"))
                .await
                .unwrap()
        }));
    }
    let mut approved = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => approved += 1,
            Err(r) => assert_eq!(r, ApprovalRefusal::NotAwaiting),
        }
    }
    assert_eq!(approved, 1, "one approval wins");
    w.run_jobs().await;
    assert_eq!(
        w.platform_refunds(&payment.0).await,
        1,
        "exactly one refund"
    );
    assert_eq!(w.state_of(id).await, State::Succeeded);
}

#[tokio::test]
async fn a_form_submitted_twice_makes_one_request() {
    let w = world(None).await;
    let payment = w.paid(3000, "DOUBLE-CLICK").await;
    let ask = w.ask(&payment, "10.00", "same-form");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let db = w.app.state.db.clone();
        let now = w.app.state.clock.now();
        let who = w.caseworker.clone();
        let ask = ask.clone();
        tasks.push(tokio::spawn(async move {
            refunds::request(&db, now, &who, &ask).await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(made(t.await.unwrap()).0);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every submit of the form is the same request");
    // The back button and a resubmit: still the same request.
    assert_eq!(made(w.request(&ask).await).0, ids[0]);
    w.run_jobs().await;
    assert_eq!(w.platform_refunds(&payment.0).await, 1);
    // Asking for more than is left (with a new form) is refused before any platform call.
    let more = w.request(&w.ask(&payment, "20.01", "another-form")).await;
    assert!(
        matches!(more, Asked::Refused(ref p) if p[0].0 == "amount"),
        "{more:?}"
    );
}

#[tokio::test]
async fn a_refund_that_commits_and_then_times_out_is_not_sent_again() {
    let w = world(None).await;
    let payment = w.paid(4000, "HANGS").await;
    w.sandbox
        .set_faults("account-1", json!({"refund_commit_then_hang_next": 1}))
        .await;
    let (id, _) = made(w.request(&w.ask(&payment, "15.00", "form-3")).await);
    w.run_jobs().await;
    assert_eq!(
        w.platform_refunds(&payment.0).await,
        1,
        "the refund made before the timeout is found, not repeated"
    );
    assert_eq!(w.state_of(id).await, State::Succeeded);
}

#[tokio::test]
async fn someone_else_refunding_first_fails_clearly_and_sends_nothing() {
    let w = world(None).await;
    let payment = w.paid(2000, "BEATEN").await;
    let (id, _) = made(w.request(&w.ask(&payment, "20.00", "form-4")).await);
    // Another console refunds the whole payment before paydesk's job runs.
    let service = paydesk::services::by_id(&w.app.state.db, w.service_id)
        .await
        .unwrap()
        .unwrap();
    let client = w
        .app
        .state
        .platforms
        .client(&w.app.state.config, &service)
        .unwrap();
    client
        .create_refund(
            &payment.0,
            &paydesk::platform::types::RefundRequest {
                amount: 2000,
                refund_amount_available: Some(2000),
            },
        )
        .await
        .unwrap();
    w.run_jobs().await;
    assert_eq!(
        w.platform_refunds(&payment.0).await,
        1,
        "only the other one"
    );
    assert_eq!(w.state_of(id).await, State::Failed);
    let row = refund_store::by_id(&w.app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.failure.unwrap().contains("not enough left to refund"),
        "staff are told why"
    );
    let j = paydesk::store::journeys::journey_by_id(&w.app.state.db, payment.1)
        .await
        .unwrap()
        .unwrap();
    assert!(j.needs_attention, "a failed refund needs attention");
}

#[tokio::test]
async fn amount_attacks_are_refused_before_any_platform_call() {
    let w = world(None).await;
    let payment = w.paid(1000, "ATTACKS").await;
    for (n, bad) in [
        "0",
        "-1",
        "1.5p",
        "1e3",
        "99999999999",
        "10.01",
        "1,000.00",
        "",
        "12.345",
        "NaN",
    ]
    .into_iter()
    .enumerate()
    {
        let asked = w
            .request(&w.ask(&payment, bad, &format!("attack-{n}")))
            .await;
        assert!(
            matches!(asked, Asked::Refused(ref p) if p[0].0 == "amount"),
            "{bad:?}: {asked:?}"
        );
    }
    // "£5" is an amount, though.
    let (id, _) = made(w.request(&w.ask(&payment, "£5", "pounds-sign")).await);
    let row = refund_store::by_id(&w.app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.amount, 500);
    assert_eq!(w.platform_refunds(&payment.0).await, 0, "nothing sent yet");
}

#[tokio::test]
async fn undecided_requests_expire_and_cannot_be_approved_after() {
    let w = world(Some(100)).await;
    let payment = w.paid(5000, "EXPIRES").await;
    let (id, state) = made(w.request(&w.ask(&payment, "10.00", "form-x")).await);
    assert_eq!(state, State::AwaitingApproval);
    w.app.clock.advance(time::Duration::hours(25));
    // Not yet swept: the approval itself sees the time.
    let late = refunds::approve(
        &w.app.state.db,
        w.app.state.clock.now(),
        &w.finance,
        id,
        1000,
        None,
    )
    .await
    .unwrap();
    assert_eq!(late, Err(ApprovalRefusal::Expired));
    let swept = refunds::expire_due(&w.app.state.db, w.app.state.clock.now())
        .await
        .unwrap();
    assert_eq!(swept, vec![id]);
    assert_eq!(w.state_of(id).await, State::Expired);
    let again = refunds::approve(
        &w.app.state.db,
        w.app.state.clock.now(),
        &w.finance,
        id,
        1000,
        None,
    )
    .await
    .unwrap();
    assert_eq!(again, Err(ApprovalRefusal::Expired));
    assert_eq!(w.platform_refunds(&payment.0).await, 0);
    let audit = paydesk::store::audit::by_action(&w.app.state.db, "refund_expired")
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
}

#[tokio::test]
async fn a_payment_still_in_progress_can_be_cancelled_once() {
    use paydesk::journeys::cancel::{cancel, Cancelled};
    let w = world(None).await;
    let created = w
        .sandbox
        .create_payment(&SandboxProcess::api_key(1), 700, "STUCK")
        .await;
    let payment_id = created["payment_id"].as_str().unwrap().to_string();
    let service = paydesk::services::by_id(&w.app.state.db, w.service_id)
        .await
        .unwrap()
        .unwrap();
    let client = w
        .app
        .state
        .platforms
        .client(&w.app.state.config, &service)
        .unwrap();
    let now = w.app.state.clock.now();
    let done = cancel(
        &w.app.state.db,
        now,
        client.as_ref(),
        &w.caseworker,
        w.service_id,
        &payment_id,
    )
    .await
    .unwrap();
    assert_eq!(
        done,
        Cancelled::Done {
            status: "cancelled".into()
        }
    );
    // Again: it has finished, so nothing is sent.
    let again = cancel(
        &w.app.state.db,
        now,
        client.as_ref(),
        &w.caseworker,
        w.service_id,
        &payment_id,
    )
    .await
    .unwrap();
    assert_eq!(
        again,
        Cancelled::AlreadyFinished {
            status: "cancelled".into()
        }
    );
    let audit = paydesk::store::audit::by_action(&w.app.state.db, "payment_cancelled")
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, "success");
    // A paid payment cannot be cancelled.
    let paid = w.paid(800, "PAID").await;
    let refused = cancel(
        &w.app.state.db,
        now,
        client.as_ref(),
        &w.caseworker,
        w.service_id,
        &paid.0,
    )
    .await
    .unwrap();
    assert_eq!(
        refused,
        Cancelled::AlreadyFinished {
            status: "success".into()
        }
    );
}

/// Two `paydesk serve` processes sharing one database both work the job queue: every
/// approved refund reaches the platform exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_paydesk_processes_sharing_a_database_refund_each_request_once() {
    use crate::common::{eventually, paydesk_ok, Server, TestDb};
    let sandbox = refund_sandbox(1);
    let db = TestDb::new().await;
    // The service is added the way an operator would, so the two processes (which share the
    // command's secret key) can open its credentials.
    paydesk_ok(
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
            &SandboxProcess::api_key(1),
        ],
    );
    let env = [
        ("PAYDESK_JOB_POLL_MS", "100"),
        ("PAYDESK_JOB_CONCURRENCY", "1"),
    ];
    // Set-up from this process first: staff, paid payments and approved requests, all queued
    // before either console starts, so that both find work waiting however their polls fall.
    let state = paydesk::AppState::open(
        paydesk::config::Config::for_tests(db.url()),
        paydesk::clock::system(),
    )
    .await
    .unwrap();
    let service = paydesk::services::by_slug(&state.db, "parking")
        .await
        .unwrap()
        .unwrap();
    let who = paydesk::identity::accounts::add_staff(
        &state,
        paydesk::audit::Actor::System,
        "cw@example.gov.uk",
        "Casey",
        Role::Caseworker,
        Some("parking"),
    )
    .await
    .unwrap()
    .unwrap();
    let who = Staff {
        id: who.staff_id,
        email: "cw@example.gov.uk".into(),
        name: "Casey".into(),
        ip: None,
    };
    let client = paydesk::platform::client::GovUkPay::new(
        &paydesk::platform::client::Account {
            base_url: sandbox.base_url.clone(),
            credentials: Credentials::ApiKey {
                api_key: SandboxProcess::api_key(1),
            },
        },
        Default::default(),
    )
    .unwrap();
    let mut ids = Vec::new();
    for n in 0..12 {
        let created = sandbox
            .create_payment(&SandboxProcess::api_key(1), 3000, &format!("TWO-{n}"))
            .await;
        let payment_id = created["payment_id"].as_str().unwrap().to_string();
        sandbox.advance_payment(&payment_id, "success", None).await;
        let done = paydesk::journeys::sync::refresh_with(
            &state.db,
            state.clock.now(),
            &client,
            service.id,
            &payment_id,
        )
        .await
        .unwrap();
        let asked = refunds::request(
            &state.db,
            state.clock.now(),
            &who,
            &Ask {
                service_id: service.id,
                journey_id: done.journey_id,
                payment_id,
                how_much: Ok(refunds::HowMuch::Full),
                reason: "duplicate".into(),
                form_key: format!("two-{n}"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        ids.push(made(asked).0);
    }
    // Every platform call now takes 150 ms (a refund job makes at least two), so one console
    // alone cannot drain the queue before the other is up.
    sandbox
        .set_faults("account-1", json!({"latency_ms": 150}))
        .await;
    let first = Server::start(db.url(), &env);
    let second = Server::start(db.url(), &env);
    let all_done = eventually(std::time::Duration::from_secs(60), || {
        let db = state.db.clone();
        let ids = ids.clone();
        async move {
            for id in ids {
                let row = refund_store::by_id(&db, id).await.ok()??;
                if row.state != "succeeded" {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    assert!(all_done.is_some(), "every refund succeeded within a minute");
    let totals = sandbox.totals("account-1").await;
    assert_eq!(
        totals["refunds"].as_i64(),
        Some(12),
        "exactly one refund each"
    );
    let workers: Vec<String> = paydesk::on_db!(&state.db, pool => sqlx::query_scalar(
        "SELECT DISTINCT a.worker FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE j.kind = 'refund_submit'")
        .fetch_all(pool).await.unwrap());
    assert!(
        workers.len() >= 2,
        "both processes submitted refunds: {workers:?}"
    );
    drop(first);
    drop(second);
}

#[tokio::test]
async fn a_refund_webhook_has_the_submitted_refunds_looked_at_at_once() {
    let w = world(None).await;
    let payment = w.paid(2500, "WEBHOOK-NUDGE").await;
    let (id, _) = made(w.request(&w.ask(&payment, "5.00", "form-w")).await);
    let ctx = w.app.state.job_context();
    paydesk::refunds::submit::SubmitJob
        .run(
            &ctx,
            &JobRun {
                id: 0,
                attempt: 1,
                payload: json!({"request": id}),
            },
        )
        .await
        .unwrap();
    assert_eq!(w.state_of(id).await, State::Submitted);
    let follows = |db: paydesk::store::Db| async move {
        paydesk::store::jobs::list(&db, None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.kind == "refund_follow")
            .count()
    };
    assert_eq!(
        follows(w.app.state.db.clone()).await,
        1,
        "the follow-up the submission queued"
    );
    // The platform's card_payment_refunded webhook arrives and its refresh job runs.
    let now = w.app.state.clock.now();
    let mut tx = w.app.state.db.begin().await.unwrap();
    paydesk::store::journeys::insert_webhook(
        &mut tx,
        w.service_id,
        "msg-refunded-1",
        "card_payment_refunded",
        &payment.0,
        None,
        paydesk::store::to_micros(now),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    paydesk::journeys::sync::RefreshJob
        .run(
            &ctx,
            &JobRun {
                id: 0,
                attempt: 1,
                payload: json!({"service_id": w.service_id, "payment_id": payment.0, "message_id": "msg-refunded-1"}),
            },
        )
        .await
        .unwrap();
    // Journeys hands the news to refunds as a job of its own kind; refunds' handler queues
    // the follow-up.
    let seen: Vec<_> = paydesk::store::jobs::list(&w.app.state.db, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == "refund_webhook_seen")
        .collect();
    assert_eq!(seen.len(), 1, "the refresh passed the refund webhook on");
    paydesk::refunds::submit::RefundWebhookSeen
        .run(
            &ctx,
            &JobRun {
                id: 0,
                attempt: 1,
                payload: serde_json::from_str(&seen[0].payload).unwrap(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        follows(w.app.state.db.clone()).await,
        2,
        "one more, due now"
    );
    w.run_jobs().await;
    assert_eq!(w.state_of(id).await, State::Succeeded);
    assert_eq!(w.platform_refunds(&payment.0).await, 1);
}

#[tokio::test]
async fn a_platform_error_or_rate_limit_is_retried_and_still_refunds_once() {
    let w = world(None).await;
    let payment = w.paid(3000, "RETRIED").await;
    // The platform answers the next request with a 500 and then a 429: the refund job tries
    // again later, with the same guard, and one refund is made.
    w.sandbox
        .set_faults(
            "account-1",
            json!({"error_next": 1, "rate_limit_next": 1, "retry_after_secs": 1}),
        )
        .await;
    let (id, _) = made(w.request(&w.ask(&payment, "7.00", "form-r")).await);
    w.run_jobs().await;
    let jobs: Vec<(String, String, i32)> = paydesk::store::jobs::list(&w.app.state.db, None, 20)
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.kind, j.state, j.attempts))
        .collect();
    assert_eq!(w.state_of(id).await, State::Succeeded, "{jobs:?}");
    assert_eq!(w.platform_refunds(&payment.0).await, 1);
    let attempts: i64 = paydesk::on_db!(&w.app.state.db, pool => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE j.kind = 'refund_submit'")
        .fetch_one(pool).await.unwrap());
    assert!(
        attempts >= 2,
        "the submit was tried again ({attempts} attempts)"
    );
}
