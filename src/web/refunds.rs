//! Refund pages. Asking for a refund from a payment's page: the form
//! (`/payments/<id>/refund`), "Check your answers", and the confirmation, which asks for the
//! second factor again when the last one is more than 5 minutes old. Approving: the queue of
//! requests awaiting a decision (`/refunds`) and a request's review page with its Approve and
//! Reject forms. The rules and every change live in `crate::refunds`; this module only reads
//! forms, shows pages and says what happened.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use rocket::form::FromForm;
use rocket::http::uri::Origin;
use rocket::http::Status;
use rocket::response::Redirect;
use rocket::{Route, State};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::auth::RequestOrigin;
use super::pages::{self, internal, problem, render, Answer};
use super::payments::{find_journey, local_time, page_href};
use super::ratelimit::SignInLimiter;
use super::session::{CsrfForm, SignedIn};
use super::stepup::{self, StepUp};
use crate::audit::{self, AuditEvent};
use crate::identity::permissions::Permission;
use crate::identity::signin::CurrentSession;
use crate::refunds::rules::{self, pounds, Reason};
use crate::refunds::{self, Ask, Asked, RequestRow};
use crate::services::{self, ServiceAccount};
use crate::store::{
    self, journeys as journey_store, refunds as refund_store, staff as staff_store,
};
use crate::AppState;

pub fn routes() -> Vec<Route> {
    rocket::routes![form, check, confirm, queue, review, approve, reject]
}

/// Longest comment or case reference kept when a form is shown again (the rules refuse
/// anything over 1,000 characters; this only bounds what a page echoes).
const ECHO_LIMIT: usize = 5_000;

/// The refund form's fields, as posted (and as the "Change" links carry them back).
#[derive(FromForm, Default, Debug, Clone)]
pub struct Fields {
    #[field(default = String::new())]
    service: String,
    #[field(default = String::new())]
    back: String,
    #[field(default = String::new())]
    how_much: String,
    #[field(default = String::new())]
    amount: String,
    #[field(default = String::new())]
    reason: String,
    #[field(default = String::new())]
    comment: String,
    #[field(default = String::new())]
    case_reference: String,
    #[field(default = String::new())]
    form_key: String,
    /// The amount (pence) the check page showed: what "Confirm" confirms.
    #[field(default = String::new())]
    seen: String,
    /// The step-up code, when the "Confirm it's you" page sent it.
    #[field(default = String::new())]
    code: String,
    /// Set by the "Change your answers" button of the check page: show the form again.
    #[field(default = String::new())]
    edit: String,
    /// Set by the "Confirm it's you" page, so an empty code there is a problem.
    #[field(default = String::new())]
    stepping_up: String,
}

impl Fields {
    fn from_query(raw: &str) -> Fields {
        let mut f = <Fields as Default>::default();
        let mut seen = BTreeSet::new();
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            // The first of a repeated field wins.
            if !seen.insert(k.to_string()) {
                continue;
            }
            let v = v.into_owned();
            match k.as_ref() {
                "service" => f.service = v,
                "back" => f.back = v,
                "how_much" => f.how_much = v,
                "amount" => f.amount = v,
                "reason" => f.reason = v,
                "comment" => f.comment = v,
                "case_reference" => f.case_reference = v,
                "form_key" => f.form_key = v,
                _ => {}
            }
        }
        f
    }

    /// The values a page shows again, bounded.
    fn echo(&self) -> Value {
        let cut = |s: &str| s.chars().take(ECHO_LIMIT).collect::<String>();
        json!({
            "how_much": cut(&self.how_much),
            "amount": cut(&self.amount),
            "reason": cut(&self.reason),
            "comment": cut(&self.comment),
            "case_reference": cut(&self.case_reference),
            "form_key": cut(&self.form_key),
            "back": cut(&self.back),
        })
    }

    /// The form's address with these values, for a "Change" link.
    fn change_href(&self, payment_id: &str, slug: &str, anchor: &str) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("service", slug);
        for (k, v) in [
            ("back", &self.back),
            ("how_much", &self.how_much),
            ("amount", &self.amount),
            ("reason", &self.reason),
            ("comment", &self.comment),
            ("case_reference", &self.case_reference),
            ("form_key", &self.form_key),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        format!("{}?{}#{anchor}", form_path(payment_id), q.finish())
    }
}

fn id_path(payment_id: &str) -> String {
    url::form_urlencoded::byte_serialize(payment_id.as_bytes()).collect()
}

fn form_path(payment_id: &str) -> String {
    format!("/payments/{}/refund", id_path(payment_id))
}

/// A form key as paydesk makes them (a UUID); anything else is not one.
fn valid_form_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn new_form_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A request's state as a tag: (text, colour).
fn state_tag(state: &str) -> (&'static str, &'static str) {
    match state {
        "awaiting_approval" => ("Awaiting approval", "yellow"),
        "approved" => ("Approved", "turquoise"),
        "submitting" => ("Sending", "blue"),
        "submitted" => ("Submitted", "blue"),
        "succeeded" => ("Refunded", "green"),
        "failed" => ("Failed", "red"),
        "rejected" => ("Rejected", "red"),
        "expired" => ("Expired", "grey"),
        _ => ("Unknown", "grey"),
    }
}

fn reason_label(name: &str) -> String {
    Reason::parse(name)
        .map(|r| r.label().to_string())
        .unwrap_or_else(|| name.to_string())
}

/// How long ago, in words: "5 minutes", "3 hours", "2 days".
fn age(now: OffsetDateTime, us: i64) -> String {
    let d = now - store::from_micros(us);
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if d.whole_minutes() < 1 {
        "Less than a minute".into()
    } else if d.whole_hours() < 1 {
        plural(d.whole_minutes(), "minute")
    } else if d.whole_hours() < 48 {
        plural(d.whole_hours(), "hour")
    } else {
        plural(d.whole_days(), "day")
    }
}

/// Staff names by id, looked up once each.
#[derive(Default)]
struct Names(HashMap<i64, String>);

impl Names {
    async fn of(&mut self, state: &AppState, id: i64) -> Result<String, Status> {
        if let Some(n) = self.0.get(&id) {
            return Ok(n.clone());
        }
        let name = staff_store::staff_by_id(&state.db, id)
            .await
            .map_err(internal)?
            .map(|s| s.name)
            .unwrap_or_else(|| format!("Account {id}"));
        self.0.insert(id, name.clone());
        Ok(name)
    }
}

fn who(session: &CurrentSession, ip: Option<String>) -> refunds::Staff {
    refunds::Staff {
        id: session.staff.id,
        email: session.staff.email.clone(),
        name: session.staff.name.clone(),
        ip,
    }
}

/// Refused to someone who may read the payment but not ask for its refund: audited, 403.
async fn forbid(
    state: &AppState,
    staff: &SignedIn,
    origin: &RequestOrigin,
    path: String,
    needs: Permission,
) -> Status {
    let _ = audit::record(
        &state.db,
        state.clock.now(),
        AuditEvent::new(staff.actor(), "authz_fail", path)
            .failed()
            .from_ip(origin.0.ip.clone())
            .details(json!({"needs": needs.name()})),
    )
    .await;
    Status::Forbidden
}

/// The payment a refund page is about, in a service where the person may ask for refunds.
async fn refundable_journey(
    state: &AppState,
    staff: &SignedIn,
    origin: &RequestOrigin,
    id: &str,
    service: &str,
) -> Result<(ServiceAccount, journey_store::JourneyRow), Status> {
    let slug = (!service.is_empty()).then_some(service);
    let (svc, j) = find_journey(state, staff, id, slug).await?;
    if !staff.grants.can(Permission::RefundsRequest, svc.id) {
        return Err(forbid(
            state,
            staff,
            origin,
            form_path(&j.payment_id),
            Permission::RefundsRequest,
        )
        .await);
    }
    Ok((svc, j))
}

/// What has happened to a payment's money so far: refunded, pending (at the platform, or
/// asked for in paydesk and not yet sent), and still available, with the platform's refund
/// status.
struct Money {
    refunded: i64,
    pending: i64,
    available: i64,
    status: Option<String>,
}

async fn money_of(
    state: &AppState,
    svc: &ServiceAccount,
    j: &journey_store::JourneyRow,
) -> Result<Money, Status> {
    let (platform, requests, (status, available)) = tokio::try_join!(
        async {
            journey_store::refunds_of(&state.db, svc.id, &j.payment_id)
                .await
                .map_err(internal)
        },
        async {
            refund_store::for_journey(&state.db, j.id)
                .await
                .map_err(internal)
        },
        async {
            refunds::available_now(&state.db, j.id)
                .await
                .map_err(internal)
        },
    )?;
    let refunded = platform
        .iter()
        .filter(|r| r.status == "success")
        .map(|r| r.amount)
        .sum();
    let at_platform: i64 = platform
        .iter()
        .filter(|r| r.status == "submitted")
        .map(|r| r.amount)
        .sum();
    let held: i64 = requests
        .iter()
        .filter(|r| {
            matches!(
                r.state.as_str(),
                "awaiting_approval" | "approved" | "submitting"
            )
        })
        .map(|r| r.amount)
        .sum();
    Ok(Money {
        refunded,
        pending: at_platform + held,
        available,
        status,
    })
}

/// The refund form's page: the payment, its money, and the form with `fields` and
/// `problems`.
async fn form_page(
    state: &AppState,
    staff: &SignedIn,
    svc: &ServiceAccount,
    j: &journey_store::JourneyRow,
    fields: &Fields,
    problems: &[(String, String)],
) -> Result<Map<String, Value>, Status> {
    let money = money_of(state, svc, j).await?;
    let settings = refund_store::settings(&state.db, svc.id)
        .await
        .map_err(internal)?;
    let mut c = pages::signed_in(state, staff, "/payments");
    let mut errors = Vec::new();
    let mut field_errors = Map::new();
    for (field, message) in problems {
        if !field_errors.contains_key(field) {
            field_errors.insert(field.clone(), json!(message));
            errors.push(problem(field, message.clone()));
        }
    }
    let back = super::payments::back_query(Some(&fields.back));
    c.insert(
        "journey".into(),
        json!({
            "reference": j.reference,
            "payment_id": j.payment_id,
            "service": svc.name,
            "service_slug": svc.slug,
            "amount": pounds(j.amount),
        }),
    );
    c.insert(
        "money".into(),
        json!({
            "refunded": pounds(money.refunded),
            "pending": pounds(money.pending),
            "available": pounds(money.available),
        }),
    );
    c.insert(
        "refundable".into(),
        json!(rules::refundable(money.status.as_deref()) && money.available > 0),
    );
    c.insert(
        "full_label".into(),
        json!(format!(
            "Full refund ({}, everything still refundable)",
            pounds(money.available)
        )),
    );
    c.insert(
        "reason_options".into(),
        Value::Array(
            Reason::ALL
                .iter()
                .map(|r| json!({"value": r.name(), "text": r.label()}))
                .collect(),
        ),
    );
    c.insert(
        "case_reference_required".into(),
        json!(settings.refund_case_reference_required),
    );
    c.insert(
        "approval_note".into(),
        json!(settings.refund_approval_threshold.map(|t| format!(
            "Refunds of more than {} need approval by someone with the finance role before they are sent.",
            pounds(t)
        ))),
    );
    let mut shown = fields.clone();
    shown.back = back.clone();
    c.insert("fields".into(), shown.echo());
    c.insert("errors".into(), Value::Array(errors));
    c.insert("field_errors".into(), Value::Object(field_errors));
    c.insert("action".into(), json!(form_path(&j.payment_id)));
    c.insert(
        "back_href".into(),
        json!(page_href(&j.payment_id, &svc.slug, &back, &[])),
    );
    Ok(c)
}

#[rocket::get("/payments/<id>/refund")]
async fn form(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    uri: &Origin<'_>,
) -> Result<Answer, Status> {
    let raw = uri.query().map(|q| q.as_str()).unwrap_or("");
    let mut fields = if raw.len() > 16 * 1024 {
        <Fields as Default>::default()
    } else {
        Fields::from_query(raw)
    };
    let (svc, j) = refundable_journey(state, &staff, &origin, id, &fields.service).await?;
    // A one-time key, made when the form is first shown and carried through to the
    // confirmation: submitting the same form twice makes one request.
    if !valid_form_key(&fields.form_key) {
        fields.form_key = new_form_key();
    }
    let c = form_page(state, &staff, &svc, &j, &fields, &[]).await?;
    Ok(Answer::Page(render("refunds/form", c)))
}

/// The ask a form makes; for a full refund, bound to the amount the check page showed.
fn ask_of(svc: &ServiceAccount, j: &journey_store::JourneyRow, f: &Fields, bind: bool) -> Ask {
    let seen = f.seen.trim().parse::<i64>().ok().filter(|p| *p > 0);
    let (how_much, amount) = match (f.how_much.as_str(), seen, bind) {
        ("full", Some(p), true) => ("partial".to_string(), format!("{}.{:02}", p / 100, p % 100)),
        _ => (f.how_much.clone(), f.amount.clone()),
    };
    Ask {
        service_id: svc.id,
        journey_id: j.id,
        payment_id: j.payment_id.clone(),
        how_much,
        amount,
        reason: f.reason.clone(),
        comment: f.comment.clone(),
        case_reference: f.case_reference.clone(),
        form_key: f.form_key.clone(),
    }
}

fn owned(problems: Vec<refunds::Problem>) -> Vec<(String, String)> {
    problems
        .into_iter()
        .map(|(f, m)| (f.to_string(), m))
        .collect()
}

#[rocket::post("/payments/<id>/refund", data = "<form>")]
async fn check(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<Fields>,
) -> Result<Answer, Status> {
    let mut f = form.0;
    let (svc, j) = refundable_journey(state, &staff, &origin, id, &f.service).await?;
    if !valid_form_key(&f.form_key) {
        f.form_key = new_form_key();
    }
    // "Change your answers": the form again, as filled in (the values travel in the POST
    // body, never in an address).
    if f.edit == "yes" {
        let c = form_page(state, &staff, &svc, &j, &f, &[]).await?;
        return Ok(Answer::Page(render("refunds/form", c)));
    }
    let settings = refund_store::settings(&state.db, svc.id)
        .await
        .map_err(internal)?;
    let (status, available) = refunds::available_now(&state.db, j.id)
        .await
        .map_err(internal)?;
    let checked = match refunds::check(
        &ask_of(&svc, &j, &f, false),
        &settings,
        status.as_deref(),
        available,
    ) {
        Ok(c) => c,
        Err(problems) => {
            let c = form_page(state, &staff, &svc, &j, &f, &owned(problems)).await?;
            return Ok(Answer::Invalid(render("refunds/form", c)));
        }
    };
    let back = super::payments::back_query(Some(&f.back));
    f.back = back.clone();
    // Back to a fresh form for this refund (same one-time key); the free-text answers are
    // only ever sent back in a POST ("Change your answers" below).
    let change = |anchor: &str| {
        Fields {
            comment: String::new(),
            case_reference: String::new(),
            ..f.clone()
        }
        .change_href(&j.payment_id, &svc.slug, anchor)
    };
    let amount_text = if f.how_much == "full" {
        format!(
            "{} (full refund: everything still refundable)",
            pounds(checked.amount)
        )
    } else {
        pounds(checked.amount)
    };
    let approval = if rules::needs_approval(checked.amount, settings.refund_approval_threshold) {
        format!(
            "Someone with the finance role must approve it, because it is more than {}. It is sent to the platform once approved.",
            pounds(settings.refund_approval_threshold.unwrap_or(0))
        )
    } else {
        "None needed: it is sent to the platform straight away.".to_string()
    };
    let rows = json!([
        {"key": "Payment", "value": format!("{} ({}, {})", j.reference, svc.name, pounds(j.amount))},
        {"key": "Amount to refund", "value": amount_text},
        {"key": "Reason", "value": checked.reason.label()},
        {"key": "Comment", "value": checked.comment.clone().unwrap_or_else(|| "None".into())},
        {"key": "Case reference", "value": checked.case_reference.clone().unwrap_or_else(|| "None".into())},
        {"key": "Approval", "value": approval},
    ]);
    let mut c = pages::signed_in(state, &staff, "/payments");
    c.insert(
        "journey".into(),
        json!({"reference": j.reference, "service": svc.name}),
    );
    c.insert("rows".into(), rows);
    c.insert(
        "action".into(),
        json!(format!("{}/confirm", form_path(&j.payment_id))),
    );
    c.insert(
        "hidden".into(),
        hidden_fields(hidden_pairs(&svc.slug, &f, Some(checked.amount))),
    );
    c.insert("change_action".into(), json!(form_path(&j.payment_id)));
    c.insert("amount".into(), json!(pounds(checked.amount)));
    c.insert("back_href".into(), json!(change("how_much")));
    c.insert(
        "cancel_href".into(),
        json!(page_href(&j.payment_id, &svc.slug, &back, &[])),
    );
    Ok(Answer::Page(render("refunds/check", c)))
}

/// The refund's fields as hidden inputs, for the confirm and "Confirm it's you" forms.
fn hidden_pairs(slug: &str, f: &Fields, seen: Option<i64>) -> Vec<(&'static str, String)> {
    let cut = |s: &str| s.chars().take(ECHO_LIMIT).collect::<String>();
    vec![
        ("service", slug.to_string()),
        ("back", cut(&f.back)),
        ("how_much", cut(&f.how_much)),
        ("amount", cut(&f.amount)),
        ("reason", cut(&f.reason)),
        ("comment", cut(&f.comment)),
        ("case_reference", cut(&f.case_reference)),
        ("form_key", cut(&f.form_key)),
        ("seen", seen.map(|p| p.to_string()).unwrap_or_default()),
    ]
}

fn hidden_fields(pairs: Vec<(&str, String)>) -> Value {
    Value::Array(
        pairs
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    )
}

#[rocket::post("/payments/<id>/refund/confirm", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn confirm(
    state: &State<AppState>,
    limiter: &State<SignInLimiter>,
    client_ip: Option<IpAddr>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<Fields>,
) -> Result<Answer, Status> {
    let f = form.0;
    let (svc, j) = refundable_journey(state, &staff, &origin, id, &f.service).await?;
    if !valid_form_key(&f.form_key) {
        let mut again = f.clone();
        again.form_key = new_form_key();
        let c = form_page(
            state,
            &staff,
            &svc,
            &j,
            &again,
            &[(
                "how_much".into(),
                "Check the refund and continue again".into(),
            )],
        )
        .await?;
        return Ok(Answer::Invalid(render("refunds/form", c)));
    }
    let now = state.clock.now();
    if !staff.second_factor_recent(now) {
        let error = if f.code.trim().is_empty() && f.stepping_up.is_empty() {
            None
        } else {
            match stepup::verify(
                state,
                Some(limiter),
                client_ip,
                &staff,
                &f.code,
                &origin.0,
                "refund",
            )
            .await?
            {
                StepUp::Done => Some(None),
                StepUp::Refused(message) => Some(Some(message)),
            }
        };
        // None: first time here; Some(Some(m)): a wrong code; Some(None): accepted.
        match error {
            Some(None) => {}
            other => {
                let message = other.flatten();
                let seen = f.seen.trim().parse::<i64>().ok();
                let what = seen.map(pounds).unwrap_or_else(|| "this payment".into());
                let mut hidden = hidden_pairs(&svc.slug, &f, seen);
                hidden.push(("stepping_up", "1".into()));
                let c = stepup::context(
                    state,
                    &staff,
                    &format!("{}/confirm", form_path(&j.payment_id)),
                    hidden,
                    &format!("ask for a refund of {what}"),
                    "Confirm refund",
                    &page_href(
                        &j.payment_id,
                        &svc.slug,
                        &super::payments::back_query(Some(&f.back)),
                        &[],
                    ),
                    message,
                );
                let page = render("refunds/step_up", c);
                return Ok(if message.is_some() {
                    Answer::Invalid(page)
                } else {
                    Answer::Page(page)
                });
            }
        }
    }
    let ask = ask_of(&svc, &j, &f, true);
    match refunds::request(&state.db, now, &who(&staff, origin.0.ip.clone()), &ask)
        .await
        .map_err(internal)?
    {
        Asked::Made { id, .. } => {
            let back = super::payments::back_query(Some(&f.back));
            Ok(Answer::Redirect(Redirect::to(page_href(
                &j.payment_id,
                &svc.slug,
                &back,
                &[("notice", &format!("refund-{id}"))],
            ))))
        }
        Asked::Refused(problems) => {
            // A full refund was confirmed for the amount the check page showed; if that is
            // no longer available, the choice itself needs making again.
            let problems: Vec<(String, String)> = owned(problems)
                .into_iter()
                .map(|(field, message)| {
                    if f.how_much == "full" && field == "amount" {
                        (
                            "how_much".to_string(),
                            "What can still be refunded has changed since you checked. Choose how much to refund again".to_string(),
                        )
                    } else {
                        (field, message)
                    }
                })
                .collect();
            let c = form_page(state, &staff, &svc, &j, &f, &problems).await?;
            Ok(Answer::Invalid(render("refunds/form", c)))
        }
    }
}

/// What the journey page says after a refund was asked for (`notice=refund-<id>`), from
/// the request as it is now; None for any other notice.
pub(super) async fn journey_notice(
    state: &AppState,
    j: &journey_store::JourneyRow,
    notice: Option<&str>,
) -> Result<Option<String>, Status> {
    let Some(id) = notice
        .and_then(|n| n.strip_prefix("refund-"))
        .and_then(|n| n.parse::<i64>().ok())
    else {
        return Ok(None);
    };
    let Some(row) = refund_store::by_id(&state.db, id)
        .await
        .map_err(internal)?
        .filter(|r| r.journey_id == j.id)
    else {
        return Ok(None);
    };
    let amount = pounds(row.amount);
    Ok(Some(match row.state.as_str() {
        "awaiting_approval" => format!(
            "Refund of {amount} requested; it needs approval by someone with the finance role"
        ),
        "approved" | "submitting" | "submitted" => {
            format!("Refund of {amount} is being sent to the platform")
        }
        "succeeded" => format!("Refund of {amount} has been made"),
        "failed" => format!("Refund of {amount} failed: see Refund requests below"),
        "rejected" => format!("Refund of {amount} was rejected"),
        _ => format!("Refund of {amount} requested"),
    }))
}

/// The journey page's refund part: whether this person may ask for a refund now (and
/// where), and the journey's refund requests.
pub(super) async fn journey_section(
    state: &AppState,
    staff: &CurrentSession,
    svc: &ServiceAccount,
    j: &journey_store::JourneyRow,
    back: &str,
) -> Result<Value, Status> {
    let zone = state.config.time_zone;
    let may_request = staff.grants.can(Permission::RefundsRequest, svc.id);
    let may_approve = staff.grants.can(Permission::RefundsApprove, svc.id);
    let can_request = if may_request && rules::refundable(j.refund_status.as_deref()) {
        let (status, available) = refunds::available_now(&state.db, j.id)
            .await
            .map_err(internal)?;
        rules::refundable(status.as_deref()) && available > 0
    } else {
        false
    };
    let href = {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("service", &svc.slug);
        if !back.is_empty() {
            q.append_pair("back", back);
        }
        format!("{}?{}", form_path(&j.payment_id), q.finish())
    };
    let rows = refund_store::for_journey(&state.db, j.id)
        .await
        .map_err(internal)?;
    let mut names = Names::default();
    let mut requests = Vec::new();
    for r in &rows {
        let (text, colour) = state_tag(&r.state);
        let decided_by = match r.decided_by {
            Some(id) => Some(names.of(state, id).await?),
            None => None,
        };
        requests.push(json!({
            "requested": local_time(zone, r.requested_at),
            "amount": pounds(r.amount),
            "state_text": text,
            "state_colour": colour,
            "reason": reason_label(&r.reason),
            "comment": r.comment,
            "case_reference": r.case_reference,
            "asked_by": names.of(state, r.requested_by).await?,
            "decided_by": decided_by,
            "decided": r.decided_at.map(|t| local_time(zone, t)),
            "decision_comment": r.decision_comment,
            "failure": r.failure,
            "review_href": (may_approve && r.state == "awaiting_approval").then(|| format!("/refunds/{}", r.id)),
        }));
    }
    Ok(json!({
        "can_request": can_request,
        "href": href,
        "requests": requests,
    }))
}

// ---- approving ---------------------------------------------------------------------------

/// The services in which this person may approve refunds.
async fn approvable(
    state: &AppState,
    session: &CurrentSession,
) -> Result<Vec<ServiceAccount>, Status> {
    let all = services::all(&state.db).await.map_err(internal)?;
    Ok(
        match session.grants.services_with(Permission::RefundsApprove) {
            None => all,
            Some(ids) => all.into_iter().filter(|s| ids.contains(&s.id)).collect(),
        },
    )
}

/// Payment references and ids of journeys, looked up once each.
#[derive(Default)]
struct Journeys(HashMap<i64, Option<journey_store::JourneyRow>>);

impl Journeys {
    async fn of(
        &mut self,
        state: &AppState,
        id: i64,
    ) -> Result<Option<journey_store::JourneyRow>, Status> {
        if let Some(j) = self.0.get(&id) {
            return Ok(j.clone());
        }
        let j = journey_store::journey_by_id(&state.db, id)
            .await
            .map_err(internal)?;
        self.0.insert(id, j.clone());
        Ok(j)
    }
}

#[rocket::get("/refunds?<notice>")]
async fn queue(
    state: &State<AppState>,
    staff: SignedIn,
    notice: Option<&str>,
) -> Result<Answer, Status> {
    let zone = state.config.time_zone;
    let now = state.clock.now();
    let mine = approvable(state, &staff).await?;
    let ids: Vec<i64> = mine.iter().map(|s| s.id).collect();
    let by_id: HashMap<i64, &ServiceAccount> = mine.iter().map(|s| (s.id, s)).collect();
    let (waiting, failed) = tokio::try_join!(
        refund_store::in_states(&state.db, &ids, &["awaiting_approval"], 200),
        refund_store::latest_in_state(&state.db, &ids, "failed", 20),
    )
    .map_err(internal)?;
    let mut names = Names::default();
    let mut journeys = Journeys::default();
    let mut rows = Vec::new();
    for r in &waiting {
        let svc = by_id.get(&r.service_id);
        let j = journeys.of(state, r.journey_id).await?;
        rows.push(json!({
            "age": age(now, r.requested_at),
            "requested": local_time(zone, r.requested_at),
            "amount": pounds(r.amount),
            "reference": j.as_ref().map(|j| j.reference.clone()).unwrap_or_else(|| r.payment_id.clone()),
            "payment_href": page_href(&r.payment_id, svc.map(|s| s.slug.as_str()).unwrap_or(""), "", &[]),
            "service": svc.map(|s| s.name.clone()).unwrap_or_default(),
            "requester": names.of(state, r.requested_by).await?,
            "reason": reason_label(&r.reason),
            "case_reference": r.case_reference,
            "review_href": format!("/refunds/{}", r.id),
        }));
    }
    // Failed refunds, most recent first.
    let mut attention = Vec::new();
    for r in &failed {
        let svc = by_id.get(&r.service_id);
        let j = journeys.of(state, r.journey_id).await?;
        attention.push(json!({
            "when": local_time(zone, r.finished_at.unwrap_or(r.requested_at)),
            "amount": pounds(r.amount),
            "reference": j.as_ref().map(|j| j.reference.clone()).unwrap_or_else(|| r.payment_id.clone()),
            "payment_href": page_href(&r.payment_id, svc.map(|s| s.slug.as_str()).unwrap_or(""), "", &[]),
            "service": svc.map(|s| s.name.clone()).unwrap_or_default(),
            "requester": names.of(state, r.requested_by).await?,
            "failure": r.failure.clone().unwrap_or_else(|| "No reason given".into()),
        }));
    }
    let notice_text = match notice.and_then(|n| n.split_once('-')) {
        Some((kind @ ("approved" | "rejected"), id)) => match id.parse::<i64>() {
            Ok(id) => refund_store::by_id(&state.db, id)
                .await
                .map_err(internal)?
                .filter(|r| ids.contains(&r.service_id))
                .map(|r| {
                    if kind == "approved" {
                        format!(
                            "Refund of {} approved. It is being sent to the platform",
                            pounds(r.amount)
                        )
                    } else {
                        format!("Refund of {} rejected", pounds(r.amount))
                    }
                }),
            Err(_) => None,
        },
        _ => None,
    };
    let mut c = pages::signed_in(state, &staff, "/refunds");
    c.insert("rows".into(), Value::Array(rows));
    c.insert("attention".into(), Value::Array(attention));
    c.insert("notice".into(), json!(notice_text.unwrap_or_default()));
    c.insert("zone".into(), json!(zone.name()));
    Ok(Answer::Page(render("refunds/queue", c)))
}

/// A request this person may decide on (in a service where they may approve), or 404.
async fn decidable(
    state: &AppState,
    staff: &SignedIn,
    id: &str,
) -> Result<(RequestRow, ServiceAccount), Status> {
    // Anything but a request number finds nothing.
    let id = id.parse::<i64>().map_err(|_| Status::NotFound)?;
    let row = refund_store::by_id(&state.db, id)
        .await
        .map_err(internal)?
        .ok_or(Status::NotFound)?;
    let svc = approvable(state, staff)
        .await?
        .into_iter()
        .find(|s| s.id == row.service_id)
        .ok_or(Status::NotFound)?;
    Ok((row, svc))
}

/// Problems with a decision's form, for the review page.
#[derive(Default)]
struct ReviewProblems {
    summary: Vec<Value>,
    approval_comment: Option<String>,
    rejection_comment: Option<String>,
}

async fn review_page(
    state: &AppState,
    staff: &SignedIn,
    row: &RequestRow,
    svc: &ServiceAccount,
    problems: ReviewProblems,
    kept: &Decision,
) -> Result<Map<String, Value>, Status> {
    let zone = state.config.time_zone;
    let now = state.clock.now();
    let j = journey_store::journey_by_id(&state.db, row.journey_id)
        .await
        .map_err(internal)?
        .ok_or(Status::NotFound)?;
    let money = money_of(state, svc, &j).await?;
    let mut names = Names::default();
    let (text, colour) = state_tag(&row.state);
    let decided_by = match row.decided_by {
        Some(id) => Some(names.of(state, id).await?),
        None => None,
    };
    let mut c = pages::signed_in(state, staff, "/refunds");
    c.insert(
        "request".into(),
        json!({
            "id": row.id,
            "amount": pounds(row.amount),
            "amount_pence": row.amount,
            "state": row.state,
            "state_text": text,
            "state_colour": colour,
            "awaiting": row.state == "awaiting_approval",
            "reason": reason_label(&row.reason),
            "comment": row.comment,
            "case_reference": row.case_reference,
            "requester": names.of(state, row.requested_by).await?,
            "own": row.requested_by == staff.staff.id,
            "requested": local_time(zone, row.requested_at),
            "age": age(now, row.requested_at),
            "expires": local_time(zone, row.expires_at),
            "decided_by": decided_by,
            "decided": row.decided_at.map(|t| local_time(zone, t)),
            "decision_comment": row.decision_comment,
            "failure": row.failure,
        }),
    );
    c.insert(
        "journey".into(),
        json!({
            "reference": j.reference,
            "description": j.description,
            "service": svc.name,
            "amount": pounds(j.amount),
            "status": j.status,
            "created": local_time(zone, j.created_at),
            "href": page_href(&j.payment_id, &svc.slug, "", &[]),
            "payment_id": j.payment_id,
            "refunded": pounds(money.refunded),
            "pending": pounds(money.pending),
            "available": pounds(money.available),
        }),
    );
    c.insert("errors".into(), Value::Array(problems.summary));
    c.insert(
        "approval_comment_error".into(),
        json!(problems.approval_comment.unwrap_or_default()),
    );
    c.insert(
        "rejection_comment_error".into(),
        json!(problems.rejection_comment.unwrap_or_default()),
    );
    let cut = |s: &str| s.chars().take(ECHO_LIMIT).collect::<String>();
    c.insert(
        "kept".into(),
        json!({
            "approval_comment": cut(&kept.approval_comment),
            "rejection_comment": cut(&kept.rejection_comment),
        }),
    );
    c.insert("zone".into(), json!(zone.name()));
    Ok(c)
}

#[rocket::get("/refunds/<id>")]
async fn review(state: &State<AppState>, staff: SignedIn, id: &str) -> Result<Answer, Status> {
    let (row, svc) = decidable(state, &staff, id).await?;
    let c = review_page(
        state,
        &staff,
        &row,
        &svc,
        ReviewProblems::default(),
        &<Decision as Default>::default(),
    )
    .await?;
    Ok(Answer::Page(render("refunds/review", c)))
}

/// An Approve or Reject form.
#[derive(FromForm, Default, Debug, Clone)]
pub struct Decision {
    /// The amount (pence) the approver saw.
    #[field(default = String::new())]
    amount: String,
    #[field(default = String::new())]
    approval_comment: String,
    #[field(default = String::new())]
    rejection_comment: String,
    #[field(default = String::new())]
    code: String,
    #[field(default = String::new())]
    stepping_up: String,
}

/// A decision comment's problem, if any (the refund rules decide).
fn comment_problem(comment: &str, required: bool) -> Option<&'static str> {
    rules::decision_comment_problem(comment, required)
}

/// The step-up for a decision: None when the second factor is fresh (or the code just
/// given is right), otherwise the "Confirm it's you" page to show.
#[allow(clippy::too_many_arguments)]
async fn decision_step_up(
    state: &AppState,
    limiter: &SignInLimiter,
    client_ip: Option<IpAddr>,
    staff: &SignedIn,
    origin: &RequestOrigin,
    row: &RequestRow,
    d: &Decision,
    approving: bool,
) -> Result<Option<Answer>, Status> {
    if staff.second_factor_recent(state.clock.now()) {
        return Ok(None);
    }
    let what = if approving {
        "refund approval"
    } else {
        "refund rejection"
    };
    let message = if d.code.trim().is_empty() && d.stepping_up.is_empty() {
        None
    } else {
        match stepup::verify(
            state,
            Some(limiter),
            client_ip,
            staff,
            &d.code,
            &origin.0,
            what,
        )
        .await?
        {
            StepUp::Done => return Ok(None),
            StepUp::Refused(m) => Some(m),
        }
    };
    let (action, hidden, purpose, button) = if approving {
        (
            format!("/refunds/{}/approve", row.id),
            vec![
                ("amount", d.amount.clone()),
                ("approval_comment", d.approval_comment.clone()),
            ],
            format!("approve the refund of {}", pounds(row.amount)),
            "Approve refund",
        )
    } else {
        (
            format!("/refunds/{}/reject", row.id),
            vec![("rejection_comment", d.rejection_comment.clone())],
            format!("reject the refund of {}", pounds(row.amount)),
            "Reject refund",
        )
    };
    let mut hidden = hidden;
    hidden.push(("stepping_up", "1".into()));
    let c = stepup::context(
        state,
        staff,
        &action,
        hidden,
        &purpose,
        button,
        &format!("/refunds/{}", row.id),
        message,
    );
    let page = render("refunds/step_up", c);
    Ok(Some(if message.is_some() {
        Answer::Invalid(page)
    } else {
        Answer::Page(page)
    }))
}

#[rocket::post("/refunds/<id>/approve", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn approve(
    state: &State<AppState>,
    limiter: &State<SignInLimiter>,
    client_ip: Option<IpAddr>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<Decision>,
) -> Result<Answer, Status> {
    let d = form.0;
    let (row, svc) = decidable(state, &staff, id).await?;
    let comment = d.approval_comment.trim().to_string();
    let amount_seen = d.amount.trim().parse::<i64>().ok().filter(|a| *a > 0);
    let problems = if let Some(message) = comment_problem(&comment, false) {
        Some(ReviewProblems {
            summary: vec![problem("approval_comment", message)],
            approval_comment: Some(message.into()),
            ..Default::default()
        })
    } else if amount_seen.is_none() {
        Some(ReviewProblems {
            summary: vec![problem("", UNREADABLE_AMOUNT)],
            ..Default::default()
        })
    } else {
        None
    };
    let (Some(amount_seen), None) = (amount_seen, &problems) else {
        let problems = problems.unwrap_or_default();
        let c = review_page(state, &staff, &row, &svc, problems, &d).await?;
        return Ok(Answer::Invalid(render("refunds/review", c)));
    };
    if let Some(page) =
        decision_step_up(state, limiter, client_ip, &staff, &origin, &row, &d, true).await?
    {
        return Ok(page);
    }
    let outcome = refunds::approve(
        &state.db,
        state.clock.now(),
        &who(&staff, origin.0.ip.clone()),
        row.id,
        amount_seen,
        (!comment.is_empty()).then_some(comment.as_str()),
    )
    .await
    .map_err(internal)?;
    match outcome {
        Ok(()) => Ok(Answer::Redirect(Redirect::to(format!(
            "/refunds?notice=approved-{}",
            row.id
        )))),
        Err(refusal) => refused(state, &staff, row.id, &svc, refusal.message(), &d).await,
    }
}

/// An approval whose amount (a hidden field) was not sent as the review page made it.
const UNREADABLE_AMOUNT: &str =
    "The amount you approved could not be read. Check the refund and decide again";

/// A decision the rules refused: the review page again, as the request is now, with why.
async fn refused(
    state: &AppState,
    staff: &SignedIn,
    id: i64,
    svc: &ServiceAccount,
    message: &str,
    d: &Decision,
) -> Result<Answer, Status> {
    let row = refund_store::by_id(&state.db, id)
        .await
        .map_err(internal)?
        .ok_or(Status::NotFound)?;
    let c = review_page(
        state,
        staff,
        &row,
        svc,
        ReviewProblems {
            summary: vec![problem("", message)],
            ..Default::default()
        },
        d,
    )
    .await?;
    Ok(Answer::Status((
        Status::Conflict,
        render("refunds/review", c),
    )))
}

#[rocket::post("/refunds/<id>/reject", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn reject(
    state: &State<AppState>,
    limiter: &State<SignInLimiter>,
    client_ip: Option<IpAddr>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<Decision>,
) -> Result<Answer, Status> {
    let d = form.0;
    let (row, svc) = decidable(state, &staff, id).await?;
    let comment = d.rejection_comment.trim().to_string();
    if let Some(message) = comment_problem(&comment, true) {
        let c = review_page(
            state,
            &staff,
            &row,
            &svc,
            ReviewProblems {
                summary: vec![problem("rejection_comment", message)],
                rejection_comment: Some(message.into()),
                ..Default::default()
            },
            &d,
        )
        .await?;
        return Ok(Answer::Invalid(render("refunds/review", c)));
    }
    if let Some(page) =
        decision_step_up(state, limiter, client_ip, &staff, &origin, &row, &d, false).await?
    {
        return Ok(page);
    }
    let outcome = refunds::reject(
        &state.db,
        state.clock.now(),
        &who(&staff, origin.0.ip.clone()),
        row.id,
        &comment,
    )
    .await
    .map_err(internal)?;
    match outcome {
        Ok(()) => Ok(Answer::Redirect(Redirect::to(format!(
            "/refunds?notice=rejected-{}",
            row.id
        )))),
        Err(refusal) => refused(state, &staff, row.id, &svc, refusal.message(), &d).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_keys_are_uuids_or_refused() {
        assert!(valid_form_key(&new_form_key()));
        for bad in ["", "a b", "<script>", &"a".repeat(65), "ключ"] {
            assert!(!valid_form_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn change_links_carry_the_values_back() {
        let f = Fields {
            how_much: "partial".into(),
            amount: "12.50".into(),
            reason: "other".into(),
            comment: "a & b".into(),
            form_key: "k-1".into(),
            ..Default::default()
        };
        let href = f.change_href("pay1", "parking", "amount");
        assert!(href.starts_with("/payments/pay1/refund?service=parking&"));
        let query = href
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default()
            .trim_end_matches("#amount");
        let back = Fields::from_query(query);
        assert_eq!(back.amount, "12.50");
        assert_eq!(back.comment, "a & b");
        assert_eq!(back.form_key, "k-1");
        assert_eq!(back.service, "parking");
    }

    #[test]
    fn ages_read_as_words() {
        let now = time::macros::datetime!(2026-11-20 12:00 UTC);
        let at = |d: time::Duration| store::to_micros(now - d);
        assert_eq!(
            age(now, at(time::Duration::seconds(5))),
            "Less than a minute"
        );
        assert_eq!(age(now, at(time::Duration::minutes(1))), "1 minute");
        assert_eq!(age(now, at(time::Duration::hours(3))), "3 hours");
        assert_eq!(age(now, at(time::Duration::days(3))), "3 days");
    }
}
