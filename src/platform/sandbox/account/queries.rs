//! What an account answers without changing: payment and refund searches (paged, newest
//! first, with the last filtered payment search kept until anything changes) and totals.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Account, SearchCache};
use crate::platform::sandbox::data::{date_of, Millis};
use crate::platform::sandbox::search::{in_dates, PaymentQuery, RefundQuery};

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

impl Account {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::sandbox::data::{Id, PayRec, St, DAY};
    use crate::platform::sandbox::seed::SeedPlan;
    use crate::platform::types::PaymentStatus;

    const T0: Millis = 1_767_225_600_000;

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
