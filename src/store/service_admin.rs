//! SQL for the service settings pages: a service's whole editable row, saved at once, and the
//! deep-link templates and case references that payment pages link with.

use super::{Db, StoreResult, Tx};
use crate::{on_db, on_tx};

/// The settings the service pages edit besides those `services::ServiceAccount` carries.
#[derive(Debug, Clone, PartialEq, Default, sqlx::FromRow)]
pub struct ExtraSettingsRow {
    pub refund_approval_threshold: Option<i64>,
    pub refund_case_reference_required: bool,
    pub refund_email_enabled: bool,
    pub refund_email_subject: Option<String>,
    pub refund_email_text: Option<String>,
    pub deep_link_template: Option<String>,
}

pub async fn extra_settings(db: &Db, service_id: i64) -> StoreResult<Option<ExtraSettingsRow>> {
    let sql = "SELECT refund_approval_threshold, refund_case_reference_required, refund_email_enabled, \
               refund_email_subject, refund_email_text, deep_link_template FROM services WHERE id = $1";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, ExtraSettingsRow>(sql).bind(service_id).fetch_optional(pool).await?),
    )
}

/// Everything a save writes; secrets arrive sealed.
pub struct ServiceUpdate<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub time_zone: &'a str,
    pub platform_url: Option<&'a str>,
    pub credentials: Option<&'a str>,
    pub webhook_secret: Option<&'a str>,
    pub extra: &'a ExtraSettingsRow,
}

/// Save a service's settings. `updated_at` always moves forward, even when the clock has
/// not (a manual clock, two saves in the same microsecond): platform clients are cached by
/// it, so a save must never leave a client made from the old settings in use.
pub async fn update(tx: &mut Tx, id: i64, u: &ServiceUpdate<'_>, now: i64) -> StoreResult<bool> {
    let sql = "UPDATE services SET slug = $2, name = $3, time_zone = $4, platform_url = $5, \
               credentials = $6, webhook_secret = $7, refund_approval_threshold = $8, \
               refund_case_reference_required = $9, refund_email_enabled = $10, refund_email_subject = $11, \
               refund_email_text = $12, deep_link_template = $13, \
               updated_at = CASE WHEN updated_at IS NULL OR updated_at < $14 THEN $14 ELSE updated_at + 1 END \
               WHERE id = $1";
    let n = on_tx!(tx, conn => sqlx::query(sql)
        .bind(id).bind(u.slug).bind(u.name).bind(u.time_zone).bind(u.platform_url)
        .bind(u.credentials).bind(u.webhook_secret)
        .bind(u.extra.refund_approval_threshold).bind(u.extra.refund_case_reference_required)
        .bind(u.extra.refund_email_enabled).bind(&u.extra.refund_email_subject)
        .bind(&u.extra.refund_email_text).bind(&u.extra.deep_link_template).bind(now)
        .execute(conn).await?.rows_affected());
    Ok(n == 1)
}

/// Whether another service than `except` already has `slug`.
pub async fn slug_taken(db: &Db, slug: &str, except: Option<i64>) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM services WHERE slug = $1 AND id <> $2";
    let n: i64 = on_db!(db, pool => sqlx::query_scalar(sql).bind(slug).bind(except.unwrap_or(-1)).fetch_one(pool).await?);
    Ok(n > 0)
}

/// The case reference of each of `journey_ids` that has one.
pub async fn case_references(db: &Db, journey_ids: &[i64]) -> StoreResult<Vec<(i64, String)>> {
    if journey_ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = placeholders(1, journey_ids.len());
    let sql = format!(
        "SELECT id, case_reference FROM journeys WHERE id IN ({list}) AND case_reference IS NOT NULL"
    );
    Ok(on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
        for id in journey_ids {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await?
    }))
}

/// `$from, $from+1, …` for `n` values.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
