//! The dashboard: money taken and returned over a period, failures by reason, daily totals and
//! what needs attention, for the services a person may read payments in.
//!
//! The period rules, reading the page's choices and laying out the chart are pure (and tested
//! below); `figures` asks the store and puts the answers into local days. Days are local days
//! in the configured zone: a payment at 23:30 UTC on a July evening belongs to the next day in
//! London.

use time::{Date, OffsetDateTime};

use crate::identity::permissions::{Grants, Permission};
use crate::store::{self, Db, StoreResult};
use crate::timezone::Zone;

/// The services whose figures `grants` may see (those where they may read payments), as
/// (id, name) ordered by name. Every service for a platform admin.
pub async fn services_for(db: &Db, grants: &Grants) -> StoreResult<Vec<(i64, String)>> {
    let readable = grants.services_with(Permission::PaymentsRead);
    store::dashboard::services(db, readable.as_ref()).await
}

pub use crate::timezone::Period;

/// A period pinned to instants: local days `first..=last`, and `[from, to)` in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub period: Period,
    pub first: Date,
    pub last: Date,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

impl Span {
    /// `period` as seen at `now` in `zone`.
    pub fn at(period: Period, now: OffsetDateTime, zone: &Zone) -> Span {
        let (first, last) = period.days(zone.date_of(now));
        let after = last.next_day().unwrap_or(last);
        Span {
            period,
            first,
            last,
            from: zone.start_of(first),
            to: zone.start_of(after),
        }
    }

    /// Every local day of the span with the instants (microseconds, UTC) it starts and ends
    /// at; a day is 23 or 25 hours long when the clocks change.
    pub fn days(&self, zone: &Zone) -> Vec<(Date, i64, i64)> {
        let mut out: Vec<(Date, i64, i64)> = Vec::new();
        let mut day = self.first;
        while day <= self.last {
            let start = store::to_micros(zone.start_of(day));
            if let Some(previous) = out.last_mut() {
                previous.2 = start;
            }
            out.push((day, start, store::to_micros(self.to)));
            match day.next_day() {
                Some(next) => day = next,
                None => break,
            }
        }
        out
    }
}

/// What a person chose on the page: a period and some of their services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub period: Period,
    /// The chosen services' ids, in the order offered; never empty when any are offered.
    pub services: Vec<i64>,
    /// Whether the person narrowed the services down (rather than seeing all of them).
    pub narrowed: bool,
}

/// A choice the page could not use, for the error summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The id of the field the message links to.
    pub field: &'static str,
    pub message: String,
}

/// Read the page's query (`period=…&service=ID&service=ID…`) against the services on offer.
/// Anything else in the query is ignored. No period means the default; no service means all
/// of them. A value that is not on offer is a problem, and the choice falls back to the
/// default for it.
pub fn choose(query: &[(String, String)], offered: &[i64]) -> (Choice, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut period = Period::DEFAULT;
    if let Some((_, raw)) = query.iter().find(|(k, _)| k == "period") {
        if !raw.trim().is_empty() {
            match Period::parse(raw) {
                Some(p) => period = p,
                None => problems.push(Problem {
                    field: "period",
                    message: "Choose a period from the list".into(),
                }),
            }
        }
    }
    let mut wanted = Vec::new();
    let mut unknown = false;
    for (_, raw) in query.iter().filter(|(k, _)| k == "service") {
        match raw.trim().parse::<i64>() {
            Ok(id) if offered.contains(&id) => wanted.push(id),
            _ => unknown = true,
        }
    }
    if unknown {
        problems.push(Problem {
            field: "service",
            message: "Choose services from the list".into(),
        });
    }
    let narrowed = !unknown && !wanted.is_empty();
    let services = if narrowed {
        offered
            .iter()
            .copied()
            .filter(|id| wanted.contains(id))
            .collect()
    } else {
        offered.to_vec()
    };
    (
        Choice {
            period,
            services,
            narrowed,
        },
        problems,
    )
}

/// A count and a sum of money in pence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub count: i64,
    pub sum: i64,
}

/// One local day's successful payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub date: Date,
    pub count: i64,
    pub sum: i64,
}

/// Journeys that ended badly for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Option<String>,
    pub message: Option<String>,
    pub count: i64,
}

/// The "needs attention" panel's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attention {
    /// Journeys flagged "needs attention" now.
    pub stuck: i64,
    /// Refunds asked for in the period that failed (`refunds::failed`: one definition).
    pub failed_refunds: i64,
    /// Dead jobs on the whole platform; only for platform admins.
    pub dead_jobs: Option<i64>,
}

/// Everything the dashboard shows for one span and set of services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub payments: Totals,
    pub refunds: Totals,
    /// Disputes raised in the span and lost (`disputes::lost`).
    pub disputes_lost: crate::disputes::Lost,
    /// Payments less refunds and the amounts of disputes lost, in pence (may be negative).
    pub net: i64,
    pub days: Vec<Day>,
    pub failures: Vec<Failure>,
    pub attention: Attention,
}

/// The dashboard's figures for `services` over `span`. Dead jobs are counted only when
/// `platform_admin`.
pub async fn figures(
    db: &Db,
    zone: &Zone,
    span: &Span,
    services: &[i64],
    platform_admin: bool,
) -> StoreResult<Figures> {
    let days = span.days(zone);
    let from = store::to_micros(span.from);
    let to = store::to_micros(span.to);
    let bounds: Vec<(i64, i64)> = days.iter().map(|(_, start, end)| (*start, *end)).collect();
    let dead_jobs = async {
        if platform_admin {
            store::dashboard::dead_jobs(db).await.map(Some)
        } else {
            Ok(None)
        }
    };
    let (per_day, refunds, failed_refunds, failures, stuck, dead_jobs, lost) = tokio::try_join!(
        store::dashboard::successful_payments_by_day(db, services, &bounds),
        store::dashboard::refunds_by_status(db, services, from, to),
        crate::refunds::failed::count(db, services, from, to),
        store::dashboard::failures_by_reason(db, services, from, to),
        store::dashboard::needing_attention(db, services),
        dead_jobs,
        crate::disputes::lost(db, services, span.from, span.to),
    )?;
    let days: Vec<Day> = days
        .iter()
        .zip(per_day)
        .map(|((date, _, _), (count, sum))| Day {
            date: *date,
            count,
            sum,
        })
        .collect();
    let payments = Totals {
        count: days.iter().map(|d| d.count).sum(),
        sum: days.iter().map(|d| d.sum).sum(),
    };
    let refunded = refunds
        .into_iter()
        .find(|(status, _, _)| status == "success")
        .map(|(_, count, sum)| Totals { count, sum })
        .unwrap_or_default();
    Ok(Figures {
        payments,
        refunds: refunded,
        disputes_lost: lost,
        net: payments.sum - refunded.sum - lost.amount,
        days,
        failures: failures
            .into_iter()
            .map(|(code, message, count)| Failure {
                code,
                message,
                count,
            })
            .collect(),
        attention: Attention {
            stuck,
            failed_refunds,
            dead_jobs,
        },
    })
}

// ---- showing figures ------------------------------------------------------------------------

// Money and counts are written by the one formatter, `crate::money`.
pub use crate::money::{pounds as money, pounds_short as money_short, thousands};

/// 20 November 2026.
pub fn long_date(date: Date) -> String {
    format!("{} {} {}", date.day(), date.month(), date.year())
}

/// 20 Nov.
pub fn short_date(date: Date) -> String {
    let month = date.month().to_string();
    format!("{} {}", date.day(), &month[..3.min(month.len())])
}

/// The smallest of 1, 2 and 5 times a power of ten pence that is at least `pence` (at
/// least £1): the top of the chart's scale.
pub fn nice_ceiling(pence: i64) -> i64 {
    let target = pence.max(100);
    let mut power: i64 = 1;
    loop {
        for step in [1, 2, 5] {
            let candidate = step * power;
            if candidate >= target {
                return candidate;
            }
        }
        match power.checked_mul(10) {
            Some(p) => power = p,
            None => return target,
        }
    }
}

/// The daily totals as a bar chart, laid out in SVG user units.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    pub bars: Vec<Bar>,
    /// Horizontal guides with their amounts, bottom (zero) first.
    pub ticks: Vec<Tick>,
    /// Dates under the axis.
    pub labels: Vec<Label>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// For a pointer's tooltip: "3 November 2026: 12 payments, £340.00".
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Tick {
    pub y: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Label {
    pub x: f64,
    pub text: String,
    /// SVG text-anchor: start, middle or end.
    pub anchor: &'static str,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Lay out `days` as bars on a scale from zero to a round amount at or above the best day.
pub fn chart(days: &[Day]) -> Chart {
    let (width, height) = (640.0, 260.0);
    let (left, right, top, bottom) = (80.0, 630.0, 12.0, 228.0);
    let plot_w = right - left;
    let plot_h = bottom - top;
    let best = days.iter().map(|d| d.sum).max().unwrap_or(0);
    let scale = nice_ceiling(best);
    let n = days.len().max(1) as f64;
    let slot = plot_w / n;
    // A gap between bars while there is room for one; touching bars when there is not.
    let bar_w = if slot >= 4.0 { slot * 0.7 } else { slot };
    let bars = days
        .iter()
        .enumerate()
        .filter(|(_, d)| d.sum > 0)
        .map(|(i, d)| {
            let h = (d.sum as f64 / scale as f64 * plot_h).max(1.0);
            Bar {
                x: round2(left + i as f64 * slot + (slot - bar_w) / 2.0),
                y: round2(bottom - h),
                width: round2(bar_w),
                height: round2(h),
                title: format!(
                    "{}: {} {}, {}",
                    long_date(d.date),
                    thousands(d.count),
                    if d.count == 1 { "payment" } else { "payments" },
                    money(d.sum)
                ),
            }
        })
        .collect();
    let ticks = [0, scale / 2, scale]
        .into_iter()
        .map(|amount| Tick {
            y: round2(bottom - amount as f64 / scale as f64 * plot_h),
            label: money_short(amount),
        })
        .collect();
    let mut labels = Vec::new();
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        if days.len() == 1 {
            labels.push(Label {
                x: round2(left + plot_w / 2.0),
                text: short_date(first.date),
                anchor: "middle",
            });
        } else {
            labels.push(Label {
                x: left,
                text: short_date(first.date),
                anchor: "start",
            });
            if days.len() > 2 {
                let mid = days.len() / 2;
                labels.push(Label {
                    x: round2(left + mid as f64 * slot + slot / 2.0),
                    text: short_date(days[mid].date),
                    anchor: "middle",
                });
            }
            labels.push(Label {
                x: right,
                text: short_date(last.date),
                anchor: "end",
            });
        }
    }
    Chart {
        width,
        height,
        left,
        right,
        top,
        bottom,
        bars,
        ticks,
        labels,
    }
}

/// A sentence describing the chart for people who cannot see it.
pub fn chart_description(days: &[Day]) -> String {
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return "No days to show.".into();
    };
    let total: i64 = days.iter().map(|d| d.sum).sum();
    let count: i64 = days.iter().map(|d| d.count).sum();
    let span = if days.len() == 1 {
        format!("1 day, {}", long_date(first.date))
    } else {
        format!(
            "{} days from {} to {}",
            days.len(),
            long_date(first.date),
            long_date(last.date)
        )
    };
    let best = days
        .iter()
        .filter(|d| d.sum > 0)
        .max_by_key(|d| (d.sum, std::cmp::Reverse(d.date)));
    match best {
        None => format!("Bar chart of {span}: no successful payments."),
        Some(b) => format!(
            "Bar chart of {span}: {} from {} successful {}. The highest day was {} with {}. The figures for every day are in the table below.",
            money(total),
            thousands(count),
            if count == 1 { "payment" } else { "payments" },
            long_date(b.date),
            money(b.sum),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};
    use time::Duration;

    fn london() -> Zone {
        Zone::named("Europe/London").unwrap()
    }

    #[test]
    fn periods_are_whole_local_days_ending_today() {
        let today = date!(2026 - 11 - 20);
        assert_eq!(Period::Today.days(today), (today, today));
        assert_eq!(
            Period::Yesterday.days(today),
            (date!(2026 - 11 - 19), date!(2026 - 11 - 19))
        );
        assert_eq!(
            Period::Last7Days.days(today),
            (date!(2026 - 11 - 14), today)
        );
        assert_eq!(
            Period::Last30Days.days(today),
            (date!(2026 - 10 - 22), today)
        );
        assert_eq!(
            Period::PreviousMonth.days(today),
            (date!(2026 - 10 - 01), date!(2026 - 10 - 31))
        );
        assert_eq!(
            Period::Last12Months.days(today),
            (date!(2025 - 11 - 21), today)
        );
    }

    #[test]
    fn periods_across_year_ends_and_leap_days() {
        assert_eq!(
            Period::PreviousMonth.days(date!(2026 - 01 - 01)),
            (date!(2025 - 12 - 01), date!(2025 - 12 - 31))
        );
        assert_eq!(
            Period::PreviousMonth.days(date!(2028 - 03 - 31)),
            (date!(2028 - 02 - 01), date!(2028 - 02 - 29))
        );
        assert_eq!(
            Period::Yesterday.days(date!(2026 - 01 - 01)),
            (date!(2025 - 12 - 31), date!(2025 - 12 - 31))
        );
        // A year back from 29 February is 28 February; the period starts the day after.
        assert_eq!(
            Period::Last12Months.days(date!(2028 - 02 - 29)),
            (date!(2027 - 03 - 01), date!(2028 - 02 - 29))
        );
        let (first, last) = Period::Last12Months.days(date!(2026 - 11 - 20));
        assert_eq!((last - first).whole_days() + 1, 365);
    }

    #[test]
    fn every_period_has_a_key_that_reads_back() {
        for p in Period::ALL {
            assert_eq!(Period::parse(p.key()), Some(p));
            assert!(!p.label().is_empty());
        }
        assert_eq!(Period::parse(" today "), Some(Period::Today));
        assert_eq!(Period::parse("forever"), None);
        assert_eq!(Period::parse("Today"), None);
    }

    #[test]
    fn spans_start_and_end_at_local_midnight() {
        // 09:00 UTC on 20 July is 10:00 in London (BST): today began at 23:00 UTC on the 19th.
        let s = Span::at(Period::Today, datetime!(2026-07-20 09:00 UTC), &london());
        assert_eq!(s.first, date!(2026 - 07 - 20));
        assert_eq!(s.from, datetime!(2026-07-19 23:00 UTC));
        assert_eq!(s.to, datetime!(2026-07-20 23:00 UTC));
        // 23:30 UTC on 19 July is already the 20th in London.
        let s = Span::at(Period::Today, datetime!(2026-07-19 23:30 UTC), &london());
        assert_eq!(s.first, date!(2026 - 07 - 20));
        // The previous month across the October clock change: 31 days, 745 hours.
        let s = Span::at(
            Period::PreviousMonth,
            datetime!(2026-11-20 09:00 UTC),
            &london(),
        );
        assert_eq!(s.from, datetime!(2026-09-30 23:00 UTC));
        assert_eq!(s.to, datetime!(2026-11-01 00:00 UTC));
        assert_eq!((s.to - s.from).whole_hours(), 31 * 24 + 1);
        let days = s.days(&london());
        assert_eq!(days.len(), 31);
        assert_eq!(days[0].1, store::to_micros(s.from));
        assert_eq!(days[30].2, store::to_micros(s.to));
        assert!(days.windows(2).all(|w| w[0].2 == w[1].1), "days meet");
        let hour = 3_600_000_000;
        // 25 October 2026: the clocks go back, so the day lasts 25 hours.
        assert_eq!(
            days[24],
            (
                date!(2026 - 10 - 25),
                store::to_micros(datetime!(2026-10-24 23:00 UTC)),
                store::to_micros(datetime!(2026-10-26 00:00 UTC))
            )
        );
        assert_eq!(days[24].2 - days[24].1, 25 * hour);
        assert_eq!(days[25].2 - days[25].1, 24 * hour);
    }

    #[test]
    fn choices_are_read_from_the_query() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let offered = [3, 1, 2];
        let (c, p) = choose(&[], &offered);
        assert_eq!(c.period, Period::Last30Days);
        assert_eq!(c.services, vec![3, 1, 2]);
        assert!(!c.narrowed && p.is_empty());

        let (c, p) = choose(
            &q(&[
                ("period", "today"),
                ("service", "2"),
                ("service", "3"),
                ("utm_source", "x"),
            ]),
            &offered,
        );
        assert_eq!(c.period, Period::Today);
        assert_eq!(c.services, vec![3, 2], "in the order offered");
        assert!(c.narrowed && p.is_empty(), "unknown parameters are ignored");

        let (c, p) = choose(&q(&[("period", "forever")]), &offered);
        assert_eq!(c.period, Period::DEFAULT);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].field, "period");
        assert_eq!(p[0].message, "Choose a period from the list");

        // A service the person does not hold is refused like one that does not exist.
        for bad in ["9", "abc", ""] {
            let (c, p) = choose(&q(&[("service", "1"), ("service", bad)]), &offered);
            assert_eq!(p.len(), 1, "{bad:?}");
            assert_eq!(p[0].field, "service");
            assert_eq!(c.services, vec![3, 1, 2], "falls back to all");
        }
        let (c, p) = choose(&q(&[("period", "")]), &offered);
        assert_eq!((c.period, p.len()), (Period::DEFAULT, 0));
    }

    #[test]
    fn dates_are_written_long_and_short() {
        assert_eq!(long_date(date!(2026 - 11 - 05)), "5 November 2026");
        assert_eq!(short_date(date!(2026 - 11 - 05)), "5 Nov");
    }

    #[test]
    fn the_chart_scale_is_round_and_covers_the_best_day() {
        assert_eq!(nice_ceiling(0), 100);
        assert_eq!(nice_ceiling(100), 100);
        assert_eq!(nice_ceiling(101), 200);
        assert_eq!(nice_ceiling(34_000), 50_000);
        assert_eq!(nice_ceiling(50_001), 100_000);
        assert_eq!(nice_ceiling(i64::MAX), i64::MAX);
    }

    #[test]
    fn the_chart_lays_out_one_bar_per_day_with_money() {
        let days = vec![
            Day {
                date: date!(2026 - 11 - 01),
                count: 2,
                sum: 20_000,
            },
            Day {
                date: date!(2026 - 11 - 02),
                count: 0,
                sum: 0,
            },
            Day {
                date: date!(2026 - 11 - 03),
                count: 1,
                sum: 50_000,
            },
        ];
        let c = chart(&days);
        assert_eq!(c.bars.len(), 2, "no bar for a day without payments");
        let full = c.bottom - c.top;
        assert_eq!(
            c.bars[1].height, full,
            "the best day reaches the top (£500)"
        );
        assert!((c.bars[0].height - full * 0.4).abs() < 0.01);
        assert!(c.bars.iter().all(|b| b.y + b.height <= c.bottom + 0.01));
        assert!(c.bars[0].x < c.bars[1].x && c.bars[1].x + c.bars[1].width <= c.right);
        assert_eq!(c.bars[0].title, "1 November 2026: 2 payments, £200.00");
        let labels: Vec<&str> = c.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["£0", "£250", "£500"]);
        let dates: Vec<&str> = c.labels.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(dates, ["1 Nov", "2 Nov", "3 Nov"]);
        let text = chart_description(&days);
        assert!(text.contains("3 days from 1 November 2026 to 3 November 2026"));
        assert!(text.contains("£700.00 from 3 successful payments"));
        assert!(text.contains("3 November 2026 with £500.00"));

        // A year of days still fits, and an empty period draws only the axes.
        let year: Vec<Day> = (0..365)
            .map(|i| Day {
                date: date!(2025 - 11 - 21) + Duration::days(i),
                count: 1,
                sum: 100 + i,
            })
            .collect();
        let c = chart(&year);
        assert_eq!(c.bars.len(), 365);
        assert!(c.bars.last().unwrap().x + c.bars.last().unwrap().width <= c.right + 0.01);
        let empty = chart(
            &days
                .iter()
                .map(|d| Day { sum: 0, ..*d })
                .collect::<Vec<_>>(),
        );
        assert!(empty.bars.is_empty());
        assert_eq!(
            chart_description(&[Day {
                date: date!(2026 - 11 - 01),
                count: 0,
                sum: 0
            }]),
            "Bar chart of 1 day, 1 November 2026: no successful payments."
        );
    }
}
