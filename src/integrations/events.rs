//! Outbound events to a service's CRM or case-management system, as Standard Webhooks.
//!
//! - Emitting: an event is written in the same transaction as the change that causes it
//!   (`refund_changed`, `payments_changed`, `case_linked`), with one delivery per subscribed
//!   endpoint and one `event_delivery` job per delivery. An event that is never committed
//!   is never sent; one that is committed is sent even if the process dies a moment later.
//! - Delivering: `DeliveryJob` signs the stored body (`signature`), checks the endpoint's
//!   address again (`ssrf`) and connects to the very address it checked, with redirects off
//!   and a 15-second limit. Any 2xx is success; anything else is retried on `DELIVERY`'s
//!   schedule (honouring `Retry-After`); `410 Gone` disables the endpoint and tells the
//!   service's admins. Every attempt is kept for the delivery log.
//! - Managing: endpoints per service (URL, description, event types, on/off), their secret
//!   (shown once, sealed at rest, rotated with an overlap) and replays.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::signature;
use super::ssrf;
use crate::audit::{self, Actor, AuditEvent};
use crate::config::Config;
use crate::crypto;
use crate::jobs::{self, JobContext, JobFailure, JobHandler, JobKind, JobRun};
use crate::store::events::{self as event_store, EndpointRow, NewAttempt, Outgoing};
use crate::store::refunds::RequestRow;
use crate::store::{self, Db, StoreError, Tx};

/// What paydesk tells a service's systems about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    PaymentSucceeded,
    PaymentFailed,
    RefundRequested,
    RefundApproved,
    RefundSucceeded,
    RefundFailed,
    CaseLinked,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::PaymentSucceeded,
        EventType::PaymentFailed,
        EventType::RefundRequested,
        EventType::RefundApproved,
        EventType::RefundSucceeded,
        EventType::RefundFailed,
        EventType::CaseLinked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventType::PaymentSucceeded => "payment.succeeded",
            EventType::PaymentFailed => "payment.failed",
            EventType::RefundRequested => "refund.requested",
            EventType::RefundApproved => "refund.approved",
            EventType::RefundSucceeded => "refund.succeeded",
            EventType::RefundFailed => "refund.failed",
            EventType::CaseLinked => "case.linked",
        }
    }

    /// What the event means, for the endpoint form.
    pub fn label(self) -> &'static str {
        match self {
            EventType::PaymentSucceeded => "A payment succeeded",
            EventType::PaymentFailed => "A payment failed, was cancelled or ended in error",
            EventType::RefundRequested => "Someone asked for a refund",
            EventType::RefundApproved => "A second person approved a refund",
            EventType::RefundSucceeded => "The platform paid a refund",
            EventType::RefundFailed => "A refund failed",
            EventType::CaseLinked => "A payment was linked to a case",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == s)
    }
}

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

/// The longest description kept for an endpoint.
pub const MAX_DESCRIPTION: usize = 200;

/// A payment first seen already finished emits its event only if it is this recent, so
/// that importing a service's history does not replay years of payments to its CRM.
const FIRST_SEEN_RECENT: time::Duration = time::Duration::hours(24);

pub use super::error::EventsError;

fn secret_context(endpoint_id: i64) -> String {
    format!("event_endpoint:{endpoint_id}:secret")
}

/// A Standard Webhooks message id: `msg_` and a time-ordered UUID.
fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The event types an endpoint is subscribed to, as stored (space-separated).
pub fn types_of(endpoint: &EndpointRow) -> Vec<EventType> {
    endpoint
        .event_types
        .split_whitespace()
        .filter_map(EventType::parse)
        .collect()
}

// ---- emitting ---------------------------------------------------------------------------

/// Write an event inside the caller's transaction and fan it out to every enabled endpoint
/// of the service that subscribes to it. `data` gets the service's slug. With a
/// `dedupe_key`, an event already written under that key is not written again. Returns how
/// many deliveries were queued.
pub async fn emit(
    tx: &mut Tx,
    service_id: i64,
    event_type: EventType,
    mut data: Map<String, Value>,
    dedupe_key: Option<&str>,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let endpoints: Vec<EndpointRow> = event_store::enabled_endpoints(tx, service_id)
        .await?
        .into_iter()
        .filter(|e| types_of(e).contains(&event_type))
        .collect();
    // Nobody listens: nothing to keep.
    if endpoints.is_empty() {
        return Ok(0);
    }
    let slug = event_store::service_slug(tx, service_id)
        .await?
        .unwrap_or_default();
    data.insert("service".into(), json!(slug));
    let payload = json!({
        "type": event_type.name(),
        "timestamp": rfc3339(now),
        "data": Value::Object(data),
    })
    .to_string();
    let at = store::to_micros(now);
    let message_id = new_message_id();
    let Some(event_id) = event_store::insert_event(
        tx,
        &event_store::NewEventRow {
            service_id,
            message_id: &message_id,
            event_type: event_type.name(),
            payload: &payload,
            dedupe_key,
        },
        at,
    )
    .await?
    else {
        return Ok(0);
    };
    for endpoint in &endpoints {
        let delivery_id = event_store::insert_delivery(tx, event_id, endpoint.id, at).await?;
        let job_id =
            jobs::enqueue(tx, DELIVERY, &json!({ "delivery": delivery_id }), now, now).await?;
        event_store::set_delivery_job(tx, delivery_id, job_id, at).await?;
    }
    Ok(endpoints.len())
}

/// A refund request moved on: `refund.requested` (just made), `refund.approved`,
/// `refund.succeeded` or `refund.failed`. Each happens once per request.
pub async fn refund_changed(
    tx: &mut Tx,
    event_type: EventType,
    row: &RequestRow,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let status = match event_type {
        EventType::RefundRequested => row.state.as_str(),
        EventType::RefundApproved => "approved",
        EventType::RefundSucceeded => "succeeded",
        EventType::RefundFailed => "failed",
        _ => return Ok(0),
    };
    let mut data = Map::new();
    data.insert("refund_request_id".into(), json!(row.id));
    data.insert("refund_id".into(), json!(row.platform_refund_id));
    data.insert("payment_id".into(), json!(row.payment_id));
    data.insert("status".into(), json!(status));
    data.insert("amount".into(), json!(row.amount));
    data.insert("currency".into(), json!("GBP"));
    data.insert("approval_required".into(), json!(row.approval_required));
    data.insert("case_reference".into(), json!(row.case_reference));
    let key = format!("{}:{}", event_type.name(), row.id);
    emit(tx, row.service_id, event_type, data, Some(&key), now).await
}

/// A journey's state as an upsert left it, for `payments_changed`.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentChange {
    pub journey_id: i64,
    pub payment_id: String,
    pub status: String,
    pub amount: i64,
    pub case_reference: Option<String>,
    /// Its state moved forward in this write.
    pub moved: bool,
    /// This write is the first time paydesk saw it.
    pub first_seen: bool,
    pub created_at: OffsetDateTime,
}

impl PaymentChange {
    /// A journey as the upsert at `now` (micros) left it.
    pub fn of(u: &crate::store::journeys::Upserted, now: i64) -> PaymentChange {
        PaymentChange {
            journey_id: u.id,
            payment_id: u.payment_id.clone(),
            status: u.status.clone(),
            amount: u.amount,
            case_reference: u.case_reference.clone(),
            moved: u.moved(now),
            first_seen: u.first_seen(now),
            created_at: store::from_micros(u.created_at),
        }
    }
}

/// The event a payment's state calls for, if any.
fn payment_event(status: &str) -> Option<EventType> {
    match status {
        "success" => Some(EventType::PaymentSucceeded),
        "failed" | "cancelled" | "error" => Some(EventType::PaymentFailed),
        _ => None,
    }
}

/// Whether a change is a payment reaching its final state that the CRM should hear about:
/// a real transition of a journey paydesk knew, or a journey first seen already finished
/// that was made recently (not history being imported).
pub fn announces(change: &PaymentChange, now: OffsetDateTime) -> Option<EventType> {
    let event = payment_event(&change.status)?;
    let recent = change.created_at >= now - FIRST_SEEN_RECENT;
    (change.moved || (change.first_seen && recent)).then_some(event)
}

/// Journeys were written from the platform: emit `payment.succeeded` / `payment.failed` for
/// each that reached its final state here. Once per journey, however often it is read.
pub async fn payments_changed(
    tx: &mut Tx,
    service_id: i64,
    changes: &[PaymentChange],
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let due: Vec<(&PaymentChange, EventType)> = changes
        .iter()
        .filter_map(|c| announces(c, now).map(|e| (c, e)))
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    // One look at the endpoints for the whole batch: most services have none.
    if event_store::enabled_endpoints(tx, service_id)
        .await?
        .iter()
        .all(|e| !due.iter().any(|(_, t)| types_of(e).contains(t)))
    {
        return Ok(0);
    }
    let mut queued = 0;
    for (c, event_type) in due {
        let mut data = Map::new();
        data.insert("payment_id".into(), json!(c.payment_id));
        data.insert("status".into(), json!(c.status));
        data.insert("amount".into(), json!(c.amount));
        data.insert("currency".into(), json!("GBP"));
        data.insert("case_reference".into(), json!(c.case_reference));
        let key = format!("payment.final:{}", c.journey_id);
        queued += emit(tx, service_id, event_type, data, Some(&key), now).await?;
    }
    Ok(queued)
}

/// A payment was linked to a case (by the case API): emit `case.linked` with the journey as
/// it is now in this transaction. False when the journey is not the service's.
pub async fn case_linked(
    tx: &mut Tx,
    service_id: i64,
    journey_id: i64,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let Some(j) = event_store::journey_facts(tx, journey_id).await? else {
        return Ok(false);
    };
    if j.service_id != service_id {
        return Ok(false);
    }
    let mut data = Map::new();
    data.insert("payment_id".into(), json!(j.payment_id));
    data.insert("status".into(), json!(j.status));
    data.insert("amount".into(), json!(j.amount));
    data.insert("currency".into(), json!("GBP"));
    data.insert("case_reference".into(), json!(j.case_reference));
    emit(tx, service_id, EventType::CaseLinked, data, None, now).await?;
    Ok(true)
}

// ---- delivering -------------------------------------------------------------------------

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

use super::event_owner as owner;

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

// ---- managing endpoints -----------------------------------------------------------------

/// An endpoint as typed into its form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointInput {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
}

/// A field's problem: (field name, message).
pub type Problem = (&'static str, String);

/// The input, checked: the URL (without the network), the description and the types.
fn check_fields(
    input: &EndpointInput,
    allow_loopback: bool,
) -> Result<(String, String, String), Vec<Problem>> {
    let mut problems = Vec::new();
    let url = input.url.trim().to_string();
    if url.is_empty() {
        problems.push(("url", "Enter the endpoint's URL".to_string()));
    } else if let Err(refusal) = ssrf::check_url(&url, allow_loopback) {
        problems.push(("url", refusal.to_string()));
    }
    let description = input.description.trim().to_string();
    if description.chars().count() > MAX_DESCRIPTION {
        problems.push((
            "description",
            format!("The description must be {MAX_DESCRIPTION} characters or fewer"),
        ));
    } else if description.chars().any(char::is_control) {
        problems.push((
            "description",
            "Use letters, numbers and punctuation only".to_string(),
        ));
    }
    let mut types = Vec::new();
    for t in &input.event_types {
        match EventType::parse(t.trim()) {
            Some(t) if !types.contains(&t) => types.push(t),
            Some(_) => {}
            None => {
                problems.push((
                    "event_types",
                    "Choose event types from the list".to_string(),
                ));
                break;
            }
        }
    }
    if input.event_types.is_empty() {
        problems.push(("event_types", "Choose at least one event type".to_string()));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    types.sort();
    let types = types.iter().map(|t| t.name()).collect::<Vec<_>>().join(" ");
    Ok((url, description, types))
}

/// Check an endpoint's input, resolving its host: the URL must reach a public address now.
pub async fn check(
    config: &Config,
    input: &EndpointInput,
) -> Result<(String, String, String), Vec<Problem>> {
    let (url, description, types) = check_fields(input, config.events_allow_loopback)?;
    if let Err(refusal) = ssrf::resolve(&url, config.events_allow_loopback).await {
        return Err(vec![("url", refusal.to_string())]);
    }
    Ok((url, description, types))
}

/// Make an endpoint for `service_id`: its secret is returned to be shown once.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    db: &Db,
    config: &Config,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    service_id: i64,
    created_by: Option<i64>,
    input: &EndpointInput,
) -> Result<Result<(i64, String), Vec<Problem>>, EventsError> {
    let (url, description, types) = match check(config, input).await {
        Ok(c) => c,
        Err(p) => return Ok(Err(p)),
    };
    let at = store::to_micros(now);
    let mut tx = db.begin().await?;
    let id = event_store::insert_endpoint(
        &mut tx,
        &event_store::NewEndpointRow {
            service_id,
            url: &url,
            description: &description,
            event_types: &types,
            created_by,
        },
        at,
    )
    .await?;
    let secret = signature::new_secret();
    let sealed = crypto::seal(&config.events_key(), &secret_context(id), secret.as_bytes());
    event_store::set_secrets(&mut tx, id, &sealed, None, None, at).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor,
            "event_endpoint_created",
            format!("event_endpoint:{id}"),
        )
        .from_ip(origin_ip)
        .details(json!({
            "service": service_id, "url": url, "description": description, "event_types": types,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok((id, secret)))
}

/// Change an endpoint's URL, description and event types.
pub async fn update(
    db: &Db,
    config: &Config,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    endpoint_id: i64,
    input: &EndpointInput,
) -> Result<Result<(), Vec<Problem>>, EventsError> {
    let (url, description, types) = match check(config, input).await {
        Ok(c) => c,
        Err(p) => return Ok(Err(p)),
    };
    let mut tx = db.begin().await?;
    let Some(before) = event_store::endpoint_for_update(&mut tx, endpoint_id).await? else {
        tx.rollback().await?;
        return Ok(Ok(()));
    };
    event_store::update_endpoint(
        &mut tx,
        endpoint_id,
        &url,
        &description,
        &types,
        store::to_micros(now),
    )
    .await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "event_endpoint_updated", format!("event_endpoint:{endpoint_id}"))
            .from_ip(origin_ip)
            .details(json!({
                "before": {"url": before.url, "description": before.description, "event_types": before.event_types},
                "after": {"url": url, "description": description, "event_types": types},
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Turn an endpoint on or off; false when it already was.
pub async fn set_enabled(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    endpoint_id: i64,
    enabled: bool,
) -> Result<bool, EventsError> {
    let mut tx = db.begin().await?;
    let reason = (!enabled).then_some("Disabled by staff");
    if !event_store::set_enabled(&mut tx, endpoint_id, enabled, reason, store::to_micros(now))
        .await?
    {
        tx.rollback().await?;
        return Ok(false);
    }
    let action = owner::switched(&mut tx, endpoint_id, enabled, &actor).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, action, format!("event_endpoint:{endpoint_id}")).from_ip(origin_ip),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Give an endpoint a new secret, returned to be shown once. The old one keeps signing
/// beside it for the configured overlap, so the receiver can switch without losing events.
pub async fn rotate(
    db: &Db,
    config: &Config,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    endpoint_id: i64,
) -> Result<Option<(String, OffsetDateTime)>, EventsError> {
    let mut tx = db.begin().await?;
    let Some(endpoint) = event_store::endpoint_for_update(&mut tx, endpoint_id).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    let overlap = time::Duration::seconds(config.events_rotation_overlap_secs as i64);
    let until = now + overlap;
    let secret = signature::new_secret();
    let sealed = crypto::seal(
        &config.events_key(),
        &secret_context(endpoint_id),
        secret.as_bytes(),
    );
    let previous = endpoint
        .secret
        .as_deref()
        .filter(|_| overlap > time::Duration::ZERO);
    event_store::set_secrets(
        &mut tx,
        endpoint_id,
        &sealed,
        previous,
        previous.map(|_| store::to_micros(until)),
        store::to_micros(now),
    )
    .await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "event_endpoint_secret_rotated", format!("event_endpoint:{endpoint_id}"))
            .from_ip(origin_ip)
            .details(json!({"old_secret_signs_until": rfc3339(until), "overlap_secs": config.events_rotation_overlap_secs})),
    )
    .await?;
    tx.commit().await?;
    Ok(Some((secret, until)))
}

/// Why a replay was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayRefusal {
    #[error("This message is already on its way: wait for its next attempt")]
    InProgress,
    #[error("The endpoint is disabled: enable it before sending messages again")]
    Disabled,
    #[error("There are no failed messages to send again")]
    NothingFailed,
}

async fn queue_again(tx: &mut Tx, delivery_id: i64, now: OffsetDateTime) -> Result<(), StoreError> {
    let job_id = jobs::enqueue(tx, DELIVERY, &json!({ "delivery": delivery_id }), now, now).await?;
    event_store::set_delivery_job(tx, delivery_id, job_id, store::to_micros(now)).await
}

/// Send one message to its endpoint again, now, with the same `webhook-id`.
pub async fn replay(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    endpoint_id: i64,
    delivery_id: i64,
) -> Result<Result<(), ReplayRefusal>, EventsError> {
    let mut tx = db.begin().await?;
    let endpoint = event_store::endpoint_for_update(&mut tx, endpoint_id).await?;
    let delivery = event_store::delivery_in(&mut tx, delivery_id).await?;
    let (Some(endpoint), Some(delivery)) = (endpoint, delivery) else {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::NothingFailed));
    };
    if delivery.endpoint_id != endpoint.id {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::NothingFailed));
    }
    if !endpoint.enabled {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::Disabled));
    }
    if matches!(delivery.job_state.as_deref(), Some("queued" | "running")) {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::InProgress));
    }
    queue_again(&mut tx, delivery_id, now).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor,
            "event_replayed",
            format!("event_endpoint:{endpoint_id}"),
        )
        .from_ip(origin_ip)
        .details(json!({
            "delivery": delivery_id, "message_id": delivery.message_id,
            "event_type": delivery.event_type, "status_before": delivery.status,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Send every failed message of an endpoint again. Returns how many.
pub async fn replay_failed(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    origin_ip: Option<String>,
    endpoint_id: i64,
) -> Result<Result<usize, ReplayRefusal>, EventsError> {
    let mut tx = db.begin().await?;
    let Some(endpoint) = event_store::endpoint_for_update(&mut tx, endpoint_id).await? else {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::NothingFailed));
    };
    if !endpoint.enabled {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::Disabled));
    }
    let failed = event_store::failed_of(&mut tx, endpoint_id).await?;
    if failed.is_empty() {
        tx.rollback().await?;
        return Ok(Err(ReplayRefusal::NothingFailed));
    }
    for id in &failed {
        queue_again(&mut tx, *id, now).await?;
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor,
            "event_replayed",
            format!("event_endpoint:{endpoint_id}"),
        )
        .from_ip(origin_ip)
        .details(json!({"all_failed": true, "count": failed.len(), "deliveries": failed})),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(failed.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.name()), Some(t));
        }
        assert_eq!(EventType::parse("refund.rejected"), None);
    }

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

    fn change(status: &str, moved: bool, first_seen: bool, age_hours: i64) -> PaymentChange {
        let now = time::macros::datetime!(2026-11-20 09:00:00 UTC);
        PaymentChange {
            journey_id: 1,
            payment_id: "p".into(),
            status: status.into(),
            amount: 100,
            case_reference: None,
            moved,
            first_seen,
            created_at: now - time::Duration::hours(age_hours),
        }
    }

    #[test]
    fn only_real_arrivals_at_a_final_state_are_announced() {
        let now = time::macros::datetime!(2026-11-20 09:00:00 UTC);
        assert_eq!(
            announces(&change("success", true, false, 100), now),
            Some(EventType::PaymentSucceeded)
        );
        assert_eq!(
            announces(&change("cancelled", true, false, 1), now),
            Some(EventType::PaymentFailed)
        );
        assert_eq!(
            announces(&change("success", false, false, 1), now),
            None,
            "no change"
        );
        assert_eq!(
            announces(&change("started", true, false, 1), now),
            None,
            "not final"
        );
        assert_eq!(
            announces(&change("success", false, true, 1), now),
            Some(EventType::PaymentSucceeded)
        );
        assert_eq!(
            announces(&change("success", false, true, 48), now),
            None,
            "history"
        );
    }

    #[test]
    fn endpoint_input_is_checked_field_by_field() {
        let ok = EndpointInput {
            url: " https://crm.example.gov.uk/hook ".into(),
            description: "CRM".into(),
            event_types: vec![
                "refund.succeeded".into(),
                "payment.succeeded".into(),
                "refund.succeeded".into(),
            ],
        };
        let (url, _, types) = check_fields(&ok, false).unwrap();
        assert_eq!(url, "https://crm.example.gov.uk/hook");
        assert_eq!(types, "payment.succeeded refund.succeeded");
        let bad = EndpointInput {
            url: "http://crm.example.gov.uk/".into(),
            description: "x".repeat(MAX_DESCRIPTION + 1),
            event_types: vec!["refund.rejected".into()],
        };
        let fields: Vec<&str> = check_fields(&bad, false)
            .unwrap_err()
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(fields, ["url", "description", "event_types"]);
        let none = EndpointInput {
            url: "https://a.example/".into(),
            ..Default::default()
        };
        assert_eq!(check_fields(&none, false).unwrap_err()[0].0, "event_types");
    }
}
