//! Local dates in a named time zone (IANA, e.g. Europe/London). paydesk stores instants in
//! UTC; people think in their own days. "Today", "previous month" and a day's totals on the
//! dashboard are local days, turned into UTC instants here. The zone database is compiled in
//! (chrono-tz), so a machine without /usr/share/zoneinfo answers the same.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use time::{Date, Duration, Month, OffsetDateTime, Time};

/// A time zone paydesk knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(chrono_tz::Tz);

impl Zone {
    /// The zone called `name`, if the zone database has it.
    pub fn named(name: &str) -> Option<Zone> {
        name.parse::<chrono_tz::Tz>().ok().map(Zone)
    }

    pub fn utc() -> Zone {
        Zone(chrono_tz::UTC)
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The local calendar date at `instant`.
    pub fn date_of(&self, instant: OffsetDateTime) -> Date {
        let offset = self.offset_at(instant);
        instant.to_offset(offset).date()
    }

    /// The UTC offset in force at `instant`.
    pub fn offset_at(&self, instant: OffsetDateTime) -> time::UtcOffset {
        let utc = chrono::DateTime::from_timestamp(instant.unix_timestamp(), 0)
            .unwrap_or_default()
            .naive_utc();
        let seconds = self
            .0
            .offset_from_utc_datetime(&utc)
            .fix()
            .local_minus_utc();
        time::UtcOffset::from_whole_seconds(seconds).unwrap_or(time::UtcOffset::UTC)
    }

    /// The instant the local clock first shows `date` at `at` (00:00 when None). A local time
    /// that a clock change skips (01:30 on the day clocks go forward) is read as the first
    /// instant after the gap; a time that happens twice is its first occurrence.
    pub fn instant(&self, date: Date, at: Option<Time>) -> OffsetDateTime {
        let at = at.unwrap_or(Time::MIDNIGHT);
        let Some(naive) = to_naive(date, at) else {
            return date.with_time(at).assume_utc();
        };
        let mut probe = naive;
        // A gap is at most a few hours; step forward a minute at a time until the time exists.
        for _ in 0..(24 * 60) {
            if let Some(local) = self.0.from_local_datetime(&probe).earliest() {
                return OffsetDateTime::from_unix_timestamp(local.timestamp())
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            }
            probe += chrono::Duration::minutes(1);
        }
        date.with_time(at).assume_utc()
    }

    /// The start of local `date`.
    pub fn start_of(&self, date: Date) -> OffsetDateTime {
        self.instant(date, None)
    }
}

fn to_naive(date: Date, at: Time) -> Option<NaiveDateTime> {
    let d = NaiveDate::from_ymd_opt(
        date.year(),
        u8::from(date.month()) as u32,
        date.day() as u32,
    )?;
    let t = NaiveTime::from_hms_opt(at.hour() as u32, at.minute() as u32, at.second() as u32)?;
    Some(d.and_time(t))
}

/// A period of local days ending today (or, for the previous month, at its end), as the
/// dashboard and the payments search offer them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Today,
    Yesterday,
    Last7Days,
    Last30Days,
    PreviousMonth,
    Last12Months,
}

impl Period {
    pub const ALL: [Period; 6] = [
        Period::Today,
        Period::Yesterday,
        Period::Last7Days,
        Period::Last30Days,
        Period::PreviousMonth,
        Period::Last12Months,
    ];

    /// What a page shows when nobody chose.
    pub const DEFAULT: Period = Period::Last30Days;

    /// The value in the page's address (`?period=…`).
    pub fn key(self) -> &'static str {
        match self {
            Period::Today => "today",
            Period::Yesterday => "yesterday",
            Period::Last7Days => "7-days",
            Period::Last30Days => "30-days",
            Period::PreviousMonth => "previous-month",
            Period::Last12Months => "12-months",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Period::Today => "Today",
            Period::Yesterday => "Yesterday",
            Period::Last7Days => "Last 7 days",
            Period::Last30Days => "Last 30 days",
            Period::PreviousMonth => "Previous month",
            Period::Last12Months => "Last 12 months",
        }
    }

    pub fn parse(value: &str) -> Option<Period> {
        let value = value.trim();
        Period::ALL.into_iter().find(|p| p.key() == value)
    }

    /// The first and last local days (both included) of the period, for someone whose
    /// local date is `today`. "Last N days" include today; "last 12 months" starts the day
    /// after the same date a year ago.
    pub fn days(self, today: Date) -> (Date, Date) {
        let back = |n: i64| today.checked_sub(Duration::days(n)).unwrap_or(today);
        match self {
            Period::Today => (today, today),
            Period::Yesterday => (back(1), back(1)),
            Period::Last7Days => (back(6), today),
            Period::Last30Days => (back(29), today),
            Period::PreviousMonth => {
                let first = first_of_previous_month(today);
                let this_month = first_of_month(today);
                (first, this_month.previous_day().unwrap_or(first))
            }
            Period::Last12Months => {
                let start = a_year_before(today);
                (start.next_day().unwrap_or(start), today)
            }
        }
    }
}

/// The first day of the month before the one `date` is in.
pub fn first_of_previous_month(date: Date) -> Date {
    let (year, month) = match date.month() {
        Month::January => (date.year() - 1, Month::December),
        m => (date.year(), m.previous()),
    };
    Date::from_calendar_date(year, month, 1).unwrap_or(date)
}

/// The first day of the month `date` is in.
pub fn first_of_month(date: Date) -> Date {
    date.replace_day(1).unwrap_or(date)
}

/// The same day a year earlier (28 February for 29 February).
pub fn a_year_before(date: Date) -> Date {
    Date::from_calendar_date(date.year() - 1, date.month(), date.day())
        .or_else(|_| Date::from_calendar_date(date.year() - 1, date.month(), 28))
        .unwrap_or(date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime, time};

    #[test]
    fn london_days_start_at_local_midnight() {
        let london = Zone::named("Europe/London").unwrap();
        // Winter: GMT.
        assert_eq!(
            london.start_of(date!(2026 - 01 - 15)),
            datetime!(2026-01-15 00:00 UTC)
        );
        // Summer: BST, so the day starts at 23:00 UTC the evening before.
        assert_eq!(
            london.start_of(date!(2026 - 07 - 15)),
            datetime!(2026-07-14 23:00 UTC)
        );
        assert_eq!(
            london.date_of(datetime!(2026-07-14 23:30 UTC)),
            date!(2026 - 07 - 15)
        );
        assert_eq!(
            london.date_of(datetime!(2026-01-14 23:30 UTC)),
            date!(2026 - 01 - 14)
        );
    }

    #[test]
    fn clock_changes_neither_lose_nor_repeat_a_time() {
        let london = Zone::named("Europe/London").unwrap();
        // 29 March 2026: 01:00 GMT becomes 02:00 BST; 01:30 does not exist.
        assert_eq!(
            london.instant(date!(2026 - 03 - 29), Some(time!(01:30))),
            datetime!(2026-03-29 01:00 UTC)
        );
        // 25 October 2026: 01:30 happens twice; the first is 00:30 UTC.
        assert_eq!(
            london.instant(date!(2026 - 10 - 25), Some(time!(01:30))),
            datetime!(2026-10-25 00:30 UTC)
        );
    }

    #[test]
    fn names_are_checked_against_the_zone_database() {
        assert!(Zone::named("Australia/Sydney").is_some());
        assert!(Zone::named("UTC").is_some());
        assert!(Zone::named("Europe/Atlantis").is_none());
        assert!(Zone::named("").is_none());
    }

    #[test]
    fn calendar_steps() {
        assert_eq!(
            first_of_previous_month(date!(2026 - 01 - 31)),
            date!(2025 - 12 - 01)
        );
        assert_eq!(
            first_of_previous_month(date!(2026 - 03 - 31)),
            date!(2026 - 02 - 01)
        );
        assert_eq!(first_of_month(date!(2026 - 03 - 31)), date!(2026 - 03 - 01));
        assert_eq!(a_year_before(date!(2028 - 02 - 29)), date!(2027 - 02 - 28));
    }
}
