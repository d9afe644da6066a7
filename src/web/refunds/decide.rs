//! Approving: the queue of requests awaiting a decision (`/refunds`) and a request's review
//! page with its Approve and Reject forms.

use std::collections::HashMap;

use rocket::form::FromForm;
use rocket::http::Status;
use rocket::response::Redirect;
use rocket::State;
use serde_json::{json, Map, Value};

use super::shared::*;
use crate::dashboard::{self, Span};
use crate::identity::permissions::Permission;
use crate::identity::signin::CurrentSession;
use crate::refunds::rules::{self, pounds};
use crate::refunds::{self, RequestRow};
use crate::services::{self, ServiceAccount};
use crate::store;
use crate::store::{journeys as journey_store, refunds as refund_store};
use crate::timezone::Period;
use crate::web::auth::RequestOrigin;
use crate::web::errors::PageError;
use crate::web::format::local_time;
use crate::web::journey_lookup::page_href;
use crate::web::pages::{self, problem, render, Answer};
use crate::web::session::{CsrfForm, SignedIn};
use crate::web::stepup;
use crate::AppState;

/// The services in which this person may approve refunds.
pub(super) async fn approvable(
    state: &AppState,
    session: &CurrentSession,
) -> Result<Vec<ServiceAccount>, PageError> {
    let all = services::all(&state.db).await?;
    Ok(
        match session.grants.services_with(Permission::RefundsApprove) {
            None => all,
            Some(ids) => all.into_iter().filter(|s| ids.contains(&s.id)).collect(),
        },
    )
}

/// Payment references and ids of journeys, looked up once each.
#[derive(Default)]
pub(super) struct Journeys(HashMap<i64, Option<journey_store::JourneyRow>>);

impl Journeys {
    async fn of(
        &mut self,
        state: &AppState,
        id: i64,
    ) -> Result<Option<journey_store::JourneyRow>, PageError> {
        if let Some(j) = self.0.get(&id) {
            return Ok(j.clone());
        }
        let j = journey_store::journey_by_id(&state.db, id).await?;
        self.0.insert(id, j.clone());
        Ok(j)
    }
}

#[rocket::get("/refunds?<notice>")]
pub(super) async fn queue(
    state: &State<AppState>,
    staff: SignedIn,
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let zone = state.config.time_zone;
    let now = state.clock.now();
    let mine = approvable(state, &staff).await?;
    let ids: Vec<i64> = mine.iter().map(|s| s.id).collect();
    let by_id: HashMap<i64, &ServiceAccount> = mine.iter().map(|s| (s.id, s)).collect();
    // Failed refunds as the dashboard counts them by default: its services, its period.
    let readable: Vec<i64> = dashboard::services_for(&state.db, &staff.grants)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let span = Span::at(Period::DEFAULT, now, &zone);
    let (waiting, (failed, failed_count)) = tokio::try_join!(
        async {
            Ok::<_, PageError>(
                refund_store::in_states(&state.db, &ids, &["awaiting_approval"], 200).await?,
            )
        },
        async {
            Ok::<_, PageError>(
                refunds::failed::in_span(
                    &state.db,
                    &readable,
                    store::to_micros(span.from),
                    store::to_micros(span.to),
                )
                .await?,
            )
        },
    )?;
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
            "batch": r.batch_id,
        }));
    }
    // Failed refunds, most recent first.
    let shown = &failed[..failed.len().min(20)];
    let attention =
        super::failed::rows(state, shown, &super::failed::service_names(state).await?).await?;
    let notice_text = match notice.and_then(|n| n.split_once('-')) {
        Some((kind @ ("approved" | "rejected"), id)) => match id.parse::<i64>() {
            Ok(id) => refund_store::by_id(&state.db, id)
                .await?
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
    c.insert("failed_rows".into(), Value::Array(attention));
    c.insert("failed_heading".into(), json!("attention-heading"));
    c.insert(
        "failed_count_text".into(),
        json!(match failed_count {
            1 => "1 refund has failed".to_string(),
            n => format!("{} refunds have failed", dashboard::thousands(n)),
        }),
    );
    c.insert("notice".into(), json!(notice_text.unwrap_or_default()));
    c.insert("zone".into(), json!(zone.name()));
    c.insert(
        "may_bulk".into(),
        json!(staff
            .grants
            .can_somewhere(crate::identity::permissions::Permission::RefundsBulk)),
    );
    Ok(Answer::Page(render("refunds/queue", c)))
}

/// A request this person may decide on (in a service where they may approve), or 404.
pub(super) async fn decidable(
    state: &AppState,
    staff: &SignedIn,
    id: &str,
) -> Result<(RequestRow, ServiceAccount), PageError> {
    // Anything but a request number finds nothing.
    let id = id.parse::<i64>().map_err(|_| Status::NotFound)?;
    let row = refund_store::by_id(&state.db, id)
        .await?
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
pub(super) struct ReviewProblems {
    summary: Vec<Value>,
    approval_comment: Option<String>,
    rejection_comment: Option<String>,
}

pub(super) async fn review_page(
    state: &AppState,
    staff: &SignedIn,
    row: &RequestRow,
    svc: &ServiceAccount,
    problems: ReviewProblems,
    kept: &Decision,
) -> Result<Map<String, Value>, PageError> {
    let zone = state.config.time_zone;
    let now = state.clock.now();
    let j = journey_store::journey_by_id(&state.db, row.journey_id)
        .await?
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
            "batch": row.batch_id,
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
pub(super) async fn review(
    state: &State<AppState>,
    staff: SignedIn,
    id: &str,
) -> Result<Answer, PageError> {
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
pub(super) fn comment_problem(comment: &str, required: bool) -> Option<&'static str> {
    rules::decision_comment_problem(comment, required)
}

/// The step-up for a decision: None when the second factor is fresh (or the code just
/// given is right), otherwise the "Confirm it's you" page to show.
#[allow(clippy::too_many_arguments)]
pub(super) async fn decision_step_up(
    state: &AppState,
    check: &stepup::Check<'_>,
    staff: &SignedIn,
    origin: &RequestOrigin,
    row: &RequestRow,
    d: &Decision,
    approving: bool,
) -> Result<Option<Answer>, PageError> {
    let (what, action, mut hidden, purpose, button) = if approving {
        (
            "refund approval",
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
            "refund rejection",
            format!("/refunds/{}/reject", row.id),
            vec![("rejection_comment", d.rejection_comment.clone())],
            format!("reject the refund of {}", pounds(row.amount)),
            "Reject refund",
        )
    };
    hidden.push(("stepping_up", "1".into()));
    let gate = stepup::Gate {
        code: &d.code,
        stepping_up: &d.stepping_up,
        what,
        action,
        hidden,
        purpose,
        button,
        back: format!("/refunds/{}", row.id),
    };
    check.require(state, staff, &origin.0, gate).await
}

#[rocket::post("/refunds/<id>/approve", data = "<form>")]
#[allow(clippy::too_many_arguments)]
pub(super) async fn approve(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<Decision>,
) -> Result<Answer, PageError> {
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
    if let Some(page) = decision_step_up(state, &check, &staff, &origin, &row, &d, true).await? {
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
    .await?;
    match outcome {
        Ok(()) => Ok(Answer::Redirect(Redirect::to(format!(
            "/refunds?notice=approved-{}",
            row.id
        )))),
        Err(refusal) => refused(state, &staff, row.id, &svc, refusal.message(), &d).await,
    }
}

/// An approval whose amount (a hidden field) was not sent as the review page made it.
pub(super) const UNREADABLE_AMOUNT: &str =
    "The amount you approved could not be read. Check the refund and decide again";

/// A decision the rules refused: the review page again, as the request is now, with why.
pub(super) async fn refused(
    state: &AppState,
    staff: &SignedIn,
    id: i64,
    svc: &ServiceAccount,
    message: &str,
    d: &Decision,
) -> Result<Answer, PageError> {
    let row = refund_store::by_id(&state.db, id)
        .await?
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
pub(super) async fn reject(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: &str,
    form: CsrfForm<Decision>,
) -> Result<Answer, PageError> {
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
    if let Some(page) = decision_step_up(state, &check, &staff, &origin, &row, &d, false).await? {
        return Ok(page);
    }
    let outcome = refunds::reject(
        &state.db,
        state.clock.now(),
        &who(&staff, origin.0.ip.clone()),
        row.id,
        &comment,
    )
    .await?;
    match outcome {
        Ok(()) => Ok(Answer::Redirect(Redirect::to(format!(
            "/refunds?notice=rejected-{}",
            row.id
        )))),
        Err(refusal) => refused(state, &staff, row.id, &svc, refusal.message(), &d).await,
    }
}
