//! Pure rules for agreements: what the platform's answer means as a row to store, and the
//! order statuses move in (never backwards).

use crate::platform::agreement_wire::{Agreement, AgreementStatus};
use crate::platform::types::wire_time;
use crate::store::agreements::AgreementRecord;

/// Whether a stored agreement in `from` may take the platform's `to`: only forwards (created →
/// active → cancelled or inactive), and an ended agreement never changes again.
pub fn may_move(from: AgreementStatus, to: AgreementStatus) -> bool {
    to.rank() > from.rank() || to == from
}

/// The row to store for what the platform said.
pub fn record_of(a: &Agreement) -> AgreementRecord {
    let instrument = a.payment_instrument.as_ref();
    let card = instrument.and_then(|i| i.card_details.as_ref());
    let micros = |s: &str| wire_time::parse(s).map(crate::store::to_micros);
    AgreementRecord {
        agreement_id: a.agreement_id.clone(),
        reference: a.reference.clone(),
        description: a.description.clone(),
        user_identifier: a.user_identifier.clone(),
        status: a.status.as_str(),
        status_rank: a.status.rank(),
        card_brand: card.and_then(|c| c.card_brand.clone()),
        card_last4: card.and_then(|c| c.last_digits_card_number.clone()),
        card_expiry: card.and_then(|c| c.expiry_date.clone()),
        card_type: card.and_then(|c| c.card_type.clone()),
        created_at: crate::store::to_micros(a.created_date),
        active_at: instrument
            .and_then(|i| i.created_date.as_deref())
            .and_then(micros),
        cancelled_at: a.cancelled_date.as_deref().and_then(micros),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forwards() {
        use AgreementStatus::*;
        assert!(may_move(Created, Active));
        assert!(may_move(Active, Cancelled));
        assert!(may_move(Active, Inactive));
        assert!(!may_move(Active, Created));
        assert!(!may_move(Cancelled, Active));
        assert!(!may_move(Cancelled, Inactive));
        assert!(!may_move(Inactive, Cancelled));
        for s in AgreementStatus::ALL {
            assert!(may_move(s, s));
        }
    }
}
