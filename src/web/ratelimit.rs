//! A per-address limit on sign-in attempts (passwords, codes, reset requests), on top of the
//! per-account lockout: it slows one address trying many accounts. In memory, per process.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use super::session::Refusal;

pub struct SignInLimiter {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
}

impl SignInLimiter {
    pub fn per_minute(n: u32) -> SignInLimiter {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        SignInLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
        }
    }

    pub fn allow(&self, ip: IpAddr) -> bool {
        self.limiter.check_key(&ip).is_ok()
    }
}

/// A request guard for sign-in POSTs: answers 429 once an address has used its quota.
pub struct SignInAttempt;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SignInAttempt {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let Some(limiter) = req.rocket().state::<SignInLimiter>() else {
            return Outcome::Success(SignInAttempt);
        };
        // Requests without a peer address (only Rocket's local test client) share one bucket.
        let ip =
            super::request::client_addr(req).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        if limiter.allow(ip) {
            Outcome::Success(SignInAttempt)
        } else {
            super::session::mark(req, Refusal::RateLimited);
            tracing::warn!(%ip, path = %req.uri().path(), "sign-in rate limit reached");
            Outcome::Error((Status::TooManyRequests, ()))
        }
    }
}
