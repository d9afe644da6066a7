//! Form answers kept between a POST and the GET page after it (`crate::drafts`).

use super::{Db, StoreResult};

/// Keep `body` under `key` for `staff_id` until `expires_at`, replacing what the key held;
/// drafts past their time are deleted on the way.
pub async fn put(
    db: &Db,
    key: &str,
    staff_id: i64,
    kind: &str,
    body: &str,
    now: i64,
    expires_at: i64,
) -> StoreResult<()> {
    let tidy = "DELETE FROM form_drafts WHERE expires_at < $1";
    let keep = "INSERT INTO form_drafts (draft_key, staff_id, kind, body, expires_at) \
                VALUES ($1, $2, $3, $4, $5) \
                ON CONFLICT (draft_key) DO UPDATE SET body = excluded.body, \
                expires_at = excluded.expires_at \
                WHERE form_drafts.staff_id = excluded.staff_id AND form_drafts.kind = excluded.kind";
    macro_rules! run {
        ($pool:expr) => {{
            sqlx::query(tidy).bind(now).execute($pool).await?;
            sqlx::query(keep)
                .bind(key)
                .bind(staff_id)
                .bind(kind)
                .bind(body)
                .bind(expires_at)
                .execute($pool)
                .await?;
        }};
    }
    match db {
        Db::Sqlite(_, writer) => run!(&writer.pool),
        Db::Postgres(pool, _) => run!(pool),
    }
    Ok(())
}

/// The body kept under `key` for this person and kind, if it has not expired.
pub async fn get(
    db: &Db,
    key: &str,
    staff_id: i64,
    kind: &str,
    now: i64,
) -> StoreResult<Option<String>> {
    let sql = "SELECT body FROM form_drafts \
               WHERE draft_key = $1 AND staff_id = $2 AND kind = $3 AND expires_at >= $4";
    Ok(
        crate::on_db!(db, pool => sqlx::query_scalar::<_, String>(sql)
        .bind(key)
        .bind(staff_id)
        .bind(kind)
        .bind(now)
        .fetch_optional(pool)
        .await?),
    )
}

/// Forget the draft under `key` of this person.
pub async fn delete(db: &Db, key: &str, staff_id: i64) -> StoreResult<()> {
    let sql = "DELETE FROM form_drafts WHERE draft_key = $1 AND staff_id = $2";
    match db {
        Db::Sqlite(_, writer) => {
            sqlx::query(sql)
                .bind(key)
                .bind(staff_id)
                .execute(&writer.pool)
                .await?;
        }
        Db::Postgres(pool, _) => {
            sqlx::query(sql)
                .bind(key)
                .bind(staff_id)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}
