//! What an export is of, read from a form (or the command line) and checked: services, a
//! range of days on the created or the settlement date, the time zone days are counted in,
//! statuses, and which rows are included (payments, refunds, disputes).

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use crate::search::query::{parse_date, StatusGroup, FIELD_MAX};
use crate::store::exports::{DateBasis, Range};
use crate::timezone::Zone;

/// An export's filter. Kept as JSON with a background export and in its audit entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Service slugs, in the order given.
    pub services: Vec<String>,
    pub by: DateBasis,
    /// First and last day, inclusive (`YYYY-MM-DD`).
    pub from: String,
    pub to: String,
    pub time_zone: String,
    /// Status group names; empty: every status.
    pub statuses: Vec<String>,
    pub payments: bool,
    pub refunds: bool,
    /// Dispute rows (absent from filters kept before disputes were exported).
    #[serde(default)]
    pub disputes: bool,
}

/// A form's fields as posted, before checking.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub services: Vec<String>,
    pub by: String,
    pub from: String,
    pub to: String,
    pub time_zone: String,
    pub statuses: Vec<String>,
    pub include: Vec<String>,
}

/// A problem with one field, for the error summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub message: String,
}

fn problem(field: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        field,
        message: message.into(),
    }
}

/// Check a form. Services are checked against what the person may export elsewhere; here
/// only that some were chosen.
pub fn parse(f: &Fields) -> Result<Filter, Vec<Problem>> {
    let mut problems = Vec::new();
    let too_long = |s: &str| s.chars().count() > FIELD_MAX;
    let mut services: Vec<String> = Vec::new();
    for s in &f.services {
        let s = s.trim();
        if !s.is_empty() && !too_long(s) && !services.iter().any(|x| x == s) {
            services.push(s.to_string());
        }
    }
    if services.is_empty() {
        problems.push(problem("services", "Select at least one service"));
    }
    let by = match f.by.trim() {
        "" | "created" => DateBasis::Created,
        "settled" => DateBasis::Settled,
        _ => {
            problems.push(problem(
                "by",
                "Select whether the dates are payment dates or settlement dates",
            ));
            DateBasis::Created
        }
    };
    let mut day = |field: &'static str, raw: &str, which: &str| -> Option<Date> {
        let raw = raw.trim();
        if raw.is_empty() {
            problems.push(problem(field, format!("Enter the {which} date")));
            return None;
        }
        if too_long(raw) {
            problems.push(problem(field, format!("The {which} date is too long")));
            return None;
        }
        let d = parse_date(raw);
        if d.is_none() {
            problems.push(problem(
                field,
                format!("The {which} date must be a real date, like 31/10/2026"),
            ));
        }
        d
    };
    let from = day("from", &f.from, "start");
    let to = day("to", &f.to, "end");
    if let (Some(a), Some(b)) = (from, to) {
        if b < a {
            problems.push(problem(
                "to",
                "The end date must be the same as or after the start date",
            ));
        }
    }
    let zone_name = f.time_zone.trim();
    let zone_name = if zone_name.is_empty() {
        "Europe/London"
    } else {
        zone_name
    };
    let time_zone = match Zone::named(zone_name) {
        Some(z) if !too_long(zone_name) => z.name().to_string(),
        _ => {
            problems.push(problem(
                "time_zone",
                "Enter a time zone from the list, like Europe/London",
            ));
            String::new()
        }
    };
    let mut statuses: Vec<String> = Vec::new();
    for s in &f.statuses {
        match StatusGroup::parse(s.trim()) {
            Some(g) => {
                if !statuses.iter().any(|x| x == g.name()) {
                    statuses.push(g.name().to_string());
                }
            }
            None => {
                problems.push(problem("statuses", "Select statuses from the list"));
                break;
            }
        }
    }
    let payments = f.include.iter().any(|i| i == "payments");
    let refunds = f.include.iter().any(|i| i == "refunds");
    let disputes = f.include.iter().any(|i| i == "disputes");
    let known = |i: &String| matches!(i.as_str(), "payments" | "refunds" | "disputes");
    if !f.include.iter().all(known) || !(payments || refunds || disputes) {
        problems.push(problem(
            "include",
            "Select what to include: payments, refunds or disputes",
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(problems);
    };
    Ok(Filter {
        services,
        by,
        from: iso(from),
        to: iso(to),
        time_zone,
        statuses,
        payments,
        refunds,
        disputes,
    })
}

/// `YYYY-MM-DD`.
pub fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A `YYYY-MM-DD` date back.
pub fn from_iso(s: &str) -> Option<Date> {
    let mut parts = s.splitn(3, '-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next()?.parse().ok()?;
    let d: u8 = parts.next()?.parse().ok()?;
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
}

impl Filter {
    pub fn zone(&self) -> Zone {
        Zone::named(&self.time_zone).unwrap_or_else(Zone::utc)
    }

    /// The range the rows are read over: local days in the filter's time zone, from the
    /// start of the first day to the start of the day after the last; or settlement dates
    /// as the platform gives them.
    pub fn range(&self) -> Range {
        match self.by {
            DateBasis::Settled => Range::Settled {
                from: self.from.clone(),
                to: self.to.clone(),
            },
            DateBasis::Created => {
                let zone = self.zone();
                let from = from_iso(&self.from).unwrap_or(Date::MIN);
                let to = from_iso(&self.to).unwrap_or(Date::MIN);
                let after = to.next_day().unwrap_or(to);
                Range::Created {
                    from: crate::store::to_micros(zone.start_of(from)),
                    to: crate::store::to_micros(zone.start_of(after)),
                }
            }
        }
    }

    /// The (status, code) pairs payments must match; empty: any.
    pub fn status_members(&self) -> Vec<(&'static str, Option<&'static str>)> {
        self.statuses
            .iter()
            .filter_map(|s| StatusGroup::parse(s))
            .flat_map(|g| g.members().iter().copied())
            .collect()
    }

    /// A file name for the export: `paydesk-payments-2026-10-01-to-2026-10-31.csv`.
    pub fn file_stem(&self) -> String {
        let what = match (self.payments, self.refunds, self.disputes) {
            (true, true, false) => "payments-and-refunds",
            (true, false, false) => "payments",
            (false, true, false) => "refunds",
            (false, false, true) => "disputes",
            _ => "transactions",
        };
        let by = match self.by {
            DateBasis::Created => "",
            DateBasis::Settled => "settled-",
        };
        format!("paydesk-{what}-{by}{}-to-{}", self.from, self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields {
            services: vec!["parking".into()],
            by: "created".into(),
            from: "1/10/2026".into(),
            to: "31/10/2026".into(),
            time_zone: "Europe/London".into(),
            statuses: vec![],
            include: vec!["payments".into(), "refunds".into()],
        }
    }

    #[test]
    fn a_good_form() {
        let f = parse(&fields()).unwrap();
        assert_eq!(f.from, "2026-10-01");
        assert_eq!(f.to, "2026-10-31");
        assert!(f.payments && f.refunds);
        assert_eq!(
            f.file_stem(),
            "paydesk-payments-and-refunds-2026-10-01-to-2026-10-31"
        );
    }

    #[test]
    fn days_are_local_days() {
        let f = parse(&fields()).unwrap();
        // October 2026 in London: 1 October starts at 23:00 UTC the day before (BST);
        // 1 November starts at midnight UTC (GMT).
        assert_eq!(
            f.range(),
            Range::Created {
                from: 1_790_809_200_000_000,
                to: 1_793_491_200_000_000,
            }
        );
        let mut utc = fields();
        utc.time_zone = "UTC".into();
        let Range::Created { from, .. } = parse(&utc).unwrap().range() else {
            panic!("created range")
        };
        assert_eq!(from, 1_790_812_800_000_000);
    }

    #[test]
    fn problems_are_named_by_field() {
        let f = Fields {
            services: vec![],
            by: "sometimes".into(),
            from: "31/02/2026".into(),
            to: "".into(),
            time_zone: "Mars/Olympus".into(),
            statuses: vec!["nearly".into()],
            include: vec![],
        };
        let problems = parse(&f).unwrap_err();
        let named: Vec<&str> = problems.iter().map(|p| p.field).collect();
        assert_eq!(
            named,
            [
                "services",
                "by",
                "from",
                "to",
                "time_zone",
                "statuses",
                "include"
            ]
        );
        let mut backwards = fields();
        backwards.from = "2/10/2026".into();
        backwards.to = "1/10/2026".into();
        assert_eq!(parse(&backwards).unwrap_err()[0].field, "to");
    }

    #[test]
    fn statuses_expand_to_their_members() {
        let mut f = fields();
        f.statuses = vec!["cancelled".into(), "success".into(), "success".into()];
        let filter = parse(&f).unwrap();
        assert_eq!(filter.statuses, ["cancelled", "success"]);
        assert_eq!(
            filter.status_members(),
            [
                ("failed", Some("P0030")),
                ("cancelled", None),
                ("success", None)
            ]
        );
    }
}
