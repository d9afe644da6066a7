//! The v1 refund routes: a payment's refunds, one refund, a new refund (with the fault that
//! commits it and then never answers) and the refund search.

use std::time::Duration;

use rocket::data::Data;
use rocket::http::Status;
use rocket::{get, post};

use super::bodies::{parse_refund, refusal_reply};
use super::caller::{admit, read_body, Caller};
use super::reply::{invalid_parameters, Reply};
use crate::platform::sandbox::account::RefundRefusal;
use crate::platform::sandbox::data::{self, date_of};
use crate::platform::sandbox::search::{page_links, pairs, refund_query};
use crate::platform::types::{EmbeddedRefunds, PaymentRefunds, RefundLinks, SearchPage};

#[get("/v1/payments/<id>/refunds")]
pub(super) async fn list_refunds(caller: Caller, id: &str) -> Reply {
    let entry = admit!(caller);
    let origin = &caller.origin;
    let found = caller.shared.with_account(&entry, |account, ctx| {
        let p = account.payment(account.find(id)?);
        let today = date_of(ctx.now);
        Some(PaymentRefunds {
            payment_id: p.id.to_string(),
            embedded: EmbeddedRefunds {
                refunds: p
                    .refunds
                    .iter()
                    .map(|r| r.wire(&p.id, origin, today, false))
                    .collect(),
            },
            links: Some(RefundLinks {
                self_link: Some(data::get_link(format!(
                    "{origin}/v1/payments/{}/refunds",
                    p.id
                ))),
                payment: Some(data::get_link(format!("{origin}/v1/payments/{}", p.id))),
            }),
        })
    });
    match found {
        Some(r) => Reply::json(Status::Ok, &r),
        None => Reply::error(Status::NotFound, "P0800", "Not found"),
    }
}

#[get("/v1/payments/<id>/refunds/<refund_id>")]
pub(super) async fn get_refund(caller: Caller, id: &str, refund_id: &str) -> Reply {
    let entry = admit!(caller);
    let found = caller.shared.with_account(&entry, |account, ctx| {
        let p = account.payment(account.find(id)?);
        let r = p.refunds.iter().find(|r| r.id.as_str() == refund_id)?;
        Some(r.wire(&p.id, &caller.origin, date_of(ctx.now), false))
    });
    match found {
        Some(r) => Reply::json(Status::Ok, &r),
        None => Reply::error(Status::NotFound, "P0700", "Not found"),
    }
}

#[post("/v1/payments/<id>/refunds", data = "<data>")]
pub(super) async fn create_refund(caller: Caller, id: &str, data: Data<'_>) -> Reply {
    let entry = admit!(caller);
    let body = read_body(data).await.unwrap_or_default();
    let (amount, expected) = match parse_refund(&body) {
        Ok(r) => r,
        Err(refusal) => return refusal_reply(refusal),
    };
    let origin = &caller.origin;
    let outcome = caller.shared.with_account(&entry, |account, ctx| {
        let idx = account.find(id)?;
        let result = account
            .refund(idx, amount, expected, &mut rand::thread_rng(), ctx)
            .map(|n| {
                let p = account.payment(idx);
                p.refunds[n as usize].wire(&p.id, origin, date_of(ctx.now), false)
            });
        Some(result)
    });
    match outcome {
        None => Reply::error(Status::NotFound, "P0600", "Not found"),
        Some(Err(RefundRefusal::NotAvailable(status))) => Reply::error(
            Status::BadRequest,
            "P0603",
            &format!("The payment is not available for refund. Payment refund status: {status}"),
        ),
        Some(Err(RefundRefusal::Disputed)) => Reply::error(
            Status::BadRequest,
            "P0603",
            "The payment is disputed and cannot be refunded",
        ),
        Some(Err(RefundRefusal::AvailableMismatch)) => Reply::error(
            Status::PreconditionFailed,
            "P0604",
            "Refund amount available mismatch.",
        ),
        Some(Err(RefundRefusal::TooMuch { .. })) => Reply::field_error(
            Status::BadRequest,
            "P0602",
            "Not sufficient amount available for refund",
            "amount",
        ),
        Some(Ok(refund)) => {
            if entry.faults().take_refund_hang() {
                // The refund is committed; the caller never hears so (its timeout fires).
                tokio::time::sleep(Duration::from_secs(120)).await;
            }
            Reply::json(Status::Ok, &refund)
        }
    }
}

#[get("/v1/refunds")]
pub(super) async fn search_refunds(caller: Caller, uri: &rocket::http::uri::Origin<'_>) -> Reply {
    let entry = admit!(caller);
    let params = pairs(uri.query().map(|q| q.as_str()));
    let q = match refund_query(&params) {
        Ok(q) => q,
        Err(names) => return invalid_parameters("P1101", &names),
    };
    let origin = &caller.origin;
    let (total, results) = caller.shared.with_account(&entry, |account, ctx| {
        let (total, page) = account.search_refunds(&q, ctx.now);
        let today = date_of(ctx.now);
        let results: Vec<_> = page
            .into_iter()
            .map(|(i, n)| {
                let p = account.payment(i);
                p.refunds[n as usize].wire(&p.id, origin, today, true)
            })
            .collect();
        (total, results)
    });
    let page = SearchPage {
        total: total as i64,
        count: results.len() as i64,
        page: q.page as i64,
        results,
        links: page_links(origin, "/v1/refunds", &q.echo, q.page, q.size, total),
    };
    Reply::json(Status::Ok, &page)
}
