//! Every page paydesk serves, opened in the browser in its empty, error and filled states and
//! checked with axe; along the way, a new admin goes from `paydesk user add` to the console.

use fantoccini::Locator;
use paydesk::identity::totp;

use crate::common::{paydesk_command, Server, TestDb};
use crate::harness::{assert_no_violations, Browser};

/// Check the page the browser shows now: axe, a screenshot, and its heading.
/// A click returns before the next page has loaded, so wait for the expected heading first.
async fn check(browser: &Browser, name: &str, heading: &str, errors: &mut Vec<String>) {
    let started = std::time::Instant::now();
    let mut h1 = String::new();
    while started.elapsed() < std::time::Duration::from_secs(10) {
        h1 = match browser.client.find(Locator::Css("h1")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let loaded = browser
            .client
            .execute("return document.readyState", vec![])
            .await
            .is_ok_and(|v| v == "complete");
        if h1.contains(heading) && loaded {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !h1.contains(heading) {
        errors.push(format!(
            "{name}: expected a heading with {heading:?}, found {h1:?}"
        ));
    }
    browser.screenshot(name).await;
    let violations = browser.axe_violations().await;
    if !violations.is_empty() {
        errors.push(format!(
            "{name}: {}",
            serde_json::to_string_pretty(&violations).unwrap_or_default()
        ));
    }
}

async fn fill(browser: &Browser, id: &str, text: &str) {
    let field = browser
        .client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|_| panic!("field {id}"));
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn submit(browser: &Browser, form_action: &str) {
    browser
        .client
        .find(Locator::Css(&format!(
            "form[action='{form_action}'] button[type='submit']"
        )))
        .await
        .unwrap_or_else(|_| panic!("a submit button in {form_action}"))
        .click()
        .await
        .expect("click");
}

fn code_for(secret: &[u8], steps_ahead: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    totp::code_for_step(secret, totp::step_at(now) + steps_ahead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let db = TestDb::new().await;
    let server = Server::start(db.url(), &[]);
    // Staff are created on the command line; the set-up link is the last line printed.
    let out = paydesk_command(db.url())
        .args([
            "service",
            "add",
            "--slug",
            "parking",
            "--name",
            "Parking permits",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = paydesk_command(db.url())
        .args([
            "user",
            "add",
            "--email",
            "grace@example.gov.uk",
            "--name",
            "Grace Hopper",
            "--role",
            "service_admin",
            "--service",
            "parking",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let link = stdout.lines().last().unwrap_or_default().trim().to_string();
    let path = &link[link.find("/setup/").expect("a set-up link")..];

    let mut errors = Vec::new();
    let c = &browser.client;
    let go = |p: &str| server.url(p);

    c.goto(&go("/login")).await.unwrap();
    check(&browser, "login", "Sign in", &mut errors).await;
    submit(&browser, "/login").await;
    check(&browser, "login-error", "Sign in", &mut errors).await;
    assert!(
        c.title().await.unwrap().starts_with("Error: "),
        "the title says Error:"
    );

    c.goto(&go("/forgot-password")).await.unwrap();
    check(
        &browser,
        "forgot-password",
        "Reset your password",
        &mut errors,
    )
    .await;
    fill(&browser, "email", "someone@example.gov.uk").await;
    submit(&browser, "/forgot-password").await;
    check(
        &browser,
        "forgot-password-sent",
        "Check your email",
        &mut errors,
    )
    .await;

    c.goto(&go(path)).await.unwrap();
    check(
        &browser,
        "setup-password",
        "Create your password",
        &mut errors,
    )
    .await;
    fill(&browser, "password", "correct horse battery staple").await;
    fill(&browser, "password_confirmation", "something else entirely").await;
    submit(&browser, path).await;
    check(
        &browser,
        "setup-password-error",
        "Create your password",
        &mut errors,
    )
    .await;
    fill(&browser, "password", "correct horse battery staple").await;
    fill(
        &browser,
        "password_confirmation",
        "correct horse battery staple",
    )
    .await;
    submit(&browser, path).await;

    check(
        &browser,
        "enrol",
        "Set up your authenticator app",
        &mut errors,
    )
    .await;
    let key = c
        .find(Locator::Css(".paydesk-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret = totp::base32_decode(&key).expect("a base32 key");
    fill(&browser, "code", "000000").await;
    submit(&browser, "/login/enrol").await;
    check(
        &browser,
        "enrol-error",
        "Set up your authenticator app",
        &mut errors,
    )
    .await;
    fill(&browser, "code", &code_for(&secret, 0)).await;
    submit(&browser, "/login/enrol").await;
    check(&browser, "home", "Welcome, Grace Hopper", &mut errors).await;

    c.goto(&go("/account")).await.unwrap();
    check(&browser, "account", "Your account", &mut errors).await;
    c.goto(&go("/account/password")).await.unwrap();
    check(
        &browser,
        "change-password",
        "Change your password",
        &mut errors,
    )
    .await;
    submit(&browser, "/account/password").await;
    check(
        &browser,
        "change-password-error",
        "Change your password",
        &mut errors,
    )
    .await;
    c.goto(&go("/account/authenticator")).await.unwrap();
    check(
        &browser,
        "replace-authenticator",
        "Set up your authenticator app",
        &mut errors,
    )
    .await;
    c.goto(&go(path)).await.unwrap();
    check(
        &browser,
        "setup-link-used",
        "expired or has already been used",
        &mut errors,
    )
    .await;
    c.goto(&go("/no/such/page")).await.unwrap();
    check(&browser, "not-found", "Page not found", &mut errors).await;

    // Sign out from the header, and back in with password and code.
    c.goto(&go("/account")).await.unwrap();
    submit(&browser, "/logout").await;
    check(&browser, "signed-out", "Sign in", &mut errors).await;
    fill(&browser, "email", "grace@example.gov.uk").await;
    fill(&browser, "password", "correct horse battery staple").await;
    submit(&browser, "/login").await;
    check(&browser, "code", "Enter the code", &mut errors).await;
    submit(&browser, "/login/code").await;
    check(&browser, "code-error", "Enter the code", &mut errors).await;
    // The enrolment used this window's code; the next window's is accepted too (±1 step).
    fill(&browser, "code", &code_for(&secret, 1)).await;
    submit(&browser, "/login/code").await;
    check(&browser, "home-again", "Welcome, Grace Hopper", &mut errors).await;

    browser.close().await;
    drop(server);
    assert_no_violations("the pages above", &[]);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
