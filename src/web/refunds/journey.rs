//! The refund part of a payment's page: the notice after a request, whether a refund may be
//! asked for now, and the journey's refund requests.

use serde_json::{json, Value};

use super::shared::*;
use crate::identity::permissions::Permission;
use crate::identity::signin::CurrentSession;
use crate::refunds::figures::RefundFigures;
use crate::refunds::rules::{self, pounds};
use crate::services::ServiceAccount;
use crate::store::{journeys as journey_store, refunds as refund_store};
use crate::web::errors::PageError;
use crate::web::format::local_time;
use crate::AppState;

/// What the journey page says after a refund was asked for (`notice=refund-<id>`), from
/// the request as it is now; None for any other notice.
pub async fn journey_notice(
    state: &AppState,
    j: &journey_store::JourneyRow,
    notice: Option<&str>,
) -> Result<Option<String>, PageError> {
    let Some(id) = notice
        .and_then(|n| n.strip_prefix("refund-"))
        .and_then(|n| n.parse::<i64>().ok())
    else {
        return Ok(None);
    };
    let Some(row) = refund_store::by_id(&state.db, id)
        .await?
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
pub async fn journey_section(
    state: &AppState,
    staff: &CurrentSession,
    svc: &ServiceAccount,
    j: &journey_store::JourneyRow,
    figures: &RefundFigures,
    back: &str,
) -> Result<Value, PageError> {
    let zone = state.config.time_zone;
    let may_request = staff.grants.can(Permission::RefundsRequest, svc.id);
    let may_approve = staff.grants.can(Permission::RefundsApprove, svc.id);
    let can_request =
        may_request && rules::refundable(figures.status.as_deref()) && figures.available > 0;
    // Someone who may ask is told why they cannot, instead of finding no button.
    let why_not = (may_request && !can_request).then(|| {
        figures
            .why_none(&j.status)
            .unwrap_or("The platform does not allow this payment to be refunded now.")
    });
    let href = {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("service", &svc.slug);
        if !back.is_empty() {
            q.append_pair("back", back);
        }
        format!("{}?{}", form_path(&j.payment_id), q.finish())
    };
    let rows = refund_store::for_journey(&state.db, j.id).await?;
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
            "batch": r.batch_id,
            "review_href": (may_approve && r.state == "awaiting_approval").then(|| format!("/refunds/{}", r.id)),
        }));
    }
    // Where to follow them up: finance sees every request of the service, a caseworker theirs.
    let list_href = (may_request || may_approve).then(|| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("service", &svc.slug)
            .finish();
        format!("/refunds/requests?{q}")
    });
    Ok(json!({
        "can_request": can_request,
        "why_not": why_not,
        "href": href,
        "requests": requests,
        "list_href": list_href,
        "list_text": if may_approve { "All refund requests in this service" } else { "All your refund requests" },
    }))
}
