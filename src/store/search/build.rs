//! The statements of a search: the page (a lookup led by a driver, or one walk per service and
//! status merged by one ORDER BY … LIMIT), the capped count, and a driver's probe.

use super::drivers::{driver_condition, lookup_scope, Driver};
use super::rows::{reads_down, COLUMNS, OUTER_COLUMNS};
use super::walks::{residuals, walks, Walk};
use super::LOOKUP_LIMIT;
use crate::search::query::{Range, Search, Sort};
use crate::store::sql::{Builder, Built};
use crate::store::Backend;

/// The sort key column.
fn key_column(sort: Sort) -> &'static str {
    if sort.by_amount() {
        "amount"
    } else {
        "created_at"
    }
}

/// (ORDER BY for the walk, and the cursor's comparison), given the direction the rows are
/// read in: a "before" cursor reads backwards and the page is turned round afterwards.
fn order(s: &Search, prefix: &str, sortable: bool) -> (String, Option<&'static str>) {
    let key = key_column(s.sort);
    let reading_down = reads_down(s);
    let dir = if reading_down { "DESC" } else { "ASC" };
    let cmp = s.cursor.map(|_| if reading_down { "<" } else { ">" });
    let k = if sortable {
        format!("{prefix}{key}")
    } else {
        format!("+{prefix}{key}")
    };
    (format!("{k} {dir}, {prefix}id {dir}"), cmp)
}

/// The cursor as a row comparison on (key, id), when there is one.
fn cursor_condition(
    b: &mut Builder,
    s: &Search,
    cmp: Option<&str>,
    prefix: &str,
) -> Option<String> {
    let (c, cmp) = (s.cursor?, cmp?);
    let key = key_column(s.sort);
    let k = b.int(c.key);
    let id = b.int(c.id);
    Some(format!("({prefix}{key}, {prefix}id) {cmp} ({k}, {id})"))
}

/// One service's walk of a metadata key and value in the page's time order: through the
/// metadata table's (service, key, value, created, journey) index, each row found joined to
/// its journey for the remaining filters, stopping after a page.
fn metadata_walk(
    b: &mut Builder,
    s: &Search,
    service: i64,
    key: &str,
    value: &str,
    limit: i64,
    n: usize,
) -> String {
    let (svc, k, v) = (b.int(service), b.text(key), b.text(value));
    let mut conds = Vec::new();
    // The walk reads the time range on the metadata rows, where its index is.
    if let Some(Range::Created(lo, hi)) = &s.range {
        conds.extend(b.half_open("m.created_at", *lo, *hi));
    }
    // The remaining filters are checks on the journey found, never a way in.
    let walked = Driver::Metadata(key.to_string(), Some(value.to_string()));
    conds.extend(residuals(
        b,
        s,
        Some(&walked),
        &Walk::Metadata(key.to_string(), value.to_string()),
    ));
    let (ord, cmp) = order(s, "m.", true);
    conds.extend(cursor_condition(b, s, cmp, "m."));
    let lim = b.int(limit);
    let rest: String = conds.iter().map(|c| format!(" AND {c}")).collect();
    format!(
        "SELECT * FROM (SELECT {COLUMNS} FROM \
         (SELECT journey_id AS id, created_at FROM journey_metadata \
          WHERE service_id = {svc} AND key = {k} AND value_key = {v}) AS m \
         JOIN journeys j ON j.id = m.id WHERE TRUE{rest} ORDER BY {ord} LIMIT {lim}) AS b{n}"
    )
}

/// The list query for `s` within `services`, driven by `driver` (a lookup) or walked.
pub(super) fn build_list(
    backend: Backend,
    services: &[i64],
    s: &Search,
    driver: Option<&Driver>,
    limit: i64,
) -> Built {
    let mut b = Builder::new(backend);
    match driver {
        Some(d) => {
            let mut conds = vec![lookup_scope(&mut b, d, services)];
            conds.push(driver_condition(&mut b, d, services));
            conds.extend(residuals(&mut b, s, Some(d), &Walk::All));
            // SQLite: sort the few rows found rather than walk the date index.
            let (ord, cmp) = order(s, "j.", backend == Backend::Postgres);
            conds.extend(cursor_condition(&mut b, s, cmp, "j."));
            let lim = b.int(limit);
            let sql = format!(
                "SELECT {COLUMNS} FROM journeys j WHERE {} ORDER BY {ord} LIMIT {lim}",
                conds.join(" AND ")
            );
            b.finish(sql)
        }
        None => {
            let mut parts = Vec::new();
            for service in services {
                for walk in walks(s) {
                    if let Walk::Metadata(key, value) = &walk {
                        parts.push(metadata_walk(
                            &mut b,
                            s,
                            *service,
                            key,
                            value,
                            limit,
                            parts.len(),
                        ));
                        continue;
                    }
                    let mut conds = vec![format!("j.service_id = {}", b.int(*service))];
                    match &walk {
                        Walk::All | Walk::Metadata(..) => {}
                        Walk::Status(st) => conds.push(format!("j.status = '{st}'")),
                        Walk::Brand(br) => conds.push(format!("j.card_brand = {}", b.text(br))),
                        Walk::Attention => conds.push("j.needs_attention".into()),
                    }
                    conds.extend(residuals(&mut b, s, None, &walk));
                    let (ord, cmp) = order(s, "j.", true);
                    conds.extend(cursor_condition(&mut b, s, cmp, "j."));
                    let lim = b.int(limit);
                    parts.push(format!(
                        "SELECT * FROM (SELECT {COLUMNS} FROM journeys j WHERE {} ORDER BY {ord} LIMIT {lim}) AS b{}",
                        conds.join(" AND "),
                        parts.len()
                    ));
                }
            }
            let (ord, _) = order(s, "", true);
            let lim = b.int(limit);
            let sql = if parts.len() == 1 {
                parts.remove(0)
            } else {
                format!(
                    "SELECT {OUTER_COLUMNS} FROM ({}) AS merged ORDER BY {ord} LIMIT {lim}",
                    parts.join(" UNION ALL ")
                )
            };
            b.finish(sql)
        }
    }
}

/// The count query: at most `cap` + 1 rows are counted.
pub(super) fn build_count(
    backend: Backend,
    services: &[i64],
    s: &Search,
    driver: Option<&Driver>,
    cap: i64,
) -> Built {
    let mut b = Builder::new(backend);
    let parts = matching(&mut b, services, s, driver, cap, "1 AS one");
    let sql = match parts.as_slice() {
        [one] => format!("SELECT COUNT(*) FROM ({one}) AS c"),
        _ => {
            let counts: Vec<String> = parts
                .iter()
                .enumerate()
                .map(|(n, p)| format!("(SELECT COUNT(*) FROM ({p}) AS c{n})"))
                .collect();
            format!("SELECT {}", counts.join(" + "))
        }
    };
    b.finish(sql)
}

/// The rows a search matches, at most `cap` + 1 of each walk (every one of them when the
/// count is no more than `cap`), as (id, amount, status, total_amount): what the page's
/// totals add up and what "download these results" writes.
pub(super) fn build_matching(
    backend: Backend,
    services: &[i64],
    s: &Search,
    driver: Option<&Driver>,
    cap: i64,
) -> Built {
    let mut b = Builder::new(backend);
    let parts = matching(
        &mut b,
        services,
        s,
        driver,
        cap,
        "j.id AS id, j.amount AS amount, j.status AS status, j.total_amount AS total_amount",
    );
    let sql = parts
        .iter()
        .enumerate()
        .map(|(n, p)| format!("SELECT * FROM ({p}) AS m{n}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    b.finish(sql)
}

/// The statements that find a search's rows (`select` of each), each stopping after `cap` +
/// 1: one led by `driver`, or one per walk of each service (the walks do not overlap).
fn matching(
    b: &mut Builder,
    services: &[i64],
    s: &Search,
    driver: Option<&Driver>,
    cap: i64,
    select: &str,
) -> Vec<String> {
    let mut s = s.clone();
    s.cursor = None;
    match driver {
        Some(d) => {
            let mut conds = vec![lookup_scope(b, d, services)];
            conds.push(driver_condition(b, d, services));
            conds.extend(residuals(b, &s, Some(d), &Walk::All));
            let lim = b.int(cap + 1);
            vec![format!(
                "SELECT {select} FROM journeys j WHERE {} LIMIT {lim}",
                conds.join(" AND ")
            )]
        }
        None => {
            let mut parts = Vec::new();
            // Counting does not care about order: walk statuses even when sorting by amount.
            let mut by_time = s.clone();
            by_time.sort = Sort::Newest;
            for service in services {
                for walk in walks(&by_time) {
                    let mut conds = vec![format!("j.service_id = {}", b.int(*service))];
                    match &walk {
                        Walk::All => {}
                        Walk::Status(st) => conds.push(format!("j.status = '{st}'")),
                        Walk::Brand(br) => conds.push(format!("j.card_brand = {}", b.text(br))),
                        Walk::Attention => conds.push("j.needs_attention".into()),
                        Walk::Metadata(k, v) => {
                            let d = Driver::Metadata(k.clone(), Some(v.clone()));
                            conds.push(driver_condition(b, &d, &[*service]));
                        }
                    }
                    conds.extend(residuals(b, &by_time, None, &walk));
                    let lim = b.int(cap + 1);
                    parts.push(format!(
                        "SELECT {select} FROM journeys j WHERE {} LIMIT {lim}",
                        conds.join(" AND ")
                    ));
                }
            }
            parts
        }
    }
}

/// A probe: the rows the driver alone finds, up to the lookup limit + 1: their ids (see
/// `probe_keeps_ids`), or how many.
pub(super) fn build_probe(backend: Backend, services: &[i64], d: &Driver) -> Built {
    let mut b = Builder::new(backend);
    let found = if let Driver::Metadata(key, value) = d {
        // The metadata table alone answers (its rows carry their journey's service, one per
        // journey and key): counted from its index, without reading a journey.
        let ids = b.ids(services);
        let key = b.text(key);
        let value = match value {
            Some(v) => format!(" AND m.value_key = {}", b.text(v)),
            None => String::new(),
        };
        let lim = b.int(LOOKUP_LIMIT + 1);
        format!(
            "SELECT m.journey_id AS id FROM journey_metadata m \
             WHERE m.service_id IN ({ids}) AND m.key = {key}{value} LIMIT {lim}"
        )
    } else {
        let scope = lookup_scope(&mut b, d, services);
        let cond = driver_condition(&mut b, d, services);
        let lim = b.int(LOOKUP_LIMIT + 1);
        format!("SELECT j.id FROM journeys j WHERE {scope} AND {cond} LIMIT {lim}")
    };
    b.finish(if d.probe_keeps_ids() {
        found
    } else {
        format!("SELECT COUNT(*) FROM ({found}) AS p")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::query::Cursor;
    use crate::store::search::testing::search;
    use crate::store::search::walks::created_before_settling;

    #[test]
    fn walks_are_one_per_service_and_merged() {
        let s = search("status=success&status=declined");
        let built = build_list(Backend::Sqlite, &[1, 2], &s, None, 51);
        assert_eq!(built.sql.matches("SELECT * FROM (SELECT").count(), 4);
        assert!(built.sql.contains("UNION ALL"));
        assert!(built
            .sql
            .ends_with(&format!("LIMIT ${}", built.binds.len())));
        let one = build_list(Backend::Postgres, &[1], &search(""), None, 51);
        assert!(!one.sql.contains("UNION"));
    }

    #[test]
    fn cursors_read_forwards_and_backwards() {
        let mut s = search("");
        s.cursor = Some(Cursor {
            key: 10,
            id: 5,
            after: true,
        });
        let built = build_list(Backend::Postgres, &[1], &s, None, 51);
        assert!(
            built.sql.contains("(j.created_at, j.id) < ("),
            "{}",
            built.sql
        );
        assert!(built.sql.contains("DESC"));
        s.cursor = Some(Cursor {
            key: 10,
            id: 5,
            after: false,
        });
        let built = build_list(Backend::Postgres, &[1], &s, None, 51);
        assert!(
            built.sql.contains("(j.created_at, j.id) > ("),
            "{}",
            built.sql
        );
        assert!(built.sql.contains("ASC"));
    }

    #[test]
    fn a_metadata_value_walks_the_metadata_rows_in_page_order() {
        let s = search("meta_key=ledger_code&meta_value=AB12&status=success");
        assert_eq!(
            walks(&s),
            vec![Walk::Metadata("ledger_code".into(), "ab12".into())]
        );
        let built = build_list(Backend::Postgres, &[1, 2], &s, None, 51);
        assert!(built.sql.contains("FROM journey_metadata"), "{}", built.sql);
        assert!(
            built.sql.contains("ORDER BY m.created_at DESC, m.id DESC"),
            "{}",
            built.sql
        );
        // The pair is the walk, not a check on each row; the status is a check.
        assert!(!built.sql.contains("EXISTS"), "{}", built.sql);
        assert!(built.sql.contains("j.status"), "{}", built.sql);
        // A key alone, or a sort by amount, walks as before.
        assert_eq!(walks(&search("meta_key=ledger_code")), vec![Walk::All]);
        assert_eq!(
            walks(&search(
                "meta_key=ledger_code&meta_value=x&sort=amount_high"
            )),
            vec![Walk::All]
        );
    }

    #[test]
    fn a_brand_and_amount_count_through_their_own_index() {
        let s = search("brand=visa&min_amount=20&max_amount=25");
        let d = Driver::BrandAmount("visa".into(), s.min_amount, s.max_amount);
        let count = build_count(Backend::Sqlite, &[1, 2], &s, Some(&d), 10_000);
        assert!(
            count.sql.contains("j.card_brand = $") && count.sql.contains("j.amount >= $"),
            "{}",
            count.sql
        );
        // Neither is checked twice.
        assert!(!count.sql.contains("+j.card_brand"), "{}", count.sql);
        assert!(!count.sql.contains("+j.amount"), "{}", count.sql);
    }

    #[test]
    fn a_settled_range_bounds_the_created_time_it_walks() {
        assert_eq!(
            created_before_settling("2026-10-30"),
            Some(crate::store::to_micros(
                time::macros::datetime!(2026-11-01 00:00 UTC)
            ))
        );
        assert_eq!(created_before_settling("2026-13-01"), None);
        assert_eq!(created_before_settling("soon"), None);
        let mut s = search("");
        s.range = Some(Range::Settled(None, Some("2026-10-30".into())));
        let walk = build_list(Backend::Sqlite, &[1], &s, None, 51);
        assert!(walk.sql.contains("j.created_at < $"), "{}", walk.sql);
        // Led by the settled index, the bound is not needed.
        let d = Driver::Settled(None, Some("2026-10-30".into()));
        let lookup = build_list(Backend::Sqlite, &[1], &s, Some(&d), 51);
        assert!(!lookup.sql.contains("created_at <"), "{}", lookup.sql);
    }
}
