//! SQL for payment journeys, their timelines, platform refunds, the webhook inbox and the
//! backfill's progress.
//!
//! Upserts never move a journey's state backwards: the state columns change only when the
//! incoming state ranks higher, and the other columns only when the incoming read is at least
//! as recent as the stored one.

use sqlx::QueryBuilder;

use super::{to_micros, Db, StoreResult, Tx};
use crate::journeys::record::{JourneyRecord, RefundRecord};
use crate::{on_db, on_tx};

/// Columns written from a platform read, in bind order.
const JOURNEY_COLUMNS: [&str; 37] = [
    "service_id",
    "payment_id",
    "status",
    "status_rank",
    "finished",
    "state_code",
    "state_message",
    "amount",
    "description",
    "reference",
    "reference_key",
    "email",
    "email_key",
    "language",
    "cardholder_name",
    "card_brand",
    "card_type",
    "first_digits",
    "last_digits",
    "expiry_date",
    "wallet_type",
    "payment_provider",
    "provider_id",
    "created_at",
    "capture_submitted_at",
    "captured_date",
    "settled_date",
    "fee",
    "net_amount",
    "corporate_surcharge",
    "total_amount",
    "refund_status",
    "refund_available",
    "refund_submitted",
    "metadata",
    "case_reference",
    "observed_at",
];

/// The payer's personal data on a journey: what retention and erasure empty.
pub const REDACTED_COLUMNS: [&str; 5] = [
    "description",
    "email",
    "email_key",
    "cardholder_name",
    "metadata",
];

/// Columns that follow the state: they change only when the state moves forward.
const STATE_COLUMNS: [&str; 5] = [
    "status",
    "status_rank",
    "finished",
    "state_code",
    "state_message",
];

/// Columns a payment never changes on the platform after it is created.
const FIXED_COLUMNS: [&str; 4] = ["service_id", "payment_id", "created_at", "observed_at"];

fn upsert_journeys_sql_tail() -> String {
    let mut sets = Vec::new();
    for c in STATE_COLUMNS {
        sets.push(format!(
            "{c} = CASE WHEN excluded.status_rank > journeys.status_rank THEN excluded.{c} ELSE journeys.{c} END"
        ));
    }
    for c in JOURNEY_COLUMNS {
        if STATE_COLUMNS.contains(&c) || FIXED_COLUMNS.contains(&c) || c == "case_reference" {
            continue;
        }
        // Payer data removed under retention or erasure (`personal_data`) is never read back.
        let kept = if REDACTED_COLUMNS.contains(&c) {
            "journeys.redacted_at IS NULL AND "
        } else {
            ""
        };
        sets.push(format!(
            "{c} = CASE WHEN {kept}excluded.observed_at >= journeys.observed_at THEN excluded.{c} ELSE journeys.{c} END"
        ));
    }
    // A case reference linked in paydesk outlives the metadata's (which cannot change anyway).
    sets.push("case_reference = COALESCE(journeys.case_reference, excluded.case_reference)".into());
    // A stuck journey that reaches a final state no longer needs attention for being stuck.
    sets.push("needs_attention = CASE WHEN excluded.finished AND journeys.attention_reason = 'stuck' THEN FALSE ELSE journeys.needs_attention END".into());
    sets.push("attention_reason = CASE WHEN excluded.finished AND journeys.attention_reason = 'stuck' THEN NULL ELSE journeys.attention_reason END".into());
    sets.push("observed_at = CASE WHEN excluded.observed_at > journeys.observed_at THEN excluded.observed_at ELSE journeys.observed_at END".into());
    sets.push("state_changed_at = CASE WHEN excluded.status_rank > journeys.status_rank THEN excluded.updated_at ELSE journeys.state_changed_at END".into());
    sets.push("updated_at = excluded.updated_at".into());
    // `state_changed_at` equal to this write's time tells the caller the state moved on here.
    format!(
        " ON CONFLICT (service_id, payment_id) DO UPDATE SET {} RETURNING id, payment_id, status, state_changed_at, first_seen_at, amount, case_reference, created_at",
        sets.join(", ")
    )
}

/// A journey as stored.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct JourneyRow {
    pub id: i64,
    pub service_id: i64,
    pub payment_id: String,
    pub status: String,
    pub finished: bool,
    pub state_code: Option<String>,
    pub state_message: Option<String>,
    pub amount: i64,
    pub description: String,
    pub reference: String,
    pub email: Option<String>,
    pub cardholder_name: Option<String>,
    pub card_brand: Option<String>,
    pub first_digits: Option<String>,
    pub last_digits: Option<String>,
    pub created_at: i64,
    pub settled_date: Option<String>,
    pub fee: Option<i64>,
    pub net_amount: Option<i64>,
    pub refund_status: Option<String>,
    pub refund_available: Option<i64>,
    pub refund_submitted: Option<i64>,
    pub metadata: Option<String>,
    pub case_reference: Option<String>,
    pub needs_attention: bool,
    pub attention_reason: Option<String>,
    pub observed_at: i64,
    pub card_type: Option<String>,
    pub expiry_date: Option<String>,
    pub wallet_type: Option<String>,
    pub payment_provider: Option<String>,
    pub provider_id: Option<String>,
    pub captured_date: Option<String>,
    pub corporate_surcharge: Option<i64>,
    pub total_amount: Option<i64>,
    pub first_seen_at: i64,
    pub language: Option<String>,
    pub moto: Option<bool>,
    /// When the payer's personal data was removed (retention or erasure).
    pub redacted_at: Option<i64>,
}

const JOURNEY_ROW: &str = "id, service_id, payment_id, status, finished, state_code, state_message, amount, description, reference, email, cardholder_name, card_brand, first_digits, last_digits, created_at, settled_date, fee, net_amount, refund_status, refund_available, refund_submitted, metadata, case_reference, needs_attention, attention_reason, observed_at, card_type, expiry_date, wallet_type, payment_provider, provider_id, captured_date, corporate_surcharge, total_amount, first_seen_at, language, moto, redacted_at";

/// Where a timeline entry came from (see the `source` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Platform,
    Observed,
    Paydesk,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Platform => "platform",
            Source::Observed => "observed",
            Source::Paydesk => "paydesk",
        }
    }
}

/// A journey as an upsert left it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Upserted {
    pub id: i64,
    pub payment_id: String,
    pub status: String,
    pub state_changed_at: Option<i64>,
    pub first_seen_at: i64,
    pub amount: i64,
    pub case_reference: Option<String>,
    pub created_at: i64,
}

impl Upserted {
    /// Whether this write moved the journey's state forward.
    pub fn moved(&self, now: i64) -> bool {
        self.state_changed_at == Some(now)
    }

    /// Whether this write is the first time the journey was seen.
    pub fn first_seen(&self, now: i64) -> bool {
        self.first_seen_at == now && self.state_changed_at.is_none()
    }
}

/// Upsert `records` (read from the platform at `observed_at`) and note each one's current
/// state in its timeline. Returns every record's journey as the write left it.
pub async fn upsert_journeys(
    tx: &mut Tx,
    service_id: i64,
    records: &[JourneyRecord],
    observed_at: i64,
    now: i64,
) -> StoreResult<Vec<Upserted>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let tail = upsert_journeys_sql_tail();
    let head = format!(
        "INSERT INTO journeys ({}, first_seen_at, updated_at) ",
        JOURNEY_COLUMNS.join(", ")
    );
    let rows: Vec<Upserted> = on_tx!(tx, conn => {
        let mut qb = QueryBuilder::new(head.as_str());
        qb.push_values(records, |mut b, r| {
            b.push_bind(service_id)
                .push_bind(&r.payment_id)
                .push_bind(r.status.as_str())
                .push_bind(r.status.rank())
                .push_bind(r.status.is_finished())
                .push_bind(&r.state_code)
                .push_bind(&r.state_message)
                .push_bind(r.amount)
                .push_bind(&r.description)
                .push_bind(&r.reference)
                .push_bind(r.reference.to_lowercase())
                .push_bind(&r.email)
                .push_bind(r.email.as_ref().map(|e| e.to_lowercase()))
                .push_bind(&r.language)
                .push_bind(&r.cardholder_name)
                .push_bind(&r.card_brand)
                .push_bind(&r.card_type)
                .push_bind(&r.first_digits)
                .push_bind(&r.last_digits)
                .push_bind(&r.expiry_date)
                .push_bind(&r.wallet_type)
                .push_bind(&r.payment_provider)
                .push_bind(&r.provider_id)
                .push_bind(to_micros(r.created_at))
                .push_bind(r.capture_submitted_at.map(to_micros))
                .push_bind(&r.captured_date)
                .push_bind(&r.settled_date)
                .push_bind(r.fee)
                .push_bind(r.net_amount)
                .push_bind(r.corporate_surcharge)
                .push_bind(r.total_amount)
                .push_bind(&r.refund_status)
                .push_bind(r.refund_available)
                .push_bind(r.refund_submitted)
                .push_bind(&r.metadata)
                .push_bind(&r.case_reference)
                .push_bind(observed_at)
                .push_bind(now)
                .push_bind(now);
        });
        qb.push(tail.as_str());
        qb.build_query_as::<Upserted>().fetch_all(&mut *conn).await?
    });
    // A state change seen here (not in the platform's own history) becomes an "observed"
    // timeline entry. A journey seen for the first time gets none: its row already says when
    // it was created and what state it was first seen in, and writing both would double the
    // cost of importing history.
    let by_id: std::collections::HashMap<&str, &JourneyRecord> =
        records.iter().map(|r| (r.payment_id.as_str(), r)).collect();
    let events: Vec<StateEvent> = rows
        .iter()
        .filter_map(|u| {
            let r = by_id.get(u.payment_id.as_str())?;
            (u.status == r.status.as_str() && u.moved(now)).then(|| StateEvent {
                journey_id: u.id,
                status: r.status.as_str().to_string(),
                code: r.state_code.clone(),
                message: r.state_message.clone(),
                occurred_at: observed_at.max(to_micros(r.created_at)),
                source: Source::Observed,
            })
        })
        .collect();
    insert_state_events(tx, &events, now).await?;
    Ok(rows)
}

/// A state a journey was in, for its timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct StateEvent {
    pub journey_id: i64,
    pub status: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub occurred_at: i64,
    pub source: Source,
}

/// Record states in timelines, one entry per journey and state. An entry from the platform's
/// history replaces an observed one (its time is exact); anything else is a no-op.
pub async fn insert_state_events(tx: &mut Tx, events: &[StateEvent], now: i64) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    for chunk in events.chunks(1000) {
        on_tx!(tx, conn => {
            let mut qb = QueryBuilder::new(
                "INSERT INTO journey_events (journey_id, occurred_at, kind, status, code, message, source, dedupe_key, recorded_at) ",
            );
            qb.push_values(chunk, |mut b, e| {
                b.push_bind(e.journey_id)
                    .push_bind(e.occurred_at)
                    .push_bind("state")
                    .push_bind(&e.status)
                    .push_bind(&e.code)
                    .push_bind(&e.message)
                    .push_bind(e.source.as_str())
                    .push_bind(format!("state:{}", e.status))
                    .push_bind(now);
            });
            qb.push(
                " ON CONFLICT (journey_id, dedupe_key) DO UPDATE SET occurred_at = excluded.occurred_at, \
                  code = excluded.code, message = excluded.message, source = excluded.source \
                  WHERE journey_events.source = 'observed' AND excluded.source = 'platform'",
            );
            qb.build().execute(&mut *conn).await?;
        });
    }
    Ok(())
}

/// Upsert refunds read at `observed_at`; a refund's status only moves from submitted to a
/// final one. Each status a refund reaches gets a timeline entry on its payment's journey.
pub async fn upsert_refunds(
    tx: &mut Tx,
    service_id: i64,
    refunds: &[RefundRecord],
    observed_at: i64,
    now: i64,
) -> StoreResult<()> {
    for chunk in refunds.chunks(500) {
        on_tx!(tx, conn => {
            let mut qb = QueryBuilder::new(
                "INSERT INTO platform_refunds (service_id, refund_id, payment_id, amount, status, status_rank, created_at, settled_date, observed_at, first_seen_at, updated_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(service_id)
                    .push_bind(&r.refund_id)
                    .push_bind(&r.payment_id)
                    .push_bind(r.amount)
                    .push_bind(r.status.as_str())
                    .push_bind(r.status.rank())
                    .push_bind(to_micros(r.created_at))
                    .push_bind(&r.settled_date)
                    .push_bind(observed_at)
                    .push_bind(now)
                    .push_bind(now);
            });
            qb.push(
                " ON CONFLICT (service_id, refund_id) DO UPDATE SET \
                  status = CASE WHEN excluded.status_rank > platform_refunds.status_rank THEN excluded.status ELSE platform_refunds.status END, \
                  status_rank = CASE WHEN excluded.status_rank > platform_refunds.status_rank THEN excluded.status_rank ELSE platform_refunds.status_rank END, \
                  settled_date = COALESCE(excluded.settled_date, platform_refunds.settled_date), \
                  observed_at = CASE WHEN excluded.observed_at > platform_refunds.observed_at THEN excluded.observed_at ELSE platform_refunds.observed_at END, \
                  updated_at = excluded.updated_at",
            );
            qb.build().execute(&mut *conn).await?;

            // Timeline entries, joined to journeys already imported (a refund seen before its
            // payment gets its entries when the payment is read).
            let mut qb = QueryBuilder::new(
                "INSERT INTO journey_events (journey_id, occurred_at, kind, status, amount, detail, source, dedupe_key, recorded_at) \
                 SELECT j.id, v.column3, 'refund', v.column4, v.column5, v.column6, 'observed', v.column7, ",
            );
            qb.push_bind(now);
            qb.push(" FROM (");
            qb.push_values(chunk, |mut b, r| {
                let occurred = if r.status == crate::platform::types::RefundStatus::Submitted {
                    to_micros(r.created_at)
                } else {
                    observed_at.max(to_micros(r.created_at))
                };
                b.push_bind(&r.payment_id)
                    .push_bind(&r.refund_id)
                    .push_bind(occurred)
                    .push_bind(r.status.as_str())
                    .push_bind(r.amount)
                    .push_bind(serde_json::json!({"refund_id": r.refund_id}).to_string())
                    .push_bind(format!("refund:{}:{}", r.refund_id, r.status.as_str()));
            });
            qb.push(") AS v JOIN journeys j ON j.service_id = ");
            qb.push_bind(service_id);
            qb.push(" AND j.payment_id = v.column1 ON CONFLICT (journey_id, dedupe_key) DO NOTHING");
            qb.build().execute(&mut *conn).await?;
        });
    }
    Ok(())
}

/// A webhook's timeline entry on its journey (if the journey is known).
pub async fn record_webhook_event(
    tx: &mut Tx,
    service_id: i64,
    payment_id: &str,
    message_id: &str,
    event_type: &str,
    received_at: i64,
    now: i64,
) -> StoreResult<()> {
    let sql = "INSERT INTO journey_events (journey_id, occurred_at, kind, status, detail, source, dedupe_key, recorded_at) \
               SELECT id, $3, 'webhook', $4, $5, 'paydesk', $6, $7 FROM journeys WHERE service_id = $1 AND payment_id = $2 \
               ON CONFLICT (journey_id, dedupe_key) DO NOTHING";
    let detail = serde_json::json!({"message_id": message_id}).to_string();
    on_tx!(tx, conn => {
        sqlx::query(sql).bind(service_id).bind(payment_id).bind(received_at).bind(event_type)
            .bind(detail).bind(format!("webhook:{message_id}")).bind(now)
            .execute(conn).await?;
    });
    Ok(())
}

/// Store a webhook in the inbox; false when this message id was already there.
pub async fn insert_webhook(
    tx: &mut Tx,
    service_id: i64,
    message_id: &str,
    event_type: &str,
    resource_id: &str,
    created_date: Option<&str>,
    now: i64,
) -> StoreResult<bool> {
    let sql = "INSERT INTO webhook_inbox (service_id, message_id, event_type, resource_id, created_date, received_at) \
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (service_id, message_id) DO NOTHING";
    let n = on_tx!(tx, conn => sqlx::query(sql).bind(service_id).bind(message_id).bind(event_type)
        .bind(resource_id).bind(created_date).bind(now).execute(conn).await?.rows_affected());
    Ok(n == 1)
}

/// The webhook inbox entry for a message, (received_at, event_type).
pub async fn webhook(
    db: &Db,
    service_id: i64,
    message_id: &str,
) -> StoreResult<Option<(i64, String)>> {
    let sql = "SELECT received_at, event_type FROM webhook_inbox WHERE service_id = $1 AND message_id = $2";
    Ok(
        on_db!(db, pool => sqlx::query_as(sql).bind(service_id).bind(message_id).fetch_optional(pool).await?),
    )
}

pub async fn journey(
    db: &Db,
    service_id: i64,
    payment_id: &str,
) -> StoreResult<Option<JourneyRow>> {
    let sql =
        format!("SELECT {JOURNEY_ROW} FROM journeys WHERE service_id = $1 AND payment_id = $2");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, JourneyRow>(&sql).bind(service_id).bind(payment_id).fetch_optional(pool).await?),
    )
}

/// A journey by its paydesk id.
pub async fn journey_by_id(db: &Db, id: i64) -> StoreResult<Option<JourneyRow>> {
    let sql = format!("SELECT {JOURNEY_ROW} FROM journeys WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, JourneyRow>(&sql).bind(id).fetch_optional(pool).await?),
    )
}

/// What paydesk did to a journey by itself, as its timeline names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemEvent {
    RefundSent,
    RefundFailed,
    RefundSucceeded,
}

impl SystemEvent {
    /// Kept in the event's `status` (a staff event has none), so the timeline can tell what
    /// paydesk did by itself from what a person did.
    pub fn name(self) -> &'static str {
        match self {
            SystemEvent::RefundSent => "refund_sent",
            SystemEvent::RefundFailed => "refund_failed",
            SystemEvent::RefundSucceeded => "refund_succeeded",
        }
    }
}

/// Note something paydesk did to a journey by itself (a job's work) in its timeline.
pub async fn record_system_event(
    tx: &mut Tx,
    journey_id: i64,
    what: SystemEvent,
    message: &str,
    detail: &serde_json::Value,
    now: i64,
) -> StoreResult<()> {
    let sql = "INSERT INTO journey_events (journey_id, occurred_at, kind, status, message, detail, source, dedupe_key, recorded_at) \
               VALUES ($1, $2, 'staff', $3, $4, $5, 'paydesk', $6, $2)";
    let key = format!("system:{}", uuid::Uuid::new_v4());
    on_tx!(tx, conn => {
        sqlx::query(sql).bind(journey_id).bind(now).bind(what.name()).bind(message).bind(detail.to_string()).bind(key)
            .execute(conn).await?;
    });
    Ok(())
}

/// How many timeline events a journey has, read in `tx` (to tell whether a refresh added any).
pub async fn event_count(tx: &mut Tx, journey_id: i64) -> StoreResult<i64> {
    let sql = "SELECT (SELECT COUNT(*) FROM journey_events WHERE journey_id = $1) \
                    + (SELECT COUNT(*) FROM dispute_events e JOIN journeys j \
                         ON j.service_id = e.service_id AND j.payment_id = e.payment_id WHERE j.id = $1)";
    Ok(
        on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql).bind(journey_id).fetch_one(conn).await?),
    )
}

/// Note something a member of staff did to a journey in its timeline.
pub async fn record_staff_event(
    tx: &mut Tx,
    journey_id: i64,
    message: &str,
    detail: &serde_json::Value,
    now: i64,
) -> StoreResult<()> {
    let sql = "INSERT INTO journey_events (journey_id, occurred_at, kind, message, detail, source, dedupe_key, recorded_at) \
               VALUES ($1, $2, 'staff', $3, $4, 'paydesk', $5, $2)";
    let key = format!("staff:{}", uuid::Uuid::new_v4());
    on_tx!(tx, conn => {
        sqlx::query(sql).bind(journey_id).bind(now).bind(message).bind(detail.to_string()).bind(key)
            .execute(conn).await?;
    });
    Ok(())
}

/// A refund the platform holds for a payment.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PlatformRefundRow {
    pub refund_id: String,
    pub amount: i64,
    pub status: String,
    pub created_at: i64,
    pub settled_date: Option<String>,
}

pub async fn refunds_of(
    db: &Db,
    service_id: i64,
    payment_id: &str,
) -> StoreResult<Vec<PlatformRefundRow>> {
    let sql = "SELECT refund_id, amount, status, created_at, settled_date FROM platform_refunds \
               WHERE service_id = $1 AND payment_id = $2 ORDER BY created_at DESC, refund_id";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, PlatformRefundRow>(sql).bind(service_id).bind(payment_id).fetch_all(pool).await?),
    )
}

/// A timeline entry as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EventRow {
    pub occurred_at: i64,
    pub kind: String,
    pub status: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub amount: Option<i64>,
    pub detail: Option<String>,
    pub source: String,
}

/// A journey's timeline events, newest first, with its payment's dispute history (kind
/// `dispute`, status the dispute's).
pub async fn events(db: &Db, journey_id: i64) -> StoreResult<Vec<EventRow>> {
    let sql = "SELECT occurred_at, kind, status, code, message, amount, detail, source FROM ( \
                 SELECT occurred_at, kind, status, code, message, amount, detail, source, id, 0 AS part \
                   FROM journey_events WHERE journey_id = $1 \
                 UNION ALL \
                 SELECT e.occurred_at, 'dispute', e.status, NULL, NULL, e.amount, NULL, e.source, e.id, 1 \
                   FROM dispute_events e JOIN journeys j ON j.service_id = e.service_id AND j.payment_id = e.payment_id \
                  WHERE j.id = $1) t \
               ORDER BY occurred_at DESC, part DESC, id DESC";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, EventRow>(sql).bind(journey_id).fetch_all(pool).await?),
    )
}

/// Journeys still without a final state that were created before `before`, not yet flagged.
pub async fn unfinished_before(
    db: &Db,
    service_id: i64,
    before: i64,
    limit: i64,
) -> StoreResult<Vec<String>> {
    let sql = "SELECT payment_id FROM journeys WHERE finished = FALSE AND created_at < $2 AND service_id = $1 \
               AND needs_attention = FALSE ORDER BY created_at LIMIT $3";
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, String>(sql).bind(service_id).bind(before).bind(limit).fetch_all(pool).await?),
    )
}

/// Flag a journey that never reached a final state; true when it was flagged just now.
pub async fn flag_stuck(
    tx: &mut Tx,
    service_id: i64,
    payment_id: &str,
    before: i64,
    now: i64,
) -> StoreResult<bool> {
    let sql = "UPDATE journeys SET needs_attention = TRUE, attention_reason = 'stuck', updated_at = $4 \
               WHERE service_id = $1 AND payment_id = $2 AND finished = FALSE AND created_at < $3 AND needs_attention = FALSE \
               RETURNING id";
    let id: Option<i64> = on_tx!(tx, conn => sqlx::query_scalar(sql).bind(service_id).bind(payment_id)
        .bind(before).bind(now).fetch_optional(conn).await?);
    let Some(id) = id else { return Ok(false) };
    let event = "INSERT INTO journey_events (journey_id, occurred_at, kind, message, source, dedupe_key, recorded_at) \
                 VALUES ($1, $2, 'attention', $3, 'paydesk', $4, $2) ON CONFLICT (journey_id, dedupe_key) DO NOTHING";
    on_tx!(tx, conn => {
        sqlx::query(event).bind(id).bind(now)
            .bind("No final state from the platform long after the payment should have expired")
            .bind(format!("attention:stuck:{now}")).execute(conn).await?;
    });
    Ok(true)
}

/// Counts and amount sums: (payments, sum of payment amounts, refunds, sum of refund amounts).
pub async fn totals(db: &Db, service_id: i64) -> StoreResult<(i64, i64, i64, i64)> {
    let p = "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM journeys WHERE service_id = $1";
    let r = "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM platform_refunds WHERE service_id = $1";
    let (pc, ps): (i64, i64) =
        on_db!(db, pool => sqlx::query_as(p).bind(service_id).fetch_one(pool).await?);
    let (rc, rs): (i64, i64) =
        on_db!(db, pool => sqlx::query_as(r).bind(service_id).fetch_one(pool).await?);
    Ok((pc, ps, rc, rs))
}

/// Journeys by status for a service.
pub async fn status_counts(db: &Db, service_id: i64) -> StoreResult<Vec<(String, i64)>> {
    let sql = "SELECT status, COUNT(*) FROM journeys WHERE service_id = $1 GROUP BY status ORDER BY status";
    Ok(on_db!(db, pool => sqlx::query_as(sql).bind(service_id).fetch_all(pool).await?))
}

// ---- backfill progress ----------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct SyncStateRow {
    pub service_id: i64,
    pub stream: String,
    pub cursor_at: Option<i64>,
    pub run_from: Option<i64>,
    pub run_to: Option<i64>,
    pub run_next_page: Option<String>,
    pub run_imported: i64,
    pub run_reached: Option<i64>,
    pub run_started_at: Option<i64>,
    pub imported_total: i64,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub updated_at: i64,
}

const SYNC_COLUMNS: &str = "service_id, stream, cursor_at, run_from, run_to, run_next_page, run_imported, run_reached, run_started_at, imported_total, last_success_at, last_error, last_error_at, updated_at";

pub async fn sync_states(db: &Db, service_id: i64) -> StoreResult<Vec<SyncStateRow>> {
    let sql =
        format!("SELECT {SYNC_COLUMNS} FROM sync_state WHERE service_id = $1 ORDER BY stream");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, SyncStateRow>(&sql).bind(service_id).fetch_all(pool).await?),
    )
}

pub async fn sync_state(
    db: &Db,
    service_id: i64,
    stream: &str,
) -> StoreResult<Option<SyncStateRow>> {
    let sql =
        format!("SELECT {SYNC_COLUMNS} FROM sync_state WHERE service_id = $1 AND stream = $2");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, SyncStateRow>(&sql).bind(service_id).bind(stream).fetch_optional(pool).await?),
    )
}

/// Write the whole progress row.
pub async fn save_sync_state(tx: &mut Tx, s: &SyncStateRow) -> StoreResult<()> {
    let sql = "INSERT INTO sync_state (service_id, stream, cursor_at, run_from, run_to, run_next_page, run_imported, run_reached, run_started_at, imported_total, last_success_at, last_error, last_error_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
               ON CONFLICT (service_id, stream) DO UPDATE SET cursor_at = excluded.cursor_at, run_from = excluded.run_from, \
               run_to = excluded.run_to, run_next_page = excluded.run_next_page, run_imported = excluded.run_imported, \
               run_reached = excluded.run_reached, run_started_at = excluded.run_started_at, imported_total = excluded.imported_total, \
               last_success_at = excluded.last_success_at, last_error = excluded.last_error, last_error_at = excluded.last_error_at, \
               updated_at = excluded.updated_at";
    on_tx!(tx, conn => {
        sqlx::query(sql).bind(s.service_id).bind(&s.stream).bind(s.cursor_at).bind(s.run_from).bind(s.run_to)
            .bind(&s.run_next_page).bind(s.run_imported).bind(s.run_reached).bind(s.run_started_at)
            .bind(s.imported_total).bind(s.last_success_at).bind(&s.last_error).bind(s.last_error_at)
            .bind(s.updated_at).execute(conn).await?;
    });
    Ok(())
}

/// Record why the last sync attempt failed, outside any other transaction.
pub async fn note_sync_error(
    db: &Db,
    service_id: i64,
    stream: &str,
    error: &str,
    now: i64,
) -> StoreResult<()> {
    let mut tx = db.begin().await?;
    let sql = "INSERT INTO sync_state (service_id, stream, last_error, last_error_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
               ON CONFLICT (service_id, stream) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at, updated_at = excluded.updated_at";
    on_tx!(&mut tx, conn => {
        sqlx::query(sql).bind(service_id).bind(stream).bind(error).bind(now).execute(conn).await?;
    });
    tx.commit().await
}

/// A journey's case reference, read with the journey locked (PostgreSQL; SQLite's write
/// transaction already holds every row). None when there is no such journey.
pub async fn case_reference_for_update(
    tx: &mut Tx,
    journey_id: i64,
) -> StoreResult<Option<Option<String>>> {
    let sql = match tx.backend() {
        super::Backend::Sqlite => "SELECT case_reference FROM journeys WHERE id = $1",
        super::Backend::Postgres => "SELECT case_reference FROM journeys WHERE id = $1 FOR UPDATE",
    };
    Ok(
        on_tx!(tx, conn => sqlx::query_scalar::<_, Option<String>>(sql).bind(journey_id).fetch_optional(conn).await?),
    )
}

/// Link a journey to a case. Later platform reads keep it (see the upsert above).
pub async fn set_case_reference(
    tx: &mut Tx,
    journey_id: i64,
    case_reference: &str,
    now: i64,
) -> StoreResult<()> {
    let sql = "UPDATE journeys SET case_reference = $2, updated_at = $3 WHERE id = $1";
    on_tx!(tx, conn => {
        sqlx::query(sql).bind(journey_id).bind(case_reference).bind(now).execute(conn).await?;
    });
    Ok(())
}

/// Journeys by their paydesk ids, in any order (a page of search results, read whole).
pub async fn journeys_by_ids(db: &Db, ids: &[i64]) -> StoreResult<Vec<JourneyRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {JOURNEY_ROW} FROM journeys WHERE id IN ({})",
        list.join(", ")
    );
    Ok(on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, JourneyRow>(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await?
    }))
}
