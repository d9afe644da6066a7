//! One platform account's payments and the indexes over them (by id, by creation time, by
//! refund creation time, and what falls due: expiries and refund settlements), and every
//! change a payment can go through. Changes record an event, mark the payment as differing
//! from the seed data (for `--data`), and queue the webhooks they cause.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rand::Rng;
use serde::Serialize;
use time::Date;

use super::data::{
    date_of, CardRec, EventRec, Id, Language, Metadata, Millis, PayRec, Provider, RefundRec, St,
    View, EXPIRY, MAX_AMOUNT,
};
use super::search::{in_dates, PaymentQuery, RefundQuery};
use super::webhooks::Outgoing;
use crate::platform::types::{wire_time, PaymentStatus, RefundStatus, WebhookMessage};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: String,
}

/// What a change needs to know about the world, and what it leaves to do afterwards.
pub struct Ctx<'a> {
    pub now: Millis,
    /// The sandbox's own address, for links inside webhook bodies.
    pub base: &'a str,
    pub settle_after: Millis,
    /// Webhooks to send once the account is unlocked.
    pub out: Vec<Outgoing>,
    /// Whether anything changed (so the data file needs writing).
    pub changed: bool,
}

impl<'a> Ctx<'a> {
    pub fn new(now: Millis, base: &'a str, settle_after: Millis) -> Ctx<'a> {
        Ctx {
            now,
            base,
            settle_after,
            out: Vec::new(),
            changed: false,
        }
    }
}

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
    /// P0604 (412): the caller's view of the available amount is stale.
    AvailableMismatch,
    /// P0602: more than is available.
    TooMuch { available: i64 },
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CountAmount {
    pub count: u64,
    pub amount: i64,
}

/// Counts and amount sums of everything an account has.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub payments: u64,
    pub payments_amount: i64,
    pub refunds: u64,
    pub refunds_amount: i64,
    /// Payments by `state.status`.
    pub by_status: BTreeMap<String, CountAmount>,
    /// Failed, cancelled and errored payments by `state.code`.
    pub by_code: BTreeMap<String, CountAmount>,
    pub refunds_by_status: BTreeMap<String, CountAmount>,
}

pub struct Account {
    pub id: Arc<str>,
    pub name: String,
    /// How many payments came from the seed; they hold indexes `0..seeded`.
    pub seeded: usize,
    pub payments: Vec<PayRec>,
    pub webhook: Option<WebhookTarget>,
    pub return_url: Arc<str>,
    by_id: HashMap<Id, u32>,
    /// Payment indexes by (created, id), oldest first.
    order: Vec<u32>,
    /// (created, payment index, refund number), oldest first.
    refund_order: Vec<(Millis, u32, u32)>,
    expiries: BTreeSet<(Millis, u32)>,
    refunds_due: BTreeSet<(Millis, u32, u32)>,
    /// Payments that differ from what the seed gives (written to the data file).
    pub dirty: HashSet<u32>,
    /// Counts changes, so cached search results know when they are stale.
    generation: u64,
    search_cache: Option<SearchCache>,
}

/// The matches of the last filtered search, oldest first.
struct SearchCache {
    key: String,
    generation: u64,
    today: Date,
    hits: Vec<u32>,
}

impl Account {
    pub fn new(
        id: &str,
        name: &str,
        payments: Vec<PayRec>,
        seeded: usize,
        return_url: Arc<str>,
    ) -> Account {
        let mut account = Account {
            id: Arc::from(id),
            name: name.to_string(),
            seeded,
            payments,
            webhook: None,
            return_url,
            by_id: HashMap::new(),
            order: Vec::new(),
            refund_order: Vec::new(),
            expiries: BTreeSet::new(),
            refunds_due: BTreeSet::new(),
            dirty: HashSet::new(),
            generation: 0,
            search_cache: None,
        };
        account.reindex();
        account
    }

    /// Replace seeded payments and add new ones from the data file, then rebuild every index.
    pub fn apply_stored(&mut self, stored: Vec<PayRec>) {
        let mut positions: HashMap<Id, u32> = HashMap::with_capacity(self.payments.len());
        for (i, p) in self.payments.iter().enumerate() {
            positions.insert(p.id, i as u32);
        }
        for rec in stored {
            let at = match positions.get(&rec.id) {
                Some(&i) => {
                    self.payments[i as usize] = rec;
                    i
                }
                None => {
                    let i = self.payments.len() as u32;
                    positions.insert(rec.id, i);
                    self.payments.push(rec);
                    i
                }
            };
            self.dirty.insert(at);
        }
        self.reindex();
    }

    fn reindex(&mut self) {
        let n = self.payments.len();
        self.by_id = HashMap::with_capacity(n);
        self.expiries.clear();
        self.refunds_due.clear();
        self.refund_order.clear();
        for (i, p) in self.payments.iter().enumerate() {
            let i = i as u32;
            self.by_id.insert(p.id, i);
            if !p.st.is_finished() {
                self.expiries.insert((p.created + EXPIRY, i));
            }
            for (n, r) in p.refunds.iter().enumerate() {
                self.refund_order.push((r.created, i, n as u32));
                if r.status == RefundStatus::Submitted {
                    self.refunds_due.insert((r.settle_at, i, n as u32));
                }
            }
        }
        let payments = &self.payments;
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by_key(|&i| (payments[i as usize].created, payments[i as usize].id));
        self.order = order;
        self.refund_order.sort_unstable();
    }

    pub fn find(&self, id: &str) -> Option<u32> {
        Id::parse(id).and_then(|id| self.by_id.get(&id).copied())
    }

    pub fn payment(&self, idx: u32) -> &PayRec {
        &self.payments[idx as usize]
    }

    pub fn len(&self) -> usize {
        self.payments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payments.is_empty()
    }

    /// Payments that are not finished and have a payer page (for the token index).
    pub fn tokens(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.payments.iter().enumerate().filter_map(|(i, p)| {
            p.token
                .as_deref()
                .filter(|_| !p.st.is_finished())
                .map(|t| (t, i as u32))
        })
    }

    /// Apply what has fallen due by `ctx.now`: unpaid payments expire 90 minutes after
    /// creation, submitted refunds settle.
    pub fn catch_up(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(&(due, idx)) = self.expiries.first() {
            if due > ctx.now {
                break;
            }
            self.expiries.pop_first();
            if !self.payment(idx).st.is_finished() {
                self.set_state(idx, St::Expired, due, ctx);
            }
        }
        while let Some(&(due, idx, n)) = self.refunds_due.first() {
            if due > ctx.now {
                break;
            }
            self.refunds_due.pop_first();
            self.settle_refund(idx, n, due, ctx);
        }
    }

    fn settle_refund(&mut self, idx: u32, n: u32, at: Millis, ctx: &mut Ctx<'_>) {
        let Some(refund) = self.payments[idx as usize].refunds.get_mut(n as usize) else {
            return;
        };
        if refund.status != RefundStatus::Submitted {
            return;
        }
        refund.status = if is_error_refund(refund.amount) {
            RefundStatus::Error
        } else {
            RefundStatus::Success
        };
        refund.settle_at = at;
        let succeeded = refund.status == RefundStatus::Success;
        self.touch(idx, ctx);
        if succeeded {
            self.queue_webhook(idx, "card_payment_refunded", ctx);
        }
    }

    fn touch(&mut self, idx: u32, ctx: &mut Ctx<'_>) {
        self.generation += 1;
        self.dirty.insert(idx);
        ctx.changed = true;
    }

    fn set_state(&mut self, idx: u32, st: St, at: Millis, ctx: &mut Ctx<'_>) {
        let p = &mut self.payments[idx as usize];
        p.st = st;
        p.events.push(EventRec { st, at });
        self.touch(idx, ctx);
        if let Some(event) = st.webhook_event() {
            self.queue_webhook(idx, event, ctx);
        }
    }

    fn queue_webhook(&mut self, idx: u32, event_type: &'static str, ctx: &mut Ctx<'_>) {
        let Some(target) = &self.webhook else {
            return;
        };
        let p = self.payment(idx);
        let resource = match serde_json::to_value(p.wire(ctx.base, ctx.now, View::Full)) {
            Ok(v) => v,
            Err(_) => return,
        };
        let message_id = uuid::Uuid::new_v4().simple().to_string();
        let message = WebhookMessage {
            webhook_message_id: Some(message_id.clone()),
            id: None,
            created_date: Some(wire_time::format(super::data::to_time(ctx.now))),
            resource_id: p.id.to_string(),
            api_version: Some(1),
            resource_type: Some("payment".into()),
            event_type: event_type.to_string(),
            resource: Some(resource),
        };
        let Ok(body) = serde_json::to_vec(&message) else {
            return;
        };
        ctx.out.push(Outgoing {
            account: self.id.clone(),
            url: target.url.clone(),
            secret: target.secret.clone(),
            message_id,
            event_type,
            resource_id: p.id.to_string(),
            body,
        });
    }

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

    /// Matching payments, newest first (created desc, then payment id desc): the total and
    /// the indexes on the requested page. Dates alone are answered from the sorted index;
    /// other filters scan the date range once and keep the matches for the following pages,
    /// until anything changes.
    pub fn search_payments(&mut self, q: &PaymentQuery, now: Millis) -> (usize, Vec<u32>) {
        let payments = &self.payments;
        let lo = q.from.map_or(0, |from| {
            self.order
                .partition_point(|&i| payments[i as usize].created < from)
        });
        let hi = q.to.map_or(self.order.len(), |to| {
            self.order
                .partition_point(|&i| payments[i as usize].created < to)
        });
        let range = if lo < hi {
            &self.order[lo..hi]
        } else {
            &[][..]
        };
        let skip = (q.page - 1).saturating_mul(q.size);
        let page_of = |hits: &[u32]| -> Vec<u32> {
            hits.iter().rev().skip(skip).take(q.size).copied().collect()
        };
        if !q.filters_beyond_dates() {
            return (range.len(), page_of(range));
        }
        let today = date_of(now);
        let key = q.cache_key();
        if let Some(cache) = &self.search_cache {
            if cache.key == key && cache.generation == self.generation && cache.today == today {
                return (cache.hits.len(), page_of(&cache.hits));
            }
        }
        // Oldest first, like `order`, so one page function serves both.
        let hits: Vec<u32> = range
            .iter()
            .copied()
            .filter(|&i| q.matches(&payments[i as usize], today))
            .collect();
        let answer = (hits.len(), page_of(&hits));
        self.search_cache = Some(SearchCache {
            key,
            generation: self.generation,
            today,
            hits,
        });
        answer
    }

    /// Matching refunds, newest first: the total and (payment index, refund number) pairs on
    /// the requested page.
    pub fn search_refunds(&self, q: &RefundQuery, now: Millis) -> (usize, Vec<(u32, u32)>) {
        let lo = q
            .from
            .map_or(0, |from| self.refund_order.partition_point(|k| k.0 < from));
        let hi = q.to.map_or(self.refund_order.len(), |to| {
            self.refund_order.partition_point(|k| k.0 < to)
        });
        let range = if lo < hi {
            &self.refund_order[lo..hi]
        } else {
            &[][..]
        };
        let skip = (q.page - 1).saturating_mul(q.size);
        let today = date_of(now);
        let settled_filter = q.from_settled.is_some() || q.to_settled.is_some();
        let mut total = 0usize;
        let mut page = Vec::new();
        for &(_, i, n) in range.iter().rev() {
            if settled_filter {
                let settled = self.payments[i as usize]
                    .refunds
                    .get(n as usize)
                    .and_then(|r| r.settled_date(today));
                if !in_dates(settled, q.from_settled, q.to_settled) {
                    continue;
                }
            }
            if total >= skip && page.len() < q.size {
                page.push((i, n));
            }
            total += 1;
        }
        (total, page)
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for p in &self.payments {
            t.payments += 1;
            t.payments_amount += p.amount;
            let e = t
                .by_status
                .entry(p.st.status().as_str().to_string())
                .or_default();
            e.count += 1;
            e.amount += p.amount;
            if let Some(code) = p.st.code() {
                let e = t.by_code.entry(code.to_string()).or_default();
                e.count += 1;
                e.amount += p.amount;
            }
            for r in &p.refunds {
                t.refunds += 1;
                t.refunds_amount += r.amount;
                let e = t
                    .refunds_by_status
                    .entry(r.status.as_str().to_string())
                    .or_default();
                e.count += 1;
                e.amount += r.amount;
            }
        }
        t
    }
}

/// The test amount rule: a refund whose amount ends in 13 pence (`amount % 100 == 13`)
/// ends in `error` instead of `success`.
pub fn is_error_refund(amount: i64) -> bool {
    amount % 100 == 13
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::sandbox::data::{Brand, CardType, DAY};
    use crate::platform::sandbox::seed::SeedPlan;

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

    #[test]
    fn search_pages_agree_with_a_plain_scan() {
        let plan = SeedPlan::new(4, "acct", "Parking permits", 3_000, T0);
        let mut a = Account::new("acct", "A", plan.generate(), 3_000, plan.return_url());
        let mut newest_first: Vec<&PayRec> = a.payments.iter().collect();
        newest_first.sort_by_key(|p| std::cmp::Reverse((p.created, p.id)));
        let expected: Vec<Id> = newest_first
            .iter()
            .filter(|p| p.created >= T0 - 30 * DAY && p.created < T0 - 10 * DAY)
            .map(|p| p.id)
            .collect();
        let success: Vec<Id> = newest_first
            .iter()
            .filter(|p| p.st == St::Success)
            .map(|p| p.id)
            .collect();
        drop(newest_first);
        let mut q = PaymentQuery {
            from: Some(T0 - 30 * DAY),
            to: Some(T0 - 10 * DAY),
            page: 1,
            size: 7,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let (total, page) = a.search_payments(&q, T0);
            assert_eq!(total, expected.len());
            if page.is_empty() {
                break;
            }
            seen.extend(page.iter().map(|&i| a.payment(i).id));
            q.page += 1;
        }
        assert_eq!(seen, expected);

        let mut q = PaymentQuery {
            state: Some(PaymentStatus::Success),
            page: 1,
            size: 500,
            echo: vec![("state", "success".into())],
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let (total, page) = a.search_payments(&q, T0);
            assert_eq!(total, success.len());
            if page.is_empty() {
                break;
            }
            seen.extend(page.iter().map(|&i| a.payment(i).id));
            q.page += 1;
        }
        assert_eq!(seen, success);
    }
}
