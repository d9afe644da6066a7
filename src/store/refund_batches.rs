//! SQL for bulk refund batches and their rows. Each move of a batch's state is one
//! conditional UPDATE naming the state it moves from (and, for approval, the file's hash the
//! approver saw), so of racing callers exactly one moves it.

use super::{Db, StoreResult, Tx};
use crate::{on_db, on_tx};

/// A batch as stored (without its file).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BatchRow {
    pub id: i64,
    pub file_name: String,
    pub file_hash: String,
    pub row_count: i64,
    pub ready_count: i64,
    pub refused_count: i64,
    pub total_amount: i64,
    pub approval_rows: i64,
    pub needs_approval: bool,
    pub leave_out_refused: bool,
    pub state: String,
    pub uploaded_by: i64,
    pub uploaded_at: i64,
    pub approved_by: Option<i64>,
    pub approved_at: Option<i64>,
    pub sending_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The service of a batch sent through the API (its token's): only that service's
    /// tokens see it there.
    pub service_id: Option<i64>,
    pub api_token_id: Option<i64>,
    pub cancelled_by: Option<i64>,
    pub cancelled_at: Option<i64>,
}

const BATCH_COLUMNS: &str = "id, file_name, file_hash, row_count, ready_count, refused_count, total_amount, \
    approval_rows, needs_approval, leave_out_refused, state, uploaded_by, uploaded_at, approved_by, approved_at, \
    sending_at, finished_at, service_id, api_token_id, cancelled_by, cancelled_at";

/// The message of a row that was still waiting when its batch was cancelled (the progress
/// counts such rows as cancelled, not failed).
pub const CANCELLED_PREFIX: &str = "Not sent: the batch was cancelled";

/// A new batch.
pub struct NewBatch<'a> {
    pub file_name: &'a str,
    pub file_bytes: &'a [u8],
    pub file_hash: &'a str,
    pub row_count: i64,
    pub ready_count: i64,
    pub refused_count: i64,
    pub total_amount: i64,
    pub approval_rows: i64,
    pub needs_approval: bool,
    pub uploaded_by: i64,
    /// Set for a batch sent through the API: the token's service and the token.
    pub service_id: Option<i64>,
    pub api_token_id: Option<i64>,
}

/// A batch's row as stored, with its request's state once it has one.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RowRow {
    pub batch_id: i64,
    pub line: i64,
    pub input: String,
    pub ready: bool,
    pub refusal: Option<String>,
    pub message: String,
    pub service_id: Option<i64>,
    pub journey_id: Option<i64>,
    pub payment_id: Option<String>,
    pub amount: Option<i64>,
    pub reason: Option<String>,
    pub comment: Option<String>,
    pub case_reference: Option<String>,
    pub needs_approval: bool,
    pub send_state: String,
    pub request_id: Option<i64>,
    pub request_state: Option<String>,
    pub request_failure: Option<String>,
}

const ROW_COLUMNS: &str = "b.batch_id, b.line, b.input, b.ready, b.refusal, b.message, b.service_id, b.journey_id, \
    b.payment_id, b.amount, b.reason, b.comment, b.case_reference, b.needs_approval, b.send_state, b.request_id, \
    r.state AS request_state, r.failure AS request_failure";

/// A row to store.
pub struct NewRow<'a> {
    pub line: i64,
    pub input: String,
    pub ready: bool,
    pub refusal: Option<&'static str>,
    pub message: &'a str,
    pub service_id: Option<i64>,
    pub journey_id: Option<i64>,
    pub payment_id: Option<&'a str>,
    pub amount: Option<i64>,
    pub reason: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub case_reference: Option<&'a str>,
    pub needs_approval: bool,
}

pub async fn insert(tx: &mut Tx, b: &NewBatch<'_>, now: i64) -> StoreResult<i64> {
    let sql = "INSERT INTO refund_batches (file_name, file_bytes, file_hash, row_count, ready_count, refused_count, \
               total_amount, approval_rows, needs_approval, state, uploaded_by, uploaded_at, updated_at, service_id, api_token_id) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'checked', $10, $11, $11, $12, $13) RETURNING id";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql)
        .bind(b.file_name).bind(b.file_bytes).bind(b.file_hash).bind(b.row_count).bind(b.ready_count)
        .bind(b.refused_count).bind(b.total_amount).bind(b.approval_rows).bind(b.needs_approval)
        .bind(b.uploaded_by).bind(now).bind(b.service_id).bind(b.api_token_id)
        .fetch_one(conn).await?))
}

/// Store a batch's rows, many to a statement.
pub async fn insert_rows(tx: &mut Tx, batch_id: i64, rows: &[NewRow<'_>]) -> StoreResult<()> {
    const PER: usize = 15;
    for chunk in rows.chunks(150) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = i * PER;
                let p: Vec<String> = (1..=PER).map(|k| format!("${}", n + k)).collect();
                format!("({})", p.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO refund_batch_rows (batch_id, line, input, ready, refusal, message, service_id, journey_id, payment_id, \
             amount, reason, comment, case_reference, needs_approval, send_state) VALUES {}",
            values.join(", ")
        );
        on_tx!(tx, conn => {
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q.bind(batch_id).bind(r.line).bind(&r.input).bind(r.ready).bind(r.refusal).bind(r.message)
                    .bind(r.service_id).bind(r.journey_id).bind(r.payment_id).bind(r.amount)
                    .bind(r.reason).bind(r.comment).bind(r.case_reference).bind(r.needs_approval)
                    .bind(if r.ready { "waiting" } else { "left_out" });
            }
            q.execute(conn).await?;
        });
    }
    Ok(())
}

pub async fn by_id(db: &Db, id: i64) -> StoreResult<Option<BatchRow>> {
    let sql = format!("SELECT {BATCH_COLUMNS} FROM refund_batches WHERE id = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, BatchRow>(&sql).bind(id).fetch_optional(pool).await?))
}

pub async fn by_id_in(tx: &mut Tx, id: i64) -> StoreResult<Option<BatchRow>> {
    let sql = format!("SELECT {BATCH_COLUMNS} FROM refund_batches WHERE id = $1");
    Ok(on_tx!(tx, conn => sqlx::query_as::<_, BatchRow>(&sql).bind(id).fetch_optional(conn).await?))
}

/// The most recent batches, newest first.
pub async fn recent(db: &Db, limit: i64) -> StoreResult<Vec<BatchRow>> {
    let sql = format!("SELECT {BATCH_COLUMNS} FROM refund_batches ORDER BY id DESC LIMIT $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, BatchRow>(&sql).bind(limit).fetch_all(pool).await?))
}

/// The file as uploaded.
pub async fn file(db: &Db, id: i64) -> StoreResult<Option<Vec<u8>>> {
    let sql = "SELECT file_bytes FROM refund_batches WHERE id = $1";
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, Vec<u8>>(sql).bind(id).fetch_optional(pool).await?),
    )
}

/// The services a batch's rows refund in.
pub async fn services(db: &Db, id: i64) -> StoreResult<Vec<i64>> {
    let sql = "SELECT DISTINCT service_id FROM refund_batch_rows WHERE batch_id = $1 AND service_id IS NOT NULL";
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_all(pool).await?))
}

/// Rows of a batch in file order, from `after` (a line), at most `limit`.
pub async fn rows(db: &Db, id: i64, after: i64, limit: i64) -> StoreResult<Vec<RowRow>> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM refund_batch_rows b LEFT JOIN refund_requests r ON r.id = b.request_id \
         WHERE b.batch_id = $1 AND b.line > $2 ORDER BY b.line LIMIT $3"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, RowRow>(&sql).bind(id).bind(after).bind(limit).fetch_all(pool).await?),
    )
}

/// The refused rows of a batch, in file order, at most `limit`.
pub async fn refused_rows(db: &Db, id: i64, limit: i64) -> StoreResult<Vec<RowRow>> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM refund_batch_rows b LEFT JOIN refund_requests r ON r.id = b.request_id \
         WHERE b.batch_id = $1 AND b.ready = FALSE ORDER BY b.line LIMIT $2"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, RowRow>(&sql).bind(id).bind(limit).fetch_all(pool).await?),
    )
}

/// The next rows waiting to become requests.
pub async fn waiting(db: &Db, id: i64, limit: i64) -> StoreResult<Vec<RowRow>> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM refund_batch_rows b LEFT JOIN refund_requests r ON r.id = b.request_id \
         WHERE b.batch_id = $1 AND b.send_state = 'waiting' ORDER BY b.line LIMIT $2"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, RowRow>(&sql).bind(id).bind(limit).fetch_all(pool).await?),
    )
}

/// How a batch's rows stand: (send_state or the request's state, count); a row still
/// waiting when its batch was cancelled counts as 'cancelled'.
pub async fn progress(db: &Db, id: i64) -> StoreResult<Vec<(String, i64)>> {
    let sql = "SELECT COALESCE(r.state, CASE WHEN b.send_state = 'not_sent' AND b.message LIKE $2 \
               THEN 'cancelled' ELSE b.send_state END) AS s, COUNT(*) FROM refund_batch_rows b \
               LEFT JOIN refund_requests r ON r.id = b.request_id WHERE b.batch_id = $1 GROUP BY 1";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, (String, i64)>(sql).bind(id)
        .bind(format!("{CANCELLED_PREFIX}%")).fetch_all(pool).await?),
    )
}

/// Cancel a batch that has sent nothing yet or is paused, keeping who and when.
pub async fn cancel(tx: &mut Tx, id: i64, by: i64, now: i64) -> StoreResult<bool> {
    let sql = "UPDATE refund_batches SET state = 'cancelled', cancelled_by = $2, cancelled_at = $3, \
               finished_at = $3, updated_at = $3 WHERE id = $1 AND state IN ('checked', 'awaiting_approval', 'paused')";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(by).bind(now)
        .execute(conn).await?.rows_affected())
            == 1,
    )
}

/// Every row of a batch still waiting becomes not sent, with `message` (which starts with
/// `CANCELLED_PREFIX`). Returns how many.
pub async fn cancel_rows(tx: &mut Tx, id: i64, message: &str) -> StoreResult<u64> {
    let sql = "UPDATE refund_batch_rows SET send_state = 'not_sent', message = $2 \
               WHERE batch_id = $1 AND send_state = 'waiting'";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(message).execute(conn).await?.rows_affected()),
    )
}

/// Take a waiting row for sending, in the transaction that will make its request: the row
/// is locked (PostgreSQL) until that transaction ends, so a cancel, or a second run of the
/// send step, waits for it and then finds the row no longer waiting. False when the row is
/// no longer waiting, or its batch is no longer sending (paused or cancelled since).
pub async fn take_row(tx: &mut Tx, batch_id: i64, line: i64) -> StoreResult<bool> {
    let sql = "UPDATE refund_batch_rows SET send_state = 'waiting' \
               WHERE batch_id = $1 AND line = $2 AND send_state = 'waiting' \
               AND EXISTS (SELECT 1 FROM refund_batches WHERE id = $1 AND state = 'sending')";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(batch_id).bind(line)
        .execute(conn).await?.rows_affected())
            == 1,
    )
}

/// The batches sent through the API for a service, newest first.
pub async fn of_service(db: &Db, service_id: i64, limit: i64) -> StoreResult<Vec<BatchRow>> {
    let sql = format!("SELECT {BATCH_COLUMNS} FROM refund_batches WHERE service_id = $1 ORDER BY id DESC LIMIT $2");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, BatchRow>(&sql).bind(service_id).bind(limit).fetch_all(pool).await?),
    )
}

/// Go on from the dry run: only the uploader, only for the file they saw, and only when no
/// row was refused or they chose to leave the refused rows out.
pub async fn confirm(
    tx: &mut Tx,
    id: i64,
    uploader: i64,
    hash: &str,
    leave_out: bool,
    to: &str,
    now: i64,
) -> StoreResult<bool> {
    let sql = "UPDATE refund_batches SET state = $5, leave_out_refused = $4, sending_at = CASE WHEN $5 = 'sending' THEN $6 ELSE NULL END, \
               updated_at = $6 WHERE id = $1 AND state = 'checked' AND uploaded_by = $2 AND file_hash = $3 \
               AND ready_count > 0 AND (refused_count = 0 OR $4)";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(uploader).bind(hash).bind(leave_out).bind(to).bind(now)
        .execute(conn).await?.rows_affected())
            == 1,
    )
}

/// Approve: someone other than the uploader, for the file whose hash they saw.
pub async fn approve(
    tx: &mut Tx,
    id: i64,
    approver: i64,
    hash: &str,
    now: i64,
) -> StoreResult<bool> {
    let sql = "UPDATE refund_batches SET state = 'sending', approved_by = $2, approved_at = $4, sending_at = $4, \
               updated_at = $4 WHERE id = $1 AND state = 'awaiting_approval' AND uploaded_by <> $2 AND file_hash = $3";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(approver).bind(hash).bind(now)
        .execute(conn).await?.rows_affected())
            == 1,
    )
}

/// Move a batch from one state to another.
pub async fn move_state(tx: &mut Tx, id: i64, from: &str, to: &str, now: i64) -> StoreResult<bool> {
    let sql = "UPDATE refund_batches SET state = $3, updated_at = $4, \
               finished_at = CASE WHEN $3 = 'sent' THEN $4 ELSE finished_at END WHERE id = $1 AND state = $2";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(from).bind(to).bind(now)
        .execute(conn).await?.rows_affected())
            == 1,
    )
}

/// A waiting row became request `request_id`.
pub async fn row_requested(
    tx: &mut Tx,
    batch_id: i64,
    line: i64,
    request_id: i64,
) -> StoreResult<bool> {
    let sql = "UPDATE refund_batch_rows SET send_state = 'requested', request_id = $3 \
               WHERE batch_id = $1 AND line = $2 AND send_state = 'waiting'";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(batch_id).bind(line).bind(request_id)
        .execute(conn).await?.rows_affected())
            == 1,
    )
}

/// A waiting row was refused when its turn came.
pub async fn row_not_sent(
    tx: &mut Tx,
    batch_id: i64,
    line: i64,
    message: &str,
) -> StoreResult<bool> {
    let sql = "UPDATE refund_batch_rows SET send_state = 'not_sent', message = $3 \
               WHERE batch_id = $1 AND line = $2 AND send_state = 'waiting'";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(batch_id).bind(line).bind(message)
        .execute(conn).await?.rows_affected())
            == 1,
    )
}

pub async fn waiting_count(tx: &mut Tx, batch_id: i64) -> StoreResult<i64> {
    let sql =
        "SELECT COUNT(*) FROM refund_batch_rows WHERE batch_id = $1 AND send_state = 'waiting'";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql).bind(batch_id).fetch_one(conn).await?))
}

/// A payment a bulk file may name: (journey id, service id, payment id, reference, refund
/// status, the platform's available amount, what open requests hold).
pub type PaymentRow = (i64, i64, String, String, Option<String>, Option<i64>, i64);

/// The payments with these ids (`by_reference` false) or lower-cased references (true), in
/// every service; the caller decides which the person may refund.
pub async fn payments(
    db: &Db,
    keys: &[String],
    by_reference: bool,
) -> StoreResult<Vec<PaymentRow>> {
    let mut out = Vec::new();
    let column = if by_reference {
        "j.reference_key"
    } else {
        "j.payment_id"
    };
    for chunk in keys.chunks(500) {
        let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT j.id, j.service_id, j.payment_id, j.reference, j.refund_status, j.refund_available, \
             (SELECT CAST(COALESCE(SUM(r.amount), 0) AS BIGINT) FROM refund_requests r \
               WHERE r.journey_id = j.id AND r.state IN ('awaiting_approval', 'approved', 'submitting')) \
             FROM journeys j WHERE {column} IN ({})",
            list.join(", ")
        );
        let rows: Vec<PaymentRow> = on_db!(db, pool => {
            let mut q = sqlx::query_as::<_, PaymentRow>(&sql);
            for k in chunk {
                q = q.bind(k);
            }
            q.fetch_all(pool).await?
        });
        out.extend(rows);
    }
    Ok(out)
}

/// A refund request made for a batch's row: approved already (by the batch's approver, when
/// it needed one), linked to its batch. None when the row's key was already used.
pub struct BatchRequest<'a> {
    pub request: &'a super::refunds::NewRequest<'a>,
    pub batch_id: i64,
    pub decided_by: Option<i64>,
}

pub async fn insert_request(
    tx: &mut Tx,
    r: &BatchRequest<'_>,
    now: i64,
) -> StoreResult<Option<i64>> {
    let q = r.request;
    let sql = "INSERT INTO refund_requests (service_id, journey_id, payment_id, amount, reason, comment, case_reference, \
               state, form_key, requested_by, requested_at, approval_required, expires_at, updated_at, batch_id, \
               decided_by, decided_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $11, $14, $15, \
               CASE WHEN $15 IS NULL THEN NULL ELSE $11 END) \
               ON CONFLICT (service_id, form_key) DO NOTHING RETURNING id";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql)
        .bind(q.service_id).bind(q.journey_id).bind(q.payment_id).bind(q.amount).bind(q.reason)
        .bind(q.comment).bind(q.case_reference).bind(q.state).bind(q.form_key).bind(q.requested_by)
        .bind(now).bind(q.approval_required).bind(q.expires_at).bind(r.batch_id).bind(r.decided_by)
        .fetch_optional(conn).await?))
}

/// Refundable payments of a service, for tests and the bench: (payment id, journey id,
/// available), at most `limit`.
pub async fn refundable_sample(
    db: &Db,
    service_id: i64,
    limit: i64,
) -> StoreResult<Vec<(String, i64, i64)>> {
    let sql = "SELECT payment_id, id, refund_available FROM journeys WHERE service_id = $1 \
               AND refund_status = 'available' AND refund_available > 0 ORDER BY id LIMIT $2";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, (String, i64, i64)>(sql).bind(service_id).bind(limit).fetch_all(pool).await?),
    )
}

/// How many rows were refused for each reason: (label, count).
pub async fn refusals(db: &Db, id: i64) -> StoreResult<Vec<(String, i64)>> {
    let sql = "SELECT refusal, COUNT(*) FROM refund_batch_rows WHERE batch_id = $1 AND refusal IS NOT NULL \
               GROUP BY refusal ORDER BY COUNT(*) DESC, refusal";
    Ok(on_db!(db, pool => sqlx::query_as::<_, (String, i64)>(sql).bind(id).fetch_all(pool).await?))
}
