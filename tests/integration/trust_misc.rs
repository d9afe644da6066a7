//! Issue 16, items 12, 13, 14 and 16, tried the way an attacker would: lock a known person
//! out and then try to unlock them with their mailbox alone; type a card number where staff
//! write text, and have a payer type one where the platform passes text on; hide a formula in
//! an export cell; and kill a worker in the middle of a job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paydesk::clock::Clock;
use paydesk::identity::permissions::Role;
use paydesk::jobs::{
    self, JobContext, JobFailure, JobHandler, JobKind, JobRun, JobRunner, Registry,
};
use paydesk::journeys::sync::{self, BackfillSettings, Pass, Stream};
use paydesk::refunds::{self, Ask, Asked, RefundSettings, Requester};
use paydesk::store::jobs as job_store;
use paydesk::store::refunds as refund_store;
use paydesk::store::{self, staff as staff_store, Db};
use rocket::http::{ContentType, Header, Status};
use serde_json::{json, Value};
use time::macros::datetime;

use crate::common::sandbox::SandboxProcess;
use crate::common::*;

const PAN_FORMS: [&str; 3] = [
    "4012888888881881",
    "4012-8888-8888-1881",
    "4012 8888 8888 1881",
];
const MASKED: &str = "401288******1881";
const REFUSAL: &str = paydesk::card_data::REFUSAL;

fn unescape(html: &str) -> String {
    html.replace("&#x2F;", "/")
        .replace("&amp;", "&")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
}

fn assert_no_pan(what: &str, text: &str) {
    for pan in PAN_FORMS {
        assert!(!text.contains(pan), "{what} holds {pan}: {text}");
    }
}

/// Mail queued for `to` (job payloads, read before the worker sends and scrubs them).
async fn queued_mail(app: &TestApp, to: &str) -> Vec<Value> {
    job_store::list(&app.state.db, None, 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == "mail_send")
        .filter_map(|j| serde_json::from_str::<Value>(&j.payload).ok())
        .filter(|m| m["to"] == to)
        .collect()
}

fn reset_path_in(text: &str) -> Option<String> {
    let start = text.find("/reset-password/")?;
    let token: String = text[start + "/reset-password/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Some(format!("/reset-password/{token}"))
}

// ---- 12: lockout ----------------------------------------------------------------------------

async fn post_from(
    app: &TestApp,
    ip: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (Status, String, String) {
    let r = app
        .client
        .post(path.to_string())
        .header(ContentType::Form)
        .header(Header::new("X-Forwarded-For", ip.to_string()))
        .body(form_body(fields))
        .dispatch()
        .await;
    let status = r.status();
    let loc = location(&r);
    let body = r.into_string().await.unwrap_or_default();
    (status, loc, unescape(&body))
}

async fn ask_reset(app: &TestApp, ip: &str, email: &str) -> String {
    let before = queued_mail(app, email).await.len();
    let token = app.signed_out_token("/forgot-password").await;
    let (status, _, _) = post_from(
        app,
        ip,
        "/forgot-password",
        &[("csrf_token", &token), ("email", email)],
    )
    .await;
    assert_eq!(status, Status::Ok);
    let mails = queued_mail(app, email).await;
    assert_eq!(mails.len(), before + 1, "a reset email");
    // Newest first: the link in the mail just queued.
    mails
        .iter()
        .find_map(|m| m["text"].as_str().and_then(reset_path_in))
        .expect("a reset link")
}

async fn staff_row(app: &TestApp, id: i64) -> paydesk::store::staff::StaffRow {
    staff_store::staff_by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap()
}

/// A code from `secret` that is not the one the app would accept now (nor either side).
fn wrong_code(app: &TestApp, secret: &[u8]) -> String {
    let now = app.clock.now().unix_timestamp();
    let step = paydesk::identity::totp::step_at(now);
    let right: Vec<String> = (step - 1..=step + 1)
        .map(|s| paydesk::identity::totp::code_for_step(secret, s))
        .collect();
    (0..1000)
        .map(|n| format!("{:06}", 123_457 + n))
        .find(|c| !right.contains(c))
        .unwrap()
}

#[tokio::test]
async fn a_locked_person_is_told_by_email_and_only_their_link_with_their_code_unlocks() {
    let app = TestApp::with_config(|c| c.trusted_ip_header = Some("X-Forwarded-For".into())).await;
    app.service("parking").await;
    let ada = app
        .person("ada@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let attacker = "203.0.113.66";

    // The attacker knows only Ada's address: ten wrong passwords lock her out.
    for i in 0..10 {
        let token = app.signed_out_token("/login").await;
        let wrong = format!("guess number {i}");
        let (status, loc, _) = post_from(
            &app,
            attacker,
            "/login",
            &[
                ("csrf_token", &token),
                ("email", &ada.email),
                ("password", &wrong),
            ],
        )
        .await;
        assert_ne!(loc, "/login/code", "attempt {i}: {status}");
    }
    let row = staff_row(&app, ada.id).await;
    assert!(
        row.locked_until
            .is_some_and(|u| u > store::to_micros(app.clock.now())),
        "locked"
    );
    // Her right password no longer works.
    let token = app.signed_out_token("/login").await;
    let (_, loc, _) = post_from(
        &app,
        "198.51.100.7",
        "/login",
        &[
            ("csrf_token", &token),
            ("email", &ada.email),
            ("password", &ada.password),
        ],
    )
    .await;
    assert_ne!(loc, "/login/code", "locked out");

    // She is told: when, and from which address (the client address sign-in recorded).
    let mails = queued_mail(&app, &ada.email).await;
    assert_eq!(mails.len(), 1, "exactly one lock email: {mails:?}");
    let mail = &mails[0];
    assert_eq!(mail["subject"], "Your paydesk account has been locked");
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains(attacker), "{text}");
    assert!(text.contains("/forgot-password"), "{text}");
    assert!(!text.contains("198.51.100.7"), "{text}");
    assert!(mail["html"].as_str().unwrap().contains(attacker));
    let locks = paydesk::store::audit::by_action(&app.state.db, "authn_login_lock")
        .await
        .unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].origin_ip.as_deref(), Some(attacker));

    // The attacker also holds her mailbox: a reset link alone does not unlock the account.
    let path = ask_reset(&app, attacker, &ada.email).await;
    let r = app.client.get(path.as_str()).dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    let html = unescape(&r.into_string().await.unwrap());
    assert!(html.contains("Code from your authenticator app"), "{html}");
    let csrf = input_value(&html, "csrf_token").unwrap();
    let new = "a brand new passphrase for ada";
    let (status, _, html) = post_from(
        &app,
        attacker,
        &path,
        &[
            ("csrf_token", &csrf),
            ("password", new),
            ("password_confirmation", new),
        ],
    )
    .await;
    assert_eq!(status, Status::UnprocessableEntity, "{html}");
    assert!(
        html.contains("enter the code from your authenticator app"),
        "{html}"
    );
    let still = staff_row(&app, ada.id).await;
    assert_eq!(still.password_hash, row.password_hash, "password unchanged");
    assert!(still.locked_until.is_some(), "still locked");

    // A guessed code uses the link up and changes nothing.
    let guess = wrong_code(&app, &ada.secret);
    let (status, _, html) = post_from(
        &app,
        attacker,
        &path,
        &[
            ("csrf_token", &csrf),
            ("password", new),
            ("password_confirmation", new),
            ("code", &guess),
        ],
    )
    .await;
    assert_eq!(status, Status::Forbidden, "{html}");
    assert!(html.contains("The code was not right"), "{html}");
    assert_eq!(
        app.client.get(path.as_str()).dispatch().await.status(),
        Status::NotFound,
        "the link is used up"
    );
    let (status, _, _) = post_from(
        &app,
        attacker,
        &path,
        &[
            ("csrf_token", &csrf),
            ("password", new),
            ("password_confirmation", new),
            ("code", &app.code_now(&ada.secret)),
        ],
    )
    .await;
    assert_eq!(status, Status::NotFound, "not even with the right code now");
    let still = staff_row(&app, ada.id).await;
    assert_eq!(still.password_hash, row.password_hash, "password unchanged");
    assert!(still
        .locked_until
        .is_some_and(|u| u > store::to_micros(app.clock.now())));

    // Ada, with her mailbox and her authenticator: a new link and a right code unlock her.
    let path = ask_reset(&app, "198.51.100.7", &ada.email).await;
    let html = unescape(
        &app.client
            .get(path.as_str())
            .dispatch()
            .await
            .into_string()
            .await
            .unwrap(),
    );
    let csrf = input_value(&html, "csrf_token").unwrap();
    app.next_code_window();
    let code = app.code_now(&ada.secret);
    let (status, loc, html) = post_from(
        &app,
        "198.51.100.7",
        &path,
        &[
            ("csrf_token", &csrf),
            ("password", new),
            ("password_confirmation", new),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(status, Status::SeeOther, "{html}");
    assert_eq!(loc, "/login?reason=password_changed");
    let unlocked = staff_row(&app, ada.id).await;
    assert_eq!(unlocked.locked_until, None);
    assert_eq!(unlocked.failed_attempts, 0);
    let unlocks = paydesk::store::audit::by_action(&app.state.db, "authn_unlock")
        .await
        .unwrap();
    assert_eq!(unlocks.len(), 2, "one refused, one done");
    assert_eq!(unlocks[0].outcome, "failure");
    assert_eq!(unlocks[1].outcome, "success");
    // The code she used cannot be used again, and she signs in with the new password.
    let mut updated = ada.clone();
    updated.password = new.into();
    app.sign_in(&updated).await;
}

#[tokio::test]
async fn a_reset_of_an_account_that_is_not_locked_asks_for_no_code() {
    let app = TestApp::new().await;
    app.service("parking").await;
    let ada = app
        .person("ada@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let path = ask_reset(&app, "198.51.100.7", &ada.email).await;
    let html = unescape(
        &app.client
            .get(path.as_str())
            .dispatch()
            .await
            .into_string()
            .await
            .unwrap(),
    );
    assert!(!html.contains("authenticator app"), "{html}");
    let csrf = input_value(&html, "csrf_token").unwrap();
    let new = "another new passphrase here";
    let r = app
        .post_form(
            &path,
            &[
                ("csrf_token", &csrf),
                ("password", new),
                ("password_confirmation", new),
            ],
        )
        .await;
    assert_eq!(location(&r), "/login?reason=password_changed");
}

// ---- 13: card numbers -----------------------------------------------------------------------

struct Platform {
    app: TestApp,
    sandbox: SandboxProcess,
    service_id: i64,
}

async fn platform() -> Platform {
    let sandbox = SandboxProcess::start_with(&["--seed", "0", "--accounts", "1"]);
    let app = TestApp::with_config(|c| {
        c.platform_timeout_ms = 1500;
        c.platform_retries = 0;
    })
    .await;
    let service_id = sandbox.connect(&app, "parking", 1).await;
    Platform {
        app,
        sandbox,
        service_id,
    }
}

/// Create a payment on the sandbox with the given body fields, pay it on the card page with
/// `holder` as the cardholder name, and return its id.
async fn payer_types(p: &Platform, fields: Value, holder: &str) -> String {
    // The card page sends the payer back to the service's return_url: do not follow it.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut body = json!({
        "amount": 2500,
        "return_url": "https://service.example/return",
    });
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    let created: Value = http
        .post(p.sandbox.url("/v1/payments"))
        .bearer_auth(SandboxProcess::api_key(1))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["payment_id"].as_str().expect("created").to_string();
    let next = created["_links"]["next_url"]["href"]
        .as_str()
        .expect("a next_url")
        .to_string();
    assert_eq!(http.get(&next).send().await.unwrap().status(), 200);
    let paid = http
        .post(&next)
        .form(&[
            ("card_number", "4111111111111111"),
            ("expiry_month", "12"),
            ("expiry_year", "2035"),
            ("cvc", "123"),
            ("cardholder_name", holder),
        ])
        .send()
        .await
        .unwrap();
    assert!(paid.status().as_u16() < 400, "paid: {}", paid.status());
    id
}

/// Every byte paydesk's database holds: the SQLite files, or every PostgreSQL table as text.
async fn database_text(app: &TestApp) -> String {
    match &app.state.db {
        Db::Sqlite(..) => {
            // Flush the WAL into the file, then read the folder's files as bytes.
            if let Db::Sqlite(_, writer) = &app.state.db {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&writer.pool)
                    .await
                    .unwrap();
            }
            let url = app.db.url().trim_start_matches("sqlite://").to_string();
            let folder = std::path::Path::new(&url).parent().unwrap().to_path_buf();
            let mut all = Vec::new();
            for e in std::fs::read_dir(folder).unwrap().flatten() {
                all.extend(std::fs::read(e.path()).unwrap_or_default());
            }
            String::from_utf8_lossy(&all).into_owned()
        }
        Db::Postgres(pool, _) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let mut all = String::new();
            for t in tables {
                let sql =
                    format!("SELECT COALESCE(string_agg(x::text, E'\\n'), '') FROM \"{t}\" x");
                let text: String = sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap();
                all.push_str(&text);
                all.push('\n');
            }
            all
        }
    }
}

#[tokio::test]
async fn card_numbers_payers_type_are_masked_before_anything_stores_them() {
    let p = platform().await;
    let app = &p.app;
    let id = payer_types(
        &p,
        json!({
            "reference": "4012-8888-8888-1881",
            "description": "Permit for card 4012 8888 8888 1881",
            "email": "4012888888881881@example.org",
            "metadata": {"case_reference": "4012 8888 8888 1881", "note": "paid with 4012-8888-8888-1881"},
        }),
        "Sam 4012888888881881",
    )
    .await;
    // A webhook-triggered refresh and a backfill: both paths store the payment.
    let service = paydesk::services::by_id(&app.state.db, p.service_id)
        .await
        .unwrap()
        .unwrap();
    let client = app
        .state
        .platforms
        .client(&app.state.config, &service)
        .unwrap();
    let done = sync::refresh_with(
        &app.state.db,
        app.state.clock.now(),
        client.as_ref(),
        p.service_id,
        &id,
    )
    .await
    .unwrap();
    for stream in [Stream::Payments, Stream::Refunds] {
        let pass = sync::backfill(
            &app.state.db,
            time::OffsetDateTime::now_utc,
            client.as_ref(),
            p.service_id,
            stream,
            BackfillSettings {
                overlap: Duration::from_secs(900),
                page_size: 100,
                budget: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(pass, Pass::Complete);
    }

    let j = paydesk::store::journeys::journey_by_id(&app.state.db, done.journey_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.reference, MASKED);
    assert_eq!(j.description, format!("Permit for card {MASKED}"));
    assert_eq!(
        j.email.as_deref(),
        Some(format!("{MASKED}@example.org").as_str())
    );
    assert_eq!(
        j.cardholder_name.as_deref(),
        Some(format!("Sam {MASKED}").as_str())
    );
    assert_eq!(j.case_reference.as_deref(), Some(MASKED));
    assert!(j
        .metadata
        .as_deref()
        .unwrap()
        .contains(&format!("paid with {MASKED}")));

    // Nowhere in the database files (or tables), in any form.
    let everything = database_text(app).await;
    assert!(everything.contains(MASKED), "the masked form is there");
    assert_no_pan("the database", &everything);

    // Not on the payment's page, and not in an export.
    let finance = app
        .person("fin@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    app.sign_in(&finance).await;
    let page = app
        .client
        .get(format!("/payments/{id}?service=parking"))
        .dispatch()
        .await;
    assert_eq!(page.status(), Status::Ok);
    let page = unescape(&page.into_string().await.unwrap());
    assert!(page.contains(MASKED), "{page}");
    assert_no_pan("the payment page", &page);
    let today = app.clock.now().date();
    let (from, to) = (
        (today - time::Duration::days(400)).to_string(),
        (today + time::Duration::days(400)).to_string(),
    );
    let token = app.token();
    let csv = app
        .post_form(
            "/exports",
            &[
                ("csrf_token", &token),
                ("services", "parking"),
                ("from", &from),
                ("to", &to),
                ("include", "payments"),
            ],
        )
        .await;
    assert_eq!(csv.status(), Status::Ok);
    let csv = csv.into_string().await.unwrap();
    assert!(csv.contains(MASKED), "{csv}");
    assert_no_pan("the export", &csv);
}

/// A request over the approval threshold, made directly, for the decision pages.
async fn awaiting_request(p: &Platform, journey_id: i64, payment_id: &str, by: i64) -> i64 {
    let asked = refunds::request_as(
        &p.app.state.db,
        p.app.state.clock.now(),
        &Requester {
            staff_id: by,
            name: "Case Worker".into(),
            actor: paydesk::audit::Actor::staff(by, "cw@example.gov.uk"),
            ip: None,
        },
        &Ask {
            service_id: p.service_id,
            journey_id,
            payment_id: payment_id.into(),
            how_much: "partial".into(),
            amount: "5.00".into(),
            reason: "duplicate".into(),
            form_key: "trust-misc-1".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    match asked {
        Asked::Made { id, .. } => id,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn card_numbers_staff_type_are_refused_in_the_pages_and_the_api() {
    let p = platform().await;
    let app = &p.app;
    let mut tx = app.state.db.begin().await.unwrap();
    refund_store::set_settings(
        &mut tx,
        p.service_id,
        &RefundSettings {
            refund_approval_threshold: Some(1),
            ..Default::default()
        },
        0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (payment, journey_id) = p
        .sandbox
        .payment_in(app, "parking", 1, 9000, "CARD-TYPED", Some("success"))
        .await;
    let caseworker = app
        .person("cw@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let finance = app
        .person("fin@example.gov.uk", Role::Finance, Some("parking"))
        .await;

    // The refund form: a card number in the comment or the case reference is refused.
    app.sign_in(&caseworker).await;
    for (field, pan) in [("comment", PAN_FORMS[1]), ("case_reference", PAN_FORMS[2])] {
        let r = app
            .client
            .get(format!("/payments/{payment}/refund?service=parking"))
            .dispatch()
            .await;
        let html = unescape(&r.into_string().await.unwrap());
        let key = input_value(&html, "form_key").expect("form key");
        let token = app.token();
        let mut fields = vec![
            ("csrf_token", token.as_str()),
            ("service", "parking"),
            ("form_key", key.as_str()),
            ("how_much", "partial"),
            ("amount", "5.00"),
            ("reason", "duplicate"),
            ("comment", "Paid twice"),
            ("case_reference", "CASE-1"),
        ];
        fields.retain(|(k, _)| *k != field);
        fields.push((field, pan));
        let r = app
            .post_form(&format!("/payments/{payment}/refund"), &fields)
            .await;
        let status = r.status();
        let html = unescape(&r.into_string().await.unwrap());
        assert!(status.code >= 400 && status.code < 500, "{field}: {status}");
        assert!(html.contains(REFUSAL), "{field}: {html}");
        assert!(!html.contains("Check your answers"), "{field}");
    }
    assert!(refund_store::for_journey(&app.state.db, journey_id)
        .await
        .unwrap()
        .is_empty());

    // Approving or rejecting with a card number in the comment is refused too.
    let request = awaiting_request(&p, journey_id, &payment, caseworker.id).await;
    let token = app.token();
    let r = app.post_form("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(r.status(), Status::SeeOther);
    app.sign_in(&finance).await;
    for (path, fields) in [
        (
            format!("/refunds/{request}/approve"),
            vec![("amount", "500"), ("approval_comment", PAN_FORMS[0])],
        ),
        (
            format!("/refunds/{request}/reject"),
            vec![("rejection_comment", PAN_FORMS[1])],
        ),
    ] {
        let token = app.token();
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend(fields);
        let r = app.post_form(&path, &all).await;
        let status = r.status();
        let html = unescape(&r.into_string().await.unwrap());
        assert!(status.code >= 400 && status.code < 500, "{path}: {status}");
        assert!(html.contains(REFUSAL), "{path}: {html}");
    }
    let row = refund_store::by_id(&app.state.db, request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, "awaiting_approval");

    // The API: refund comment, refund case reference and case link.
    let secret = paydesk::integrations::api_tokens::create(
        &app.state.db,
        app.state.clock.now(),
        paydesk::audit::Actor::System,
        caseworker.id,
        None,
        &paydesk::integrations::api_tokens::NewToken {
            service_id: p.service_id,
            name: "CRM".into(),
            scopes: ["payments:read", "refunds:request", "cases:link"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            expires_in_days: None,
        },
    )
    .await
    .unwrap()
    .unwrap()
    .secret;
    let api = |method: rocket::http::Method, path: String, body: Value| {
        let secret = secret.clone();
        async move {
            let r = app
                .client
                .req(method, path)
                .header(Header::new("Authorization", format!("Bearer {secret}")))
                .header(ContentType::JSON)
                .body(body.to_string())
                .dispatch()
                .await;
            let status = r.status().code;
            let json: Value = serde_json::from_str(&r.into_string().await.unwrap_or_default())
                .unwrap_or_default();
            (status, json)
        }
    };
    for body in [
        json!({"reason": "duplicate", "amount": 100, "comment": PAN_FORMS[2]}),
        json!({"reason": "duplicate", "amount": 100, "case_reference": PAN_FORMS[1]}),
    ] {
        let (status, json) = api(
            rocket::http::Method::Post,
            format!("/api/v1/payments/{payment}/refunds"),
            body.clone(),
        )
        .await;
        assert_eq!(status, 422, "{body}: {json}");
        assert!(json.to_string().contains(REFUSAL), "{json}");
        assert_no_pan("the API answer", &json.to_string());
    }
    let (status, json) = api(
        rocket::http::Method::Put,
        format!("/api/v1/payments/{payment}/case"),
        json!({"case_reference": PAN_FORMS[1]}),
    )
    .await;
    assert_eq!(status, 422, "{json}");
    assert!(json.to_string().contains(REFUSAL), "{json}");
    // The refusals left nothing behind.
    let requests = refund_store::for_journey(&app.state.db, journey_id)
        .await
        .unwrap();
    assert_eq!(requests.len(), 1, "only the request made directly");
    assert_no_pan("the database", &database_text(app).await);
}

// ---- 14: spreadsheet cells ------------------------------------------------------------------

#[tokio::test]
async fn export_cells_hide_no_formula_behind_spaces_bars_semicolons_or_line_breaks() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let finance = app
        .person("finance@example.gov", Role::Finance, Some("parking"))
        .await;
    // (what a payer typed, how the CSV must carry it)
    let cases: [(&str, &str); 10] = [
        (" =1+1", "' =1+1"),
        ("\u{A0}=1+1", "'\u{A0}=1+1"),
        (
            "\u{200B}=HYPERLINK(\"x\")",
            "\"'\u{200B}=HYPERLINK(\"\"x\"\")\"",
        ),
        ("\u{FEFF}@SUM(A1)", "'\u{FEFF}@SUM(A1)"),
        ("|calc", "'|calc"),
        (";=1+1", "';=1+1"),
        ("note\n=1+1", "\"note\n'=1+1\""),
        ("note\r\n+1", "\"note\r\n'+1\""),
        ("note\r -cmd", "\"note\r' -cmd\""),
        ("plain\nline", "\"plain\nline\""),
    ];
    let at = datetime!(2026-10-02 09:00 UTC);
    let records: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (typed, _))| {
            let mut j = journey_record(
                &format!("pay-{i}"),
                typed,
                at + time::Duration::minutes(i as i64),
            );
            j.description = typed.to_string();
            j
        })
        .collect();
    store_journeys(&app, parking, &records).await;
    app.sign_in(&finance).await;
    let token = app.token();
    let r = app
        .post_form(
            "/exports",
            &[
                ("csrf_token", &token),
                ("services", "parking"),
                ("from", "2026-10-01"),
                ("to", "2026-10-31"),
                ("include", "payments"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::Ok);
    let csv = r.into_string().await.unwrap();
    for (typed, want) in cases {
        // Reference and description both carry it.
        assert!(
            csv.matches(want).count() >= 2,
            "{typed:?} should be written {want:?}:\n{csv}"
        );
    }
    // No line of the file, as a line-by-line reader sees it, starts a formula.
    for line in csv.split(['\r', '\n']) {
        let start = line.trim_start_matches([' ', '\u{A0}', '\u{200B}', '\u{FEFF}', ';', '"']);
        assert!(
            !start.starts_with(['=', '+', '-', '@', '|']),
            "a line starts a formula: {line:?}"
        );
    }
}

// ---- 16: job leases -------------------------------------------------------------------------

/// Sleeps `ms` (real time) and records each attempt that ran to its end.
struct Slow {
    finished: Arc<Mutex<HashMap<i64, Vec<i32>>>>,
}

const SLOW: JobKind = JobKind {
    name: "trust_slow",
    retry_delays_secs: &[1],
};

#[async_trait::async_trait]
impl JobHandler for Slow {
    fn kind(&self) -> JobKind {
        SLOW
    }
    async fn run(&self, _ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let ms = job.payload["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.finished
            .lock()
            .unwrap()
            .entry(job.id)
            .or_default()
            .push(job.attempt);
        Ok(())
    }
}

fn slow_runner(
    app: &TestApp,
    db: Db,
    worker: &str,
    finished: &Arc<Mutex<HashMap<i64, Vec<i32>>>>,
) -> JobRunner {
    let mut registry = Registry::standard();
    registry.register(Arc::new(Slow {
        finished: finished.clone(),
    }));
    let ctx = JobContext {
        db,
        clock: app.state.clock.clone(),
        config: app.state.config.clone(),
        platforms: app.state.platforms.clone(),
        metrics: app.state.metrics.clone(),
    };
    JobRunner::new(ctx, Arc::new(registry))
        .with_worker_id(worker)
        .with_jitter(|| 0.0)
}

async fn enqueue_slow(app: &TestApp, ms: u64) -> i64 {
    let now = app.clock.now();
    let mut tx = app.state.db.begin().await.unwrap();
    let id = jobs::enqueue(&mut tx, SLOW, &json!({"ms": ms}), now, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

fn attempts_of(rows: &[job_store::AttemptRow]) -> Vec<(i32, String, String)> {
    rows.iter()
        .map(|a| (a.attempt, a.outcome.clone(), a.worker.clone()))
        .collect()
}

#[test]
fn the_default_lease_is_a_minute_and_is_renewed_every_twenty_seconds() {
    let config = paydesk::config::Config::for_tests("sqlite::memory:");
    assert_eq!(config.job_lease_secs, 60);
    assert_eq!(
        JobRunner::heartbeat_interval(Duration::from_secs(60)),
        Duration::from_secs(20)
    );
    assert_eq!(
        JobRunner::heartbeat_interval(Duration::from_secs(300)),
        Duration::from_secs(20),
        "at most every 20 s"
    );
    assert_eq!(
        JobRunner::heartbeat_interval(Duration::from_secs(3)),
        Duration::from_secs(1)
    );
}

#[tokio::test]
async fn a_long_job_keeps_its_lease_while_its_worker_lives() {
    let app = TestApp::with_config(|c| c.job_lease_secs = 2).await;
    let finished = Arc::new(Mutex::new(HashMap::new()));
    let id = enqueue_slow(&app, 5_000).await;
    let a = slow_runner(&app, app.db.connect().await, "worker-a", &finished);
    let b = slow_runner(&app, app.db.connect().await, "worker-b", &finished);
    let running = tokio::spawn(async move { a.run_due().await.unwrap() });
    // Time passes for paydesk as it does for the worker; B keeps looking for due jobs.
    let started = Instant::now();
    while !running.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.clock.advance(time::Duration::milliseconds(100));
        assert_eq!(
            b.run_due().await.unwrap().claimed,
            0,
            "B took the job {:?} into it, with a 2 s lease",
            started.elapsed()
        );
    }
    let pass = running.await.unwrap();
    assert_eq!((pass.claimed, pass.succeeded), (1, 1));
    assert!(started.elapsed() >= Duration::from_secs(5));
    let job = job_store::get(&app.state.db, id).await.unwrap().unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("succeeded", 1));
    assert_eq!(finished.lock().unwrap().get(&id), Some(&vec![1]));
}

#[tokio::test]
async fn a_dead_workers_job_is_picked_up_within_the_lease_and_the_old_owner_is_refused() {
    let app = TestApp::new().await;
    let finished = Arc::new(Mutex::new(HashMap::new()));
    let id = enqueue_slow(&app, 0).await;
    let lease = Duration::from_secs(app.state.config.job_lease_secs);
    assert!(lease <= Duration::from_secs(60));
    // Worker A claims the job, as `kill -9` would leave it: no renewal, no result.
    let now = app.clock.now();
    let claimed = job_store::claim(
        &app.state.db,
        "worker-a",
        store::to_micros(now),
        store::to_micros(now + lease),
        10,
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 1);
    let b = slow_runner(&app, app.state.db.clone(), "worker-b", &finished);
    app.clock
        .advance(time::Duration::seconds(lease.as_secs() as i64 - 1));
    assert_eq!(
        b.run_due().await.unwrap().claimed,
        0,
        "held while the lease lasts"
    );
    app.clock.advance(time::Duration::seconds(2));
    let pass = b.run_due().await.unwrap();
    assert_eq!(
        (pass.claimed, pass.succeeded),
        (1, 1),
        "picked up within a minute"
    );

    // A comes back: its renewal and its result are both refused.
    let later = store::to_micros(app.clock.now());
    assert!(
        !job_store::renew(&app.state.db, id, 1, "worker-a", later, later + 60_000_000)
            .await
            .unwrap()
    );
    let mut tx = app.state.db.begin().await.unwrap();
    assert!(
        !job_store::finish(&mut tx, id, 1, "worker-a", later, None, None)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    // Nor can B's own finished attempt be renewed back to life.
    assert!(
        !job_store::renew(&app.state.db, id, 2, "worker-b", later, later + 60_000_000)
            .await
            .unwrap()
    );
    let job = job_store::get(&app.state.db, id).await.unwrap().unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("succeeded", 2));
    assert_eq!(job.locked_by, None);
    assert_eq!(
        attempts_of(&job_store::attempts(&app.state.db, id).await.unwrap()),
        [
            (1, "lost".to_string(), "worker-a".to_string()),
            (2, "succeeded".to_string(), "worker-b".to_string())
        ]
    );
}

#[tokio::test]
async fn a_worker_whose_job_was_taken_over_stops_it_and_records_nothing() {
    let app = TestApp::with_config(|c| c.job_lease_secs = 2).await;
    let finished = Arc::new(Mutex::new(HashMap::new()));
    let id = enqueue_slow(&app, 4_000).await;
    let a = slow_runner(&app, app.db.connect().await, "worker-a", &finished);
    let b = slow_runner(&app, app.db.connect().await, "worker-b", &finished);
    let started = Instant::now();
    let a_pass = tokio::spawn(async move { a.run_due().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A stalls as far as the database can tell (its clock jumps past the lease, as if the
    // process had been paused), and B takes the job over.
    app.clock.advance(time::Duration::seconds(10));
    let b_pass = tokio::spawn(async move { b.run_due().await.unwrap() });
    let a_pass = a_pass.await.unwrap();
    assert_eq!(
        (a_pass.claimed, a_pass.fenced_off, a_pass.succeeded),
        (1, 1, 0)
    );
    assert!(
        started.elapsed() < Duration::from_millis(3_500),
        "A stopped at its next heartbeat, not at the end of its work: {:?}",
        started.elapsed()
    );
    let b_pass = b_pass.await.unwrap();
    assert_eq!((b_pass.claimed, b_pass.succeeded), (1, 1));
    assert_eq!(
        finished.lock().unwrap().get(&id),
        Some(&vec![2]),
        "only B's attempt ran to its end"
    );
    assert_eq!(
        app.state.metrics.counter("paydesk_job_leases_lost_total"),
        1
    );
    assert_eq!(
        attempts_of(&job_store::attempts(&app.state.db, id).await.unwrap()),
        [
            (1, "lost".to_string(), "worker-a".to_string()),
            (2, "succeeded".to_string(), "worker-b".to_string())
        ]
    );
}
