//! The rows of a results page: what a row holds, SQLite's page read as one JSON value, and the
//! order a page is read in.

use crate::search::query::Search;
use crate::store::sql::{bound, Built};
use crate::store::{Db, StoreError, StoreResult};

/// One row of results.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub service_id: i64,
    pub payment_id: String,
    pub reference: String,
    pub email: Option<String>,
    pub amount: i64,
    pub status: String,
    pub state_code: Option<String>,
    pub card_brand: Option<String>,
    pub last_digits: Option<String>,
    pub created_at: i64,
    pub needs_attention: bool,
}

pub(super) const COLUMNS: &str = "j.id, j.service_id, j.payment_id, j.reference, j.email, j.amount, j.status, j.state_code, j.card_brand, j.last_digits, j.created_at, j.needs_attention";
pub(super) const OUTER_COLUMNS: &str = "id, service_id, payment_id, reference, email, amount, status, state_code, card_brand, last_digits, created_at, needs_attention";

/// Whether `s` reads its keys downwards: a descending sort read forwards, or an ascending
/// one read backwards (Previous).
pub(super) fn reads_down(s: &Search) -> bool {
    s.sort.descending() == s.cursor.map(|c| c.after).unwrap_or(true)
}

/// The rows of a list query, in `s`'s reading order.
///
/// SQLite hands each row's each value across a channel from its worker thread, copied; a
/// page of 51 rows is some 600 values. Read instead as one JSON array, it is one value, and
/// the list page (the console's busiest) does a third less work. The array is sorted here
/// rather than trusted to keep the subquery's order.
pub async fn fetch_rows(db: &Db, built: &Built, s: &Search) -> StoreResult<Vec<Row>> {
    match db {
        Db::Postgres(pool, _) => Ok(bound!(sqlx::query_as::<_, Row>(&built.sql), &built.binds)
            .fetch_all(pool)
            .await?),
        Db::Sqlite(pool, _) => {
            let sql = format!(
                "SELECT json_group_array(json_array({OUTER_COLUMNS})) FROM ({}) AS page",
                built.sql
            );
            let text: String = bound!(sqlx::query_scalar::<_, String>(&sql), &built.binds)
                .fetch_one(pool)
                .await?;
            let mut rows = unpack_rows(&text)?;
            sort_for_reading(&mut rows, s);
            Ok(rows)
        }
    }
}

/// A row as `json_array(OUTER_COLUMNS)` writes it.
type PackedRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

fn unpack_rows(text: &str) -> StoreResult<Vec<Row>> {
    let packed: Vec<PackedRow> = serde_json::from_str(text)
        .map_err(|e| StoreError::Invalid(format!("a page of search results read badly: {e}")))?;
    Ok(packed
        .into_iter()
        .map(|p| Row {
            id: p.0,
            service_id: p.1,
            payment_id: p.2,
            reference: p.3,
            email: p.4,
            amount: p.5,
            status: p.6,
            state_code: p.7,
            card_brand: p.8,
            last_digits: p.9,
            created_at: p.10,
            needs_attention: p.11 != 0,
        })
        .collect())
}

/// Put rows in the order `s` reads them (`order`'s): by the sort key, then id, downwards or
/// upwards.
pub fn sort_for_reading(rows: &mut [Row], s: &Search) {
    let by_amount = s.sort.by_amount();
    let key = |r: &Row| (if by_amount { r.amount } else { r.created_at }, r.id);
    if reads_down(s) {
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(key(r)));
    } else {
        rows.sort_unstable_by_key(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::query::Cursor;
    use crate::store::search::testing::search;

    #[test]
    fn a_packed_page_reads_back_and_sorts_in_reading_order() {
        let text = r#"[[7,1,"pay7","R-7","a@b.example",1250,"success",null,"visa","4242",300,0],
            [9,2,"pay9","R-9",null,99,"failed","P0010",null,null,300,1],
            [3,1,"pay3","R-\"3\"","x@y.example",5000,"created",null,"master-card","1111",100,0]]"#;
        let mut rows = unpack_rows(text).unwrap();
        assert_eq!(rows[1].email, None);
        assert_eq!(rows[1].state_code.as_deref(), Some("P0010"));
        assert!(rows[1].needs_attention && !rows[0].needs_attention);
        assert_eq!(rows[2].reference, "R-\"3\"");
        let ids = |rows: &[Row]| rows.iter().map(|r| r.id).collect::<Vec<_>>();
        // Newest first: by created, then id, both downwards.
        sort_for_reading(&mut rows, &search(""));
        assert_eq!(ids(&rows), [9, 7, 3]);
        // Previous from a newest-first page reads upwards.
        let mut back = search("");
        back.cursor = Some(Cursor {
            key: 50,
            id: 1,
            after: false,
        });
        sort_for_reading(&mut rows, &back);
        assert_eq!(ids(&rows), [3, 7, 9]);
        // By amount, largest first.
        sort_for_reading(&mut rows, &search("sort=amount_high"));
        assert_eq!(ids(&rows), [3, 7, 9]);
        sort_for_reading(&mut rows, &search("sort=amount_low"));
        assert_eq!(ids(&rows), [9, 7, 3]);
        assert!(unpack_rows("[]").unwrap().is_empty());
        assert!(unpack_rows("[[1,2]]").is_err());
    }
}
