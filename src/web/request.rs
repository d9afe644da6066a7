//! Per-request plumbing: a correlation id, the security headers on every response, request
//! metrics and one log line per request.

use std::time::Instant;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::request::{FromRequest, Outcome};
use rocket::{Data, Request, Response};

use crate::AppState;

/// Known for every request: its correlation id and when it arrived.
pub struct RequestMeta {
    pub correlation_id: String,
    pub started: Instant,
}

pub fn meta<'r>(req: &'r Request<'_>) -> &'r RequestMeta {
    req.local_cache(|| RequestMeta {
        correlation_id: uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
        started: Instant::now(),
    })
}

/// The correlation id, as a request guard.
pub struct CorrelationId(pub String);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CorrelationId {
    type Error = std::convert::Infallible;
    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(CorrelationId(meta(req).correlation_id.clone()))
    }
}

/// The client's address: the socket peer, or the trusted proxy header when one is configured
/// (Rocket's `ip_header`, set from `PAYDESK_TRUSTED_IP_HEADER`, off by default).
pub fn origin_ip(req: &Request<'_>) -> Option<String> {
    req.client_ip().map(|ip| ip.to_string())
}

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; img-src 'self' data:";
const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()";

pub struct RequestFairing;

#[rocket::async_trait]
impl Fairing for RequestFairing {
    fn info(&self) -> Info {
        Info {
            name: "request context, security headers, metrics",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        let _ = meta(req);
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let meta = meta(req);
        res.set_header(Header::new(
            "Content-Security-Policy",
            CONTENT_SECURITY_POLICY,
        ));
        res.set_header(Header::new(
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ));
        res.set_header(Header::new("X-Content-Type-Options", "nosniff"));
        res.set_header(Header::new("X-Frame-Options", "DENY"));
        res.set_header(Header::new("Referrer-Policy", "no-referrer"));
        res.set_header(Header::new("Cross-Origin-Opener-Policy", "same-origin"));
        res.set_header(Header::new("Cross-Origin-Resource-Policy", "same-origin"));
        res.set_header(Header::new("Permissions-Policy", PERMISSIONS_POLICY));
        let is_static = req
            .route()
            .is_some_and(|r| r.uri.base().starts_with("/static"));
        // Only the stylesheet and scripts may be cached; every page and download may hold
        // personal data.
        res.set_header(Header::new(
            "Cache-Control",
            if is_static && res.status().code == 200 {
                "public, max-age=3600"
            } else {
                "no-store"
            },
        ));
        res.set_header(Header::new("X-Request-Id", meta.correlation_id.clone()));

        let route = match req.route() {
            Some(r) => r.uri.to_string(),
            None => "unmatched".to_string(),
        };
        let elapsed = meta.started.elapsed();
        let status = res.status().code;
        if let Some(state) = req.rocket().state::<AppState>() {
            state
                .metrics
                .record_request(req.method().as_str(), &route, status, elapsed);
        }
        // The path only: query strings can carry personal data (an email searched for).
        tracing::info!(
            target: "paydesk::http",
            request_id = %meta.correlation_id,
            method = %req.method(),
            path = %req.uri().path(),
            route = %route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    }
}
