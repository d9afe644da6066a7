//! Delivering an event: `DeliveryJob` signs it and sends it to the very address it checked (no
//! redirects, 15 s); a non-2xx answer is retried on `DELIVERY`'s schedule, `410 Gone` disables
//! the endpoint and tells its admins, and every attempt is kept for the delivery log.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::audit::{self, Actor, AuditEvent};
use crate::config::Config;
use crate::crypto;
use crate::integrations::event_owner as owner;
use crate::integrations::signature;
use crate::integrations::ssrf;
use crate::jobs::{JobContext, JobFailure, JobHandler, JobKind, JobRun};
use crate::store::events::{self as event_store, NewAttempt, Outgoing};
use crate::store::{self, Tx};

/// Delivery attempts: now, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h
/// later (each stretched by up to a fifth, see `JobKind::retry_delay`); then it has failed.
pub const DELIVERY: JobKind = JobKind {
    name: "event_delivery",
    retry_delays_secs: &[5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
};

/// How long one delivery may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest `Retry-After` honoured; a longer one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How much of an answer the delivery log keeps.
pub const EXCERPT_CHARS: usize = 200;

/// The context an endpoint's secret is sealed under: endpoint management seals with it,
/// delivery opens with it.
pub(super) fn secret_context(endpoint_id: i64) -> String {
    format!("event_endpoint:{endpoint_id}:secret")
}

pub fn handlers() -> Vec<std::sync::Arc<dyn JobHandler>> {
    vec![std::sync::Arc::new(DeliveryJob)]
}

/// Sends one delivery.
pub struct DeliveryJob;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Delivered {
        status: u16,
    },
    Gone,
    Failed {
        status: u16,
        retry_after: Option<Duration>,
    },
    NotSent(String),
}

/// The answer's status read as Standard Webhooks says: 2xx success, 410 gone, anything else
/// (redirects included: they are not followed) failure.
pub fn judge(status: u16, retry_after: Option<Duration>) -> Sent {
    match status {
        200..=299 => Sent::Delivered { status },
        410 => Sent::Gone,
        _ => Sent::Failed {
            status,
            retry_after,
        },
    }
}

/// `Retry-After` as seconds or an HTTP date, bounded by a day.
pub fn retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at =
            OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
        Duration::try_from(at - now).ok()?
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The first characters of an answer, printable, for the log.
pub fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .take(EXCERPT_CHARS)
        .collect()
}

/// The secrets that sign a message now: the current one, and the previous one while its
/// overlap lasts.
fn signing_secrets(
    config: &Config,
    out: &Outgoing,
    now: OffsetDateTime,
) -> Result<Vec<String>, String> {
    let key = config.events_key();
    let context = secret_context(out.endpoint_id);
    let open = |sealed: &str| {
        crypto::open(&key, &context, sealed)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    };
    let current = out
        .secret
        .as_deref()
        .and_then(open)
        .ok_or("the endpoint's secret could not be opened (was the secret key changed?)")?;
    let mut secrets = vec![current];
    if let (Some(previous), Some(until)) = (&out.previous_secret, out.previous_secret_until) {
        if until > store::to_micros(now) {
            if let Some(p) = open(previous) {
                secrets.push(p);
            }
        }
    }
    Ok(secrets)
}

/// One HTTP attempt: sign, connect to the checked address, read the start of the answer.
async fn send(config: &Config, out: &Outgoing, now: OffsetDateTime) -> (Sent, Option<String>) {
    let secrets = match signing_secrets(config, out, now) {
        Ok(s) => s,
        Err(e) => return (Sent::NotSent(e), None),
    };
    let (target, addr): (ssrf::Target, SocketAddr) =
        match ssrf::resolve(&out.url, config.events_allow_loopback).await {
            Ok(t) => t,
            Err(refusal) => return (Sent::NotSent(format!("not sent: {refusal}")), None),
        };
    let timestamp = now.unix_timestamp();
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let Ok(signature) =
        signature::header(&refs, &out.message_id, timestamp, out.payload.as_bytes())
    else {
        return (
            Sent::NotSent("the endpoint's secret is not a whsec_ secret".into()),
            None,
        );
    };
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(SEND_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        // A proxy would connect wherever the name leads it, past the address checked here.
        .no_proxy()
        .user_agent(concat!("paydesk-events/", env!("CARGO_PKG_VERSION")));
    if target.literal.is_none() {
        // Connect to the address that was checked, not to whatever the name says next.
        builder = builder.resolve(&target.host, addr);
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return (Sent::NotSent(format!("not sent: {e}")), None),
    };
    let response = client
        .post(target.url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", &out.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(out.payload.clone())
        .send()
        .await;
    let mut response = match response {
        Ok(r) => r,
        Err(e) => {
            let what = if e.is_timeout() {
                format!("no answer within {} s", SEND_TIMEOUT.as_secs())
            } else if e.is_connect() {
                "could not connect".to_string()
            } else {
                "the request failed".to_string()
            };
            return (Sent::NotSent(format!("{what}: {}", e.without_url())), None);
        }
    };
    let status = response.status().as_u16();
    let wait = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, now));
    // Only the start of the answer is kept; the rest is not read.
    let mut body = Vec::new();
    while body.len() < 4 * EXCERPT_CHARS {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    (judge(status, wait), Some(excerpt(&body)))
}
fn retry<E: std::fmt::Display>(e: E) -> JobFailure {
    JobFailure::retry(e.to_string())
}

#[async_trait::async_trait]
impl JobHandler for DeliveryJob {
    fn kind(&self) -> JobKind {
        DELIVERY
    }

    async fn run(&self, ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let delivery_id = job
            .payload
            .get("delivery")
            .and_then(Value::as_i64)
            .ok_or_else(|| JobFailure::permanent("the payload needs a delivery id"))?;
        let out = event_store::outgoing(&ctx.db, delivery_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| JobFailure::permanent(format!("there is no delivery {delivery_id}")))?;
        let started_at = ctx.clock.now();
        let started = Instant::now();
        // Disabled, or paused now because its owner lost integrations:manage (see event_owner).
        let (sent, body) = match owner::held(&ctx.db, started_at, &out)
            .await
            .map_err(retry)?
        {
            None => send(&ctx.config, &out, started_at).await,
            Some(why) => (Sent::NotSent(format!("not sent: {why}")), None),
        };
        let latency = started.elapsed().as_millis() as i64;
        let last = job.attempt >= DELIVERY.max_attempts();
        let (http_status, error, succeeded, outcome): (
            Option<i32>,
            Option<String>,
            bool,
            Result<(), JobFailure>,
        ) = match &sent {
            Sent::Delivered { status } => (Some(i32::from(*status)), None, true, Ok(())),
            Sent::Gone => (
                Some(410),
                Some("410 Gone: the endpoint was disabled".to_string()),
                false,
                Err(JobFailure::permanent(
                    "the endpoint answered 410 Gone; it is now disabled",
                )),
            ),
            Sent::Failed {
                status,
                retry_after,
            } => {
                let message = if (300..400).contains(status) {
                    format!("HTTP {status}: redirects are not followed")
                } else {
                    format!("HTTP {status}")
                };
                (
                    Some(i32::from(*status)),
                    Some(message.clone()),
                    false,
                    Err(JobFailure {
                        message,
                        permanent: false,
                        retry_after: *retry_after,
                    }),
                )
            }
            Sent::NotSent(why) => {
                let permanent = !out.enabled;
                (
                    None,
                    Some(why.clone()),
                    false,
                    Err(JobFailure {
                        message: why.clone(),
                        permanent,
                        retry_after: None,
                    }),
                )
            }
        };
        let status = match &outcome {
            Ok(()) => "succeeded",
            Err(f) if f.permanent || last => "failed",
            Err(_) => "retrying",
        };
        let excerpt_text = body.as_deref();
        let now = ctx.clock.now();
        let mut tx = ctx.db.begin().await.map_err(retry)?;
        event_store::record_attempt(
            &mut tx,
            &NewAttempt {
                delivery_id,
                attempted_at: store::to_micros(started_at),
                http_status,
                error: error.as_deref(),
                latency_ms: latency,
                response_excerpt: excerpt_text,
                succeeded,
            },
            status,
        )
        .await
        .map_err(retry)?;
        if sent == Sent::Gone {
            disable_gone(ctx, &mut tx, &out, now).await?;
        }
        tx.commit().await.map_err(retry)?;
        outcome
    }
}

/// The endpoint said 410 Gone: disable it, record why, and tell the service's admins.
async fn disable_gone(
    ctx: &JobContext,
    tx: &mut Tx,
    out: &Outgoing,
    now: OffsetDateTime,
) -> Result<(), JobFailure> {
    let reason = "The endpoint answered 410 Gone";
    if !event_store::set_enabled(
        tx,
        out.endpoint_id,
        false,
        Some(reason),
        store::to_micros(now),
    )
    .await
    .map_err(retry)?
    {
        return Ok(());
    }
    audit::append(
        tx,
        now,
        AuditEvent::new(
            Actor::System,
            "event_endpoint_disabled",
            format!("event_endpoint:{}", out.endpoint_id),
        )
        .details(json!({"reason": reason, "url": out.url, "message_id": out.message_id})),
    )
    .await
    .map_err(retry)?;
    let admins = event_store::admin_emails(tx, out.service_id)
        .await
        .map_err(retry)?;
    if admins.is_empty() {
        return Ok(());
    }
    let templates = crate::mail::MailTemplates::load(&ctx.config.template_dir).map_err(retry)?;
    let slug = event_store::service_slug(tx, out.service_id)
        .await
        .map_err(retry)?
        .unwrap_or_default();
    let link = format!(
        "{}/integrations/events/{}",
        ctx.config.public_url, out.endpoint_id
    );
    for to in admins {
        let mail = templates
            .render(
                "endpoint_disabled",
                &to,
                &json!({
                    "service_name": ctx.config.service_name,
                    "service": slug,
                    "url": out.url,
                    "link": link,
                }),
            )
            .map_err(retry)?;
        crate::mail::enqueue(tx, &mail, now).await.map_err(retry)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_the_standard_one() {
        let secs: Vec<u64> = (1..DELIVERY.max_attempts())
            .map(|a| DELIVERY.retry_delay(a, 0.0).unwrap().as_secs())
            .collect();
        assert_eq!(
            secs,
            [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
        );
        assert_eq!(DELIVERY.max_attempts(), 10);
        assert_eq!(DELIVERY.retry_delay(10, 0.0), None);
    }

    #[test]
    fn answers_are_judged_as_standard_webhooks_says() {
        assert_eq!(judge(200, None), Sent::Delivered { status: 200 });
        assert_eq!(judge(204, None), Sent::Delivered { status: 204 });
        assert_eq!(judge(410, None), Sent::Gone);
        for s in [301, 302, 307, 400, 404, 429, 500, 503] {
            assert!(matches!(judge(s, None), Sent::Failed { .. }), "{s}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_within_a_day() {
        let now = time::macros::datetime!(2026-11-20 09:00:00 UTC);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(
            retry_after("Fri, 20 Nov 2026 09:10:00 GMT", now),
            Some(Duration::from_secs(600))
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn excerpts_are_short_and_printable() {
        let long = "a".repeat(1000);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), EXCERPT_CHARS);
        assert_eq!(excerpt(b"ok\x00\x1b[31m"), "ok  [31m");
    }
}
