//! Refusals of requests from nobody in particular (a forged webhook, a bad CSRF token from a
//! signed-out visitor, an unknown API token) are counted in the metrics at once and summarised
//! in the audit log: one entry per kind, source address and minute, with the count, never one
//! chained entry per request, so that a flood cannot fill the log. A signed-in person's
//! refusals are not summarised: they stay individual entries.
//!
//! Counts are kept in memory per process and written when their minute has closed (by the
//! periodic task, `anchor::run`) and at shutdown (every minute, open or not). With several
//! instances, each writes its own summary for the requests it refused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Actor, AuditError, AuditEvent};
use crate::metrics::Metrics;
use crate::store::Db;

/// What was refused. The summary entry keeps the action an individual entry had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A webhook whose signature does not match its service's secret.
    Webhook,
    /// A form post with a bad CSRF token or from another site, by someone not signed in.
    Csrf,
    /// An API request with an unknown, malformed, expired or revoked token.
    ApiToken,
}

impl Kind {
    pub fn action(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook_signature_fail",
            Kind::Csrf => "csrf_fail",
            Kind::ApiToken => "authn_token_fail",
        }
    }

    pub fn metric(self) -> &'static str {
        match self {
            Kind::Webhook => "paydesk_webhooks_rejected_total",
            Kind::Csrf => "paydesk_csrf_refused_signed_out_total",
            Kind::ApiToken => "paydesk_api_tokens_refused_total",
        }
    }
}

/// Sources tracked in one minute before the rest are counted together as "other".
const MAX_SOURCES_PER_MINUTE: usize = 10_000;
/// Distinct targets and reasons kept in one summary.
const MAX_LISTED: usize = 10;

#[derive(Debug, Default)]
struct Bucket {
    count: u64,
    targets: BTreeSet<String>,
    reasons: BTreeMap<String, u64>,
}

type Key = (i64, Kind, String);

/// The counts of the minutes not yet written to the log.
#[derive(Debug, Default)]
pub struct Refusals {
    buckets: Mutex<BTreeMap<Key, Bucket>>,
}

fn minute_of(now: OffsetDateTime) -> i64 {
    now.unix_timestamp().div_euclid(60)
}

impl Refusals {
    /// Count one refusal from `source` (the client address, when known).
    pub fn note(
        &self,
        metrics: &Metrics,
        now: OffsetDateTime,
        kind: Kind,
        source: Option<&str>,
        target: &str,
        reason: &str,
    ) {
        metrics.count(kind.metric());
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        let minute = minute_of(now);
        let mut source = source
            .unwrap_or("unknown")
            .chars()
            .take(64)
            .collect::<String>();
        if buckets.len() >= MAX_SOURCES_PER_MINUTE
            && !buckets.contains_key(&(minute, kind, source.clone()))
        {
            source = "other".into();
        }
        let b = buckets.entry((minute, kind, source)).or_default();
        b.count += 1;
        if b.targets.len() < MAX_LISTED {
            b.targets.insert(target.chars().take(200).collect());
        }
        if b.reasons.len() < MAX_LISTED || b.reasons.contains_key(reason) {
            *b.reasons.entry(reason.to_string()).or_default() += 1;
        }
    }

    /// Counts not yet written, for tests and the metrics page.
    pub fn pending(&self) -> u64 {
        self.buckets
            .lock()
            .map(|b| b.values().map(|b| b.count).sum())
            .unwrap_or(0)
    }

    /// Write one summary entry per kind, source and minute for the minutes that have closed
    /// by `now` (every minute when `all`, as at shutdown). Returns the entries written. A
    /// summary that cannot be written is put back, to try again next time.
    pub async fn flush(
        &self,
        db: &Db,
        now: OffsetDateTime,
        all: bool,
    ) -> Result<usize, AuditError> {
        let current = minute_of(now);
        let due: Vec<(Key, Bucket)> = match self.buckets.lock() {
            Ok(mut buckets) => {
                let keep = if all {
                    BTreeMap::new()
                } else {
                    buckets.split_off(&(current, Kind::Webhook, String::new()))
                };
                std::mem::replace(&mut *buckets, keep).into_iter().collect()
            }
            Err(_) => return Ok(0),
        };
        let mut written = 0;
        let mut due = due.into_iter();
        while let Some(((minute, kind, source), bucket)) = due.next() {
            let start = OffsetDateTime::from_unix_timestamp(minute * 60)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default();
            let event = AuditEvent::new(Actor::Anonymous, kind.action(), "summary:refusals")
                .failed()
                .from_ip(Some(source.clone()).filter(|s| s != "unknown" && s != "other"))
                .details(json!({
                    "summary": true,
                    "count": bucket.count,
                    "minute": start,
                    "source": source,
                    "targets": bucket.targets,
                    "reasons": bucket.reasons,
                }));
            if let Err(e) = super::record(db, now, event).await {
                // Put this and the rest back; nothing is lost while the process runs.
                if let Ok(mut buckets) = self.buckets.lock() {
                    for ((m, k, s), b) in
                        std::iter::once(((minute, kind, source), bucket)).chain(due)
                    {
                        let into = buckets.entry((m, k, s)).or_default();
                        into.count += b.count;
                        into.targets.extend(b.targets);
                        for (r, n) in b.reasons {
                            *into.reasons.entry(r).or_default() += n;
                        }
                    }
                }
                return Err(e);
            }
            written += 1;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_source_and_minute() {
        let r = Refusals::default();
        let m = Metrics::default();
        let t = time::macros::datetime!(2026-11-20 09:00:10 UTC);
        for _ in 0..300 {
            r.note(
                &m,
                t,
                Kind::Webhook,
                Some("192.0.2.1"),
                "service:1",
                "bad signature",
            );
        }
        r.note(
            &m,
            t,
            Kind::Webhook,
            Some("192.0.2.2"),
            "service:1",
            "bad signature",
        );
        r.note(
            &m,
            t + time::Duration::minutes(1),
            Kind::Webhook,
            Some("192.0.2.1"),
            "service:1",
            "x",
        );
        assert_eq!(m.counter("paydesk_webhooks_rejected_total"), 302);
        assert_eq!(r.pending(), 302);
        let b = r.buckets.lock().unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(
            b[&(minute_of(t), Kind::Webhook, "192.0.2.1".into())].count,
            300
        );
    }
}
