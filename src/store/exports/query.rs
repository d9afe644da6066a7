//! The SQL of an export pass: its FROM and WHERE (shared by the page, the count and the
//! month-end totals, so that totals are the sums of the rows), a keyed page, and SQLite's page
//! packed into one JSON value.

use super::{Key, Pass, Range, Slice};
use crate::on_db;
use crate::store::sql::{bound, Builder, Built};
use crate::store::{Db, StoreResult};

const PAYMENT_COLUMNS: &str = "j.id, j.settled_date, j.created_at, j.payment_id, j.reference, \
    j.description, j.email, j.amount, j.card_brand, j.cardholder_name, j.expiry_date, j.last_digits, \
    j.status, j.state_code, j.state_message, j.finished, j.provider_id, j.corporate_surcharge, \
    j.total_amount, j.wallet_type, j.fee, j.card_type, j.payment_provider, j.case_reference, \
    j.metadata, CAST(NULL AS TEXT) AS refund_id, CAST(NULL AS BIGINT) AS refund_amount, \
    CAST(NULL AS TEXT) AS refund_reason, CAST(NULL AS TEXT) AS requested_by, \
    CAST(NULL AS TEXT) AS approved_by, CAST(NULL AS TEXT) AS dispute_id, \
    CAST(NULL AS TEXT) AS dispute_status, CAST(NULL AS BIGINT) AS dispute_amount, \
    CAST(NULL AS BIGINT) AS dispute_fee, CAST(NULL AS TEXT) AS dispute_reason, \
    CAST(NULL AS BIGINT) AS batch_id";

const REFUND_COLUMNS: &str = "r.id, r.settled_date, r.created_at, j.payment_id, j.reference, \
    j.description, j.email, j.amount, j.card_brand, j.cardholder_name, j.expiry_date, j.last_digits, \
    j.status, j.state_code, j.state_message, j.finished, j.provider_id, j.corporate_surcharge, \
    j.total_amount, j.wallet_type, j.fee, j.card_type, j.payment_provider, \
    COALESCE(rr.case_reference, j.case_reference) AS case_reference, \
    j.metadata, r.refund_id, r.amount AS refund_amount, rr.reason AS refund_reason, \
    asker.email AS requested_by, approver.email AS approved_by, CAST(NULL AS TEXT) AS dispute_id, \
    CAST(NULL AS TEXT) AS dispute_status, CAST(NULL AS BIGINT) AS dispute_amount, \
    CAST(NULL AS BIGINT) AS dispute_fee, CAST(NULL AS TEXT) AS dispute_reason, rr.batch_id AS batch_id";

const REFUND_FROM: &str = "platform_refunds r \
    JOIN journeys j ON j.service_id = r.service_id AND j.payment_id = r.payment_id \
    LEFT JOIN refund_requests rr ON rr.service_id = r.service_id AND rr.platform_refund_id = r.refund_id \
    LEFT JOIN staff asker ON asker.id = rr.requested_by \
    LEFT JOIN staff approver ON approver.id = rr.decided_by AND rr.approval_required";

/// A dispute row carries its payment's fields, like a refund row, and the dispute's own.
const DISPUTE_COLUMNS: &str = "d.id, d.settled_date, d.created_at, j.payment_id, j.reference, \
    j.description, j.email, j.amount, j.card_brand, j.cardholder_name, j.expiry_date, j.last_digits, \
    j.status, j.state_code, j.state_message, j.finished, j.provider_id, j.corporate_surcharge, \
    j.total_amount, j.wallet_type, j.fee, j.card_type, j.payment_provider, j.case_reference, \
    j.metadata, CAST(NULL AS TEXT) AS refund_id, CAST(NULL AS BIGINT) AS refund_amount, \
    CAST(NULL AS TEXT) AS refund_reason, CAST(NULL AS TEXT) AS requested_by, \
    CAST(NULL AS TEXT) AS approved_by, d.dispute_id, d.status AS dispute_status, \
    d.amount AS dispute_amount, d.fee AS dispute_fee, d.reason AS dispute_reason, \
    CAST(NULL AS BIGINT) AS batch_id";

const DISPUTE_FROM: &str =
    "disputes d JOIN journeys j ON j.service_id = d.service_id AND j.payment_id = d.payment_id";

/// The FROM and WHERE of a pass, and its order columns (date column, created column, id).
/// Without `lower`, the range's start is left out (a keyed page on PostgreSQL states it as
/// a row comparison instead).
pub(super) fn scope(b: &mut Builder, s: &Slice<'_>, lower: bool) -> (String, [&'static str; 3]) {
    let (table, from, cols) = match s.pass {
        Pass::Payments => (
            "j",
            "journeys j",
            ["j.settled_date", "j.created_at", "j.id"],
        ),
        Pass::Refunds => ("r", REFUND_FROM, ["r.settled_date", "r.created_at", "r.id"]),
        Pass::Disputes => (
            "d",
            DISPUTE_FROM,
            ["d.settled_date", "d.created_at", "d.id"],
        ),
    };
    let service = b.int(s.service_id);
    let mut cond = vec![format!("{table}.service_id = {service}")];
    cond.extend(match s.range {
        Range::Created { from, to } => b.half_open(
            &format!("{table}.created_at"),
            lower.then_some(*from),
            Some(*to),
        ),
        Range::Settled { from, to } => b.dates(
            &format!("{table}.settled_date"),
            lower.then_some(from.as_str()),
            Some(to),
        ),
    });
    match s.pass {
        Pass::Payments if !s.statuses.is_empty() => {
            let any: Vec<String> = s
                .statuses
                .iter()
                .map(|(status, code)| {
                    let st = b.text(status);
                    match code {
                        Some(c) => format!("(j.status = {st} AND j.state_code = {})", b.text(c)),
                        None => format!("j.status = {st}"),
                    }
                })
                .collect();
            cond.push(format!("({})", any.join(" OR ")));
        }
        Pass::Payments => {}
        // Refund rows are money that has left: the refunds the platform says succeeded.
        Pass::Refunds => cond.push("r.status = 'success'".into()),
        // Every dispute: open ones show what is at stake; only a lost one moves money (and
        // only a lost one has a settlement date).
        Pass::Disputes => {}
    }
    if let Some(ids) = s.journeys {
        cond.push(b.one_of("j.id", ids));
    }
    (format!("{from} WHERE {}", cond.join(" AND ")), cols)
}

/// One page of a pass, after `after` (or from the start).
pub fn page_query(
    backend: crate::store::Backend,
    s: &Slice<'_>,
    after: Option<&Key>,
    limit: i64,
) -> Built {
    let mut b = Builder::new(backend);
    let by_settled = matches!(s.range, Range::Settled { .. });
    let columns = match s.pass {
        Pass::Payments => PAYMENT_COLUMNS,
        Pass::Refunds => REFUND_COLUMNS,
        Pass::Disputes => DISPUTE_COLUMNS,
    };
    let (sql, [date, created, id]) = match (after, backend) {
        (None, _) => scope(&mut b, s, true),
        // After a key, SQLite's range starts at the key itself, and the rows sharing its date
        // or time are told apart by what follows. (Left as a row-value comparison beside the
        // range's own start, SQLite seeks to the range's start and skips every row before the
        // key: each page then costs as much as all the pages before it.)
        (Some(k), crate::store::Backend::Sqlite) => {
            let from_key = match s.range {
                Range::Created { to, .. } => Range::Created {
                    from: k.created_at,
                    to: *to,
                },
                Range::Settled { to, .. } => Range::Settled {
                    from: k.date.clone().unwrap_or_default(),
                    to: to.clone(),
                },
            };
            let keyed = Slice {
                range: &from_key,
                ..s.clone()
            };
            let (mut sql, [date, created, id]) = scope(&mut b, &keyed, true);
            if by_settled {
                let d = b.text(k.date.as_deref().unwrap_or(""));
                let (c1, c2, i) = (b.int(k.created_at), b.int(k.created_at), b.int(k.id));
                sql.push_str(&format!(
                    " AND ({date} > {d} OR {created} > {c1} OR ({created} = {c2} AND {id} > {i}))"
                ));
            } else {
                let (c, i) = (b.int(k.created_at), b.int(k.id));
                sql.push_str(&format!(" AND ({created} > {c} OR {id} > {i})"));
            }
            (sql, [date, created, id])
        }
        // PostgreSQL takes the key as a row comparison, which its index seeks to; the range's
        // start is left out, as the key is past it. (With the start kept, or the key spelt as
        // an OR, the planner multiplies the selectivities, expects a few hundred rows, and
        // sorts everything left in the range for each page.)
        (Some(k), crate::store::Backend::Postgres) => {
            let (mut sql, [date, created, id]) = scope(&mut b, s, false);
            let (c, i) = (b.int(k.created_at), b.int(k.id));
            if by_settled {
                let d = b.text(k.date.as_deref().unwrap_or(""));
                sql.push_str(&format!(" AND ({date}, {created}, {id}) > ({d}, {c}, {i})"));
            } else {
                sql.push_str(&format!(" AND ({created}, {id}) > ({c}, {i})"));
            }
            (sql, [date, created, id])
        }
    };
    let order = if by_settled {
        format!("{date}, {created}, {id}")
    } else {
        format!("{created}, {id}")
    };
    let lim = b.int(limit);
    b.finish(format!(
        "SELECT {columns} FROM {sql} ORDER BY {order} LIMIT {lim}"
    ))
}

/// `ExportRow`'s fields, in order, as the page query names them.
pub(super) const ROW_FIELDS: &str =
    "id, settled_date, created_at, payment_id, reference, description, \
    email, amount, card_brand, cardholder_name, expiry_date, last_digits, status, state_code, \
    state_message, finished, provider_id, corporate_surcharge, total_amount, wallet_type, fee, \
    card_type, payment_provider, case_reference, metadata, refund_id, refund_amount, \
    refund_reason, requested_by, approved_by, dispute_id, dispute_status, dispute_amount, \
    dispute_fee, dispute_reason, batch_id";

/// One page of a pass packed by SQLite into a single JSON value: an array with one array of
/// `ExportRow`'s fields per row, in page order. sqlx's SQLite driver pays a fixed cost for
/// every value of every row it hands over (it copies each value and passes each row between
/// threads); one value per page of 5,000 rows keeps that cost out of the export, and SQLite's
/// JSON writer is fast. The aggregate takes the rows as the ordered subquery gives them
/// (checked as they are read); `sorted` states the order in the aggregate too.
pub fn packed_page_query(s: &Slice<'_>, after: Option<&Key>, limit: i64, sorted: bool) -> Built {
    let Built { sql, binds } = page_query(crate::store::Backend::Sqlite, s, after, limit);
    let order = match (sorted, s.range) {
        (false, _) => "",
        (true, Range::Created { .. }) => " ORDER BY created_at, id",
        (true, Range::Settled { .. }) => " ORDER BY settled_date, created_at, id",
    };
    Built {
        sql: format!(
            "SELECT json_group_array(json_array({ROW_FIELDS}){order}) FROM ({sql}) AS page"
        ),
        binds,
    }
}

/// One settlement date's payments, refunds or disputes in one service.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DayTotal {
    pub settled_date: String,
    pub count: i64,
    /// Payments: what the payers paid (total amount, with any surcharge). Refunds: refunded.
    /// Disputes: the amounts lost.
    pub gross: i64,
    /// Payments: the platform's fees. Disputes: the fees of those lost.
    pub fees: i64,
}

/// Totals by settlement date of one pass, over the same rows a settled-date export holds.
pub async fn totals_by_settlement(
    db: &Db,
    service_id: i64,
    pass: Pass,
    from: &str,
    to: &str,
) -> StoreResult<Vec<DayTotal>> {
    let range = Range::Settled {
        from: from.to_string(),
        to: to.to_string(),
    };
    let s = Slice {
        service_id,
        pass,
        range: &range,
        statuses: &[],
        journeys: None,
    };
    let mut b = Builder::new(db.backend());
    let (sql, [date, ..]) = scope(&mut b, &s, true);
    let sums = match pass {
        Pass::Payments => {
            "CAST(SUM(COALESCE(j.total_amount, j.amount)) AS BIGINT) AS gross, \
             CAST(SUM(COALESCE(j.fee, 0)) AS BIGINT) AS fees"
        }
        Pass::Refunds => "CAST(SUM(r.amount) AS BIGINT) AS gross, CAST(0 AS BIGINT) AS fees",
        // As `exports::columns::dispute_money` writes the rows: only a lost dispute takes
        // its amount and its fee.
        Pass::Disputes => {
            "CAST(SUM(CASE WHEN d.status = 'lost' THEN d.amount ELSE 0 END) AS BIGINT) AS gross, \
             CAST(SUM(CASE WHEN d.status = 'lost' THEN COALESCE(d.fee, 0) ELSE 0 END) AS BIGINT) AS fees"
        }
    };
    let built = b.finish(format!(
        "SELECT {date} AS settled_date, COUNT(*) AS count, {sums} FROM {sql} GROUP BY {date} ORDER BY {date}"
    ));
    Ok(
        on_db!(db, pool => bound!(sqlx::query_as::<_, DayTotal>(&built.sql), &built.binds).fetch_all(pool).await?),
    )
}
