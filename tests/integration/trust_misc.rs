//! Issue 16, items 12, 13, 14 and 16, tried the way an attacker would: lock a known person
//! out and then try to unlock them with their mailbox alone; type a card number where staff
//! write text, and have a payer type one where the platform passes text on; hide a formula in
//! an export cell; and kill a worker in the middle of a job.

//!
//! Card numbers are in `cards`, job leases in `leases`.

mod cards;
mod leases;

use paydesk::clock::Clock;
use paydesk::identity::permissions::Role;
use paydesk::store::jobs as job_store;
use paydesk::store::{self, staff as staff_store};
use rocket::http::{ContentType, Header, Status};
use serde_json::Value;
use time::macros::datetime;

use crate::common::*;

pub(crate) const PAN_FORMS: [&str; 3] = [
    "4012888888881881",
    "4012-8888-8888-1881",
    "4012 8888 8888 1881",
];
pub(crate) const MASKED: &str = "401288******1881";
pub(crate) const REFUSAL: &str = paydesk::card_data::REFUSAL;

pub(crate) fn unescape(html: &str) -> String {
    html.replace("&#x2F;", "/")
        .replace("&amp;", "&")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
}

pub(crate) fn assert_no_pan(what: &str, text: &str) {
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
    assert_eq!(status, Status::SeeOther);
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
    let r = app.post_password(&path, &csrf, new).await;
    assert_eq!(location(&r), "/login?reason=password_changed");
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
