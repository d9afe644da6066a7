//! Finding payments: the payments page's filters read from the URL (`query`), and running a
//! search within the services a person holds, a page at a time, with a capped count.

mod dates;
mod filters;
mod form;
pub mod query;

pub use crate::store::search::Totals;
use crate::store::search::{self as sql, Row, Shape};
use crate::store::sql::Built;
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
    /// What the matching payments add up to, when there are no more than `COUNT_CAP`.
    pub totals: Option<Totals>,
}

impl Results {
    pub fn count_capped(&self) -> bool {
        self.count > COUNT_CAP
    }
}

/// Capped counts that reached their cap, kept for a minute: a list's count (capped at
/// 10,000) and a probe's (capped at the lookup limit). "More than" stays true while rows only
/// arrive, and these counts are a list page's costliest part (up to 10,001 index entries a
/// service; a trigram probe must find every match before it counts one): a busy console
/// asking the same broad search again answers from here. Counts under their cap are always
/// counted afresh.
#[derive(Default)]
pub struct CountCache {
    entries: std::sync::Mutex<std::collections::HashMap<Built, std::time::Instant>>,
}

impl CountCache {
    const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(60);
    const MAX_ENTRIES: usize = 2_000;

    fn capped(&self, query: &Built) -> bool {
        self.entries
            .lock()
            .map(|m| m.get(query).is_some_and(|t| t.elapsed() < Self::FRESH_FOR))
            .unwrap_or(false)
    }

    fn remember(&self, query: &Built) {
        if let Ok(mut m) = self.entries.lock() {
            if m.len() >= Self::MAX_ENTRIES {
                m.retain(|_, t| t.elapsed() < Self::FRESH_FOR);
                if m.len() >= Self::MAX_ENTRIES {
                    m.clear();
                }
            }
            m.insert(query.clone(), std::time::Instant::now());
        }
    }
}

/// Run `search` in `services` (ids the person may read, already narrowed by the form).
pub async fn run(db: &Db, services: &[i64], search: &Search) -> StoreResult<Results> {
    run_with(db, None, services, search).await
}

/// The same, answering capped counts from `cache` when it has them.
pub async fn run_with(
    db: &Db,
    cache: Option<&CountCache>,
    services: &[i64],
    search: &Search,
) -> StoreResult<Results> {
    // Background work (the retention run) waits for searches in flight before its next batch.
    let _busy = crate::foreground::enter();
    if services.is_empty() {
        return Ok(Results {
            rows: Vec::new(),
            count: 0,
            next: None,
            previous: None,
            shape: Shape::Branches(0),
            totals: None,
        });
    }
    let limit = PAGE_SIZE as i64 + 1;
    let known_many = |probe: &Built| cache.is_some_and(|c| c.capped(probe));
    let plan = sql::plan(db, services, search, limit, COUNT_CAP, &known_many).await?;
    if let Some(c) = cache {
        for (probe, found) in &plan.probes {
            if *found > sql::LOOKUP_LIMIT && !c.capped(probe) {
                c.remember(probe);
            }
        }
    }
    let known_capped = cache.is_some_and(|c| c.capped(&plan.count));
    let (rows, count) = if let Some(n) = plan.counted {
        (sql::fetch_rows(db, &plan.list, search).await?, n)
    } else if known_capped {
        (
            sql::fetch_rows(db, &plan.list, search).await?,
            COUNT_CAP + 1,
        )
    } else {
        tokio::try_join!(
            sql::fetch_rows(db, &plan.list, search),
            sql::fetch_count(db, &plan.count)
        )?
    };
    if count > COUNT_CAP && !known_capped {
        if let Some(c) = cache {
            c.remember(&plan.count);
        }
    }
    // Totals of a result set small enough to count: every row it matches is read (a capped
    // count skips this, so the broadest lists cost nothing more).
    let totals = if count > 0 && count <= COUNT_CAP {
        Some(sql::totals(db, &plan).await?)
    } else {
        None
    };
    let mut results = paginate(rows, count, search, plan.shape, PAGE_SIZE);
    results.totals = totals.or((count == 0).then(Totals::default));
    Ok(results)
}

/// Every payment `search` matches in `services`, as journey ids, when there are no more than
/// `COUNT_CAP` of them (None when there are more): what "download these results" writes.
pub async fn all_matching(
    db: &Db,
    services: &[i64],
    search: &Search,
) -> StoreResult<Option<Vec<i64>>> {
    if services.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let plan = sql::plan(db, services, search, 1, COUNT_CAP, &|_: &Built| false).await?;
    let ids = sql::matching_ids(db, &plan).await?;
    // Each walk stops after the cap + 1: more than the cap in all means the set is not whole.
    Ok((ids.len() as i64 <= COUNT_CAP).then_some(ids))
}

/// One page of `page_size` rows of `search` in `services`, without a count (for the API,
/// which pages forwards only): the rows and the cursor of the next page, if any.
pub async fn page(
    db: &Db,
    services: &[i64],
    search: &Search,
    page_size: usize,
) -> StoreResult<(Vec<Row>, Option<String>)> {
    if services.is_empty() || page_size == 0 {
        return Ok((Vec::new(), None));
    }
    let plan = sql::plan(
        db,
        services,
        search,
        page_size as i64 + 1,
        COUNT_CAP,
        &|_: &Built| false,
    )
    .await?;
    let rows = sql::fetch_rows(db, &plan.list, search).await?;
    let r = paginate(rows, 0, search, plan.shape, page_size);
    Ok((r.rows, r.next))
}

/// Turn the rows read (one more than a page, in reading order) into a page with links.
fn paginate(
    mut rows: Vec<Row>,
    count: i64,
    search: &Search,
    shape: Shape,
    page_size: usize,
) -> Results {
    let more = rows.len() > page_size;
    rows.truncate(page_size);
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
        totals: None,
    }
}
