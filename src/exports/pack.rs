//! The month-end pack: per service, totals by settlement date (payments settled, gross,
//! refunds, fees, disputes lost and their fees, net) over a month or a range of settlement
//! dates.
//!
//! The totals come from the same WHERE clause as a settled-date export of the same range,
//! so they equal the sums of that export's rows: gross is the sum of the payment rows'
//! Total Amount, refunds the sum of the refund rows' (negated), fees the sum of the payment
//! rows' Fee, disputes the sum of the dispute rows' Total Amount (negated) and their fees
//! the sum of their Fee, and net the sum of Net.

use std::collections::BTreeMap;

use time::{Date, Month};

use super::ExportError;
use crate::csv::Record;
use crate::services::ServiceAccount;
use crate::store::exports::{self as export_store, Pass};
use crate::store::Db;

/// One settlement date's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Day {
    pub settled_date: String,
    pub payments: i64,
    pub gross: i64,
    pub refunds_count: i64,
    pub refunds: i64,
    pub fees: i64,
    /// Disputes settled that day (only a lost dispute is settled: taken from a payout).
    pub disputes_count: i64,
    /// What the disputes lost took, and their fees.
    pub disputes: i64,
    pub dispute_fees: i64,
}

impl Day {
    pub fn net(&self) -> i64 {
        self.gross - self.refunds - self.fees - self.disputes - self.dispute_fees
    }

    fn add(&mut self, other: &Day) {
        self.payments += other.payments;
        self.gross += other.gross;
        self.refunds_count += other.refunds_count;
        self.refunds += other.refunds;
        self.fees += other.fees;
        self.disputes_count += other.disputes_count;
        self.disputes += other.disputes;
        self.dispute_fees += other.dispute_fees;
    }
}

/// A service's pack: its days (only days with money) and their total.
#[derive(Debug, Clone)]
pub struct ServicePack {
    pub service: ServiceAccount,
    pub days: Vec<Day>,
    pub total: Day,
}

/// The first and last day of a month given as `YYYY-MM`.
pub fn month_days(month: &str) -> Option<(Date, Date)> {
    let (y, m) = month.trim().split_once('-')?;
    if y.len() != 4 || m.is_empty() || m.len() > 2 {
        return None;
    }
    let y: i32 = y.parse().ok()?;
    let m = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let first = Date::from_calendar_date(y, m, 1).ok()?;
    let last = Date::from_calendar_date(y, m, m.length(y)).ok()?;
    Some((first, last))
}

/// Totals by settlement date for each service, `from..=to` (`YYYY-MM-DD`).
pub async fn build(
    db: &Db,
    services: &[ServiceAccount],
    from: &str,
    to: &str,
) -> Result<Vec<ServicePack>, ExportError> {
    let mut packs = Vec::new();
    for s in services {
        let paid = export_store::totals_by_settlement(db, s.id, Pass::Payments, from, to).await?;
        let refunded =
            export_store::totals_by_settlement(db, s.id, Pass::Refunds, from, to).await?;
        let mut days: BTreeMap<String, Day> = BTreeMap::new();
        for p in paid {
            let d = days.entry(p.settled_date.clone()).or_default();
            d.settled_date = p.settled_date;
            d.payments = p.count;
            d.gross = p.gross;
            d.fees = p.fees;
        }
        for r in refunded {
            let d = days.entry(r.settled_date.clone()).or_default();
            d.settled_date = r.settled_date;
            d.refunds_count = r.count;
            d.refunds = r.gross;
        }
        for x in export_store::totals_by_settlement(db, s.id, Pass::Disputes, from, to).await? {
            let d = days.entry(x.settled_date.clone()).or_default();
            d.settled_date = x.settled_date;
            d.disputes_count = x.count;
            d.disputes = x.gross;
            d.dispute_fees = x.fees;
        }
        let days: Vec<Day> = days.into_values().collect();
        let mut total = Day {
            settled_date: "Total".into(),
            ..Day::default()
        };
        for d in &days {
            total.add(d);
        }
        packs.push(ServicePack {
            service: s.clone(),
            days,
            total,
        });
    }
    Ok(packs)
}

/// The grand total across services: what the whole month comes to for everyone in the pack.
pub fn grand_total(packs: &[ServicePack]) -> Day {
    let mut total = Day {
        settled_date: "Total".into(),
        ..Day::default()
    };
    for p in packs {
        total.add(&p.total);
    }
    total
}

/// The name the grand total row carries in the Service column.
pub const ALL_SERVICES: &str = "All services";

/// The disputes' columns come after Net, so that a spreadsheet made for the columns before
/// them keeps working.
pub const HEADER: [&str; 11] = [
    "Service",
    "Settlement Date",
    "Payments",
    "Gross",
    "Refunds Count",
    "Refunds",
    "Fees",
    "Net",
    "Disputes Count",
    "Disputes",
    "Dispute Fees",
];

/// The pack as CSV: a row per service and day, a total row per service, then, when there
/// are several services, the grand total across them ("All services", "Total"). Money in
/// pounds ("12.50"); refunds, fees, disputes and their fees as positive amounts taken away
/// from gross to give net.
pub fn to_csv(packs: &[ServicePack]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = Record::start(&mut out);
    for h in HEADER {
        r.plain(h);
    }
    r.end();
    for p in packs {
        for d in p.days.iter().chain(std::iter::once(&p.total)) {
            Record::start(&mut out)
                .text(&p.service.name)
                .plain(&d.settled_date)
                .int(d.payments)
                .money(d.gross)
                .int(d.refunds_count)
                .money(d.refunds)
                .money(d.fees)
                .money(d.net())
                .int(d.disputes_count)
                .money(d.disputes)
                .money(d.dispute_fees)
                .end();
        }
    }
    if packs.len() < 2 {
        return out;
    }
    let all = grand_total(packs);
    Record::start(&mut out)
        .text(ALL_SERVICES)
        .plain(&all.settled_date)
        .int(all.payments)
        .money(all.gross)
        .int(all.refunds_count)
        .money(all.refunds)
        .money(all.fees)
        .money(all.net())
        .int(all.disputes_count)
        .money(all.disputes)
        .money(all.dispute_fees)
        .end();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        let (a, b) = month_days("2024-02").unwrap();
        assert_eq!((a.day(), b.day()), (1, 29));
        let (_, b) = month_days("2026-11").unwrap();
        assert_eq!(b.day(), 30);
        assert!(month_days("2026-13").is_none());
        assert!(month_days("26-1").is_none());
        assert!(month_days("November").is_none());
    }

    #[test]
    fn net_takes_refunds_and_fees_from_gross() {
        let d = Day {
            settled_date: "2026-11-02".into(),
            payments: 3,
            gross: 10_000,
            refunds_count: 1,
            refunds: 2_500,
            fees: 120,
            ..Day::default()
        };
        assert_eq!(d.net(), 7_380);
        let lost = Day {
            disputes_count: 1,
            disputes: 1_000,
            dispute_fees: 2_000,
            ..d
        };
        assert_eq!(lost.net(), 4_380);
    }
}
