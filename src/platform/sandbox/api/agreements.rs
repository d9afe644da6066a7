//! The v1 recurring agreement routes: create, search (newest first, in the contract's
//! `AgreementSearchResults` shape), look up and cancel (204, or 400 when the agreement is not
//! active, 404 when unknown).

use rocket::data::Data;
use rocket::http::Status;
use rocket::{get, post};
use serde_json::Value;

use super::caller::{admit, read_body, Caller};
use super::reply::{invalid_parameters, Reply};
use crate::platform::agreement_wire::AgreementsPage;
use crate::platform::sandbox::agreements::CancelRefusal;
use crate::platform::sandbox::search::{agreement_query, page_links, pairs};

/// The contract names no codes for agreements; these are the sandbox's.
const NOT_FOUND: &str = "P2500";
const CANCEL_FAILED: &str = "P2501";

#[post("/v1/agreements", data = "<data>")]
pub(super) async fn create_agreement(caller: Caller, data: Data<'_>) -> Reply {
    let entry = admit!(caller);
    let body = read_body(data).await.unwrap_or_default();
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) else {
        return Reply::error(Status::BadRequest, "P2401", "Unparsable JSON");
    };
    let text = |name: &'static str, required: bool| -> Result<Option<String>, &'static str> {
        match map.get(name) {
            None | Some(Value::Null) if !required => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 255 => {
                Ok(Some(s.clone()))
            }
            _ => Err(name),
        }
    };
    let (reference, description, user) = match (
        text("reference", true),
        text("description", true),
        text("user_identifier", false),
    ) {
        (Ok(Some(r)), Ok(Some(d)), Ok(u)) => (r, d, u),
        (r, d, u) => {
            let field = [r.err(), d.err(), u.err()]
                .into_iter()
                .flatten()
                .next()
                .unwrap_or("reference");
            return Reply::field_error(
                Status::UnprocessableEntity,
                "P2402",
                &format!("Invalid attribute value: {field}"),
                field,
            );
        }
    };
    let agreement = caller.shared.with_account(&entry, |account, ctx| {
        let i = account.create_agreement(
            &reference,
            &description,
            user.as_deref(),
            &mut rand::thread_rng(),
            ctx,
        );
        account.agreement(i).wire(ctx.now)
    });
    let location = format!("{}/v1/agreements/{}", caller.origin, agreement.agreement_id);
    Reply::json(Status::Created, &agreement).header("Location", location)
}

#[get("/v1/agreements")]
pub(super) async fn search_agreements(
    caller: Caller,
    uri: &rocket::http::uri::Origin<'_>,
) -> Reply {
    let entry = admit!(caller);
    let params = pairs(uri.query().map(|q| q.as_str()));
    let q = match agreement_query(&params) {
        Ok(q) => q,
        Err(names) => return invalid_parameters("P0401", &names),
    };
    let (total, results) = caller.shared.with_account(&entry, |account, ctx| {
        let (total, page) = account.search_agreements(&q, ctx.now);
        let results: Vec<_> = page
            .into_iter()
            .map(|i| account.agreement(i).wire(ctx.now))
            .collect();
        (total, results)
    });
    let page = AgreementsPage {
        total: total as i64,
        count: results.len() as i64,
        page: q.page as i64,
        results,
        links: page_links(
            &caller.origin,
            "/v1/agreements",
            &q.echo,
            q.page,
            q.size,
            total,
        ),
    };
    Reply::json(Status::Ok, &page)
}

#[get("/v1/agreements/<id>")]
pub(super) async fn get_agreement(caller: Caller, id: &str) -> Reply {
    let entry = admit!(caller);
    let found = caller.shared.with_account(&entry, |account, ctx| {
        account
            .find_agreement(id)
            .map(|i| account.agreement(i).wire(ctx.now))
    });
    match found {
        Some(a) => Reply::json(Status::Ok, &a),
        None => Reply::error(Status::NotFound, NOT_FOUND, "Not found"),
    }
}

#[post("/v1/agreements/<id>/cancel")]
pub(super) async fn cancel_agreement(caller: Caller, id: &str) -> Reply {
    let entry = admit!(caller);
    let outcome = caller.shared.with_account(&entry, |account, ctx| {
        let i = account.find_agreement(id)?;
        Some(account.cancel_agreement(i, ctx))
    });
    match outcome {
        None => Reply::error(Status::NotFound, NOT_FOUND, "Not found"),
        Some(Err(CancelRefusal::NotActive(status))) => Reply::error(
            Status::BadRequest,
            CANCEL_FAILED,
            &format!(
                "Cancellation of agreement failed: the agreement is {}",
                status.as_str()
            ),
        ),
        Some(Ok(())) => {
            if entry.faults().take_agreement_cancel_hang() {
                // The cancel is committed; the caller never hears so (its timeout fires).
                tokio::time::sleep(std::time::Duration::from_secs(120)).await;
            }
            Reply::empty(Status::NoContent)
        }
    }
}
