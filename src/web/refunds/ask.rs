//! Asking for a refund from a payment's page: the form (`/payments/<id>/refund`), "Check your
//! answers" (`/payments/<id>/refund/check`), and the confirmation, which asks for the second
//! factor again when the last one is more than 5 minutes old. Post/redirect/get throughout:
//! the form's answers are kept as a draft (`crate::drafts`) under the form's one-time key and
//! the check page is read by GET, so Back and refresh never send a form again.

use std::collections::BTreeSet;

use rocket::form::FromForm;
use rocket::http::uri::Origin;
use rocket::response::Redirect;
use rocket::State;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::shared::*;
use crate::identity::permissions::Permission;
use crate::refunds::rules::{self, pounds, Reason};
use crate::refunds::{self, Ask, Asked, HowMuch};
use crate::services::ServiceAccount;
use crate::store::{journeys as journey_store, refunds as refund_store};
use crate::web::auth::RequestOrigin;
use crate::web::errors::PageError;
use crate::web::journey_lookup::{back_query, find_journey, page_href};
use crate::web::pages::{self, problem, render, Answer};
use crate::web::session::{CsrfForm, SignedIn};
use crate::web::stepup;
use crate::{drafts, AppState};

/// The kind of draft a refund's answers are.
const DRAFT: &str = "refund";

/// The refund form's fields, as posted (and as kept between the form and the check page).
#[derive(FromForm, Default, Debug, Clone, Serialize, Deserialize)]
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
    #[serde(skip)]
    code: String,
    /// Set by the "Confirm it's you" page, so an empty code there is a problem.
    #[field(default = String::new())]
    #[serde(skip)]
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

    /// The address of one of this refund's pages (`suffix`: "" for the form, "/check"):
    /// the service, where Back goes, and the form's key, which finds the kept answers.
    fn href(&self, payment_id: &str, slug: &str, suffix: &str) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("service", slug);
        for (k, v) in [("back", &self.back), ("form_key", &self.form_key)] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        format!("{}{suffix}?{}", form_path(payment_id), q.finish())
    }

    /// These answers as kept: without the step-up's fields.
    fn kept(&self) -> Fields {
        Fields {
            code: String::new(),
            stepping_up: String::new(),
            seen: String::new(),
            ..self.clone()
        }
    }
}

/// The answers kept under this form's key, if this person gave them for this payment.
async fn kept_answers(
    state: &AppState,
    staff: &SignedIn,
    j: &journey_store::JourneyRow,
    form_key: &str,
) -> Result<Option<Fields>, PageError> {
    if !valid_form_key(form_key) {
        return Ok(None);
    }
    let kept: Option<(String, Fields)> = drafts::read(
        &state.db,
        state.clock.now(),
        staff.staff.id,
        DRAFT,
        form_key,
    )
    .await?;
    Ok(kept.and_then(|(payment_id, f)| (payment_id == j.payment_id).then_some(f)))
}

/// A form key as paydesk makes them (a UUID); anything else is not one.
pub(super) fn valid_form_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub(super) fn new_form_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The payment a refund page is about, in a service where the person may ask for refunds.
pub(super) async fn refundable_journey(
    state: &AppState,
    staff: &SignedIn,
    origin: &RequestOrigin,
    id: &str,
    service: &str,
) -> Result<(ServiceAccount, journey_store::JourneyRow), PageError> {
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
        .await
        .into());
    }
    Ok((svc, j))
}

/// The refund form's page: the payment, its money, and the form with `fields` and
/// `problems`.
pub(super) async fn form_page(
    state: &AppState,
    staff: &SignedIn,
    svc: &ServiceAccount,
    j: &journey_store::JourneyRow,
    fields: &Fields,
    problems: &[(String, String)],
) -> Result<Map<String, Value>, PageError> {
    let money = money_of(state, svc, j).await?;
    let settings = refund_store::settings(&state.db, svc.id).await?;
    let mut c = pages::signed_in(state, staff, "/payments");
    let mut errors = Vec::new();
    let mut field_errors = Map::new();
    for (field, message) in problems {
        if !field_errors.contains_key(field) {
            field_errors.insert(field.clone(), json!(message));
            errors.push(problem(field, message.clone()));
        }
    }
    let back = back_query(Some(&fields.back));
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
    let refundable = rules::refundable(money.status.as_deref()) && money.available > 0;
    c.insert("refundable".into(), json!(refundable));
    // Why not, in the same words as the payment's page (disputed, fully refunded, awaiting
    // approval…).
    c.insert(
        "why_not".into(),
        json!((!refundable).then(|| {
            money.why_none(&j.status).unwrap_or(
                "This payment cannot be refunded: the platform says nothing is available to refund.",
            )
        })),
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
pub(super) async fn form(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    uri: &Origin<'_>,
) -> Result<Answer, PageError> {
    let raw = uri.query().map(|q| q.as_str()).unwrap_or("");
    let mut fields = if raw.len() > 16 * 1024 {
        <Fields as Default>::default()
    } else {
        Fields::from_query(raw)
    };
    let (svc, j) = refundable_journey(state, &staff, &origin, id, &fields.service).await?;
    // "Change your answers" comes back here with the form's key: the answers kept for it.
    if let Some(kept) = kept_answers(state, &staff, &j, &fields.form_key).await? {
        fields = kept;
    }
    // A one-time key, made when the form is first shown and carried through to the
    // confirmation: submitting the same form twice makes one request.
    if !valid_form_key(&fields.form_key) {
        fields.form_key = new_form_key();
    }
    let c = form_page(state, &staff, &svc, &j, &fields, &[]).await?;
    Ok(Answer::Page(render("refunds/form", c)))
}

/// The ask a form makes; for a full refund, bound to the amount the check page showed.
pub(super) fn ask_of(
    svc: &ServiceAccount,
    j: &journey_store::JourneyRow,
    f: &Fields,
    bind: bool,
) -> Ask {
    let seen = f.seen.trim().parse::<i64>().ok().filter(|p| *p > 0);
    let how_much = match (f.how_much.as_str(), seen, bind) {
        ("full", Some(p), true) => Ok(HowMuch::Partial(p)),
        _ => HowMuch::from_form(&f.how_much, &f.amount),
    };
    Ask {
        service_id: svc.id,
        journey_id: j.id,
        payment_id: j.payment_id.clone(),
        how_much,
        reason: f.reason.clone(),
        comment: f.comment.clone(),
        case_reference: f.case_reference.clone(),
        form_key: f.form_key.clone(),
    }
}

pub(super) fn owned(problems: Vec<refunds::Problem>) -> Vec<(String, String)> {
    problems
        .into_iter()
        .map(|(f, m)| (f.to_string(), m))
        .collect()
}

#[rocket::post("/payments/<id>/refund", data = "<form>")]
pub(super) async fn answers(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<Fields>,
) -> Result<Answer, PageError> {
    let mut f = form.0.kept();
    let (svc, j) = refundable_journey(state, &staff, &origin, id, &f.service).await?;
    if !valid_form_key(&f.form_key) {
        f.form_key = new_form_key();
    }
    f.service = svc.slug.clone();
    f.back = back_query(Some(&f.back));
    let settings = refund_store::settings(&state.db, svc.id).await?;
    let (status, available) = refunds::available_now(&state.db, j.id).await?;
    if let Err(problems) = refunds::check(
        &ask_of(&svc, &j, &f, false),
        &settings,
        status.as_deref(),
        available,
    ) {
        let c = form_page(state, &staff, &svc, &j, &f, &owned(problems)).await?;
        return Ok(Answer::Invalid(render("refunds/form", c)));
    }
    let now = state.clock.now();
    let kept = (j.payment_id.clone(), f.clone());
    drafts::keep(&state.db, now, staff.staff.id, DRAFT, &f.form_key, &kept).await?;
    Ok(Answer::Redirect(Redirect::to(f.href(
        &j.payment_id,
        &svc.slug,
        "/check",
    ))))
}

/// The form again, with what is wrong, when the kept answers no longer make a refund (or
/// were not kept: an hour passed, or another browser).
async fn ask_again(
    state: &AppState,
    staff: &SignedIn,
    svc: &ServiceAccount,
    j: &journey_store::JourneyRow,
    f: &Fields,
    problems: &[(String, String)],
) -> Result<Answer, PageError> {
    let c = form_page(state, staff, svc, j, f, problems).await?;
    Ok(Answer::Invalid(render("refunds/form", c)))
}

/// Answers that were not kept: the message the form shows.
fn not_kept() -> Vec<(String, String)> {
    vec![(
        "how_much".into(),
        "Your answers were not kept (more than an hour passed, or they were given in another browser). Enter them again".into(),
    )]
}

/// The request this form's key already made, shown instead of asking again.
async fn already_asked(
    state: &AppState,
    staff: &SignedIn,
    svc: &ServiceAccount,
    j: &journey_store::JourneyRow,
    f: &Fields,
) -> Result<Option<Answer>, PageError> {
    let Some(made) = refund_store::by_form_key_read(&state.db, svc.id, &f.form_key).await? else {
        return Ok(None);
    };
    let (state_name, colour) = state_tag(&made.state);
    let mut c = pages::signed_in(state, staff, "/payments");
    c.insert(
        "journey".into(),
        json!({"reference": j.reference, "service": svc.name}),
    );
    c.insert(
        "asked".into(),
        json!({"amount": pounds(made.amount), "state": state_name, "colour": colour}),
    );
    let back = back_query(Some(&f.back));
    let href = page_href(&j.payment_id, &svc.slug, &back, &[]);
    c.insert("back_href".into(), json!(href));
    c.insert("cancel_href".into(), json!(href));
    Ok(Some(Answer::Page(render("refunds/check", c))))
}

#[rocket::get("/payments/<id>/refund/check?<service>&<form_key>&<back>")]
#[allow(clippy::too_many_arguments)]
pub(super) async fn check(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    service: Option<&str>,
    form_key: Option<&str>,
    back: Option<&str>,
) -> Result<Answer, PageError> {
    let service = service.unwrap_or_default();
    let (svc, j) = refundable_journey(state, &staff, &origin, id, service).await?;
    let asked = Fields {
        service: svc.slug.clone(),
        form_key: form_key.unwrap_or_default().chars().take(64).collect(),
        back: back_query(back),
        ..Default::default()
    };
    if valid_form_key(&asked.form_key) {
        if let Some(page) = already_asked(state, &staff, &svc, &j, &asked).await? {
            return Ok(page);
        }
    }
    let Some(mut f) = kept_answers(state, &staff, &j, &asked.form_key).await? else {
        let fresh = Fields {
            form_key: new_form_key(),
            ..asked
        };
        return ask_again(state, &staff, &svc, &j, &fresh, &not_kept()).await;
    };
    f.back = back_query(Some(&f.back));
    let settings = refund_store::settings(&state.db, svc.id).await?;
    let (status, available) = refunds::available_now(&state.db, j.id).await?;
    let checked = match refunds::check(
        &ask_of(&svc, &j, &f, false),
        &settings,
        status.as_deref(),
        available,
    ) {
        Ok(c) => c,
        // What is available changed since the answers were given.
        Err(problems) => return ask_again(state, &staff, &svc, &j, &f, &owned(problems)).await,
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
    let change = f.href(&j.payment_id, &svc.slug, "");
    let rows = json!([
        {"key": "Payment", "value": format!("{} ({}, {})", j.reference, svc.name, pounds(j.amount))},
        {"key": "Amount to refund", "value": amount_text, "href": format!("{change}#how_much")},
        {"key": "Reason", "value": checked.reason.label(), "href": format!("{change}#reason")},
        {"key": "Comment", "value": checked.comment.clone().unwrap_or_else(|| "None".into()), "href": format!("{change}#comment")},
        {"key": "Case reference", "value": checked.case_reference.clone().unwrap_or_else(|| "None".into()), "href": format!("{change}#case_reference")},
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
        hidden_fields(confirm_pairs(&svc.slug, &f, Some(checked.amount))),
    );
    c.insert("change_href".into(), json!(change));
    c.insert("amount".into(), json!(pounds(checked.amount)));
    c.insert("back_href".into(), json!(change));
    c.insert(
        "cancel_href".into(),
        json!(page_href(&j.payment_id, &svc.slug, &f.back, &[])),
    );
    Ok(Answer::Page(render("refunds/check", c)))
}

/// What the confirm form (and the "Confirm it's you" form after it) carries: the answers
/// themselves stay kept on the server under the form's key.
fn confirm_pairs(slug: &str, f: &Fields, seen: Option<i64>) -> Vec<(&'static str, String)> {
    let cut = |s: &str| s.chars().take(ECHO_LIMIT).collect::<String>();
    vec![
        ("service", slug.to_string()),
        ("back", cut(&f.back)),
        ("form_key", cut(&f.form_key)),
        ("seen", seen.map(|p| p.to_string()).unwrap_or_default()),
    ]
}

pub(super) fn hidden_fields(pairs: Vec<(&str, String)>) -> Value {
    Value::Array(
        pairs
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    )
}

/// The payment's page, saying the refund was asked for.
fn to_payment(svc: &ServiceAccount, j: &journey_store::JourneyRow, back: &str, id: i64) -> Answer {
    let back = back_query(Some(back));
    Answer::Redirect(Redirect::to(page_href(
        &j.payment_id,
        &svc.slug,
        &back,
        &[("notice", &format!("refund-{id}"))],
    )))
}

#[rocket::post("/payments/<id>/refund/confirm", data = "<form>")]
pub(super) async fn confirm(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<Fields>,
) -> Result<Answer, PageError> {
    let sent = form.0;
    let (svc, j) = refundable_journey(state, &staff, &origin, id, &sent.service).await?;
    // A double click, or Back and Confirm again: the request this form made, as the first
    // confirmation answered.
    if valid_form_key(&sent.form_key) {
        if let Some(made) =
            refund_store::by_form_key_read(&state.db, svc.id, &sent.form_key).await?
        {
            return Ok(to_payment(&svc, &j, &sent.back, made.id));
        }
    }
    // The answers checked on the check page, kept under the form's key.
    let Some(kept) = kept_answers(state, &staff, &j, &sent.form_key).await? else {
        let fresh = Fields {
            form_key: new_form_key(),
            back: sent.back.clone(),
            ..Default::default()
        };
        return ask_again(state, &staff, &svc, &j, &fresh, &not_kept()).await;
    };
    let f = Fields {
        seen: sent.seen.clone(),
        code: sent.code.clone(),
        stepping_up: sent.stepping_up.clone(),
        ..kept
    };
    let now = state.clock.now();
    let seen = f.seen.trim().parse::<i64>().ok();
    let what = seen.map(pounds).unwrap_or_else(|| "this payment".into());
    let mut hidden = confirm_pairs(&svc.slug, &f, seen);
    hidden.push(("stepping_up", "1".into()));
    let gate = stepup::Gate {
        code: &f.code,
        stepping_up: &f.stepping_up,
        what: "refund",
        action: format!("{}/confirm", form_path(&j.payment_id)),
        hidden,
        purpose: format!("ask for a refund of {what}"),
        button: "Confirm refund",
        back: f.href(&j.payment_id, &svc.slug, "/check"),
    };
    if let Some(page) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(page);
    }
    let ask = ask_of(&svc, &j, &f, true);
    match refunds::request(&state.db, now, &who(&staff, origin.0.ip.clone()), &ask).await? {
        Asked::Made { id, .. } => {
            drafts::forget(&state.db, staff.staff.id, &f.form_key).await?;
            Ok(to_payment(&svc, &j, &f.back, id))
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
            ask_again(state, &staff, &svc, &j, &f, &problems).await
        }
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
    fn a_refunds_pages_carry_only_the_key_to_its_answers() {
        let f = Fields {
            how_much: "partial".into(),
            amount: "12.50".into(),
            reason: "other".into(),
            comment: "a & b".into(),
            form_key: "k-1".into(),
            back: "q=x".into(),
            ..Default::default()
        };
        let href = f.href("pay1", "parking", "/check");
        assert_eq!(
            href,
            "/payments/pay1/refund/check?service=parking&back=q%3Dx&form_key=k-1"
        );
        // The answers themselves never travel in an address.
        assert!(!href.contains("12.50") && !href.contains("a+%26+b"));
        let kept = Fields {
            code: "123456".into(),
            stepping_up: "1".into(),
            seen: "1250".into(),
            ..f
        }
        .kept();
        assert!(kept.code.is_empty() && kept.stepping_up.is_empty() && kept.seen.is_empty());
        assert_eq!(kept.comment, "a & b");
    }
}
