//! Asking for a refund from a payment's page: the form (`/payments/<id>/refund`), "Check your
//! answers", and the confirmation, which asks for the second factor again when the last one is
//! more than 5 minutes old.

use std::collections::BTreeSet;
use std::net::IpAddr;

use rocket::form::FromForm;
use rocket::http::uri::Origin;
use rocket::response::Redirect;
use rocket::State;
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
use crate::web::ratelimit::SignInLimiter;
use crate::web::session::{CsrfForm, SignedIn};
use crate::web::stepup;
use crate::AppState;

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
pub(super) async fn check(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<Fields>,
) -> Result<Answer, PageError> {
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
    let settings = refund_store::settings(&state.db, svc.id).await?;
    let (status, available) = refunds::available_now(&state.db, j.id).await?;
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
    let back = back_query(Some(&f.back));
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
pub(super) fn hidden_pairs(
    slug: &str,
    f: &Fields,
    seen: Option<i64>,
) -> Vec<(&'static str, String)> {
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

pub(super) fn hidden_fields(pairs: Vec<(&str, String)>) -> Value {
    Value::Array(
        pairs
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    )
}

#[rocket::post("/payments/<id>/refund/confirm", data = "<form>")]
#[allow(clippy::too_many_arguments)]
pub(super) async fn confirm(
    state: &State<AppState>,
    limiter: &State<SignInLimiter>,
    client_ip: Option<IpAddr>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<Fields>,
) -> Result<Answer, PageError> {
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
    let seen = f.seen.trim().parse::<i64>().ok();
    let what = seen.map(pounds).unwrap_or_else(|| "this payment".into());
    let mut hidden = hidden_pairs(&svc.slug, &f, seen);
    hidden.push(("stepping_up", "1".into()));
    let gate = stepup::Gate {
        code: &f.code,
        stepping_up: &f.stepping_up,
        what: "refund",
        action: format!("{}/confirm", form_path(&j.payment_id)),
        hidden,
        purpose: format!("ask for a refund of {what}"),
        button: "Confirm refund",
        back: page_href(&j.payment_id, &svc.slug, &back_query(Some(&f.back)), &[]),
    };
    if let Some(page) = stepup::require(state, limiter, client_ip, &staff, &origin.0, gate).await? {
        return Ok(page);
    }
    let ask = ask_of(&svc, &j, &f, true);
    match refunds::request(&state.db, now, &who(&staff, origin.0.ip.clone()), &ask).await? {
        Asked::Made { id, .. } => {
            let back = back_query(Some(&f.back));
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
}
