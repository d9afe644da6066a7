//! SQL for API tokens and the answers kept for their Idempotency-Key retries.

use super::{Db, StoreResult, Tx};
use crate::{on_db, on_tx};

/// A token as stored (never the token itself: only its hash).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub service_id: i64,
    pub name: String,
    pub token_prefix: String,
    pub scopes: String,
    pub created_by: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<i64>,
}

const COLUMNS: &str =
    "id, service_id, name, token_prefix, scopes, created_by, created_at, expires_at, \
    last_used_at, revoked_at, revoked_by";

/// A token with where its maker stands in its service now: their status and the roles they
/// hold there (or everywhere), read in the same query as the token.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TokenWithMaker {
    #[sqlx(flatten)]
    pub token: TokenRow,
    pub maker_status: Option<String>,
    pub maker_roles: Option<String>,
}

impl TokenWithMaker {
    /// The maker's standing as the standing module reads it.
    pub fn maker(&self) -> super::standing::HolderRow {
        super::standing::HolderRow {
            status: self.maker_status.clone(),
            roles: self.maker_roles.clone(),
        }
    }
}

/// The columns of a token (table alias `t`) and its maker's standing.
fn with_maker_columns(backend: super::Backend) -> String {
    let token: Vec<String> = COLUMNS
        .split(',')
        .map(|c| format!("t.{}", c.trim()))
        .collect();
    format!(
        "{}, (SELECT st.status FROM staff st WHERE st.id = t.created_by) AS maker_status, {} AS maker_roles",
        token.join(", "),
        super::standing::roles_sql(backend, "t.created_by", "t.service_id")
    )
}

/// The token whose hash is `token_hash`, whatever its state, with its maker's standing now:
/// one query per API request.
pub async fn by_hash_with_maker(db: &Db, token_hash: &str) -> StoreResult<Option<TokenWithMaker>> {
    let sql = format!(
        "SELECT {} FROM api_tokens t WHERE t.token_hash = $1",
        with_maker_columns(db.backend())
    );
    Ok(on_db!(db, pool => sqlx::query_as::<_, TokenWithMaker>(&sql)
        .bind(token_hash).fetch_optional(pool).await?))
}

/// Tokens of `services` with their makers' standing, newest first.
pub async fn in_services_with_makers(
    db: &Db,
    services: &[i64],
) -> StoreResult<Vec<TokenWithMaker>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (1..=services.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {} FROM api_tokens t WHERE t.service_id IN ({}) ORDER BY t.created_at DESC, t.id DESC",
        with_maker_columns(db.backend()),
        list.join(", ")
    );
    Ok(on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, TokenWithMaker>(&sql);
        for id in services {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await?
    }))
}

/// One token with its maker's standing.
pub async fn by_id_with_maker(db: &Db, id: i64) -> StoreResult<Option<TokenWithMaker>> {
    let sql = format!(
        "SELECT {} FROM api_tokens t WHERE t.id = $1",
        with_maker_columns(db.backend())
    );
    Ok(on_db!(db, pool => sqlx::query_as::<_, TokenWithMaker>(&sql)
        .bind(id).fetch_optional(pool).await?))
}

/// Hand a live token to another member of staff; false when it is revoked (or gone).
pub async fn set_owner(tx: &mut Tx, id: i64, owner: i64) -> StoreResult<bool> {
    let sql = "UPDATE api_tokens SET created_by = $2 WHERE id = $1 AND revoked_at IS NULL";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(owner).execute(conn).await?.rows_affected() == 1),
    )
}

/// A new token.
pub struct NewToken<'a> {
    pub service_id: i64,
    pub name: &'a str,
    pub token_hash: &'a str,
    pub token_prefix: &'a str,
    pub scopes: &'a str,
    pub created_by: i64,
    pub expires_at: Option<i64>,
}

pub async fn insert(tx: &mut Tx, t: &NewToken<'_>, now: i64) -> StoreResult<i64> {
    let sql = "INSERT INTO api_tokens (service_id, name, token_hash, token_prefix, scopes, created_by, created_at, expires_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql)
        .bind(t.service_id).bind(t.name).bind(t.token_hash).bind(t.token_prefix).bind(t.scopes)
        .bind(t.created_by).bind(now).bind(t.expires_at)
        .fetch_one(conn).await?))
}

/// The token whose hash is `token_hash`, whatever its state.
pub async fn by_hash(db: &Db, token_hash: &str) -> StoreResult<Option<TokenRow>> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, TokenRow>(&sql).bind(token_hash).fetch_optional(pool).await?),
    )
}

pub async fn by_id(db: &Db, id: i64) -> StoreResult<Option<TokenRow>> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, TokenRow>(&sql).bind(id).fetch_optional(pool).await?))
}

/// Tokens of `services`, newest first.
pub async fn in_services(db: &Db, services: &[i64]) -> StoreResult<Vec<TokenRow>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (1..=services.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE service_id IN ({}) ORDER BY created_at DESC, id DESC",
        list.join(", ")
    );
    Ok(on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, TokenRow>(&sql);
        for id in services {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await?
    }))
}

/// Every token, newest first (platform admins).
pub async fn all(db: &Db) -> StoreResult<Vec<TokenRow>> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC, id DESC");
    Ok(on_db!(db, pool => sqlx::query_as::<_, TokenRow>(&sql).fetch_all(pool).await?))
}

/// Revoke a token not yet revoked; false when it already was.
pub async fn revoke(tx: &mut Tx, id: i64, by: i64, now: i64) -> StoreResult<bool> {
    let sql = "UPDATE api_tokens SET revoked_at = $3, revoked_by = $2 WHERE id = $1 AND revoked_at IS NULL";
    Ok(
        on_tx!(tx, conn => sqlx::query(sql).bind(id).bind(by).bind(now).execute(conn).await?.rows_affected() == 1),
    )
}

/// Note that the token was used (callers limit how often: this is a write).
pub async fn touch(db: &Db, id: i64, now: i64) -> StoreResult<()> {
    let sql = "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
    match db {
        Db::Sqlite(_, writer) => {
            sqlx::query(sql)
                .bind(id)
                .bind(now)
                .execute(&writer.pool)
                .await?;
        }
        Db::Postgres(pool, _) => {
            sqlx::query(sql).bind(id).bind(now).execute(pool).await?;
        }
    }
    Ok(())
}

/// A kept answer: the request's fingerprint, and (once answered) status and body.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct KeptAnswer {
    pub fingerprint: String,
    pub status: Option<i64>,
    pub body: Option<String>,
    pub created_at: i64,
}

/// Claim `key` for a request with `fingerprint`: true when this caller is the first (it
/// must then answer or release the claim).
pub async fn claim_key(
    db: &Db,
    token_id: i64,
    key: &str,
    fingerprint: &str,
    now: i64,
) -> StoreResult<bool> {
    let sql = "INSERT INTO api_idempotency (token_id, idem_key, fingerprint, created_at) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (token_id, idem_key) DO NOTHING";
    let n = match db {
        Db::Sqlite(_, writer) => sqlx::query(sql)
            .bind(token_id)
            .bind(key)
            .bind(fingerprint)
            .bind(now)
            .execute(&writer.pool)
            .await?
            .rows_affected(),
        Db::Postgres(pool, _) => sqlx::query(sql)
            .bind(token_id)
            .bind(key)
            .bind(fingerprint)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
    };
    Ok(n == 1)
}

/// Take over a claim left unanswered since before `stale_before` (its request died): true
/// for the one caller that gets it.
pub async fn retake_key(
    db: &Db,
    token_id: i64,
    key: &str,
    now: i64,
    stale_before: i64,
) -> StoreResult<bool> {
    let sql = "UPDATE api_idempotency SET created_at = $3 WHERE token_id = $1 AND idem_key = $2 \
               AND status IS NULL AND created_at < $4";
    let n = match db {
        Db::Sqlite(_, writer) => sqlx::query(sql)
            .bind(token_id)
            .bind(key)
            .bind(now)
            .bind(stale_before)
            .execute(&writer.pool)
            .await?
            .rows_affected(),
        Db::Postgres(pool, _) => sqlx::query(sql)
            .bind(token_id)
            .bind(key)
            .bind(now)
            .bind(stale_before)
            .execute(pool)
            .await?
            .rows_affected(),
    };
    Ok(n == 1)
}

pub async fn kept(db: &Db, token_id: i64, key: &str) -> StoreResult<Option<KeptAnswer>> {
    let sql = "SELECT fingerprint, status, body, created_at FROM api_idempotency WHERE token_id = $1 AND idem_key = $2";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, KeptAnswer>(sql).bind(token_id).bind(key).fetch_optional(pool).await?),
    )
}

/// Keep the answer to a claimed key.
pub async fn keep_answer(
    db: &Db,
    token_id: i64,
    key: &str,
    status: i64,
    body: &str,
) -> StoreResult<()> {
    let sql =
        "UPDATE api_idempotency SET status = $3, body = $4 WHERE token_id = $1 AND idem_key = $2";
    match db {
        Db::Sqlite(_, writer) => {
            sqlx::query(sql)
                .bind(token_id)
                .bind(key)
                .bind(status)
                .bind(body)
                .execute(&writer.pool)
                .await?;
        }
        Db::Postgres(pool, _) => {
            sqlx::query(sql)
                .bind(token_id)
                .bind(key)
                .bind(status)
                .bind(body)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// Give a claimed key up (its request changed nothing), so that a retry starts afresh.
pub async fn release_key(db: &Db, token_id: i64, key: &str) -> StoreResult<()> {
    let sql =
        "DELETE FROM api_idempotency WHERE token_id = $1 AND idem_key = $2 AND status IS NULL";
    match db {
        Db::Sqlite(_, writer) => {
            sqlx::query(sql)
                .bind(token_id)
                .bind(key)
                .execute(&writer.pool)
                .await?;
        }
        Db::Postgres(pool, _) => {
            sqlx::query(sql)
                .bind(token_id)
                .bind(key)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// Forget a token's kept answers older than `before`.
pub async fn forget_keys_before(db: &Db, token_id: i64, before: i64) -> StoreResult<u64> {
    let sql = "DELETE FROM api_idempotency WHERE token_id = $1 AND created_at < $2";
    Ok(match db {
        Db::Sqlite(_, writer) => sqlx::query(sql)
            .bind(token_id)
            .bind(before)
            .execute(&writer.pool)
            .await?
            .rows_affected(),
        Db::Postgres(pool, _) => sqlx::query(sql)
            .bind(token_id)
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    })
}

/// Whether a live (unrevoked) token of the service already has this name, in any case.
pub async fn live_name_taken(tx: &mut Tx, service_id: i64, name: &str) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM api_tokens WHERE service_id = $1 AND lower(name) = lower($2) AND revoked_at IS NULL";
    Ok(
        on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(sql).bind(service_id).bind(name).fetch_one(conn).await?)
            > 0,
    )
}
