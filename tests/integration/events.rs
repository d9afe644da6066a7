//! Outbound events (Standard Webhooks) to a test CRM: a small HTTP server inside the test that
//! checks every signature with the endpoint's secret. Retries keep one `webhook-id` and follow
//! the schedule; 410 disables the endpoint and emails the service's admins; redirects count
//! as failures; private and loopback targets are refused when saved and when sent; a rotated
//! secret signs beside the new one during the overlap; failed messages can be sent again; a
//! refund's event survives its process being killed right after the commit; and another
//! service's endpoint is 404.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paydesk::clock::Clock;
use paydesk::identity::permissions::Role;
use paydesk::integrations::events::{self, EndpointInput, EventType};
use paydesk::integrations::signature;
use paydesk::refunds::{self, Ask, Asked, Staff};
use paydesk::store::events as event_store;
use rocket::http::{ContentType, Status};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::sandbox::SandboxProcess;
use crate::common::*;

// ---- a test CRM -------------------------------------------------------------------------

/// One request the CRM received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn id(&self) -> &str {
        self.header("webhook-id")
    }

    fn timestamp(&self) -> i64 {
        self.header("webhook-timestamp").parse().unwrap_or(-1)
    }

    /// Whether the signature header holds a valid signature by `secret`.
    fn signed_by(&self, secret: &str) -> bool {
        signature::verify(
            secret,
            self.id(),
            self.timestamp(),
            self.body.as_bytes(),
            self.header("webhook-signature"),
        )
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// How the CRM answers one request.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16, Vec<(&'static str, String)>),
    /// Never answer.
    Hang,
}

#[derive(Default)]
struct CrmState {
    seen: Vec<Seen>,
    /// Answers for the next requests, in order; then `then`.
    script: Vec<Reply>,
    then: Option<Reply>,
}

/// A plain HTTP/1.1 server on a loopback port.
#[derive(Clone)]
struct Crm {
    port: u16,
    state: Arc<Mutex<CrmState>>,
}

impl Crm {
    async fn start(script: Vec<Reply>, then: Reply) -> Crm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(CrmState {
            script,
            then: Some(then),
            ..Default::default()
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                let shared = shared.clone();
                tokio::spawn(async move { serve(socket, shared).await });
            }
        });
        Crm { port, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Answer the next request with `reply` (then as before).
    fn next_answer(&self, reply: Reply) {
        self.state.lock().unwrap().script.push(reply);
    }

    fn answer_from_now(&self, reply: Reply) {
        let mut s = self.state.lock().unwrap();
        s.script.clear();
        s.then = Some(reply);
    }
}

fn ok() -> Reply {
    Reply::Status(200, vec![])
}

async fn serve(mut socket: tokio::net::TcpStream, state: Arc<Mutex<CrmState>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    let reply = {
        let mut s = state.lock().unwrap();
        s.seen.push(Seen {
            path,
            headers,
            body,
        });
        if s.script.is_empty() {
            s.then.clone().unwrap_or_else(ok)
        } else {
            s.script.remove(0)
        }
    };
    match reply {
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Reply::Status(code, extra) => {
            let text = format!("answer {code} from the test CRM");
            let mut out = format!(
                "HTTP/1.1 {code} Test\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
                text.len()
            );
            for (k, v) in extra {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&text);
            let _ = socket.write_all(out.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    }
}

// ---- helpers ----------------------------------------------------------------------------

async fn loopback_app() -> TestApp {
    TestApp::with_config(|c| {
        c.events_allow_loopback = true;
        c.platform_timeout_ms = 1500;
        c.platform_retries = 0;
    })
    .await
}

fn input(url: &str, types: &[EventType]) -> EndpointInput {
    EndpointInput {
        url: url.into(),
        description: "Test CRM".into(),
        event_types: types.iter().map(|t| t.name().to_string()).collect(),
    }
}

/// An endpoint made directly through the capability module: (id, secret).
async fn endpoint(app: &TestApp, service_id: i64, url: &str, types: &[EventType]) -> (i64, String) {
    events::create(
        &app.state.db,
        &app.state.config,
        app.clock.now(),
        paydesk::audit::Actor::System,
        None,
        service_id,
        None,
        &input(url, types),
    )
    .await
    .unwrap()
    .unwrap()
}

/// Emit an event as the refund code does, in a transaction of its own.
async fn emit(app: &TestApp, service_id: i64, event_type: EventType, n: i64) -> usize {
    let mut data = Map::new();
    data.insert("refund_request_id".into(), json!(n));
    data.insert("amount".into(), json!(1250));
    let mut tx = app.state.db.begin().await.unwrap();
    let queued = events::emit(&mut tx, service_id, event_type, data, None, app.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    queued
}

/// Run due jobs with no jitter, so the schedule is exact.
async fn run(app: &TestApp) -> paydesk::jobs::PassSummary {
    app.state
        .job_runner()
        .with_jitter(|| 0.0)
        .run_due()
        .await
        .unwrap()
}

/// The next time the job of this delivery is due, if it waits.
async fn next_due(app: &TestApp, delivery_id: i64) -> Option<time::OffsetDateTime> {
    event_store::delivery(&app.state.db, delivery_id)
        .await
        .unwrap()
        .and_then(|d| d.next_attempt_at)
        .map(paydesk::store::from_micros)
}

async fn deliveries(app: &TestApp, endpoint_id: i64) -> Vec<event_store::DeliveryRow> {
    event_store::deliveries_of(&app.state.db, endpoint_id, None, 100)
        .await
        .unwrap()
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    paydesk::on_db!(&app.state.db, pool => sqlx::query_scalar::<_, String>("SELECT action FROM audit_log ORDER BY seq")
        .fetch_all(pool).await.unwrap())
}

// ---- tests ------------------------------------------------------------------------------

#[test]
fn the_standard_webhooks_test_vector() {
    assert_eq!(
        signature::sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap(),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}

/// A refund, its payment's success and its case link reach the CRM, signed; the refund's
/// first delivery gets a 500 and the retry (5 s later, same `webhook-id`) a 200. The endpoint
/// is made through the pages, and its log shows both attempts.
#[tokio::test]
async fn refund_and_payment_events_are_signed_and_retried_with_one_id() {
    let sandbox = refund_sandbox(1);
    let app = loopback_app().await;
    let service_id = sandbox.connect(&app, "parking", 1).await;
    let crm = Crm::start(vec![], ok()).await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;

    // Add the endpoint through its form: the secret is shown once.
    let r = app
        .post_form(
            "/integrations/events/new",
            &[
                ("csrf_token", &app.token()),
                ("service", "parking"),
                ("url", &crm.url("/paydesk/events")),
                ("description", "Case system"),
                ("event_types", "refund.succeeded"),
                ("event_types", "payment.succeeded"),
                ("event_types", "case.linked"),
            ],
        )
        .await;
    // Post/redirect/get: the secret is shown on the page after the redirect, once.
    let to = crate::common::location(&r);
    let html = app.follow(r).await;
    let secret = input_value(&html, "secret").expect("the secret is shown");
    assert!(signature::secret_bytes(&secret).is_ok(), "{secret}");
    let endpoint_id = event_store::all_endpoints(&app.state.db).await.unwrap()[0].id;
    assert_eq!(to, format!("/integrations/events/{endpoint_id}/secret"));
    // Back, or a refresh: the page says it is not kept, and shows no secret.
    let again = app
        .client
        .get(to)
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(input_value(&again, "secret").is_none(), "{again}");
    assert!(again.contains("shown once"), "{again}");
    assert!(!again.contains(&secret));
    let page = app
        .client
        .get(format!("/integrations/events/{endpoint_id}"))
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(!page.contains(&secret), "the secret is never shown again");

    // A payment read while in progress, then after it succeeded: one payment.succeeded.
    let created = sandbox
        .create_payment(&SandboxProcess::api_key(1), 4000, "EVENTS-1")
        .await;
    let payment_id = created["payment_id"].as_str().unwrap().to_string();
    let service = paydesk::services::by_id(&app.state.db, service_id)
        .await
        .unwrap()
        .unwrap();
    let client = app
        .state
        .platforms
        .client(&app.state.config, &service)
        .unwrap();
    let read = |at: time::OffsetDateTime| {
        let db = app.state.db.clone();
        let client = client.clone();
        let payment_id = payment_id.clone();
        async move {
            paydesk::journeys::sync::refresh_with(&db, at, client.as_ref(), service_id, &payment_id)
                .await
                .unwrap()
        }
    };
    let journey_id = read(app.clock.now()).await.journey_id;
    assert!(
        deliveries(&app, endpoint_id).await.is_empty(),
        "not final yet"
    );
    sandbox.advance_payment(&payment_id, "success", None).await;
    app.clock.advance(time::Duration::seconds(1));
    read(app.clock.now()).await;
    app.clock.advance(time::Duration::seconds(1));
    read(app.clock.now()).await;
    let queued = deliveries(&app, endpoint_id).await;
    assert_eq!(queued.len(), 1, "one event however often it is read");
    assert_eq!(queued[0].event_type, "payment.succeeded");

    // Case linked, as the case API will do it.
    let mut tx = app.state.db.begin().await.unwrap();
    assert!(
        events::case_linked(&mut tx, service_id, journey_id, app.clock.now())
            .await
            .unwrap()
    );
    assert!(
        !events::case_linked(&mut tx, service_id + 1, journey_id, app.clock.now())
            .await
            .unwrap(),
        "another service's journey is not linked"
    );
    tx.commit().await.unwrap();
    run(&app).await;
    assert_eq!(crm.seen().len(), 2, "payment.succeeded and case.linked");

    // A refund: requested (not subscribed), then paid by the platform; the CRM fails the
    // first delivery of its success.
    crm.next_answer(Reply::Status(500, vec![]));
    let who = Staff {
        id: admin.id,
        email: admin.email.clone(),
        name: "Admin".into(),
        ip: None,
    };
    let asked = refunds::request(
        &app.state.db,
        app.clock.now(),
        &who,
        &Ask {
            service_id,
            journey_id,
            payment_id: payment_id.clone(),
            how_much: refunds::HowMuch::from_form("partial", "12.50"),
            reason: "duplicate".into(),
            case_reference: "CASE-77".into(),
            form_key: "events-form-1".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(asked, Asked::Made { .. }), "{asked:?}");

    for _ in 0..60 {
        run(&app).await;
        let refund_seen = crm
            .seen()
            .iter()
            .filter(|s| s.json()["type"] == "refund.succeeded")
            .count();
        if refund_seen >= 2 {
            break;
        }
        app.clock.advance(time::Duration::seconds(2));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let seen = crm.seen();
    for s in &seen {
        assert_eq!(s.path, "/paydesk/events");
        assert_eq!(s.header("content-type"), "application/json");
        assert!(
            s.signed_by(&secret),
            "signed with the endpoint's secret: {s:?}"
        );
        assert!(!s.signed_by(&signature::new_secret()));
        assert!(s.id().starts_with("msg_"));
        // Thin: no personal data.
        assert!(!s.body.contains("payer-"), "{}", s.body);
        assert!(!s.body.contains('@'), "{}", s.body);
    }
    let types: Vec<String> = seen
        .iter()
        .map(|s| s.json()["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        types.iter().filter(|t| *t == "payment.succeeded").count(),
        1,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| *t == "case.linked").count(),
        1,
        "{types:?}"
    );
    assert!(
        !types.iter().any(|t| t == "refund.requested"),
        "not subscribed"
    );
    let refund: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.json()["type"] == "refund.succeeded")
        .collect();
    assert_eq!(refund.len(), 2, "a 500 then a 200: {types:?}");
    assert_eq!(
        refund[0].id(),
        refund[1].id(),
        "the same webhook-id on the retry"
    );
    assert!(
        refund[1].timestamp() >= refund[0].timestamp() + 5,
        "5 s later"
    );
    assert_eq!(refund[0].body, refund[1].body);
    let data = &refund[1].json()["data"];
    assert_eq!(data["amount"], 1250);
    assert_eq!(data["currency"], "GBP");
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["case_reference"], "CASE-77");
    assert_eq!(data["service"], "parking");
    assert_eq!(data["payment_id"], payment_id.as_str());
    assert!(refund[1].json()["timestamp"].as_str().is_some());

    // The log shows each attempt.
    let page = app
        .client
        .get(format!("/integrations/events/{endpoint_id}"))
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(page.contains("HTTP 500"), "{page}");
    assert!(page.contains("HTTP 200"));
    assert!(page.contains("answer 500 from the test CRM"));
    assert!(page.contains(refund[0].id()));
    assert!(page.contains("Delivered"));
}

/// The schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h, then failed. A manual
/// replay of one message, and of all failed ones, sends them again with the same id.
#[tokio::test]
async fn the_retry_schedule_ends_in_failure_and_replays_send_again() {
    let app = loopback_app().await;
    let service_id = app.service("parking").await;
    let crm = Crm::start(vec![], Reply::Status(503, vec![])).await;
    let (endpoint_id, secret) = endpoint(
        &app,
        service_id,
        &crm.url("/hook"),
        &[EventType::RefundSucceeded],
    )
    .await;
    assert_eq!(
        emit(&app, service_id, EventType::RefundSucceeded, 1).await,
        1
    );
    assert_eq!(
        emit(&app, service_id, EventType::RefundFailed, 2).await,
        0,
        "not subscribed"
    );
    let delivery_id = deliveries(&app, endpoint_id).await[0].id;
    let start = app.clock.now();
    let mut offsets = Vec::new();
    for _ in 0..12 {
        run(&app).await;
        offsets.push((app.clock.now() - start).whole_seconds());
        match next_due(&app, delivery_id).await {
            Some(at) => app.clock.set(at),
            None => break,
        }
    }
    assert_eq!(
        offsets,
        [0, 5, 305, 2105, 9305, 27305, 63305, 113705, 185705, 272105],
        "each wait after the previous attempt"
    );
    let d = event_store::delivery(&app.state.db, delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, "failed");
    assert_eq!(d.attempts, 10);
    let seen = crm.seen();
    assert_eq!(seen.len(), 10);
    assert!(seen
        .iter()
        .all(|s| s.id() == seen[0].id() && s.signed_by(&secret)));

    // A second message that failed too.
    assert_eq!(
        emit(&app, service_id, EventType::RefundSucceeded, 3).await,
        1
    );
    crm.answer_from_now(Reply::Status(500, vec![]));
    let second = deliveries(&app, endpoint_id).await[0].id;
    for _ in 0..12 {
        run(&app).await;
        match next_due(&app, second).await {
            Some(at) => app.clock.set(at),
            None => break,
        }
    }

    // Replay one through the page, as an admin would.
    crm.answer_from_now(ok());
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;
    let page = app
        .client
        .get(format!("/integrations/events/{endpoint_id}"))
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(page.contains("Send all 2 failed messages again"), "{page}");
    let r = app
        .post_form(
            &format!("/integrations/events/{endpoint_id}/deliveries/{delivery_id}/replay"),
            &[("csrf_token", &app.token())],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    // Twice in a row: the first is still on its way.
    let again = app
        .post_form(
            &format!("/integrations/events/{endpoint_id}/deliveries/{delivery_id}/replay"),
            &[("csrf_token", &app.token())],
        )
        .await;
    assert_eq!(again.status(), Status::Conflict);
    // Without the token: refused.
    let forged = app
        .post_form(
            &format!("/integrations/events/{endpoint_id}/deliveries/{delivery_id}/replay"),
            &[("csrf_token", "nope")],
        )
        .await;
    assert_eq!(forged.status(), Status::Forbidden);
    run(&app).await;
    let seen = crm.seen();
    assert_eq!(seen.len(), 21);
    assert_eq!(seen[20].id(), seen[0].id(), "a replay keeps the webhook-id");
    assert_eq!(
        event_store::delivery(&app.state.db, delivery_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        "succeeded"
    );

    // Replay all failed: only the second is left.
    let r = app
        .post_form(
            &format!("/integrations/events/{endpoint_id}/replay-failed"),
            &[("csrf_token", &app.token())],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert!(
        location(&r).ends_with("notice=replayed-1"),
        "{}",
        location(&r)
    );
    run(&app).await;
    assert_eq!(crm.seen().len(), 22);
    assert_eq!(
        event_store::delivery(&app.state.db, second)
            .await
            .unwrap()
            .unwrap()
            .status,
        "succeeded"
    );
    let none_left = app
        .post_form(
            &format!("/integrations/events/{endpoint_id}/replay-failed"),
            &[("csrf_token", &app.token())],
        )
        .await;
    assert_eq!(none_left.status(), Status::Conflict);
    let actions = audit_actions(&app).await;
    assert_eq!(actions.iter().filter(|a| *a == "event_replayed").count(), 2);
}

/// 410 Gone disables the endpoint, emails the service's admins, and nothing more is sent to
/// it; a redirect is a failure and is not followed; `Retry-After` is honoured.
#[tokio::test]
async fn gone_disables_and_emails_redirects_fail_and_retry_after_is_honoured() {
    let mail_dir = tempfile::tempdir().unwrap();
    let mail_url = format!("file://{}", mail_dir.path().display());
    let app = TestApp::with_config(|c| {
        c.events_allow_loopback = true;
        c.mail_url = mail_url;
    })
    .await;
    let service_id = app.service("parking").await;
    app.person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    app.person("viewer@example.gov.uk", Role::Viewer, Some("parking"))
        .await;

    // A redirect, then a 429 asking for 10 minutes.
    let crm = Crm::start(
        vec![
            Reply::Status(302, vec![("Location", "/elsewhere".into())]),
            Reply::Status(429, vec![("Retry-After", "600".into())]),
        ],
        Reply::Status(410, vec![]),
    )
    .await;
    let (endpoint_id, _) = endpoint(
        &app,
        service_id,
        &crm.url("/hook"),
        &[EventType::RefundSucceeded],
    )
    .await;
    emit(&app, service_id, EventType::RefundSucceeded, 1).await;
    let delivery_id = deliveries(&app, endpoint_id).await[0].id;
    run(&app).await;
    let seen = crm.seen();
    assert_eq!(seen.len(), 1, "the redirect is not followed");
    let d = event_store::delivery(&app.state.db, delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, "retrying");
    let attempts = event_store::attempts_of(&app.state.db, &[delivery_id])
        .await
        .unwrap();
    assert_eq!(attempts[0].http_status, Some(302));
    assert!(!attempts[0].succeeded);
    assert!(attempts[0]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("redirects are not followed"));

    app.clock.advance(time::Duration::seconds(5));
    run(&app).await;
    let due = next_due(&app, delivery_id).await.unwrap();
    assert_eq!(
        (due - app.clock.now()).whole_seconds(),
        600,
        "Retry-After beats the 5-minute step"
    );
    app.clock.set(due);
    run(&app).await;
    assert_eq!(crm.seen().len(), 3);
    let endpoint = event_store::endpoint(&app.state.db, endpoint_id)
        .await
        .unwrap()
        .unwrap();
    assert!(!endpoint.enabled, "410 disables the endpoint");
    let d = event_store::delivery(&app.state.db, delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, "failed");
    assert!(audit_actions(&app)
        .await
        .contains(&"event_endpoint_disabled".to_string()));

    // Nothing more goes to it.
    assert_eq!(
        emit(&app, service_id, EventType::RefundSucceeded, 2).await,
        0
    );
    // The admins are told (and nobody else).
    run(&app).await;
    let mut mails = Vec::new();
    for e in std::fs::read_dir(mail_dir.path()).unwrap().flatten() {
        mails.push(std::fs::read_to_string(e.path()).unwrap());
    }
    assert_eq!(mails.len(), 1, "one admin, one email");
    let mail = unfold_quoted_printable(&mails[0]);
    assert!(mail.contains("admin@example.gov.uk"));
    assert!(mail.contains(&crm.url("/hook")));
    assert!(mail.contains(&format!("/integrations/events/{endpoint_id}")));
    assert!(!mail.contains("viewer@example.gov.uk"));
}

/// Private, link-local and loopback targets are refused when an endpoint is saved (through
/// its form) and when a message is sent (a row changed behind paydesk's back, as DNS can).
#[tokio::test]
async fn private_and_loopback_targets_are_refused_at_save_and_at_send() {
    let app = TestApp::new().await;
    let service_id = app.service("parking").await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;
    for (url, says) in [
        ("http://crm.example.gov.uk/hook", "must start with https:"),
        ("https://127.0.0.1/hook", "private or reserved address"),
        ("https://10.1.2.3/hook", "private or reserved address"),
        (
            "https://169.254.169.254/latest/meta-data",
            "private or reserved address",
        ),
        ("https://[::1]/hook", "private or reserved address"),
        ("https://localhost/hook", "private or reserved address"),
        (
            "https://user:pw@crm.example.gov.uk/",
            "user name or password",
        ),
        ("not a url", "Enter a URL"),
    ] {
        let r = app
            .post_form(
                "/integrations/events/new",
                &[
                    ("csrf_token", &app.token()),
                    ("service", "parking"),
                    ("url", url),
                    ("event_types", "refund.succeeded"),
                ],
            )
            .await;
        assert_eq!(r.status(), Status::UnprocessableEntity, "{url}");
        let html = r.into_string().await.unwrap();
        assert!(html.contains(says), "{url}: {html}");
        assert!(html.contains("<title>Error:"), "{url}");
    }
    // No event type: the form comes back with what was typed.
    let r = app
        .post_form(
            "/integrations/events/new",
            &[
                ("csrf_token", &app.token()),
                ("service", "parking"),
                ("url", "https://crm.example.gov.uk/x"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    let html = r.into_string().await.unwrap();
    assert!(html.contains("Choose at least one event type"));
    assert!(
        html.contains("https://crm.example.gov.uk/x")
            || html.contains("https:&#x2F;&#x2F;crm.example.gov.uk&#x2F;x")
    );
    assert!(event_store::all_endpoints(&app.state.db)
        .await
        .unwrap()
        .is_empty());

    // At send: an endpoint whose address is now loopback (written directly, as a rebinding
    // name would make it) is not contacted.
    let crm = Crm::start(vec![], ok()).await;
    let mut tx = app.state.db.begin().await.unwrap();
    let id = event_store::insert_endpoint(
        &mut tx,
        &event_store::NewEndpointRow {
            service_id,
            url: &crm.url("/hook"),
            description: "",
            event_types: "refund.succeeded",
            created_by: None,
        },
        0,
    )
    .await
    .unwrap();
    let sealed = paydesk::crypto::seal(
        &app.state.config.events_key(),
        &format!("event_endpoint:{id}:secret"),
        signature::new_secret().as_bytes(),
    );
    event_store::set_secrets(&mut tx, id, &sealed, None, None, 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    emit(&app, service_id, EventType::RefundSucceeded, 1).await;
    run(&app).await;
    assert!(
        crm.seen().is_empty(),
        "nothing reached the loopback address"
    );
    let d = &deliveries(&app, id).await[0];
    assert_eq!(d.status, "retrying");
    let attempts = event_store::attempts_of(&app.state.db, &[d.id])
        .await
        .unwrap();
    assert!(
        attempts[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("private or reserved"),
        "{attempts:?}"
    );
}

/// After a rotation both secrets sign, space-separated, until the overlap ends; then only
/// the new one.
#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_during_the_overlap() {
    let app = loopback_app().await;
    let service_id = app.service("parking").await;
    let crm = Crm::start(vec![], ok()).await;
    let (endpoint_id, old) = endpoint(
        &app,
        service_id,
        &crm.url("/hook"),
        &[EventType::RefundSucceeded],
    )
    .await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;
    // A new secret is a new key: the code is asked again when the last is over 5 minutes old.
    app.clock.advance(time::Duration::minutes(6));
    let rotate = format!("/integrations/events/{endpoint_id}/rotate");
    let r = app
        .post_form(&rotate, &[("csrf_token", &app.token())])
        .await;
    let html = app.follow(r).await;
    assert!(html.contains("name=\"stepping_up\""), "{html}");
    assert!(
        input_value(&html, "secret").is_none(),
        "no secret before the code"
    );
    let wrong = app
        .post_form(
            &rotate,
            &[
                ("csrf_token", &app.token()),
                ("code", "000000"),
                ("stepping_up", "1"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), Status::UnprocessableEntity);
    app.next_code_window();
    let code = app.code_now(&admin.secret);
    let r = app
        .post_form(
            &rotate,
            &[
                ("csrf_token", &app.token()),
                ("code", &code),
                ("stepping_up", "1"),
            ],
        )
        .await;
    let new = input_value(&app.follow(r).await, "secret").unwrap();
    assert_ne!(new, old);

    emit(&app, service_id, EventType::RefundSucceeded, 1).await;
    run(&app).await;
    let during = crm.seen().pop().unwrap();
    assert_eq!(during.header("webhook-signature").split(' ').count(), 2);
    assert!(during.signed_by(&new) && during.signed_by(&old));

    app.clock.advance(time::Duration::hours(25));
    emit(&app, service_id, EventType::RefundSucceeded, 2).await;
    run(&app).await;
    let after = crm.seen().pop().unwrap();
    assert_eq!(after.header("webhook-signature").split(' ').count(), 1);
    assert!(after.signed_by(&new));
    assert!(!after.signed_by(&old), "the old secret no longer signs");
    assert!(audit_actions(&app)
        .await
        .contains(&"event_endpoint_secret_rotated".to_string()));
}

/// A service admin sees only their own service's endpoints; another's answers 404 to every
/// page and action.
#[tokio::test]
async fn another_services_endpoint_is_not_found() {
    let app = loopback_app().await;
    app.service("parking").await;
    let other = app.service("licences").await;
    let (theirs, _) = endpoint(
        &app,
        other,
        "http://127.0.0.1:9/licences",
        &[EventType::CaseLinked],
    )
    .await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;
    let index = app
        .client
        .get("/integrations/events")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(index.contains("Service parking"));
    assert!(!index.contains("licences"), "{index}");
    for path in ["", "/edit"] {
        let r = app
            .client
            .get(format!("/integrations/events/{theirs}{path}"))
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::NotFound, "GET {path}");
    }
    for path in [
        "/edit",
        "/enable",
        "/disable",
        "/rotate",
        "/replay-failed",
        "/deliveries/1/replay",
    ] {
        let r = app
            .post_form(
                &format!("/integrations/events/{theirs}{path}"),
                &[
                    ("csrf_token", &app.token()),
                    ("url", "https://evil.example/"),
                    ("event_types", "case.linked"),
                ],
            )
            .await;
        assert_eq!(r.status(), Status::NotFound, "POST {path}");
    }
    let r = app
        .client
        .get("/integrations/events/new?service=licences")
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::NotFound);
    let r = app
        .post_form(
            "/integrations/events/new",
            &[
                ("csrf_token", &app.token()),
                ("service", "licences"),
                ("url", "https://crm.example.gov.uk/"),
                ("event_types", "case.linked"),
            ],
        )
        .await;
    assert_eq!(
        r.status(),
        Status::UnprocessableEntity,
        "not one of their services"
    );
    let e = event_store::endpoint(&app.state.db, theirs)
        .await
        .unwrap()
        .unwrap();
    assert!(e.enabled && e.url.ends_with("/licences"), "unchanged");
    // A caseworker may not manage integrations at all.
    let cw = app
        .person("cw@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let cookie = app.session_for(&cw).await;
    let r = app
        .client
        .get("/integrations/events")
        .cookie(cookie)
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);
}

/// Editing and switching an endpoint off and on, through the pages; all audited.
#[tokio::test]
async fn endpoints_are_changed_disabled_and_enabled_through_the_pages() {
    let app = loopback_app().await;
    let service_id = app.service("parking").await;
    let (id, _) = endpoint(
        &app,
        service_id,
        "http://127.0.0.1:9/a",
        &[EventType::CaseLinked],
    )
    .await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;
    let r = app
        .post_form(
            &format!("/integrations/events/{id}/edit"),
            &[
                ("csrf_token", &app.token()),
                ("url", "http://127.0.0.1:9/b"),
                ("description", "New CRM"),
                ("event_types", "refund.failed"),
                ("event_types", "refund.succeeded"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    let e = event_store::endpoint(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.url, "http://127.0.0.1:9/b");
    assert_eq!(e.event_types, "refund.succeeded refund.failed");
    let bad = app
        .post_form(
            &format!("/integrations/events/{id}/edit"),
            &[
                ("csrf_token", &app.token()),
                ("url", "https://10.0.0.1/"),
                ("event_types", "refund.failed"),
            ],
        )
        .await;
    assert_eq!(bad.status(), Status::UnprocessableEntity);
    let r = app
        .post_form(
            &format!("/integrations/events/{id}/disable"),
            &[("csrf_token", &app.token())],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(
        emit(&app, service_id, EventType::RefundSucceeded, 1).await,
        0,
        "disabled"
    );
    let r = app
        .post_form(
            &format!("/integrations/events/{id}/enable"),
            &[("csrf_token", &app.token())],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(
        emit(&app, service_id, EventType::RefundSucceeded, 2).await,
        1
    );
    let actions = audit_actions(&app).await;
    for a in [
        "event_endpoint_created",
        "event_endpoint_updated",
        "event_endpoint_disabled",
        "event_endpoint_enabled",
    ] {
        assert!(actions.contains(&a.to_string()), "{a}: {actions:?}");
    }
    let page = app
        .client
        .get(format!("/integrations/events/{id}"))
        .dispatch()
        .await;
    assert_eq!(page.status(), Status::Ok);
    let _ = ContentType::Form;
}

/// A refund that commits in one `paydesk serve` process whose delivery is under way when
/// the process is killed (kill -9) still reaches the CRM: another process delivers it, with
/// the same `webhook-id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_delivered_after_its_process_is_killed_right_after_the_refund_commits() {
    use rocket::figment::providers::Serialized;
    use rocket::figment::Figment;
    let sandbox = refund_sandbox(1);
    let db = TestDb::new().await;
    // This process uses the servers' secret key, so they can open what it seals.
    let figment =
        Figment::from(rocket::Config::debug_default()).merge(Serialized::defaults(json!({
            "database_url": db.url(),
            "log_format": "text",
            "secret_key": "3f1c9a7e5b2d4f6081a3c5e7092b4d6f8a1c3e5072b4d6f8091a2b3c4d5e6f70",
            "jobs_enabled": false,
            "db_max_connections": 5,
            "events_allow_loopback": true,
            "platform_hosts": "127.0.0.1",
        })));
    let config = paydesk::config::Config::from_figment(&figment, false).unwrap();
    let state = paydesk::AppState::open(config, paydesk::clock::system())
        .await
        .unwrap();
    let service_id = paydesk::services::add(
        &state,
        paydesk::audit::Actor::System,
        &paydesk::services::NewService {
            slug: "parking".into(),
            name: "Parking".into(),
            time_zone: "Europe/London".into(),
            platform_url: Some(sandbox.base_url.clone()),
            credentials: Some(paydesk::platform::client::Credentials::ApiKey {
                api_key: SandboxProcess::api_key(1),
            }),
            webhook_secret: None,
        },
    )
    .await
    .unwrap()
    .unwrap();
    let crm = Crm::start(vec![Reply::Hang], ok()).await;
    let (_, secret) = events::create(
        &state.db,
        &state.config,
        state.clock.now(),
        paydesk::audit::Actor::System,
        None,
        service_id,
        None,
        &input(&crm.url("/hook"), &[EventType::RefundSucceeded]),
    )
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
    let created = sandbox
        .create_payment(&SandboxProcess::api_key(1), 3000, "KILLED")
        .await;
    let payment_id = created["payment_id"].as_str().unwrap().to_string();
    sandbox.advance_payment(&payment_id, "success", None).await;
    let service = paydesk::services::by_id(&state.db, service_id)
        .await
        .unwrap()
        .unwrap();
    let client = state.platforms.client(&state.config, &service).unwrap();
    let journey = paydesk::journeys::sync::refresh_with(
        &state.db,
        state.clock.now(),
        client.as_ref(),
        service_id,
        &payment_id,
    )
    .await
    .unwrap();

    let env = [
        ("PAYDESK_JOB_LEASE_SECS", "3"),
        ("PAYDESK_JOB_POLL_MS", "100"),
        ("PAYDESK_EVENTS_ALLOW_LOOPBACK", "true"),
    ];
    let first = Server::start(db.url(), &env);
    let asked = refunds::request(
        &state.db,
        state.clock.now(),
        &Staff {
            id: who.staff_id,
            email: "cw@example.gov.uk".into(),
            name: "Casey".into(),
            ip: None,
        },
        &Ask {
            service_id,
            journey_id: journey.journey_id,
            payment_id,
            how_much: Ok(refunds::HowMuch::Full),
            reason: "duplicate".into(),
            form_key: "killed-1".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let Asked::Made { id: request_id, .. } = asked else {
        panic!("refused: {asked:?}");
    };
    // The first process refunds, commits the success with its event, and starts delivering:
    // the CRM holds that request open, and the process is killed.
    let started = eventually(Duration::from_secs(30), || async {
        (!crm.seen().is_empty()).then_some(())
    })
    .await;
    assert!(started.is_some(), "the first process began the delivery");
    first.kill_hard();
    let row = paydesk::store::refunds::by_id(&state.db, request_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, "succeeded");

    let second = Server::start(db.url(), &env);
    let done = eventually(Duration::from_secs(40), || async {
        (crm.seen().len() >= 2).then_some(())
    })
    .await;
    assert!(done.is_some(), "another process delivered the event");
    let seen = crm.seen();
    assert_eq!(seen[0].id(), seen[1].id(), "the same message");
    assert!(seen.iter().all(|s| s.signed_by(&secret)));
    assert_eq!(seen[1].json()["type"], "refund.succeeded");
    assert_eq!(seen[1].json()["data"]["refund_request_id"], request_id);
    let delivered = eventually(Duration::from_secs(10), || async {
        let endpoint = event_store::all_endpoints(&state.db).await.ok()?[0].id;
        let d = event_store::deliveries_of(&state.db, endpoint, None, 10)
            .await
            .ok()?;
        (d.first()?.status == "succeeded").then_some(())
    })
    .await;
    assert!(delivered.is_some());
    drop(second);
}

/// A dispute's events are written with its upsert: `dispute.created` when first seen open,
/// `dispute.updated` once per status it moves to, nothing for a stale or repeated read.
#[tokio::test]
async fn dispute_events_are_written_with_the_dispute_once_per_status() {
    let app = loopback_app().await;
    let service_id = app.service("parking").await;
    let crm = Crm::start(vec![], ok()).await;
    let (endpoint_id, _) = endpoint(
        &app,
        service_id,
        &crm.url("/hook"),
        &[EventType::DisputeCreated, EventType::DisputeUpdated],
    )
    .await;
    let record = |status: &'static str| {
        let app = &app;
        async move {
            let d: paydesk::platform::dispute_wire::Dispute = serde_json::from_value(json!({
                "dispute_id": "dp-1", "payment_id": "pay-1", "amount": 1200, "fee": 2000,
                "created_date": "2026-11-01T10:00:00.000Z", "reason": "fraudulent",
                "status": status
            }))
            .unwrap();
            let now = paydesk::store::to_micros(app.clock.now());
            let mut tx = app.state.db.begin().await.unwrap();
            paydesk::disputes::record(&mut tx, service_id, &[d], now, now)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    for status in [
        "needs_response",
        "needs_response",
        "under_review",
        "needs_response",
        "lost",
        "lost",
    ] {
        record(status).await;
    }
    let mut kinds: Vec<(String, String)> = deliveries(&app, endpoint_id)
        .await
        .into_iter()
        .map(|d| {
            let body: serde_json::Value = serde_json::from_str(&d.payload).unwrap_or_default();
            (
                d.event_type,
                body["data"]["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("dispute.created".to_string(), "needs_response".to_string()),
            ("dispute.updated".to_string(), "lost".to_string()),
            ("dispute.updated".to_string(), "under_review".to_string()),
        ]
    );
}
