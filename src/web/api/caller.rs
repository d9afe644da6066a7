//! Who is calling the API: the bearer-token guard with its rate limits, the `Idempotency-Key`
//! header, and the scope check that refuses (and audits) a token without the scope it needs.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use super::problem::Problem;
use crate::audit::{self, Actor, AuditEvent};
use crate::integrations::api_tokens::{self, Caller, Refused, Scope};
use crate::web::request::{client_addr, origin_ip};
use crate::AppState;

// ---- who is calling -------------------------------------------------------------------------

/// One bucket per token, and one per client address for requests with a token that is not
/// accepted (so that nobody fills the audit log with refused tokens).
pub struct ApiLimiter {
    limiter: RateLimiter<i64, DefaultKeyedStateStore<i64>, DefaultClock>,
    refused: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
}

impl ApiLimiter {
    /// `n` requests a minute per token, `refused` refused tokens a minute per address.
    pub fn per_minute(n: u32, refused: u32) -> ApiLimiter {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let refused = NonZeroU32::new(refused).unwrap_or(NonZeroU32::MIN);
        ApiLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            refused: RateLimiter::keyed(Quota::per_minute(refused)),
        }
    }

    /// Ok, or the whole seconds to wait before the token's next request is allowed.
    pub fn check(&self, token_id: i64) -> Result<(), u64> {
        self.limiter.check_key(&token_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            (wait.as_millis() as u64).div_ceil(1000).max(1)
        })
    }

    /// Ok, or the seconds an address that keeps sending refused tokens must wait.
    pub fn check_refused(&self, ip: IpAddr) -> Result<(), u64> {
        self.refused.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.refused.clock().now());
            (wait.as_millis() as u64).div_ceil(1000).max(1)
        })
    }
}

/// Why the guard turned a request away, for the catcher to say.
#[derive(Debug, Clone, Copy, Default)]
pub(super) enum Turned {
    #[default]
    Nothing,
    NoToken,
    BadToken(Refused),
    Limited(u64),
}

pub(super) fn turned(req: &Request<'_>) -> Turned {
    req.local_cache(|| Mutex::new(Turned::Nothing))
        .lock()
        .map(|t| *t)
        .unwrap_or_default()
}

fn turn_away(req: &Request<'_>, t: Turned) {
    if let Ok(mut slot) = req.local_cache(|| Mutex::new(Turned::Nothing)).lock() {
        *slot = t;
    }
}

/// A caller holding a live token, within its rate limit.
pub struct ApiCaller {
    pub caller: Caller,
    pub ip: Option<String>,
}

impl ApiCaller {
    pub(super) fn service_id(&self) -> i64 {
        self.caller.token.service_id
    }

    pub(super) fn actor(&self) -> Actor {
        self.caller.actor()
    }
}

/// The token in an `Authorization: Bearer …` header.
fn bearer(req: &Request<'_>) -> Option<String> {
    let value = req.headers().get_one("Authorization")?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ApiCaller {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let Some(state) = req.rocket().state::<AppState>() else {
            return Outcome::Error((Status::InternalServerError, ()));
        };
        let presented = bearer(req);
        let Some(presented) = presented else {
            turn_away(req, Turned::NoToken);
            return Outcome::Error((Status::Unauthorized, ()));
        };
        let now = state.clock.now();
        let caller = match api_tokens::authenticate(&state.db, now, &presented).await {
            Ok(Ok(c)) => c,
            Ok(Err(refused)) => {
                // Sign-in's client-address rule. Requests without a peer address (only Rocket's
                // local test client) share one bucket.
                let ip = client_addr(req).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                if let Some(Err(wait)) = req
                    .rocket()
                    .state::<ApiLimiter>()
                    .map(|l| l.check_refused(ip))
                {
                    turn_away(req, Turned::Limited(wait));
                    return Outcome::Error((Status::TooManyRequests, ()));
                }
                turn_away(req, Turned::BadToken(refused));
                let shown: String = if refused == Refused::Malformed {
                    String::new()
                } else {
                    presented.chars().take(10).collect()
                };
                if refused.names_a_token() {
                    // A token paydesk made, used after it stopped working (a leaver's, say):
                    // its own entry. The refused-token limit above bounds how many.
                    let _ = crate::audit::record(
                        &state.db,
                        now,
                        crate::audit::AuditEvent::new(
                            Actor::Anonymous,
                            "authn_token_fail",
                            req.uri().path().to_string(),
                        )
                        .failed()
                        .from_ip(origin_ip(req))
                        .details(serde_json::json!({
                            "reason": refused.reason(),
                            "token": format!("{shown}…"),
                        })),
                    )
                    .await;
                    return Outcome::Error((Status::Unauthorized, ()));
                }
                // Not paydesk's token at all: counted, and summarised per source and minute,
                // never one chained entry per request.
                state.refusals.note(
                    &state.metrics,
                    now,
                    crate::audit::refusals::Kind::ApiToken,
                    origin_ip(req).as_deref(),
                    &format!("{} (token {shown}…)", req.uri().path()),
                    refused.reason(),
                );
                return Outcome::Error((Status::Unauthorized, ()));
            }
            Err(e) => {
                tracing::error!(error = %e, "could not check an API token");
                return Outcome::Error((Status::InternalServerError, ()));
            }
        };
        if let Some(limiter) = req.rocket().state::<ApiLimiter>() {
            if let Err(wait) = limiter.check(caller.token.id) {
                tracing::warn!(token = caller.token.id, "API rate limit reached");
                turn_away(req, Turned::Limited(wait));
                return Outcome::Error((Status::TooManyRequests, ()));
            }
        }
        Outcome::Success(ApiCaller {
            caller,
            ip: origin_ip(req),
        })
    }
}

/// The `Idempotency-Key` header, if sent.
pub struct IdempotencyKey(pub(super) Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IdempotencyKey {
    type Error = std::convert::Infallible;
    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        Outcome::Success(IdempotencyKey(
            req.headers().get_one("Idempotency-Key").map(str::to_string),
        ))
    }
}

/// Refuse a caller without `scope`, in the audit log too.
pub(super) async fn require(
    state: &AppState,
    caller: &ApiCaller,
    path: &str,
    scopes: &[Scope],
) -> Result<(), Problem> {
    if scopes.iter().any(|s| caller.caller.may(*s)) {
        return Ok(());
    }
    let (details, detail) = caller.caller.refusal(scopes);
    let _ = audit::record(
        &state.db,
        state.clock.now(),
        AuditEvent::new(caller.actor(), "authz_fail", path.to_string())
            .failed()
            .from_ip(caller.ip.clone())
            .details(details),
    )
    .await;
    Err(Problem::status(Status::Forbidden, detail))
}
