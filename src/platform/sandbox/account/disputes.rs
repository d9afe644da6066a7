//! An account's disputes: raising one on a successful payment (the sandbox's admin endpoint;
//! seeded ones come from the seed) and the dispute search, newest first.

use rand::Rng;

use super::{Account, Ctx};
use crate::platform::sandbox::data::{Id, St};
use crate::platform::sandbox::disputes::DisputeRec;
use crate::platform::sandbox::search::{in_dates, DisputeQuery};

/// A dispute to raise now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDispute {
    /// An index into `disputes::REASONS`.
    pub reason: u8,
    pub lost: bool,
    pub evidence_days: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeRefusal {
    /// Only a successful payment can be disputed.
    NotSuccessful,
    AlreadyDisputed,
}

impl Account {
    /// The payer's bank disputes payment `idx` now. Its refunds become unavailable.
    pub fn raise_dispute<R: Rng + ?Sized>(
        &mut self,
        idx: u32,
        new: NewDispute,
        rng: &mut R,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), DisputeRefusal> {
        let p = self.payment(idx);
        if p.st != St::Success {
            return Err(DisputeRefusal::NotSuccessful);
        }
        if p.disputed {
            return Err(DisputeRefusal::AlreadyDisputed);
        }
        let dispute = DisputeRec::raised(
            Id::random(rng),
            ctx.now,
            new.reason,
            new.lost,
            new.evidence_days,
        );
        let key = (dispute.created, idx);
        let p = &mut self.payments[idx as usize];
        p.disputed = true;
        p.dispute = Some(Box::new(dispute));
        let at = self.dispute_order.partition_point(|k| *k < key);
        self.dispute_order.insert(at, key);
        self.touch(idx, ctx);
        Ok(())
    }

    /// Matching disputes, newest first (by when they were raised): the total and the
    /// payment indexes on the requested page. Status and settlement follow from `now`.
    pub fn search_disputes(&self, q: &DisputeQuery, now: i64) -> (usize, Vec<u32>) {
        let lo = q
            .from
            .map_or(0, |from| self.dispute_order.partition_point(|k| k.0 < from));
        let hi = q.to.map_or(self.dispute_order.len(), |to| {
            self.dispute_order.partition_point(|k| k.0 < to)
        });
        let range = if lo < hi {
            &self.dispute_order[lo..hi]
        } else {
            &[][..]
        };
        let skip = (q.page - 1).saturating_mul(q.size);
        let settled_filter = q.from_settled.is_some() || q.to_settled.is_some();
        let mut total = 0usize;
        let mut page = Vec::new();
        for &(_, i) in range.iter().rev() {
            let Some(d) = self.payments[i as usize].dispute.as_deref() else {
                continue;
            };
            if q.status.is_some_and(|s| s != d.status_at(now)) {
                continue;
            }
            if settled_filter && !in_dates(d.settled_date(now), q.from_settled, q.to_settled) {
                continue;
            }
            if total >= skip && page.len() < q.size {
                page.push(i);
            }
            total += 1;
        }
        (total, page)
    }
}
