//! The sandbox's own control endpoints under `/sandbox/`: accounts, webhook targets,
//! faults, totals, the clock, driving a payment as a payer would, a payer's bank disputing a
//! payment, and the webhook delivery log. They have no authentication: the sandbox binds to 127.0.0.1 unless told otherwise.

use std::sync::Arc;

use rocket::data::{Data, ToByteUnit};
use rocket::http::Status;
use rocket::{get, post, put, routes, Route, State};
use serde::Deserialize;
use serde_json::{json, Value};

use super::account::{DisputeRefusal, DriveRefusal, NewDispute, Target, WebhookTarget};
use super::api::Reply;
use super::data::{to_time, Brand, CardRec, CardType, View, DAY};
use super::faults::Faults;
use super::options::{check_webhook_url, AccountSpec};
use super::shared::{build_entry, Entry, Shared};
use crate::platform::types::wire_time;

pub fn routes() -> Vec<Route> {
    routes![
        list_accounts,
        create_account,
        set_webhook,
        set_faults,
        get_faults,
        totals,
        get_clock,
        advance_clock,
        advance_payment,
        raise_dispute,
        webhook_log,
    ]
}

fn problem(status: Status, message: &str) -> Reply {
    Reply::json(status, &json!({ "error": message }))
}

async fn json_body<T: for<'de> Deserialize<'de>>(data: Data<'_>) -> Result<T, Reply> {
    let bytes = match data.open(1.mebibytes()).into_bytes().await {
        Ok(b) if b.is_complete() => b.into_inner(),
        _ => {
            return Err(problem(
                Status::BadRequest,
                "the body is missing or too large",
            ))
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| problem(Status::BadRequest, &format!("invalid JSON: {e}")))
}

fn account_summary(shared: &Shared, entry: &Entry) -> Value {
    let (payments, webhook_url, totals) = shared.with_account(entry, |a, _| {
        (
            a.len(),
            a.webhook.as_ref().map(|w| w.url.clone()),
            a.totals(),
        )
    });
    json!({
        "id": entry.id,
        "name": entry.name,
        "payments": payments,
        "webhook_url": webhook_url,
        "oauth": entry.client_id.is_some(),
        "totals": totals,
    })
}

#[get("/sandbox/accounts")]
fn list_accounts(shared: &State<Arc<Shared>>) -> Reply {
    let list: Vec<Value> = shared
        .entries()
        .iter()
        .map(|e| account_summary(shared, e))
        .collect();
    Reply::json(Status::Ok, &list)
}

#[post("/sandbox/accounts", data = "<data>")]
async fn create_account(shared: &State<Arc<Shared>>, data: Data<'_>) -> Reply {
    let spec: AccountSpec = match json_body(data).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if shared.entry(&spec.id).is_some() {
        return problem(Status::Conflict, "there is already an account with that id");
    }
    let entry = match build_entry(spec, shared.random_seed, shared.anchor, Vec::new()).await {
        Ok(e) => e,
        Err(e) => return problem(Status::UnprocessableEntity, &e.to_string()),
    };
    if let Err(e) = shared.add_entry(entry.clone()) {
        return problem(Status::Conflict, &e);
    }
    shared.changed();
    Reply::json(Status::Created, &account_summary(shared, &entry))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSetting {
    url: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

#[put("/sandbox/accounts/<id>/webhook", data = "<data>")]
async fn set_webhook(shared: &State<Arc<Shared>>, id: &str, data: Data<'_>) -> Reply {
    let Some(entry) = shared.entry(id) else {
        return problem(Status::NotFound, "no such account");
    };
    let setting: WebhookSetting = match json_body(data).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let target = match setting.url.filter(|u| !u.is_empty()) {
        None => None,
        Some(url) => {
            if let Err(e) = check_webhook_url(&url) {
                return problem(Status::UnprocessableEntity, &e);
            }
            Some(WebhookTarget {
                url,
                secret: setting.secret.unwrap_or_default(),
            })
        }
    };
    let url = target.as_ref().map(|t| t.url.clone());
    entry.lock().webhook = target;
    shared.changed();
    Reply::json(Status::Ok, &json!({ "account": id, "url": url }))
}

#[put("/sandbox/accounts/<id>/faults", data = "<data>")]
async fn set_faults(shared: &State<Arc<Shared>>, id: &str, data: Data<'_>) -> Reply {
    let Some(entry) = shared.entry(id) else {
        return problem(Status::NotFound, "no such account");
    };
    let faults: Faults = match json_body(data).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(e) = faults.validate() {
        return problem(Status::UnprocessableEntity, &e);
    }
    entry.faults().faults = faults.clone();
    Reply::json(Status::Ok, &faults)
}

#[get("/sandbox/accounts/<id>/faults")]
fn get_faults(shared: &State<Arc<Shared>>, id: &str) -> Reply {
    match shared.entry(id) {
        Some(entry) => Reply::json(Status::Ok, &entry.faults().faults.clone()),
        None => problem(Status::NotFound, "no such account"),
    }
}

#[get("/sandbox/accounts/<id>/totals")]
fn totals(shared: &State<Arc<Shared>>, id: &str) -> Reply {
    match shared.entry(id) {
        Some(entry) => Reply::json(Status::Ok, &shared.with_account(&entry, |a, _| a.totals())),
        None => problem(Status::NotFound, "no such account"),
    }
}

fn clock_json(shared: &Shared) -> Value {
    json!({
        "now": wire_time::format(to_time(shared.now())),
        "offset_secs": shared.clock_offset() / 1000,
    })
}

#[get("/sandbox/clock")]
fn get_clock(shared: &State<Arc<Shared>>) -> Reply {
    Reply::json(Status::Ok, &clock_json(shared))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockAdvance {
    advance_secs: i64,
}

#[post("/sandbox/clock", data = "<data>")]
async fn advance_clock(shared: &State<Arc<Shared>>, data: Data<'_>) -> Reply {
    let advance: ClockAdvance = match json_body(data).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !(0..=3650 * DAY / 1000).contains(&advance.advance_secs) {
        return problem(
            Status::UnprocessableEntity,
            "advance_secs must be between 0 and ten years: sandbox time only moves forwards",
        );
    }
    shared.advance_clock(advance.advance_secs * 1000);
    shared.sweep();
    Reply::json(Status::Ok, &clock_json(shared))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    to: String,
    #[serde(default)]
    code: Option<String>,
}

/// The card an operator-driven payment is paid with.
fn default_card() -> CardRec {
    CardRec {
        brand: Brand::Visa,
        card_type: CardType::Credit,
        first6: *b"411111",
        last4: *b"1111",
        expiry: *b"12/30",
        holder: "Sandbox Payer".into(),
    }
}

fn target_of(to: &str, code: Option<&str>) -> Result<Target, String> {
    let card = default_card;
    Ok(match (to, code) {
        ("started", None) => Target::Started,
        ("submitted", None) => Target::Submitted(card()),
        ("success", None) => Target::Success(card()),
        ("failed", None | Some("P0010")) => Target::Declined(card()),
        ("failed", Some("P0020")) => Target::Expired,
        ("failed", Some("P0030")) => Target::UserCancelled,
        ("cancelled", None | Some("P0040")) => Target::Cancelled,
        ("error", None | Some("P0050")) => Target::Error(card()),
        _ => {
            return Err(format!(
                "cannot move a payment to {to:?} with code {code:?}: use started, submitted, success, failed (P0010, P0020, P0030), cancelled or error"
            ))
        }
    })
}

#[post("/sandbox/payments/<id>/advance", data = "<data>")]
async fn advance_payment(shared: &State<Arc<Shared>>, id: &str, data: Data<'_>) -> Reply {
    let advance: Advance = match json_body(data).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let target = match target_of(&advance.to, advance.code.as_deref()) {
        Ok(t) => t,
        Err(e) => return problem(Status::UnprocessableEntity, &e),
    };
    for entry in shared.entries() {
        let base = shared.base_url().to_string();
        let outcome = shared.with_account(&entry, |account, ctx| {
            let idx = account.find(id)?;
            Some(
                account
                    .drive(idx, target.clone(), ctx)
                    .map(|_| account.payment(idx).wire(&base, ctx.now, View::Full)),
            )
        });
        let Some(outcome) = outcome else {
            continue;
        };
        return match outcome {
            Ok(payment) => Reply::json(Status::Ok, &payment),
            Err(DriveRefusal::Finished) => problem(Status::Conflict, "the payment has finished"),
            Err(DriveRefusal::Backwards) => {
                problem(Status::Conflict, "the payment is already past that state")
            }
        };
    }
    problem(Status::NotFound, "no such payment")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisputeAsk {
    #[serde(default)]
    reason: Option<String>,
    /// `won` or `lost` (the default): how the bank decides, once it does.
    #[serde(default)]
    outcome: Option<String>,
    /// Days until the evidence is due (default 10).
    #[serde(default)]
    evidence_days: Option<i64>,
}

/// The payer's bank disputes a successful payment now: 201 with the dispute as the dispute
/// search shows it; 409 when the payment is not successful or is disputed already.
#[post("/sandbox/payments/<id>/dispute", data = "<data>")]
async fn raise_dispute(shared: &State<Arc<Shared>>, id: &str, data: Data<'_>) -> Reply {
    use super::disputes::{EVIDENCE_DAYS, REASONS};
    let ask: DisputeAsk = match json_body(data).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let reason = ask.reason.as_deref().unwrap_or("fraudulent");
    let Some(reason) = REASONS.iter().position(|r| *r == reason) else {
        return problem(
            Status::UnprocessableEntity,
            &format!("reason must be one of {}", REASONS.join(", ")),
        );
    };
    let lost = match ask.outcome.as_deref() {
        None | Some("lost") => true,
        Some("won") => false,
        Some(_) => return problem(Status::UnprocessableEntity, "outcome must be won or lost"),
    };
    let evidence_days = ask.evidence_days.unwrap_or(EVIDENCE_DAYS);
    if !(0..=60).contains(&evidence_days) {
        return problem(
            Status::UnprocessableEntity,
            "evidence_days must be between 0 and 60",
        );
    }
    let new = NewDispute {
        reason: u8::try_from(reason).unwrap_or(0),
        lost,
        evidence_days,
    };
    for entry in shared.entries() {
        let base = shared.base_url().to_string();
        let outcome = shared.with_account(&entry, |account, ctx| {
            let idx = account.find(id)?;
            Some(
                account
                    .raise_dispute(idx, new, &mut rand::thread_rng(), ctx)
                    .map(|_| {
                        let p = account.payment(idx);
                        p.dispute
                            .as_deref()
                            .map(|d| d.wire(&p.id, p.amount, &base, ctx.now))
                    }),
            )
        });
        let Some(outcome) = outcome else {
            continue;
        };
        return match outcome {
            Ok(dispute) => Reply::json(Status::Created, &dispute),
            Err(DisputeRefusal::NotSuccessful) => problem(
                Status::Conflict,
                "only a successful payment can be disputed",
            ),
            Err(DisputeRefusal::AlreadyDisputed) => {
                problem(Status::Conflict, "the payment is disputed already")
            }
        };
    }
    problem(Status::NotFound, "no such payment")
}

#[get("/sandbox/webhooks?<account>")]
fn webhook_log(shared: &State<Arc<Shared>>, account: Option<&str>) -> Reply {
    Reply::json(
        Status::Ok,
        &json!({ "deliveries": shared.hub.log(account) }),
    )
}
