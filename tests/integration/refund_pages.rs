//! The refund pages through HTTP, against a real sandbox platform process: a caseworker asks
//! for a refund from a payment's page (form, check your answers, confirm, with the second
//! factor asked again after 5 minutes), bad amounts are shown again with their values, who
//! may see which page, the requester cannot approve their own request, and a finance user
//! approves (the platform then holds exactly one refund) or rejects.

use paydesk::identity::permissions::Role;
use paydesk::refunds::rules::State;
use paydesk::refunds::RefundSettings;
use paydesk::store::refunds as refund_store;
use rocket::http::{ContentType, Status};

use crate::common::sandbox::SandboxProcess;
use crate::common::{
    form_body, input_value, location, refund_app, refund_sandbox, set_refund_settings, Person,
    TestApp,
};

struct World {
    app: TestApp,
    sandbox: SandboxProcess,
    service_id: i64,
    caseworker: Person,
    finance: Person,
    viewer: Person,
    admin: Person,
}

/// A sandbox with no seeded payments and two accounts; the service "parking" on the first
/// (refunds above `threshold` pence need approval) and "council" on the second; a
/// caseworker, a finance person, a viewer and a service admin in parking.
async fn world(threshold: Option<i64>) -> World {
    let sandbox = refund_sandbox(2);
    let app = refund_app(|_| {}).await;
    let service_id = sandbox.connect(&app, "parking", 1).await;
    sandbox.connect(&app, "council", 2).await;
    set_refund_settings(
        &app,
        service_id,
        &RefundSettings {
            refund_approval_threshold: threshold,
            ..Default::default()
        },
    )
    .await;
    let caseworker = app
        .person("cw@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let finance = app
        .person("fin@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    let viewer = app
        .person("viewer@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    World {
        app,
        sandbox,
        service_id,
        caseworker,
        finance,
        viewer,
        admin,
    }
}

/// A payment the platform made and paydesk knows.
struct Paid {
    id: String,
    journey_id: i64,
}

impl World {
    /// A successful payment of `amount` in the service on sandbox `account` (1: parking,
    /// 2: council), read into paydesk.
    async fn paid_in(&self, account: usize, amount: i64, reference: &str) -> Paid {
        let slug = if account == 1 { "parking" } else { "council" };
        let (id, journey_id) = self
            .sandbox
            .payment_in(&self.app, slug, account, amount, reference, Some("success"))
            .await;
        Paid { id, journey_id }
    }

    async fn paid(&self, amount: i64, reference: &str) -> Paid {
        self.paid_in(1, amount, reference).await
    }

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

    async fn requests(&self, p: &Paid) -> Vec<refund_store::RequestRow> {
        refund_store::for_journey(&self.app.state.db, p.journey_id)
            .await
            .unwrap()
    }

    /// Run due jobs until none is left (advancing paydesk's clock between passes).
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

    async fn get(&self, path: &str) -> (Status, String) {
        let r = self.app.client.get(path.to_string()).dispatch().await;
        let status = r.status();
        let html = r.into_string().await.unwrap_or_default();
        // Tera escapes "/" and "&" in text; read pages as a browser shows them.
        (status, unescape(&html))
    }

    /// A form post with the signed-in session's CSRF token: (status, Location, page).
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (Status, String, String) {
        let token = self.app.token();
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        let r = self.app.post_form(path, &all).await;
        let status = r.status();
        let loc = location(&r);
        let html = r.into_string().await.unwrap_or_default();
        (status, loc, unescape(&html))
    }

    async fn sign_out(&self) {
        let (status, _, _) = self.post("/logout", &[]).await;
        assert_eq!(status, Status::SeeOther, "signed out");
    }

    /// The refund form's one-time key, from the form page.
    async fn form_key(&self, p: &Paid) -> String {
        let (status, html) = self.get(&refund_path(p, "?service=parking")).await;
        assert_eq!(status, Status::Ok, "the refund form: {html}");
        input_value(&html, "form_key").expect("a form_key field")
    }

    /// Send the refund form's answers: the answer is a redirect to "Check your answers",
    /// which is read by GET (post/redirect/get). Returns the check page and its address.
    async fn answer(&self, p: &Paid, fields: &[(&str, &str)]) -> (String, String) {
        let (status, loc, html) = self.post(&refund_path(p, ""), fields).await;
        assert_eq!(status, Status::SeeOther, "to the check page: {html}");
        assert!(
            loc.starts_with(&refund_path(p, "/check?service=parking")),
            "{loc}"
        );
        let (status, html) = self.get(&loc).await;
        assert_eq!(status, Status::Ok, "the check page: {html}");
        (html, loc)
    }

    /// Ask for a partial refund through form, check and confirm (no step-up expected);
    /// returns the request's id.
    async fn ask_through_pages(&self, p: &Paid, amount: &str, reason: &str) -> i64 {
        let key = self.form_key(p).await;
        let fields = partial(&key, amount, reason);
        let (html, _) = self.answer(p, &fields).await;
        assert!(html.contains("Check your answers"), "{html}");
        let seen = input_value(&html, "seen").expect("the amount seen");
        let mut confirm = fields.clone();
        confirm.push(("seen", &seen));
        let (status, loc, html) = self.post(&refund_path(p, "/confirm"), &confirm).await;
        assert_eq!(status, Status::SeeOther, "confirmed: {html}");
        let id = loc
            .split("notice=refund-")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("the journey page with the request: {loc}"));
        id
    }
}

fn unescape(html: &str) -> String {
    html.replace("&#x2F;", "/")
        .replace("&amp;", "&")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
}

fn refund_path(p: &Paid, rest: &str) -> String {
    let (path, query) = match rest.strip_prefix('?') {
        Some(q) => ("", format!("?{q}")),
        None => (rest, String::new()),
    };
    format!("/payments/{}/refund{path}{query}", p.id)
}

fn partial<'a>(key: &'a str, amount: &'a str, reason: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("service", "parking"),
        ("form_key", key),
        ("how_much", "partial"),
        ("amount", amount),
        ("reason", reason),
        ("comment", "Paid twice by mistake"),
        ("case_reference", "CASE-42"),
    ]
}

fn state(row: &refund_store::RequestRow) -> State {
    State::parse(&row.state).unwrap()
}

#[tokio::test]
async fn a_caseworker_asks_for_a_partial_refund_through_the_pages() {
    let w = world(Some(1000)).await;
    let p = w.paid(5000, "PAGES-ASK").await;
    w.app.sign_in(&w.caseworker).await;

    // The payment's page offers the refund.
    let (status, html) = w.get(&format!("/payments/{}?service=parking", p.id)).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Refund this payment"), "{html}");
    assert!(
        html.contains(&refund_path(&p, "?service=parking")),
        "{html}"
    );
    assert!(!html.contains("Refund requests"), "no requests yet");

    // The form: how much (full or partial), why, a comment and a case reference.
    let (status, html) = w.get(&refund_path(&p, "?service=parking")).await;
    assert_eq!(status, Status::Ok);
    assert!(
        html.contains("Full refund (£50.00, everything still refundable)"),
        "{html}"
    );
    assert!(html.contains("Partial refund"));
    assert!(html.contains("Requested by the payer") && html.contains("Duplicate payment"));
    assert!(html.contains("Still available to refund"));
    let key = input_value(&html, "form_key").expect("a one-time form key");
    assert_eq!(key.len(), 36, "a UUID: {key}");

    // Continue: "Check your answers", nothing asked for yet, reached by GET so that Back
    // and refresh never send the form again.
    let fields = partial(&key, "20.00", "duplicate");
    let (html, check) = w.answer(&p, &fields).await;
    assert!(html.contains("Check your answers before asking for a refund"));
    assert!(html.contains("£20.00") && html.contains("Duplicate payment"));
    assert!(html.contains("CASE-42") && html.contains("Paid twice by mistake"));
    assert!(html.contains("Someone with the finance role must approve it"));
    assert!(html.contains("Confirm refund"));
    // The answers are kept on the server under the form's key: no answer travels in an
    // address, and the confirm form carries only the key and the amount seen.
    assert!(
        !check.contains("Paid") && !check.contains("20.00") && check.contains(&key),
        "{check}"
    );
    assert!(input_value(&html, "comment").is_none(), "{html}");
    // Reading the check page again (a refresh, or Back to it) shows the same answers.
    let (status, again) = w.get(&check).await;
    assert_eq!(status, Status::Ok);
    assert!(again.contains("£20.00") && again.contains("Paid twice by mistake"));
    // "Change your answers" is a link to the form with the answers kept.
    let change = refund_path(&p, &format!("?service=parking&form_key={key}"));
    assert!(html.contains(&change), "{html}");
    let (status, form) = w.get(&change).await;
    assert_eq!(status, Status::Ok);
    assert!(form.contains("value=\"20.00\""), "{form}");
    assert!(form.contains(&format!("name=\"form_key\" value=\"{key}\"")));
    assert!(form.contains("value=\"duplicate\" checked"), "{form}");
    assert!(form.contains("Paid twice by mistake") && form.contains("CASE-42"));
    assert!(w.requests(&p).await.is_empty(), "checking asks for nothing");

    // Confirm (signed in moments ago: no second code needed).
    let seen = input_value(&html, "seen").expect("the amount seen");
    assert_eq!(seen, "2000");
    let mut confirm = fields.clone();
    confirm.push(("seen", &seen));
    let (status, loc, _) = w.post(&refund_path(&p, "/confirm"), &confirm).await;
    assert_eq!(status, Status::SeeOther);
    assert!(
        loc.starts_with(&format!("/payments/{}?service=parking", p.id)),
        "{loc}"
    );
    let rows = w.requests(&p).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].amount, 2000);
    assert_eq!(state(&rows[0]), State::AwaitingApproval);
    assert_eq!(rows[0].case_reference.as_deref(), Some("CASE-42"));
    let (status, html) = w.get(&loc).await;
    assert_eq!(status, Status::Ok);
    assert!(
        html.contains(
            "Refund of £20.00 requested; it needs approval by someone with the finance role"
        ),
        "{html}"
    );
    assert!(html.contains("Refund requests") && html.contains("Awaiting approval"));
    assert!(
        html.contains("by Test Person"),
        "who asked is named: {html}"
    );
    assert!(
        html.contains("Still refundable"),
        "the payment page still shows its money"
    );

    // A double click, or Back and confirm again: the same form key, the same request.
    let (status, again, _) = w.post(&refund_path(&p, "/confirm"), &confirm).await;
    assert_eq!(status, Status::SeeOther);
    assert_eq!(again, loc, "the same request, the same answer");
    assert_eq!(w.requests(&p).await.len(), 1, "one request, however often");
    // Back to the check page after confirming: it says the refund was asked for, and
    // offers nothing to send again.
    let (status, html) = w.get(&check).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("You have asked for this refund"), "{html}");
    assert!(!html.contains("Confirm refund"), "{html}");

    // A new form (a new key) offers only what is left: £30.00.
    let (_, html) = w.get(&refund_path(&p, "?service=parking")).await;
    assert!(
        html.contains("Full refund (£30.00, everything still refundable)"),
        "{html}"
    );
    assert_ne!(input_value(&html, "form_key").unwrap(), key);
}

#[tokio::test]
async fn the_second_factor_is_asked_again_after_five_minutes() {
    let w = world(None).await;
    let p = w.paid(4000, "PAGES-STEP-UP").await;
    w.app.sign_in(&w.caseworker).await;
    w.app.clock.advance(time::Duration::minutes(6));
    let key = w.form_key(&p).await;
    let fields = partial(&key, "15.00", "requested_by_payer");
    let (html, check) = w.answer(&p, &fields).await;
    assert!(html.contains("Check your answers"), "{html}");
    let mut confirm = fields.clone();
    confirm.push(("seen", "1500"));

    // Confirm: the code is asked for first, on a page of its own reached by GET; the
    // refund waits for it (its answers kept on the server).
    let (status, wait, _) = w.post(&refund_path(&p, "/confirm"), &confirm).await;
    assert_eq!(status, Status::SeeOther);
    assert!(wait.starts_with("/confirm-identity?waiting="), "{wait}");
    let (status, html) = w.get(&wait).await;
    assert_eq!(status, Status::Ok, "{html}");
    assert!(html.contains("Confirm it's you"), "{html}");
    assert_eq!(
        input_value(&html, "form_key").as_deref(),
        Some(key.as_str())
    );
    assert_eq!(input_value(&html, "seen").as_deref(), Some("1500"));
    assert!(html.contains(&check), "Back goes to the check page: {html}");
    assert!(w.requests(&p).await.is_empty(), "nothing before the code");

    // A wrong code: asked again, nothing made.
    let now = w.app.state.clock.now().unix_timestamp();
    let wrong = paydesk::identity::totp::code_for_step(
        &w.caseworker.secret,
        paydesk::identity::totp::step_at(now) - 20,
    );
    let mut with_code = confirm.clone();
    with_code.push(("stepping_up", "1"));
    with_code.push(("code", &wrong));
    let (status, _, html) = w.post(&refund_path(&p, "/confirm"), &with_code).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(html.contains("The code is not correct"), "{html}");
    assert!(w.requests(&p).await.is_empty());
    // No code at all on the code page: asked again too.
    let mut empty = confirm.clone();
    empty.push(("stepping_up", "1"));
    let (status, _, html) = w.post(&refund_path(&p, "/confirm"), &empty).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(html.contains("Enter the 6-digit code"), "{html}");

    // The right code: the refund is asked for, and below no threshold it is sent at once.
    let code = w.app.code_now(&w.caseworker.secret);
    let mut with_code = confirm.clone();
    with_code.push(("stepping_up", "1"));
    with_code.push(("code", &code));
    let (status, loc, html) = w.post(&refund_path(&p, "/confirm"), &with_code).await;
    assert_eq!(status, Status::SeeOther, "{html}");
    let rows = w.requests(&p).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(state(&rows[0]), State::Approved);
    let (_, html) = w.get(&loc).await;
    assert!(
        html.contains("Refund of £15.00 is being sent to the platform"),
        "{html}"
    );
    // Back to the code page afterwards: nothing is waiting any more.
    let (status, html) = w.get(&wait).await;
    assert_eq!(status, Status::Ok);
    assert!(
        html.contains("Nothing is waiting for you to confirm"),
        "{html}"
    );
    // The same code again, for another refund, is refused: each code works once.
    w.app.clock.advance(time::Duration::minutes(6));
    let key = w.form_key(&p).await;
    let fields = partial(&key, "1.00", "requested_by_payer");
    w.answer(&p, &fields).await;
    let mut reused = fields.clone();
    reused.extend([
        ("seen", "100"),
        ("stepping_up", "1"),
        ("code", code.as_str()),
    ]);
    let (status, _, html) = w.post(&refund_path(&p, "/confirm"), &reused).await;
    assert_eq!(status, Status::UnprocessableEntity, "{html}");
    assert_eq!(w.requests(&p).await.len(), 1);
    // The step-up and the wrong code are in the audit log.
    let db = &w.app.state.db;
    let stepped = paydesk::store::audit::by_action(db, "authn_step_up")
        .await
        .unwrap();
    assert_eq!(stepped.len(), 1, "one step-up");
    let failed = paydesk::store::audit::by_action(db, "authn_login_fail")
        .await
        .unwrap();
    assert!(
        failed.iter().any(|e| e.details.contains("step_up")),
        "wrong codes audited as at sign-in"
    );

    w.run_jobs().await;
    assert_eq!(w.platform_refunds(&p.id).await, 1, "exactly one refund");
}

#[tokio::test]
async fn bad_amounts_are_shown_again_with_their_values_and_ask_for_nothing() {
    let w = world(Some(1000)).await;
    let p = w.paid(5000, "PAGES-BAD").await;
    w.app.sign_in(&w.caseworker).await;
    let key = w.form_key(&p).await;
    for (amount, message) in [
        ("0", "The amount to refund must be at least 1p"),
        ("1e3", "Enter the amount in pounds and pence, like 12.50"),
        (
            "£12.3.4",
            "Enter the amount in pounds and pence, like 12.50",
        ),
        ("", "Enter the amount to refund"),
        (
            "50.01",
            "The amount to refund must be £50.00 or less: that is what can still be refunded",
        ),
    ] {
        let fields = partial(&key, amount, "duplicate");
        {
            let path = refund_path(&p, "");
            let (status, _, html) = w.post(&path, &fields).await;
            assert_eq!(status, Status::UnprocessableEntity, "{amount:?} at {path}");
            assert!(html.contains("There is a problem"), "{amount:?}: {html}");
            assert!(html.contains(message), "{amount:?}: {html}");
            assert!(html.contains("href=\"#amount\""), "linked to the field");
            assert!(
                html.contains(&format!("value=\"{amount}\"")) || amount.is_empty(),
                "{amount:?} kept: {html}"
            );
            assert!(html.contains("Paid twice by mistake") && html.contains("CASE-42"));
            assert!(html.contains(&format!("name=\"form_key\" value=\"{key}\"")));
            assert!(html.contains("value=\"partial\" checked"));
            assert!(html.starts_with("<!DOCTYPE html>"));
            assert!(html.contains("<title>Error: "), "the title says Error:");
        }
    }
    // Confirming answers that were never kept (refused, or an hour old): the form again,
    // saying so; nothing is asked for.
    let (status, _, html) = w
        .post(
            &refund_path(&p, "/confirm"),
            &partial(&key, "5.00", "duplicate"),
        )
        .await;
    assert_eq!(status, Status::UnprocessableEntity, "{html}");
    assert!(html.contains("Your answers were not kept"), "{html}");
    // No reason, no choice, an "other" without a comment.
    let (status, _, html) = w
        .post(
            &refund_path(&p, ""),
            &[("service", "parking"), ("form_key", &key)],
        )
        .await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(html.contains("Choose how much to refund") && html.contains("Choose the reason"));
    let (status, _, html) = w
        .post(
            &refund_path(&p, ""),
            &[
                ("service", "parking"),
                ("form_key", &key),
                ("how_much", "full"),
                ("reason", "other"),
            ],
        )
        .await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(
        html.contains("Say why the payment is being refunded"),
        "{html}"
    );
    // Nonsense never answers 500.
    let long = "9".repeat(70_000);
    for fields in [
        vec![
            ("service", "parking"),
            ("how_much", "partial"),
            ("amount", "NaN"),
        ],
        vec![("service", "parking"), ("reason", "<script>")],
        vec![
            ("service", "parking"),
            ("form_key", "not a key"),
            ("how_much", "full"),
        ],
        vec![("service", "parking"), ("seen", "-5"), ("how_much", "full")],
        vec![("service", "parking"), ("comment", long.as_str())],
    ] {
        let (status, _, _) = w.post(&refund_path(&p, "/confirm"), &fields).await;
        assert!(status.code < 500, "{fields:?}: {status}");
    }
    assert!(w.requests(&p).await.is_empty(), "no request was made");
}

#[tokio::test]
async fn who_may_see_the_refund_pages() {
    let w = world(Some(1000)).await;
    let p = w.paid(5000, "PAGES-WHO").await;
    let theirs = w.paid_in(2, 3000, "PAGES-THEIRS").await;

    // A viewer reads the payment but may not refund it.
    w.app.sign_in(&w.viewer).await;
    let (status, html) = w.get(&format!("/payments/{}?service=parking", p.id)).await;
    assert_eq!(status, Status::Ok);
    assert!(!html.contains("Refund this payment"));
    assert!(
        !html.contains("href=\"/refunds\""),
        "no Refunds in the menu"
    );
    let (status, _) = w.get(&refund_path(&p, "?service=parking")).await;
    assert_eq!(status, Status::Forbidden);
    let (status, _, _) = w
        .post(&refund_path(&p, ""), &partial("k", "1.00", "duplicate"))
        .await;
    assert_eq!(status, Status::Forbidden);
    let (status, _) = w.get("/refunds").await;
    assert_eq!(status, Status::Forbidden);
    w.sign_out().await;

    // A caseworker: another service's payment is not there at all.
    w.app.sign_in(&w.caseworker).await;
    let (status, _) = w.get(&refund_path(&theirs, "?service=council")).await;
    assert_eq!(status, Status::NotFound);
    let (status, _) = w.get(&refund_path(&theirs, "")).await;
    assert_eq!(status, Status::NotFound);
    let (status, _, _) = w
        .post(
            &refund_path(&theirs, "/confirm"),
            &[
                ("service", "council"),
                ("how_much", "full"),
                ("reason", "duplicate"),
            ],
        )
        .await;
    assert_eq!(status, Status::NotFound);
    assert!(w.requests(&theirs).await.is_empty());
    let (status, _) = w.get("/refunds").await;
    assert_eq!(status, Status::Forbidden, "asking is not approving");

    // Without the CSRF token: refused, and nothing asked for.
    let key = w.form_key(&p).await;
    let r = w
        .app
        .client
        .post(refund_path(&p, "/confirm"))
        .header(ContentType::Form)
        .body(form_body(&{
            let mut f = partial(&key, "5.00", "duplicate");
            f.push(("seen", "500"));
            f
        }))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    let r = w
        .app
        .client
        .post(refund_path(&p, ""))
        .header(ContentType::Form)
        .body(form_body(&partial(&key, "5.00", "duplicate")))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    assert!(w.requests(&p).await.is_empty());
    w.sign_out().await;

    // A finance person sees Refunds in the menu, but not another service's request.
    let other = paydesk::refunds::request(
        &w.app.state.db,
        w.app.state.clock.now(),
        &paydesk::refunds::Staff {
            id: w.admin.id,
            email: w.admin.email.clone(),
            name: "Someone".into(),
            ip: None,
        },
        &paydesk::refunds::Ask {
            service_id: paydesk::services::by_slug(&w.app.state.db, "council")
                .await
                .unwrap()
                .unwrap()
                .id,
            journey_id: theirs.journey_id,
            payment_id: theirs.id.clone(),
            how_much: Ok(paydesk::refunds::HowMuch::Full),
            reason: "duplicate".into(),
            form_key: "council-form".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let paydesk::refunds::Asked::Made { id: other_id, .. } = other else {
        panic!("made: {other:?}")
    };
    w.app.sign_in(&w.finance).await;
    let (status, html) = w.get("/").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("href=\"/refunds\""), "Refunds in the menu");
    let (status, _) = w.get(&format!("/refunds/{other_id}")).await;
    assert_eq!(status, Status::NotFound);
    let (status, _, _) = w
        .post(
            &format!("/refunds/{other_id}/approve"),
            &[("amount", "3000")],
        )
        .await;
    assert_eq!(status, Status::NotFound);
    let (status, _) = w.get("/refunds/999999").await;
    assert_eq!(status, Status::NotFound);
    let (status, _) = w.get("/refunds/not-a-number").await;
    assert_eq!(status, Status::NotFound);
    let (_, html) = w.get("/refunds").await;
    assert!(!html.contains(&format!("/refunds/{other_id}")), "{html}");
}

#[tokio::test]
async fn the_requester_cannot_approve_and_finance_approves_once() {
    let w = world(Some(1000)).await;
    let p = w.paid(6000, "PAGES-APPROVE").await;

    // A service admin may ask and approve, but not approve what they asked for.
    w.app.sign_in(&w.admin).await;
    let id = w.ask_through_pages(&p, "25.00", "overpayment").await;
    let (status, html) = w.get(&format!("/refunds/{id}")).await;
    assert_eq!(status, Status::Ok);
    assert!(
        html.contains("You asked for this refund, so someone else must approve it"),
        "{html}"
    );
    let (status, _, html) = w
        .post(
            &format!("/refunds/{id}/approve"),
            &[("amount", "2500"), ("approval_comment", "")],
        )
        .await;
    assert_eq!(status, Status::Conflict);
    assert!(html.contains("There is a problem"), "{html}");
    assert!(html.contains("You asked for this refund, so someone else must approve it"));
    assert_eq!(state(&w.requests(&p).await[0]), State::AwaitingApproval);
    w.sign_out().await;

    // Finance sees it in the queue, opens it, and approves exactly what the page showed.
    w.app.sign_in(&w.finance).await;
    let (status, html) = w.get("/refunds").await;
    assert_eq!(status, Status::Ok);
    assert!(
        html.contains("PAGES-APPROVE") && html.contains("£25.00"),
        "{html}"
    );
    assert!(html.contains(&format!("href=\"/refunds/{id}\"")), "{html}");
    assert!(html.contains("Overpayment") && html.contains("CASE-42"));
    assert!(html.contains("Test Person"), "the requester is named");
    let (status, html) = w.get(&format!("/refunds/{id}")).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(input_value(&html, "amount").as_deref(), Some("2500"));
    assert!(html.contains("Approve refund of £25.00") && html.contains("Reject refund"));
    // An amount other than the request's: refused, nothing approved.
    let (status, _, html) = w
        .post(&format!("/refunds/{id}/approve"), &[("amount", "2400")])
        .await;
    assert_eq!(status, Status::Conflict);
    assert!(
        html.contains("The amount has changed since you looked at it"),
        "{html}"
    );
    let (status, _, _) = w
        .post(&format!("/refunds/{id}/approve"), &[("amount", "lots")])
        .await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert_eq!(state(&w.requests(&p).await[0]), State::AwaitingApproval);
    // Without the CSRF token: refused.
    let r = w
        .app
        .client
        .post(format!("/refunds/{id}/approve"))
        .header(ContentType::Form)
        .body(form_body(&[("amount", "2500")]))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    assert_eq!(state(&w.requests(&p).await[0]), State::AwaitingApproval);

    let (status, loc, _) = w
        .post(
            &format!("/refunds/{id}/approve"),
            &[
                ("amount", "2500"),
                ("approval_comment", "Checked the duplicate"),
            ],
        )
        .await;
    assert_eq!(status, Status::SeeOther);
    assert_eq!(loc, format!("/refunds?notice=approved-{id}"));
    let (_, html) = w.get(&loc).await;
    assert!(
        html.contains("Refund of £25.00 approved. It is being sent to the platform"),
        "{html}"
    );
    assert!(
        !html.contains(&format!("href=\"/refunds/{id}\"")),
        "the request has left the queue"
    );
    // Approving again is refused, not repeated.
    let (status, _, html) = w
        .post(&format!("/refunds/{id}/approve"), &[("amount", "2500")])
        .await;
    assert_eq!(status, Status::Conflict);
    assert!(
        html.contains("This refund has already been decided"),
        "{html}"
    );

    w.run_jobs().await;
    assert_eq!(w.platform_refunds(&p.id).await, 1, "exactly one refund");
    assert_eq!(state(&w.requests(&p).await[0]), State::Succeeded);
    let (_, html) = w.get(&format!("/payments/{}?service=parking", p.id)).await;
    assert!(
        html.contains("Refunded") && html.contains("Checked the duplicate"),
        "{html}"
    );
}

#[tokio::test]
async fn finance_rejects_with_a_reason() {
    let w = world(Some(1000)).await;
    let p = w.paid(6000, "PAGES-REJECT").await;
    w.app.sign_in(&w.caseworker).await;
    let id = w.ask_through_pages(&p, "30.00", "fraud").await;
    w.sign_out().await;

    w.app.sign_in(&w.finance).await;
    // A rejection needs a reason.
    let (status, _, html) = w
        .post(
            &format!("/refunds/{id}/reject"),
            &[("rejection_comment", "  ")],
        )
        .await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(
        html.contains("Say why the refund is being rejected"),
        "{html}"
    );
    assert!(html.contains("href=\"#rejection_comment\""));
    assert_eq!(state(&w.requests(&p).await[0]), State::AwaitingApproval);
    // After 5 minutes the code is asked for again, the comment kept.
    w.app.clock.advance(time::Duration::minutes(6));
    let (status, wait, html) = w
        .post(
            &format!("/refunds/{id}/reject"),
            &[("rejection_comment", "Not a duplicate: two permits")],
        )
        .await;
    assert_eq!(status, Status::SeeOther, "{html}");
    let (status, html) = w.get(&wait).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Confirm it's you"), "{html}");
    assert_eq!(
        input_value(&html, "rejection_comment").as_deref(),
        Some("Not a duplicate: two permits")
    );
    let code = w.app.code_now(&w.finance.secret);
    let (status, loc, html) = w
        .post(
            &format!("/refunds/{id}/reject"),
            &[
                ("rejection_comment", "Not a duplicate: two permits"),
                ("stepping_up", "1"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(status, Status::SeeOther, "{html}");
    assert_eq!(loc, format!("/refunds?notice=rejected-{id}"));
    let (_, html) = w.get(&loc).await;
    assert!(html.contains("Refund of £30.00 rejected"), "{html}");
    let row = &w.requests(&p).await[0];
    assert_eq!(state(row), State::Rejected);
    assert_eq!(row.decided_by, Some(w.finance.id));
    // The review page now says it is decided; the payment's page shows why.
    let (status, html) = w.get(&format!("/refunds/{id}")).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("already been decided") && !html.contains("Approve refund of"));
    let (_, html) = w.get(&format!("/payments/{}?service=parking", p.id)).await;
    assert!(html.contains("Rejected") && html.contains("Not a duplicate: two permits"));
    assert_eq!(w.platform_refunds(&p.id).await, 0, "nothing was sent");
}

/// The text of the journey page's summary row `key` (its value cell).
fn summary_value(html: &str, key: &str) -> String {
    let start = format!("<dt class=\"govuk-summary-list__key\">{key}</dt>");
    html.split(&start)
        .nth(1)
        .and_then(|rest| rest.split("</dd>").next())
        .unwrap_or_else(|| panic!("no row {key}"))
        .to_string()
}

#[tokio::test]
async fn a_full_refund_awaiting_approval_counts_on_the_payment_page_and_says_why() {
    let w = world(Some(1000)).await;
    let p = w.paid(38_914, "PAGES-HELD").await;
    w.app.sign_in(&w.caseworker).await;
    w.ask_through_pages(&p, "389.14", "duplicate").await;

    // The payment page shows what the approver's page shows: the request holds it all.
    let page = format!("/payments/{}?service=parking", p.id);
    let (status, html) = w.get(&page).await;
    assert_eq!(status, Status::Ok);
    assert!(
        summary_value(&html, "Pending").contains("£389.14"),
        "{html}"
    );
    assert!(
        summary_value(&html, "Still refundable").contains("£0.00"),
        "{html}"
    );
    assert!(!html.contains("Refund this payment"), "no button: {html}");
    assert!(
        html.contains("a refund request is awaiting approval by someone with the finance role"),
        "the page says why: {html}"
    );
    // A viewer, who may not ask, sees the figures but no reason about asking.
    w.sign_out().await;
    w.app.sign_in(&w.viewer).await;
    let (_, html) = w.get(&page).await;
    assert!(summary_value(&html, "Pending").contains("£389.14"));
    assert!(!html.contains("id=\"no-refund\""), "{html}");
}
