//! SQL for the dashboard: money in and out over a period, failures by reason and the counts
//! behind "needs attention", for a list of services.
//!
//! Every query names its services explicitly (`service_id IN (…)`, one bind each) so that
//! the indexes that lead with `service_id` serve it, and a person never sees another
//! service's money. Local days are not the database's business: the caller gives each day's
//! start and end as UTC instants.

use std::collections::BTreeSet;

use sqlx::QueryBuilder;

use super::{Db, StoreResult};
use crate::on_db;

/// Services by id and name, ordered by name: every service (`None`) or only those in `only`.
pub async fn services(db: &Db, only: Option<&BTreeSet<i64>>) -> StoreResult<Vec<(i64, String)>> {
    if only.is_some_and(|s| s.is_empty()) {
        return Ok(Vec::new());
    }
    Ok(on_db!(db, pool => {
        let mut qb = QueryBuilder::new("SELECT id, name FROM services");
        if let Some(ids) = only {
            qb.push(" WHERE id IN (");
            let mut list = qb.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            qb.push(")");
        }
        qb.push(" ORDER BY name, id");
        qb.build_query_as::<(i64, String)>().fetch_all(pool).await?
    }))
}

/// Successful payments in `services` for each of `days` (`[start, end)` in microseconds):
/// (count, sum of amounts in pence), in the order given.
///
/// One statement; each day is two index range scans of `journeys_service_status`
/// (`service_id = ? AND status = 'success' AND created_at >= ? AND created_at < ?` per
/// service), which holds the amount too (migration 0005), so the table itself is never read;
/// local days need no time-zone arithmetic in the database and no rows are sorted to group
/// them.
pub async fn successful_payments_by_day(
    db: &Db,
    services: &[i64],
    days: &[(i64, i64)],
) -> StoreResult<Vec<(i64, i64)>> {
    if services.is_empty() || days.is_empty() {
        return Ok(vec![(0, 0); days.len()]);
    }
    let rows: Vec<(i64, i64, Option<i64>)> = on_db!(db, pool => {
        let mut qb = QueryBuilder::new("SELECT d.column1");
        for aggregate in ["COUNT(*)", "CAST(SUM(j.amount) AS BIGINT)"] {
            qb.push(", (SELECT ");
            qb.push(aggregate);
            qb.push(" FROM journeys j WHERE j.service_id IN (");
            let mut list = qb.separated(", ");
            for id in services {
                list.push_bind(*id);
            }
            qb.push(") AND j.status = 'success' AND j.created_at >= d.column2 AND j.created_at < d.column3)");
        }
        qb.push(" FROM (");
        qb.push_values(days.iter().enumerate(), |mut b, (i, (start, end))| {
            b.push_bind(i as i64).push_bind(*start).push_bind(*end);
        });
        qb.push(") AS d ORDER BY d.column1");
        qb.build_query_as::<(i64, i64, Option<i64>)>().fetch_all(pool).await?
    });
    let mut out = vec![(0, 0); days.len()];
    for (i, count, sum) in rows {
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            *slot = (count, sum.unwrap_or(0));
        }
    }
    Ok(out)
}

/// Refunds created in `[from, to)` in `services`, by status: (status, count, sum in pence).
/// Only `success` (money returned): failed refunds are counted by `refunds::failed`.
pub async fn refunds_by_status(
    db: &Db,
    services: &[i64],
    from: i64,
    to: i64,
) -> StoreResult<Vec<(String, i64, i64)>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_db!(db, pool => {
        let mut qb = QueryBuilder::new(
            "SELECT status, COUNT(*) AS refunds, CAST(SUM(amount) AS BIGINT) AS total FROM platform_refunds WHERE service_id IN (",
        );
        let mut list = qb.separated(", ");
        for id in services {
            list.push_bind(*id);
        }
        qb.push(") AND status = 'success' AND created_at >= ");
        qb.push_bind(from);
        qb.push(" AND created_at < ");
        qb.push_bind(to);
        qb.push(" GROUP BY status");
        qb.build_query_as::<(String, i64, Option<i64>)>().fetch_all(pool).await?
    })
    .into_iter()
    .map(|(s, n, sum)| (s, n, sum.unwrap_or(0)))
    .collect())
}

/// Journeys created in `[from, to)` in `services` that ended badly (failed, cancelled or
/// error), grouped by the platform's code and message: (code, message, count), most first.
pub async fn failures_by_reason(
    db: &Db,
    services: &[i64],
    from: i64,
    to: i64,
) -> StoreResult<Vec<(Option<String>, Option<String>, i64)>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_db!(db, pool => {
        let mut qb = QueryBuilder::new(
            "SELECT state_code, state_message, COUNT(*) AS journeys FROM journeys WHERE service_id IN (",
        );
        let mut list = qb.separated(", ");
        for id in services {
            list.push_bind(*id);
        }
        qb.push(") AND status IN ('failed', 'cancelled', 'error') AND created_at >= ");
        qb.push_bind(from);
        qb.push(" AND created_at < ");
        qb.push_bind(to);
        qb.push(" GROUP BY state_code, state_message ORDER BY COUNT(*) DESC, state_code, state_message");
        qb.build_query_as::<(Option<String>, Option<String>, i64)>().fetch_all(pool).await?
    }))
}

/// Journeys in `services` flagged "needs attention" now (served by the partial index
/// `journeys_service_attention`).
pub async fn needing_attention(db: &Db, services: &[i64]) -> StoreResult<i64> {
    if services.is_empty() {
        return Ok(0);
    }
    Ok(on_db!(db, pool => {
        let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM journeys WHERE service_id IN (");
        let mut list = qb.separated(", ");
        for id in services {
            list.push_bind(*id);
        }
        qb.push(") AND needs_attention");
        qb.build_query_scalar::<i64>().fetch_one(pool).await?
    }))
}

/// Jobs that used up their attempts (`dead`), across the whole platform.
pub async fn dead_jobs(db: &Db) -> StoreResult<i64> {
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE state = 'dead'")
        .fetch_one(pool).await?),
    )
}
