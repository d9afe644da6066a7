//! SQL for outbound events: endpoints, the events themselves (the outbox), their deliveries
//! to each endpoint and every delivery attempt.

use sqlx::QueryBuilder;

use super::{Db, StoreResult, Tx};
use crate::{on_db, on_tx};

/// An endpoint as stored; `secret` and `previous_secret` are sealed.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: i64,
    pub service_id: i64,
    pub url: String,
    pub description: String,
    pub event_types: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const ENDPOINT_COLUMNS: &str =
    "id, service_id, url, description, event_types, enabled, disabled_reason, secret, \
    previous_secret, previous_secret_until, created_by, created_at, updated_at";

pub struct NewEndpointRow<'a> {
    pub service_id: i64,
    pub url: &'a str,
    pub description: &'a str,
    pub event_types: &'a str,
    pub created_by: Option<i64>,
}

pub async fn insert_endpoint(tx: &mut Tx, e: &NewEndpointRow<'_>, now: i64) -> StoreResult<i64> {
    let sql = "INSERT INTO event_endpoints (service_id, url, description, event_types, enabled, created_by, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, TRUE, $5, $6, $6) RETURNING id";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql)
        .bind(e.service_id).bind(e.url).bind(e.description).bind(e.event_types).bind(e.created_by).bind(now)
        .fetch_one(conn).await?))
}

/// Set the current secret; the previous one (if any) keeps signing until `previous_until`.
pub async fn set_secrets(
    tx: &mut Tx,
    id: i64,
    secret: &str,
    previous: Option<&str>,
    previous_until: Option<i64>,
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, conn => {
        sqlx::query("UPDATE event_endpoints SET secret = $2, previous_secret = $3, previous_secret_until = $4, updated_at = $5 WHERE id = $1")
            .bind(id).bind(secret).bind(previous).bind(previous_until).bind(now).execute(conn).await?;
    });
    Ok(())
}

pub async fn endpoint(db: &Db, id: i64) -> StoreResult<Option<EndpointRow>> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM event_endpoints WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, EndpointRow>(&sql).bind(id).fetch_optional(pool).await?),
    )
}

/// The same, inside a write transaction (and locked there on PostgreSQL).
pub async fn endpoint_for_update(tx: &mut Tx, id: i64) -> StoreResult<Option<EndpointRow>> {
    let lock = match tx {
        Tx::Sqlite(..) => "",
        Tx::Postgres(..) => " FOR UPDATE",
    };
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM event_endpoints WHERE id = $1{lock}");
    Ok(
        on_tx!(tx, conn => sqlx::query_as::<_, EndpointRow>(&sql).bind(id).fetch_optional(conn).await?),
    )
}

/// Every endpoint, by service then age.
pub async fn all_endpoints(db: &Db) -> StoreResult<Vec<EndpointRow>> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM event_endpoints ORDER BY service_id, id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, EndpointRow>(&sql).fetch_all(pool).await?))
}

/// A service's enabled endpoints, inside the transaction that emits an event.
pub async fn enabled_endpoints(tx: &mut Tx, service_id: i64) -> StoreResult<Vec<EndpointRow>> {
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM event_endpoints WHERE service_id = $1 AND enabled = TRUE ORDER BY id"
    );
    Ok(
        on_tx!(tx, conn => sqlx::query_as::<_, EndpointRow>(&sql).bind(service_id).fetch_all(conn).await?),
    )
}

pub async fn update_endpoint(
    tx: &mut Tx,
    id: i64,
    url: &str,
    description: &str,
    event_types: &str,
    now: i64,
) -> StoreResult<bool> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE event_endpoints SET url = $2, description = $3, event_types = $4, updated_at = $5 WHERE id = $1")
        .bind(id).bind(url).bind(description).bind(event_types).bind(now)
        .execute(conn).await?.rows_affected());
    Ok(n == 1)
}

/// Enable or disable; false when it already was.
pub async fn set_enabled(
    tx: &mut Tx,
    id: i64,
    enabled: bool,
    reason: Option<&str>,
    now: i64,
) -> StoreResult<bool> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE event_endpoints SET enabled = $2, disabled_reason = $3, updated_at = $4 WHERE id = $1 AND enabled <> $2")
        .bind(id).bind(enabled).bind(reason).bind(now)
        .execute(conn).await?.rows_affected());
    Ok(n == 1)
}

/// Make `staff_id` the endpoint's owner (the person whose permissions it delivers with).
pub async fn set_owner(tx: &mut Tx, id: i64, staff_id: i64) -> StoreResult<()> {
    on_tx!(tx, conn => sqlx::query("UPDATE event_endpoints SET created_by = $2 WHERE id = $1")
        .bind(id).bind(staff_id).execute(conn).await?.rows_affected());
    Ok(())
}

// ---- events and deliveries ------------------------------------------------------------

pub async fn service_slug(tx: &mut Tx, service_id: i64) -> StoreResult<Option<String>> {
    Ok(
        on_tx!(tx, conn => sqlx::query_scalar::<_, String>("SELECT slug FROM services WHERE id = $1")
        .bind(service_id).fetch_optional(conn).await?),
    )
}

/// What an event about a journey says about it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JourneyFacts {
    pub id: i64,
    pub service_id: i64,
    pub payment_id: String,
    pub status: String,
    pub amount: i64,
    pub case_reference: Option<String>,
}

pub async fn journey_facts(tx: &mut Tx, journey_id: i64) -> StoreResult<Option<JourneyFacts>> {
    Ok(on_tx!(tx, conn => sqlx::query_as::<_, JourneyFacts>(
        "SELECT id, service_id, payment_id, status, amount, case_reference FROM journeys WHERE id = $1")
        .bind(journey_id).fetch_optional(conn).await?))
}

pub struct NewEventRow<'a> {
    pub service_id: i64,
    pub message_id: &'a str,
    pub event_type: &'a str,
    pub payload: &'a str,
    pub dedupe_key: Option<&'a str>,
}

/// Insert an event; None when one with the same dedupe key exists already.
pub async fn insert_event(tx: &mut Tx, e: &NewEventRow<'_>, now: i64) -> StoreResult<Option<i64>> {
    let sql = "INSERT INTO outbound_events (service_id, message_id, event_type, payload, dedupe_key, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql)
        .bind(e.service_id).bind(e.message_id).bind(e.event_type).bind(e.payload).bind(e.dedupe_key).bind(now)
        .fetch_optional(conn).await?))
}

pub async fn insert_delivery(
    tx: &mut Tx,
    event_id: i64,
    endpoint_id: i64,
    now: i64,
) -> StoreResult<i64> {
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "INSERT INTO event_deliveries (event_id, endpoint_id, status, attempts, created_at, updated_at) \
         VALUES ($1, $2, 'pending', 0, $3, $3) RETURNING id")
        .bind(event_id).bind(endpoint_id).bind(now).fetch_one(conn).await?))
}

/// Hand a delivery to a (new) job: it is pending again.
pub async fn set_delivery_job(
    tx: &mut Tx,
    delivery_id: i64,
    job_id: i64,
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, conn => {
        sqlx::query("UPDATE event_deliveries SET job_id = $2, status = 'pending', updated_at = $3 WHERE id = $1")
            .bind(delivery_id).bind(job_id).bind(now).execute(conn).await?;
    });
    Ok(())
}

/// Everything needed to send one delivery.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Outgoing {
    pub delivery_id: i64,
    pub endpoint_id: i64,
    pub service_id: i64,
    pub url: String,
    pub enabled: bool,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    /// Who set the endpoint up (and so whose permissions it delivers with).
    pub created_by: Option<i64>,
    pub message_id: String,
    pub event_type: String,
    pub payload: String,
}

pub async fn outgoing(db: &Db, delivery_id: i64) -> StoreResult<Option<Outgoing>> {
    let sql = "SELECT d.id AS delivery_id, d.endpoint_id, p.service_id, p.url, p.enabled, p.secret, p.previous_secret, \
               p.previous_secret_until, p.created_by, e.message_id, e.event_type, e.payload \
               FROM event_deliveries d JOIN event_endpoints p ON p.id = d.endpoint_id JOIN outbound_events e ON e.id = d.event_id \
               WHERE d.id = $1";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, Outgoing>(sql).bind(delivery_id).fetch_optional(pool).await?),
    )
}

/// One attempt's result.
pub struct NewAttempt<'a> {
    pub delivery_id: i64,
    pub attempted_at: i64,
    pub http_status: Option<i32>,
    pub error: Option<&'a str>,
    pub latency_ms: i64,
    pub response_excerpt: Option<&'a str>,
    pub succeeded: bool,
}

/// Record an attempt and the delivery's status after it.
pub async fn record_attempt(tx: &mut Tx, a: &NewAttempt<'_>, status: &str) -> StoreResult<()> {
    on_tx!(tx, conn => {
        sqlx::query("INSERT INTO event_attempts (delivery_id, attempted_at, http_status, error, latency_ms, response_excerpt, succeeded) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(a.delivery_id).bind(a.attempted_at).bind(a.http_status).bind(a.error)
            .bind(a.latency_ms).bind(a.response_excerpt).bind(a.succeeded)
            .execute(&mut *conn).await?;
        sqlx::query("UPDATE event_deliveries SET status = $2, attempts = attempts + 1, last_attempt_at = $3, updated_at = $3 WHERE id = $1")
            .bind(a.delivery_id).bind(status).bind(a.attempted_at)
            .execute(&mut *conn).await?;
    });
    Ok(())
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub endpoint_id: i64,
    pub message_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub created_at: i64,
    pub last_attempt_at: Option<i64>,
    pub job_id: Option<i64>,
    /// When the next attempt is due, while its job waits.
    pub next_attempt_at: Option<i64>,
    pub job_state: Option<String>,
}

const DELIVERY_SELECT: &str = "SELECT d.id, d.endpoint_id, e.message_id, e.event_type, e.payload, d.status, d.attempts, \
    d.created_at, d.last_attempt_at, d.job_id, \
    CASE WHEN j.state = 'queued' THEN j.run_at END AS next_attempt_at, j.state AS job_state \
    FROM event_deliveries d JOIN outbound_events e ON e.id = d.event_id LEFT JOIN jobs j ON j.id = d.job_id";

/// An endpoint's deliveries, newest first, before `before` (a delivery id) when given.
pub async fn deliveries_of(
    db: &Db,
    endpoint_id: i64,
    before: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<DeliveryRow>> {
    let sql = format!(
        "{DELIVERY_SELECT} WHERE d.endpoint_id = $1 AND ($2 IS NULL OR d.id < $2) ORDER BY d.id DESC LIMIT $3"
    );
    Ok(on_db!(db, pool => sqlx::query_as::<_, DeliveryRow>(&sql)
        .bind(endpoint_id).bind(before).bind(limit).fetch_all(pool).await?))
}

pub async fn delivery(db: &Db, id: i64) -> StoreResult<Option<DeliveryRow>> {
    let sql = format!("{DELIVERY_SELECT} WHERE d.id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, DeliveryRow>(&sql).bind(id).fetch_optional(pool).await?),
    )
}

/// The same, inside a write transaction.
pub async fn delivery_in(tx: &mut Tx, id: i64) -> StoreResult<Option<DeliveryRow>> {
    let sql = format!("{DELIVERY_SELECT} WHERE d.id = $1");
    Ok(
        on_tx!(tx, conn => sqlx::query_as::<_, DeliveryRow>(&sql).bind(id).fetch_optional(conn).await?),
    )
}

/// An endpoint's failed deliveries whose job is over (none is waiting or running).
pub async fn failed_of(tx: &mut Tx, endpoint_id: i64) -> StoreResult<Vec<i64>> {
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "SELECT d.id FROM event_deliveries d LEFT JOIN jobs j ON j.id = d.job_id \
         WHERE d.endpoint_id = $1 AND d.status = 'failed' AND (j.id IS NULL OR j.state IN ('succeeded', 'dead')) ORDER BY d.id")
        .bind(endpoint_id).fetch_all(conn).await?))
}

/// How many of an endpoint's deliveries are in each status.
pub async fn status_counts(db: &Db, endpoint_id: i64) -> StoreResult<Vec<(String, i64)>> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, (String, i64)>(
        "SELECT status, COUNT(*) FROM event_deliveries WHERE endpoint_id = $1 GROUP BY status ORDER BY status")
        .bind(endpoint_id).fetch_all(pool).await?))
}

/// One attempt, for the log.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: i64,
    pub delivery_id: i64,
    pub attempted_at: i64,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
    pub succeeded: bool,
}

/// The attempts of these deliveries, oldest first.
pub async fn attempts_of(db: &Db, delivery_ids: &[i64]) -> StoreResult<Vec<AttemptRow>> {
    if delivery_ids.is_empty() {
        return Ok(Vec::new());
    }
    let head = "SELECT id, delivery_id, attempted_at, http_status, error, latency_ms, response_excerpt, succeeded \
                FROM event_attempts WHERE delivery_id IN (";
    Ok(on_db!(db, pool => {
        let mut qb = QueryBuilder::new(head);
        let mut sep = qb.separated(", ");
        for id in delivery_ids {
            sep.push_bind(*id);
        }
        qb.push(") ORDER BY delivery_id, id");
        qb.build_query_as::<AttemptRow>().fetch_all(pool).await?
    }))
}

/// The addresses of the people to tell about a service's endpoints: its active service
/// admins, or (when it has none) the platform admins.
pub async fn admin_emails(tx: &mut Tx, service_id: i64) -> StoreResult<Vec<String>> {
    let sql = "SELECT DISTINCT s.email FROM staff s JOIN staff_grants g ON g.staff_id = s.id \
               WHERE s.status = 'active' AND ((g.role = 'service_admin' AND g.service_id = $1) \
               OR (g.role = 'platform_admin' AND NOT EXISTS ( \
                   SELECT 1 FROM staff s2 JOIN staff_grants g2 ON g2.staff_id = s2.id \
                   WHERE s2.status = 'active' AND g2.role = 'service_admin' AND g2.service_id = $1))) \
               ORDER BY s.email";
    Ok(
        on_tx!(tx, conn => sqlx::query_scalar::<_, String>(sql).bind(service_id).fetch_all(conn).await?),
    )
}
