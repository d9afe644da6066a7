//! The SQL behind the payments search. A search always looks inside a list of services (the
//! ones the person holds, narrowed by the form), newest first (or by amount), a page at a time
//! with keyset cursors, and counts up to a cap.
//!
//! How a query is shaped, chosen per search (`Shape`):
//! - **Lookup**: a selective filter (an id, a reference, card digits, a whole email, a case
//!   reference, a metadata value, or a "contains" that matches few rows) finds the candidate
//!   rows through its own index; the few rows found are then sorted.
//! - **Branches**: anything else walks an index already in the page's order, once per service
//!   (and per status, or card brand, when those are asked for), each walk stopping after a
//!   page; the walks are merged by one outer ORDER BY ... LIMIT. A page never costs more than
//!   (branches x page size) index entries plus whatever the remaining filters skip.
//!
//! On SQLite the filters that are not meant to drive a query are written `+column`, which
//! keeps the planner from choosing their index; PostgreSQL's planner has statistics and is
//! left to choose. "Contains" uses a trigram index on both (FTS5 on SQLite, pg_trgm on
//! PostgreSQL).
//!
//! Here: running a search (`plan`, the counts, the plan's text). The filters as conditions are
//! in `drivers` (what leads a lookup) and `walks` (what a walk reads and checks); the
//! statements in `build`; the rows read back in `rows`.

mod build;
mod drivers;
mod rows;
#[cfg(test)]
mod testing;
mod walks;

use crate::on_db;
use crate::search::query::Search;
use crate::store::sql::{bound, Builder, Built};
use crate::store::{Backend, Db, StoreResult};
use build::{build_count, build_list, build_matching, build_probe};
use drivers::{drivers, Driver};
pub use rows::{fetch_rows, sort_for_reading, Row};
use walks::{residuals, walks, Walk};

/// A "contains" or prefix filter matching at most this many rows is a lookup.
pub const LOOKUP_LIMIT: i64 = 5_000;

/// A metadata value matching more rows than this is walked in page order through the metadata
/// table's own index rather than looked up (every row read and sorted for one page).
pub const METADATA_LOOKUP_LIMIT: i64 = 500;

/// The shape a search runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Lookup(String),
    Branches(usize),
}

async fn fetch_ids(db: &Db, built: &Built) -> StoreResult<Vec<i64>> {
    Ok(
        on_db!(db, pool => bound!(sqlx::query_scalar::<_, i64>(&built.sql), &built.binds).fetch_all(pool).await?),
    )
}

pub async fn fetch_count(db: &Db, built: &Built) -> StoreResult<i64> {
    Ok(
        on_db!(db, pool => bound!(sqlx::query_scalar::<_, i64>(&built.sql), &built.binds).fetch_one(pool).await?),
    )
}

/// The queries a search will run: chosen after probing the drivers that need it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub shape: Shape,
    pub list: Built,
    pub count: Built,
    /// The rows matched, up to the count's cap (see `build_matching`).
    pub matching: Built,
    /// The count, when a probe has already counted exactly what `count` would.
    pub counted: Option<i64>,
    /// The probes run to choose, with what each found.
    pub probes: Vec<(Built, i64)>,
}

/// Choose how to run `s` in `services`: the first driver that is selective (or probes as
/// few enough rows) leads a lookup; with none, the search walks. `known_many` says of a probe
/// whether it is known to have found more than the lookup limit lately (it is not run again).
pub async fn plan(
    db: &Db,
    services: &[i64],
    s: &Search,
    limit: i64,
    cap: i64,
    known_many: &(dyn Fn(&Built) -> bool + Sync),
) -> StoreResult<Plan> {
    let backend = db.backend();
    let mut probes = Vec::new();
    let mut chosen = None;
    // Counting has no order to keep: a filter with an index of its own counts faster through
    // it than a walk that checks every row, even when it matches too many rows to lead the
    // page (the count stops at the cap either way).
    let mut counter = None;
    // A probe that found few enough rows of a search with no other filter has counted it.
    let mut counted = None;
    let mut shape = None;
    if !services.is_empty() {
        for d in drivers(s, backend) {
            if d.needs_probe() {
                let probe = build_probe(backend, services, &d);
                let (found, ids) = if known_many(&probe) {
                    (LOOKUP_LIMIT + 1, None)
                } else if d.probe_keeps_ids() {
                    let ids = fetch_ids(db, &probe).await?;
                    (ids.len() as i64, Some(ids))
                } else {
                    (fetch_count(db, &probe).await?, None)
                };
                probes.push((probe, found));
                // Up to the probe's own limit, it has counted exactly what the search finds
                // when the search has no other filter.
                let mut scratch = Builder::new(backend);
                let exact = found <= LOOKUP_LIMIT
                    && residuals(&mut scratch, s, Some(&d), &Walk::All).is_empty();
                if found > d.lookup_limit() {
                    if exact && counted.is_none() {
                        counted = Some(found);
                    }
                    if counter.is_none() && d.counts_through_index(backend) {
                        counter = Some(d);
                    }
                    continue;
                }
                if exact {
                    counted = Some(found);
                }
                shape = Some(Shape::Lookup(format!("{d:?}")));
                // The page and the count read the rows found by id: the trigram index is
                // asked once.
                chosen = Some(match ids {
                    Some(ids) => Driver::Found(Box::new(d), ids),
                    None => d,
                });
                break;
            }
            shape = Some(Shape::Lookup(format!("{d:?}")));
            chosen = Some(d);
            break;
        }
    }
    let counter = chosen.clone().or(counter).or_else(|| {
        if s.min_amount.is_none() && s.max_amount.is_none() {
            return None;
        }
        match walks(s).as_slice() {
            [Walk::All] => Some(Driver::Amount(s.min_amount, s.max_amount)),
            [Walk::Brand(brand)] => Some(Driver::BrandAmount(
                brand.clone(),
                s.min_amount,
                s.max_amount,
            )),
            // A walk of statuses is an index range already.
            _ => None,
        }
    });
    let shape = shape.unwrap_or_else(|| Shape::Branches(services.len() * walks(s).len()));
    Ok(Plan {
        shape,
        list: build_list(backend, services, s, chosen.as_ref(), limit),
        count: build_count(backend, services, s, counter.as_ref(), cap),
        matching: build_matching(backend, services, s, counter.as_ref(), cap),
        counted,
        probes,
    })
}

/// What the rows a search matched add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Totals {
    /// The payments' amounts, whatever became of them.
    pub amount: i64,
    /// The money taken: successful payments' total amount (with any surcharge). The same
    /// rule as an export's Total Amount column (`exports::columns::payment_total_and_net`), so
    /// the figure equals that column's sum in "download these results".
    pub taken: i64,
}

/// The totals of the rows `plan` matches (every one of them when its count is under the cap).
pub async fn totals(db: &Db, plan: &Plan) -> StoreResult<Totals> {
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amount, \
         CAST(COALESCE(SUM(CASE WHEN status = 'success' THEN COALESCE(total_amount, amount) ELSE 0 END), 0) AS BIGINT) AS taken \
         FROM ({}) AS matched",
        plan.matching.sql
    );
    Ok(
        on_db!(db, pool => bound!(sqlx::query_as::<_, Totals>(&sql), &plan.matching.binds).fetch_one(pool).await?),
    )
}

/// The ids of the rows `plan` matches (every one of them when its count is under the cap).
pub async fn matching_ids(db: &Db, plan: &Plan) -> StoreResult<Vec<i64>> {
    let sql = format!("SELECT id FROM ({}) AS matched", plan.matching.sql);
    Ok(
        on_db!(db, pool => bound!(sqlx::query_scalar::<_, i64>(&sql), &plan.matching.binds).fetch_all(pool).await?),
    )
}

/// The database's plan for a query, as text.
pub async fn explain(db: &Db, built: &Built) -> StoreResult<String> {
    match db {
        Db::Sqlite(pool, _) => {
            let sql = format!("EXPLAIN QUERY PLAN {}", built.sql);
            let rows: Vec<(i64, i64, i64, String)> = bound!(sqlx::query_as(&sql), &built.binds)
                .fetch_all(pool)
                .await?;
            Ok(rows
                .into_iter()
                .map(|(_, _, _, d)| d)
                .collect::<Vec<_>>()
                .join("\n"))
        }
        Db::Postgres(pool, _) => {
            let sql = format!("EXPLAIN {}", built.sql);
            let rows: Vec<String> = bound!(sqlx::query_scalar(&sql), &built.binds)
                .fetch_all(pool)
                .await?;
            Ok(rows.join("\n"))
        }
    }
}

/// Journeys by platform payment id within `services` (the search box's id, a journey page).
pub async fn by_payment_id(
    db: &Db,
    services: &[i64],
    payment_id: &str,
) -> StoreResult<Vec<(i64, i64)>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let built = by_payment_id_query(db.backend(), services, payment_id);
    Ok(on_db!(db, pool => bound!(sqlx::query_as(&built.sql), &built.binds).fetch_all(pool).await?))
}

/// The statement of `by_payment_id` (the bench shows its plan).
pub fn by_payment_id_query(backend: Backend, services: &[i64], payment_id: &str) -> Built {
    let mut b = Builder::new(backend);
    let p = b.text(payment_id);
    let ids = b.ids(services);
    b.finish(format!(
        "SELECT id, service_id FROM journeys WHERE payment_id = {p} AND service_id IN ({ids}) ORDER BY service_id"
    ))
}

/// Let the planner learn the tables' shape (SQLite keeps no statistics unless asked).
pub async fn refresh_statistics(db: &Db) -> StoreResult<()> {
    match db {
        Db::Sqlite(_, writer) => {
            sqlx::raw_sql("PRAGMA analysis_limit = 1000; ANALYZE journeys; ANALYZE journey_metadata; PRAGMA optimize;")
                .execute(&writer.pool)
                .await?;
        }
        Db::Postgres(pool, _) => {
            sqlx::raw_sql("ANALYZE journeys; ANALYZE journey_metadata;")
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}
