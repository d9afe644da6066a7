//! What subject access reads about one payer's journeys, and erasure requests
//! (`personal_data::access`, `personal_data::erasure`).

use super::{Db, StoreResult, Tx};

fn placeholders(from: usize, n: usize) -> String {
    (0..n)
        .map(|i| format!("${}", from + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A payment as the payer's bundle shows it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Payment {
    pub id: i64,
    pub service_id: i64,
    pub payment_id: String,
    pub created_at: i64,
    pub status: String,
    pub amount: i64,
    pub description: String,
    pub reference: String,
    pub email: Option<String>,
    pub cardholder_name: Option<String>,
    pub card_brand: Option<String>,
    pub last_digits: Option<String>,
    pub metadata: Option<String>,
    pub case_reference: Option<String>,
    pub redacted_at: Option<i64>,
}

pub async fn payments(db: &Db, ids: &[i64]) -> StoreResult<Vec<Payment>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, service_id, payment_id, created_at, status, amount, description, reference, email, \
         cardholder_name, card_brand, last_digits, metadata, case_reference, redacted_at \
         FROM journeys WHERE id IN ({}) ORDER BY created_at, id",
        placeholders(1, ids.len())
    );
    crate::on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, Payment>(&sql);
        for id in ids { q = q.bind(*id); }
        Ok(q.fetch_all(pool).await?)
    })
}

/// A refund asked for in paydesk.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Refund {
    pub id: i64,
    pub payment_id: String,
    pub amount: i64,
    pub reason: String,
    pub comment: Option<String>,
    pub case_reference: Option<String>,
    pub state: String,
    pub requested_at: i64,
}

pub async fn refunds(db: &Db, journey_ids: &[i64]) -> StoreResult<Vec<Refund>> {
    if journey_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, payment_id, amount, reason, comment, case_reference, state, requested_at \
         FROM refund_requests WHERE journey_id IN ({}) ORDER BY requested_at, id",
        placeholders(1, journey_ids.len())
    );
    crate::on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, Refund>(&sql);
        for id in journey_ids { q = q.bind(*id); }
        Ok(q.fetch_all(pool).await?)
    })
}

/// Someone in the organisation who viewed one of the payments.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Viewing {
    pub occurred_at: i64,
    pub actor_label: String,
    pub target: String,
    pub details: String,
}

/// Every `sensitive_read` of these payments (`payment:<id>` targets), oldest first.
pub async fn viewings(db: &Db, payment_ids: &[String]) -> StoreResult<Vec<Viewing>> {
    if payment_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT occurred_at, actor_label, target, details FROM audit_log \
         WHERE action = 'sensitive_read' AND target IN ({}) ORDER BY seq",
        placeholders(1, payment_ids.len())
    );
    crate::on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, Viewing>(&sql);
        for p in payment_ids { q = q.bind(format!("payment:{p}")); }
        Ok(q.fetch_all(pool).await?)
    })
}

/// A mail paydesk sent (or queued) to the payer.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct MailSent {
    pub created_at: i64,
    pub state: String,
    pub payload: String,
}

pub async fn mail_to(db: &Db, email_key: &str) -> StoreResult<Vec<MailSent>> {
    let to = match db.backend() {
        super::Backend::Sqlite => "lower(json_extract(payload, '$.to'))",
        super::Backend::Postgres => "lower(payload::jsonb ->> 'to')",
    };
    let sql = format!(
        "SELECT created_at, state, payload FROM jobs WHERE kind = 'mail_send' AND {to} = $1 ORDER BY id"
    );
    Ok(
        crate::on_db!(db, pool => sqlx::query_as::<_, MailSent>(&sql)
        .bind(email_key).fetch_all(pool).await?),
    )
}

/// An erasure request.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Erasure {
    pub id: i64,
    pub requested_by: i64,
    pub requested_at: i64,
    pub service_ids: String,
    pub email_key: Option<String>,
    pub last4: Option<String>,
    pub name_key: Option<String>,
    pub reason: String,
    pub case_reference: String,
    pub state: String,
    pub decided_by: Option<i64>,
    pub decided_at: Option<i64>,
    pub outcome: Option<String>,
}

const ERASURE: &str =
    "id, requested_by, requested_at, service_ids, email_key, last4, name_key, reason, \
                       case_reference, state, decided_by, decided_at, outcome";

pub struct NewErasure<'a> {
    pub requested_by: i64,
    pub service_ids: &'a str,
    pub email_key: Option<&'a str>,
    pub last4: Option<&'a str>,
    pub name_key: Option<&'a str>,
    pub reason: &'a str,
    pub case_reference: &'a str,
}

pub async fn insert_erasure(tx: &mut Tx, e: &NewErasure<'_>, now: i64) -> StoreResult<i64> {
    Ok(crate::on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "INSERT INTO erasure_requests (requested_by, requested_at, service_ids, email_key, last4, name_key, \
         reason, case_reference, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'awaiting_approval') RETURNING id")
        .bind(e.requested_by).bind(now).bind(e.service_ids).bind(e.email_key).bind(e.last4)
        .bind(e.name_key).bind(e.reason).bind(e.case_reference)
        .fetch_one(conn).await?))
}

pub async fn erasure(db: &Db, id: i64) -> StoreResult<Option<Erasure>> {
    let sql = format!("SELECT {ERASURE} FROM erasure_requests WHERE id = $1");
    Ok(
        crate::on_db!(db, pool => sqlx::query_as::<_, Erasure>(&sql).bind(id).fetch_optional(pool).await?),
    )
}

/// Requests waiting for a second person, oldest first.
pub async fn erasures_waiting(db: &Db) -> StoreResult<Vec<Erasure>> {
    let sql = format!(
        "SELECT {ERASURE} FROM erasure_requests WHERE state = 'awaiting_approval' ORDER BY requested_at, id"
    );
    Ok(crate::on_db!(db, pool => sqlx::query_as::<_, Erasure>(&sql).fetch_all(pool).await?))
}

/// Decide a waiting request (once): who the payer was is cleared. False when it was not
/// waiting any more.
pub async fn decide_erasure(
    tx: &mut Tx,
    id: i64,
    state: &str,
    by: i64,
    outcome: &str,
    now: i64,
) -> StoreResult<bool> {
    let n = crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE erasure_requests SET state = $2, decided_by = $3, decided_at = $4, outcome = $5, \
         email_key = NULL, last4 = NULL, name_key = NULL WHERE id = $1 AND state = 'awaiting_approval'")
        .bind(id).bind(state).bind(by).bind(now).bind(outcome)
        .execute(conn).await?.rows_affected());
    Ok(n == 1)
}

/// Erase the personal values kept beside the audit chain for entries about `target`.
pub async fn erase_audit_values(tx: &mut Tx, target: &str, now: i64) -> StoreResult<u64> {
    Ok(crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE audit_personal SET value = NULL, salt = NULL, erased_at = $2 \
         WHERE target = $1 AND erased_at IS NULL")
        .bind(target).bind(now).execute(conn).await?.rows_affected()))
}

/// A dispute of one of the payer's payments.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Dispute {
    pub service_id: i64,
    pub dispute_id: String,
    pub payment_id: String,
    pub amount: i64,
    pub reason: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub evidence_due_at: Option<i64>,
}

pub async fn disputes(db: &Db, journey_ids: &[i64]) -> StoreResult<Vec<Dispute>> {
    if journey_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT d.service_id, d.dispute_id, d.payment_id, d.amount, d.reason, d.status, d.created_at, \
         d.evidence_due_at FROM disputes d JOIN journeys j \
         ON j.service_id = d.service_id AND j.payment_id = d.payment_id \
         WHERE j.id IN ({}) ORDER BY d.created_at, d.id",
        placeholders(1, journey_ids.len())
    );
    crate::on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, Dispute>(&sql);
        for id in journey_ids { q = q.bind(*id); }
        Ok(q.fetch_all(pool).await?)
    })
}

/// A recurring agreement one of the payer's payments was taken under.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Agreement {
    pub service_id: i64,
    pub agreement_id: String,
    pub reference: String,
    pub description: String,
    pub user_identifier: Option<String>,
    pub status: String,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub created_at: i64,
    pub cancelled_at: Option<i64>,
}

pub async fn agreements(db: &Db, journey_ids: &[i64]) -> StoreResult<Vec<Agreement>> {
    if journey_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT a.service_id, a.agreement_id, a.reference, a.description, a.user_identifier, a.status, \
         a.card_brand, a.card_last4, a.created_at, a.cancelled_at FROM agreements a \
         WHERE EXISTS (SELECT 1 FROM agreement_payments ap JOIN journeys j \
           ON j.service_id = ap.service_id AND j.payment_id = ap.payment_id \
           WHERE ap.service_id = a.service_id AND ap.agreement_id = a.agreement_id AND j.id IN ({})) \
         ORDER BY a.created_at, a.id",
        placeholders(1, journey_ids.len())
    );
    crate::on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, Agreement>(&sql);
        for id in journey_ids { q = q.bind(*id); }
        Ok(q.fetch_all(pool).await?)
    })
}

/// Cancellations asked for of an agreement: `(reason, state, requested_at)`.
pub async fn cancellations(
    db: &Db,
    service_id: i64,
    agreement_id: &str,
) -> StoreResult<Vec<(String, String, i64)>> {
    let sql = "SELECT reason, state, requested_at FROM agreement_cancellations \
               WHERE service_id = $1 AND agreement_id = $2 ORDER BY requested_at, id";
    Ok(
        crate::on_db!(db, pool => sqlx::query_as::<_, (String, String, i64)>(sql)
        .bind(service_id).bind(agreement_id).fetch_all(pool).await?),
    )
}
