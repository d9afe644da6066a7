//! The v1 payment routes: create, search, look up, events and cancel.

use rocket::data::Data;
use rocket::http::Status;
use rocket::{get, post};

use super::bodies::{parse_create, refusal_reply};
use super::caller::{admit, read_body, Caller};
use super::reply::{invalid_parameters, Reply};
use crate::platform::sandbox::data::{self, Provider, View};
use crate::platform::sandbox::search::{page_links, pairs, payment_query};
use crate::platform::types::{EventLinks, PaymentEvent, PaymentEvents, SearchPage, SelfLinks};

#[post("/v1/payments", data = "<data>")]
pub(super) async fn create_payment(caller: Caller, data: Data<'_>) -> Reply {
    let entry = admit!(caller);
    let body = read_body(data).await.unwrap_or_default();
    let new = match parse_create(&body) {
        Ok(n) => n,
        Err(refusal) => return refusal_reply(refusal),
    };
    let shared = &caller.shared;
    let (payment, token, idx) = shared.with_account(&entry, |account, ctx| {
        let idx = account.create_payment(new, Provider::Sandbox, &mut rand::thread_rng(), ctx);
        let p = account.payment(idx);
        (
            p.wire(&caller.origin, ctx.now, View::Created),
            p.token.as_deref().map(str::to_string),
            idx,
        )
    });
    if let Some(t) = token {
        shared.register_pay_token(&entry, &t, idx);
    }
    let location = format!("{}/v1/payments/{}", caller.origin, payment.payment_id);
    Reply::json(Status::Created, &payment).header("Location", location)
}

#[get("/v1/payments")]
pub(super) async fn search_payments(caller: Caller, uri: &rocket::http::uri::Origin<'_>) -> Reply {
    let entry = admit!(caller);
    let params = pairs(uri.query().map(|q| q.as_str()));
    let q = match payment_query(&params) {
        Ok(q) => q,
        Err(names) => return invalid_parameters("P0401", &names),
    };
    let (total, results) = caller.shared.with_account(&entry, |account, ctx| {
        let (total, page) = account.search_payments(&q, ctx.now);
        let results: Vec<_> = page
            .into_iter()
            .map(|i| {
                account
                    .payment(i)
                    .wire(&caller.origin, ctx.now, View::Search)
            })
            .collect();
        (total, results)
    });
    let page = SearchPage {
        total: total as i64,
        count: results.len() as i64,
        page: q.page as i64,
        results,
        links: page_links(
            &caller.origin,
            "/v1/payments",
            &q.echo,
            q.page,
            q.size,
            total,
        ),
    };
    Reply::json(Status::Ok, &page)
}

#[get("/v1/payments/<id>")]
pub(super) async fn get_payment(caller: Caller, id: &str) -> Reply {
    let entry = admit!(caller);
    let found = caller.shared.with_account(&entry, |account, ctx| {
        account
            .find(id)
            .map(|i| account.payment(i).wire(&caller.origin, ctx.now, View::Full))
    });
    match found {
        Some(p) => Reply::json(Status::Ok, &p),
        None => Reply::error(Status::NotFound, "P0200", "Not found"),
    }
}

#[get("/v1/payments/<id>/events")]
pub(super) async fn get_events(caller: Caller, id: &str) -> Reply {
    let entry = admit!(caller);
    let origin = &caller.origin;
    let found = caller.shared.with_account(&entry, |account, _| {
        let p = account.payment(account.find(id)?);
        let payment_url = data::get_link(format!("{origin}/v1/payments/{}", p.id));
        Some(PaymentEvents {
            payment_id: p.id.to_string(),
            events: p
                .events
                .iter()
                .map(|e| PaymentEvent {
                    payment_id: Some(p.id.to_string()),
                    state: e.st.wire(),
                    updated: data::to_time(e.at),
                    links: Some(EventLinks {
                        payment_url: Some(payment_url.clone()),
                    }),
                })
                .collect(),
            links: Some(SelfLinks {
                self_link: Some(data::get_link(format!(
                    "{origin}/v1/payments/{}/events",
                    p.id
                ))),
            }),
        })
    });
    match found {
        Some(e) => Reply::json(Status::Ok, &e),
        None => Reply::error(Status::NotFound, "P0300", "Not found"),
    }
}

#[post("/v1/payments/<id>/cancel")]
pub(super) async fn cancel_payment(caller: Caller, id: &str) -> Reply {
    let entry = admit!(caller);
    let outcome = caller.shared.with_account(&entry, |account, ctx| {
        let idx = account.find(id)?;
        Some(account.cancel(idx, ctx))
    });
    match outcome {
        None => Reply::error(Status::NotFound, "P0500", "Not found"),
        Some(false) => Reply::error(Status::Conflict, "P0502", "Cancellation of payment failed"),
        Some(true) => Reply::empty(Status::NoContent),
    }
}
