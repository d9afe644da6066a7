//! An account's recurring agreements: creating one (`POST /v1/agreements`), finding one,
//! cancelling one, and the agreement search, newest first.

use rand::Rng;

use super::{Account, Ctx};
use crate::platform::sandbox::agreements::{AgreementRec, CancelRefusal};
use crate::platform::sandbox::data::Id;
use crate::platform::sandbox::search::AgreementQuery;

impl Account {
    /// Replace the agreements (the seed's) and index them.
    pub fn set_agreements(&mut self, agreements: Vec<AgreementRec>) {
        self.agreements = agreements;
        self.agreement_by_id = self
            .agreements
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id, i as u32))
            .collect();
    }

    /// A new agreement, `created` until a payment sets it up.
    pub fn create_agreement<R: Rng + ?Sized>(
        &mut self,
        reference: &str,
        description: &str,
        user_identifier: Option<&str>,
        rng: &mut R,
        ctx: &mut Ctx<'_>,
    ) -> u32 {
        let rec = AgreementRec {
            id: Id::random(rng),
            reference: reference.into(),
            description: description.into(),
            user_identifier: user_identifier.map(Into::into),
            created: ctx.now,
            instrument: None,
            cancelled: None,
            inactive: None,
        };
        let i = self.agreements.len() as u32;
        self.agreement_by_id.insert(rec.id, i);
        self.agreements.push(rec);
        self.generation += 1;
        ctx.changed = true;
        i
    }

    pub fn find_agreement(&self, id: &str) -> Option<u32> {
        Id::parse(id).and_then(|id| self.agreement_by_id.get(&id).copied())
    }

    pub fn agreement(&self, i: u32) -> &AgreementRec {
        &self.agreements[i as usize]
    }

    /// The service cancels agreement `i` now.
    pub fn cancel_agreement(&mut self, i: u32, ctx: &mut Ctx<'_>) -> Result<(), CancelRefusal> {
        self.agreements[i as usize].cancel(ctx.now)?;
        self.generation += 1;
        ctx.changed = true;
        Ok(())
    }

    /// Matching agreements, newest first (by creation): the total and the requested page.
    pub fn search_agreements(&self, q: &AgreementQuery, now: i64) -> (usize, Vec<u32>) {
        let mut hits: Vec<u32> = (0..self.agreements.len() as u32)
            .filter(|&i| {
                let a = &self.agreements[i as usize];
                q.reference
                    .as_deref()
                    .is_none_or(|r| a.reference.eq_ignore_ascii_case(r))
                    && q.status.is_none_or(|s| s == a.status_at(now))
            })
            .collect();
        hits.sort_unstable_by_key(|&i| {
            let a = &self.agreements[i as usize];
            std::cmp::Reverse((a.created, a.id))
        });
        let total = hits.len();
        let skip = (q.page - 1).saturating_mul(q.size);
        let page = hits.into_iter().skip(skip).take(q.size).collect();
        (total, page)
    }
}
