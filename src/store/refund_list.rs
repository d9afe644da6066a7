//! SQL for the list of refund requests (`/refunds/requests`): the requests a person may see
//! (every request of the services where they approve, their own where they only ask), newest
//! first, a page at a time by (requested_at, id), and the count and sum of all that match.

use super::sql::{bound, Builder, Built};
use super::{Backend, Db, StoreResult};
use crate::on_db;

/// Which requests, and which page of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Services whose every request may be listed.
    pub all_of: Vec<i64>,
    /// Services where only `requester`'s own requests may be listed.
    pub own_in: Vec<i64>,
    /// The member of staff looking.
    pub requester: i64,
    /// Only `requester`'s own requests, wherever they are.
    pub only_mine: bool,
    /// Stored state names; empty means every state.
    pub states: Vec<String>,
    /// Asked for at or after (UTC microseconds).
    pub from: Option<i64>,
    /// Asked for before (UTC microseconds).
    pub to: Option<i64>,
    /// The page: requests listed after (older than) this (requested_at, id) ...
    pub older_than: Option<(i64, i64)>,
    /// ... or before (newer than) it.
    pub newer_than: Option<(i64, i64)>,
    pub limit: i64,
}

/// A listed request, with its payment's reference and the names of who asked and decided.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ListedRow {
    pub id: i64,
    pub service_id: i64,
    pub payment_id: String,
    /// The payment's reference, when paydesk holds its journey.
    pub reference: Option<String>,
    pub amount: i64,
    pub reason: String,
    pub case_reference: Option<String>,
    pub state: String,
    pub approval_required: bool,
    pub requested_by: i64,
    pub requested_by_name: Option<String>,
    pub requested_at: i64,
    pub decided_by: Option<i64>,
    pub decided_by_name: Option<String>,
    pub decided_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The bulk refund batch whose row made the request.
    pub batch_id: Option<i64>,
}

/// The WHERE clause every part of the list shares: who may see what, and the filters.
fn filter(b: &mut Builder, q: &ListQuery) -> String {
    let mut scope = Vec::new();
    let me = |b: &mut Builder| format!("r.requested_by = {}", b.int(q.requester));
    if q.only_mine {
        let services: Vec<i64> = q.all_of.iter().chain(&q.own_in).copied().collect();
        if !services.is_empty() {
            let ids = b.ids(&services);
            let me = me(b);
            scope.push(format!("(r.service_id IN ({ids}) AND {me})"));
        }
    } else {
        if !q.all_of.is_empty() {
            scope.push(format!("r.service_id IN ({})", b.ids(&q.all_of)));
        }
        if !q.own_in.is_empty() {
            let ids = b.ids(&q.own_in);
            let me = me(b);
            scope.push(format!("(r.service_id IN ({ids}) AND {me})"));
        }
    }
    // No service at all: nothing, never everything.
    let mut clauses = vec![if scope.is_empty() {
        "1 = 0".to_string()
    } else {
        format!("({})", scope.join(" OR "))
    }];
    if !q.states.is_empty() {
        let list: Vec<String> = q.states.iter().map(|s| b.text(s)).collect();
        clauses.push(format!("r.state IN ({})", list.join(", ")));
    }
    clauses.extend(b.half_open("r.requested_at", q.from, q.to));
    clauses.join(" AND ")
}

fn build_page(backend: Backend, q: &ListQuery) -> Built {
    let mut b = Builder::new(backend);
    let mut clauses = vec![filter(&mut b, q)];
    let newer = q.older_than.is_none() && q.newer_than.is_some();
    let cursor = if newer { q.newer_than } else { q.older_than };
    if let Some((at, id)) = cursor {
        let op = if newer { ">" } else { "<" };
        let at1 = b.int(at);
        let at2 = b.int(at);
        let id = b.int(id);
        clauses.push(format!(
            "(r.requested_at {op} {at1} OR (r.requested_at = {at2} AND r.id {op} {id}))"
        ));
    }
    // The page before is the requests just newer than the cursor, found oldest first.
    let order = if newer { "ASC" } else { "DESC" };
    let lim = b.int(q.limit);
    b.finish(format!(
        "SELECT r.id, r.service_id, r.payment_id, j.reference, r.amount, r.reason, r.case_reference, \
                r.state, r.approval_required, r.requested_by, s.name AS requested_by_name, \
                r.requested_at, r.decided_by, d.name AS decided_by_name, r.decided_at, r.finished_at, r.batch_id \
           FROM refund_requests r \
           LEFT JOIN journeys j ON j.id = r.journey_id \
           LEFT JOIN staff s ON s.id = r.requested_by \
           LEFT JOIN staff d ON d.id = r.decided_by \
          WHERE {} ORDER BY r.requested_at {order}, r.id {order} LIMIT {lim}",
        clauses.join(" AND ")
    ))
}

fn build_totals(backend: Backend, q: &ListQuery) -> Built {
    let mut b = Builder::new(backend);
    let filter = filter(&mut b, q);
    b.finish(format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM(r.amount), 0) AS BIGINT) FROM refund_requests r WHERE {filter}"
    ))
}

/// A page of the requests matching `q`, newest first, at most `q.limit`.
pub async fn page(db: &Db, q: &ListQuery) -> StoreResult<Vec<ListedRow>> {
    let built = build_page(db.backend(), q);
    let mut rows = on_db!(db, pool => bound!(sqlx::query_as::<_, ListedRow>(&built.sql), &built.binds)
        .fetch_all(pool)
        .await?);
    if q.older_than.is_none() && q.newer_than.is_some() {
        rows.reverse();
    }
    Ok(rows)
}

/// How many requests match `q` (whatever its page) and the sum of their amounts.
pub async fn totals(db: &Db, q: &ListQuery) -> StoreResult<(i64, i64)> {
    let built = build_totals(db.backend(), q);
    Ok(
        on_db!(db, pool => bound!(sqlx::query_as::<_, (i64, i64)>(&built.sql), &built.binds)
        .fetch_one(pool)
        .await?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_bound_and_a_caseworker_sees_only_their_own() {
        let q = ListQuery {
            all_of: vec![1],
            own_in: vec![2, 3],
            requester: 7,
            states: vec!["failed' OR 1=1 --".into()],
            from: Some(10),
            to: None,
            older_than: Some((50, 9)),
            limit: 26,
            ..Default::default()
        };
        let Built { sql, binds } = build_page(Backend::Postgres, &q);
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert!(
            sql.contains(
                "WHERE (r.service_id IN ($1) OR (r.service_id IN ($2, $3) AND r.requested_by = $4)) \
                 AND r.state IN ($5) AND r.requested_at >= $6 AND \
                 (r.requested_at < $7 OR (r.requested_at = $8 AND r.id < $9))"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with("ORDER BY r.requested_at DESC, r.id DESC LIMIT $10"),
            "{sql}"
        );
        assert_eq!(binds.len(), 10);

        let mine = build_totals(
            Backend::Sqlite,
            &ListQuery {
                all_of: vec![1],
                own_in: vec![2],
                requester: 7,
                only_mine: true,
                ..Default::default()
            },
        );
        assert!(
            mine.sql
                .ends_with("WHERE ((r.service_id IN ($1, $2) AND r.requested_by = $3))"),
            "{}",
            mine.sql
        );

        let newer = build_page(
            Backend::Sqlite,
            &ListQuery {
                all_of: vec![1],
                newer_than: Some((5, 6)),
                limit: 3,
                ..Default::default()
            },
        );
        assert!(newer.sql.contains("r.id > $4"), "{}", newer.sql);
        assert!(newer.sql.contains("ORDER BY r.requested_at ASC, r.id ASC"));

        let none = build_totals(Backend::Postgres, &ListQuery::default());
        assert!(none.sql.ends_with("WHERE 1 = 0"), "{}", none.sql);
    }
}
