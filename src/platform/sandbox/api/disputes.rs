//! The v1 dispute search (`GET /v1/disputes`), newest first, in the contract's
//! `DisputesSearchResults` shape (whose page links are `links`).

use rocket::get;
use rocket::http::Status;

use super::caller::{admit, Caller};
use super::reply::{invalid_parameters, Reply};
use crate::platform::dispute_wire::DisputesPage;
use crate::platform::sandbox::search::{dispute_query, page_links, pairs};

#[get("/v1/disputes")]
pub(super) async fn search_disputes(caller: Caller, uri: &rocket::http::uri::Origin<'_>) -> Reply {
    let entry = admit!(caller);
    let params = pairs(uri.query().map(|q| q.as_str()));
    let q = match dispute_query(&params) {
        Ok(q) => q,
        Err(names) => return invalid_parameters("P0401", &names),
    };
    let origin = &caller.origin;
    let (total, results) = caller.shared.with_account(&entry, |account, ctx| {
        let (total, page) = account.search_disputes(&q, ctx.now);
        let results: Vec<_> = page
            .into_iter()
            .filter_map(|i| {
                let p = account.payment(i);
                p.dispute
                    .as_deref()
                    .map(|d| d.wire(&p.id, p.amount, origin, ctx.now))
            })
            .collect();
        (total, results)
    });
    let page = DisputesPage {
        total: total as i64,
        count: results.len() as i64,
        page: q.page as i64,
        results,
        links: page_links(origin, "/v1/disputes", &q.echo, q.page, q.size, total),
    };
    Reply::json(Status::Ok, &page)
}
