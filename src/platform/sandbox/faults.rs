//! Fault injection, per account: what `PUT /sandbox/accounts/{id}/faults` sets, and the
//! decisions taken from it for each v1 request (latency, forced 500s and 429s, the
//! platform's own rate limit) and each webhook (drop, duplicate, reorder).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The faults an account is set to show. Every field is optional; a PUT replaces the whole
/// set and `{}` clears it. Counters (`*_next`) count down as they are used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Added to every v1 response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// The next N v1 requests answer 500 P0999.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_next: Option<u32>,
    /// This share (0..=1) of v1 requests answer 500 P0999, chosen by a seeded generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// The next N v1 requests answer 429 P0900 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_next: Option<u32>,
    /// The `Retry-After` of forced 429s, in seconds (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// The next N refund requests are committed and then never answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_commit_then_hang_next: Option<u32>,
    /// The next N agreement cancels are committed and then never answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_cancel_commit_then_hang_next: Option<u32>,
    /// The next N webhooks are never sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_drop_next: Option<u32>,
    /// Every webhook is sent twice, with the same message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_duplicate: Option<bool>,
    /// Webhooks are held for a moment and sent in batches, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_reorder: Option<bool>,
    /// Apply the platform's limit: 15 POST and 75 other requests a second, then 429 P0900.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_rate_limit: Option<bool>,
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(r) = self.error_rate {
            if !(0.0..=1.0).contains(&r) {
                return Err("error_rate must be between 0 and 1".into());
            }
        }
        if self.latency_ms.is_some_and(|l| l > 600_000) {
            return Err("latency_ms must be at most 600000".into());
        }
        Ok(())
    }
}

pub const POSTS_PER_SECOND: u32 = 15;
pub const OTHERS_PER_SECOND: u32 = 75;

/// An account's faults and the state behind them.
pub struct FaultState {
    pub faults: Faults,
    rng: StdRng,
    window_start: Instant,
    posts: u32,
    others: u32,
}

/// What happens to a v1 request before it is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    TooManyRequests { retry_after: u64 },
    ServerError,
}

/// What happens to one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookPlan {
    pub drop: bool,
    pub copies: u32,
    pub reorder: bool,
}

fn take(counter: &mut Option<u32>) -> bool {
    match counter {
        Some(n) if *n > 0 => {
            *n -= 1;
            if *n == 0 {
                *counter = None;
            }
            true
        }
        _ => false,
    }
}

impl FaultState {
    pub fn new(seed: u64) -> FaultState {
        FaultState {
            faults: Faults::default(),
            rng: StdRng::seed_from_u64(seed),
            window_start: Instant::now(),
            posts: 0,
            others: 0,
        }
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.faults.latency_ms.unwrap_or(0))
    }

    /// Decide a v1 request's fate; every request counts towards the rate limit.
    pub fn admit(&mut self, is_post: bool, now: Instant) -> Verdict {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.posts = 0;
            self.others = 0;
        }
        let used = if is_post {
            &mut self.posts
        } else {
            &mut self.others
        };
        *used += 1;
        let limit = if is_post {
            POSTS_PER_SECOND
        } else {
            OTHERS_PER_SECOND
        };
        if self.faults.enforce_rate_limit == Some(true) && *used > limit {
            return Verdict::TooManyRequests { retry_after: 1 };
        }
        if take(&mut self.faults.rate_limit_next) {
            return Verdict::TooManyRequests {
                retry_after: self.faults.retry_after_secs.unwrap_or(1),
            };
        }
        if take(&mut self.faults.error_next) {
            return Verdict::ServerError;
        }
        if let Some(rate) = self.faults.error_rate.filter(|r| *r > 0.0) {
            if self.rng.gen_bool(rate.min(1.0)) {
                return Verdict::ServerError;
            }
        }
        Verdict::Proceed
    }

    pub fn take_refund_hang(&mut self) -> bool {
        take(&mut self.faults.refund_commit_then_hang_next)
    }

    pub fn take_agreement_cancel_hang(&mut self) -> bool {
        take(&mut self.faults.agreement_cancel_commit_then_hang_next)
    }

    pub fn plan_webhook(&mut self) -> WebhookPlan {
        WebhookPlan {
            drop: take(&mut self.faults.webhook_drop_next),
            copies: if self.faults.webhook_duplicate == Some(true) {
                2
            } else {
                1
            },
            reorder: self.faults.webhook_reorder == Some(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_run_down_and_clear() {
        let mut f = FaultState::new(1);
        f.faults = Faults {
            error_next: Some(2),
            rate_limit_next: Some(1),
            retry_after_secs: Some(7),
            ..Default::default()
        };
        let now = Instant::now();
        assert_eq!(
            f.admit(false, now),
            Verdict::TooManyRequests { retry_after: 7 }
        );
        assert_eq!(f.admit(false, now), Verdict::ServerError);
        assert_eq!(f.admit(true, now), Verdict::ServerError);
        assert_eq!(f.admit(true, now), Verdict::Proceed);
        assert_eq!(f.faults.error_next, None);
    }

    #[test]
    fn the_platform_rate_limit_counts_posts_and_others_apart() {
        let mut f = FaultState::new(1);
        f.faults.enforce_rate_limit = Some(true);
        let now = Instant::now();
        for _ in 0..POSTS_PER_SECOND {
            assert_eq!(f.admit(true, now), Verdict::Proceed);
        }
        assert!(matches!(
            f.admit(true, now),
            Verdict::TooManyRequests { .. }
        ));
        assert_eq!(f.admit(false, now), Verdict::Proceed);
        assert_eq!(
            f.admit(true, now + Duration::from_millis(1_001)),
            Verdict::Proceed
        );
    }

    #[test]
    fn an_error_rate_is_roughly_honoured_and_repeatable() {
        let run = || {
            let mut f = FaultState::new(42);
            f.faults.error_rate = Some(0.25);
            let now = Instant::now();
            (0..2_000)
                .map(|_| f.admit(false, now) == Verdict::ServerError)
                .collect::<Vec<_>>()
        };
        let a = run();
        let errors = a.iter().filter(|e| **e).count();
        assert!((400..=600).contains(&errors), "{errors}");
        assert_eq!(a, run());
    }

    #[test]
    fn unknown_fault_names_are_refused() {
        assert!(serde_json::from_str::<Faults>(r#"{"error_nxt": 1}"#).is_err());
        assert!(Faults {
            error_rate: Some(1.5),
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
