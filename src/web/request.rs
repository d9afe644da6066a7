//! Per-request plumbing: a correlation id, the security headers on every response, request
//! metrics and one log line per request.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

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

/// The client's address, by the one rule every limit and the audit log use (and Rocket's own
/// `IpAddr` guard, which reads the same setting): the socket peer, or, only when
/// `PAYDESK_TRUSTED_IP_HEADER` names a header, the address in that header. Without that
/// setting no forwarding header is read, whatever Rocket's defaults would say.
pub fn client_addr(req: &Request<'_>) -> Option<IpAddr> {
    let trusted = req
        .rocket()
        .state::<AppState>()
        .is_some_and(|s| s.config.trusted_ip_header.is_some());
    let peer = req.remote().map(|a| a.ip());
    if trusted {
        req.real_ip().or(peer)
    } else {
        peer
    }
}

/// The client's address as text, for the audit log and sign-in records.
pub fn origin_ip(req: &Request<'_>) -> Option<String> {
    client_addr(req).map(|ip| ip.to_string())
}

/// Headers reverse proxies use to pass on the client's address.
const FORWARDING_HEADERS: [&str; 8] = [
    "Forwarded",
    "X-Forwarded-For",
    "X-Real-IP",
    "X-Client-IP",
    "True-Client-IP",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Cluster-Client-IP",
];

/// The forwarding header a request carries that no trusted-header setting covers: any of
/// them when none is trusted, or one when the trusted header itself is missing (its name is
/// probably wrong). None when the trusted header is there, or when there is none at all.
pub fn uncovered_forwarding_header(
    present: impl Fn(&str) -> bool,
    trusted: Option<&str>,
) -> Option<&'static str> {
    if trusted.is_some_and(&present) {
        return None;
    }
    FORWARDING_HEADERS.into_iter().find(|h| present(h))
}

/// Lets a warning through at most once an interval, however many requests ask.
pub struct WarnGate {
    /// Seconds since the epoch of the last warning, plus one (0: never warned).
    last: AtomicU64,
    interval_secs: u64,
}

impl WarnGate {
    pub const fn every(interval_secs: u64) -> WarnGate {
        WarnGate {
            last: AtomicU64::new(0),
            interval_secs,
        }
    }

    /// Whether to warn now (`now_secs` since the epoch); true at most once an interval.
    pub fn should_warn(&self, now_secs: u64) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now_secs.saturating_add(1).saturating_sub(last) < self.interval_secs {
            return false;
        }
        self.last
            .compare_exchange(last, now_secs + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// Forwarding headers paydesk does not read are reported once an hour, not per request.
static FORWARDING_WARNING: WarnGate = WarnGate::every(3600);

fn warn_about_forwarding(req: &Request<'_>) {
    let trusted = req
        .rocket()
        .state::<AppState>()
        .and_then(|s| s.config.trusted_ip_header.clone());
    let headers = req.headers();
    let Some(found) = uncovered_forwarding_header(|h| headers.contains(h), trusted.as_deref())
    else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    if FORWARDING_WARNING.should_warn(now) {
        tracing::warn!(
            header = found,
            trusted_header = trusted.as_deref().unwrap_or("none"),
            "requests carry a {found} header that no trusted-header setting covers: behind a \
             reverse proxy every client looks like the proxy (one sign-in limit for everyone). \
             Set PAYDESK_TRUSTED_IP_HEADER to the header your proxy sets; this warning repeats \
             at most once an hour"
        );
    }
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
        warn_about_forwarding(req);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_headers_nobody_trusts_are_noticed() {
        let cases: &[(&[&str], Option<&str>, Option<&str>)] = &[
            (&[], None, None),
            (&["User-Agent"], None, None),
            (&["X-Forwarded-For"], None, Some("X-Forwarded-For")),
            (&["forwarded"], None, Some("Forwarded")),
            (&["X-Real-IP"], None, Some("X-Real-IP")),
            (&["X-Forwarded-For"], Some("X-Forwarded-For"), None),
            (&["X-Forwarded-For", "X-Real-IP"], Some("X-Real-IP"), None),
            // The trusted header is configured but missing: its name is probably wrong.
            (&["X-Real-IP"], Some("X-Forwarded-For"), Some("X-Real-IP")),
            (&[], Some("X-Forwarded-For"), None),
        ];
        for (present, trusted, want) in cases {
            let has = |h: &str| present.iter().any(|n| n.eq_ignore_ascii_case(h));
            assert_eq!(
                uncovered_forwarding_header(has, *trusted),
                *want,
                "{present:?} trusted {trusted:?}"
            );
        }
    }

    #[test]
    fn the_warning_is_given_once_an_interval_not_per_request() {
        let gate = WarnGate::every(3600);
        let warned: usize = (0..1000).filter(|i| gate.should_warn(1_000 + i)).count();
        assert_eq!(warned, 1);
        assert!(!gate.should_warn(1_000 + 3_598));
        assert!(gate.should_warn(1_000 + 3_600));
        assert!(!gate.should_warn(1_000 + 3_601));
    }
}
