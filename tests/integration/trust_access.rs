//! Access that outlives the person (issue 16, items 1–4), tested the way a leaver would act:
//! remove or lower the role, then try. Anything a person set up — an API token, a background
//! export, an event endpoint, a refund request, an invitation — acts with that person's
//! permissions now, and a service admin's whole-account actions stop at their services.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use paydesk::audit::Actor;
use paydesk::clock::Clock;
use paydesk::identity::accounts::{self, PasswordOutcome};
use paydesk::identity::permissions::Role;
use paydesk::integrations::api_tokens::{self, NewToken};
use paydesk::integrations::events::{self, EndpointInput, EventType};
use paydesk::store::{events as event_store, staff as staff_store, staff_admin as admin_store};
use rocket::http::{ContentType, Header, Status};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

// ---- helpers ----------------------------------------------------------------------------

/// Give `who` `role` in `service_id` (None: take their role there away), as an
/// administrator's change would leave the tables.
async fn set_role(app: &TestApp, who: i64, service_id: i64, role: Option<&str>) {
    let mut tx = app.state.db.begin().await.unwrap();
    match role {
        Some(r) => {
            admin_store::put_grant(&mut tx, who, Some(service_id), r, "test", 0)
                .await
                .unwrap();
        }
        None => {
            admin_store::delete_grant(&mut tx, who, Some(service_id))
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

async fn actions(app: &TestApp, action: &str) -> Vec<paydesk::store::audit::AuditRow> {
    paydesk::store::audit::by_action(&app.state.db, action)
        .await
        .unwrap()
}

/// Sign out (if signed in), then in as `person`.
async fn switch_to(app: &TestApp, person: &Person) {
    if app.session_cookie().is_some() {
        let token = app.token();
        let r = app.post_form("/logout", &[("csrf_token", &token)]).await;
        assert_eq!(r.status(), Status::SeeOther, "signed out");
    }
    app.sign_in(person).await;
}

async fn page(app: &TestApp, path: &str) -> (Status, String) {
    let r = app.client.get(path.to_string()).dispatch().await;
    let status = r.status();
    (status, r.into_string().await.unwrap_or_default())
}

async fn post(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> (Status, String, String) {
    let token = app.token();
    let mut all: Vec<(&str, &str)> = vec![("csrf_token", &token)];
    all.extend_from_slice(fields);
    let r = app.post_form(path, &all).await;
    let status = r.status();
    let to = location(&r);
    (status, to, r.into_string().await.unwrap_or_default())
}

/// An API call with a bearer token: (status, problem or body).
async fn api(app: &TestApp, path: &str, token: &str, body: Option<&str>) -> (u16, Value) {
    let mut request = match body {
        Some(b) => app
            .client
            .post(path.to_string())
            .header(ContentType::JSON)
            .body(b),
        None => app.client.get(path.to_string()),
    };
    request = request.header(Header::new("Authorization", format!("Bearer {token}")));
    let r = request.dispatch().await;
    let status = r.status().code;
    let text = r.into_string().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn run_jobs(app: &TestApp) {
    for _ in 0..20 {
        let pass = app
            .state
            .job_runner()
            .with_jitter(|| 0.0)
            .run_due()
            .await
            .unwrap();
        if pass.claimed == 0 {
            break;
        }
    }
}

// ---- 1. API tokens ------------------------------------------------------------------------

#[tokio::test]
async fn tokens_act_with_their_makers_permissions_now_and_can_be_handed_over() {
    let sandbox = refund_sandbox(1);
    let app = refund_app(|_| {}).await;
    let parking = sandbox.connect(&app, "parking", 1).await;
    let maker = app
        .person("maker@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let other = app
        .person("other@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let viewer = app
        .person("viewer@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    let (payment, _) = sandbox
        .payment_in(&app, "parking", 1, 5000, "REF-TOKEN", Some("success"))
        .await;
    let secret = api_tokens::create(
        &app.state.db,
        app.clock.now(),
        Actor::System,
        maker.id,
        None,
        &NewToken {
            service_id: parking,
            name: "Case system".into(),
            scopes: vec!["payments:read".into(), "refunds:request".into()],
            expires_in_days: None,
        },
    )
    .await
    .unwrap()
    .unwrap()
    .secret;
    let token_id = paydesk::store::api_tokens::by_hash(&app.state.db, &api_tokens::hash(&secret))
        .await
        .unwrap()
        .unwrap()
        .id;
    let read = format!("/api/v1/payments/{payment}");
    let refunds = format!("/api/v1/payments/{payment}/refunds");
    let ask = r#"{"amount": 100, "reason": "duplicate"}"#;

    let (status, body) = api(&app, &read, &secret, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(&app, &refunds, &secret, Some(ask)).await;
    assert_eq!(status, 201, "{body}");

    // Demoted to viewer: it still reads (a viewer reads), but asks for nothing.
    set_role(&app, maker.id, parking, Some("viewer")).await;
    let (status, body) = api(&app, &read, &secret, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(&app, &refunds, &secret, Some(ask)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["status"], 403);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no longer has refunds:request"),
        "{body}"
    );
    let asked = refund_store::open_for_journey_count(&app, &payment).await;
    assert_eq!(asked, 1, "no second request was made");

    // The tokens page says so.
    app.sign_in(&other).await;
    let (status, html) = page(&app, "/admin/tokens").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Limited"), "{html}");
    assert!(
        html.contains("maker no longer has refunds:request in Service parking"),
        "{html}"
    );

    // Removed from the service: nothing at all.
    set_role(&app, maker.id, parking, None).await;
    let (status, body) = api(&app, &read, &secret, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no longer works in this service"),
        "{body}"
    );
    let refused = actions(&app, "authn_token_fail").await;
    assert!(
        refused
            .iter()
            .any(|e| e.details.contains("maker removed from service")),
        "{refused:?}"
    );
    let (_, html) = page(&app, &format!("/admin/tokens/{token_id}")).await;
    assert!(html.contains("Inactive"), "{html}");
    assert!(
        html.contains("maker removed from Service parking"),
        "{html}"
    );
    // Only people who hold what the token needs are offered.
    assert!(html.contains("other@example.gov.uk"), "{html}");
    assert!(!html.contains("viewer@example.gov.uk"), "{html}");

    // Handing it to someone without refunds:request is refused, whatever the form says.
    let hand = format!("/admin/tokens/{token_id}/hand-over");
    let (status, _, html) = post(&app, &hand, &[("to", &viewer.id.to_string())]).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(html.contains("does not hold refunds:request"), "{html}");
    // To someone who does: the second factor again, then audited.
    app.clock.advance(time::Duration::minutes(6));
    let (status, wait, _) = post(&app, &hand, &[("to", &other.id.to_string())]).await;
    assert_eq!(status, Status::SeeOther);
    let html = app
        .client
        .get(wait)
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("Confirm it"), "step-up first: {html}");
    app.next_code_window();
    let code = app.code_now(&other.secret);
    let (status, to, _) = post(
        &app,
        &hand,
        &[
            ("to", &other.id.to_string()),
            ("stepping_up", "1"),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(status, Status::SeeOther);
    assert_eq!(to, "/admin/tokens?notice=handed-over");
    let handed = actions(&app, "api_token_handed_over").await;
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].actor_id, other.id.to_string());
    assert!(handed[0]
        .details
        .contains(&format!("\"from\":{}", maker.id)));

    // It works again, for its new owner.
    let (status, body) = api(
        &app,
        &refunds,
        &secret,
        Some(r#"{"amount": 200, "reason": "duplicate"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let row = refund_store::by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.requested_by, other.id);
}

/// The refund store, and a count of a payment's refund requests.
mod refund_store {
    pub use paydesk::store::refunds::*;

    /// How many refund requests a payment has.
    pub async fn open_for_journey_count(app: &crate::common::TestApp, payment: &str) -> usize {
        paydesk::on_db!(&app.state.db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM refund_requests WHERE payment_id = $1")
            .bind(payment).fetch_one(pool).await.unwrap()) as usize
    }
}

// ---- 2. background exports ------------------------------------------------------------------

#[tokio::test]
async fn a_leavers_background_exports_are_neither_downloaded_nor_written() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().to_path_buf();
    let app = TestApp::with_config(|c| {
        c.export_background_rows = 5;
        c.export_dir = dir.clone();
    })
    .await;
    let parking = app.service("parking").await;
    let rows: Vec<_> = (0..12i64)
        .map(|i| {
            journey_record(
                &format!("pay-leaver-{i}"),
                &format!("LEAVER-{i:02}"),
                time::macros::datetime!(2026-10-02 09:00 UTC) + time::Duration::minutes(i),
            )
        })
        .collect();
    store_journeys(&app, parking, &rows).await;
    let finance = app
        .person("finance@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    // They also export for libraries, so the export pages stay open to them throughout.
    let libraries = app.service("libraries").await;
    set_role(&app, finance.id, libraries, Some("finance")).await;
    app.sign_in(&finance).await;
    let fields = [
        ("services", "parking"),
        ("from", "2026-10-01"),
        ("to", "2026-10-31"),
        ("include", "payments"),
    ];
    let (status, to, _) = post(&app, "/exports", &fields).await;
    assert_eq!(status, Status::SeeOther);
    assert!(to.starts_with("/exports/1?started=big"), "{to}");
    run_jobs(&app).await;
    let (status, csv) = page(&app, "/exports/1/download").await;
    assert_eq!(status, Status::Ok);
    assert!(csv.contains("LEAVER-11"));
    let (_, list) = page(&app, "/exports").await;
    let listed = |html: &str| html.replace("&#x2F;", "/").contains("/exports/1/download");
    assert!(listed(&list), "listed while they may: {list}");

    // Demoted to viewer in parking (no exports:create there), removed from it: the file
    // stays behind, though they still export for libraries.
    for role in [Some("viewer"), None] {
        set_role(&app, finance.id, parking, role).await;
        for path in ["/exports/1/download", "/exports/1", "/exports/1/status"] {
            let (status, body) = page(&app, path).await;
            assert_eq!(status, Status::NotFound, "{role:?} {path}");
            assert!(!body.contains("LEAVER-"), "{path}");
        }
        let (status, list) = page(&app, "/exports").await;
        assert_eq!(status, Status::Ok);
        assert!(!listed(&list), "not listed: {list}");
    }
    // Back in the role, the same person downloads it again: it was the grant that counted.
    set_role(&app, finance.id, parking, Some("finance")).await;
    assert_eq!(page(&app, "/exports/1/download").await.0, Status::Ok);

    // An export asked for and then left behind in the queue is not written.
    let (status, to, _) = post(&app, "/exports", &fields).await;
    assert_eq!(status, Status::SeeOther);
    assert!(to.starts_with("/exports/2?started=big"), "{to}");
    set_role(&app, finance.id, parking, None).await;
    run_jobs(&app).await;
    let record = paydesk::store::exports::get(&app.state.db, 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, "failed");
    assert!(
        record
            .failure
            .as_deref()
            .unwrap_or_default()
            .contains("requester removed from Service parking"),
        "{record:?}"
    );
    assert!(!paydesk::exports::file_path(&app.state.config, &record).exists());
    let downloads = actions(&app, "export_downloaded").await;
    assert_eq!(
        downloads.len(),
        2,
        "only the two downloads made with access"
    );
}

// ---- 3. refund requests and approvals -------------------------------------------------------

/// A parking service with a payment, a caseworker, and a finance approver.
async fn refund_world() -> (TestApp, i64, Person, Person, i64) {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    store_journeys(
        &app,
        parking,
        &[journey_record(
            "pay-approve-1",
            "APPROVE-1",
            time::macros::datetime!(2026-11-10 09:00 UTC),
        )],
    )
    .await;
    let caseworker = app
        .person("case@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let finance = app
        .person("finance@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    let j = paydesk::store::journeys::journey(&app.state.db, parking, "pay-approve-1")
        .await
        .unwrap()
        .unwrap();
    let now = paydesk::store::to_micros(app.clock.now());
    let mut tx = app.state.db.begin().await.unwrap();
    let id = refund_store::insert(
        &mut tx,
        &refund_store::NewRequest {
            service_id: parking,
            journey_id: j.id,
            payment_id: "pay-approve-1",
            amount: 1500,
            reason: "duplicate",
            comment: None,
            case_reference: None,
            state: "awaiting_approval",
            form_key: "trust-1",
            requested_by: caseworker.id,
            approval_required: true,
            expires_at: now + 86_400_000_000,
        },
        now,
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();
    (app, parking, caseworker, finance, id)
}

async fn state_of(app: &TestApp, id: i64) -> String {
    refund_store::by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap()
        .state
}

#[tokio::test]
async fn a_refund_asked_for_by_someone_since_demoted_cannot_be_approved() {
    let (app, parking, caseworker, finance, id) = refund_world().await;
    set_role(&app, caseworker.id, parking, Some("viewer")).await;
    app.sign_in(&finance).await;
    let approve = format!("/refunds/{id}/approve");
    let (status, _, html) = post(
        &app,
        &approve,
        &[("amount", "1500"), ("approval_comment", "")],
    )
    .await;
    assert_eq!(status, Status::Conflict, "{html}");
    assert!(
        html.contains("can no longer ask for refunds in this service"),
        "{html}"
    );
    assert_eq!(state_of(&app, id).await, "awaiting_approval");
    assert!(actions(&app, "refund_approved")
        .await
        .iter()
        .all(|e| e.outcome == "failure"));
    // Rejecting it is still possible; and once the requester holds the role again, approving
    // works: the rule is their grant now.
    set_role(&app, caseworker.id, parking, Some("caseworker")).await;
    let (status, _, html) = post(
        &app,
        &approve,
        &[("amount", "1500"), ("approval_comment", "")],
    )
    .await;
    assert_eq!(status, Status::SeeOther, "{html}");
    assert_eq!(state_of(&app, id).await, "approved");
}

#[tokio::test]
async fn an_approver_demoted_after_stepping_up_cannot_approve() {
    let (app, parking, _caseworker, finance, id) = refund_world().await;
    app.sign_in(&finance).await; // a fresh second factor: no step-up needed for a while
    let (status, html) = page(&app, &format!("/refunds/{id}")).await;
    assert_eq!(status, Status::Ok, "{html}");
    // Demoted between loading the page and posting it.
    set_role(&app, finance.id, parking, Some("viewer")).await;
    let (status, _, _) = post(
        &app,
        &format!("/refunds/{id}/approve"),
        &[("amount", "1500"), ("approval_comment", "")],
    )
    .await;
    assert!(
        status == Status::NotFound || status == Status::Forbidden,
        "{status}"
    );
    assert_eq!(state_of(&app, id).await, "awaiting_approval");
    let (status, _, _) = post(
        &app,
        &format!("/refunds/{id}/reject"),
        &[("rejection_comment", "no")],
    )
    .await;
    assert!(
        status == Status::NotFound || status == Status::Forbidden,
        "{status}"
    );
    assert_eq!(state_of(&app, id).await, "awaiting_approval");
}

#[tokio::test]
async fn an_approved_refund_is_not_sent_once_its_approver_is_demoted() {
    let (app, parking, _caseworker, finance, id) = refund_world().await;
    app.sign_in(&finance).await;
    let (status, _, html) = post(
        &app,
        &format!("/refunds/{id}/approve"),
        &[("amount", "1500"), ("approval_comment", "")],
    )
    .await;
    assert_eq!(status, Status::SeeOther, "{html}");
    assert_eq!(state_of(&app, id).await, "approved");
    // Demoted before the submit job takes it: nothing goes to the platform.
    set_role(&app, finance.id, parking, Some("viewer")).await;
    run_jobs(&app).await;
    let row = refund_store::by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, "failed");
    assert_eq!(
        row.failure.as_deref(),
        Some("Not sent: approver no longer has refunds:approve in Service parking")
    );
    assert!(row.submitted_at.is_none() && row.platform_refund_id.is_none());
}

#[tokio::test]
async fn a_refund_is_not_sent_once_its_requester_has_left() {
    let (app, parking, caseworker, finance, id) = refund_world().await;
    app.sign_in(&finance).await;
    let (status, _, _) = post(
        &app,
        &format!("/refunds/{id}/approve"),
        &[("amount", "1500"), ("approval_comment", "")],
    )
    .await;
    assert_eq!(status, Status::SeeOther);
    set_role(&app, caseworker.id, parking, None).await;
    run_jobs(&app).await;
    let row = refund_store::by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, "failed");
    assert_eq!(
        row.failure.as_deref(),
        Some("Not sent: requester removed from Service parking")
    );
}

// ---- 3. invitations ---------------------------------------------------------------------------

#[tokio::test]
async fn an_invitation_grants_only_what_its_inviter_may_still_grant() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let libraries = app.service("libraries").await;
    let inviter = app
        .person(
            "inviter@example.gov.uk",
            Role::ServiceAdmin,
            Some("parking"),
        )
        .await;
    let librarian = app
        .person(
            "librarian@example.gov.uk",
            Role::ServiceAdmin,
            Some("libraries"),
        )
        .await;
    let invite = |email: &'static str| {
        let app = &app;
        let inviter = &inviter;
        async move {
            accounts::add_staff(
                &app.state,
                Actor::staff(inviter.id, &inviter.email),
                email,
                "New Person",
                Role::Caseworker,
                Some("parking"),
            )
            .await
            .unwrap()
            .unwrap()
        }
    };
    let only = invite("only@example.gov.uk").await;
    let two = invite("two@example.gov.uk").await;
    {
        let mut tx = app.state.db.begin().await.unwrap();
        let by = format!("staff:{}", librarian.id);
        admin_store::put_grant(&mut tx, two.staff_id, Some(libraries), "viewer", &by, 0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    // The inviter loses staff:manage in parking before either accepts.
    set_role(&app, inviter.id, parking, Some("caseworker")).await;
    let accept = |token: String| {
        let app = &app;
        async move {
            accounts::set_password_with_link(&app.state, &token, "setup", PASSWORD, PASSWORD, None)
                .await
                .unwrap()
        }
    };
    assert!(
        matches!(
            accept(only.setup_token.clone()).await,
            PasswordOutcome::LinkInvalid
        ),
        "nothing it grants stands"
    );
    let roles = staff_store::grants(&app.state.db, only.staff_id)
        .await
        .unwrap();
    assert_eq!(roles.len(), 1, "nothing changed");
    assert_eq!(
        staff_store::staff_by_id(&app.state.db, only.staff_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        "invited"
    );
    // Two roles from two inviters: the one whose inviter can no longer grant it goes.
    assert!(matches!(
        accept(two.setup_token.clone()).await,
        PasswordOutcome::Done { .. }
    ));
    let roles: Vec<(Option<i64>, String)> = staff_store::grants(&app.state.db, two.staff_id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.service_id, g.role))
        .collect();
    assert_eq!(roles, vec![(Some(libraries), "viewer".to_string())]);
    let narrowed = actions(&app, "authz_invitation_narrowed").await;
    assert_eq!(narrowed.len(), 1);
    assert!(
        narrowed[0].details.contains("caseworker"),
        "{:?}",
        narrowed[0]
    );
    // With staff:manage back, the inviter's invitation is good again.
    set_role(&app, inviter.id, parking, Some("service_admin")).await;
    assert!(matches!(
        accept(only.setup_token.clone()).await,
        PasswordOutcome::Done { .. }
    ));
}

// ---- 3. event endpoints -------------------------------------------------------------------------

/// A loopback receiver that answers 200 and counts requests.
async fn counter() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = socket.read(&mut buf).await;
                count.fetch_add(1, Ordering::SeqCst);
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://127.0.0.1:{port}/events"), seen)
}

async fn emit_one(app: &TestApp, service_id: i64, n: i64) -> usize {
    let mut data = Map::new();
    data.insert("refund_request_id".into(), json!(n));
    data.insert("email".into(), json!("payer@example.org"));
    let mut tx = app.state.db.begin().await.unwrap();
    let queued = events::emit(
        &mut tx,
        service_id,
        EventType::RefundRequested,
        data,
        None,
        app.clock.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    queued
}

#[tokio::test]
async fn an_event_endpoint_pauses_when_its_owner_loses_integrations_manage() {
    let app = TestApp::with_config(|c| c.events_allow_loopback = true).await;
    let parking = app.service("parking").await;
    let owner = app
        .person("owner@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let successor = app
        .person(
            "successor@example.gov.uk",
            Role::ServiceAdmin,
            Some("parking"),
        )
        .await;
    let (url, seen) = counter().await;
    let (endpoint, _) = events::create(
        &app.state.db,
        &app.state.config,
        app.clock.now(),
        Actor::staff(owner.id, &owner.email),
        None,
        parking,
        Some(owner.id),
        &EndpointInput {
            url,
            description: "CRM".into(),
            event_types: vec![EventType::RefundRequested.name().to_string()],
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(emit_one(&app, parking, 1).await, 1);
    run_jobs(&app).await;
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "delivered while the owner holds it"
    );

    // Demoted to finance (no integrations:manage): the next delivery is not sent, and the
    // endpoint pauses, saying why.
    set_role(&app, owner.id, parking, Some("finance")).await;
    assert_eq!(emit_one(&app, parking, 2).await, 1);
    run_jobs(&app).await;
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "no payer data after the demotion"
    );
    let row = event_store::endpoint(&app.state.db, endpoint)
        .await
        .unwrap()
        .unwrap();
    assert!(!row.enabled);
    assert_eq!(
        row.disabled_reason.as_deref(),
        Some("Paused: owner no longer has integrations:manage in Service parking")
    );
    let paused = actions(&app, "event_endpoint_disabled").await;
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].actor_type, "system");
    assert_eq!(
        emit_one(&app, parking, 3).await,
        0,
        "nothing more is queued for it"
    );

    // Someone who holds integrations:manage turns it back on, and it acts for them.
    app.sign_in(&successor).await;
    let (_, html) = page(&app, &format!("/integrations/events/{endpoint}")).await;
    assert!(
        html.contains("Paused: owner no longer has integrations:manage"),
        "{html}"
    );
    let (status, _, _) = post(
        &app,
        &format!("/integrations/events/{endpoint}/enable"),
        &[],
    )
    .await;
    assert_eq!(status, Status::SeeOther);
    let row = event_store::endpoint(&app.state.db, endpoint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.created_by, Some(successor.id));
    assert_eq!(emit_one(&app, parking, 4).await, 1);
    run_jobs(&app).await;
    // The new event, and the one held back while it was paused (its retry), now for them.
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

// ---- 3. sessions of a demoted person ------------------------------------------------------------

#[tokio::test]
async fn a_demoted_persons_session_reads_their_grants_on_every_request() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let libraries = app.service("libraries").await;
    store_journeys(
        &app,
        libraries,
        &[journey_record(
            "pay-books-1",
            "BOOKS-SECRET",
            time::macros::datetime!(2026-11-10 09:00 UTC),
        )],
    )
    .await;
    let both = app
        .person("both@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    set_role(&app, both.id, libraries, Some("finance")).await;
    app.sign_in(&both).await;
    let (_, html) = page(&app, "/payments").await;
    assert!(html.contains("Service libraries"), "{html}");
    assert!(html.contains("BOOKS-SECRET"));
    let (_, html) = page(&app, "/exports").await;
    assert!(html.contains("Service libraries"));

    // Removed from libraries mid-session: the same session, the next request.
    set_role(&app, both.id, libraries, None).await;
    let (status, html) = page(&app, "/payments").await;
    assert_eq!(status, Status::Ok);
    assert!(
        !html.contains("Service libraries"),
        "the filter form too: {html}"
    );
    assert!(!html.contains("BOOKS-SECRET"));
    let (_, html) = page(&app, "/payments?service=libraries").await;
    assert!(!html.contains("BOOKS-SECRET"));
    let (_, html) = page(&app, "/exports").await;
    assert!(!html.contains("Service libraries"));
    let _ = parking;
}

// ---- 4. whole-account actions ----------------------------------------------------------------

#[tokio::test]
async fn a_service_admin_cannot_act_on_the_whole_account_of_someone_in_other_services() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let libraries = app.service("libraries").await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let platform = app
        .person("platform@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let both = app
        .person("both@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    set_role(&app, both.id, libraries, Some("finance")).await;
    // Invited to both services, not yet set up.
    let invited = accounts::add_staff(
        &app.state,
        Actor::System,
        "invited@example.gov.uk",
        "Invited Person",
        Role::Viewer,
        Some("parking"),
    )
    .await
    .unwrap()
    .unwrap();
    set_role(&app, invited.staff_id, libraries, Some("viewer")).await;
    let _elsewhere = app.session_for(&both).await;
    let sessions = |id: i64| {
        let app = &app;
        async move {
            staff_store::sessions_of(&app.state.db, id)
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(sessions(both.id).await, 1);

    app.sign_in(&admin).await;
    let (_, html) = page(&app, &format!("/admin/staff/{}", both.id)).await;
    assert!(!html.contains("Sign out everywhere"), "{html}");
    for action in ["sign-out", "disable", "enable", "reset-authenticator"] {
        let (status, _, html) =
            post(&app, &format!("/admin/staff/{}/{action}", both.id), &[]).await;
        assert_eq!(status, Status::Forbidden, "{action}");
        assert!(
            html.contains("also has access to services you do not manage"),
            "{action}: {html}"
        );
    }
    assert_eq!(sessions(both.id).await, 1, "still signed in");
    let (status, _, html) = post(
        &app,
        &format!("/admin/staff/{}/resend", invited.staff_id),
        &[],
    )
    .await;
    assert_eq!(status, Status::Forbidden, "{html}");
    let refused = actions(&app, "session_revoked_all").await;
    assert!(refused.is_empty());

    // A platform admin may.
    switch_to(&app, &platform).await;
    let (status, _, _) = post(&app, &format!("/admin/staff/{}/sign-out", both.id), &[]).await;
    assert_eq!(status, Status::SeeOther);
    assert_eq!(sessions(both.id).await, 0);
    let _ = parking;
}

/// The same rule on the single sign-on path: an invited person's first sign-in through their
/// organisation's provider links the account only while the inviter could still invite them.
#[tokio::test]
async fn a_lapsed_invitation_does_not_link_through_single_sign_on() {
    let Some(provider) = OidcProvider::start() else {
        return;
    };
    let app = crate::sso::app_with(&provider, paydesk::config::SsoTotp::UnlessProviderMfa).await;
    let parking = paydesk::store::services::by_slug(&app.state.db, "parking")
        .await
        .unwrap()
        .unwrap()
        .id;
    let inviter = app
        .person(
            "inviter@example.gov.uk",
            Role::ServiceAdmin,
            Some("parking"),
        )
        .await;
    accounts::add_staff(
        &app.state,
        Actor::staff(inviter.id, &inviter.email),
        "ada@example.gov.uk",
        "Ada",
        Role::Caseworker,
        Some("parking"),
    )
    .await
    .unwrap()
    .unwrap();
    set_role(&app, inviter.id, parking, None).await;
    provider
        .scenario(json!({"sub": "sub-ada", "email": "ada@example.gov.uk", "amr": ["pwd"]}))
        .await;
    let callback = crate::sso::through_provider(&app).await;
    let r = app.client.get(callback).dispatch().await;
    assert_eq!(r.status(), Status::Forbidden, "not linked");
    assert!(app.session_cookie().is_none());
    assert!(actions(&app, "authn_sso_linked").await.is_empty());

    set_role(&app, inviter.id, parking, Some("service_admin")).await;
    let callback = crate::sso::through_provider(&app).await;
    let r = app.client.get(callback).dispatch().await;
    assert_eq!(
        location(&r),
        "/login/enrol",
        "linked once the inviter may invite"
    );
    assert_eq!(actions(&app, "authn_sso_linked").await.len(), 1);
}
