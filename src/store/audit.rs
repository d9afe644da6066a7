//! SQL for the append-only audit log.

use futures::stream::BoxStream;
use futures::StreamExt;

use super::{Db, HeadHint, StoreResult, Tx};
use crate::{on_db, on_tx};

/// One stored audit entry, exactly as it sits in the table.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub occurred_at: i64,
    pub actor_type: String,
    pub actor_id: String,
    pub actor_label: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub origin_ip: Option<String>,
    pub details: String,
    pub hash: String,
}

const COLUMNS: &str = "seq, occurred_at, actor_type, actor_id, actor_label, action, target, outcome, origin_ip, details, hash";

/// SQL that inserts the entry bound as $1..$11 only while the chain's head is still entry
/// $12 with hash $13, in one statement. It affects no row when another writer got there first
/// or the hint came from a transaction that rolled back. The hash matters as much as the
/// number: a rolled-back entry and the real one that replaced it share a sequence number.
fn conditional_insert_sql(backend: super::Backend) -> String {
    let values = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11";
    match backend {
        super::Backend::Sqlite => {
            format!(
                "INSERT INTO audit_log ({COLUMNS}) SELECT {values} \
                 WHERE EXISTS (SELECT 1 FROM audit_log WHERE seq = $12 AND hash = $13) \
                 AND NOT EXISTS (SELECT 1 FROM audit_log WHERE seq > $12)"
            )
        }
        // Moving the head row locks it until commit, which orders appenders across processes;
        // a writer that waited re-checks `seq = $12` against the committed row and then matches
        // nothing.
        super::Backend::Postgres => format!(
            "WITH head AS (UPDATE audit_head SET seq = $1, hash = $11 WHERE id = 1 AND seq = $12 AND hash = $13 RETURNING id) \
             INSERT INTO audit_log ({COLUMNS}) SELECT {values} FROM head"
        ),
    }
}

macro_rules! bind_entry {
    ($query:expr, $row:expr) => {
        $query
            .bind($row.seq)
            .bind($row.occurred_at)
            .bind(&$row.actor_type)
            .bind(&$row.actor_id)
            .bind(&$row.actor_label)
            .bind(&$row.action)
            .bind(&$row.target)
            .bind(&$row.outcome)
            .bind(&$row.origin_ip)
            .bind(&$row.details)
            .bind(&$row.hash)
    };
}

/// Inside a transaction the hint is only ever tried, never waited for: a transaction that
/// holds the head row must not wait on a standalone append that waits on that row.
fn try_read_hint(hint: &HeadHint) -> Option<(i64, String)> {
    hint.head.try_lock().ok().and_then(|h| h.clone())
}

fn try_write_hint(hint: &HeadHint, row: &AuditRow) {
    if let Ok(mut h) = hint.head.try_lock() {
        *h = Some((row.seq, row.hash.clone()));
    }
}

/// Append one entry at the head of the chain, inside the caller's transaction. `make`
/// receives the new entry's sequence number and the previous entry's hash (hex; None for the
/// first entry) and returns the row to store.
///
/// Appends are linear across every process on the database. The fast path trusts this
/// process's hint of the head and checks it in the inserting statement itself; when the hint
/// is stale (another process appended, or a transaction rolled back) the head is read under
/// the lock: on PostgreSQL by `UPDATE … RETURNING` on the head row, which waits for any other
/// appender's commit and then sees its result; on SQLite the `BEGIN IMMEDIATE` write lock
/// already excludes every other writer.
pub async fn append(
    tx: &mut Tx,
    make: impl Fn(i64, Option<&str>) -> AuditRow,
) -> StoreResult<AuditRow> {
    let backend = tx.backend();
    let hint = match tx {
        Tx::Sqlite(_, hint) | Tx::Postgres(_, hint) => hint.clone(),
    };
    if let Some((seq, hash)) = try_read_hint(&hint) {
        let row = make(seq + 1, Some(&hash));
        let sql = conditional_insert_sql(backend);
        let inserted = on_tx!(tx, conn => bind_entry!(sqlx::query(&sql), row).bind(seq).bind(&hash).execute(conn).await?.rows_affected());
        if inserted == 1 {
            try_write_hint(&hint, &row);
            return Ok(row);
        }
    }
    let row = match tx {
        Tx::Postgres(t, _) => {
            let (seq, prev): (i64, String) = sqlx::query_as(
                "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash",
            )
            .fetch_one(&mut **t)
            .await?;
            let row = make(seq, (seq > 1).then_some(prev.as_str()));
            let sql = format!(
                "WITH entry AS (INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING hash) \
                 UPDATE audit_head SET hash = (SELECT hash FROM entry) WHERE id = 1"
            );
            bind_entry!(sqlx::query(&sql), row)
                .execute(&mut **t)
                .await?;
            row
        }
        Tx::Sqlite(t, _) => {
            let head: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut **t)
                    .await?;
            let row = match &head {
                Some((seq, hash)) => make(seq + 1, Some(hash)),
                None => make(1, None),
            };
            let sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
            bind_entry!(sqlx::query(&sql), row)
                .execute(&mut **t)
                .await?;
            row
        }
    };
    try_write_hint(&hint, &row);
    Ok(row)
}

/// Append one entry on its own, as a single autocommit statement, when this process's hint of
/// the head is current. Returns None when it is not (the caller then appends in a transaction).
pub async fn append_alone(
    db: &Db,
    make: impl Fn(i64, Option<&str>) -> AuditRow,
) -> StoreResult<Option<AuditRow>> {
    let sql = conditional_insert_sql(db.backend());
    // Hold the hint across the one statement: this process's standalone appends queue here
    // instead of racing each other for the same sequence number.
    macro_rules! attempt {
        ($hint:expr, $executor:expr) => {{
            let mut hint = $hint.head.lock().await;
            let Some((seq, hash)) = hint.clone() else {
                return Ok(None);
            };
            let row = make(seq + 1, Some(&hash));
            let inserted = bind_entry!(sqlx::query(&sql), row)
                .bind(seq)
                .bind(&hash)
                .execute($executor)
                .await?
                .rows_affected();
            if inserted != 1 {
                return Ok(None);
            }
            *hint = Some((row.seq, row.hash.clone()));
            Ok(Some(row))
        }};
    }
    match db {
        Db::Sqlite(_, writer) => {
            // The writer connection first, then the hint: holding the one writer makes the
            // hint current unless another process wrote. An INSERT takes SQLite's write lock
            // before it reads, so the check and the insert are one atomic step.
            let mut conn = writer.pool.acquire().await?;
            attempt!(writer.hint, &mut *conn)
        }
        Db::Postgres(pool, hint) => attempt!(hint, pool),
    }
}

/// Every entry in sequence order, streamed so that memory stays flat however long the log.
pub fn stream_all(db: &Db) -> BoxStream<'_, StoreResult<AuditRow>> {
    let sql = "SELECT seq, occurred_at, actor_type, actor_id, actor_label, action, target, outcome, origin_ip, details, hash FROM audit_log ORDER BY seq";
    on_db!(db, pool => sqlx::query_as::<_, AuditRow>(sql).fetch(pool).map(|r| r.map_err(Into::into)).boxed())
}

/// The newest entries first, at most `limit`.
pub async fn latest(db: &Db, limit: i64) -> StoreResult<Vec<AuditRow>> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, AuditRow>(&sql).bind(limit).fetch_all(pool).await?))
}

/// Entries with the given action, oldest first.
pub async fn by_action(db: &Db, action: &str) -> StoreResult<Vec<AuditRow>> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE action = $1 ORDER BY seq");
    Ok(on_db!(db, pool => sqlx::query_as::<_, AuditRow>(&sql).bind(action).fetch_all(pool).await?))
}

pub async fn count(db: &Db) -> StoreResult<i64> {
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log").fetch_one(pool).await?),
    )
}

/// Whether the triggers that refuse UPDATE and DELETE are still installed.
pub async fn append_only_triggers_present(db: &Db) -> StoreResult<bool> {
    let n: i64 = match db {
        Db::Sqlite(pool, _) => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log' \
                 AND name IN ('audit_log_no_update', 'audit_log_no_delete')",
            )
            .fetch_one(pool)
            .await?
        }
        Db::Postgres(pool, _) => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal \
                 AND tgenabled <> 'D' AND tgname IN ('audit_log_no_update', 'audit_log_no_delete')",
            )
            .fetch_one(pool)
            .await?
        }
    };
    Ok(n == 2)
}

/// Insert many entries in one statement (for loading benchmark data; the caller computes
/// the chain).
pub async fn insert_many(tx: &mut Tx, rows: &[AuditRow]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! build_and_run {
        ($db:ty, $conn:expr) => {{
            let mut qb = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO audit_log (seq, occurred_at, actor_type, actor_id, actor_label, action, target, outcome, origin_ip, details, hash) ",
            );
            qb.push_values(rows, |mut b, r| {
                b.push_bind(r.seq)
                    .push_bind(r.occurred_at)
                    .push_bind(&r.actor_type)
                    .push_bind(&r.actor_id)
                    .push_bind(&r.actor_label)
                    .push_bind(&r.action)
                    .push_bind(&r.target)
                    .push_bind(&r.outcome)
                    .push_bind(&r.origin_ip)
                    .push_bind(&r.details)
                    .push_bind(&r.hash);
            });
            qb.build().execute($conn).await?;
        }};
    }
    match tx {
        Tx::Sqlite(t, _) => build_and_run!(sqlx::Sqlite, &mut **t),
        Tx::Postgres(t, _) => {
            build_and_run!(sqlx::Postgres, &mut **t);
            sqlx::query("UPDATE audit_head SET seq = last.seq, hash = last.hash FROM (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) AS last WHERE id = 1")
                .execute(&mut **t)
                .await?;
        }
    }
    Ok(())
}

/// The entry with sequence number `seq`, if there is one.
pub async fn at(db: &Db, seq: i64) -> StoreResult<Option<AuditRow>> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, AuditRow>(&sql).bind(seq).fetch_optional(pool).await?),
    )
}
