//! SQL for services' platform settings and their sync schedule.

use super::{Db, StoreResult, Tx};
use crate::{on_db, on_tx};

/// A service with its platform settings; `credentials` and `webhook_secret` are sealed.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ServiceAccountRow {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub time_zone: String,
    pub platform_url: Option<String>,
    pub credentials: Option<String>,
    pub webhook_secret: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    /// Where a case reference links to in case management (see `integrations::deep_link`).
    pub deep_link_template: Option<String>,
}

const COLUMNS: &str = "id, slug, name, time_zone, platform_url, credentials, webhook_secret, created_at, updated_at, deep_link_template";

pub struct NewServiceRow<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub time_zone: &'a str,
    pub platform_url: Option<&'a str>,
    pub credentials: Option<&'a str>,
    pub webhook_secret: Option<&'a str>,
}

pub async fn insert(tx: &mut Tx, s: &NewServiceRow<'_>, now: i64) -> StoreResult<i64> {
    let sql = "INSERT INTO services (slug, name, time_zone, platform_url, credentials, webhook_secret, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql)
        .bind(s.slug).bind(s.name).bind(s.time_zone).bind(s.platform_url)
        .bind(s.credentials).bind(s.webhook_secret).bind(now)
        .fetch_one(conn).await?))
}

pub async fn by_slug(db: &Db, slug: &str) -> StoreResult<Option<ServiceAccountRow>> {
    let sql = format!("SELECT {COLUMNS} FROM services WHERE slug = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, ServiceAccountRow>(&sql).bind(slug).fetch_optional(pool).await?),
    )
}

pub async fn by_id(db: &Db, id: i64) -> StoreResult<Option<ServiceAccountRow>> {
    let sql = format!("SELECT {COLUMNS} FROM services WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, ServiceAccountRow>(&sql).bind(id).fetch_optional(pool).await?),
    )
}

/// Every service, by name.
pub async fn all(db: &Db) -> StoreResult<Vec<ServiceAccountRow>> {
    let sql = format!("SELECT {COLUMNS} FROM services ORDER BY name, id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, ServiceAccountRow>(&sql).fetch_all(pool).await?))
}

/// Services that are connected to a platform account.
pub async fn connected(db: &Db) -> StoreResult<Vec<ServiceAccountRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM services WHERE platform_url IS NOT NULL AND credentials IS NOT NULL ORDER BY id"
    );
    Ok(on_db!(db, pool => sqlx::query_as::<_, ServiceAccountRow>(&sql).fetch_all(pool).await?))
}

/// Services whose sync is due: connected, and with no sync job queued or running.
pub async fn due_for_sync(db: &Db, now: i64) -> StoreResult<Vec<i64>> {
    let sql = "SELECT s.id FROM services s \
               LEFT JOIN sync_schedule sc ON sc.service_id = s.id \
               LEFT JOIN jobs j ON j.id = sc.job_id \
               WHERE s.platform_url IS NOT NULL AND s.credentials IS NOT NULL \
                 AND (sc.service_id IS NULL OR (sc.next_run_at <= $1 AND (j.id IS NULL OR j.state IN ('succeeded', 'dead')))) \
               ORDER BY s.id";
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>(sql).bind(now).fetch_all(pool).await?))
}

/// Claim the service's sync slot for `job_id`, inside the transaction that queues the job.
/// False when another instance got there first.
pub async fn claim_sync(tx: &mut Tx, service_id: i64, job_id: i64, now: i64) -> StoreResult<bool> {
    let lock = match tx {
        Tx::Sqlite(..) => "",
        Tx::Postgres(..) => " FOR UPDATE OF sc",
    };
    let current = format!(
        "SELECT sc.next_run_at, j.state FROM sync_schedule sc LEFT JOIN jobs j ON j.id = sc.job_id WHERE sc.service_id = $1{lock}"
    );
    let row: Option<(i64, Option<String>)> =
        on_tx!(tx, conn => sqlx::query_as(&current).bind(service_id).fetch_optional(conn).await?);
    match row {
        None => {
            let n = on_tx!(tx, conn => sqlx::query(
                "INSERT INTO sync_schedule (service_id, job_id, next_run_at) VALUES ($1, $2, $3) ON CONFLICT (service_id) DO NOTHING")
                .bind(service_id).bind(job_id).bind(now).execute(conn).await?.rows_affected());
            Ok(n == 1)
        }
        Some((next_run_at, state)) => {
            let free = next_run_at <= now
                && matches!(state.as_deref(), None | Some("succeeded") | Some("dead"));
            if !free {
                return Ok(false);
            }
            on_tx!(tx, conn => {
                sqlx::query("UPDATE sync_schedule SET job_id = $2 WHERE service_id = $1")
                    .bind(service_id).bind(job_id).execute(conn).await?;
            });
            Ok(true)
        }
    }
}

/// When the service's next sync may start.
pub async fn set_next_sync(tx: &mut Tx, service_id: i64, next_run_at: i64) -> StoreResult<()> {
    on_tx!(tx, conn => {
        sqlx::query("UPDATE sync_schedule SET next_run_at = $2 WHERE service_id = $1")
            .bind(service_id).bind(next_run_at).execute(conn).await?;
    });
    Ok(())
}

/// Hand the sync slot to a continuation job.
pub async fn hand_over_sync(tx: &mut Tx, service_id: i64, job_id: i64) -> StoreResult<()> {
    on_tx!(tx, conn => {
        sqlx::query("UPDATE sync_schedule SET job_id = $2 WHERE service_id = $1")
            .bind(service_id).bind(job_id).execute(conn).await?;
    });
    Ok(())
}

pub async fn set_secrets(
    tx: &mut Tx,
    id: i64,
    credentials: Option<&str>,
    webhook_secret: Option<&str>,
) -> StoreResult<()> {
    on_tx!(tx, conn => {
        sqlx::query("UPDATE services SET credentials = $2, webhook_secret = $3 WHERE id = $1")
            .bind(id).bind(credentials).bind(webhook_secret).execute(conn).await?;
    });
    Ok(())
}

/// Replace sealed credentials, only if they are still `old` (false when they changed since).
pub async fn replace_credentials(tx: &mut Tx, id: i64, old: &str, new: &str) -> StoreResult<bool> {
    let n = on_tx!(tx, conn => sqlx::query("UPDATE services SET credentials = $2 WHERE id = $1 AND credentials = $3")
        .bind(id).bind(new).bind(old).execute(conn).await?.rows_affected());
    Ok(n == 1)
}

/// Point a service at another platform address with credentials sealed for it.
pub async fn set_platform_account(
    tx: &mut Tx,
    id: i64,
    url: &str,
    credentials: &str,
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, conn => {
        sqlx::query("UPDATE services SET platform_url = $2, credentials = $3, updated_at = $4 WHERE id = $1")
            .bind(id).bind(url).bind(credentials).bind(now).execute(conn).await?;
    });
    Ok(())
}

pub async fn set_platform_url(tx: &mut Tx, id: i64, url: &str, now: i64) -> StoreResult<()> {
    on_tx!(tx, conn => {
        sqlx::query("UPDATE services SET platform_url = $2, updated_at = $3 WHERE id = $1")
            .bind(id).bind(url).bind(now).execute(conn).await?;
    });
    Ok(())
}
