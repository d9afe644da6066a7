//! SQL for recurring agreements: the upsert that never moves an agreement back (a lower
//! status rank, or the other final status, leaves the row as it is), each status reached
//! written once to the agreement's history, and the reads the pages and the sync need.

use super::sql::{bound, Builder, Built};
use super::{Backend, Db, StoreResult, Tx};
use crate::{on_db, on_tx};

/// An agreement as the platform reported it, ready to store (times in UTC microseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementRecord {
    pub agreement_id: String,
    pub reference: String,
    pub description: String,
    pub user_identifier: Option<String>,
    pub status: &'static str,
    pub status_rank: i32,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub card_expiry: Option<String>,
    pub card_type: Option<String>,
    pub created_at: i64,
    /// When its card was set up (it became active).
    pub active_at: Option<i64>,
    pub cancelled_at: Option<i64>,
}

/// Store `r` unless the stored agreement is further along; write the statuses reached to its
/// history. Payer data removed under retention or erasure (`redacted_at`) is never read back. Returns the status stored now, or None when the read was older than the row.
pub async fn upsert(
    tx: &mut Tx,
    service_id: i64,
    r: &AgreementRecord,
    observed_at: i64,
    now: i64,
) -> StoreResult<Option<String>> {
    let sql = "INSERT INTO agreements (service_id, agreement_id, reference, description, user_identifier, \
                 status, status_rank, card_brand, card_last4, card_expiry, card_type, created_at, cancelled_at, \
                 observed_at, first_seen_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
               ON CONFLICT (service_id, agreement_id) DO UPDATE SET \
                 reference = excluded.reference, \
                 description = CASE WHEN agreements.redacted_at IS NULL THEN excluded.description ELSE agreements.description END, \
                 user_identifier = CASE WHEN agreements.redacted_at IS NULL \
                   THEN COALESCE(excluded.user_identifier, agreements.user_identifier) ELSE NULL END, \
                 status = excluded.status, status_rank = excluded.status_rank, \
                 card_brand = COALESCE(excluded.card_brand, agreements.card_brand), \
                 card_last4 = COALESCE(excluded.card_last4, agreements.card_last4), \
                 card_expiry = COALESCE(excluded.card_expiry, agreements.card_expiry), \
                 card_type = COALESCE(excluded.card_type, agreements.card_type), \
                 cancelled_at = COALESCE(agreements.cancelled_at, excluded.cancelled_at), \
                 observed_at = CASE WHEN excluded.observed_at > agreements.observed_at THEN excluded.observed_at ELSE agreements.observed_at END, \
                 updated_at = excluded.updated_at \
               WHERE excluded.status_rank > agreements.status_rank \
                  OR (excluded.status_rank = agreements.status_rank AND excluded.status = agreements.status) \
               RETURNING status";
    let stored: Option<String> = on_tx!(tx, conn => {
        sqlx::query_scalar(sql)
            .bind(service_id).bind(&r.agreement_id).bind(&r.reference).bind(&r.description)
            .bind(&r.user_identifier).bind(r.status).bind(i64::from(r.status_rank))
            .bind(&r.card_brand).bind(&r.card_last4).bind(&r.card_expiry).bind(&r.card_type)
            .bind(r.created_at).bind(r.cancelled_at).bind(observed_at).bind(now)
            .fetch_optional(&mut *conn).await?
    });
    let Some(status) = stored else {
        return Ok(None);
    };
    // Every agreement was created, when the platform says; it became active when its card
    // was set up; a later status is dated by the platform (cancelled) or when first seen.
    let events = "INSERT INTO agreement_events (service_id, agreement_id, status, occurred_at, source, recorded_at) \
                  VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (service_id, agreement_id, status) DO NOTHING";
    let mut reached = vec![("created", r.created_at, "platform")];
    if let Some(at) = r.active_at.filter(|_| r.status_rank >= 1) {
        reached.push(("active", at, "platform"));
    }
    match (r.status, r.cancelled_at) {
        ("cancelled", Some(at)) => reached.push(("cancelled", at, "platform")),
        ("created", _) | ("active", _) => {}
        (other, _) => reached.push((other, observed_at.max(r.created_at), "observed")),
    }
    for (what, at, source) in reached {
        on_tx!(tx, conn => {
            sqlx::query(events).bind(service_id).bind(&r.agreement_id).bind(what)
                .bind(at).bind(source).bind(now)
                .execute(&mut *conn).await?;
        });
    }
    Ok(Some(status))
}

/// An agreement as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgreementRow {
    pub service_id: i64,
    pub agreement_id: String,
    pub reference: String,
    pub description: String,
    pub user_identifier: Option<String>,
    pub status: String,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub card_expiry: Option<String>,
    pub card_type: Option<String>,
    pub created_at: i64,
    pub cancelled_at: Option<i64>,
    pub observed_at: i64,
}

const COLUMNS: &str = "service_id, agreement_id, reference, description, user_identifier, status, \
     card_brand, card_last4, card_expiry, card_type, created_at, cancelled_at, observed_at";

/// Agreement `agreement_id` of `service_id`, if paydesk holds it.
pub async fn get(
    db: &Db,
    service_id: i64,
    agreement_id: &str,
) -> StoreResult<Option<AgreementRow>> {
    let sql =
        format!("SELECT {COLUMNS} FROM agreements WHERE service_id = $1 AND agreement_id = $2");
    Ok(on_db!(db, pool => sqlx::query_as::<_, AgreementRow>(&sql)
        .bind(service_id).bind(agreement_id).fetch_optional(pool).await?))
}

/// Agreement `agreement_id` in any of `services` (the first by service id), if paydesk holds it.
pub async fn find_in(
    db: &Db,
    services: &[i64],
    agreement_id: &str,
) -> StoreResult<Option<AgreementRow>> {
    if services.is_empty() {
        return Ok(None);
    }
    let mut b = Builder::new(db.backend());
    let ids = b.ids(services);
    let id = b.text(agreement_id);
    let q = b.finish(format!(
        "SELECT {COLUMNS} FROM agreements WHERE service_id IN ({ids}) AND agreement_id = {id} \
          ORDER BY service_id LIMIT 1"
    ));
    Ok(
        on_db!(db, pool => bound!(sqlx::query_as::<_, AgreementRow>(&q.sql), &q.binds)
        .fetch_optional(pool).await?),
    )
}

/// An agreement's status history, oldest first: (status, when, source).
pub async fn events(
    db: &Db,
    service_id: i64,
    agreement_id: &str,
) -> StoreResult<Vec<(String, i64, String)>> {
    let sql = "SELECT status, occurred_at, source FROM agreement_events \
               WHERE service_id = $1 AND agreement_id = $2 ORDER BY occurred_at, id";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, (String, i64, String)>(sql)
        .bind(service_id).bind(agreement_id).fetch_all(pool).await?),
    )
}

/// Which agreements a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgreementFilter {
    /// Only these services (none: nothing).
    pub services: Vec<i64>,
    /// Matched whole, ignoring case.
    pub reference: Option<String>,
    pub status: Option<String>,
}

fn build(backend: Backend, f: &AgreementFilter, limit: i64, offset: i64) -> (Built, Built) {
    let clauses = |b: &mut Builder| {
        let mut c = Vec::new();
        if f.services.is_empty() {
            c.push("1 = 0".to_string());
        } else {
            c.push(format!("service_id IN ({})", b.ids(&f.services)));
        }
        if let Some(r) = &f.reference {
            // Each written as its index is: (service_id, reference COLLATE NOCASE) on SQLite
            // (whose lower() folds ASCII alone, as NOCASE does), (service_id, lower(reference))
            // on PostgreSQL.
            c.push(match b.backend() {
                Backend::Sqlite => format!("reference = {} COLLATE NOCASE", b.text(r)),
                Backend::Postgres => format!("lower(reference) = lower({})", b.text(r)),
            });
        }
        if let Some(s) = &f.status {
            c.push(format!("status = {}", b.text(s)));
        }
        c.join(" AND ")
    };
    let mut b = Builder::new(backend);
    let filter = clauses(&mut b);
    let (lim, off) = (b.int(limit), b.int(offset));
    let rows = b.finish(format!(
        "SELECT {COLUMNS} FROM agreements WHERE {filter} \
          ORDER BY created_at DESC, id DESC LIMIT {lim} OFFSET {off}"
    ));
    let mut b = Builder::new(backend);
    let filter = clauses(&mut b);
    let count = b.finish(format!("SELECT COUNT(*) FROM agreements WHERE {filter}"));
    (rows, count)
}

/// The statements `list` runs (the page, the count), for the bench's query plans.
pub fn list_statements(
    backend: Backend,
    f: &AgreementFilter,
    limit: i64,
    offset: i64,
) -> (Built, Built) {
    build(backend, f, limit, offset)
}

/// A page of the agreements `f` picks, newest first, and how many there are in all.
pub async fn list(
    db: &Db,
    f: &AgreementFilter,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<AgreementRow>, i64)> {
    let (rows, count) = build(db.backend(), f, limit, offset);
    Ok(on_db!(db, pool => {
        let r = bound!(sqlx::query_as::<_, AgreementRow>(&rows.sql), &rows.binds).fetch_all(pool).await?;
        let c = bound!(sqlx::query_scalar::<_, i64>(&count.sql), &count.binds).fetch_one(pool).await?;
        (r, c)
    }))
}

/// A request to cancel an agreement.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CancellationRow {
    pub id: i64,
    pub service_id: i64,
    pub agreement_id: String,
    pub requested_by: String,
    pub reason: String,
    pub state: String,
    pub outcome: Option<String>,
    pub requested_at: i64,
    pub finished_at: Option<i64>,
}

const CANCELLATION_COLUMNS: &str = "id, service_id, agreement_id, requested_by, reason, state, \
     outcome, requested_at, finished_at";

/// A new pending cancellation, unless one is pending already (then None).
pub async fn insert_cancellation(
    tx: &mut Tx,
    service_id: i64,
    agreement_id: &str,
    requested_by: &str,
    reason: &str,
    now: i64,
) -> StoreResult<Option<i64>> {
    let sql = "INSERT INTO agreement_cancellations (service_id, agreement_id, requested_by, reason, state, requested_at) \
               VALUES ($1, $2, $3, $4, 'pending', $5) \
               ON CONFLICT (service_id, agreement_id) WHERE state = 'pending' DO NOTHING RETURNING id";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql)
        .bind(service_id).bind(agreement_id).bind(requested_by).bind(reason).bind(now)
        .fetch_optional(&mut *conn).await?))
}

pub async fn cancellation(db: &Db, id: i64) -> StoreResult<Option<CancellationRow>> {
    let sql = format!("SELECT {CANCELLATION_COLUMNS} FROM agreement_cancellations WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, CancellationRow>(&sql).bind(id).fetch_optional(pool).await?),
    )
}

/// The latest cancellation asked for of an agreement.
pub async fn latest_cancellation(
    db: &Db,
    service_id: i64,
    agreement_id: &str,
) -> StoreResult<Option<CancellationRow>> {
    let sql = format!(
        "SELECT {CANCELLATION_COLUMNS} FROM agreement_cancellations \
          WHERE service_id = $1 AND agreement_id = $2 ORDER BY id DESC LIMIT 1"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, CancellationRow>(&sql)
        .bind(service_id).bind(agreement_id).fetch_optional(pool).await?),
    )
}

/// Close a pending cancellation as `state` with `outcome`; false when it was not pending.
pub async fn finish_cancellation(
    tx: &mut Tx,
    id: i64,
    state: &str,
    outcome: &str,
    now: i64,
) -> StoreResult<bool> {
    let sql = "UPDATE agreement_cancellations SET state = $2, outcome = $3, finished_at = $4 \
               WHERE id = $1 AND state = 'pending'";
    let n = on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(state).bind(outcome).bind(now)
        .execute(&mut *conn).await?.rows_affected());
    Ok(n == 1)
}

/// The status stored for an agreement, read in `tx` (a cancel decision).
pub async fn status_in(
    tx: &mut Tx,
    service_id: i64,
    agreement_id: &str,
) -> StoreResult<Option<String>> {
    let sql = "SELECT status FROM agreements WHERE service_id = $1 AND agreement_id = $2";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, String>(sql)
        .bind(service_id).bind(agreement_id).fetch_optional(&mut *conn).await?))
}

/// The platform answered a cancel with 204 but could not be read after: the agreement is
/// cancelled now (unless it had already ended).
pub async fn mark_cancelled(
    tx: &mut Tx,
    service_id: i64,
    agreement_id: &str,
    now: i64,
) -> StoreResult<()> {
    let sql = "UPDATE agreements SET status = 'cancelled', status_rank = 2, cancelled_at = $3, updated_at = $3 \
               WHERE service_id = $1 AND agreement_id = $2 AND status_rank < 2";
    let n = on_tx!(tx, conn => sqlx::query(sql).bind(service_id).bind(agreement_id).bind(now)
        .execute(&mut *conn).await?.rows_affected());
    if n == 1 {
        let events = "INSERT INTO agreement_events (service_id, agreement_id, status, occurred_at, source, recorded_at) \
                      VALUES ($1, $2, 'cancelled', $3, 'observed', $3) ON CONFLICT (service_id, agreement_id, status) DO NOTHING";
        on_tx!(tx, conn => {
            sqlx::query(events).bind(service_id).bind(agreement_id).bind(now)
                .execute(&mut *conn).await?;
        });
    }
    Ok(())
}

/// Note the agreement each of `links` (payment id, agreement id) was taken under.
pub async fn link_payments(
    tx: &mut Tx,
    service_id: i64,
    links: &[(&str, &str)],
) -> StoreResult<()> {
    let sql = "INSERT INTO agreement_payments (service_id, payment_id, agreement_id) VALUES ($1, $2, $3) \
               ON CONFLICT (service_id, payment_id) DO NOTHING";
    for (payment_id, agreement_id) in links {
        on_tx!(tx, conn => {
            sqlx::query(sql).bind(service_id).bind(*payment_id).bind(*agreement_id)
                .execute(&mut *conn).await?;
        });
    }
    Ok(())
}

/// The agreement payment `payment_id` was taken under, if any.
pub async fn of_payment(db: &Db, service_id: i64, payment_id: &str) -> StoreResult<Option<String>> {
    let sql =
        "SELECT agreement_id FROM agreement_payments WHERE service_id = $1 AND payment_id = $2";
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, String>(sql)
        .bind(service_id).bind(payment_id).fetch_optional(pool).await?))
}

/// A payment taken under an agreement, as its page lists it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgreementPaymentRow {
    pub payment_id: String,
    pub reference: Option<String>,
    pub amount: Option<i64>,
    pub status: Option<String>,
    pub created_at: Option<i64>,
}

/// The payments taken under an agreement that paydesk holds, newest first (at most `limit`).
pub async fn payments(
    db: &Db,
    service_id: i64,
    agreement_id: &str,
    limit: i64,
) -> StoreResult<Vec<AgreementPaymentRow>> {
    let sql = "SELECT p.payment_id, j.reference, j.amount, j.status, j.created_at FROM agreement_payments p \
               LEFT JOIN journeys j ON j.service_id = p.service_id AND j.payment_id = p.payment_id \
               WHERE p.service_id = $1 AND p.agreement_id = $2 \
               ORDER BY j.created_at DESC, p.payment_id LIMIT $3";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, AgreementPaymentRow>(sql)
        .bind(service_id).bind(agreement_id).bind(limit).fetch_all(pool).await?),
    )
}
