//! Recurring agreements on the sandbox: a payer's consent for the service to take payments from
//! their card. An agreement is `created` until its first payment sets it up, then `active`;
//! the service may cancel an active one (`cancelled`), and one whose card can no longer be used
//! becomes `inactive`. Seeded agreements come from the account and a slot number alone (hashes),
//! and the seeded payments taken under them are chosen by their id alone, so seeding draws
//! nothing from the payments' random streams and the payments stay as they were.

use rand::rngs::StdRng;
use rand::SeedableRng;
use sha2::{Digest, Sha256};

use super::data::{CardRec, PayRec};
use super::primitives::{to_time, Id, Millis, DAY, HOUR, MINUTE};
use crate::platform::agreement_wire::{Agreement, AgreementStatus, PaymentInstrument};
use crate::platform::types::wire_time;

/// Seeded agreements per account; the last few never have a payment (they stay `created`).
pub const SEEDED: u32 = 20;
/// Seeded payments go to slots `0..SEEDED_WITH_PAYMENTS`.
const SEEDED_WITH_PAYMENTS: u32 = 16;
/// One successful seeded payment in this many is taken under an agreement.
const ONE_IN: u64 = 12;

const DESCRIPTIONS: [&str; 4] = [
    "Monthly instalments",
    "Annual subscription, paid monthly",
    "Recurring licence fee",
    "Payment plan",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementRec {
    pub id: Id,
    pub reference: Box<str>,
    pub description: Box<str>,
    pub user_identifier: Option<Box<str>>,
    pub created: Millis,
    /// When its first payment set it up, and the card that payment was made with.
    pub instrument: Option<(Millis, CardRec)>,
    pub cancelled: Option<Millis>,
    /// When its card stopped being usable.
    pub inactive: Option<Millis>,
}

/// Why an agreement was not cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelRefusal {
    /// Only an active agreement can be cancelled.
    NotActive(AgreementStatus),
}

impl AgreementRec {
    pub fn status_at(&self, now: Millis) -> AgreementStatus {
        if self.cancelled.is_some_and(|t| t <= now) {
            AgreementStatus::Cancelled
        } else if self.inactive.is_some_and(|t| t <= now) {
            AgreementStatus::Inactive
        } else if self.instrument.as_ref().is_some_and(|(t, _)| *t <= now) {
            AgreementStatus::Active
        } else {
            AgreementStatus::Created
        }
    }

    /// The service cancels it at `now`: only an active agreement can be cancelled.
    pub fn cancel(&mut self, now: Millis) -> Result<(), CancelRefusal> {
        match self.status_at(now) {
            AgreementStatus::Active => {
                self.cancelled = Some(now);
                Ok(())
            }
            other => Err(CancelRefusal::NotActive(other)),
        }
    }

    /// Its first payment, made at `at` with `card`, sets it up.
    pub fn set_up(&mut self, at: Millis, card: &CardRec) {
        if self.instrument.is_none() {
            self.instrument = Some((at, card.clone()));
        }
    }

    pub fn wire(&self, now: Millis) -> Agreement {
        let status = self.status_at(now);
        let instrument = self
            .instrument
            .as_ref()
            .filter(|(t, _)| *t <= now)
            .map(|(t, card)| {
                let mut details = card.wire();
                // The platform keeps no payer's name or address with an agreement's card.
                details.cardholder_name = None;
                details.billing_address = None;
                PaymentInstrument {
                    card_details: Some(details),
                    created_date: Some(wire_time::format(to_time(*t))),
                    instrument_type: Some("card".into()),
                }
            });
        Agreement {
            agreement_id: self.id.to_string(),
            reference: self.reference.to_string(),
            description: self.description.to_string(),
            status,
            created_date: to_time(self.created),
            cancelled_date: self
                .cancelled
                .filter(|t| *t <= now)
                .map(|t| wire_time::format(to_time(t))),
            user_identifier: self.user_identifier.as_deref().map(str::to_string),
            payment_instrument: instrument,
        }
    }
}

fn hash_words(text: &str) -> [u64; 4] {
    let hash = Sha256::digest(text.as_bytes());
    let mut words = [0u64; 4];
    for (i, w) in words.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&hash[i * 8..i * 8 + 8]);
        *w = u64::from_le_bytes(b);
    }
    words
}

/// The agreement slot a successful seeded payment was taken under, if any, from its id alone.
pub fn seeded_slot(payment_id: &Id) -> Option<u32> {
    let w = hash_words(&format!("agreement:{payment_id}"));
    w[0].is_multiple_of(ONE_IN)
        .then(|| (w[1] % u64::from(SEEDED_WITH_PAYMENTS)) as u32)
}

/// The id of an account's seeded agreement `slot`.
pub fn seeded_id(random_seed: u64, account_hash: u64, slot: u32) -> Id {
    let w = hash_words(&format!("agreement-id:{random_seed}:{account_hash}:{slot}"));
    Id::random(&mut StdRng::seed_from_u64(w[0]))
}

/// An account's seeded agreements, set up by the seeded payments taken under them (by
/// `payments[i].agreement`), as they stand at `anchor`: every status is present.
pub fn seeded(
    random_seed: u64,
    account_hash: u64,
    anchor: Millis,
    payments: &[PayRec],
) -> Vec<AgreementRec> {
    let mut out: Vec<AgreementRec> = (0..SEEDED)
        .map(|slot| {
            let w = hash_words(&format!("agreement:{random_seed}:{account_hash}:{slot}"));
            AgreementRec {
                id: seeded_id(random_seed, account_hash, slot),
                reference: format!("AGR-{:04}-{:04X}", slot + 1, w[0] % 0x1_0000).into(),
                description: DESCRIPTIONS[(w[1] % DESCRIPTIONS.len() as u64) as usize].into(),
                user_identifier: Some(format!("user-{:08x}", w[2] as u32).into()),
                created: anchor - HOUR - (w[3] % (60 * DAY) as u64) as Millis,
                instrument: None,
                cancelled: None,
                inactive: None,
            }
        })
        .collect();
    // The first and last payment under each slot.
    let mut spans: Vec<Option<(Millis, Millis, Option<&CardRec>)>> = vec![None; out.len()];
    let index: std::collections::HashMap<Id, usize> =
        out.iter().enumerate().map(|(i, a)| (a.id, i)).collect();
    for p in payments {
        let Some(&slot) = p.agreement.as_deref().and_then(|id| index.get(id)) else {
            continue;
        };
        let span = spans[slot].get_or_insert((p.created, p.created, p.card.as_deref()));
        if p.created < span.0 {
            *span = (p.created, span.1, p.card.as_deref().or(span.2));
        }
        span.1 = span.1.max(p.created);
    }
    for (slot, (rec, span)) in out.iter_mut().zip(spans).enumerate() {
        let Some((first, last, card)) = span else {
            continue;
        };
        let Some(card) = card else { continue };
        rec.created = rec.created.min(first - 10 * MINUTE);
        rec.instrument = Some((first, card.clone()));
        // A few have ended since their last payment.
        let ended = (last + (1 + slot as Millis % 9) * DAY)
            .min(anchor - MINUTE)
            .max(last + 1);
        match slot % 6 {
            1 => rec.cancelled = Some(ended),
            3 => rec.inactive = Some(ended),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::sandbox::data::{Brand, CardType};

    #[test]
    fn an_agreement_is_set_up_by_a_payment_and_only_an_active_one_cancels() {
        let id = Id::random(&mut rand::thread_rng());
        let t0: Millis = 1_767_225_600_000;
        let mut a = AgreementRec {
            id,
            reference: "R".into(),
            description: "D".into(),
            user_identifier: None,
            created: t0,
            instrument: None,
            cancelled: None,
            inactive: None,
        };
        assert_eq!(a.status_at(t0), AgreementStatus::Created);
        assert_eq!(
            a.cancel(t0),
            Err(CancelRefusal::NotActive(AgreementStatus::Created))
        );
        let card =
            CardRec::new(Brand::Visa, CardType::Debit, "424242", "4242", "12/29", "A").unwrap();
        a.set_up(t0 + HOUR, &card);
        assert_eq!(a.status_at(t0 + HOUR), AgreementStatus::Active);
        let wire = a.wire(t0 + HOUR);
        let details = wire.payment_instrument.unwrap().card_details.unwrap();
        assert_eq!(details.last_digits_card_number.as_deref(), Some("4242"));
        assert_eq!(details.cardholder_name, None);
        assert_eq!(a.cancel(t0 + 2 * HOUR), Ok(()));
        assert_eq!(a.status_at(t0 + 2 * HOUR), AgreementStatus::Cancelled);
        assert_eq!(
            a.cancel(t0 + 3 * HOUR),
            Err(CancelRefusal::NotActive(AgreementStatus::Cancelled))
        );
    }
}
