//! Every page paydesk serves, opened in the browser in its empty, error and filled states and
//! checked with axe; along the way, a new admin goes from `paydesk user add` to the console.

use fantoccini::Locator;
use paydesk::identity::totp;

use crate::common::{paydesk_command, paydesk_ok, Server, TestDb};
use crate::harness::{assert_no_violations, Browser};

/// Check the page the browser shows now: axe, a screenshot, and its heading.
/// A click returns before the next page has loaded, so wait for the expected heading first.
pub(crate) async fn check(browser: &Browser, name: &str, heading: &str, errors: &mut Vec<String>) {
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

pub(crate) async fn fill(browser: &Browser, id: &str, text: &str) {
    let field = browser
        .client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|_| panic!("field {id}"));
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

pub(crate) async fn submit(browser: &Browser, form_action: &str) {
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
    // Event endpoints on loopback are allowed, so the endpoint form can be filled in here.
    let server = Server::start(db.url(), &[("PAYDESK_EVENTS_ALLOW_LOOPBACK", "true")]);
    // Staff are created on the command line; the set-up link is the last line printed.
    paydesk_ok(
        db.url(),
        &[
            "service",
            "add",
            "--slug",
            "parking",
            "--name",
            "Parking permits",
        ],
    );
    let out = paydesk_ok(
        db.url(),
        &[
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
        ],
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
    check(&browser, "home", "Dashboard", &mut errors).await;

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
    // A service with no payments yet: the empty list, and the list with a problem.
    c.goto(&go("/payments")).await.unwrap();
    check(&browser, "payments-none", "Payments", &mut errors).await;
    c.goto(&go("/payments?last4=12&period=someday"))
        .await
        .unwrap();
    check(&browser, "payments-problem", "Payments", &mut errors).await;
    // Outbound events: the list, the endpoint form (empty, with problems, filled), the
    // secret shown once, and the endpoint with its (empty) delivery log.
    c.goto(&go("/integrations/events")).await.unwrap();
    check(&browser, "events", "Events", &mut errors).await;
    c.goto(&go("/integrations/events/new?service=parking"))
        .await
        .unwrap();
    check(&browser, "events-new", "Add an event endpoint", &mut errors).await;
    fill(&browser, "url", "https://10.0.0.1/hook").await;
    submit(&browser, "/integrations/events/new").await;
    check(
        &browser,
        "events-new-error",
        "Add an event endpoint",
        &mut errors,
    )
    .await;
    fill(&browser, "url", "http://127.0.0.1:9/hook").await;
    c.find(Locator::Id("event_types"))
        .await
        .expect("the first event type")
        .click()
        .await
        .expect("tick it");
    submit(&browser, "/integrations/events/new").await;
    check(
        &browser,
        "events-secret",
        "Copy the signing secret",
        &mut errors,
    )
    .await;
    c.find(Locator::LinkText(
        "I have copied the secret: go to the endpoint",
    ))
    .await
    .expect("a link to the endpoint")
    .click()
    .await
    .expect("follow it");
    check(&browser, "events-endpoint", "Event endpoint", &mut errors).await;
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
    check(&browser, "home-again", "Dashboard", &mut errors).await;

    // Staff administration (Grace is parking's service admin): the list, the invitation form
    // and its errors, a person's page, and the list with them in it.
    c.goto(&go("/admin/staff")).await.unwrap();
    check(&browser, "staff-list", "Staff", &mut errors).await;
    c.goto(&go("/admin/staff/invite")).await.unwrap();
    check(&browser, "staff-invite", "Invite someone", &mut errors).await;
    fill(&browser, "email", "not an email").await;
    submit(&browser, "/admin/staff/invite").await;
    check(
        &browser,
        "staff-invite-error",
        "Invite someone",
        &mut errors,
    )
    .await;
    assert!(
        c.title().await.unwrap().starts_with("Error: "),
        "the title says Error:"
    );
    fill(&browser, "email", "nell@example.gov.uk").await;
    fill(&browser, "name", "Nell Person").await;
    c.find(Locator::Id("role-parking"))
        .await
        .expect("a role for parking")
        .select_by_value("caseworker")
        .await
        .expect("choose caseworker");
    submit(&browser, "/admin/staff/invite").await;
    check(&browser, "staff-person", "Nell Person", &mut errors).await;
    c.goto(&go("/admin/staff")).await.unwrap();
    check(&browser, "staff-list-people", "Staff", &mut errors).await;

    // API tokens (a service admin holds integrations:manage): empty, the form with its
    // problems, the token shown once, the list and a token's page; and the page about the API.
    c.goto(&go("/admin/tokens")).await.unwrap();
    check(&browser, "api-tokens-none", "API tokens", &mut errors).await;
    c.goto(&go("/admin/tokens/new")).await.unwrap();
    check(&browser, "api-token-new", "Make an API token", &mut errors).await;
    submit(&browser, "/admin/tokens").await;
    check(
        &browser,
        "api-token-new-error",
        "Make an API token",
        &mut errors,
    )
    .await;
    assert!(
        c.title().await.unwrap().starts_with("Error: "),
        "the title says Error:"
    );
    fill(&browser, "name", "Case system").await;
    c.find(Locator::Id("scopes"))
        .await
        .expect("the first scope")
        .click()
        .await
        .expect("tick it");
    submit(&browser, "/admin/tokens").await;
    check(&browser, "api-token-made", "API token made", &mut errors).await;
    let shown = c
        .find(Locator::Id("token-secret"))
        .await
        .expect("the token")
        .attr("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(shown.starts_with("pdk_"), "the token is shown once");
    c.goto(&go("/admin/tokens")).await.unwrap();
    check(&browser, "api-tokens", "API tokens", &mut errors).await;
    c.find(Locator::Css("#tokens tbody a"))
        .await
        .expect("a token to open")
        .click()
        .await
        .unwrap();
    check(&browser, "api-token", "API token Case system", &mut errors).await;
    c.goto(&go("/api/docs")).await.unwrap();
    check(&browser, "api-docs", "The paydesk API", &mut errors).await;

    browser.close().await;
    drop(server);
    assert_no_violations("the pages above", &[]);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The README's first command: `paydesk demo` starts, prints the demo accounts, and a
/// person of every role signs in with the code the demo page shows, with axe on each page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_lets_a_newcomer_sign_in_without_an_app() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let demo = Demo::start("300", &[]).await;
    assert_eq!(demo.accounts.len(), 5, "one demo account per role");
    let go = |p: &str| demo.url(p);
    let c = &browser.client;
    let mut errors = Vec::new();
    // Every role signs in with the code the demo shows, and opens the payments list (with
    // results, empty, and with an error) and a journey page, with axe on each.
    let roles: Vec<String> = demo
        .accounts
        .iter()
        .map(|(email, _)| email.split('@').next().unwrap_or_default().to_string())
        .collect();
    for who in &roles {
        demo.sign_in(&browser, who, &mut errors).await;
        assert!(
            c.current_url().await.unwrap().path() == "/",
            "{who} signed in to the console"
        );
        // The first import runs in the background: wait until the list has payments.
        let started = std::time::Instant::now();
        let mut listed = false;
        while started.elapsed() < std::time::Duration::from_secs(60) {
            c.goto(&go("/payments")).await.unwrap();
            if c.find(Locator::Css("table.govuk-table tbody a"))
                .await
                .is_ok()
            {
                listed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        assert!(listed, "{who} sees the demo payments within a minute");
        check(
            &browser,
            &format!("payments-{who}"),
            "Payments",
            &mut errors,
        )
        .await;
        c.goto(&go("/payments?q=no-such-payment-anywhere"))
            .await
            .unwrap();
        check(
            &browser,
            &format!("payments-empty-{who}"),
            "Payments",
            &mut errors,
        )
        .await;
        c.goto(&go("/payments?from_date=31/2/2026&min_amount=12.3.4"))
            .await
            .unwrap();
        check(
            &browser,
            &format!("payments-error-{who}"),
            "Payments",
            &mut errors,
        )
        .await;
        assert!(
            c.title().await.unwrap().starts_with("Error: "),
            "the title says Error:"
        );
        c.goto(&go("/payments?status=success")).await.unwrap();
        c.find(Locator::Css("table.govuk-table tbody a"))
            .await
            .expect("a payment to open")
            .click()
            .await
            .unwrap();
        check(&browser, &format!("journey-{who}"), "Payment", &mut errors).await;
        let path = c.current_url().await.unwrap().path().to_string();
        c.goto(&go(&format!("{path}?events=all"))).await.unwrap();
        check(
            &browser,
            &format!("journey-all-events-{who}"),
            "Payment",
            &mut errors,
        )
        .await;
        demo.sign_out(&browser, &mut errors).await;
    }
    drop(demo);
    browser.close().await;
    assert!(errors.is_empty(), "{errors:#?}");
}

/// A running `paydesk demo` (killed when dropped), its console's port and the demo accounts
/// it printed: (email, password).
pub(crate) struct Demo {
    child: std::process::Child,
    port: u16,
    accounts: Vec<(String, String)>,
    _folder: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    pub(crate) async fn start(payments: &str, extra_env: &[(&str, &str)]) -> Demo {
        use std::io::{BufRead, BufReader};
        let folder = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}/demo.db", folder.path().display());
        let port = crate::common::free_port();
        let mut child = paydesk_command(&db_url)
            .arg("demo")
            .args(["--payments", payments])
            .env("PAYDESK_PORT", port.to_string())
            .env(
                "PAYDESK_SANDBOX_PORT",
                crate::common::free_port().to_string(),
            )
            .current_dir(folder.path())
            .env(
                "PAYDESK_TEMPLATE_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
            )
            .env(
                "PAYDESK_STATIC_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/static"),
            )
            .envs(extra_env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(folder.path().join("demo.log")).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut printed = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let done = line.contains("platform-admin@");
            printed.push(line);
            if done {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        let accounts: Vec<(String, String)> = printed
            .iter()
            .filter(|l| l.contains("@demo.paydesk.test"))
            .filter_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = words.iter().position(|w| w.contains('@'))?;
                let pw = words.iter().position(|w| *w == "password")? + 1;
                Some((words[at].to_string(), words.get(pw)?.to_string()))
            })
            .collect();
        let log = folder.path().join("demo.log");
        let started = std::time::Instant::now();
        let mut listening = false;
        while started.elapsed() < std::time::Duration::from_secs(60) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the demo exited with {status}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                listening = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(
            listening,
            "the demo console answers within a minute:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Demo {
            child,
            port,
            accounts,
            _folder: folder,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The demo's database, as another paydesk process would open it.
    pub(crate) async fn db(&self) -> paydesk::store::Db {
        let url = format!("sqlite://{}/demo.db", self._folder.path().display());
        paydesk::store::Db::connect(&url, &paydesk::store::PoolSettings::default())
            .await
            .expect("open the demo database")
    }

    fn account(&self, role: &str) -> (String, String) {
        self.accounts
            .iter()
            .find(|(email, _)| email.starts_with(&format!("{role}@")))
            .cloned()
            .unwrap_or_else(|| panic!("a demo {role}: {:?}", self.accounts))
    }

    /// Sign in as the demo `role` with the code the demo shows.
    pub(crate) async fn sign_in(&self, browser: &Browser, role: &str, errors: &mut Vec<String>) {
        let (email, password) = self.account(role);
        let c = &browser.client;
        c.goto(&self.url("/login")).await.unwrap();
        fill(browser, "email", &email).await;
        fill(browser, "password", &password).await;
        submit(browser, "/login").await;
        check(
            browser,
            &format!("demo-code-{role}"),
            "Enter the code",
            errors,
        )
        .await;
        let shown = c
            .find(Locator::Css("#demo-code .paydesk-secret"))
            .await
            .expect("the demo code is shown")
            .text()
            .await
            .unwrap();
        fill(browser, "code", shown.trim()).await;
        submit(browser, "/login/code").await;
        check(browser, &format!("demo-home-{role}"), "Dashboard", errors).await;
    }

    pub(crate) async fn sign_out(&self, browser: &Browser, errors: &mut Vec<String>) {
        browser.client.goto(&self.url("/account")).await.unwrap();
        submit(browser, "/logout").await;
        check(browser, "demo-signed-out", "Sign in", errors).await;
    }
}

/// Pounds in a label such as "Full refund (£1,234.56, everything still refundable)", in pence.
fn pence_in(text: &str) -> Option<i64> {
    let start = text.find('£')? + '£'.len_utf8();
    let number: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
        .filter(|c| *c != ',')
        .collect();
    let (pounds, pence) = number.split_once('.')?;
    Some(pounds.parse::<i64>().ok()? * 100 + pence.parse::<i64>().ok()?)
}

/// Issue 6 in the browser: a caseworker asks for a refund above the demo services' £100
/// approval threshold (the form, the form with errors, check your answers, confirm), signs
/// out; finance signs in, opens the queue, reviews the request (and the page with an error)
/// and approves it. Axe checks every page on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_refund_is_asked_for_and_approved_by_someone_else() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // The payer's email goes to a real SMTP server.
    let Some(smtp) = crate::common::SmtpServer::start() else {
        return;
    };
    let demo = Demo::start("600", &[("PAYDESK_MAIL_URL", &smtp.url())]).await;
    let c = &browser.client;
    let mut errors = Vec::new();
    demo.sign_in(&browser, "caseworker", &mut errors).await;

    // A paid payment with more than £100.01 still refundable (the first import runs in the
    // background, so look for up to a minute).
    let started = std::time::Instant::now();
    let mut chosen: Option<(String, String)> = None;
    while chosen.is_none() && started.elapsed() < std::time::Duration::from_secs(60) {
        c.goto(&demo.url("/payments?status=success&min_amount=120&sort=amount_high"))
            .await
            .unwrap();
        let mut links = Vec::new();
        if let Ok(found) = c.find_all(Locator::Css("table.govuk-table tbody a")).await {
            for a in found {
                let href = a.attr("href").await.ok().flatten().unwrap_or_default();
                let text = a.text().await.unwrap_or_default();
                links.push((href, text));
            }
        }
        for (href, reference) in links.into_iter().take(15) {
            c.goto(&demo.url(&href)).await.unwrap();
            let Ok(button) = c
                .find(Locator::XPath(
                    "//a[normalize-space()='Refund this payment']",
                ))
                .await
            else {
                continue;
            };
            let form = button.attr("href").await.ok().flatten().unwrap_or_default();
            c.goto(&demo.url(&form)).await.unwrap();
            let label = c.find(Locator::Css("label[for='how_much']")).await.ok();
            let available = match label {
                Some(l) => pence_in(&l.text().await.unwrap_or_default()).unwrap_or(0),
                None => 0,
            };
            if available >= 10_001 {
                chosen = Some((form, reference));
                break;
            }
        }
        if chosen.is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    let (form, reference) = chosen.expect("a demo payment with more than £100 refundable");
    let form_path = form.split('?').next().unwrap_or_default().to_string();
    let payment_path = form.replacen("/refund?", "?", 1);
    c.goto(&demo.url(&form)).await.unwrap();
    check(&browser, "refund-form", "Refund payment", &mut errors).await;

    // Continue with nothing chosen: the form again, with its problems.
    submit(&browser, &form_path).await;
    check(
        &browser,
        "refund-form-errors",
        "Refund payment",
        &mut errors,
    )
    .await;
    assert!(
        c.title().await.unwrap().starts_with("Error: "),
        "the title says Error:"
    );
    assert!(c.find(Locator::Css(".govuk-error-summary")).await.is_ok());

    // The fields, for the screenshot.
    let _ = c
        .execute(
            "document.getElementById('how_much').scrollIntoView()",
            vec![],
        )
        .await;
    browser.screenshot("refund-form-fields").await;
    // A partial refund of £100.01: more than the threshold.
    c.find(Locator::Css("label[for='how_much-2']"))
        .await
        .expect("Partial refund")
        .click()
        .await
        .unwrap();
    fill(&browser, "amount", "100.01").await;
    c.find(Locator::Css("label[for='reason']"))
        .await
        .expect("a reason")
        .click()
        .await
        .unwrap();
    fill(&browser, "comment", "The payer was charged twice").await;
    submit(&browser, &form_path).await;
    check(&browser, "refund-check", "Check your answers", &mut errors).await;
    let page = c.source().await.unwrap();
    assert!(page.contains("£100.01"), "the amount is shown to check");
    assert!(page.contains("must approve it"), "approval is needed");

    submit(&browser, &format!("{form_path}/confirm")).await;
    // Signed in moments ago, so no second code is asked for (the integration tests cover
    // the "Confirm it's you" page, which needs the clock moved on by 5 minutes).
    check(&browser, "refund-requested", "Payment", &mut errors).await;
    let banner = c
        .find(Locator::Css(".govuk-notification-banner"))
        .await
        .expect("a notice that the refund was asked for")
        .text()
        .await
        .unwrap();
    assert!(
        banner.contains("Refund of £100.01 requested; it needs approval"),
        "{banner}"
    );
    // Back from the result: the check page, read by GET (no "Confirm Form Resubmission"),
    // says the refund was asked for and offers nothing to send again.
    c.back().await.unwrap();
    check(
        &browser,
        "refund-already-asked",
        "You have asked for this refund",
        &mut errors,
    )
    .await;
    assert!(
        !c.source().await.unwrap().contains("Confirm refund"),
        "nothing to confirm again"
    );
    // The caseworker's own refund requests, from the payment's page, then a filter that
    // cannot be read.
    c.goto(&demo.url(&payment_path)).await.unwrap();
    check(&browser, "refund-payment", "Payment", &mut errors).await;
    c.find(Locator::Id("refund-list-link"))
        .await
        .expect("a link to the caseworker's refund requests")
        .click()
        .await
        .unwrap();
    check(
        &browser,
        "refund-requests",
        "Your refund requests",
        &mut errors,
    )
    .await;
    assert!(
        c.find(Locator::XPath(&format!(
            "//table[@id='requests']//a[normalize-space()='{reference}']"
        )))
        .await
        .is_ok(),
        "the request is listed"
    );
    fill(&browser, "from", "31/2/2026").await;
    submit(&browser, "/refunds/requests").await;
    check(
        &browser,
        "refund-requests-error",
        "Your refund requests",
        &mut errors,
    )
    .await;
    assert!(c.find(Locator::Css(".govuk-error-summary")).await.is_ok());
    demo.sign_out(&browser, &mut errors).await;

    // Finance: the queue, the request, a rejection without a reason, then approval.
    demo.sign_in(&browser, "finance", &mut errors).await;
    c.find(Locator::XPath("//nav//a[normalize-space()='Refunds']"))
        .await
        .expect("Refunds in the menu")
        .click()
        .await
        .unwrap();
    check(&browser, "refund-queue", "Refunds", &mut errors).await;
    // The failed refunds behind the dashboard's figure, then back to the queue.
    c.goto(&demo.url("/refunds/failed")).await.unwrap();
    check(&browser, "refunds-failed", "Failed refunds", &mut errors).await;
    // Every refund request of finance's services, with filters.
    c.goto(&demo.url("/refunds/requests?state=awaiting_approval"))
        .await
        .unwrap();
    check(
        &browser,
        "refund-requests-finance",
        "Refund requests",
        &mut errors,
    )
    .await;
    c.back().await.unwrap();
    c.back().await.unwrap();
    // Disputes (finance reads them), then with a filter that is refused.
    c.goto(&demo.url("/disputes")).await.unwrap();
    check(&browser, "disputes", "Disputes", &mut errors).await;
    c.goto(&demo.url("/disputes?status=open&from=31/2/2026"))
        .await
        .unwrap();
    check(&browser, "disputes-error", "Disputes", &mut errors).await;
    c.goto(&demo.url("/refunds")).await.unwrap();
    let review = c
        .find(Locator::XPath(&format!(
            "//table[@id='awaiting']//tr[td/a[normalize-space()='{reference}']]//a[starts-with(@href, '/refunds/')]"
        )))
        .await
        .expect("the request in the queue");
    let review_path = review.attr("href").await.ok().flatten().unwrap_or_default();
    review.click().await.unwrap();
    check(
        &browser,
        "refund-review",
        "Review the refund of £100.01",
        &mut errors,
    )
    .await;
    submit(&browser, &format!("{review_path}/reject")).await;
    check(
        &browser,
        "refund-review-error",
        "Review the refund of £100.01",
        &mut errors,
    )
    .await;
    assert!(
        c.title().await.unwrap().starts_with("Error: "),
        "the title says Error:"
    );
    submit(&browser, &format!("{review_path}/approve")).await;
    check(&browser, "refund-approved", "Refunds", &mut errors).await;
    let banner = c
        .find(Locator::Css(".govuk-notification-banner"))
        .await
        .expect("a notice that the refund was approved")
        .text()
        .await
        .unwrap();
    assert!(banner.contains("Refund of £100.01 approved"), "{banner}");
    assert!(
        c.find(Locator::Css(&format!("a[href='{review_path}']")))
            .await
            .is_err(),
        "the request has left the queue"
    );
    // The demo's jobs send it to the sandbox, which pays it out; the payer is told by email
    // and the payment's page shows the refund succeeded.
    let started = std::time::Instant::now();
    let mut told = None;
    while told.is_none() && started.elapsed() < std::time::Duration::from_secs(60) {
        told = smtp
            .messages()
            .into_iter()
            .map(|m| crate::common::unfold_quoted_printable(&m))
            .find(|m| m.contains("100.01") && m.contains(&reference));
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let told = told.expect("the payer's refund email reached the SMTP server");
    assert!(told.contains("Subject: Your refund from"), "{told}");
    c.goto(&demo.url(&payment_path)).await.unwrap();
    check(&browser, "refund-succeeded", "Payment", &mut errors).await;
    let page = c.source().await.unwrap();
    assert!(
        page.contains("succeeded"),
        "the payment's page shows the refund succeeded"
    );
    drop(demo);
    browser.close().await;
    assert!(errors.is_empty(), "{errors:#?}");
}

/// Issue 7 in the browser: the exports page empty and with an error, an export being
/// written (its progress bar), one asked for in the background and finished, and the
/// month-end totals, with axe on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_show_progress_and_a_finished_file() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let demo = Demo::start("300", &[]).await;
    let c = &browser.client;
    let mut errors = Vec::new();
    demo.sign_in(&browser, "finance", &mut errors).await;
    c.goto(&demo.url("/exports")).await.unwrap();
    check(
        &browser,
        "exports-empty",
        "Export payments and refunds",
        &mut errors,
    )
    .await;

    // A problem: the start date cleared.
    fill(&browser, "from", "31/2/2026").await;
    submit(&browser, "/exports").await;
    check(
        &browser,
        "exports-error",
        "Export payments and refunds",
        &mut errors,
    )
    .await;
    assert!(c.title().await.unwrap().starts_with("Error: "));

    // An export some way through (as a worker leaves it between pages).
    let db = demo.db().await;
    let (email, _) = demo.account("finance");
    let staff = paydesk::store::staff::staff_by_email_key(
        &db,
        &paydesk::identity::accounts::email_key(&email),
    )
    .await
    .unwrap()
    .expect("the demo finance account");
    let services: Vec<i64> = paydesk::services::all(&db)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    let now = paydesk::store::to_micros(time::OffsetDateTime::now_utc());
    let filter = r#"{"services":["x"],"by":"created","from":"2026-10-01","to":"2026-10-31","time_zone":"Europe/London","statuses":[],"payments":true,"refunds":true}"#;
    let mut tx = db.begin().await.unwrap();
    let running = paydesk::store::exports::insert(
        &mut tx,
        &paydesk::store::exports::NewExport {
            requested_by: staff.id,
            service_ids: &serde_json::to_string(&services[..1]).unwrap(),
            filter,
            gzip: false,
            rows_expected: 5000,
            file_name: "running.csv",
        },
        now,
    )
    .await
    .unwrap();
    paydesk::store::exports::start(&mut tx, running, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    paydesk::store::exports::set_progress(&db, running, 1200, 90_000, "{}", now)
        .await
        .unwrap();
    c.goto(&demo.url(&format!("/exports/{running}")))
        .await
        .unwrap();
    check(
        &browser,
        "export-running",
        "Payments and refunds",
        &mut errors,
    )
    .await;
    let bar = c
        .find(Locator::Css("progress#export-bar"))
        .await
        .expect("a progress bar")
        .attr("value")
        .await
        .unwrap();
    assert_eq!(bar.as_deref(), Some("24"));
    c.goto(&demo.url("/exports")).await.unwrap();
    check(
        &browser,
        "exports-running",
        "Export payments and refunds",
        &mut errors,
    )
    .await;

    // A background export asked for on the page, followed until it is ready.
    c.find(Locator::Css("label[for='background']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(&browser, "from", "1/1/2020").await;
    let today = time::OffsetDateTime::now_utc().date();
    fill(
        &browser,
        "to",
        &format!(
            "{}/{}/{}",
            today.day(),
            u8::from(today.month()),
            today.year()
        ),
    )
    .await;
    submit(&browser, "/exports").await;
    let started = std::time::Instant::now();
    let mut ready = false;
    while started.elapsed() < std::time::Duration::from_secs(60) {
        if c.find(Locator::LinkText("Download the CSV")).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(ready, "the export is ready within a minute");
    check(
        &browser,
        "export-finished",
        "Payments and refunds",
        &mut errors,
    )
    .await;
    c.goto(&demo.url("/exports")).await.unwrap();
    check(
        &browser,
        "exports-finished",
        "Export payments and refunds",
        &mut errors,
    )
    .await;
    c.goto(&demo.url("/exports/pack")).await.unwrap();
    check(&browser, "exports-pack", "Month-end totals", &mut errors).await;
    c.goto(&demo.url("/exports/pack?month=2026-13"))
        .await
        .unwrap();
    check(
        &browser,
        "exports-pack-error",
        "Month-end totals",
        &mut errors,
    )
    .await;
    db.close().await;
    drop(demo);
    browser.close().await;
    assert!(errors.is_empty(), "{errors:#?}");
}

/// Service settings and the audit log, as the demo's platform admin: the list, a service's
/// page before and after "Test connection", the change form (filled and with errors), the
/// new-service form (empty), and the audit log with entries, with none and with an error;
/// axe on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_pages_pass_axe() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let demo = Demo::start("20", &[]).await;
    let go = |p: &str| demo.url(p);
    let c = &browser.client;
    let mut errors = Vec::new();
    demo.sign_in(&browser, "platform-admin", &mut errors).await;
    c.goto(&go("/admin/services")).await.unwrap();
    check(&browser, "services", "Services", &mut errors).await;
    c.find(Locator::Css("table.govuk-table tbody a"))
        .await
        .expect("a service to open")
        .click()
        .await
        .unwrap();
    check(&browser, "service", "", &mut errors).await;
    let path = c.current_url().await.unwrap().path().to_string();
    assert!(path.starts_with("/admin/services/"), "{path}");
    submit(&browser, &format!("{path}/test")).await;
    check(&browser, "service-tested", "", &mut errors).await;
    let body = c.source().await.unwrap_or_default();
    assert!(
        body.contains("Connection test") || body.contains("connection test failed"),
        "the test's answer is shown"
    );
    c.goto(&go(&format!("{path}/edit"))).await.unwrap();
    check(&browser, "service-edit", "Change", &mut errors).await;
    fill(
        &browser,
        "deep_link_template",
        "http://crm.example.gov/{case}",
    )
    .await;
    fill(&browser, "refund_approval_threshold", "ten pounds").await;
    submit(&browser, &format!("{path}/edit")).await;
    check(&browser, "service-edit-error", "Change", &mut errors).await;
    assert!(
        c.title().await.unwrap().starts_with("Error: "),
        "the title says Error:"
    );
    c.goto(&go("/admin/services/new")).await.unwrap();
    check(&browser, "service-new", "Add a service", &mut errors).await;
    c.goto(&go("/audit")).await.unwrap();
    check(&browser, "audit", "Audit log", &mut errors).await;
    c.goto(&go("/audit?action=no-such-action")).await.unwrap();
    check(&browser, "audit-empty", "Audit log", &mut errors).await;
    c.goto(&go("/audit?from=31%2F2%2F2026")).await.unwrap();
    check(&browser, "audit-error", "Audit log", &mut errors).await;
    drop(demo);
    browser.close().await;
    assert!(errors.is_empty(), "{errors:#?}");
}
