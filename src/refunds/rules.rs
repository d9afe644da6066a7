//! The rules a refund follows, pure: what may be refunded, how an amount is read, when a
//! second person must approve, who may approve, when an approval lapses, and which state a
//! request may move to from which. Everything that touches the database or the platform
//! calls these first.

use time::{Duration, OffsetDateTime};

use crate::money::{Unreadable, MAX_PENCE};

/// How long a request may wait for a decision, and an approval stays good, by default.
pub const APPROVAL_LIFETIME: Duration = Duration::hours(24);

/// Why staff refund a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    RequestedByPayer,
    Duplicate,
    ServiceNotProvided,
    Overpayment,
    Fraud,
    Other,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::RequestedByPayer,
        Reason::Duplicate,
        Reason::ServiceNotProvided,
        Reason::Overpayment,
        Reason::Fraud,
        Reason::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::RequestedByPayer => "requested_by_payer",
            Reason::Duplicate => "duplicate",
            Reason::ServiceNotProvided => "service_not_provided",
            Reason::Overpayment => "overpayment",
            Reason::Fraud => "fraud",
            Reason::Other => "other",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Reason::RequestedByPayer => "Requested by the payer",
            Reason::Duplicate => "Duplicate payment",
            Reason::ServiceNotProvided => "Service not provided",
            Reason::Overpayment => "Overpayment",
            Reason::Fraud => "Fraud",
            Reason::Other => "Other",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// A decision comment's problem, if any: required when rejecting, at most 1,000 characters,
/// no control characters, and no card number (`card_data`).
pub fn decision_comment_problem(comment: &str, required: bool) -> Option<&'static str> {
    if required && comment.is_empty() {
        return Some("Say why the refund is being rejected");
    }
    if comment.chars().count() > 1000 {
        return Some("The comment must be 1,000 characters or fewer");
    }
    if comment
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        return Some("Use letters, numbers and punctuation only");
    }
    crate::card_data::refuse_card_number(comment).err()
}

/// Where a refund request is. Moves only along `may_move`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    AwaitingApproval,
    Approved,
    Submitting,
    Submitted,
    Succeeded,
    Failed,
    Rejected,
    Expired,
}

impl State {
    pub const ALL: [State; 8] = [
        State::AwaitingApproval,
        State::Approved,
        State::Submitting,
        State::Submitted,
        State::Succeeded,
        State::Failed,
        State::Rejected,
        State::Expired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::AwaitingApproval => "awaiting_approval",
            State::Approved => "approved",
            State::Submitting => "submitting",
            State::Submitted => "submitted",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Rejected => "rejected",
            State::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Whether the request is over (nothing more will happen to it).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Succeeded | State::Failed | State::Rejected | State::Expired
        )
    }

    /// Whether money may still leave (or has left) for this request: it counts against the
    /// amount still available to other requests.
    pub fn holds_money(self) -> bool {
        matches!(
            self,
            State::AwaitingApproval | State::Approved | State::Submitting | State::Submitted
        )
    }

    /// The moves a request may make.
    pub fn may_move(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (AwaitingApproval, Approved)
                | (AwaitingApproval, Rejected)
                | (AwaitingApproval, Expired)
                | (Approved, Submitting)
                | (Approved, Expired)
                // Handed back when the platform certainly did not receive it.
                | (Submitting, Approved)
                | (Submitting, Submitted)
                | (Submitting, Failed)
                | (Submitted, Succeeded)
                | (Submitted, Failed)
        )
    }
}

/// An amount to refund as a person types it, in pence, read by the one money rule
/// (`money::parse`); a refund of nothing is refused.
pub fn parse_amount(raw: &str) -> Result<i64, AmountProblem> {
    let amount = crate::money::parse(raw).map_err(|e| match e {
        Unreadable::Missing => AmountProblem::Missing,
        Unreadable::NotAnAmount => AmountProblem::NotAnAmount,
        Unreadable::TooMuch => AmountProblem::TooMuch,
    })?;
    if amount < 1 {
        return Err(AmountProblem::Zero);
    }
    Ok(amount)
}

/// Why an amount is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountProblem {
    Missing,
    NotAnAmount,
    Zero,
    /// Above the platform's limit (`money::MAX_PENCE`).
    TooMuch,
    MoreThanAvailable {
        available: i64,
    },
}

impl AmountProblem {
    pub fn message(self) -> String {
        match self {
            AmountProblem::Missing => "Enter the amount to refund".into(),
            AmountProblem::NotAnAmount => "Enter the amount in pounds and pence, like 12.50".into(),
            AmountProblem::Zero => "The amount to refund must be at least 1p".into(),
            AmountProblem::TooMuch => format!(
                "The amount to refund must be {} or less: that is the most the platform takes",
                pounds(MAX_PENCE)
            ),
            AmountProblem::MoreThanAvailable { available } => format!(
                "The amount to refund must be {} or less: that is what can still be refunded",
                pounds(available)
            ),
        }
    }
}

pub use crate::money::pounds;

/// What the platform and paydesk together say can still be refunded: the platform's
/// `amount_available`, less what paydesk's own open requests already hold (the platform
/// does not know about requests not yet submitted).
pub fn still_available(platform_available: i64, held_by_open_requests: i64) -> i64 {
    (platform_available - held_by_open_requests).max(0)
}

/// Check an amount against what is available.
pub fn check_amount(amount: i64, available: i64) -> Result<i64, AmountProblem> {
    if amount < 1 {
        return Err(AmountProblem::Zero);
    }
    if amount > available {
        return Err(AmountProblem::MoreThanAvailable { available });
    }
    Ok(amount)
}

/// Whether a refund of the platform's `refund_status` may be asked for at all.
pub fn refundable(refund_status: Option<&str>) -> bool {
    refund_status == Some("available")
}

/// Whether a second person must approve: amounts above the service's threshold (pence). A
/// service without a threshold approves nothing twice; a threshold of 0 approves everything.
pub fn needs_approval(amount: i64, threshold: Option<i64>) -> bool {
    threshold.is_some_and(|t| amount > t)
}

/// Why an approval is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalRefusal {
    OwnRequest,
    NotAwaiting,
    Expired,
    AmountChanged,
    /// The person who asked no longer holds refunds:request in the service (or was
    /// disabled): a request stands only while its requester could still make it.
    RequesterLostAccess,
}

impl ApprovalRefusal {
    pub fn message(self) -> &'static str {
        match self {
            ApprovalRefusal::OwnRequest => {
                "You asked for this refund, so someone else must approve it"
            }
            ApprovalRefusal::NotAwaiting => "This refund has already been decided",
            ApprovalRefusal::Expired => {
                "This request waited too long and has expired. It can be asked for again"
            }
            ApprovalRefusal::AmountChanged => {
                "The amount has changed since you looked at it. Check it and decide again"
            }
            ApprovalRefusal::RequesterLostAccess => {
                "The person who asked for this refund can no longer ask for refunds in this service, so it cannot be approved. Reject it, and ask for it again yourself if the money is still owed"
            }
        }
    }
}

/// A request as the approval rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    pub requested_by: i64,
    pub state: State,
    pub amount: i64,
    pub expires_at: OffsetDateTime,
}

/// May `approver` approve `request` for `amount_seen` (the amount on the page they decided
/// on) at `now`? An approval is bound to that exact amount.
pub fn may_approve(
    request: &Pending,
    approver: i64,
    amount_seen: i64,
    now: OffsetDateTime,
) -> Result<(), ApprovalRefusal> {
    if request.state == State::Expired {
        return Err(ApprovalRefusal::Expired);
    }
    if request.state != State::AwaitingApproval {
        return Err(ApprovalRefusal::NotAwaiting);
    }
    if request.requested_by == approver {
        return Err(ApprovalRefusal::OwnRequest);
    }
    if now >= request.expires_at {
        return Err(ApprovalRefusal::Expired);
    }
    if amount_seen != request.amount {
        return Err(ApprovalRefusal::AmountChanged);
    }
    Ok(())
}

/// Whether the second factor must be asked again before a refund, approval or decision.
pub fn needs_step_up(last_second_factor: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    match last_second_factor {
        Some(t) => now - t > Duration::minutes(5),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn decision_comments_refuse_card_numbers() {
        assert_eq!(decision_comment_problem("", false), None);
        assert!(decision_comment_problem("", true).is_some());
        assert_eq!(
            decision_comment_problem("Checked with the payer", true),
            None
        );
        for pan in [
            "4012-8888-8888-1881",
            "card 4012 8888 8888 1881",
            "4012888888881881",
        ] {
            assert_eq!(
                decision_comment_problem(pan, false),
                Some(crate::card_data::REFUSAL),
                "{pan:?}"
            );
        }
        assert_eq!(decision_comment_problem("4012-8888-8888-1882", false), None);
    }

    #[test]
    fn amounts_are_read_exactly_or_refused() {
        assert_eq!(parse_amount("5"), Ok(500));
        assert_eq!(parse_amount("£5"), Ok(500));
        assert_eq!(parse_amount("12.50"), Ok(1250));
        assert_eq!(parse_amount("12.5"), Ok(1250));
        assert_eq!(parse_amount("0.01"), Ok(1));
        assert_eq!(parse_amount(" 7.00 "), Ok(700));
        assert_eq!(parse_amount(""), Err(AmountProblem::Missing));
        assert_eq!(parse_amount("0"), Err(AmountProblem::Zero));
        assert_eq!(parse_amount("0.00"), Err(AmountProblem::Zero));
        // The one limit: the platform's 10,000,000 pence, said in the message.
        assert_eq!(parse_amount("100000"), Ok(MAX_PENCE));
        assert_eq!(parse_amount("100000.01"), Err(AmountProblem::TooMuch));
        assert!(AmountProblem::TooMuch
            .message()
            .contains("£100,000.00 or less"));
        for bad in [
            "-1",
            "1.5p",
            "1e3",
            "99999999999",
            "1,000.00",
            "12.345",
            "£",
            "1 000",
            "12.",
            ".5",
            "+5",
            "5£",
            "NaN",
            "0x10",
            "١٢",
        ] {
            assert_eq!(parse_amount(bad), Err(AmountProblem::NotAnAmount), "{bad}");
        }
    }

    #[test]
    fn never_more_than_is_available() {
        assert_eq!(check_amount(1000, 1000), Ok(1000));
        assert_eq!(
            check_amount(1001, 1000),
            Err(AmountProblem::MoreThanAvailable { available: 1000 })
        );
        assert_eq!(check_amount(0, 1000), Err(AmountProblem::Zero));
        assert_eq!(still_available(1000, 300), 700);
        assert_eq!(still_available(1000, 3000), 0);
        assert!(AmountProblem::MoreThanAvailable { available: 123456 }
            .message()
            .contains("£1,234.56"));
    }

    #[test]
    fn only_available_payments_are_refundable() {
        assert!(refundable(Some("available")));
        for s in [Some("full"), Some("pending"), Some("unavailable"), None] {
            assert!(!refundable(s));
        }
    }

    #[test]
    fn large_refunds_need_a_second_person_who_is_not_the_requester() {
        assert!(!needs_approval(10_000, Some(10_000)));
        assert!(needs_approval(10_001, Some(10_000)));
        assert!(needs_approval(1, Some(0)));
        assert!(!needs_approval(1_000_000, None));
        let now = datetime!(2026-11-20 12:00 UTC);
        let request = Pending {
            requested_by: 7,
            state: State::AwaitingApproval,
            amount: 20_000,
            expires_at: now + APPROVAL_LIFETIME,
        };
        assert_eq!(may_approve(&request, 8, 20_000, now), Ok(()));
        assert_eq!(
            may_approve(&request, 7, 20_000, now),
            Err(ApprovalRefusal::OwnRequest)
        );
        assert_eq!(
            may_approve(&request, 8, 19_999, now),
            Err(ApprovalRefusal::AmountChanged)
        );
        assert_eq!(
            may_approve(&request, 8, 20_000, now + Duration::hours(24)),
            Err(ApprovalRefusal::Expired)
        );
        let decided = Pending {
            state: State::Approved,
            ..request
        };
        assert_eq!(
            may_approve(&decided, 8, 20_000, now),
            Err(ApprovalRefusal::NotAwaiting)
        );
    }

    #[test]
    fn states_move_only_forwards() {
        use State::*;
        assert!(AwaitingApproval.may_move(Approved));
        assert!(Approved.may_move(Submitting));
        assert!(Submitting.may_move(Submitted));
        assert!(Submitted.may_move(Succeeded));
        for s in State::ALL {
            assert_eq!(State::parse(s.name()), Some(s));
            // Nothing moves back to awaiting approval, and nothing leaves a final state.
            assert!(!s.may_move(AwaitingApproval));
            if s.is_final() {
                for t in State::ALL {
                    assert!(!s.may_move(t), "{s:?} -> {t:?}");
                }
            }
        }
        assert!(
            !Submitted.may_move(Approved),
            "a refund the platform holds is never sent again"
        );
        assert!(
            !Submitted.may_move(Submitting),
            "a submitted refund is never sent again"
        );
        assert!(!Rejected.holds_money() && Submitting.holds_money());
    }

    #[test]
    fn the_second_factor_is_asked_again_after_five_minutes() {
        let now = datetime!(2026-11-20 12:00 UTC);
        assert!(!needs_step_up(Some(now - Duration::minutes(5)), now));
        assert!(needs_step_up(Some(now - Duration::minutes(6)), now));
        assert!(needs_step_up(None, now));
    }

    #[test]
    fn reasons_read_back() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.name()), Some(r));
        }
        assert_eq!(Reason::parse("because"), None);
    }
}
