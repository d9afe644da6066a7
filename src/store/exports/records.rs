//! The records of background exports: asked for, started, progress written, finished or
//! failed, and their files' expiry.

use crate::on_db;
use crate::store::sql::{bound, Builder};
use crate::store::{Db, StoreResult, Tx};

/// A background export as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRecord {
    pub id: i64,
    pub requested_by: i64,
    /// JSON array of service ids.
    pub service_ids: String,
    /// JSON: the filter as asked for (see `exports::Filter`).
    pub filter: String,
    pub gzip: bool,
    pub state: String,
    pub rows_expected: i64,
    pub rows_written: i64,
    pub bytes_written: i64,
    /// JSON: where the writing has got to (see `exports::Progress`).
    pub progress: Option<String>,
    pub file_name: String,
    pub failure: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub updated_at: i64,
}

const RECORD: &str = "id, requested_by, service_ids, filter, gzip, state, rows_expected, rows_written, bytes_written, progress, file_name, failure, created_at, started_at, finished_at, expires_at, updated_at";

/// What a new background export is.
pub struct NewExport<'a> {
    pub requested_by: i64,
    pub service_ids: &'a str,
    pub filter: &'a str,
    pub gzip: bool,
    pub rows_expected: i64,
    pub file_name: &'a str,
}

pub async fn insert(tx: &mut Tx, e: &NewExport<'_>, now: i64) -> StoreResult<i64> {
    Ok(crate::on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "INSERT INTO exports (requested_by, service_ids, filter, gzip, state, rows_expected, \
         rows_written, bytes_written, file_name, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'queued', $5, 0, 0, $6, $7, $7) RETURNING id")
        .bind(e.requested_by)
        .bind(e.service_ids)
        .bind(e.filter)
        .bind(e.gzip)
        .bind(e.rows_expected)
        .bind(e.file_name)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?))
}

pub async fn get(db: &Db, id: i64) -> StoreResult<Option<ExportRecord>> {
    let sql = format!("SELECT {RECORD} FROM exports WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, ExportRecord>(&sql).bind(id).fetch_optional(pool).await?),
    )
}

/// The newest exports, at most `limit`: everyone's (None) or one person's.
pub async fn recent(
    db: &Db,
    requested_by: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<ExportRecord>> {
    let mut b = Builder::new(db.backend());
    let filter = match requested_by {
        Some(who) => format!("WHERE requested_by = {}", b.int(who)),
        None => String::new(),
    };
    let lim = b.int(limit);
    let built = b.finish(format!(
        "SELECT {RECORD} FROM exports {filter} ORDER BY created_at DESC, id DESC LIMIT {lim}"
    ));
    Ok(
        on_db!(db, pool => bound!(sqlx::query_as::<_, ExportRecord>(&built.sql), &built.binds).fetch_all(pool).await?),
    )
}

/// Mark an export as being written (first slice) and return it, if it is still to be done.
pub async fn start(tx: &mut Tx, id: i64, now: i64) -> StoreResult<Option<ExportRecord>> {
    let sql = format!(
        "UPDATE exports SET state = 'running', started_at = COALESCE(started_at, $2), updated_at = $2 \
         WHERE id = $1 AND state IN ('queued', 'running') RETURNING {RECORD}"
    );
    Ok(
        crate::on_tx!(tx, conn => sqlx::query_as::<_, ExportRecord>(&sql)
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?),
    )
}

/// Record how far the writing has got: rows and bytes written and where to go on from.
pub async fn set_progress(
    db: &Db,
    id: i64,
    rows_written: i64,
    bytes_written: i64,
    progress: &str,
    now: i64,
) -> StoreResult<()> {
    on_db!(db, pool => sqlx::query(
        "UPDATE exports SET rows_written = $2, bytes_written = $3, progress = $4, updated_at = $5 \
         WHERE id = $1 AND state = 'running'")
        .bind(id)
        .bind(rows_written)
        .bind(bytes_written)
        .bind(progress)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// The exact row count, once the first slice has counted it.
pub async fn set_expected(db: &Db, id: i64, rows_expected: i64) -> StoreResult<()> {
    on_db!(db, pool => sqlx::query("UPDATE exports SET rows_expected = $2 WHERE id = $1")
        .bind(id)
        .bind(rows_expected)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

pub async fn finish(
    tx: &mut Tx,
    id: i64,
    rows_written: i64,
    bytes_written: i64,
    expires_at: i64,
    now: i64,
) -> StoreResult<bool> {
    let done = crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE exports SET state = 'finished', rows_written = $2, bytes_written = $3, \
         expires_at = $4, finished_at = $5, updated_at = $5, progress = NULL \
         WHERE id = $1 AND state = 'running'")
        .bind(id)
        .bind(rows_written)
        .bind(bytes_written)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    Ok(done == 1)
}

pub async fn fail(tx: &mut Tx, id: i64, failure: &str, now: i64) -> StoreResult<bool> {
    let done = crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE exports SET state = 'failed', failure = $2, finished_at = $3, updated_at = $3 \
         WHERE id = $1 AND state IN ('queued', 'running')")
        .bind(id)
        .bind(failure)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    Ok(done == 1)
}

/// Finished exports whose file is due for deletion.
pub async fn due_for_removal(db: &Db, now: i64, limit: i64) -> StoreResult<Vec<ExportRecord>> {
    let sql = format!(
        "SELECT {RECORD} FROM exports WHERE state = 'finished' AND expires_at <= $1 \
         ORDER BY expires_at LIMIT $2"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, ExportRecord>(&sql).bind(now).bind(limit).fetch_all(pool).await?),
    )
}

/// Mark an export's file as deleted; false if another instance got there first.
pub async fn expire(tx: &mut Tx, id: i64, now: i64) -> StoreResult<bool> {
    let done = crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE exports SET state = 'expired', updated_at = $2 WHERE id = $1 AND state = 'finished'")
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected());
    Ok(done == 1)
}
