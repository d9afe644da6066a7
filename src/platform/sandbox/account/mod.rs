//! One platform account's payments, the indexes over them (by id, by time, what falls due) and
//! the primitives every change goes through (event, dirty mark for `--data`, webhooks); the
//! changes themselves are in `changes`, searches and totals in `queries`.

mod agreements;
mod changes;
mod disputes;
mod queries;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use time::Date;

use super::data::{to_time, EventRec, Id, Millis, PayRec, St, View, EXPIRY};
use super::webhooks::Outgoing;
use crate::platform::types::{wire_time, RefundStatus, WebhookMessage};

pub use changes::{DriveRefusal, NewPayment, RefundRefusal, Target};
pub use disputes::{DisputeRefusal, NewDispute};
pub use queries::{CountAmount, Totals};

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
    /// Disputed payments by (dispute created, payment index), oldest first.
    dispute_order: Vec<(Millis, u32)>,
    /// Recurring agreements (seeded, then created), and their positions by id.
    pub agreements: Vec<super::agreements::AgreementRec>,
    agreement_by_id: HashMap<Id, u32>,
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
            dispute_order: Vec::new(),
            agreements: Vec::new(),
            agreement_by_id: HashMap::new(),
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
                    let mut rec = rec;
                    // A data file from before disputes were kept: the seed still has it.
                    if rec.disputed && rec.dispute.is_none() {
                        rec.dispute = self.payments[i as usize].dispute.take();
                    }
                    // Or from before agreements were kept.
                    if rec.agreement.is_none() {
                        rec.agreement = self.payments[i as usize].agreement.take();
                    }
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
        self.dispute_order.clear();
        for (i, p) in self.payments.iter().enumerate() {
            let i = i as u32;
            self.by_id.insert(p.id, i);
            if let Some(d) = &p.dispute {
                self.dispute_order.push((d.created, i));
            }
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
        self.dispute_order.sort_unstable();
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
            created_date: Some(wire_time::format(to_time(ctx.now))),
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
}

/// The test amount rule: a refund whose amount ends in 13 pence (`amount % 100 == 13`)
/// ends in `error` instead of `success`.
pub fn is_error_refund(amount: i64) -> bool {
    amount % 100 == 13
}
