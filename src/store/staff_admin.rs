//! SQL for staff administration: who holds which role where, changing one grant at a time,
//! taking an authenticator away, ending links, the 90-day inactivity sweep and the
//! once-per-period claim that lets one instance of many run a periodic task.

use super::staff::LinkRow;
use super::{Db, StoreResult, Tx};
use crate::{on_db, on_tx};

/// One person with one of their grants (or none: `role` is then None).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PersonGrantRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub status: String,
    pub last_sign_in_at: Option<i64>,
    pub created_at: i64,
    pub has_totp: bool,
    pub service_id: Option<i64>,
    pub role: Option<String>,
}

/// Every person with each of their grants, by name then email. Staff number in the hundreds,
/// so the caller narrows this to the services an administrator manages.
pub async fn people_with_grants(db: &Db) -> StoreResult<Vec<PersonGrantRow>> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, PersonGrantRow>(
        "SELECT s.id, s.email, s.name, s.status, s.last_sign_in_at, s.created_at, \
         (s.totp_secret IS NOT NULL) AS has_totp, g.service_id, g.role \
         FROM staff s LEFT JOIN staff_grants g ON g.staff_id = s.id \
         ORDER BY LOWER(s.name), s.email_key, s.id, g.service_id")
        .fetch_all(pool).await?))
}

/// The role a person holds in a service (None: the global role), as the transaction sees it.
pub async fn grant_in(
    tx: &mut Tx,
    staff_id: i64,
    service_id: Option<i64>,
) -> StoreResult<Option<String>> {
    Ok(match service_id {
        Some(service_id) => on_tx!(tx, conn => sqlx::query_scalar::<_, String>(
            "SELECT role FROM staff_grants WHERE staff_id = $1 AND service_id = $2")
            .bind(staff_id).bind(service_id).fetch_optional(conn).await?),
        None => on_tx!(tx, conn => sqlx::query_scalar::<_, String>(
            "SELECT role FROM staff_grants WHERE staff_id = $1 AND service_id IS NULL")
            .bind(staff_id).fetch_optional(conn).await?),
    })
}

/// Give a person `role` in a service (or globally), replacing the role they held there.
pub async fn put_grant(
    tx: &mut Tx,
    staff_id: i64,
    service_id: Option<i64>,
    role: &str,
    granted_by: &str,
    now: i64,
) -> StoreResult<()> {
    let n = match service_id {
        Some(service_id) => on_tx!(tx, conn => sqlx::query(
            "UPDATE staff_grants SET role = $3, granted_at = $4, granted_by = $5 \
             WHERE staff_id = $1 AND service_id = $2")
            .bind(staff_id).bind(service_id).bind(role).bind(now).bind(granted_by)
            .execute(conn).await?.rows_affected()),
        None => on_tx!(tx, conn => sqlx::query(
            "UPDATE staff_grants SET role = $2, granted_at = $3, granted_by = $4 \
             WHERE staff_id = $1 AND service_id IS NULL")
            .bind(staff_id).bind(role).bind(now).bind(granted_by)
            .execute(conn).await?.rows_affected()),
    };
    if n == 0 {
        super::staff::insert_grant(tx, staff_id, service_id, role, granted_by, now).await?;
    }
    Ok(())
}

/// Take away a person's role in a service (None: the global role); false if they held none.
pub async fn delete_grant(
    tx: &mut Tx,
    staff_id: i64,
    service_id: Option<i64>,
) -> StoreResult<bool> {
    let n = match service_id {
        Some(service_id) => on_tx!(tx, conn => sqlx::query(
            "DELETE FROM staff_grants WHERE staff_id = $1 AND service_id = $2")
            .bind(staff_id).bind(service_id).execute(conn).await?.rows_affected()),
        None => on_tx!(tx, conn => sqlx::query(
            "DELETE FROM staff_grants WHERE staff_id = $1 AND service_id IS NULL")
            .bind(staff_id).execute(conn).await?.rows_affected()),
    };
    Ok(n > 0)
}

/// How many roles a person holds, as the transaction sees it.
pub async fn grant_count(tx: &mut Tx, staff_id: i64) -> StoreResult<i64> {
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM staff_grants WHERE staff_id = $1")
        .bind(staff_id).fetch_one(conn).await?))
}

/// Forget a person's authenticator: the next sign-in asks them to set one up again.
pub async fn clear_totp(tx: &mut Tx, staff_id: i64, now: i64) -> StoreResult<bool> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE staff SET totp_secret = NULL, totp_last_step = NULL, updated_at = $2 WHERE id = $1")
        .bind(staff_id).bind(now).execute(conn).await?.rows_affected());
    Ok(n == 1)
}

/// End every unused link of a person (set-up and reset); returns how many ended.
pub async fn expire_links(tx: &mut Tx, staff_id: i64, now: i64) -> StoreResult<u64> {
    Ok(on_tx!(tx, conn => sqlx::query(
        "UPDATE staff_links SET expires_at = $2 WHERE staff_id = $1 AND used_at IS NULL AND expires_at > $2")
        .bind(staff_id).bind(now).execute(conn).await?.rows_affected()))
}

/// Set a person's status, and note that an administrator gave the account a fresh start now
/// (the inactivity check counts from here).
pub async fn reactivate(tx: &mut Tx, staff_id: i64, status: &str, now: i64) -> StoreResult<bool> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE staff SET status = $2, reactivated_at = $3, failed_attempts = 0, locked_until = NULL, \
         updated_at = $3 WHERE id = $1")
        .bind(staff_id).bind(status).bind(now).execute(conn).await?.rows_affected());
    Ok(n == 1)
}

/// Note a fresh start without changing the status (an invitation sent again).
pub async fn touch_reactivated(tx: &mut Tx, staff_id: i64, now: i64) -> StoreResult<()> {
    on_tx!(tx, conn => { sqlx::query(
        "UPDATE staff SET reactivated_at = $2, updated_at = $2 WHERE id = $1")
        .bind(staff_id).bind(now).execute(conn).await?; });
    Ok(())
}

/// A person's most recent set-up link.
pub async fn latest_setup_link(db: &Db, staff_id: i64) -> StoreResult<Option<LinkRow>> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, LinkRow>(
        "SELECT staff_id, purpose, created_at, expires_at, used_at FROM staff_links \
         WHERE staff_id = $1 AND purpose = 'setup' ORDER BY created_at DESC LIMIT 1")
        .bind(staff_id).fetch_optional(pool).await?))
}

/// An account the inactivity sweep disabled.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DisabledRow {
    pub id: i64,
    pub email: String,
    pub status: String,
    pub last_sign_in_at: Option<i64>,
}

/// Disable every account not disabled yet whose last sign-in (or, never signed in, its
/// creation) and last fresh start are all before `cutoff`. Returns the accounts, with the
/// status each had before.
pub async fn disable_unused_since(
    tx: &mut Tx,
    cutoff: i64,
    now: i64,
) -> StoreResult<Vec<DisabledRow>> {
    let ids = on_tx!(tx, conn => sqlx::query_as::<_, DisabledRow>(
        "SELECT id, email, status, last_sign_in_at FROM staff WHERE status <> 'disabled' \
         AND COALESCE(last_sign_in_at, created_at) < $1 AND COALESCE(reactivated_at, 0) < $1 ORDER BY id")
        .bind(cutoff).fetch_all(conn).await?);
    let mut disabled = Vec::with_capacity(ids.len());
    for row in ids {
        let n = on_tx!(tx, conn => sqlx::query(
            "UPDATE staff SET status = 'disabled', updated_at = $2 WHERE id = $1 AND status <> 'disabled'")
            .bind(row.id).bind(now).execute(conn).await?.rows_affected());
        if n == 1 {
            disabled.push(row);
        }
    }
    Ok(disabled)
}

/// Claim this period's run of a periodic task: true for exactly one caller per period, across
/// every instance sharing the database. The task's row is created due at once.
pub async fn claim_periodic(tx: &mut Tx, name: &str, now: i64, next: i64) -> StoreResult<bool> {
    let n = on_tx!(tx, conn => {
        sqlx::query("INSERT INTO periodic_runs (name, next_run_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name).bind(now).execute(&mut *conn).await?;
        sqlx::query("UPDATE periodic_runs SET next_run_at = $3 WHERE name = $1 AND next_run_at <= $2")
            .bind(name).bind(now).bind(next).execute(&mut *conn).await?.rows_affected()
    });
    Ok(n == 1)
}

pub async fn note_periodic_job(tx: &mut Tx, name: &str, job_id: i64) -> StoreResult<()> {
    on_tx!(tx, conn => { sqlx::query("UPDATE periodic_runs SET last_job_id = $2 WHERE name = $1")
        .bind(name).bind(job_id).execute(conn).await?; });
    Ok(())
}
