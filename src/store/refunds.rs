//! SQL for refund requests and services' refund settings. Every move of a request's state is
//! one conditional UPDATE naming the state it moves from, so that of any number of racing
//! callers exactly one moves it (the others see 0 rows and learn why from the row).

use super::{Db, StoreResult, Tx};
use crate::{on_db, on_tx};

/// A service's refund settings.
#[derive(Debug, Clone, PartialEq, Default, sqlx::FromRow)]
pub struct RefundSettings {
    pub refund_approval_threshold: Option<i64>,
    pub refund_case_reference_required: bool,
    pub refund_email_enabled: bool,
    pub refund_email_subject: Option<String>,
    pub refund_email_text: Option<String>,
}

pub async fn settings(db: &Db, service_id: i64) -> StoreResult<RefundSettings> {
    let sql =
        "SELECT refund_approval_threshold, refund_case_reference_required, refund_email_enabled, \
               refund_email_subject, refund_email_text FROM services WHERE id = $1";
    Ok(on_db!(db, pool => sqlx::query_as::<_, RefundSettings>(sql).bind(service_id).fetch_optional(pool).await?)
        .unwrap_or_default())
}

pub async fn set_settings(
    tx: &mut Tx,
    service_id: i64,
    s: &RefundSettings,
    now: i64,
) -> StoreResult<()> {
    let sql = "UPDATE services SET refund_approval_threshold = $2, refund_case_reference_required = $3, \
               refund_email_enabled = $4, refund_email_subject = $5, refund_email_text = $6, updated_at = $7 WHERE id = $1";
    on_tx!(tx, conn => {
        sqlx::query(sql).bind(service_id).bind(s.refund_approval_threshold)
            .bind(s.refund_case_reference_required).bind(s.refund_email_enabled)
            .bind(&s.refund_email_subject).bind(&s.refund_email_text).bind(now)
            .execute(conn).await?;
    });
    Ok(())
}

/// A refund request as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RequestRow {
    pub id: i64,
    pub service_id: i64,
    pub journey_id: i64,
    pub payment_id: String,
    pub amount: i64,
    pub reason: String,
    pub comment: Option<String>,
    pub case_reference: Option<String>,
    pub state: String,
    pub requested_by: i64,
    pub requested_at: i64,
    pub approval_required: bool,
    pub decided_by: Option<i64>,
    pub decided_at: Option<i64>,
    pub decision_comment: Option<String>,
    pub expires_at: i64,
    pub submit_started_at: Option<i64>,
    pub available_before: Option<i64>,
    pub platform_refund_id: Option<String>,
    pub submitted_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub failure: Option<String>,
    /// The bulk refund batch whose row made this request, if one did.
    pub batch_id: Option<i64>,
}

const COLUMNS: &str = "id, service_id, journey_id, payment_id, amount, reason, comment, case_reference, state, \
    requested_by, requested_at, approval_required, decided_by, decided_at, decision_comment, expires_at, \
    submit_started_at, available_before, platform_refund_id, submitted_at, finished_at, failure, batch_id";

/// A new request.
pub struct NewRequest<'a> {
    pub service_id: i64,
    pub journey_id: i64,
    pub payment_id: &'a str,
    pub amount: i64,
    pub reason: &'a str,
    pub comment: Option<&'a str>,
    pub case_reference: Option<&'a str>,
    pub state: &'a str,
    pub form_key: &'a str,
    pub requested_by: i64,
    pub approval_required: bool,
    pub expires_at: i64,
}

/// Insert a request; None when this form was already submitted (its key is taken).
pub async fn insert(tx: &mut Tx, r: &NewRequest<'_>, now: i64) -> StoreResult<Option<i64>> {
    let sql = "INSERT INTO refund_requests (service_id, journey_id, payment_id, amount, reason, comment, case_reference, \
               state, form_key, requested_by, requested_at, approval_required, expires_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $11) \
               ON CONFLICT (service_id, form_key) DO NOTHING RETURNING id";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql)
        .bind(r.service_id).bind(r.journey_id).bind(r.payment_id).bind(r.amount).bind(r.reason)
        .bind(r.comment).bind(r.case_reference).bind(r.state).bind(r.form_key).bind(r.requested_by)
        .bind(now).bind(r.approval_required).bind(r.expires_at)
        .fetch_optional(conn).await?))
}

/// The request a form key made.
pub async fn by_form_key(
    tx: &mut Tx,
    service_id: i64,
    form_key: &str,
) -> StoreResult<Option<RequestRow>> {
    let sql =
        format!("SELECT {COLUMNS} FROM refund_requests WHERE service_id = $1 AND form_key = $2");
    Ok(
        on_tx!(tx, conn => sqlx::query_as::<_, RequestRow>(&sql).bind(service_id).bind(form_key).fetch_optional(conn).await?),
    )
}

/// The request a form key made, read outside a transaction (the pages after the form).
pub async fn by_form_key_read(
    db: &Db,
    service_id: i64,
    form_key: &str,
) -> StoreResult<Option<RequestRow>> {
    let sql =
        format!("SELECT {COLUMNS} FROM refund_requests WHERE service_id = $1 AND form_key = $2");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, RequestRow>(&sql).bind(service_id).bind(form_key).fetch_optional(pool).await?),
    )
}

pub async fn by_id(db: &Db, id: i64) -> StoreResult<Option<RequestRow>> {
    let sql = format!("SELECT {COLUMNS} FROM refund_requests WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, RequestRow>(&sql).bind(id).fetch_optional(pool).await?),
    )
}

/// The same, inside a transaction (to read what the transaction just changed).
pub async fn by_id_in(tx: &mut Tx, id: i64) -> StoreResult<Option<RequestRow>> {
    let sql = format!("SELECT {COLUMNS} FROM refund_requests WHERE id = $1");
    Ok(
        on_tx!(tx, conn => sqlx::query_as::<_, RequestRow>(&sql).bind(id).fetch_optional(conn).await?),
    )
}

pub async fn for_journey(db: &Db, journey_id: i64) -> StoreResult<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM refund_requests WHERE journey_id = $1 ORDER BY requested_at DESC, id DESC"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, RequestRow>(&sql).bind(journey_id).fetch_all(pool).await?),
    )
}

/// Requests in `states` within `services`, oldest first.
pub async fn in_states(
    db: &Db,
    services: &[i64],
    states: &[&str],
    limit: i64,
) -> StoreResult<Vec<RequestRow>> {
    if services.is_empty() || states.is_empty() {
        return Ok(Vec::new());
    }
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let s: Vec<String> = services.iter().map(|_| next()).collect();
    let st: Vec<String> = states.iter().map(|_| next()).collect();
    let lim = next();
    let sql = format!(
        "SELECT {COLUMNS} FROM refund_requests WHERE service_id IN ({}) AND state IN ({}) ORDER BY requested_at, id LIMIT {lim}",
        s.join(", "),
        st.join(", ")
    );
    Ok(on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, RequestRow>(&sql);
        for id in services {
            q = q.bind(*id);
        }
        for state in states {
            q = q.bind(*state);
        }
        q.bind(limit).fetch_all(pool).await?
    }))
}

/// The most recently finished requests in `state` within `services`, newest first.
pub async fn latest_in_state(
    db: &Db,
    services: &[i64],
    state: &str,
    limit: i64,
) -> StoreResult<Vec<RequestRow>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (0..services.len()).map(|i| format!("${}", i + 2)).collect();
    let lim = services.len() + 2;
    let sql = format!(
        "SELECT {COLUMNS} FROM refund_requests WHERE state = $1 AND service_id IN ({}) \
         ORDER BY COALESCE(finished_at, requested_at) DESC, id DESC LIMIT ${lim}",
        list.join(", ")
    );
    Ok(on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, RequestRow>(&sql).bind(state);
        for id in services {
            q = q.bind(*id);
        }
        q.bind(limit).fetch_all(pool).await?
    }))
}

/// A refund that failed, from either side: a request paydesk made that ended `failed`, or a
/// platform refund in `error` that no paydesk request made (asked for elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FailedRow {
    /// The paydesk request, when paydesk made it.
    pub request_id: Option<i64>,
    pub service_id: i64,
    pub payment_id: String,
    pub amount: i64,
    /// When it was asked for (the request) or created (at the platform): UTC microseconds.
    pub asked_at: i64,
    pub requested_by: Option<i64>,
    pub failure: Option<String>,
    /// The payment's reference, when paydesk holds the journey.
    pub reference: Option<String>,
    /// The bulk refund batch whose row asked for it.
    pub batch_id: Option<i64>,
}

/// The failed refunds of `services` asked for in `[from, to)`, newest first (at most
/// `limit`), and how many there are in all. One definition for every page that counts them.
pub async fn failed(
    db: &Db,
    services: &[i64],
    from: i64,
    to: i64,
    limit: i64,
) -> StoreResult<(Vec<FailedRow>, i64)> {
    if services.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let list: Vec<String> = (0..services.len()).map(|i| format!("${}", i + 3)).collect();
    let list = list.join(", ");
    let lim = services.len() + 3;
    let union = format!(
        "SELECT r.id AS request_id, r.service_id, r.payment_id, r.amount, r.requested_at AS asked_at, \
                r.requested_by AS requested_by, r.failure AS failure, r.batch_id AS batch_id \
           FROM refund_requests r \
          WHERE r.state = 'failed' AND r.service_id IN ({list}) AND r.requested_at >= $1 AND r.requested_at < $2 \
         UNION ALL \
         SELECT NULL, p.service_id, p.payment_id, p.amount, p.created_at, NULL, NULL, NULL \
           FROM platform_refunds p \
          WHERE p.status = 'error' AND p.service_id IN ({list}) AND p.created_at >= $1 AND p.created_at < $2 \
            AND NOT EXISTS (SELECT 1 FROM refund_requests q \
                             WHERE q.service_id = p.service_id AND q.platform_refund_id = p.refund_id)"
    );
    let rows_sql = format!(
        "SELECT f.request_id, f.service_id, f.payment_id, f.amount, f.asked_at, f.requested_by, f.failure, \
                j.reference, f.batch_id FROM ({union}) f \
           LEFT JOIN journeys j ON j.service_id = f.service_id AND j.payment_id = f.payment_id \
         ORDER BY f.asked_at DESC, f.payment_id LIMIT ${lim}"
    );
    let count_sql = format!("SELECT COUNT(*) FROM ({union}) f");
    Ok(on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, FailedRow>(&rows_sql).bind(from).bind(to);
        let mut c = sqlx::query_scalar::<_, i64>(&count_sql).bind(from).bind(to);
        for id in services {
            q = q.bind(*id);
            c = c.bind(*id);
        }
        let rows = q.bind(limit).fetch_all(pool).await?;
        let count = c.fetch_one(pool).await?;
        (rows, count)
    }))
}

/// What a journey's page shows of refunds, read without locking anything: the platform's
/// refund status, its available amount, and what open requests hold back.
pub async fn availability(
    db: &Db,
    journey_id: i64,
) -> StoreResult<Option<(Option<String>, Option<i64>, i64)>> {
    let sql = "SELECT j.refund_status, j.refund_available, \
               (SELECT CAST(COALESCE(SUM(r.amount), 0) AS BIGINT) FROM refund_requests r \
                WHERE r.journey_id = j.id AND r.state IN ('awaiting_approval', 'approved', 'submitting')) \
               FROM journeys j WHERE j.id = $1";
    Ok(on_db!(db, pool => sqlx::query_as(sql).bind(journey_id).fetch_optional(pool).await?))
}

/// Lock a journey for a refund decision (PostgreSQL; SQLite's write transaction already
/// holds every row) and read what the platform last said could be refunded:
/// (refund_status, refund_available).
pub async fn lock_journey(
    tx: &mut Tx,
    journey_id: i64,
) -> StoreResult<Option<(Option<String>, Option<i64>)>> {
    let sql = match tx.backend() {
        super::Backend::Sqlite => {
            "SELECT refund_status, refund_available FROM journeys WHERE id = $1"
        }
        super::Backend::Postgres => {
            "SELECT refund_status, refund_available FROM journeys WHERE id = $1 FOR UPDATE"
        }
    };
    Ok(on_tx!(tx, conn => sqlx::query_as(sql).bind(journey_id).fetch_optional(conn).await?))
}

/// What a journey's open requests hold back: those not yet known to the platform.
pub async fn held(tx: &mut Tx, journey_id: i64) -> StoreResult<i64> {
    let sql = "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refund_requests \
               WHERE journey_id = $1 AND state IN ('awaiting_approval', 'approved', 'submitting')";
    Ok(
        on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql).bind(journey_id).fetch_one(conn).await?),
    )
}

/// Approve: only an undecided, unexpired request for exactly `amount`, by someone else.
pub async fn approve(
    tx: &mut Tx,
    id: i64,
    approver: i64,
    amount: i64,
    comment: Option<&str>,
    now: i64,
    submit_by: i64,
) -> StoreResult<bool> {
    let sql = "UPDATE refund_requests SET state = 'approved', decided_by = $2, decided_at = $5, decision_comment = $4, \
               expires_at = $6, updated_at = $5 \
               WHERE id = $1 AND state = 'awaiting_approval' AND requested_by <> $2 AND amount = $3 AND expires_at > $5";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(approver).bind(amount).bind(comment).bind(now).bind(submit_by)
        .execute(conn).await?.rows_affected() == 1),
    )
}

pub async fn reject(
    tx: &mut Tx,
    id: i64,
    decider: i64,
    comment: &str,
    now: i64,
) -> StoreResult<bool> {
    let sql = "UPDATE refund_requests SET state = 'rejected', decided_by = $2, decided_at = $4, decision_comment = $3, \
               finished_at = $4, updated_at = $4 WHERE id = $1 AND state = 'awaiting_approval'";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(decider).bind(comment).bind(now)
        .execute(conn).await?.rows_affected() == 1),
    )
}

/// Approved -> submitting: the one caller that gets `true` may call the platform.
pub async fn start_submit(tx: &mut Tx, id: i64, now: i64) -> StoreResult<bool> {
    let sql =
        "UPDATE refund_requests SET state = 'submitting', submit_started_at = $2, updated_at = $2 \
               WHERE id = $1 AND state = 'approved'";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(now).execute(conn).await?.rows_affected() == 1),
    )
}

/// Take over a submission whose attempt started before `stale_before` (its worker died or
/// gave up): the one caller that gets `true` may look for its refund and send it again.
pub async fn retake_submit(tx: &mut Tx, id: i64, now: i64, stale_before: i64) -> StoreResult<bool> {
    let sql = "UPDATE refund_requests SET submit_started_at = $2, updated_at = $2 \
               WHERE id = $1 AND state = 'submitting' AND submit_started_at < $3";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(now).bind(stale_before).execute(conn).await?.rows_affected() == 1),
    )
}

/// Submitting -> approved, for the attempt that started at `started` only, when the platform
/// certainly did not receive the refund.
pub async fn release_submit(db: &Db, id: i64, started: i64, now: i64) -> StoreResult<bool> {
    let sql = "UPDATE refund_requests SET state = 'approved', submit_started_at = NULL, available_before = NULL, \
               updated_at = $3 WHERE id = $1 AND state = 'submitting' AND submit_started_at = $2";
    Ok(
        on_db!(db, pool => sqlx::query(sql).bind(id).bind(started).bind(now).execute(pool).await?.rows_affected() == 1),
    )
}

/// Note the platform's amount_available read just before posting.
pub async fn note_available(db: &Db, id: i64, available: i64, now: i64) -> StoreResult<()> {
    let sql = "UPDATE refund_requests SET available_before = $2, updated_at = $3 WHERE id = $1 AND state = 'submitting'";
    on_db!(db, pool => { sqlx::query(sql).bind(id).bind(available).bind(now).execute(pool).await?; });
    Ok(())
}

/// Submitting -> submitted, with the platform's refund id.
pub async fn mark_submitted(tx: &mut Tx, id: i64, refund_id: &str, now: i64) -> StoreResult<bool> {
    let sql = "UPDATE refund_requests SET state = 'submitted', platform_refund_id = $2, submitted_at = $3, updated_at = $3 \
               WHERE id = $1 AND state = 'submitting'";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(refund_id).bind(now).execute(conn).await?.rows_affected() == 1),
    )
}

/// Submitting or submitted -> failed.
pub async fn mark_failed(tx: &mut Tx, id: i64, failure: &str, now: i64) -> StoreResult<bool> {
    let sql = "UPDATE refund_requests SET state = 'failed', failure = $2, finished_at = $3, updated_at = $3 \
               WHERE id = $1 AND state IN ('submitting', 'submitted')";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(failure).bind(now).execute(conn).await?.rows_affected() == 1),
    )
}

/// Submitted -> succeeded.
pub async fn mark_succeeded(tx: &mut Tx, id: i64, now: i64) -> StoreResult<bool> {
    let sql = "UPDATE refund_requests SET state = 'succeeded', finished_at = $2, updated_at = $2 \
               WHERE id = $1 AND state = 'submitted'";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(now).execute(conn).await?.rows_affected() == 1),
    )
}

/// Requests undecided (or approved but never submitted) past their time: expired. Returns
/// their ids.
pub async fn expire_due(tx: &mut Tx, now: i64) -> StoreResult<Vec<i64>> {
    let sql = "UPDATE refund_requests SET state = 'expired', finished_at = $1, updated_at = $1 \
               WHERE state IN ('awaiting_approval', 'approved') AND expires_at <= $1 RETURNING id";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql).bind(now).fetch_all(conn).await?))
}

/// Platform refund ids already matched to a request of this payment.
pub async fn claimed_refund_ids(
    db: &Db,
    service_id: i64,
    payment_id: &str,
) -> StoreResult<Vec<String>> {
    let sql =
        "SELECT platform_refund_id FROM refund_requests WHERE service_id = $1 AND payment_id = $2 \
               AND platform_refund_id IS NOT NULL";
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, String>(sql).bind(service_id).bind(payment_id).fetch_all(pool).await?),
    )
}

/// Put a journey in "needs attention" with a reason staff can read.
pub async fn flag_attention(
    tx: &mut Tx,
    journey_id: i64,
    reason: &str,
    now: i64,
) -> StoreResult<()> {
    let sql = "UPDATE journeys SET needs_attention = TRUE, attention_reason = $2, updated_at = $3 WHERE id = $1";
    on_tx!(tx, conn => { sqlx::query(sql).bind(journey_id).bind(reason).bind(now).execute(conn).await?; });
    Ok(())
}

/// The payer's email on a journey.
pub async fn payer_email(
    db: &Db,
    journey_id: i64,
) -> StoreResult<Option<(Option<String>, String)>> {
    let sql = "SELECT email, reference FROM journeys WHERE id = $1";
    Ok(on_db!(db, pool => sqlx::query_as(sql).bind(journey_id).fetch_optional(pool).await?))
}

/// Requests of a payment that the platform holds but has not settled yet.
pub async fn submitted_for_payment(
    tx: &mut Tx,
    service_id: i64,
    payment_id: &str,
) -> StoreResult<Vec<i64>> {
    let sql = "SELECT id FROM refund_requests WHERE service_id = $1 AND payment_id = $2 AND state = 'submitted'";
    Ok(
        on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql).bind(service_id).bind(payment_id).fetch_all(conn).await?),
    )
}
