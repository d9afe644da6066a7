//! The filters of the list of refund requests as they arrive in the page's address
//! (`state=…&service=…&from=…&to=…&mine=yes&older_than=…`), read into what the list asks the
//! database, or into problems a person can fix. Pure: no I/O.

use time::Date;

use super::rules::State;
use crate::search::query::parse_date;
use crate::timezone::Zone;

/// The states a person can tick, in the order the form shows them. `Submitted` also finds
/// requests being sent to the platform at this moment (`Submitting`).
pub const STATE_CHOICES: [State; 7] = [
    State::AwaitingApproval,
    State::Approved,
    State::Submitted,
    State::Succeeded,
    State::Failed,
    State::Rejected,
    State::Expired,
];

/// The stored states a ticked state finds.
pub fn states_found_by(choice: State) -> &'static [State] {
    match choice {
        State::AwaitingApproval => &[State::AwaitingApproval],
        State::Approved => &[State::Approved],
        State::Submitting | State::Submitted => &[State::Submitting, State::Submitted],
        State::Succeeded => &[State::Succeeded],
        State::Failed => &[State::Failed],
        State::Rejected => &[State::Rejected],
        State::Expired => &[State::Expired],
    }
}

/// The longest value kept from the address: enough for any real value, and a bound on what
/// the page echoes back.
const KEEP: usize = 100;

/// The filters as typed, kept to show the form again and to write the addresses of the
/// other pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub states: Vec<String>,
    /// A service's slug; empty for all of the person's services.
    pub service: String,
    pub from: String,
    pub to: String,
    /// "yes" for only the person's own requests.
    pub mine: String,
    pub older_than: String,
    pub newer_than: String,
}

impl Form {
    /// The form from the page's query pairs. Unknown names are ignored; a name given twice
    /// keeps its first value (but every `state`).
    pub fn from_pairs(pairs: &[(String, String)]) -> Form {
        let mut f = Form::default();
        let kept = |v: &str| v.trim().chars().take(KEEP).collect::<String>();
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "state" => {
                    let v = kept(v);
                    if !v.is_empty() && !f.states.contains(&v) && f.states.len() < 20 {
                        f.states.push(v);
                    }
                    continue;
                }
                "service" => &mut f.service,
                "from" => &mut f.from,
                "to" => &mut f.to,
                "mine" => &mut f.mine,
                "older_than" => &mut f.older_than,
                "newer_than" => &mut f.newer_than,
                _ => continue,
            };
            if slot.is_empty() {
                *slot = kept(v);
            }
        }
        f
    }

    /// Whether any filter is set (a page of the unfiltered list is not).
    pub fn is_filtered(&self) -> bool {
        !(self.states.is_empty()
            && self.service.is_empty()
            && self.from.is_empty()
            && self.to.is_empty()
            && self.mine.is_empty())
    }

    /// The query of these filters on the page at `cursor` (`("older_than", c)` or
    /// `("newer_than", c)`), or on the first page.
    pub fn query(&self, cursor: Option<(&str, Cursor)>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for s in &self.states {
            q.append_pair("state", s);
        }
        for (k, v) in [
            ("service", &self.service),
            ("from", &self.from),
            ("to", &self.to),
            ("mine", &self.mine),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        if let Some((k, c)) = cursor {
            q.append_pair(k, &c.encode());
        }
        q.finish()
    }
}

/// A place in the list: a request's (requested_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: i64,
    pub id: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        format!("{}.{}", self.at, self.id)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let (at, id) = s.split_once('.')?;
        Some(Cursor {
            at: at.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

/// Which page of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Newest,
    OlderThan(Cursor),
    NewerThan(Cursor),
}

/// A filter the list could not use, for the error summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The id of the field the message links to.
    pub field: &'static str,
    pub message: String,
}

/// What the list asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters {
    /// Stored states; empty for every state.
    pub states: Vec<State>,
    /// One service (its id), or None for all the person's services.
    pub service: Option<i64>,
    /// Asked for at or after (UTC microseconds).
    pub from: Option<i64>,
    /// Asked for before (UTC microseconds).
    pub to: Option<i64>,
    pub only_mine: bool,
    pub page: Page,
}

/// Read `form` against the services on offer (id, slug), with dates as days in `zone`.
pub fn read(form: &Form, offered: &[(i64, &str)], zone: Zone) -> Result<Filters, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut states = Vec::new();
    for raw in &form.states {
        match State::parse(raw).filter(|s| STATE_CHOICES.contains(s)) {
            Some(s) => {
                for found in states_found_by(s) {
                    if !states.contains(found) {
                        states.push(*found);
                    }
                }
            }
            None => {
                problems.push(Problem {
                    field: "state",
                    message: "Choose states from the list".into(),
                });
                break;
            }
        }
    }
    let service = if form.service.is_empty() {
        None
    } else {
        let found = offered.iter().find(|(_, slug)| *slug == form.service);
        if found.is_none() {
            problems.push(Problem {
                field: "service",
                message: "Choose a service from the list".into(),
            });
        }
        found.map(|(id, _)| *id)
    };
    let day = |raw: &str, field: &'static str, which: &str, problems: &mut Vec<Problem>| {
        if raw.is_empty() {
            return None;
        }
        let d = parse_date(raw);
        if d.is_none() {
            problems.push(Problem {
                field,
                message: format!("Enter the {which} date as a real date, like 27/3/2026"),
            });
        }
        d
    };
    let from = day(&form.from, "from", "from", &mut problems);
    let to = day(&form.to, "to", "to", &mut problems);
    if let (Some(a), Some(b)) = (from, to) {
        if b < a {
            problems.push(Problem {
                field: "to",
                message: "The to date must be the same as or after the from date".into(),
            });
        }
    }
    let only_mine = match form.mine.as_str() {
        "" => false,
        "yes" => true,
        _ => {
            problems.push(Problem {
                field: "mine",
                message: "Tick the box or leave it empty".into(),
            });
            false
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    // A place in the list only comes from the list's own links; one that cannot be read
    // shows the newest requests.
    let page = match (
        Cursor::decode(&form.older_than),
        Cursor::decode(&form.newer_than),
    ) {
        (Some(c), _) => Page::OlderThan(c),
        (None, Some(c)) => Page::NewerThan(c),
        (None, None) => Page::Newest,
    };
    let start = |d: Date| crate::store::to_micros(zone.start_of(d));
    Ok(Filters {
        states,
        service,
        from: from.map(start),
        // The to date includes its whole day.
        to: to.and_then(|d| d.next_day()).map(start),
        only_mine,
        page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    }

    const OFFERED: [(i64, &str); 2] = [(4, "parking"), (5, "permits")];

    #[test]
    fn filters_are_read_from_the_address_and_written_back() {
        let form = Form::from_pairs(&pairs(
            "state=failed&state=submitted&service=permits&from=1/11/2026&to=2026-11-02&mine=yes&x=1",
        ));
        assert!(form.is_filtered());
        let zone = Zone::named("Europe/London").unwrap();
        let f = read(&form, &OFFERED, zone).unwrap();
        assert_eq!(
            f.states,
            vec![State::Failed, State::Submitting, State::Submitted]
        );
        assert_eq!(f.service, Some(5));
        let day = |d: Date| crate::store::to_micros(zone.start_of(d));
        assert_eq!(f.from, Some(day(time::macros::date!(2026 - 11 - 01))));
        assert_eq!(f.to, Some(day(time::macros::date!(2026 - 11 - 03))));
        assert!(f.only_mine);
        assert_eq!(f.page, Page::Newest);
        let c = Cursor { at: 1_700, id: 3 };
        let again = Form::from_pairs(&pairs(&form.query(Some(("older_than", c)))));
        assert_eq!(
            read(&again, &OFFERED, zone).unwrap().page,
            Page::OlderThan(c)
        );
        assert_eq!(
            Form {
                older_than: String::new(),
                ..again
            },
            form
        );
        assert!(!Form::from_pairs(&pairs("older_than=1.2")).is_filtered());
    }

    #[test]
    fn what_cannot_be_read_is_a_problem_for_its_field() {
        let zone = Zone::utc();
        let fields = |q: &str| -> Vec<&'static str> {
            match read(&Form::from_pairs(&pairs(q)), &OFFERED, zone) {
                Ok(_) => vec![],
                Err(p) => p.into_iter().map(|p| p.field).collect(),
            }
        };
        assert_eq!(fields("state=paid"), vec!["state"]);
        assert_eq!(fields("state=submitting"), vec!["state"]);
        assert_eq!(
            fields("service=elsewhere&from=31/2/2026"),
            vec!["service", "from"]
        );
        assert_eq!(fields("from=2/11/2026&to=1/11/2026"), vec!["to"]);
        assert_eq!(fields("mine=please"), vec!["mine"]);
        assert!(fields("older_than=nonsense&state=").is_empty());
        let f = read(&Form::from_pairs(&pairs("newer_than=9.8")), &OFFERED, zone).unwrap();
        assert_eq!(f.page, Page::NewerThan(Cursor { at: 9, id: 8 }));
    }
}
