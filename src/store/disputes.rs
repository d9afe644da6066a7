//! SQL for disputes: the upsert that never moves a dispute back (a lower status rank, or the
//! other final status, leaves the row as it is), each status reached written once to the
//! dispute's history, and the reads the disputes page, the payment page, the dashboard, the
//! refunds and the sync need.

use super::sql::{bound, Builder, Built};
use super::{Backend, Db, StoreResult, Tx};
use crate::{on_db, on_tx};

/// A dispute as the platform reported it, ready to store (times in UTC microseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeRecord {
    pub dispute_id: String,
    pub payment_id: String,
    pub amount: i64,
    pub fee: Option<i64>,
    pub net_amount: Option<i64>,
    pub reason: Option<String>,
    pub status: &'static str,
    pub status_rank: i32,
    pub evidence_due_at: Option<i64>,
    pub created_at: i64,
    pub settled_date: Option<String>,
}

/// Store `r` unless the stored dispute is further along; write the statuses reached to its
/// history. Returns the status stored now, or None when the read was older than the row.
pub async fn upsert(
    tx: &mut Tx,
    service_id: i64,
    r: &DisputeRecord,
    observed_at: i64,
    now: i64,
) -> StoreResult<Option<String>> {
    let sql = "INSERT INTO disputes (service_id, dispute_id, payment_id, journey_id, amount, fee, net_amount, reason, \
                 status, status_rank, evidence_due_at, created_at, settled_date, observed_at, first_seen_at, updated_at) \
               VALUES ($1, $2, $3, (SELECT id FROM journeys WHERE service_id = $1 AND payment_id = $3), \
                 $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
               ON CONFLICT (service_id, dispute_id) DO UPDATE SET \
                 journey_id = COALESCE(disputes.journey_id, excluded.journey_id), \
                 amount = excluded.amount, fee = COALESCE(excluded.fee, disputes.fee), \
                 net_amount = COALESCE(excluded.net_amount, disputes.net_amount), \
                 reason = COALESCE(excluded.reason, disputes.reason), \
                 status = excluded.status, status_rank = excluded.status_rank, \
                 evidence_due_at = COALESCE(excluded.evidence_due_at, disputes.evidence_due_at), \
                 settled_date = COALESCE(excluded.settled_date, disputes.settled_date), \
                 observed_at = CASE WHEN excluded.observed_at > disputes.observed_at THEN excluded.observed_at ELSE disputes.observed_at END, \
                 updated_at = excluded.updated_at \
               WHERE excluded.status_rank > disputes.status_rank \
                  OR (excluded.status_rank = disputes.status_rank AND excluded.status = disputes.status) \
               RETURNING status";
    let stored: Option<String> = on_tx!(tx, conn => {
        sqlx::query_scalar(sql)
            .bind(service_id).bind(&r.dispute_id).bind(&r.payment_id).bind(r.amount).bind(r.fee)
            .bind(r.net_amount).bind(&r.reason).bind(r.status).bind(i64::from(r.status_rank))
            .bind(r.evidence_due_at).bind(r.created_at).bind(&r.settled_date).bind(observed_at).bind(now)
            .fetch_optional(&mut *conn).await?
    });
    let Some(status) = stored else {
        return Ok(None);
    };
    // Every dispute began awaiting evidence, when the bank raised it; a later status is
    // dated when paydesk first saw it.
    let events = "INSERT INTO dispute_events (service_id, dispute_id, payment_id, status, amount, occurred_at, source, recorded_at) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (service_id, dispute_id, status) DO NOTHING";
    let mut reached = vec![("needs_response", r.created_at, "platform")];
    if status != "needs_response" {
        reached.push((r.status, observed_at.max(r.created_at), "observed"));
    }
    for (what, at, source) in reached {
        on_tx!(tx, conn => {
            sqlx::query(events).bind(service_id).bind(&r.dispute_id).bind(&r.payment_id).bind(what)
                .bind(r.amount).bind(at).bind(source).bind(now)
                .execute(&mut *conn).await?;
        });
    }
    Ok(Some(status))
}

/// The status a dispute of `service_id` is stored with, read in `tx` (before an upsert).
pub async fn status_in(
    tx: &mut Tx,
    service_id: i64,
    dispute_id: &str,
) -> StoreResult<Option<String>> {
    let sql = "SELECT status FROM disputes WHERE service_id = $1 AND dispute_id = $2";
    Ok(
        on_tx!(tx, conn => sqlx::query_scalar(sql).bind(service_id).bind(dispute_id).fetch_optional(&mut *conn).await?),
    )
}

/// A dispute as stored, with its payment's reference when paydesk holds the payment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DisputeRow {
    pub service_id: i64,
    pub dispute_id: String,
    pub payment_id: String,
    pub amount: i64,
    pub fee: Option<i64>,
    pub net_amount: Option<i64>,
    pub reason: Option<String>,
    pub status: String,
    pub evidence_due_at: Option<i64>,
    pub created_at: i64,
    pub settled_date: Option<String>,
    pub observed_at: i64,
    pub reference: Option<String>,
}

const COLUMNS: &str =
    "d.service_id, d.dispute_id, d.payment_id, d.amount, d.fee, d.net_amount, d.reason, \
     d.status, d.evidence_due_at, d.created_at, d.settled_date, d.observed_at, j.reference";

/// Which disputes a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisputeFilter {
    /// Only these services (none: nothing).
    pub services: Vec<i64>,
    pub statuses: Vec<String>,
    /// Raised in `[from, to)`: UTC microseconds.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

fn build(backend: Backend, f: &DisputeFilter, limit: i64, offset: i64) -> (Built, Built) {
    let clauses = |b: &mut Builder| {
        let mut c = Vec::new();
        if f.services.is_empty() {
            c.push("1 = 0".to_string());
        } else {
            c.push(format!("d.service_id IN ({})", b.ids(&f.services)));
        }
        if !f.statuses.is_empty() {
            let list: Vec<String> = f.statuses.iter().map(|s| b.text(s)).collect();
            c.push(format!("d.status IN ({})", list.join(", ")));
        }
        c.extend(b.half_open("d.created_at", f.from, f.to));
        c.join(" AND ")
    };
    let mut b = Builder::new(backend);
    let filter = clauses(&mut b);
    let (lim, off) = (b.int(limit), b.int(offset));
    // Those needing a response first, the soonest due first; then the newest.
    let rows = b.finish(format!(
        "SELECT {COLUMNS} FROM disputes d \
           LEFT JOIN journeys j ON j.service_id = d.service_id AND j.payment_id = d.payment_id \
          WHERE {filter} \
          ORDER BY CASE WHEN d.status = 'needs_response' THEN 0 ELSE 1 END, \
                   CASE WHEN d.status = 'needs_response' THEN d.evidence_due_at ELSE 0 END, \
                   d.created_at DESC, d.id DESC LIMIT {lim} OFFSET {off}"
    ));
    let mut b = Builder::new(backend);
    let filter = clauses(&mut b);
    let count = b.finish(format!("SELECT COUNT(*) FROM disputes d WHERE {filter}"));
    (rows, count)
}

/// The statements `list` runs (the page, the count), for the bench's query plans.
pub fn list_statements(
    backend: Backend,
    f: &DisputeFilter,
    limit: i64,
    offset: i64,
) -> (Built, Built) {
    build(backend, f, limit, offset)
}

/// A page of the disputes `f` picks, in the page's order, and how many there are in all.
pub async fn list(
    db: &Db,
    f: &DisputeFilter,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<DisputeRow>, i64)> {
    let (rows, count) = build(db.backend(), f, limit, offset);
    Ok(on_db!(db, pool => {
        let r = bound!(sqlx::query_as::<_, DisputeRow>(&rows.sql), &rows.binds).fetch_all(pool).await?;
        let c = bound!(sqlx::query_scalar::<_, i64>(&count.sql), &count.binds).fetch_one(pool).await?;
        (r, c)
    }))
}

/// A payment's disputes, newest first.
pub async fn of_payment(
    db: &Db,
    service_id: i64,
    payment_id: &str,
) -> StoreResult<Vec<DisputeRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM disputes d \
           LEFT JOIN journeys j ON j.service_id = d.service_id AND j.payment_id = d.payment_id \
          WHERE d.service_id = $1 AND d.payment_id = $2 ORDER BY d.created_at DESC, d.id DESC"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, DisputeRow>(&sql).bind(service_id).bind(payment_id).fetch_all(pool).await?),
    )
}

/// One dispute of `service_id`, by the platform's id.
pub async fn by_id(db: &Db, service_id: i64, dispute_id: &str) -> StoreResult<Option<DisputeRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM disputes d \
           LEFT JOIN journeys j ON j.service_id = d.service_id AND j.payment_id = d.payment_id \
          WHERE d.service_id = $1 AND d.dispute_id = $2"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, DisputeRow>(&sql).bind(service_id).bind(dispute_id).fetch_optional(pool).await?),
    )
}

/// How many disputes of `services` await the service's evidence.
pub async fn needing_response(db: &Db, services: &[i64]) -> StoreResult<i64> {
    if services.is_empty() {
        return Ok(0);
    }
    let mut b = Builder::new(db.backend());
    let list = b.ids(services);
    let built = b.finish(format!(
        "SELECT COUNT(*) FROM disputes WHERE status = 'needs_response' AND service_id IN ({list})"
    ));
    Ok(
        on_db!(db, pool => bound!(sqlx::query_scalar::<_, i64>(&built.sql), &built.binds).fetch_one(pool).await?),
    )
}

/// The disputes of `services` raised in `[from, to)` (UTC microseconds) and lost: how many,
/// their amounts and their fees.
pub async fn lost_between(
    db: &Db,
    services: &[i64],
    from: i64,
    to: i64,
) -> StoreResult<(i64, i64, i64)> {
    if services.is_empty() {
        return Ok((0, 0, 0));
    }
    let mut b = Builder::new(db.backend());
    let list = b.ids(services);
    let range = b
        .half_open("created_at", Some(from), Some(to))
        .join(" AND ");
    let built = b.finish(format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT), \
                CAST(COALESCE(SUM(fee), 0) AS BIGINT) \
           FROM disputes WHERE status = 'lost' AND service_id IN ({list}) AND {range}"
    ));
    Ok(
        on_db!(db, pool => bound!(sqlx::query_as::<_, (i64, i64, i64)>(&built.sql), &built.binds).fetch_one(pool).await?),
    )
}

/// Whether the payment of journey `journey_id` is disputed, read in `tx` (a refund decision).
pub async fn journey_disputed(tx: &mut Tx, journey_id: i64) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM disputes d JOIN journeys j \
                 ON j.service_id = d.service_id AND j.payment_id = d.payment_id WHERE j.id = $1";
    let n: i64 =
        on_tx!(tx, conn => sqlx::query_scalar(sql).bind(journey_id).fetch_one(&mut *conn).await?);
    Ok(n > 0)
}

/// Whether the payment `payment_id` of `service_id` is disputed.
pub async fn payment_disputed(db: &Db, service_id: i64, payment_id: &str) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM disputes WHERE service_id = $1 AND payment_id = $2";
    let n: i64 = on_db!(db, pool => sqlx::query_scalar(sql).bind(service_id).bind(payment_id).fetch_one(pool).await?);
    Ok(n > 0)
}

/// When the oldest dispute of `service_id` still open (not yet won or lost) was raised: the
/// dispute backfill reaches back that far, so open disputes are read again until decided.
pub async fn oldest_open(db: &Db, service_id: i64) -> StoreResult<Option<i64>> {
    let sql = "SELECT MIN(created_at) FROM disputes WHERE service_id = $1 AND status_rank < 2";
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, Option<i64>>(sql).bind(service_id).fetch_one(pool).await?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_bind_every_value_and_put_those_needing_a_response_first() {
        let f = DisputeFilter {
            services: vec![3, 4],
            statuses: vec!["needs_response' OR 1=1 --".into()],
            from: Some(10),
            to: None,
        };
        let (rows, count) = build(Backend::Postgres, &f, 50, 100);
        assert!(!rows.sql.contains("OR 1=1"));
        assert!(
            rows.sql.contains("d.service_id IN ($1, $2)"),
            "{}",
            rows.sql
        );
        assert!(rows
            .sql
            .contains("ORDER BY CASE WHEN d.status = 'needs_response'"));
        assert!(rows.sql.ends_with("LIMIT $5 OFFSET $6"), "{}", rows.sql);
        assert_eq!(count.binds.len(), 4);
        let none = build(Backend::Sqlite, &DisputeFilter::default(), 1, 0).0;
        assert!(none.sql.contains("1 = 0"));
    }
}
