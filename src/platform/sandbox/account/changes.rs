//! The changes a payment can go through: made by the API, driven along a payer's journey (by
//! the card page or an operator), cancelled, and refunded. Each goes through the account's
//! primitives, so it is recorded, saved and announced by webhook.

use std::sync::Arc;

use rand::Rng;

use super::{Account, Ctx};
use crate::platform::sandbox::data::{
    CardRec, EventRec, Id, Language, Metadata, PayRec, Provider, RefundRec, St, EXPIRY, MAX_AMOUNT,
};
use crate::platform::types::{PaymentStatus, RefundStatus};

/// A new payment, already validated.
pub struct NewPayment {
    pub amount: i64,
    pub reference: String,
    pub description: String,
    pub return_url: String,
    pub email: Option<String>,
    pub language: Language,
    pub metadata: Option<Metadata>,
    pub delayed_capture: bool,
    pub moto: bool,
}

/// Where an operator (or a payer) can drive a payment.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Started,
    Submitted(CardRec),
    Success(CardRec),
    /// failed P0010 after the card was submitted.
    Declined(CardRec),
    Expired,
    UserCancelled,
    Cancelled,
    Error(CardRec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveRefusal {
    Finished,
    Backwards,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRefusal {
    /// P0603: the payment's refund status is not `available`.
    NotAvailable(String),
    /// P0603: the payer has disputed the payment.
    Disputed,
    /// P0604 (412): the caller's view of the available amount is stale.
    AvailableMismatch,
    /// P0602: more than is available.
    TooMuch { available: i64 },
}

impl Account {
    /// Move a payment along the path a payer's journey takes, recording every step:
    /// created → started → submitted (card recorded) → success, failed or error.
    pub fn drive(
        &mut self,
        idx: u32,
        target: Target,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), DriveRefusal> {
        let current = self.payment(idx).st;
        if current.is_finished() {
            return Err(DriveRefusal::Finished);
        }
        let rank = current.status().rank();
        let before_submitted = rank < PaymentStatus::Submitted.rank();
        match target {
            Target::Started if rank >= PaymentStatus::Started.rank() => {
                return Err(DriveRefusal::Backwards)
            }
            Target::Started => self.ensure_started(idx, ctx),
            Target::Submitted(_) | Target::UserCancelled if !before_submitted => {
                return Err(DriveRefusal::Backwards)
            }
            Target::Submitted(card) => {
                self.ensure_started(idx, ctx);
                self.submit(idx, card, ctx);
            }
            Target::UserCancelled => {
                self.ensure_started(idx, ctx);
                self.set_state(idx, St::UserCancelled, ctx.now, ctx);
            }
            Target::Success(card) => self.finish_with_card(idx, card, St::Success, ctx),
            Target::Declined(card) => self.finish_with_card(idx, card, St::Declined, ctx),
            Target::Error(card) => self.finish_with_card(idx, card, St::Error, ctx),
            Target::Expired => self.set_state(idx, St::Expired, ctx.now, ctx),
            Target::Cancelled => self.set_state(idx, St::Cancelled, ctx.now, ctx),
        }
        Ok(())
    }

    fn ensure_started(&mut self, idx: u32, ctx: &mut Ctx<'_>) {
        if self.payment(idx).st == St::Created {
            self.set_state(idx, St::Started, ctx.now, ctx);
        }
    }

    fn submit(&mut self, idx: u32, card: CardRec, ctx: &mut Ctx<'_>) {
        if self.payment(idx).st != St::Submitted {
            self.payments[idx as usize].card = Some(Box::new(card));
            self.set_state(idx, St::Submitted, ctx.now, ctx);
        }
    }

    fn finish_with_card(&mut self, idx: u32, card: CardRec, end: St, ctx: &mut Ctx<'_>) {
        self.ensure_started(idx, ctx);
        self.submit(idx, card, ctx);
        self.set_state(idx, end, ctx.now, ctx);
    }

    /// `POST /v1/payments`: a new payment in state created, with a payer page.
    pub fn create_payment<R: Rng + ?Sized>(
        &mut self,
        new: NewPayment,
        provider: Provider,
        rng: &mut R,
        ctx: &mut Ctx<'_>,
    ) -> u32 {
        let mut id = Id::random(rng);
        while self.by_id.contains_key(&id) {
            id = Id::random(rng);
        }
        let rec = PayRec {
            id,
            created: ctx.now,
            amount: new.amount,
            reference: new.reference.into(),
            description: Arc::from(new.description),
            email: new.email.map(Into::into),
            return_url: Arc::from(new.return_url),
            language: new.language,
            provider,
            st: St::Created,
            delayed_capture: new.delayed_capture,
            moto: new.moto,
            disputed: false,
            dispute: None,
            agreement: None,
            settle_days: rng.gen_range(1..=3),
            metadata: new.metadata,
            card: None,
            token: Some(Id::random(rng).as_str().into()),
            events: vec![EventRec {
                st: St::Created,
                at: ctx.now,
            }],
            refunds: Vec::new(),
        };
        let idx = self.payments.len() as u32;
        let key = (rec.created, rec.id);
        self.expiries.insert((rec.created + EXPIRY, idx));
        self.by_id.insert(rec.id, idx);
        self.payments.push(rec);
        let payments = &self.payments;
        let at = self.order.partition_point(|&i| {
            let p = &payments[i as usize];
            (p.created, p.id) < key
        });
        self.order.insert(at, idx);
        self.touch(idx, ctx);
        idx
    }

    /// `POST /v1/payments/{id}/cancel`: `false` when the payment has finished.
    pub fn cancel(&mut self, idx: u32, ctx: &mut Ctx<'_>) -> bool {
        self.drive(idx, Target::Cancelled, ctx).is_ok()
    }

    /// `POST /v1/payments/{id}/refunds`, after the request itself has been validated.
    pub fn refund<R: Rng + ?Sized>(
        &mut self,
        idx: u32,
        amount: i64,
        expected_available: Option<i64>,
        rng: &mut R,
        ctx: &mut Ctx<'_>,
    ) -> Result<u32, RefundRefusal> {
        let p = self.payment(idx);
        if p.disputed {
            return Err(RefundRefusal::Disputed);
        }
        let summary = p.refund_summary();
        if summary.status != "available" {
            return Err(RefundRefusal::NotAvailable(summary.status));
        }
        if expected_available.is_some_and(|e| e != summary.amount_available) {
            return Err(RefundRefusal::AvailableMismatch);
        }
        if amount > summary.amount_available || amount > MAX_AMOUNT {
            return Err(RefundRefusal::TooMuch {
                available: summary.amount_available,
            });
        }
        let refund = RefundRec {
            id: Id::random(rng),
            created: ctx.now,
            amount,
            status: RefundStatus::Submitted,
            settle_at: ctx.now + ctx.settle_after,
            settle_days: rng.gen_range(1..=3),
        };
        let p = &mut self.payments[idx as usize];
        let n = p.refunds.len() as u32;
        let key = (refund.created, idx, n);
        self.refunds_due.insert((refund.settle_at, idx, n));
        p.refunds.push(refund);
        let at = self.refund_order.partition_point(|k| *k < key);
        self.refund_order.insert(at, key);
        self.touch(idx, ctx);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::sandbox::account::{is_error_refund, WebhookTarget};
    use crate::platform::sandbox::data::{Brand, CardType, Millis};
    use crate::platform::sandbox::webhooks::Outgoing;

    const T0: Millis = 1_767_225_600_000;

    fn ctx(now: Millis) -> Ctx<'static> {
        Ctx::new(now, "http://sandbox.test", 2_000)
    }

    fn card() -> CardRec {
        CardRec::new(
            Brand::Visa,
            CardType::Credit,
            "411111",
            "1111",
            "12/30",
            "Siân O'Brien",
        )
        .unwrap()
    }

    fn empty_account() -> Account {
        let mut a = Account::new("acct", "Test", Vec::new(), 0, Arc::from("https://x.test"));
        a.webhook = Some(WebhookTarget {
            url: "http://hooks.test/in".into(),
            secret: "s".into(),
        });
        a
    }

    fn new_payment(amount: i64) -> NewPayment {
        NewPayment {
            amount,
            reference: "PMT-1".into(),
            description: "Thing".into(),
            return_url: "https://x.test/back".into(),
            email: None,
            language: Language::En,
            metadata: None,
            delayed_capture: false,
            moto: false,
        }
    }

    fn events(out: &[Outgoing]) -> Vec<&str> {
        out.iter().map(|o| o.event_type).collect()
    }

    #[test]
    fn unpaid_payments_expire_ninety_minutes_after_creation() {
        let mut a = empty_account();
        let mut c = ctx(T0);
        let idx = a.create_payment(
            new_payment(1_000),
            Provider::Sandbox,
            &mut rand::thread_rng(),
            &mut c,
        );
        assert!(a.drive(idx, Target::Started, &mut c).is_ok());
        assert_eq!(events(&c.out), ["card_payment_started"]);

        let mut c = ctx(T0 + EXPIRY - 1);
        a.catch_up(&mut c);
        assert_eq!(a.payment(idx).st, St::Started);
        assert!(c.out.is_empty());

        // Applied late, the expiry is still dated 90 minutes after creation.
        let mut c = ctx(T0 + EXPIRY + 30_000);
        a.catch_up(&mut c);
        let p = a.payment(idx);
        assert_eq!(p.st, St::Expired);
        assert_eq!(p.st.wire().code.as_deref(), Some("P0020"));
        assert_eq!(p.events.last().map(|e| e.at), Some(T0 + EXPIRY));
        assert_eq!(events(&c.out), ["card_payment_expired"]);
        let body: serde_json::Value = serde_json::from_slice(&c.out[0].body).unwrap();
        assert_eq!(body["resource"]["state"]["code"], "P0020");
        assert_eq!(body["api_version"], 1);

        // A paid payment does not expire.
        let mut c = ctx(T0);
        let paid = a.create_payment(
            new_payment(1_000),
            Provider::Sandbox,
            &mut rand::thread_rng(),
            &mut c,
        );
        assert!(a.drive(paid, Target::Success(card()), &mut c).is_ok());
        let mut c = ctx(T0 + 2 * EXPIRY);
        a.catch_up(&mut c);
        assert_eq!(a.payment(paid).st, St::Success);
        assert!(c.out.is_empty());
    }

    #[test]
    fn a_payer_journey_records_every_step_and_finished_payments_stay_put() {
        let mut a = empty_account();
        let mut c = ctx(T0);
        let idx = a.create_payment(
            new_payment(2_500),
            Provider::Sandbox,
            &mut rand::thread_rng(),
            &mut c,
        );
        assert!(a.drive(idx, Target::Declined(card()), &mut c).is_ok());
        let steps: Vec<St> = a.payment(idx).events.iter().map(|e| e.st).collect();
        assert_eq!(
            steps,
            [St::Created, St::Started, St::Submitted, St::Declined]
        );
        assert_eq!(
            events(&c.out),
            ["card_payment_started", "card_payment_failed"]
        );
        assert_eq!(
            a.payment(idx).card.as_ref().map(|c| c.last4()),
            Some("1111")
        );
        assert_eq!(
            a.drive(idx, Target::Success(card()), &mut c),
            Err(DriveRefusal::Finished)
        );
        assert!(!a.cancel(idx, &mut c));

        let other = a.create_payment(
            new_payment(2_500),
            Provider::Sandbox,
            &mut rand::thread_rng(),
            &mut c,
        );
        assert!(a.drive(other, Target::Submitted(card()), &mut c).is_ok());
        assert_eq!(
            a.drive(other, Target::Started, &mut c),
            Err(DriveRefusal::Backwards)
        );
        assert!(a.cancel(other, &mut c));
        assert_eq!(a.payment(other).st, St::Cancelled);
    }

    #[test]
    fn refunds_settle_after_the_delay_and_13p_amounts_fail() {
        let mut a = empty_account();
        let mut c = ctx(T0);
        let idx = a.create_payment(
            new_payment(10_000),
            Provider::Sandbox,
            &mut rand::thread_rng(),
            &mut c,
        );
        assert!(a.drive(idx, Target::Success(card()), &mut c).is_ok());
        let mut rng = rand::thread_rng();
        assert_eq!(
            a.refund(idx, 500, Some(9_000), &mut rng, &mut c),
            Err(RefundRefusal::AvailableMismatch)
        );
        assert_eq!(
            a.refund(idx, 10_001, Some(10_000), &mut rng, &mut c),
            Err(RefundRefusal::TooMuch { available: 10_000 })
        );
        let ok = a.refund(idx, 500, Some(10_000), &mut rng, &mut c).unwrap();
        let bad = a.refund(idx, 1_013, None, &mut rng, &mut c).unwrap();
        assert_eq!(a.payment(idx).refund_summary().amount_available, 8_487);

        let mut c = ctx(T0 + 1_999);
        a.catch_up(&mut c);
        assert_eq!(
            a.payment(idx).refunds[ok as usize].status,
            RefundStatus::Submitted
        );
        let mut c = ctx(T0 + 2_000);
        a.catch_up(&mut c);
        let p = a.payment(idx);
        assert_eq!(p.refunds[ok as usize].status, RefundStatus::Success);
        assert_eq!(p.refunds[bad as usize].status, RefundStatus::Error);
        // The errored refund frees its amount again.
        assert_eq!(p.refund_summary().amount_available, 9_500);
        assert_eq!(events(&c.out), ["card_payment_refunded"]);
        assert!(is_error_refund(113) && !is_error_refund(112));

        let mut c = ctx(T0 + 3_000);
        assert!(a.refund(idx, 9_500, None, &mut rng, &mut c).is_ok());
        assert_eq!(
            a.refund(idx, 1, None, &mut rng, &mut c),
            Err(RefundRefusal::NotAvailable("full".into()))
        );
    }
}
