//! What the search statements' tests share: a search read from a query string, as the
//! payments page reads it.

use crate::search::query::{Form, Search};

pub(super) fn search(q: &str) -> Search {
    crate::search::query::parse(
        &Form::from_query(q),
        time::macros::datetime!(2026-07-15 10:00 UTC),
        crate::timezone::Zone::utc(),
    )
    .unwrap()
}
