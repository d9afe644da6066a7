//! Dates and times as staff type them, and the date range of a search form (a period, or
//! from and to dates and times in the service's zone). Pure: no I/O.

use time::{Date, Month, OffsetDateTime, Time};

use super::filters::{DateField, Problem, Range};
use super::form::Form;
use crate::timezone::{Period, Zone};

/// A date as staff type it: 27/3/2026, 27-03-2026 or 2026-03-27.
pub fn parse_date(raw: &str) -> Option<Date> {
    let t = raw.trim();
    let parts: Vec<&str> = t
        .split(['/', '-', '.', ' '])
        .filter(|p| !p.is_empty())
        .collect();
    if parts.len() != 3 || !parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let (y, m, d) = if parts[0].len() == 4 {
        (parts[0], parts[1], parts[2])
    } else if parts[2].len() == 4 {
        (parts[2], parts[1], parts[0])
    } else {
        return None;
    };
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// A time of day: 14:30, 2:30pm, 9am.
pub fn parse_time(raw: &str) -> Option<Time> {
    let t = raw.trim().to_ascii_lowercase().replace(' ', "");
    let (t, pm) = if let Some(x) = t.strip_suffix("pm") {
        (x.to_string(), Some(true))
    } else if let Some(x) = t.strip_suffix("am") {
        (x.to_string(), Some(false))
    } else {
        (t, None)
    };
    let (h, m) = match t.split_once([':', '.']) {
        Some((h, m)) => (h, m),
        None => (t.as_str(), "0"),
    };
    let mut h: u8 = h.parse().ok()?;
    let m: u8 = m.parse().ok()?;
    if let Some(pm) = pm {
        if !(1..=12).contains(&h) {
            return None;
        }
        h = match (h, pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
    }
    Time::from_hms(h, m, 0).ok()
}

/// One end of a range as typed: a day, and a time on it when one was given.
type DayAndTime = Option<(Date, Option<Time>)>;

pub(super) fn range(
    problems: &mut Vec<Problem>,
    form: &Form,
    now: OffsetDateTime,
    zone: Zone,
) -> Option<Range> {
    let field = match form.date_field.as_str() {
        "" | "created" => DateField::Created,
        "settled" => DateField::Settled,
        _ => {
            problems.push(("date_field", "Choose which date to search by".into()));
            DateField::Created
        }
    };
    let custom = [
        &form.from_date,
        &form.to_date,
        &form.from_time,
        &form.to_time,
    ]
    .iter()
    .any(|v| !v.trim().is_empty());
    let before = problems.len();
    let (from, to): (DayAndTime, DayAndTime) = if custom {
        let from_time = optional_time(problems, "from_time", "From time", &form.from_time);
        let to_time = optional_time(problems, "to_time", "To time", &form.to_time);
        let from = optional_date(problems, "from_date", "From date", &form.from_date);
        let to = optional_date(problems, "to_date", "To date", &form.to_date);
        if from.is_none() && from_time.is_some() && form.from_date.trim().is_empty() {
            problems.push(("from_date", "Enter the date the from time is on".into()));
        }
        if to.is_none() && to_time.is_some() && form.to_date.trim().is_empty() {
            problems.push(("to_date", "Enter the date the to time is on".into()));
        }
        (from.map(|d| (d, from_time)), to.map(|d| (d, to_time)))
    } else {
        // No period is all time.
        let period = match form.period.trim() {
            "" | "all" => None,
            p => match Period::parse(p) {
                Some(p) => Some(p),
                None => {
                    problems.push(("period", "Choose a date range from the list".into()));
                    None
                }
            },
        };
        match period.map(|p| p.days(zone.date_of(now))) {
            Some((first, last)) => (Some((first, None)), Some((last, None))),
            None => (None, None),
        }
    };
    if problems.len() > before || (from.is_none() && to.is_none()) {
        return None;
    }
    match field {
        DateField::Created => {
            let lo = from.map(|(d, t)| zone.instant(d, t));
            // "To" is inclusive: to the end of the day, or of the minute given.
            let hi = to.map(|(d, t)| match t {
                Some(t) => zone.instant(d, Some(t)) + time::Duration::minutes(1),
                None => zone.start_of(d + time::Duration::days(1)),
            });
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if hi <= lo {
                    problems.push((
                        "to_date",
                        "To date must be the same as or after the from date".into(),
                    ));
                    return None;
                }
            }
            Some(Range::Created(
                lo.map(crate::store::to_micros),
                hi.map(crate::store::to_micros),
            ))
        }
        DateField::Settled => {
            let lo = from.map(|(d, _)| d);
            let hi = to.map(|(d, _)| d);
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if hi < lo {
                    problems.push((
                        "to_date",
                        "To date must be the same as or after the from date".into(),
                    ));
                    return None;
                }
            }
            Some(Range::Settled(lo.map(iso), hi.map(iso)))
        }
    }
}

fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn optional_date(
    problems: &mut Vec<Problem>,
    field: &'static str,
    label: &str,
    raw: &str,
) -> Option<Date> {
    if raw.trim().is_empty() {
        return None;
    }
    let d = parse_date(raw);
    if d.is_none() {
        problems.push((
            field,
            format!("{label} must be a real date, like 27/3/2026"),
        ));
    }
    d
}

fn optional_time(
    problems: &mut Vec<Problem>,
    field: &'static str,
    label: &str,
    raw: &str,
) -> Option<Time> {
    if raw.trim().is_empty() {
        return None;
    }
    let t = parse_time(raw);
    if t.is_none() {
        problems.push((field, format!("{label} must be a time, like 14:30")));
    }
    t
}
