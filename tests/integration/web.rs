use std::net::SocketAddr;

use paydesk::web::request::CONTENT_SECURITY_POLICY;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::LocalResponse;

use crate::common::TestApp;

fn loopback() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

fn assert_security_headers(res: &LocalResponse<'_>, what: &str) {
    let h = res.headers();
    assert_eq!(
        h.get_one("Content-Security-Policy"),
        Some(CONTENT_SECURITY_POLICY),
        "{what}"
    );
    let csp = h.get_one("Content-Security-Policy").unwrap();
    for part in [
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{what}: CSP lacks {part}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}");
    assert_eq!(
        h.get_one("Strict-Transport-Security"),
        Some("max-age=31536000; includeSubDomains"),
        "{what}"
    );
    assert_eq!(
        h.get_one("X-Content-Type-Options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(h.get_one("Referrer-Policy"), Some("no-referrer"), "{what}");
    assert_eq!(
        h.get_one("Cross-Origin-Opener-Policy"),
        Some("same-origin"),
        "{what}"
    );
    assert!(
        h.get_one("Permissions-Policy")
            .is_some_and(|p| p.contains("camera=()") && p.contains("geolocation=()")),
        "{what}"
    );
    assert!(
        h.get_one("X-Request-Id").is_some_and(|id| id.len() == 16),
        "{what}"
    );
    assert_eq!(
        h.get("Content-Security-Policy").count(),
        1,
        "{what}: one CSP header only"
    );
}

#[tokio::test]
async fn every_kind_of_response_carries_the_security_headers() {
    let app = TestApp::build(|_| {}, |r| r.mount("/test", rocket::routes![boom])).await;
    let c = &app.client;
    let cases: Vec<(LocalResponse<'_>, Status, &str)> = vec![
        (c.get("/login").dispatch().await, Status::Ok, "a page"),
        (c.get("/healthz").dispatch().await, Status::Ok, "JSON"),
        (
            c.get("/static/paydesk.css").dispatch().await,
            Status::Ok,
            "a static file",
        ),
        (
            c.get("/no/such/page").dispatch().await,
            Status::NotFound,
            "not found",
        ),
        (
            c.get("/metrics")
                .remote("203.0.113.9:4000".parse().unwrap())
                .dispatch()
                .await,
            Status::Forbidden,
            "forbidden",
        ),
        (
            c.get("/api/v1/nothing").dispatch().await,
            Status::NotFound,
            "an API error",
        ),
        (
            c.get("/test/boom").dispatch().await,
            Status::InternalServerError,
            "a server error",
        ),
    ];
    for (res, status, what) in &cases {
        assert_eq!(res.status(), *status, "{what}");
        assert_security_headers(res, what);
        let cache = res.headers().get_one("Cache-Control");
        if *what == "a static file" {
            assert_eq!(cache, Some("public, max-age=3600"));
        } else {
            assert_eq!(cache, Some("no-store"), "{what}");
        }
    }
}

#[rocket::get("/boom")]
fn boom() -> &'static str {
    panic!("internal detail that must not leak: SELECT secret FROM vault")
}

async fn body_of(res: LocalResponse<'_>) -> String {
    res.into_string().await.unwrap_or_default()
}

fn assert_friendly(body: &str, heading: &str) {
    assert!(body.contains(heading), "missing {heading:?} in {body}");
    assert!(
        body.contains("quote reference"),
        "a correlation id for support: {body}"
    );
    for leak in [
        "Rocket",
        "panicked",
        "SELECT",
        "vault",
        ".tera",
        "sqlx",
        "stack backtrace",
    ] {
        assert!(!body.contains(leak), "error page leaks {leak:?}: {body}");
    }
    assert!(body.contains("<main"), "uses the layout");
}

#[tokio::test]
async fn errors_are_friendly_pages_with_a_correlation_id() {
    let app = TestApp::build(|_| {}, |r| r.mount("/test", rocket::routes![boom])).await;
    let res = app.client.get("/no/such/page").dispatch().await;
    assert_eq!(res.status(), Status::NotFound);
    assert_eq!(res.content_type(), Some(ContentType::HTML));
    let id = res.headers().get_one("X-Request-Id").unwrap().to_string();
    let body = body_of(res).await;
    assert_friendly(&body, "Page not found");
    assert!(
        body.contains(&id),
        "the page shows the same reference as the header"
    );

    let res = app.client.get("/test/boom").dispatch().await;
    assert_eq!(res.status(), Status::InternalServerError);
    assert_friendly(
        &body_of(res).await,
        "Sorry, there is a problem with the service",
    );
}

#[tokio::test]
async fn malformed_requests_get_a_friendly_4xx() {
    let app = TestApp::new().await;
    let c = &app.client;
    // Percent-encoded bytes that are not UTF-8, in a page path and in a static path.
    for path in [
        "/%FF%FE",
        "/static/%C3%28.css",
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
    ] {
        let res = c.get(path).dispatch().await;
        assert!(
            res.status().code >= 400 && res.status().code < 500,
            "{path}: {}",
            res.status()
        );
        assert_friendly(&body_of(res).await, "Page not found");
    }
    // A 10 MB body to a page that takes none, and to one that does not exist.
    let big = vec![b'a'; 10 * 1024 * 1024];
    for path in ["/", "/healthz", "/nowhere"] {
        let res = c
            .post(path)
            .header(ContentType::Form)
            .body(&big)
            .dispatch()
            .await;
        assert!(
            res.status().code >= 400 && res.status().code < 500,
            "{path}: {}",
            res.status()
        );
        assert_friendly(&body_of(res).await, "Page not found");
    }
    // A hostile header value does not end up in the page.
    let res = c
        .get("/no")
        .header(Header::new("X-Request-Id", "<script>alert(1)</script>"))
        .dispatch()
        .await;
    assert!(!body_of(res).await.contains("<script>alert(1)"));
}

#[tokio::test]
async fn api_errors_are_problem_documents() {
    let app = TestApp::new().await;
    // An address the API does not have, and one it has but without a token (the API's own
    // tests, tests/integration/api.rs, cover the rest).
    for (path, status) in [
        ("/api/v1/nowhere", Status::NotFound),
        ("/api/v1/payments/unknown", Status::Unauthorized),
    ] {
        let res = app.client.get(path).dispatch().await;
        assert_eq!(res.status(), status, "{path}");
        assert_eq!(
            res.content_type(),
            Some(ContentType::new("application", "problem+json"))
        );
        let body: serde_json::Value = serde_json::from_str(&body_of(res).await).unwrap();
        assert_eq!(body["status"], status.code);
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], status.reason().unwrap_or_default());
        assert!(body["correlation_id"]
            .as_str()
            .is_some_and(|s| s.len() == 16));
    }
}

#[tokio::test]
async fn health_reports_the_database() {
    let app = TestApp::new().await;
    let res = app.client.get("/healthz").dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.content_type(), Some(ContentType::JSON));
    let body: serde_json::Value = serde_json::from_str(&body_of(res).await).unwrap();
    assert_eq!(body["database"], "ok");

    app.state.db.close().await;
    let res = app.client.get("/healthz").dispatch().await;
    assert_eq!(res.status(), Status::ServiceUnavailable);
    let body: serde_json::Value = serde_json::from_str(&body_of(res).await).unwrap();
    assert_eq!(body["database"], "unreachable");
}

#[tokio::test]
async fn metrics_report_requests_jobs_and_the_pool() {
    let app = TestApp::new().await;
    app.client.get("/healthz").dispatch().await;
    app.client.get("/healthz").dispatch().await;
    app.client.get("/missing").dispatch().await;
    let res = app
        .client
        .get("/metrics")
        .remote(loopback())
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    let text = body_of(res).await;
    assert!(
        text.contains(
            "paydesk_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "paydesk_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("paydesk_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"+Inf\"} 2"), "{text}");
    assert!(text.contains("paydesk_jobs{state=\"dead\"} 0"), "{text}");
    assert!(
        text.contains("paydesk_db_pool_connections{kind=\"max\"} 5"),
        "{text}"
    );
    assert!(text.contains("paydesk_database_up 1"), "{text}");
}

#[tokio::test]
async fn metrics_are_denied_by_default_and_open_to_the_token() {
    let app = TestApp::new().await;
    assert_eq!(
        app.client.get("/metrics").dispatch().await.status(),
        Status::Forbidden,
        "no address, no entry"
    );
    assert_eq!(
        app.client
            .get("/metrics")
            .remote("198.51.100.7:1".parse().unwrap())
            .dispatch()
            .await
            .status(),
        Status::Forbidden
    );

    let app = TestApp::with_config(|c| c.metrics_token = Some("s3cret-scrape-token".into())).await;
    let c = &app.client;
    assert_eq!(
        c.get("/metrics")
            .remote(loopback())
            .dispatch()
            .await
            .status(),
        Status::Forbidden,
        "with a token, loopback alone is not enough"
    );
    assert_eq!(
        c.get("/metrics")
            .header(Header::new("Authorization", "Bearer wrong"))
            .dispatch()
            .await
            .status(),
        Status::Forbidden
    );
    assert_eq!(
        c.get("/metrics")
            .header(Header::new("Authorization", "Bearer s3cret-scrape-token"))
            .dispatch()
            .await
            .status(),
        Status::Ok
    );
}

#[tokio::test]
async fn start_up_is_recorded_in_the_audit_log() {
    let app = TestApp::new().await;
    let entries = paydesk::store::audit::by_action(&app.state.db, "sys_startup")
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].actor_type, "system");
}
