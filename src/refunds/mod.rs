//! Refunds that happen once or not at all. Staff ask for one (`request`), a second person
//! approves it when it is large (`approve` / `reject`), and a job submits it to the platform
//! exactly once (`submit`) and follows it until the platform says it succeeded or failed.
//! Every move of a request is one conditional UPDATE, made in one transaction with its audit
//! entry, its timeline entry and its next job.

pub mod bulk;
pub mod failed;
pub mod figures;
mod history;
pub mod list;
pub mod list_filters;
pub mod rules;
pub mod submit;

use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, Actor, AuditEvent};
use crate::integrations::events::{self, EventType};
use crate::store::{self, refunds as refund_store, Db, StoreError, Tx};
use history::{By, Note};
use rules::{AmountProblem, ApprovalRefusal, Reason, State};

pub use refund_store::{RefundSettings, RequestRow};

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

/// Who is acting, as the rules and the audit log need them.
#[derive(Debug, Clone)]
pub struct Staff {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub ip: Option<String>,
}

impl Staff {
    fn actor(&self) -> Actor {
        Actor::staff(self.id, &self.email)
    }
}

/// Who asks for a refund: a member of staff on the console, or an API token acting for the
/// member of staff who made it (that person is recorded as the requester, so they can never
/// approve what their token asked for; the audit log names the token).
#[derive(Debug, Clone)]
pub struct Requester {
    /// The member of staff recorded as having asked.
    pub staff_id: i64,
    /// How the timeline names who asked.
    pub name: String,
    pub actor: Actor,
    pub ip: Option<String>,
}

impl From<&Staff> for Requester {
    fn from(s: &Staff) -> Requester {
        Requester {
            staff_id: s.id,
            name: s.name.clone(),
            actor: s.actor(),
            ip: s.ip.clone(),
        }
    }
}

/// How much a person asks to refund: everything still refundable, or an amount in pence.
/// Carried as it is from the form or the API to the platform; nothing turns it back into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HowMuch {
    Full,
    Partial(i64),
}

/// Why a form's answer to "how much?" is not a `HowMuch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAsked {
    /// Neither "full" nor "partial" was chosen.
    NotChosen,
    /// "partial", with an amount that cannot be read.
    Amount(AmountProblem),
}

impl HowMuch {
    /// The refund form's two fields: the choice ("full" or "partial") and, for a partial
    /// refund, the amount typed in pounds (read by the one money rule).
    pub fn from_form(choice: &str, amount: &str) -> Result<HowMuch, NotAsked> {
        match choice {
            "full" => Ok(HowMuch::Full),
            "partial" => rules::parse_amount(amount)
                .map(HowMuch::Partial)
                .map_err(NotAsked::Amount),
            _ => Err(NotAsked::NotChosen),
        }
    }
}

/// A refund asked for on a journey's page.
#[derive(Debug, Clone)]
pub struct Ask {
    pub service_id: i64,
    pub journey_id: i64,
    pub payment_id: String,
    /// Everything still refundable, or an amount; or why the form's answer is not one.
    pub how_much: Result<HowMuch, NotAsked>,
    pub reason: String,
    pub comment: String,
    pub case_reference: String,
    /// The form's one-time key: asking twice with the same form makes one request.
    pub form_key: String,
}

impl Default for Ask {
    fn default() -> Self {
        Ask {
            service_id: 0,
            journey_id: 0,
            payment_id: String::new(),
            how_much: Err(NotAsked::NotChosen),
            reason: String::new(),
            comment: String::new(),
            case_reference: String::new(),
            form_key: String::new(),
        }
    }
}

/// A field's problem with an ask.
pub type Problem = (&'static str, String);

/// What an ask comes to once checked: the amount in pence and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub amount: i64,
    pub reason: Reason,
    pub comment: Option<String>,
    pub case_reference: Option<String>,
}

/// Check an ask against the rules and what is still available (pure).
pub fn check(
    ask: &Ask,
    settings: &RefundSettings,
    refund_status: Option<&str>,
    available: i64,
) -> Result<Checked, Vec<Problem>> {
    let mut problems: Vec<Problem> = Vec::new();
    if !rules::refundable(refund_status) || available < 1 {
        problems.push((
            "how_much",
            "This payment cannot be refunded: the platform says nothing is available to refund"
                .into(),
        ));
        return Err(problems);
    }
    let amount = match ask.how_much {
        Ok(HowMuch::Full) => Ok(available),
        Ok(HowMuch::Partial(pence)) => rules::check_amount(pence, available),
        Err(NotAsked::Amount(problem)) => Err(problem),
        Err(NotAsked::NotChosen) => {
            problems.push(("how_much", "Choose how much to refund".into()));
            Err(AmountProblem::Missing)
        }
    };
    let amount = match amount {
        Ok(a) => Some(a),
        Err(e) => {
            if !matches!(ask.how_much, Err(NotAsked::NotChosen)) {
                problems.push(("amount", e.message()));
            }
            None
        }
    };
    let reason = Reason::parse(&ask.reason);
    if reason.is_none() {
        problems.push(("reason", "Choose the reason for the refund".into()));
    }
    let comment = ask.comment.trim();
    if comment.chars().count() > 1000 {
        problems.push((
            "comment",
            "The comment must be 1,000 characters or fewer".into(),
        ));
    }
    if reason == Some(Reason::Other) && comment.is_empty() {
        problems.push(("comment", "Say why the payment is being refunded".into()));
    }
    let case_reference = ask.case_reference.trim();
    if case_reference.chars().count() > 100 {
        problems.push((
            "case_reference",
            "The case reference must be 100 characters or fewer".into(),
        ));
    }
    if settings.refund_case_reference_required && case_reference.is_empty() {
        problems.push((
            "case_reference",
            "Enter the case reference: this service needs one for every refund".into(),
        ));
    }
    for (field, text) in [("comment", comment), ("case_reference", case_reference)] {
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r')
        {
            problems.push((field, "Use letters, numbers and punctuation only".into()));
        }
        if let Err(message) = crate::card_data::refuse_card_number(text) {
            problems.push((field, message.into()));
        }
    }
    match (amount, reason, problems.is_empty()) {
        (Some(amount), Some(reason), true) => Ok(Checked {
            amount,
            reason,
            comment: (!comment.is_empty()).then(|| comment.to_string()),
            case_reference: (!case_reference.is_empty()).then(|| case_reference.to_string()),
        }),
        _ => Err(problems),
    }
}

/// Why a refund of a disputed payment is refused when it is asked for.
pub const DISPUTED: &str = "This payment cannot be refunded: the payer's bank has disputed it";

/// Why one asked for before the dispute was known is not sent.
pub const DISPUTED_NOT_SENT: &str =
    "Not sent: the payer's bank has disputed this payment, and a disputed payment cannot be refunded.";

/// What is still available for a new request on a journey: the platform's view less what
/// open requests hold. Read only (the request itself checks again with the journey locked).
pub async fn available_now(db: &Db, journey_id: i64) -> Result<(Option<String>, i64), RefundError> {
    let (status, available, held) = refund_store::availability(db, journey_id)
        .await?
        .unwrap_or((None, None, 0));
    Ok((status, rules::still_available(available.unwrap_or(0), held)))
}

/// The outcome of asking.
#[derive(Debug, Clone, PartialEq)]
pub enum Asked {
    /// A new request (or the one this form already made): its id and state.
    Made {
        id: i64,
        state: State,
    },
    Refused(Vec<Problem>),
}

/// Ask for a refund. Checked again inside the transaction that records it, with the journey
/// locked, so two people asking at once cannot together ask for more than is available.
pub async fn request(
    db: &Db,
    now: OffsetDateTime,
    who: &Staff,
    ask: &Ask,
) -> Result<Asked, RefundError> {
    request_as(db, now, &Requester::from(who), ask).await
}

/// `request`, for any requester (the API asks as its token).
pub async fn request_as(
    db: &Db,
    now: OffsetDateTime,
    who: &Requester,
    ask: &Ask,
) -> Result<Asked, RefundError> {
    let settings = refund_store::settings(db, ask.service_id).await?;
    let mut tx = db.begin().await?;
    // The same form again: the request it made, whatever happened since.
    if let Some(existing) =
        refund_store::by_form_key(&mut tx, ask.service_id, &ask.form_key).await?
    {
        tx.rollback().await?;
        return Ok(Asked::Made {
            id: existing.id,
            state: State::parse(&existing.state).unwrap_or(State::Failed),
        });
    }
    let Some((status, available)) = refund_store::lock_journey(&mut tx, ask.journey_id).await?
    else {
        tx.rollback().await?;
        return Ok(Asked::Refused(vec![(
            "how_much",
            "There is no such payment".into(),
        )]));
    };
    // A disputed payment is never refunded, whatever the platform said of it before.
    if crate::disputes::journey_disputed(&mut tx, ask.journey_id).await? {
        tx.rollback().await?;
        return Ok(Asked::Refused(vec![("how_much", DISPUTED.into())]));
    }
    let held = refund_store::held(&mut tx, ask.journey_id).await?;
    let still = rules::still_available(available.unwrap_or(0), held);
    let checked = match check(ask, &settings, status.as_deref(), still) {
        Ok(c) => c,
        Err(problems) => {
            tx.rollback().await?;
            return Ok(Asked::Refused(problems));
        }
    };
    let approval_required =
        rules::needs_approval(checked.amount, settings.refund_approval_threshold);
    let state = if approval_required {
        State::AwaitingApproval
    } else {
        State::Approved
    };
    let expires_at = store::to_micros(now + rules::APPROVAL_LIFETIME);
    let at = store::to_micros(now);
    let Some(id) = refund_store::insert(
        &mut tx,
        &refund_store::NewRequest {
            service_id: ask.service_id,
            journey_id: ask.journey_id,
            payment_id: &ask.payment_id,
            amount: checked.amount,
            reason: checked.reason.name(),
            comment: checked.comment.as_deref(),
            case_reference: checked.case_reference.as_deref(),
            state: state.name(),
            form_key: &ask.form_key,
            requested_by: who.staff_id,
            approval_required,
            expires_at,
        },
        at,
    )
    .await?
    else {
        // Another submit of this form got there first, in between.
        tx.rollback().await?;
        return Box::pin(request_as(db, now, who, ask)).await;
    };
    let detail = json!({
        "request": id, "amount": checked.amount, "reason": checked.reason.name(),
        "case_reference": checked.case_reference, "approval_required": approval_required,
    });
    let message = format!(
        "{} asked for a refund of {} ({}){}",
        who.name,
        rules::pounds(checked.amount),
        checked.reason.label(),
        if approval_required {
            "; it needs approval"
        } else {
            ""
        }
    );
    history::write(
        &mut tx,
        now,
        By::Person {
            actor: who.actor.clone(),
            ip: who.ip.clone(),
        },
        Note {
            journey_id: ask.journey_id,
            payment_id: &ask.payment_id,
            action: "refund_requested",
            message,
            detail,
            failed: false,
        },
    )
    .await?;
    if state == State::Approved {
        submit::enqueue(&mut tx, id, now).await?;
    }
    if let Some(row) = refund_store::by_id_in(&mut tx, id).await? {
        events::refund_changed(&mut tx, EventType::RefundRequested, &row, now).await?;
    }
    tx.commit().await?;
    Ok(Asked::Made { id, state })
}

/// Approve a request for exactly the amount the approver saw.
pub async fn approve(
    db: &Db,
    now: OffsetDateTime,
    who: &Staff,
    request_id: i64,
    amount_seen: i64,
    comment: Option<&str>,
) -> Result<Result<(), ApprovalRefusal>, RefundError> {
    let mut tx = db.begin().await?;
    let at = store::to_micros(now);
    if let Some(lost) = requester_lost_access(&mut tx, request_id).await? {
        tx.rollback().await?;
        let refusal = ApprovalRefusal::RequesterLostAccess;
        audit::record(
            db,
            now,
            AuditEvent::new(who.actor(), "refund_approved", format!("payment:{lost}"))
                .failed()
                .from_ip(who.ip.clone())
                .details(json!({"request": request_id, "refused": refusal.message()})),
        )
        .await?;
        return Ok(Err(refusal));
    }
    let moved = refund_store::approve(
        &mut tx,
        request_id,
        who.id,
        amount_seen,
        comment,
        at,
        store::to_micros(now + rules::APPROVAL_LIFETIME),
    )
    .await?;
    if !moved {
        tx.rollback().await?;
        // Say why, from the row as it is now.
        let Some(row) = refund_store::by_id(db, request_id).await? else {
            return Ok(Err(ApprovalRefusal::NotAwaiting));
        };
        let pending = rules::Pending {
            requested_by: row.requested_by,
            state: State::parse(&row.state).unwrap_or(State::Failed),
            amount: row.amount,
            expires_at: store::from_micros(row.expires_at),
        };
        let refusal = rules::may_approve(&pending, who.id, amount_seen, now)
            .err()
            .unwrap_or(ApprovalRefusal::NotAwaiting);
        audit::record(
            db,
            now,
            AuditEvent::new(
                who.actor(),
                "refund_approved",
                format!("payment:{}", row.payment_id),
            )
            .failed()
            .from_ip(who.ip.clone())
            .details(json!({"request": request_id, "refused": refusal.message()})),
        )
        .await?;
        return Ok(Err(refusal));
    }
    let Some(row) = refund_store::by_id_in(&mut tx, request_id).await? else {
        tx.rollback().await?;
        return Ok(Err(ApprovalRefusal::NotAwaiting));
    };
    let message = format!(
        "{} approved the refund of {}",
        who.name,
        rules::pounds(row.amount)
    );
    decided(&mut tx, now, who, &row, "refund_approved", message, comment).await?;
    submit::enqueue(&mut tx, request_id, now).await?;
    events::refund_changed(&mut tx, EventType::RefundApproved, &row, now).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// The payment of a request awaiting approval whose requester no longer holds
/// refunds:request in its service now (demoted, removed or disabled since they asked).
async fn requester_lost_access(
    tx: &mut Tx,
    request_id: i64,
) -> Result<Option<String>, RefundError> {
    let Some(row) = refund_store::by_id_in(tx, request_id).await? else {
        return Ok(None);
    };
    if row.state != State::AwaitingApproval.name() {
        return Ok(None);
    }
    let now = crate::identity::standing::of_in(
        tx,
        row.requested_by,
        row.service_id,
        &[crate::identity::permissions::Permission::RefundsRequest],
    )
    .await?;
    Ok((!now.holds()).then_some(row.payment_id))
}

/// Reject a request, saying why.
pub async fn reject(
    db: &Db,
    now: OffsetDateTime,
    who: &Staff,
    request_id: i64,
    comment: &str,
) -> Result<Result<(), ApprovalRefusal>, RefundError> {
    let mut tx = db.begin().await?;
    let at = store::to_micros(now);
    if !refund_store::reject(&mut tx, request_id, who.id, comment, at).await? {
        tx.rollback().await?;
        return Ok(Err(ApprovalRefusal::NotAwaiting));
    }
    let Some(row) = refund_store::by_id_in(&mut tx, request_id).await? else {
        tx.rollback().await?;
        return Ok(Err(ApprovalRefusal::NotAwaiting));
    };
    let message = format!(
        "{} rejected the refund of {}: {comment}",
        who.name,
        rules::pounds(row.amount)
    );
    decided(
        &mut tx,
        now,
        who,
        &row,
        "refund_rejected",
        message,
        Some(comment),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// An approver's decision on `row`, in the timeline and the audit log.
async fn decided(
    tx: &mut Tx,
    now: OffsetDateTime,
    who: &Staff,
    row: &RequestRow,
    action: &'static str,
    message: String,
    comment: Option<&str>,
) -> Result<(), RefundError> {
    history::write(
        tx,
        now,
        By::Person {
            actor: who.actor(),
            ip: who.ip.clone(),
        },
        Note {
            journey_id: row.journey_id,
            payment_id: &row.payment_id,
            action,
            message,
            detail: json!({"request": row.id, "amount": row.amount, "comment": comment}),
            failed: false,
        },
    )
    .await
}

/// Requests left undecided (or approved and never submitted) past their time expire.
pub async fn expire_due(db: &Db, now: OffsetDateTime) -> Result<Vec<i64>, RefundError> {
    let mut tx = db.begin().await?;
    let ids = refund_store::expire_due(&mut tx, store::to_micros(now)).await?;
    for id in &ids {
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(
                Actor::System,
                "refund_expired",
                format!("refund_request:{id}"),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ids)
}

/// This capability's job handlers: submitting refunds, following them up, and sending bulk
/// batches row by row.
pub fn handlers() -> Vec<std::sync::Arc<dyn crate::jobs::JobHandler>> {
    let mut all = submit::handlers();
    all.push(std::sync::Arc::new(bulk::send::SendJob));
    all
}

/// This capability's periodic work: refund requests nobody decided in time lapse (each
/// expiry is audited).
pub fn periodic() -> Vec<crate::schedule::Periodic> {
    vec![crate::schedule::Periodic::each_tick(
        "refund request expiry",
        |db, now| async move { expire_due(&db, now).await.map(|_| ()) },
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(how: &str, amount: &str, reason: &str) -> Ask {
        Ask {
            how_much: HowMuch::from_form(how, amount),
            reason: reason.into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_ask_is_checked_against_what_is_available() {
        let s = RefundSettings::default();
        let ok = check(
            &ask("partial", "5.00", "duplicate"),
            &s,
            Some("available"),
            1000,
        )
        .unwrap();
        assert_eq!(ok.amount, 500);
        let full = check(&ask("full", "", "duplicate"), &s, Some("available"), 1000).unwrap();
        assert_eq!(full.amount, 1000);
        for bad in ["0", "-1", "1.5p", "1e3", "99999999999", "10.01", "1,000.00"] {
            let e = check(
                &ask("partial", bad, "duplicate"),
                &s,
                Some("available"),
                1000,
            )
            .unwrap_err();
            assert_eq!(e[0].0, "amount", "{bad}");
        }
        assert_eq!(
            check(
                &ask("partial", "£5", "duplicate"),
                &s,
                Some("available"),
                1000
            )
            .unwrap()
            .amount,
            500
        );
        let e = check(&ask("full", "", "duplicate"), &s, Some("full"), 0).unwrap_err();
        assert_eq!(e[0].0, "how_much");
        let e = check(&ask("full", "", "other"), &s, Some("available"), 10).unwrap_err();
        assert_eq!(e[0].0, "comment");
        let e = check(&ask("full", "", "because"), &s, Some("available"), 10).unwrap_err();
        assert_eq!(e[0].0, "reason");
        let strict = RefundSettings {
            refund_case_reference_required: true,
            ..Default::default()
        };
        let e = check(
            &ask("full", "", "duplicate"),
            &strict,
            Some("available"),
            10,
        )
        .unwrap_err();
        assert_eq!(e[0].0, "case_reference");
    }

    #[test]
    fn card_numbers_in_comments_and_case_references_are_refused() {
        let s = RefundSettings::default();
        for field in ["comment", "case_reference"] {
            let mut a = ask("full", "", "duplicate");
            match field {
                "comment" => a.comment = "Payer read out 4012-8888-8888-1881".into(),
                _ => a.case_reference = "4012 8888 8888 1881".into(),
            }
            let e = check(&a, &s, Some("available"), 10).unwrap_err();
            assert_eq!(e, vec![(field, crate::card_data::REFUSAL.to_string())]);
        }
    }
}
