//! Service settings pages (`/admin/services`) through HTTP: who may see and change which
//! service, each validation rule shown with the form kept, secrets never shown again after
//! saving (and kept when left blank), every change audited without secrets, the platform
//! client rebuilt after a change, "Test connection" against a real sandbox process, and deep
//! links on payment pages.

use paydesk::identity::permissions::Role;
use paydesk::store::audit as audit_store;
use rocket::http::{ContentType, Cookie, Status};
use rocket::local::asynchronous::Client;

use crate::common::sandbox::SandboxProcess;
use crate::common::{form_body, location, Person, TestApp};

/// One person's requests, each carrying exactly their session cookie and CSRF token.
pub struct Visitor {
    client: Client,
    cookie: Cookie<'static>,
    pub token: String,
}

pub struct Answer {
    pub status: Status,
    pub body: String,
    pub location: String,
    pub content_type: String,
}

impl Visitor {
    pub async fn new(app: &TestApp, person: &Person) -> Visitor {
        let client = Client::untracked(paydesk::app(app.state.clone()))
            .await
            .unwrap();
        let cookie = app.session_for(person).await;
        let token = paydesk::web::csrf::token_for(&app.state.config.csrf_key(), cookie.value());
        Visitor {
            client,
            cookie,
            token,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        let r = self
            .client
            .get(path.to_string())
            .cookie(self.cookie.clone())
            .dispatch()
            .await;
        let status = r.status();
        let location = location(&r);
        let content_type = r.content_type().map(|c| c.to_string()).unwrap_or_default();
        Answer {
            status,
            location,
            content_type,
            body: r.into_string().await.unwrap_or_default(),
        }
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut all = vec![("csrf_token", self.token.as_str())];
        all.extend_from_slice(fields);
        let r = self
            .client
            .post(path.to_string())
            .header(ContentType::Form)
            .cookie(self.cookie.clone())
            .body(form_body(&all))
            .dispatch()
            .await;
        let status = r.status();
        let location = location(&r);
        let content_type = r.content_type().map(|c| c.to_string()).unwrap_or_default();
        Answer {
            status,
            location,
            content_type,
            body: r.into_string().await.unwrap_or_default(),
        }
    }
}

/// Tera writes `/` as `&#x2F;` and `&` as `&amp;` in pages.
pub fn unescape(html: &str) -> String {
    html.replace("&#x2F;", "/")
        .replace("&amp;", "&")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
}

const API_KEY: &str = "api_test_VERYSECRETKEY_0123456789abcdef";
const WEBHOOK_SECRET: &str = "whsec_TOPSECRETSIGNING_0123456789";
const CLIENT_SECRET: &str = "oauth_CLIENTSECRET_0123456789abcdef";

fn valid_fields<'a>(slug: &'a str, platform_url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", "Parking permits"),
        ("slug", slug),
        ("time_zone", "Europe/London"),
        ("platform_url", platform_url),
        ("auth", "api_key"),
        ("api_key", API_KEY),
        ("webhook_secret", WEBHOOK_SECRET),
        ("refund_approval_threshold", "100"),
        ("refund_case_reference_required", "true"),
        ("refund_email_enabled", "true"),
        ("refund_email_subject", "Your refund of ((amount))"),
        (
            "refund_email_text",
            "We refunded ((amount)) for ((reference)).",
        ),
        (
            "deep_link_template",
            "https://crm.example.gov/cases/{case_ref}",
        ),
    ]
}

fn with<'a>(
    mut fields: Vec<(&'a str, &'a str)>,
    name: &'a str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    fields.retain(|(k, _)| *k != name);
    fields.push((name, value));
    fields
}

async fn service_count(app: &TestApp) -> usize {
    paydesk::services::all(&app.state.db).await.unwrap().len()
}

fn id_from(location: &str) -> i64 {
    location
        .trim_start_matches("/admin/services/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("a service address: {location}"))
}

#[tokio::test]
async fn who_may_manage_which_service() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let council = app.service("council").await;
    let viewer = app
        .person("v@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    let finance = app
        .person("f@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    let sa = app
        .person("sa@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;

    // Without services:manage: refused, and no menu item.
    for p in [&viewer, &finance] {
        let v = Visitor::new(&app, p).await;
        assert_eq!(v.get("/admin/services").await.status, Status::Forbidden);
        assert_eq!(
            v.get(&format!("/admin/services/{parking}")).await.status,
            Status::Forbidden
        );
        let r = v
            .post(
                &format!("/admin/services/{parking}/edit"),
                &valid_fields("parking", ""),
            )
            .await;
        assert_eq!(r.status, Status::Forbidden);
        let home = v.get("/").await.body;
        assert!(
            !home.contains("href=\"&#x2F;admin&#x2F;services\""),
            "no Services link for {}",
            p.email
        );
        assert!(
            !home.contains("href=\"&#x2F;audit\""),
            "no Audit link for {}",
            p.email
        );
    }

    // A service admin: their own service only; another service answers 404 as if absent.
    let v = Visitor::new(&app, &sa).await;
    let home = v.get("/").await.body;
    assert!(home.contains("href=\"&#x2F;admin&#x2F;services\""));
    assert!(home.contains("href=\"&#x2F;audit\""));
    let list = v.get("/admin/services").await;
    assert_eq!(list.status, Status::Ok);
    assert!(list.body.contains("Service parking"));
    assert!(!list.body.contains("Service council"));
    assert!(!list.body.contains("Add a service"));
    assert_eq!(
        v.get(&format!("/admin/services/{parking}")).await.status,
        Status::Ok
    );
    assert_eq!(
        v.get(&format!("/admin/services/{parking}/edit"))
            .await
            .status,
        Status::Ok
    );
    for path in [
        format!("/admin/services/{council}"),
        format!("/admin/services/{council}/edit"),
        "/admin/services/999999".into(),
    ] {
        assert_eq!(v.get(&path).await.status, Status::NotFound, "{path}");
    }
    let r = v
        .post(
            &format!("/admin/services/{council}/edit"),
            &valid_fields("council", ""),
        )
        .await;
    assert_eq!(r.status, Status::NotFound);
    let r = v
        .post(&format!("/admin/services/{council}/test"), &[])
        .await;
    assert_eq!(r.status, Status::NotFound);
    let council_row = paydesk::services::by_id(&app.state.db, council)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(council_row.name, "Service council", "untouched");
    // Creating services is for platform admins.
    assert_eq!(v.get("/admin/services/new").await.status, Status::NotFound);
    let before = service_count(&app).await;
    let r = v
        .post("/admin/services/new", &valid_fields("sneaky", ""))
        .await;
    assert_eq!(r.status, Status::NotFound);
    assert_eq!(service_count(&app).await, before);
    assert!(!audit_store::by_action(&app.state.db, "authz_fail")
        .await
        .unwrap()
        .is_empty());

    // A platform admin sees and creates everything.
    let v = Visitor::new(&app, &pa).await;
    let list = v.get("/admin/services").await.body;
    assert!(
        list.contains("Service parking")
            && list.contains("Service council")
            && list.contains("Add a service")
    );
    assert_eq!(v.get("/admin/services/new").await.status, Status::Ok);
    assert_eq!(
        v.get(&format!("/admin/services/{council}/edit"))
            .await
            .status,
        Status::Ok
    );
    // CSRF: a form without the token changes nothing.
    let r = v
        .client
        .post(format!("/admin/services/{council}/edit"))
        .header(ContentType::Form)
        .cookie(v.cookie.clone())
        .body(form_body(&valid_fields("council", "")))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);
}

#[tokio::test]
async fn each_bad_setting_is_explained_and_the_form_is_kept() {
    let app = TestApp::new().await;
    app.service("taken").await;
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let v = Visitor::new(&app, &pa).await;
    let before = service_count(&app).await;
    let base = || valid_fields("parking", "https://publicapi.example.gov");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            with(base(), "slug", "Parking Permits"),
            "Enter a slug of 1 to 40 lower-case letters",
        ),
        (
            with(base(), "slug", "taken"),
            "Another service already has the slug taken",
        ),
        (
            with(base(), "time_zone", "Mars/Olympus"),
            "Enter a time zone by its IANA name",
        ),
        (
            with(
                base(),
                "deep_link_template",
                "http://crm.example.gov/cases/{case_ref}",
            ),
            "must start with https://",
        ),
        (
            with(
                base(),
                "deep_link_template",
                "https://crm.example.gov/cases/{case_id}",
            ),
            "uses {case_id}, which paydesk does not know",
        ),
        (
            with(
                base(),
                "deep_link_template",
                "https://{case_ref}.example.gov/",
            ),
            "cannot put a placeholder in the site",
        ),
        (
            with(base(), "refund_approval_threshold", "-10"),
            "Enter the approval threshold in pounds and pence",
        ),
        (
            with(base(), "refund_approval_threshold", "1e3"),
            "Enter the approval threshold in pounds and pence",
        ),
        (
            with(base(), "platform_url", "http://pay.example.gov"),
            "Enter the platform's address starting with https://",
        ),
        (with(base(), "api_key", ""), "Enter the API key"),
        (
            with(base(), "webhook_secret", "short"),
            "must be 16 to 200 characters",
        ),
        (
            with(base(), "refund_email_text", "Hello ((name))"),
            "uses ((name)), which paydesk does not fill",
        ),
    ];
    for (fields, message) in cases {
        let r = v.post("/admin/services/new", &fields).await;
        assert_eq!(r.status, Status::UnprocessableEntity, "{message}");
        assert!(r.body.contains("There is a problem"), "{message}");
        assert!(r.body.contains("<title>Error: "), "{message}");
        assert!(
            unescape(&r.body).contains(message),
            "{message} in {}",
            r.body
        );
        // What was typed stays (but never a secret).
        assert!(r.body.contains("value=\"Parking permits\""), "{message}");
        assert!(!r.body.contains(API_KEY) && !r.body.contains(WEBHOOK_SECRET));
    }
    assert_eq!(service_count(&app).await, before, "nothing was saved");
}

#[tokio::test]
async fn secrets_are_sealed_masked_kept_when_blank_and_never_audited() {
    let app = TestApp::new().await;
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let v = Visitor::new(&app, &pa).await;
    let r = v
        .post(
            "/admin/services/new",
            &valid_fields("parking", "https://publicapi.example.gov"),
        )
        .await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    let id = id_from(&r.location);
    assert!(r.location.ends_with("?notice=created"));
    let page = v.get(&r.location).await;
    assert_eq!(page.status, Status::Ok);
    let text = unescape(&page.body);
    assert!(text.contains("The service was created"));
    assert!(text.contains("API key ending"), "masked: {text}");
    assert!(text.contains("Set (hidden)"));
    assert!(text.contains("Refunds above £100.00 need a second person"));
    assert!(text.contains("https://crm.example.gov/cases/{case_ref}"));
    assert!(text.contains("/hooks/govuk-pay/parking"));
    for secret in [API_KEY, WEBHOOK_SECRET] {
        assert!(!page.body.contains(secret) && !text.contains(secret));
        let edit = v.get(&format!("/admin/services/{id}/edit")).await;
        assert!(!edit.body.contains(secret) && !unescape(&edit.body).contains(secret));
    }
    // Stored sealed, not as typed.
    let service = paydesk::services::by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    let stored = paydesk::store::services::by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.credentials.clone().unwrap().contains(API_KEY));
    assert!(!stored
        .webhook_secret
        .clone()
        .unwrap()
        .contains(WEBHOOK_SECRET));
    assert_eq!(
        service
            .webhook_secret(&app.state.config)
            .unwrap()
            .as_deref(),
        Some(WEBHOOK_SECRET)
    );
    let settings = paydesk::store::refunds::settings(&app.state.db, id)
        .await
        .unwrap();
    assert_eq!(settings.refund_approval_threshold, Some(10_000));
    assert!(settings.refund_case_reference_required && settings.refund_email_enabled);

    // An edit with the secrets left blank keeps them, and moves updated_at on even though
    // the (manual) clock has not moved: the platform client made before is not reused.
    let client_before = app
        .state
        .platforms
        .client(&app.state.config, &service)
        .unwrap();
    let before = stored.updated_at.unwrap();
    let fields = with(
        with(
            with(
                valid_fields("parking", "https://publicapi.example.gov"),
                "api_key",
                "",
            ),
            "webhook_secret",
            "",
        ),
        "name",
        "Parking and permits",
    );
    let r = v.post(&format!("/admin/services/{id}/edit"), &fields).await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    assert!(r.location.ends_with("?notice=saved"));
    let after = paydesk::services::by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.name, "Parking and permits");
    assert_eq!(
        after.credentials(&app.state.config).unwrap(),
        Some(paydesk::platform::client::Credentials::ApiKey {
            api_key: API_KEY.into()
        })
    );
    assert_eq!(
        after.webhook_secret(&app.state.config).unwrap().as_deref(),
        Some(WEBHOOK_SECRET)
    );
    let stored_after = paydesk::store::services::by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored_after.updated_at.unwrap() > before,
        "updated_at moved on"
    );
    let client_after = app
        .state
        .platforms
        .client(&app.state.config, &after)
        .unwrap();
    assert!(
        !std::sync::Arc::ptr_eq(&client_before, &client_after),
        "a new client"
    );

    // Switching to OAuth2 needs its secret; then blank keeps it.
    let oauth = |secret: &'static str| {
        let mut f = valid_fields("parking", "https://publicapi.example.gov");
        f = with(f, "auth", "oauth2");
        f = with(f, "api_key", "");
        f = with(f, "webhook_secret", "");
        f = with(f, "client_id", "paydesk-client");
        f = with(f, "token_url", "https://auth.example.gov/token");
        with(f, "client_secret", secret)
    };
    let r = v
        .post(&format!("/admin/services/{id}/edit"), &oauth(""))
        .await;
    assert_eq!(r.status, Status::UnprocessableEntity);
    assert!(r.body.contains("Enter the OAuth2 client secret"));
    let r = v
        .post(&format!("/admin/services/{id}/edit"), &oauth(CLIENT_SECRET))
        .await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    let r = v
        .post(&format!("/admin/services/{id}/edit"), &oauth(""))
        .await;
    assert_eq!(
        r.status,
        Status::SeeOther,
        "blank keeps the saved secret: {}",
        r.body
    );
    let after = paydesk::services::by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    match after.credentials(&app.state.config).unwrap() {
        Some(paydesk::platform::client::Credentials::ClientCredentials {
            client_secret,
            client_id,
            ..
        }) => {
            assert_eq!(client_secret, CLIENT_SECRET);
            assert_eq!(client_id, "paydesk-client");
        }
        other => panic!("oauth2 credentials expected: {other:?}"),
    }
    let page = v.get(&format!("/admin/services/{id}")).await.body;
    assert!(!page.contains(CLIENT_SECRET) && !page.contains(API_KEY));

    // Generating a secret shows it once, unsaved; saving it stores it and it is masked after.
    let r = v
        .post(
            &format!("/admin/services/{id}/edit"),
            &with(oauth(""), "generate", "1"),
        )
        .await;
    assert_eq!(r.status, Status::Ok);
    let generated = crate::common::input_value(&r.body, "generated_webhook_secret")
        .expect("a generated secret");
    assert!(generated.starts_with("whsec_"), "{generated}");
    let mut fields: Vec<(&str, &str)> = oauth("");
    fields.push(("generated_webhook_secret", &generated));
    let r = v.post(&format!("/admin/services/{id}/edit"), &fields).await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    let after = paydesk::services::by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.webhook_secret(&app.state.config).unwrap().as_deref(),
        Some(generated.as_str())
    );
    let page = v.get(&format!("/admin/services/{id}")).await.body;
    assert!(!unescape(&page).contains(&generated));

    // Every change is audited, with who and which service, and no secret anywhere.
    let created = audit_store::by_action(&app.state.db, "service_created")
        .await
        .unwrap();
    let updated = audit_store::by_action(&app.state.db, "service_updated")
        .await
        .unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!(updated.len(), 4);
    for e in created.iter().chain(&updated) {
        assert_eq!(e.target, format!("service:{id}"));
        assert_eq!(e.actor_label, "pa@example.gov.uk");
        for secret in [API_KEY, WEBHOOK_SECRET, CLIENT_SECRET, generated.as_str()] {
            assert!(!e.details.contains(secret), "{}", e.details);
            assert!(
                !e.details.contains(&secret[secret.len() - 6..]),
                "not even the end: {}",
                e.details
            );
        }
    }
    assert!(
        updated[0].details.contains("\"credentials_changed\":false"),
        "{}",
        updated[0].details
    );
    assert!(
        updated[1]
            .details
            .contains("\"credentials_kind\":\"oauth2\""),
        "{}",
        updated[1].details
    );
    assert!(
        updated[3]
            .details
            .contains("\"webhook_signing_changed\":true"),
        "{}",
        updated[3].details
    );
}

#[tokio::test]
async fn a_service_admin_changes_their_own_service() {
    let app = TestApp::new().await;
    let id = app.service("parking").await;
    let sa = app
        .person("sa@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let v = Visitor::new(&app, &sa).await;
    let fields = with(
        with(valid_fields("parking", ""), "auth", "none"),
        "api_key",
        "",
    );
    let r = v.post(&format!("/admin/services/{id}/edit"), &fields).await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    let extra = paydesk::store::service_admin::extra_settings(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        extra.deep_link_template.as_deref(),
        Some("https://crm.example.gov/cases/{case_ref}")
    );
    assert_eq!(extra.refund_approval_threshold, Some(10_000));
    let updated = audit_store::by_action(&app.state.db, "service_updated")
        .await
        .unwrap();
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].actor_label, "sa@example.gov.uk");
}

#[tokio::test]
async fn test_connection_against_the_sandbox() {
    let sandbox = SandboxProcess::start_with(&["--seed", "0", "--accounts", "1"]);
    let app = TestApp::with_config(|c| {
        c.platform_timeout_ms = 1500;
        c.platform_retries = 0;
    })
    .await;
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let v = Visitor::new(&app, &pa).await;
    let mut fields = valid_fields("parking", &sandbox.base_url);
    let good_key = SandboxProcess::api_key(1);
    fields = with(fields, "api_key", &good_key);
    let r = v.post("/admin/services/new", &fields).await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    let id = id_from(&r.location);

    let page = press_test(&v, id).await;
    assert!(page.contains("Connected: the platform answered"), "{page}");

    // A wrong key: the platform refuses it (the client made before the change is not used).
    let fields = with(
        with(
            valid_fields("parking", &sandbox.base_url),
            "api_key",
            "sandbox-key-wrong-0000",
        ),
        "webhook_secret",
        "",
    );
    let r = v.post(&format!("/admin/services/{id}/edit"), &fields).await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    let page = press_test(&v, id).await;
    assert!(page.contains("The platform refused the API key"), "{page}");
    assert!(page.contains("The connection test failed"));

    // Nobody listening at the address.
    let port = crate::common::free_port();
    let nowhere = format!("http://127.0.0.1:{port}");
    // (A new address keeps no saved key: it is entered again with the address.)
    let fields = with(valid_fields("parking", &nowhere), "webhook_secret", "");
    let r = v.post(&format!("/admin/services/{id}/edit"), &fields).await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    let page = press_test(&v, id).await;
    assert!(
        page.contains(&format!("Could not reach {nowhere}")),
        "{page}"
    );

    // No platform account at all.
    let fields = with(
        with(
            with(valid_fields("parking", ""), "auth", "none"),
            "api_key",
            "",
        ),
        "webhook_secret",
        "",
    );
    let r = v.post(&format!("/admin/services/{id}/edit"), &fields).await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    let page = press_test(&v, id).await;
    assert!(
        page.contains("There is no platform account to test"),
        "{page}"
    );

    let tests = audit_store::by_action(&app.state.db, "service_connection_tested")
        .await
        .unwrap();
    let results: Vec<(&str, bool)> = tests
        .iter()
        .map(|e| {
            (
                e.outcome.as_str(),
                e.details.contains("\"result\":\"connected\""),
            )
        })
        .collect();
    assert_eq!(
        results,
        vec![
            ("success", true),
            ("failure", false),
            ("failure", false),
            ("failure", false)
        ]
    );
    for e in &tests {
        assert_eq!(e.target, format!("service:{id}"));
        assert!(!e.details.contains(&good_key) && !e.details.contains("sandbox-key-wrong"));
    }
}

/// Press "Test connection" and read the answer.
async fn press_test(v: &Visitor, id: i64) -> String {
    let r = v.post(&format!("/admin/services/{id}/test"), &[]).await;
    assert_eq!(r.status, Status::SeeOther);
    let page = v.get(&r.location).await;
    assert_eq!(page.status, Status::Ok);
    unescape(&page.body)
}

/// A journey row as the platform sync would write it, with a case reference.
pub async fn journey(
    app: &TestApp,
    service_id: i64,
    payment_id: &str,
    reference: &str,
    case_ref: Option<&str>,
) {
    let sql = "INSERT INTO journeys (service_id, payment_id, status, status_rank, finished, amount, description, \
               reference, reference_key, case_reference, created_at, observed_at, first_seen_at, updated_at) \
               VALUES ($1, $2, 'success', 5, TRUE, 1250, 'Parking permit', $3, $4, $5, $6, $6, $6, $6)";
    let now = paydesk::store::to_micros(app.state.clock.now());
    paydesk::on_db!(&app.state.db, pool => {
        sqlx::query(sql)
            .bind(service_id)
            .bind(payment_id)
            .bind(reference)
            .bind(reference.to_lowercase())
            .bind(case_ref)
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
    });
}

#[tokio::test]
async fn deep_links_on_the_journey_page_and_in_search_results() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let council = app.service("council").await;
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let v = Visitor::new(&app, &pa).await;
    let fields = with(
        with(
            with(valid_fields("parking", ""), "auth", "none"),
            "api_key",
            "",
        ),
        "deep_link_template",
        "https://crm.example.gov/cases/{case_ref}?p={payment_id}",
    );
    let r = v
        .post(&format!("/admin/services/{parking}/edit"), &fields)
        .await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    journey(&app, parking, "pay1", "PARK-1", Some("CASE 7/A&B")).await;
    journey(&app, parking, "pay2", "PARK-2", None).await;
    journey(&app, council, "pay3", "COUN-3", Some("CASE-9")).await;

    let link = "https://crm.example.gov/cases/CASE%207%2FA%26B?p=pay1";
    let page = v.get("/payments/pay1?service=parking").await;
    assert_eq!(page.status, Status::Ok);
    assert!(
        unescape(&page.body).contains(&format!("href=\"{link}\"")),
        "{}",
        page.body
    );
    // No case reference, or a service without a template: no link.
    let page = v.get("/payments/pay2?service=parking").await;
    assert!(!unescape(&page.body).contains("crm.example.gov"));
    let page = v.get("/payments/pay3?service=council").await;
    assert!(page.body.contains("CASE-9"));
    assert!(!unescape(&page.body).contains("crm.example.gov"));

    let results = unescape(&v.get("/payments").await.body);
    assert!(results.contains(&format!("href=\"{link}\"")), "{results}");
    assert_eq!(results.matches("crm.example.gov").count(), 1);
}
