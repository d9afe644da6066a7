//! Finding payments: the payments page's filters read from the URL (`query`), and running a
//! search within the services a person holds, a page at a time, with a capped count.

pub mod query;

use crate::store::search::{self as sql, Row, Shape};
use crate::store::{Db, StoreResult};
use query::{Cursor, Search, COUNT_CAP, PAGE_SIZE};

/// A page of results.
#[derive(Debug, Clone)]
pub struct Results {
    /// In display order.
    pub rows: Vec<Row>,
    /// Matching rows, counted up to `COUNT_CAP` + 1 (more than the cap shows as "more than").
    pub count: i64,
    /// Where Next and Previous go (encoded cursors), when there is such a page.
    pub next: Option<String>,
    pub previous: Option<String>,
    pub shape: Shape,
}

impl Results {
    pub fn count_capped(&self) -> bool {
        self.count > COUNT_CAP
    }
}

/// Run `search` in `services` (ids the person may read, already narrowed by the form).
pub async fn run(db: &Db, services: &[i64], search: &Search) -> StoreResult<Results> {
    if services.is_empty() {
        return Ok(Results {
            rows: Vec::new(),
            count: 0,
            next: None,
            previous: None,
            shape: Shape::Branches(0),
        });
    }
    let limit = PAGE_SIZE as i64 + 1;
    let plan = sql::plan(db, services, search, limit, COUNT_CAP).await?;
    let (rows, count) = tokio::try_join!(
        sql::fetch_rows(db, &plan.list),
        sql::fetch_count(db, &plan.count)
    )?;
    Ok(paginate(rows, count, search, plan.shape))
}

/// Turn the rows read (one more than a page, in reading order) into a page with links.
fn paginate(mut rows: Vec<Row>, count: i64, search: &Search, shape: Shape) -> Results {
    let more = rows.len() > PAGE_SIZE;
    rows.truncate(PAGE_SIZE);
    let backwards = matches!(search.cursor, Some(Cursor { after: false, .. }));
    if backwards {
        rows.reverse();
    }
    let key = |r: &Row| {
        if search.sort.by_amount() {
            Cursor::encode(r.amount, r.id)
        } else {
            Cursor::encode(r.created_at, r.id)
        }
    };
    // Reading forwards, "more" means a next page; reading backwards, a previous one. The
    // other direction exists whenever a cursor brought us here.
    let (has_next, has_previous) = match search.cursor {
        None => (more, false),
        Some(c) if c.after => (more, true),
        Some(_) => (true, more),
    };
    Results {
        next: if has_next { rows.last().map(key) } else { None },
        previous: if has_previous {
            rows.first().map(key)
        } else {
            None
        },
        rows,
        count,
        shape,
    }
}
