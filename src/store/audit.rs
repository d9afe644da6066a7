//! SQL for the append-only audit log.

use futures::stream::BoxStream;
use futures::StreamExt;

use super::{Db, StoreResult, Tx};
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

/// Key of the PostgreSQL advisory lock that makes appends linear across processes.
const APPEND_LOCK: i64 = 0x7061_7964_6573_6b01;

/// Take the append lock (held until the transaction ends) and read the newest entry's
/// sequence number and hash. On SQLite the `BEGIN IMMEDIATE` write lock already excludes
/// every other writer. The read must be a separate statement issued after the lock is held,
/// so that on PostgreSQL it sees the previous holder's committed entry.
pub async fn lock_head(tx: &mut Tx) -> StoreResult<Option<(i64, String)>> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut **t)
            .await?;
    }
    let head = on_tx!(tx, conn => {
        sqlx::query_as::<_, (i64, String)>("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(conn)
            .await?
    });
    Ok(head)
}

pub async fn insert(tx: &mut Tx, row: &AuditRow) -> StoreResult<()> {
    let sql = "INSERT INTO audit_log (seq, occurred_at, actor_type, actor_id, actor_label, action, target, outcome, origin_ip, details, hash) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    on_tx!(tx, conn => {
        sqlx::query(sql)
            .bind(row.seq)
            .bind(row.occurred_at)
            .bind(&row.actor_type)
            .bind(&row.actor_id)
            .bind(&row.actor_label)
            .bind(&row.action)
            .bind(&row.target)
            .bind(&row.outcome)
            .bind(&row.origin_ip)
            .bind(&row.details)
            .bind(&row.hash)
            .execute(conn)
            .await?;
    });
    Ok(())
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
        Db::Postgres(pool) => {
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
        Tx::Postgres(t) => build_and_run!(sqlx::Postgres, &mut **t),
    }
    Ok(())
}
