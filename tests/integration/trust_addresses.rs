//! Issue 16, items 9, 10, 11 and 15, acted out as an attacker would: a service admin moves the
//! platform address (or only the OAuth2 token address) to a host of their own and presses
//! "Test connection"; someone with the database moves the address by hand; platform addresses
//! and event endpoints aimed at the internal network; refused API tokens sent with a new
//! `X-Forwarded-For` each time; `/metrics` behind a proxy and in the release profile.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paydesk::audit::Actor;
use paydesk::config::Config;
use paydesk::identity::permissions::Role;
use paydesk::platform::client::Credentials;
use paydesk::platform::hosts::PlatformHosts;
use paydesk::services::{self, NewService, ServiceError};
use paydesk::store::audit as audit_store;
use paydesk::store::events as event_store;
use rocket::http::{Header, Status};
use serde_json::json;

use crate::admin_services::{unescape, Visitor};
use crate::common::TestApp;

const API_KEY: &str = "api_live_SAVEDKEY_0123456789abcdef";
const CLIENT_SECRET: &str = "oauth_SAVEDCLIENTSECRET_0123456789";
const WEBHOOK_SECRET: &str = "whsec_SAVEDSIGNINGSECRET_0123456789";

/// A tiny HTTP server on this machine that keeps every request it is sent (head and body)
/// and answers 401, as a host an admin points paydesk at would.
struct Recorder {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("port").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
                let text = read_request(&mut stream);
                kept.lock().unwrap_or_else(|p| p.into_inner()).push(text);
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                );
            }
        });
        Recorder {
            url: format!("http://127.0.0.1:{port}"),
            requests,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A request's head and its body (by content-length).
fn read_request(stream: &mut std::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut want: Option<usize> = None;
    loop {
        if let Some(end) = want {
            if buf.len() >= end {
                break;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if want.is_none() {
            if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                want = Some(head_end + 4 + length);
            }
        }
    }
    String::from_utf8_lossy(&buf).to_string()
}

/// Whether any recorded request carries `secret`, plainly or in a Basic header.
fn leaked(requests: &[String], secret: &str) -> bool {
    use base64::Engine;
    requests.iter().any(|r| {
        r.contains(secret)
            || r.lines()
                .filter_map(|l| l.strip_prefix("authorization: Basic "))
                .chain(
                    r.lines()
                        .filter_map(|l| l.strip_prefix("Authorization: Basic ")),
                )
                .any(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .map(|d| String::from_utf8_lossy(&d).contains(secret))
                        .unwrap_or(false)
                })
    })
}

fn api_key_fields<'a>(platform_url: &'a str, api_key: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", "Parking permits"),
        ("slug", "parking"),
        ("time_zone", "Europe/London"),
        ("platform_url", platform_url),
        ("auth", "api_key"),
        ("api_key", api_key),
        ("webhook_secret", ""),
    ]
}

fn oauth_fields<'a>(
    platform_url: &'a str,
    token_url: &'a str,
    secret: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", "Parking permits"),
        ("slug", "parking"),
        ("time_zone", "Europe/London"),
        ("platform_url", platform_url),
        ("auth", "oauth2"),
        ("client_id", "paydesk-parking"),
        ("client_secret", secret),
        ("token_url", token_url),
        ("scopes", "payments refunds"),
        ("webhook_secret", ""),
    ]
}

/// A platform admin made the service; `sa` is its service admin.
async fn setup(app: &TestApp, fields: &[(&str, &str)]) -> (i64, Visitor) {
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let creator = Visitor::new(app, &pa).await;
    let mut all = fields.to_vec();
    all.retain(|(k, _)| *k != "webhook_secret");
    all.push(("webhook_secret", WEBHOOK_SECRET));
    let r = creator.post("/admin/services/new", &all).await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    let id: i64 = r
        .location
        .trim_start_matches("/admin/services/")
        .split('?')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("a service address");
    let sa = app
        .person("sa@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    (id, Visitor::new(app, &sa).await)
}

async fn press_test(v: &Visitor, id: i64) -> String {
    let r = v.post(&format!("/admin/services/{id}/test"), &[]).await;
    assert_eq!(r.status, Status::SeeOther);
    let page = v.get(&r.location).await;
    assert_eq!(page.status, Status::Ok);
    unescape(&page.body)
}

async fn row(app: &TestApp, id: i64) -> paydesk::store::services::ServiceAccountRow {
    paydesk::store::services::by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_new_platform_address_without_the_key_removes_it_and_test_connection_sends_nothing() {
    let app = TestApp::with_config(|c| c.platform_retries = 0).await;
    let old = Recorder::start();
    let (id, sa) = setup(&app, &api_key_fields(&old.url, API_KEY)).await;
    assert!(row(&app, id).await.credentials.is_some());
    assert!(row(&app, id).await.webhook_secret.is_some());

    // The service admin points the service at a host of their own, leaving the key blank.
    let theirs = Recorder::start();
    let r = sa
        .post(
            &format!("/admin/services/{id}/edit"),
            &api_key_fields(&theirs.url, ""),
        )
        .await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    assert!(r.location.ends_with("notice=cleared"), "{}", r.location);
    let page = sa.get(&r.location).await;
    assert!(
        unescape(&page.body)
            .contains("the saved credentials and webhook secret for the old address were removed"),
        "{}",
        page.body
    );
    let saved = row(&app, id).await;
    assert_eq!(saved.platform_url.as_deref(), Some(theirs.url.as_str()));
    assert_eq!(saved.credentials, None, "the saved key is gone");
    assert_eq!(saved.webhook_secret, None, "the webhook secret is gone");
    let updated = audit_store::by_action(&app.state.db, "service_updated")
        .await
        .unwrap();
    assert!(
        updated.iter().any(|e| e
            .details
            .contains("\"credentials_cleared_by_address_change\":true")),
        "{updated:?}"
    );

    let page = press_test(&sa, id).await;
    assert!(
        page.contains("There is no platform account to test"),
        "{page}"
    );
    assert!(theirs.requests().is_empty(), "{:?}", theirs.requests());
    assert!(old.requests().is_empty(), "{:?}", old.requests());

    // Entering a key with the new address is the way to send one there (and shows that the
    // recorder hears what it is sent).
    let r = sa
        .post(
            &format!("/admin/services/{id}/edit"),
            &api_key_fields(&theirs.url, "api_live_NEWKEY_for_the_new_host_0001"),
        )
        .await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    assert!(r.location.ends_with("notice=saved"), "{}", r.location);
    let page = press_test(&sa, id).await;
    assert!(page.contains("The platform refused the API key"), "{page}");
    let heard = theirs.requests();
    assert!(leaked(&heard, "api_live_NEWKEY_for_the_new_host_0001"));
    assert!(!leaked(&heard, API_KEY), "{heard:?}");
}

#[tokio::test]
async fn moving_only_the_token_address_removes_the_client_secret() {
    let app = TestApp::with_config(|c| c.platform_retries = 0).await;
    let platform = Recorder::start();
    let token = format!("{}/oauth/token", platform.url);
    let (id, sa) = setup(&app, &oauth_fields(&platform.url, &token, CLIENT_SECRET)).await;
    assert!(row(&app, id).await.credentials.is_some());

    let theirs = Recorder::start();
    let their_token = format!("{}/token", theirs.url);
    let r = sa
        .post(
            &format!("/admin/services/{id}/edit"),
            &oauth_fields(&platform.url, &their_token, ""),
        )
        .await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    assert!(r.location.ends_with("notice=cleared"), "{}", r.location);
    assert_eq!(row(&app, id).await.credentials, None);
    let page = press_test(&sa, id).await;
    assert!(
        page.contains("There is no platform account to test"),
        "{page}"
    );
    assert!(theirs.requests().is_empty(), "{:?}", theirs.requests());
    assert!(!leaked(&platform.requests(), CLIENT_SECRET));

    // Unchanged addresses keep the saved secret when it is left blank.
    let r = sa
        .post(
            &format!("/admin/services/{id}/edit"),
            &oauth_fields(&platform.url, &token, CLIENT_SECRET),
        )
        .await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    let r = sa
        .post(
            &format!("/admin/services/{id}/edit"),
            &oauth_fields(&platform.url, &token, ""),
        )
        .await;
    assert!(r.location.ends_with("notice=saved"), "{}", r.location);
    assert!(row(&app, id).await.credentials.is_some());
}

#[tokio::test]
async fn an_address_changed_in_the_database_does_not_take_the_saved_key_with_it() {
    let app = TestApp::with_config(|c| c.platform_retries = 0).await;
    let old = Recorder::start();
    let (id, sa) = setup(&app, &api_key_fields(&old.url, API_KEY)).await;
    // Someone with the database (not the form) moves the address.
    let theirs = Recorder::start();
    paydesk::on_db!(&app.state.db, pool => {
        sqlx::query("UPDATE services SET platform_url = $1, updated_at = updated_at + 1 WHERE id = $2")
            .bind(&theirs.url)
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    });
    let page = press_test(&sa, id).await;
    assert!(page.contains("were saved for another address"), "{page}");
    assert!(theirs.requests().is_empty(), "{:?}", theirs.requests());
    // Nor does any other caller get a client for it (the sync, refunds).
    let service = services::by_id(&app.state.db, id).await.unwrap().unwrap();
    assert!(matches!(
        app.state.platforms.client(&app.state.config, &service),
        Err(ServiceError::Moved(_))
    ));
    assert!(matches!(
        service.credentials(&app.state.config),
        Err(ServiceError::Moved(_))
    ));
    // The edit form does not offer the moved key as saved: it must be entered again.
    let form = sa.get(&format!("/admin/services/{id}/edit")).await;
    assert_eq!(form.status, Status::Ok);
    assert!(
        !form.body.contains("Leave blank to keep it;"),
        "{}",
        form.body
    );
    // Moving it back lets it work again: the key is bound to the old address, not lost.
    paydesk::on_db!(&app.state.db, pool => {
        sqlx::query("UPDATE services SET platform_url = $1, updated_at = updated_at + 1 WHERE id = $2")
            .bind(&old.url)
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    });
    let page = press_test(&sa, id).await;
    assert!(page.contains("The platform refused the API key"), "{page}");
    assert!(leaked(&old.requests(), API_KEY));
    assert!(theirs.requests().is_empty());
}

#[tokio::test]
async fn credentials_saved_before_binding_are_bound_to_their_address_once() {
    let app = TestApp::new().await;
    let recorder = Recorder::start();
    let id = services::add(
        &app.state,
        Actor::System,
        &NewService {
            slug: "parking".into(),
            name: "Parking".into(),
            time_zone: "Europe/London".into(),
            platform_url: Some(recorder.url.clone()),
            credentials: Some(Credentials::ApiKey {
                api_key: "replaced-below-0000".into(),
            }),
            webhook_secret: None,
        },
    )
    .await
    .unwrap()
    .unwrap();
    // Sealed as earlier versions did: the credentials alone.
    let legacy = paydesk::crypto::seal(
        &app.state.config.platform_key(),
        &format!("service:{id}:credentials"),
        json!(Credentials::ApiKey {
            api_key: API_KEY.into()
        })
        .to_string()
        .as_bytes(),
    );
    paydesk::on_db!(&app.state.db, pool => {
        sqlx::query("UPDATE services SET credentials = $1 WHERE id = $2")
            .bind(&legacy)
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    });
    let unbound = services::by_id(&app.state.db, id).await.unwrap().unwrap();
    assert!(
        matches!(
            unbound.credentials(&app.state.config),
            Err(ServiceError::Moved(_))
        ),
        "unbound credentials are not used"
    );
    assert_eq!(
        services::binding::bind_saved_credentials(&app.state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        services::binding::bind_saved_credentials(&app.state)
            .await
            .unwrap(),
        0
    );
    let bound = services::by_id(&app.state.db, id).await.unwrap().unwrap();
    assert_eq!(
        bound.credentials(&app.state.config).unwrap(),
        Some(Credentials::ApiKey {
            api_key: API_KEY.into()
        })
    );
    assert_eq!(
        audit_store::by_action(&app.state.db, "service_credentials_bound")
            .await
            .unwrap()
            .len(),
        1
    );
    paydesk::on_db!(&app.state.db, pool => {
        sqlx::query("UPDATE services SET platform_url = 'https://publicapi.payments.service.gov.uk' WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    });
    let moved = services::by_id(&app.state.db, id).await.unwrap().unwrap();
    assert!(matches!(
        moved.credentials(&app.state.config),
        Err(ServiceError::Moved(_))
    ));
}

#[tokio::test]
async fn only_hosts_a_platform_admin_allows_can_be_saved_or_called() {
    let app = TestApp::new().await;
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let v = Visitor::new(&app, &pa).await;
    let refused = [
        ("https://10.0.0.1", "paydesk may not call 10.0.0.1"),
        (
            "https://169.254.169.254",
            "paydesk may not call 169.254.169.254",
        ),
        ("https://[::ffff:a9fe:a9fe]", "paydesk may not call"),
        (
            "https://internal.example.org:8443",
            "paydesk may not call internal.example.org",
        ),
        (
            "https://publicapi.payments.service.gov.uk@10.0.0.1/",
            "must not contain a user name",
        ),
        (
            "https://10.0.0.1\\@publicapi.payments.service.gov.uk/",
            "must not contain a user name, a password, a backslash",
        ),
        (
            "http://pay.example.gov",
            "Enter the platform's address starting with https://",
        ),
    ];
    for (url, says) in refused {
        let r = v
            .post("/admin/services/new", &api_key_fields(url, API_KEY))
            .await;
        assert_eq!(r.status, Status::UnprocessableEntity, "{url}");
        let body = unescape(&r.body);
        assert!(body.contains(says), "{url}: {body}");
        if says.starts_with("paydesk may not call") {
            assert!(body.contains("a platform admin allows only"), "{body}");
        }
    }
    // The OAuth2 token address too.
    let r = v
        .post(
            "/admin/services/new",
            &oauth_fields(
                "https://publicapi.payments.service.gov.uk",
                "https://169.254.169.254/token",
                CLIENT_SECRET,
            ),
        )
        .await;
    assert_eq!(r.status, Status::UnprocessableEntity);
    assert!(unescape(&r.body).contains("paydesk may not call 169.254.169.254"));
    assert!(services::all(&app.state.db).await.unwrap().is_empty());
    // Nor through `services::add` (the command line).
    let added = services::add(
        &app.state,
        Actor::System,
        &NewService {
            slug: "parking".into(),
            name: "Parking".into(),
            time_zone: "Europe/London".into(),
            platform_url: Some("https://10.0.0.1".into()),
            credentials: Some(Credentials::ApiKey {
                api_key: API_KEY.into(),
            }),
            webhook_secret: None,
        },
    )
    .await
    .unwrap();
    assert!(added.is_err());

    // A host later taken off the list is no longer called, with what was saved for it.
    let recorder = Recorder::start();
    let id = services::add(
        &app.state,
        Actor::System,
        &NewService {
            slug: "parking".into(),
            name: "Parking".into(),
            time_zone: "Europe/London".into(),
            platform_url: Some(recorder.url.clone()),
            credentials: Some(Credentials::ApiKey {
                api_key: API_KEY.into(),
            }),
            webhook_secret: None,
        },
    )
    .await
    .unwrap()
    .unwrap();
    let service = services::by_id(&app.state.db, id).await.unwrap().unwrap();
    let mut stricter = (*app.state.config).clone();
    stricter.platform_hosts = PlatformHosts::default();
    let fresh = paydesk::platform::cache::Platforms::default();
    assert!(matches!(
        fresh.client(&stricter, &service),
        Err(ServiceError::HostNotAllowed { .. })
    ));
    assert!(fresh.client(&app.state.config, &service).is_ok());
    assert!(recorder.requests().is_empty());
}

#[tokio::test]
async fn event_endpoints_that_reach_reserved_addresses_in_disguise_are_refused() {
    let app = TestApp::new().await;
    let _ = app.service("parking").await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;
    for (url, says) in [
        (
            "https://[::ffff:0:127.0.0.1]/",
            "private or reserved address",
        ),
        (
            "https://[64:ff9b:1::7f00:1]/",
            "private or reserved address",
        ),
        (
            "https://[64:ff9b::a9fe:a9fe]/",
            "private or reserved address",
        ),
        (
            "https://[::ffff:169.254.169.254]/",
            "private or reserved address",
        ),
        ("https://[::127.0.0.1]/", "private or reserved address"),
        ("https://[2002:a9fe:a9fe::]/", "private or reserved address"),
        (
            "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
            "private or reserved address",
        ),
        (
            "https://8.8.8.8\\@127.0.0.1/",
            "must not contain backslashes",
        ),
        (
            "https://crm.example.gov.uk\\@10.0.0.1/",
            "must not contain backslashes",
        ),
        ("https://8.8.8.8@127.0.0.1/", "user name or password"),
        ("https://@crm.example.gov.uk/", "user name or password"),
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
    }
    assert!(event_store::all_endpoints(&app.state.db)
        .await
        .unwrap()
        .is_empty());
}

async fn bad_token_status(app: &TestApp, forwarded_for: &str) -> u16 {
    app.client
        .get("/api/v1/payments")
        .header(Header::new(
            "Authorization",
            format!("Bearer pdk_{}", "Z".repeat(43)),
        ))
        .header(Header::new("X-Forwarded-For", forwarded_for.to_string()))
        .remote("198.51.100.7:40000".parse().unwrap())
        .dispatch()
        .await
        .status()
        .code
}

#[tokio::test]
async fn a_new_forwarded_for_each_time_does_not_dodge_the_refused_token_limit() {
    let app = TestApp::with_config(|c| c.sign_in_rate_per_minute = 5).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(bad_token_status(&app, &format!("203.0.113.{i}")).await);
    }
    assert_eq!(statuses, vec![401, 401, 401, 401, 401, 429, 429, 429]);
    // Only with a trusted header configured does the header name the client (so the test
    // above would see different clients if the header were read).
    let trusting = TestApp::with_config(|c| {
        c.sign_in_rate_per_minute = 5;
        c.trusted_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    for i in 0..8 {
        assert_eq!(
            bad_token_status(&trusting, &format!("203.0.113.{i}")).await,
            401
        );
    }
}

/// A configuration read as production reads it: the release profile.
fn release_config(database_url: &str, metrics_token: Option<&str>) -> Config {
    use rocket::figment::providers::Serialized;
    use rocket::figment::Figment;
    let figment = Figment::from(rocket::Config::debug_default())
        .merge(Serialized::defaults(json!({
            "database_url": database_url,
            "log_format": "text",
            "secret_key": "3f1c9a7e5b2d4f6081a3c5e7092b4d6f8a1c3e5072b4d6f8091a2b3c4d5e6f70",
            "jobs_enabled": false,
            "db_max_connections": 5,
            "metrics_token": metrics_token.unwrap_or(""),
        })))
        .select("release");
    let config = Config::from_figment(&figment, false).expect("a release configuration");
    assert_eq!(config.mode, paydesk::config::Mode::Release);
    config
}

async fn metrics_status(app: &TestApp, remote: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = app.client.get("/metrics").remote(remote.parse().unwrap());
    for (name, value) in headers {
        request = request.header(Header::new(name.to_string(), value.to_string()));
    }
    request.dispatch().await.status().code
}

#[tokio::test]
async fn metrics_need_their_token_in_release_and_a_proxy_never_makes_a_loopback_client() {
    // Release without a token: nobody, not even loopback.
    let release =
        TestApp::with_config(|c| *c = release_config(&c.database_url.clone(), None)).await;
    assert_eq!(metrics_status(&release, "127.0.0.1:5000", &[]).await, 404);
    assert_eq!(metrics_status(&release, "[::1]:5000", &[]).await, 404);
    assert_eq!(metrics_status(&release, "203.0.113.9:5000", &[]).await, 404);

    // Release with a token: only its holders.
    let with_token = TestApp::with_config(|c| {
        *c = release_config(&c.database_url.clone(), Some("metrics-token-0123456789"))
    })
    .await;
    assert_eq!(
        metrics_status(&with_token, "127.0.0.1:5000", &[]).await,
        403
    );
    assert_eq!(
        metrics_status(
            &with_token,
            "127.0.0.1:5000",
            &[("Authorization", "Bearer metrics-token-0123456789")]
        )
        .await,
        200
    );

    // Elsewhere, without a token, loopback clients may read it, but not through a proxy.
    let debug = TestApp::new().await;
    assert_eq!(metrics_status(&debug, "127.0.0.1:5000", &[]).await, 200);
    assert_eq!(metrics_status(&debug, "203.0.113.9:5000", &[]).await, 403);
    for header in ["X-Forwarded-For", "Forwarded", "X-Real-IP"] {
        assert_eq!(
            metrics_status(&debug, "127.0.0.1:5000", &[(header, "203.0.113.9")]).await,
            403,
            "{header}"
        );
    }
}

#[tokio::test]
async fn the_demo_moves_its_services_with_credentials_sealed_for_the_sandbox_s_new_address() {
    let app = TestApp::new().await;
    let spec: paydesk::platform::sandbox::AccountSpec = serde_json::from_value(json!({
        "id": "acc-1",
        "name": "Parking",
        "api_key": "sandbox-key-1",
    }))
    .unwrap();
    let specs = [("parking", "Parking permits", spec)];
    let first = Recorder::start();
    paydesk::demo::ensure_services(&app.state, &first.url, &specs)
        .await
        .unwrap();
    // The next start finds its sandbox on another port.
    let second = Recorder::start();
    paydesk::demo::ensure_services(&app.state, &second.url, &specs)
        .await
        .unwrap();
    let service = services::by_slug(&app.state.db, "parking")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(service.platform_url.as_deref(), Some(second.url.as_str()));
    assert_eq!(
        service.credentials(&app.state.config).unwrap(),
        Some(Credentials::ApiKey {
            api_key: "sandbox-key-1".into()
        })
    );
    assert!(app
        .state
        .platforms
        .client(&app.state.config, &service)
        .is_ok());
    let moves = audit_store::by_action(&app.state.db, "service_updated")
        .await
        .unwrap();
    assert_eq!(moves.len(), 1);
    assert!(
        moves[0].details.contains(&first.url),
        "{}",
        moves[0].details
    );
    assert!(!moves[0].details.contains("sandbox-key-1"));
}
