//! Recurring agreements against a real sandbox platform process, on SQLite and PostgreSQL:
//! they arrive by backfill, each service its own; the platform's cancel answers 204 once and
//! refuses (400) after; a cancelled agreement is read as cancelled by the next pass, and a
//! stale read never moves one back.

use std::time::Duration;

use paydesk::audit::Actor;
use paydesk::identity::permissions::Role;
use paydesk::journeys::sync::{self, BackfillSettings, Pass, Stream};
use paydesk::platform::agreement_wire::{AgreementSearch, AgreementStatus};
use paydesk::platform::client::{Credentials, PaymentPlatform};
use paydesk::services::{self, NewService};
use paydesk::store::journeys as journey_store;
use rocket::http::{ContentType, Status};

use paydesk::agreements::cancel::{self, Asked};
use paydesk::audit::Actor as AuditActor;
use serde_json::json;

use crate::common::sandbox::SandboxProcess;
use crate::common::{api_get, api_post, api_token, form_body, location, refund_app, TestApp};

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
            webhook_secret: None,
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

async fn backfill(app: &TestApp, slug: &str, service_id: i64) {
    backfill_stream(app, slug, service_id, Stream::Agreements, 7).await;
}

async fn backfill_stream(
    app: &TestApp,
    slug: &str,
    service_id: i64,
    stream: Stream,
    page_size: u32,
) {
    let platform = client(app, slug).await;
    let pass = sync::backfill(
        &app.state.db,
        time::OffsetDateTime::now_utc,
        platform.as_ref(),
        service_id,
        stream,
        BackfillSettings {
            overlap: Duration::from_secs(900),
            page_size,
            budget: None,
        },
    )
    .await
    .expect("backfill");
    assert_eq!(pass, Pass::Complete);
}

async fn status(app: &TestApp, service_id: i64, id: &str) -> Option<String> {
    paydesk::agreements::get(&app.state.db, service_id, id)
        .await
        .unwrap()
        .map(|a| a.status)
}

#[tokio::test]
async fn agreements_arrive_by_backfill_cancel_once_and_never_move_back() {
    let sandbox = SandboxProcess::start_with(&["--seed", "600"]);
    let app = TestApp::new().await;
    let parking = connect(&app, &sandbox, "parking", 1).await;
    let planning = connect(&app, &sandbox, "planning", 2).await;
    let platform = client(&app, "parking").await;
    let all = platform
        .search_agreements(&AgreementSearch::default())
        .await
        .unwrap();
    assert!(all.total >= 4, "seeded agreements");
    for s in AgreementStatus::ALL {
        let page = platform
            .search_agreements(&AgreementSearch {
                status: Some(s),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.results.iter().all(|a| a.status == s));
    }

    // Page by page (seven a page), each service its own.
    backfill(&app, "parking", parking).await;
    for a in &all.results {
        assert_eq!(
            status(&app, parking, &a.agreement_id).await.as_deref(),
            Some(a.status.as_str()),
            "{}",
            a.agreement_id
        );
        assert_eq!(status(&app, planning, &a.agreement_id).await, None);
    }
    let state = journey_store::sync_state(&app.state.db, parking, "agreements")
        .await
        .unwrap()
        .unwrap();
    assert!(state.run_started_at.is_none());

    // The platform cancels an active one once, and refuses after.
    let active = all
        .results
        .iter()
        .find(|a| a.status == AgreementStatus::Active)
        .expect("an active agreement");
    platform
        .cancel_agreement(&active.agreement_id)
        .await
        .expect("204");
    assert!(platform
        .cancel_agreement(&active.agreement_id)
        .await
        .is_err());
    // Another account's agreement is not found.
    assert!(client(&app, "planning")
        .await
        .agreement(&active.agreement_id)
        .await
        .is_err());

    backfill(&app, "parking", parking).await;
    assert_eq!(
        status(&app, parking, &active.agreement_id).await.as_deref(),
        Some("cancelled")
    );
    let history: Vec<String> =
        paydesk::agreements::history(&app.state.db, parking, &active.agreement_id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.0)
            .collect();
    assert_eq!(history, ["created", "active", "cancelled"]);

    // A stale read (active) delivered late does not move it back.
    let now = paydesk::store::to_micros(time::OffsetDateTime::now_utc());
    let mut tx = app.state.db.begin().await.unwrap();
    let n = paydesk::agreements::record(&mut tx, parking, std::slice::from_ref(active), now, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        status(&app, parking, &active.agreement_id).await.as_deref(),
        Some("cancelled")
    );
}

async fn run_jobs(app: &TestApp) {
    let runner = app.state.job_runner();
    for _ in 0..40 {
        let pass = runner.run_due().await.unwrap();
        app.clock.advance(time::Duration::seconds(20));
        if pass.claimed == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(60)).await;
            if runner.run_due().await.unwrap().claimed == 0 {
                break;
            }
        }
    }
}

/// Two active agreements of account 1, backfilled into service `parking`.
async fn two_active(app: &TestApp, sandbox: &SandboxProcess) -> (i64, Vec<String>) {
    let parking = connect(app, sandbox, "parking", 1).await;
    backfill(app, "parking", parking).await;
    let page = client(app, "parking")
        .await
        .search_agreements(&AgreementSearch {
            status: Some(AgreementStatus::Active),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.results.len() >= 2, "two active agreements");
    let ids = page
        .results
        .iter()
        .take(2)
        .map(|a| a.agreement_id.clone())
        .collect();
    (parking, ids)
}

async fn ask(app: &TestApp, service_id: i64, id: &str) -> Result<Asked, cancel::Refusal> {
    cancel::ask(
        &app.state.db,
        app.state.clock.now(),
        AuditActor::staff(1, "caseworker@example.gov.uk"),
        None,
        service_id,
        id,
        "The payer asked by phone",
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn twenty_simultaneous_cancels_make_one_platform_call_and_a_timeout_is_matched_first() {
    let sandbox = SandboxProcess::start_with(&["--seed", "600"]);
    let app = refund_app(|_| {}).await;
    let (parking, ids) = two_active(&app, &sandbox).await;

    // Twenty at once: one is written with its job, the others find it on its way.
    let asks = (0..20).map(|_| ask(&app, parking, &ids[0]));
    let answers = futures::future::join_all(asks).await;
    let queued = answers
        .iter()
        .filter(|a| matches!(a, Ok(Asked::Queued(_))))
        .count();
    assert_eq!(queued, 1, "{answers:?}");
    assert!(answers
        .iter()
        .all(|a| matches!(a, Ok(Asked::Queued(_)) | Ok(Asked::AlreadyPending))));
    run_jobs(&app).await;
    // A second platform call would have been refused (400) and recorded so.
    let done = cancel::latest(&app.state.db, parking, &ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.state.as_str(), done.outcome.as_deref()),
        ("sent", Some("Cancelled"))
    );
    assert_eq!(
        status(&app, parking, &ids[0]).await.as_deref(),
        Some("cancelled")
    );
    // Now it is cancelled, asking again is refused in plain words before anything is written.
    let again = ask(&app, parking, &ids[0]).await.unwrap_err();
    assert_eq!(again.message(), "This agreement has already been cancelled");

    // The platform commits the next cancel and never answers: the retry looks first, finds
    // it cancelled, and sends nothing more (a second cancel would be refused, 400).
    sandbox
        .set_faults(
            "account-1",
            json!({"agreement_cancel_commit_then_hang_next": 1}),
        )
        .await;
    assert!(matches!(
        ask(&app, parking, &ids[1]).await,
        Ok(Asked::Queued(_))
    ));
    run_jobs(&app).await;
    let done = cancel::latest(&app.state.db, parking, &ids[1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.state.as_str(), done.outcome.as_deref()),
        ("sent", Some("Cancelled"))
    );
    assert_eq!(
        status(&app, parking, &ids[1]).await.as_deref(),
        Some("cancelled")
    );
}

/// Service `parking` (account 1) with an active agreement of its own, and service
/// `planning` (account 2) with an agreement of its: (parking's id, ours, theirs).
async fn ours_and_theirs(
    app: &TestApp,
    sandbox: &SandboxProcess,
) -> (
    i64,
    paydesk::store::agreements::AgreementRow,
    paydesk::platform::agreement_wire::Agreement,
) {
    let (parking, ids) = two_active(app, sandbox).await;
    let planning = connect(app, sandbox, "planning", 2).await;
    backfill(app, "planning", planning).await;
    let theirs = client(app, "planning")
        .await
        .search_agreements(&AgreementSearch::default())
        .await
        .unwrap()
        .results
        .remove(0);
    let ours = paydesk::agreements::get(&app.state.db, parking, &ids[0])
        .await
        .unwrap()
        .unwrap();
    (parking, ours, theirs)
}

#[tokio::test]
async fn a_caseworker_finds_an_agreement_by_reference_and_cancels_it_with_a_reason() {
    let sandbox = SandboxProcess::start_with(&["--seed", "600", "--accounts", "2"]);
    let app = refund_app(|_| {}).await;
    let (_, ours, theirs) = ours_and_theirs(&app, &sandbox).await;
    let caseworker = app
        .person("case@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let viewer = app
        .person("view@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    app.sign_in(&caseworker).await;

    // Found by its reference, in any case.
    let list = app
        .client
        .get(format!(
            "/agreements?reference={}",
            ours.reference.to_lowercase()
        ))
        .dispatch()
        .await;
    assert_eq!(list.status(), Status::Ok);
    let html = list.into_string().await.unwrap();
    assert!(
        html.contains(&ours.reference) && html.contains("1 agreement,"),
        "{html}"
    );
    let bad = app
        .client
        .get("/agreements?status=open&service=nowhere")
        .dispatch()
        .await;
    assert_eq!(bad.status(), Status::Ok);
    let bad = bad.into_string().await.unwrap();
    assert!(bad.contains("Choose a status from the list") && bad.contains("Choose a service"));

    let href = format!("/agreements/parking/{}", ours.agreement_id);
    let shown = app.client.get(href.clone()).dispatch().await;
    assert_eq!(shown.status(), Status::Ok);
    let shown = shown.into_string().await.unwrap();
    assert!(shown.contains("Cancel this agreement") && shown.contains("Ending "));
    assert!(shown.contains("Payments taken under it"));

    // Another service's agreement is not found, on its page and its cancel.
    for path in [
        format!("/agreements/planning/{}", theirs.agreement_id),
        format!("/agreements/parking/{}", theirs.agreement_id),
        format!("/agreements/planning/{}/cancel", theirs.agreement_id),
    ] {
        let r = app.client.get(path.clone()).dispatch().await;
        assert_eq!(r.status(), Status::NotFound, "{path}");
    }

    // The confirmation page, a missing reason, then the cancel.
    let confirm = app.client.get(format!("{href}/cancel")).dispatch().await;
    assert_eq!(confirm.status(), Status::Ok);
    let token = app.token();
    let r = app
        .client
        .post(format!("{href}/cancel"))
        .header(ContentType::Form)
        .body(form_body(&[("csrf_token", &token), ("reason", "  ")]))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    assert!(r
        .into_string()
        .await
        .unwrap()
        .contains("Enter why the agreement is being cancelled"));
    let r = app
        .client
        .post(format!("{href}/cancel"))
        .header(ContentType::Form)
        .body(form_body(&[
            ("csrf_token", &token),
            ("reason", "The payer asked by phone"),
        ]))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(location(&r), href);
    let pending = app.client.get(href.clone()).dispatch().await;
    assert!(pending
        .into_string()
        .await
        .unwrap()
        .contains("Cancellation requested"));
    run_jobs(&app).await;
    let done = app.client.get(href.clone()).dispatch().await;
    let done = done.into_string().await.unwrap();
    assert!(done.contains("Cancelled") && !done.contains("Cancel this agreement"));
    for action in ["agreement_cancel_requested", "agreement_cancelled"] {
        let rows = paydesk::store::audit::by_action(&app.state.db, action)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{action}");
    }

    // A viewer may not see agreements at all.
    let cookie = app.session_for(&viewer).await;
    let name = paydesk::web::session::session_cookie_name(&app.state.config);
    let r = app
        .client
        .get(href)
        .cookie(rocket::http::Cookie::new(name, cookie.value().to_string()))
        .dispatch()
        .await;
    assert_ne!(r.status(), Status::Ok);
}

#[tokio::test]
async fn the_api_finds_an_agreement_cancels_it_once_and_hides_another_services() {
    let sandbox = SandboxProcess::start_with(&["--seed", "600", "--accounts", "2"]);
    let app = refund_app(|c| c.api_rate_per_minute = 10_000).await;
    let (parking, ours, theirs) = ours_and_theirs(&app, &sandbox).await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let reader = api_token(&app, parking, admin.id, &["agreements:read"]).await;
    let canceller = api_token(&app, parking, admin.id, &["agreements:cancel"]).await;
    let payments_only = api_token(&app, parking, admin.id, &["payments:read"]).await;

    // Found by its reference, in any case; filtered by status and the token's own service.
    let (status, list) = api_get(
        &app,
        &reader,
        &format!(
            "/api/v1/agreements?reference={}",
            ours.reference.to_lowercase()
        ),
    )
    .await;
    assert_eq!(status, Status::Ok, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["data"][0]["agreement_id"], ours.agreement_id.as_str());
    assert_eq!(
        list["data"][0]["links"]["self"],
        format!("/api/v1/agreements/{}", ours.agreement_id)
    );
    let (_, active) = api_get(
        &app,
        &reader,
        "/api/v1/agreements?status=active&service=parking&reference=",
    )
    .await;
    let data = active["data"].as_array().unwrap();
    assert!(data.len() >= 2 && data.iter().all(|a| a["status"] == "active"));
    assert!(data
        .iter()
        .all(|a| a["agreement_id"] != theirs.agreement_id.as_str()));
    for bad in [
        "/api/v1/agreements?status=open",
        "/api/v1/agreements?service=planning",
        "/api/v1/agreements?page=0",
    ] {
        let (status, problem) = api_get(&app, &reader, bad).await;
        assert_eq!(status, Status::UnprocessableEntity, "{bad}: {problem}");
    }

    // One agreement; another service's answers 404 to reads and cancels alike.
    let href = format!("/api/v1/agreements/{}", ours.agreement_id);
    let (status, one) = api_get(&app, &reader, &href).await;
    assert_eq!(status, Status::Ok, "{one}");
    assert_eq!(one["status"], "active");
    assert!(one["cancellation"].is_null());
    let their_href = format!("/api/v1/agreements/{}", theirs.agreement_id);
    let (status, _) = api_get(&app, &reader, &their_href).await;
    assert_eq!(status, Status::NotFound);
    let (status, _, _) = api_post(
        &app,
        &canceller,
        &format!("{their_href}/cancel"),
        None,
        json!({"reason": "The payer phoned"}),
    )
    .await;
    assert_eq!(status, Status::NotFound);
    // Scopes: reading needs agreements:read (or :cancel), cancelling needs agreements:cancel.
    let (status, _) = api_get(&app, &payments_only, "/api/v1/agreements").await;
    assert_eq!(status, Status::Forbidden);
    let (status, _) = api_get(&app, &canceller, &href).await;
    assert_eq!(status, Status::Ok);
    let (status, _, _) = api_post(
        &app,
        &reader,
        &format!("{href}/cancel"),
        None,
        json!({"reason": "The payer phoned"}),
    )
    .await;
    assert_eq!(status, Status::Forbidden);
    // A reason is needed.
    let (status, problem, _) =
        api_post(&app, &canceller, &format!("{href}/cancel"), None, json!({})).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert_eq!(problem["errors"][0]["field"], "reason");

    // Twenty at once, each with a key of its own: one cancellation, one job, one platform
    // call; every ask is answered 202 with the cancel on its way.
    let asks = (0..20).map(|n| {
        let (app, token, path) = (&app, &canceller, format!("{href}/cancel"));
        async move {
            let key = format!("cancel-{n}");
            api_post(
                app,
                token,
                &path,
                Some(&key),
                json!({"reason": "The payer asked by phone"}),
            )
            .await
        }
    });
    let answers = futures::future::join_all(asks).await;
    for (status, body, _) in &answers {
        assert_eq!(*status, Status::Accepted, "{body}");
        assert_eq!(body["cancellation"]["state"], "pending");
    }
    let requested = paydesk::store::audit::by_action(&app.state.db, "agreement_cancel_requested")
        .await
        .unwrap();
    assert_eq!(requested.len(), 1, "one cancellation written");
    // The same key again gets the first answer; with another body it is refused.
    let (status, again, replayed) = api_post(
        &app,
        &canceller,
        &format!("{href}/cancel"),
        Some("cancel-3"),
        json!({"reason": "The payer asked by phone"}),
    )
    .await;
    assert_eq!(
        (status, replayed.as_deref()),
        (Status::Accepted, Some("true"))
    );
    assert_eq!(again["agreement_id"], ours.agreement_id.as_str());
    let (status, _, _) = api_post(
        &app,
        &canceller,
        &format!("{href}/cancel"),
        Some("cancel-3"),
        json!({"reason": "Something else"}),
    )
    .await;
    assert_eq!(status, Status::UnprocessableEntity);

    run_jobs(&app).await;
    // A second platform call would have been refused (400) and recorded so.
    let (_, done) = api_get(&app, &reader, &href).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(done["cancellation"]["state"], "sent");
    assert_eq!(done["cancellation"]["outcome"], "Cancelled");
    for action in ["agreement_cancel_requested", "agreement_cancelled"] {
        let rows = paydesk::store::audit::by_action(&app.state.db, action)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{action}");
    }

    // Now it is cancelled, a new ask is refused in plain words, and nothing is written.
    let (status, problem, _) = api_post(
        &app,
        &canceller,
        &format!("{href}/cancel"),
        Some("cancel-late"),
        json!({"reason": "The payer asked again"}),
    )
    .await;
    assert_eq!(status, Status::Conflict, "{problem}");
    assert_eq!(
        problem["detail"],
        "This agreement has already been cancelled"
    );
    let requested = paydesk::store::audit::by_action(&app.state.db, "agreement_cancel_requested")
        .await
        .unwrap();
    assert_eq!(requested.len(), 1);
}

/// A page's HTML, with Tera's `&#x2F;` written back as `/`.
async fn page(app: &TestApp, path: &str) -> String {
    let r = app.client.get(path.to_string()).dispatch().await;
    assert_eq!(r.status(), Status::Ok, "{path}");
    r.into_string().await.unwrap().replace("&#x2F;", "/")
}

#[tokio::test]
async fn the_payments_search_finds_the_payments_of_an_agreement_and_each_links_to_it() {
    let sandbox = SandboxProcess::start_with(&["--seed", "600"]);
    let app = TestApp::new().await;
    let parking = connect(&app, &sandbox, "parking", 1).await;
    backfill_stream(&app, "parking", parking, Stream::Payments, 500).await;
    backfill(&app, "parking", parking).await;
    // An agreement with payments taken under it.
    let (agreements, _) = paydesk::agreements::list(
        &app.state.db,
        &paydesk::agreements::ListQuery {
            services: vec![parking],
            page: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut chosen = None;
    for a in agreements {
        let taken = paydesk::agreements::payments(&app.state.db, parking, &a.agreement_id)
            .await
            .unwrap();
        if taken.iter().any(|p| p.reference.is_some()) {
            chosen = Some((a, taken));
            break;
        }
    }
    let (agreement, taken) = chosen.expect("an agreement with payments");
    let caseworker = app
        .person("case@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    app.sign_in(&caseworker).await;

    // The search by agreement finds exactly its payments, and its summary line names it.
    let html = page(
        &app,
        &format!("/payments?agreement={}", agreement.agreement_id),
    )
    .await;
    let count = if taken.len() == 1 {
        "1 payment<".to_string()
    } else {
        format!("{} payments<", taken.len())
    };
    assert!(html.contains(&count), "{count}: {html}");
    for p in &taken {
        assert!(html.contains(p.reference.as_deref().unwrap()), "{p:?}");
    }
    assert!(html.contains("Showing payments taken under recurring agreement"));
    let agreement_href = format!("/agreements/parking/{}", agreement.agreement_id);
    assert!(html.contains(&format!(
        "<a class=\"govuk-link\" href=\"{agreement_href}\">{}</a>",
        agreement.reference
    )));
    // The filter keeps its value in the form, and combines with the others (walked).
    assert!(html.contains(&format!("value=\"{}\"", agreement.agreement_id)));
    let succeeded = taken
        .iter()
        .filter(|p| p.status.as_deref() == Some("success"))
        .count();
    let html = page(
        &app,
        &format!(
            "/payments?agreement={}&status=success&sort=oldest",
            agreement.agreement_id
        ),
    )
    .await;
    let count = match succeeded {
        1 => "1 payment<".to_string(),
        n => format!("{n} payments<"),
    };
    assert!(html.contains(&count), "{count}");
    // An agreement paydesk does not know finds nothing.
    let html = page(&app, "/payments?agreement=no-such-agreement").await;
    assert!(html.contains("0 payments<") && html.contains("no-such-agreement"));

    // Each payment's page links to its agreement, and the agreement's page to the search.
    let p = &taken[0];
    let html = page(&app, &format!("/payments/{}?service=parking", p.payment_id)).await;
    assert!(
        html.contains(&format!("href=\"{agreement_href}\"")),
        "{html}"
    );
    let html = page(&app, &agreement_href).await;
    assert!(html.contains(&format!(
        "/payments?service=parking&amp;agreement={}",
        agreement.agreement_id
    )));
}
