//! What the refund pages share: addresses, state tags, reason labels, ages, names, who is
//! acting, and the audited refusal.

use std::collections::HashMap;

use rocket::http::Status;
use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, AuditEvent};
use crate::identity::permissions::Permission;
use crate::identity::signin::CurrentSession;
use crate::refunds::figures::RefundFigures;
use crate::refunds::rules::Reason;
use crate::refunds::{self};
use crate::services::ServiceAccount;
use crate::store::{self, journeys as journey_store, staff as staff_store};
use crate::web::auth::RequestOrigin;
use crate::web::errors::PageError;
use crate::web::session::SignedIn;
use crate::AppState;

pub(super) fn id_path(payment_id: &str) -> String {
    url::form_urlencoded::byte_serialize(payment_id.as_bytes()).collect()
}

pub(super) fn form_path(payment_id: &str) -> String {
    format!("/payments/{}/refund", id_path(payment_id))
}

/// A request's state as a tag: (text, colour).
pub(super) fn state_tag(state: &str) -> (&'static str, &'static str) {
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

pub(super) fn reason_label(name: &str) -> String {
    Reason::parse(name)
        .map(|r| r.label().to_string())
        .unwrap_or_else(|| name.to_string())
}

/// How long ago, in words: "5 minutes", "3 hours", "2 days".
pub(super) fn age(now: OffsetDateTime, us: i64) -> String {
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
pub(super) struct Names(HashMap<i64, String>);

impl Names {
    pub(super) async fn of(&mut self, state: &AppState, id: i64) -> Result<String, PageError> {
        if let Some(n) = self.0.get(&id) {
            return Ok(n.clone());
        }
        let name = staff_store::staff_by_id(&state.db, id)
            .await?
            .map(|s| s.name)
            .unwrap_or_else(|| format!("Account {id}"));
        self.0.insert(id, name.clone());
        Ok(name)
    }
}

pub(super) fn who(session: &CurrentSession, ip: Option<String>) -> refunds::Staff {
    refunds::Staff {
        id: session.staff.id,
        email: session.staff.email.clone(),
        name: session.staff.name.clone(),
        ip,
    }
}

/// Refused to someone who may read the payment but not ask for its refund: audited, 403.
pub(super) async fn forbid(
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

/// Longest comment or case reference kept when a form is shown again (the rules refuse
/// anything over 1,000 characters; this only bounds what a page echoes).
pub(super) const ECHO_LIMIT: usize = 5_000;

/// A journey's refund figures, from the refunds capability (one computation for every page).
pub(super) async fn money_of(
    state: &AppState,
    svc: &ServiceAccount,
    j: &journey_store::JourneyRow,
) -> Result<RefundFigures, PageError> {
    Ok(refunds::figures::of_journey(&state.db, svc.id, &j.payment_id, j.id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
