//! SQL for the job queue (the transactional outbox).

use super::{Db, StoreResult, Tx};
use crate::{on_db, on_tx};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AttemptRow {
    pub job_id: i64,
    pub attempt: i32,
    pub worker: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: String,
    pub error: Option<String>,
}

/// A job a worker now holds: it alone may finish this attempt.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub attempts: i32,
    pub max_attempts: i32,
}

const JOB_COLUMNS: &str = "id, kind, payload, state, attempts, max_attempts, run_at, locked_by, locked_until, last_error, created_at, updated_at, finished_at";

pub async fn insert(
    tx: &mut Tx,
    kind: &str,
    payload: &str,
    max_attempts: i32,
    run_at: i64,
    now: i64,
) -> StoreResult<i64> {
    let sql = "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, created_at, updated_at) \
               VALUES ($1, $2, 'queued', 0, $3, $4, $5, $5) RETURNING id";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql)
        .bind(kind).bind(payload).bind(max_attempts).bind(run_at).bind(now)
        .fetch_one(conn).await?))
}

/// Claim up to `limit` due jobs for `worker`: queued jobs whose time has come, and running
/// jobs whose lease ran out (their worker died or hung). Each claim starts a new attempt.
pub async fn claim(
    db: &Db,
    worker: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> StoreResult<Vec<ClaimedJob>> {
    let due = "(state = 'queued' AND run_at <= $3) OR (state = 'running' AND locked_until < $3)";
    let sql = match db {
        Db::Sqlite(..) => format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1, locked_until = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs WHERE {due} ORDER BY run_at, id LIMIT $4) \
             RETURNING id, kind, payload, attempts, max_attempts"
        ),
        Db::Postgres(..) => format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1, locked_until = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs WHERE {due} ORDER BY run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, payload, attempts, max_attempts"
        ),
    };
    let mut tx = db.begin().await?;
    let mut claimed = on_tx!(&mut tx, conn => sqlx::query_as::<_, ClaimedJob>(&sql)
        .bind(worker).bind(lease_until).bind(now).bind(limit)
        .fetch_all(conn).await?);
    claimed.sort_by_key(|j| j.id);
    for job in &claimed {
        on_tx!(&mut tx, conn => {
            // An attempt still marked running belonged to a worker whose lease ran out.
            sqlx::query("UPDATE job_attempts SET outcome = 'lost', finished_at = $2, error = 'the worker stopped or ran past its lease' \
                         WHERE job_id = $1 AND outcome = 'running'")
                .bind(job.id).bind(now).execute(&mut *conn).await?;
            sqlx::query("INSERT INTO job_attempts (job_id, attempt, worker, started_at, outcome) VALUES ($1, $2, $3, $4, 'running')")
                .bind(job.id).bind(job.attempts).bind(worker).bind(now).execute(&mut *conn).await?;
        });
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Extend the lease of an attempt a worker is still running (its heartbeat). Fenced like
/// `finish`: it applies only while `worker` still holds this attempt of a running job, so a
/// worker whose job was taken over after its lease ran out learns that it must stop. False
/// when the lease is no longer this worker's.
pub async fn renew(
    db: &Db,
    job_id: i64,
    attempt: i32,
    worker: &str,
    now: i64,
    lease_until: i64,
) -> StoreResult<bool> {
    let sql = "UPDATE jobs SET locked_until = $1, updated_at = $2 \
               WHERE id = $3 AND attempts = $4 AND locked_by = $5 AND state = 'running'";
    let mut tx = db.begin().await?;
    let done = on_tx!(&mut tx, conn => sqlx::query(sql)
        .bind(lease_until).bind(now).bind(job_id).bind(attempt).bind(worker)
        .execute(conn).await?.rows_affected());
    tx.commit().await?;
    Ok(done == 1)
}

/// Replace a finished job's payload with a marker, so that secrets in it do not linger.
pub async fn scrub_payload(tx: &mut Tx, job_id: i64) -> StoreResult<()> {
    on_tx!(tx, conn => {
        sqlx::query("UPDATE jobs SET payload = '{\"scrubbed\":true}' WHERE id = $1")
            .bind(job_id)
            .execute(conn)
            .await?;
    });
    Ok(())
}

/// Record the end of an attempt. Fenced: it only applies while `worker` still holds this
/// attempt, so a worker whose lease ran out cannot overwrite a newer attempt's result.
/// `next` is `Some(run_at)` to retry, `None` to finish (success) or give up (dead).
pub async fn finish(
    tx: &mut Tx,
    job_id: i64,
    attempt: i32,
    worker: &str,
    now: i64,
    error: Option<&str>,
    next: Option<i64>,
) -> StoreResult<bool> {
    let (state, attempt_outcome) = match (error, next) {
        (None, _) => ("succeeded", "succeeded"),
        (Some(_), Some(_)) => ("queued", "failed"),
        (Some(_), None) => ("dead", "failed"),
    };
    let finished_at = if state == "queued" { None } else { Some(now) };
    let updated = on_tx!(tx, conn => {
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, run_at = COALESCE($2, run_at), last_error = COALESCE($3, last_error), \
             locked_by = NULL, locked_until = NULL, updated_at = $4, finished_at = $5 \
             WHERE id = $6 AND attempts = $7 AND locked_by = $8 AND state = 'running'",
        )
        .bind(state).bind(next).bind(error).bind(now).bind(finished_at)
        .bind(job_id).bind(attempt).bind(worker)
        .execute(&mut *conn).await?;
        if done.rows_affected() == 1 {
            sqlx::query("UPDATE job_attempts SET outcome = $1, finished_at = $2, error = $3 WHERE job_id = $4 AND attempt = $5")
                .bind(attempt_outcome).bind(now).bind(error).bind(job_id).bind(attempt)
                .execute(&mut *conn).await?;
        }
        done.rows_affected() == 1
    });
    Ok(updated)
}

/// Put a dead job back in the queue with `extra_attempts` more tries.
pub async fn requeue(tx: &mut Tx, job_id: i64, extra_attempts: i32, now: i64) -> StoreResult<bool> {
    let done = on_tx!(tx, conn => sqlx::query(
        "UPDATE jobs SET state = 'queued', max_attempts = attempts + $2, run_at = $3, updated_at = $3, finished_at = NULL \
         WHERE id = $1 AND state = 'dead'")
        .bind(job_id).bind(extra_attempts).bind(now)
        .execute(conn).await?.rows_affected());
    Ok(done == 1)
}

pub async fn get(db: &Db, job_id: i64) -> StoreResult<Option<JobRow>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, JobRow>(&sql).bind(job_id).fetch_optional(pool).await?),
    )
}

/// Jobs, newest first, optionally in one state.
pub async fn list(db: &Db, state: Option<&str>, limit: i64) -> StoreResult<Vec<JobRow>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1 IS NULL OR state = $1) ORDER BY id DESC LIMIT $2"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, JobRow>(&sql).bind(state).bind(limit).fetch_all(pool).await?),
    )
}

pub async fn attempts(db: &Db, job_id: i64) -> StoreResult<Vec<AttemptRow>> {
    let sql = "SELECT job_id, attempt, worker, started_at, finished_at, outcome, error FROM job_attempts WHERE job_id = $1 ORDER BY attempt";
    Ok(on_db!(db, pool => sqlx::query_as::<_, AttemptRow>(sql).bind(job_id).fetch_all(pool).await?))
}

/// How many jobs are in each state.
pub async fn depth_by_state(db: &Db) -> StoreResult<Vec<(String, i64)>> {
    let sql = "SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state";
    Ok(on_db!(db, pool => sqlx::query_as::<_, (String, i64)>(sql).fetch_all(pool).await?))
}
