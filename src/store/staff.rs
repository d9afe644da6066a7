//! SQL for staff identity: staff, roles, sessions, one-time links,
//! password history and single sign-on identities.

use sqlx::{FromRow, Row};

use super::{Backend, Db, StoreError, StoreResult, Tx};
use crate::{on_db, on_tx};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StaffRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub status: String,
    pub password_hash: Option<String>,
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    pub failed_attempts: i64,
    pub locked_until: Option<i64>,
    pub last_sign_in_at: Option<i64>,
    pub password_changed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const STAFF_COLUMNS: &str = "id, email, name, status, password_hash, totp_secret, totp_last_step, failed_attempts, locked_until, last_sign_in_at, password_changed_at, created_at, updated_at";

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GrantRow {
    pub staff_id: i64,
    pub service_id: Option<i64>,
    pub role: String,
    pub service_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SessionRow {
    pub id: i64,
    pub id_hash: String,
    pub staff_id: i64,
    pub stage: String,
    pub auth_method: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub second_factor_at: Option<i64>,
    pub pending_totp_secret: Option<String>,
    pub return_to: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

const SESSION_COLUMNS: &str = "id, id_hash, staff_id, stage, auth_method, created_at, last_seen_at, second_factor_at, pending_totp_secret, return_to, ip, user_agent";

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LinkRow {
    pub staff_id: i64,
    pub purpose: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OidcFlowRow {
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: Option<String>,
    pub expires_at: i64,
}

// ---- staff ----------------------------------------------------------------------------

pub async fn insert_staff(
    tx: &mut Tx,
    email: &str,
    email_key: &str,
    name: &str,
    now: i64,
) -> StoreResult<Option<i64>> {
    // ON CONFLICT DO NOTHING: an address already in use yields no row instead of an error
    // that would abort the transaction on PostgreSQL.
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "INSERT INTO staff (email, email_key, name, status, created_at, updated_at) \
         VALUES ($1, $2, $3, 'invited', $4, $4) ON CONFLICT (email_key) DO NOTHING RETURNING id")
        .bind(email).bind(email_key).bind(name).bind(now).fetch_optional(conn).await?))
}

pub async fn staff_by_email_key(db: &Db, email_key: &str) -> StoreResult<Option<StaffRow>> {
    let sql = format!("SELECT {STAFF_COLUMNS} FROM staff WHERE email_key = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, StaffRow>(&sql)
        .bind(email_key).fetch_optional(pool).await?))
}

pub async fn staff_by_id(db: &Db, id: i64) -> StoreResult<Option<StaffRow>> {
    let sql = format!("SELECT {STAFF_COLUMNS} FROM staff WHERE id = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, StaffRow>(&sql)
        .bind(id).fetch_optional(pool).await?))
}

/// The row as the transaction sees it (after `BEGIN IMMEDIATE` on SQLite, or locked with
/// `FOR UPDATE` on PostgreSQL), for read-then-write changes such as counting failures.
pub async fn staff_for_update(tx: &mut Tx, id: i64) -> StoreResult<Option<StaffRow>> {
    let sql = match tx {
        Tx::Sqlite(..) => format!("SELECT {STAFF_COLUMNS} FROM staff WHERE id = $1"),
        Tx::Postgres(..) => format!("SELECT {STAFF_COLUMNS} FROM staff WHERE id = $1 FOR UPDATE"),
    };
    Ok(on_tx!(tx, conn => sqlx::query_as::<_, StaffRow>(&sql)
        .bind(id).fetch_optional(conn).await?))
}

pub async fn record_failure(
    tx: &mut Tx,
    id: i64,
    failed_attempts: i64,
    locked_until: Option<i64>,
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, conn => { sqlx::query(
        "UPDATE staff SET failed_attempts = $2, locked_until = $3, updated_at = $4 WHERE id = $1")
        .bind(id).bind(failed_attempts).bind(locked_until).bind(now).execute(conn).await?; });
    Ok(())
}

pub async fn record_sign_in(tx: &mut Tx, id: i64, now: i64) -> StoreResult<()> {
    on_tx!(tx, conn => { sqlx::query(
        "UPDATE staff SET failed_attempts = 0, locked_until = NULL, last_sign_in_at = $2, \
         status = CASE WHEN status = 'invited' THEN 'active' ELSE status END, updated_at = $2 WHERE id = $1")
        .bind(id).bind(now).execute(conn).await?; });
    Ok(())
}

/// Accept a TOTP step only if it is newer than the last one used: a compare-and-set, so the
/// same code submitted twice at once succeeds once.
pub async fn use_totp_step(tx: &mut Tx, id: i64, step: i64, now: i64) -> StoreResult<bool> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE staff SET totp_last_step = $2, updated_at = $3 \
         WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)")
        .bind(id).bind(step).bind(now).execute(conn).await?.rows_affected());
    Ok(n == 1)
}

pub async fn set_totp(tx: &mut Tx, id: i64, sealed: &str, step: i64, now: i64) -> StoreResult<()> {
    on_tx!(tx, conn => { sqlx::query(
        "UPDATE staff SET totp_secret = $2, totp_last_step = $3, updated_at = $4 WHERE id = $1")
        .bind(id).bind(sealed).bind(step).bind(now).execute(conn).await?; });
    Ok(())
}

/// Set a new password, keeping the old hash in the history.
pub async fn set_password(tx: &mut Tx, id: i64, new_hash: &str, now: i64) -> StoreResult<()> {
    on_tx!(tx, conn => {
        sqlx::query("INSERT INTO password_history (staff_id, password_hash, retired_at) \
                     SELECT id, password_hash, $2 FROM staff WHERE id = $1 AND password_hash IS NOT NULL")
            .bind(id).bind(now).execute(&mut *conn).await?;
        sqlx::query("UPDATE staff SET password_hash = $2, password_changed_at = $3, failed_attempts = 0, \
                     locked_until = NULL, updated_at = $3 WHERE id = $1")
            .bind(id).bind(new_hash).bind(now).execute(&mut *conn).await?;
    });
    Ok(())
}

/// The most recent retired password hashes, newest first.
pub async fn password_history(db: &Db, id: i64, limit: i64) -> StoreResult<Vec<String>> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, String>(
        "SELECT password_hash FROM password_history WHERE staff_id = $1 ORDER BY retired_at DESC LIMIT $2")
        .bind(id).bind(limit).fetch_all(pool).await?))
}

pub async fn set_status(tx: &mut Tx, id: i64, status: &str, now: i64) -> StoreResult<bool> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE staff SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(id).bind(status).bind(now).execute(conn).await?.rows_affected());
    Ok(n == 1)
}

// ---- grants ---------------------------------------------------------------------------

pub async fn insert_grant(
    tx: &mut Tx,
    staff_id: i64,
    service_id: Option<i64>,
    role: &str,
    granted_by: &str,
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, conn => { sqlx::query(
        "INSERT INTO staff_grants (staff_id, service_id, role, granted_at, granted_by) VALUES ($1, $2, $3, $4, $5)")
        .bind(staff_id).bind(service_id).bind(role).bind(now).bind(granted_by).execute(conn).await?; });
    Ok(())
}

/// Take every role away from a person (their account stays).
pub async fn delete_grants_of(tx: &mut Tx, staff_id: i64) -> StoreResult<u64> {
    Ok(
        on_tx!(tx, conn => sqlx::query("DELETE FROM staff_grants WHERE staff_id = $1")
        .bind(staff_id).execute(conn).await?.rows_affected()),
    )
}

pub async fn grants(db: &Db, staff_id: i64) -> StoreResult<Vec<GrantRow>> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, GrantRow>(
        "SELECT g.staff_id, g.service_id, g.role, s.name AS service_name FROM staff_grants g \
         LEFT JOIN services s ON s.id = g.service_id WHERE g.staff_id = $1 ORDER BY s.name, g.role")
        .bind(staff_id).fetch_all(pool).await?))
}

/// A person and their grants in one query (a signed-in page asks for both on every
/// request): the grants ordered by service name (every-service grants first), then role.
pub async fn staff_with_grants(db: &Db, id: i64) -> StoreResult<Option<(StaffRow, Vec<GrantRow>)>> {
    let packed = match db.backend() {
        Backend::Sqlite => {
            "(SELECT json_group_array(json_array(g.service_id, g.role, s.name)) FROM staff_grants g \
             LEFT JOIN services s ON s.id = g.service_id WHERE g.staff_id = staff.id)"
        }
        Backend::Postgres => {
            "(SELECT COALESCE(CAST(json_agg(json_build_array(g.service_id, g.role, s.name)) AS TEXT), '[]') \
             FROM staff_grants g LEFT JOIN services s ON s.id = g.service_id WHERE g.staff_id = staff.id)"
        }
    };
    let sql = format!("SELECT {STAFF_COLUMNS}, {packed} AS grants FROM staff WHERE id = $1");
    let row = on_db!(db, pool => {
        match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
            Some(r) => Some((StaffRow::from_row(&r)?, r.try_get::<String, _>("grants")?)),
            None => None,
        }
    });
    let Some((staff, packed)) = row else {
        return Ok(None);
    };
    let grants: Vec<(Option<i64>, String, Option<String>)> = serde_json::from_str(&packed)
        .map_err(|e| StoreError::Invalid(format!("grants of staff {id} read badly: {e}")))?;
    let mut grants: Vec<GrantRow> = grants
        .into_iter()
        .map(|(service_id, role, service_name)| GrantRow {
            staff_id: id,
            service_id,
            role,
            service_name,
        })
        .collect();
    grants.sort_by(|a, b| (&a.service_name, &a.role).cmp(&(&b.service_name, &b.role)));
    Ok(Some((staff, grants)))
}

// ---- sessions -------------------------------------------------------------------------

pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub staff_id: i64,
    pub stage: &'a str,
    pub auth_method: &'a str,
    pub second_factor_at: Option<i64>,
    pub return_to: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub async fn insert_session(tx: &mut Tx, s: &NewSession<'_>, now: i64) -> StoreResult<i64> {
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "INSERT INTO sessions (id_hash, staff_id, stage, auth_method, created_at, last_seen_at, second_factor_at, return_to, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9) RETURNING id")
        .bind(s.id_hash).bind(s.staff_id).bind(s.stage).bind(s.auth_method).bind(now)
        .bind(s.second_factor_at).bind(s.return_to).bind(s.ip).bind(s.user_agent)
        .fetch_one(conn).await?))
}

pub async fn session_by_hash(db: &Db, id_hash: &str) -> StoreResult<Option<SessionRow>> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, SessionRow>(&sql)
        .bind(id_hash).fetch_optional(pool).await?))
}

/// Take a session out of the table, returning it: used when a sign-in step completes, so
/// that one pending session can be promoted only once.
pub async fn take_session(tx: &mut Tx, id_hash: &str) -> StoreResult<Option<SessionRow>> {
    let sql = format!("DELETE FROM sessions WHERE id_hash = $1 RETURNING {SESSION_COLUMNS}");
    Ok(on_tx!(tx, conn => sqlx::query_as::<_, SessionRow>(&sql)
        .bind(id_hash).fetch_optional(conn).await?))
}

pub async fn touch_session(db: &Db, id_hash: &str, now: i64) -> StoreResult<()> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, conn => { sqlx::query(
        "UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2")
        .bind(id_hash).bind(now).execute(conn).await?; });
    tx.commit().await
}

pub async fn set_session_pending_totp(
    tx: &mut Tx,
    id_hash: &str,
    sealed: Option<&str>,
) -> StoreResult<()> {
    on_tx!(tx, conn => { sqlx::query("UPDATE sessions SET pending_totp_secret = $2 WHERE id_hash = $1")
        .bind(id_hash).bind(sealed).execute(conn).await?; });
    Ok(())
}

pub async fn set_session_second_factor(tx: &mut Tx, id_hash: &str, now: i64) -> StoreResult<()> {
    on_tx!(tx, conn => { sqlx::query("UPDATE sessions SET second_factor_at = $2, last_seen_at = $2 WHERE id_hash = $1")
        .bind(id_hash).bind(now).execute(conn).await?; });
    Ok(())
}

pub async fn delete_session(tx: &mut Tx, id_hash: &str) -> StoreResult<bool> {
    let n = on_tx!(tx, conn => sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash).execute(conn).await?.rows_affected());
    Ok(n > 0)
}

/// Delete one of a person's sessions by its handle; false if it is not theirs.
pub async fn delete_session_of(tx: &mut Tx, staff_id: i64, handle: i64) -> StoreResult<bool> {
    let n = on_tx!(tx, conn => sqlx::query("DELETE FROM sessions WHERE id = $1 AND staff_id = $2")
        .bind(handle).bind(staff_id).execute(conn).await?.rows_affected());
    Ok(n > 0)
}

/// Delete every session of a person except `keep` (an id hash), returning how many went.
pub async fn delete_sessions_of(
    tx: &mut Tx,
    staff_id: i64,
    keep: Option<&str>,
) -> StoreResult<u64> {
    Ok(
        on_tx!(tx, conn => sqlx::query("DELETE FROM sessions WHERE staff_id = $1 AND ($2 IS NULL OR id_hash <> $2)")
        .bind(staff_id).bind(keep).execute(conn).await?.rows_affected()),
    )
}

pub async fn sessions_of(db: &Db, staff_id: i64) -> StoreResult<Vec<SessionRow>> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE staff_id = $1 AND stage = 'active' ORDER BY last_seen_at DESC, id DESC");
    Ok(on_db!(db, pool => sqlx::query_as::<_, SessionRow>(&sql)
        .bind(staff_id).fetch_all(pool).await?))
}

/// Remove sessions that can no longer be used (for housekeeping).
pub async fn delete_sessions_before(
    tx: &mut Tx,
    last_seen_before: i64,
    created_before: i64,
) -> StoreResult<u64> {
    Ok(
        on_tx!(tx, conn => sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2")
        .bind(last_seen_before).bind(created_before).execute(conn).await?.rows_affected()),
    )
}

// ---- one-time links ---------------------------------------------------------------------

/// How many links of `purpose` were made for this person since `since`.
pub async fn links_created_since(
    db: &Db,
    staff_id: i64,
    purpose: &str,
    since: i64,
) -> StoreResult<i64> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM staff_links WHERE staff_id = $1 AND purpose = $2 AND created_at >= $3")
        .bind(staff_id).bind(purpose).bind(since).fetch_one(pool).await?))
}

pub async fn insert_link(
    tx: &mut Tx,
    id_hash: &str,
    staff_id: i64,
    purpose: &str,
    expires_at: i64,
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, conn => {
        // A new link of the same purpose replaces any earlier one that was not used.
        sqlx::query("UPDATE staff_links SET expires_at = $3 WHERE staff_id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3")
            .bind(staff_id).bind(purpose).bind(now).execute(&mut *conn).await?;
        sqlx::query("INSERT INTO staff_links (id_hash, staff_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id_hash).bind(staff_id).bind(purpose).bind(now).bind(expires_at).execute(&mut *conn).await?;
    });
    Ok(())
}

pub async fn link(db: &Db, id_hash: &str) -> StoreResult<Option<LinkRow>> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, LinkRow>(
        "SELECT staff_id, purpose, created_at, expires_at, used_at FROM staff_links WHERE id_hash = $1")
        .bind(id_hash).fetch_optional(pool).await?))
}

/// Mark a link used if it is still usable; true when this call used it.
pub async fn use_link(
    tx: &mut Tx,
    id_hash: &str,
    purpose: &str,
    now: i64,
) -> StoreResult<Option<i64>> {
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "UPDATE staff_links SET used_at = $3 WHERE id_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 RETURNING staff_id")
        .bind(id_hash).bind(purpose).bind(now).fetch_optional(conn).await?))
}

// ---- single sign-on ---------------------------------------------------------------------

pub async fn oidc_identity(db: &Db, issuer: &str, subject: &str) -> StoreResult<Option<i64>> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT staff_id FROM oidc_identities WHERE issuer = $1 AND subject = $2")
        .bind(issuer).bind(subject).fetch_optional(pool).await?))
}

pub async fn insert_oidc_identity(
    tx: &mut Tx,
    issuer: &str,
    subject: &str,
    staff_id: i64,
    now: i64,
) -> StoreResult<bool> {
    let n = on_tx!(tx, conn => sqlx::query(
        "INSERT INTO oidc_identities (issuer, subject, staff_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
        .bind(issuer).bind(subject).bind(staff_id).bind(now).execute(conn).await?.rows_affected());
    Ok(n == 1)
}

pub async fn insert_oidc_flow(
    tx: &mut Tx,
    state_hash: &str,
    flow: &OidcFlowRow,
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, conn => {
        sqlx::query("DELETE FROM oidc_flows WHERE expires_at < $1").bind(now).execute(&mut *conn).await?;
        sqlx::query("INSERT INTO oidc_flows (state_hash, provider, nonce, pkce_verifier, return_to, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(state_hash).bind(&flow.provider).bind(&flow.nonce).bind(&flow.pkce_verifier)
            .bind(&flow.return_to).bind(now).bind(flow.expires_at).execute(&mut *conn).await?;
    });
    Ok(())
}

/// Take the flow for a `state` out of the table: each state is good for one callback.
pub async fn take_oidc_flow(tx: &mut Tx, state_hash: &str) -> StoreResult<Option<OidcFlowRow>> {
    Ok(on_tx!(tx, conn => sqlx::query_as::<_, OidcFlowRow>(
        "DELETE FROM oidc_flows WHERE state_hash = $1 RETURNING provider, nonce, pkce_verifier, return_to, expires_at")
        .bind(state_hash).fetch_optional(conn).await?))
}
