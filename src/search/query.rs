//! The payments page's URL read into a `Search`. Every filter lives in the query string, so a
//! search is a bookmark and the back button returns to it. Unknown parameters are ignored;
//! each bad value gets a message naming the field, and the form is shown again as typed.
//! Pure: no I/O.

use serde::Serialize;
use time::{Date, Month, OffsetDateTime, Time};

use crate::money;
pub use crate::timezone::Period;
use crate::timezone::Zone;

/// The longest value any one field takes; longer is refused with a message, not cut.
pub const FIELD_MAX: usize = 200;
/// Results on a page.
pub const PAGE_SIZE: usize = 50;
/// Counting stops here: "more than 10,000".
pub const COUNT_CAP: i64 = 10_000;

/// The form as typed, for showing it again and for building links (pages, sorting).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Form {
    pub q: String,
    pub services: Vec<String>,
    pub reference: String,
    pub reference_match: String,
    pub email: String,
    pub cardholder: String,
    pub last4: String,
    pub first6: String,
    pub brand: String,
    pub statuses: Vec<String>,
    pub period: String,
    pub date_field: String,
    pub from_date: String,
    pub from_time: String,
    pub to_date: String,
    pub to_time: String,
    pub min_amount: String,
    pub max_amount: String,
    pub meta_key: String,
    pub meta_value: String,
    pub case_reference: String,
    pub attention: bool,
    pub sort: String,
    pub after: String,
    pub before: String,
}

impl Form {
    /// Read a raw query string (without the `?`). Unknown names are ignored; a repeated
    /// single-valued name keeps its last value.
    pub fn from_query(raw: &str) -> Form {
        let mut f = Form::default();
        for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let v = value.into_owned();
            match name.as_ref() {
                "q" => f.q = v,
                "service" => push_nonempty(&mut f.services, v),
                "reference" => f.reference = v,
                "reference_match" => f.reference_match = v,
                "email" => f.email = v,
                "cardholder" => f.cardholder = v,
                "last4" => f.last4 = v,
                "first6" => f.first6 = v,
                "brand" => f.brand = v,
                "status" => push_nonempty(&mut f.statuses, v),
                "period" => f.period = v,
                "date_field" => f.date_field = v,
                "from_date" => f.from_date = v,
                "from_time" => f.from_time = v,
                "to_date" => f.to_date = v,
                "to_time" => f.to_time = v,
                "min_amount" => f.min_amount = v,
                "max_amount" => f.max_amount = v,
                "meta_key" => f.meta_key = v,
                "meta_value" => f.meta_value = v,
                "case_reference" => f.case_reference = v,
                "attention" => f.attention = matches!(v.as_str(), "yes" | "true" | "on" | "1"),
                "sort" => f.sort = v,
                "after" => f.after = v,
                "before" => f.before = v,
                _ => {}
            }
        }
        f
    }

    /// The query string for this form (without page cursors unless set), for links.
    pub fn to_query(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        let mut one = |name: &str, value: &str| {
            if !value.is_empty() {
                s.append_pair(name, value);
            }
        };
        one("q", &self.q);
        for v in &self.services {
            one("service", v);
        }
        one("reference", &self.reference);
        one("reference_match", &self.reference_match);
        one("email", &self.email);
        one("cardholder", &self.cardholder);
        one("last4", &self.last4);
        one("first6", &self.first6);
        one("brand", &self.brand);
        for v in &self.statuses {
            one("status", v);
        }
        one("period", &self.period);
        one("date_field", &self.date_field);
        one("from_date", &self.from_date);
        one("from_time", &self.from_time);
        one("to_date", &self.to_date);
        one("to_time", &self.to_time);
        one("min_amount", &self.min_amount);
        one("max_amount", &self.max_amount);
        one("meta_key", &self.meta_key);
        one("meta_value", &self.meta_value);
        one("case_reference", &self.case_reference);
        one("attention", if self.attention { "yes" } else { "" });
        one("sort", &self.sort);
        one("after", &self.after);
        one("before", &self.before);
        s.finish()
    }

    /// The same search without a page position (the first page).
    pub fn first_page(&self) -> Form {
        Form {
            after: String::new(),
            before: String::new(),
            ..self.clone()
        }
    }

    /// Whether anything beyond the defaults was asked for.
    pub fn is_filtered(&self) -> bool {
        let blank = Form {
            sort: self.sort.clone(),
            ..Form::default()
        };
        self.first_page() != blank
    }
}

fn push_nonempty(list: &mut Vec<String>, v: String) {
    if !v.trim().is_empty() && list.len() < 50 {
        list.push(v.trim().to_string());
    }
}

/// The staff-facing status groups (DOMAIN.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StatusGroup {
    InProgress,
    Success,
    Declined,
    TimedOut,
    Cancelled,
    Error,
}

impl StatusGroup {
    pub const ALL: [StatusGroup; 6] = [
        StatusGroup::InProgress,
        StatusGroup::Success,
        StatusGroup::Declined,
        StatusGroup::TimedOut,
        StatusGroup::Cancelled,
        StatusGroup::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StatusGroup::InProgress => "in_progress",
            StatusGroup::Success => "success",
            StatusGroup::Declined => "declined",
            StatusGroup::TimedOut => "timed_out",
            StatusGroup::Cancelled => "cancelled",
            StatusGroup::Error => "error",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            StatusGroup::InProgress => "In progress",
            StatusGroup::Success => "Success",
            StatusGroup::Declined => "Declined",
            StatusGroup::TimedOut => "Timed out",
            StatusGroup::Cancelled => "Cancelled",
            StatusGroup::Error => "Error",
        }
    }

    pub fn parse(s: &str) -> Option<StatusGroup> {
        StatusGroup::ALL.into_iter().find(|g| g.name() == s)
    }

    /// The (status, state code) pairs in the group; a None code means any code.
    pub fn members(self) -> &'static [(&'static str, Option<&'static str>)] {
        match self {
            StatusGroup::InProgress => &[
                ("created", None),
                ("started", None),
                ("submitted", None),
                ("capturable", None),
            ],
            StatusGroup::Success => &[("success", None)],
            StatusGroup::Declined => &[("failed", Some("P0010"))],
            StatusGroup::TimedOut => &[("failed", Some("P0020"))],
            StatusGroup::Cancelled => &[("failed", Some("P0030")), ("cancelled", None)],
            StatusGroup::Error => &[("error", None)],
        }
    }

    /// The group a journey's status and code fall in. A failure with a code paydesk does not
    /// know is shown as declined, the platform's most common failure.
    pub fn of(status: &str, code: Option<&str>) -> StatusGroup {
        match (status, code) {
            ("success", _) => StatusGroup::Success,
            ("failed", Some("P0020")) => StatusGroup::TimedOut,
            ("failed", Some("P0030")) | ("cancelled", _) => StatusGroup::Cancelled,
            ("failed", _) => StatusGroup::Declined,
            ("error", _) => StatusGroup::Error,
            _ => StatusGroup::InProgress,
        }
    }
}

/// What the search box was understood to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoxTerm {
    /// A whole email address: the payer's email, exactly (any case).
    Email(String),
    /// Part of an email address (it has an @ but is not a whole address).
    EmailPart(String),
    LastFour(String),
    FirstSix(String),
    /// Anything else: a platform payment id, a reference, a case reference or a provider id,
    /// exactly (references and case references in any case).
    Identifier(String),
}

impl BoxTerm {
    /// How the page explains what it searched for.
    pub fn explain(&self) -> String {
        match self {
            BoxTerm::Email(e) => format!("payer email is {e}"),
            BoxTerm::EmailPart(e) => format!("payer email contains “{e}”"),
            BoxTerm::LastFour(d) => format!("card number ends {d}"),
            BoxTerm::FirstSix(d) => format!("card number starts {d}"),
            BoxTerm::Identifier(t) => {
                format!("payment id, reference, case reference or provider id is “{t}”")
            }
        }
    }
}

/// Read the search box: an @ means an email, 4 digits the last four, 6 digits the first six,
/// anything else an identifier.
pub fn recognise(text: &str) -> Option<BoxTerm> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let digits_only = t.bytes().all(|b| b.is_ascii_digit());
    if digits_only && t.len() == 4 {
        return Some(BoxTerm::LastFour(t.to_string()));
    }
    if digits_only && t.len() == 6 {
        return Some(BoxTerm::FirstSix(t.to_string()));
    }
    if t.contains('@') {
        let lower = t.to_lowercase();
        return Some(if is_whole_email(&lower) {
            BoxTerm::Email(lower)
        } else {
            BoxTerm::EmailPart(lower)
        });
    }
    Some(BoxTerm::Identifier(t.to_string()))
}

fn is_whole_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !e.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Which date a range applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateField {
    Created,
    Settled,
}

/// A date range, already in the form the column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    /// created_at, UTC microseconds: from inclusive, to exclusive.
    Created(Option<i64>, Option<i64>),
    /// settled_date, `YYYY-MM-DD`: both inclusive.
    Settled(Option<String>, Option<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Newest,
    Oldest,
    AmountHigh,
    AmountLow,
}

impl Sort {
    pub const ALL: [Sort; 4] = [
        Sort::Newest,
        Sort::Oldest,
        Sort::AmountHigh,
        Sort::AmountLow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Sort::Newest => "newest",
            Sort::Oldest => "oldest",
            Sort::AmountHigh => "amount_high",
            Sort::AmountLow => "amount_low",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::Newest => "Newest first",
            Sort::Oldest => "Oldest first",
            Sort::AmountHigh => "Largest amount first",
            Sort::AmountLow => "Smallest amount first",
        }
    }

    /// Whether rows are ordered by amount (else by creation time).
    pub fn by_amount(self) -> bool {
        matches!(self, Sort::AmountHigh | Sort::AmountLow)
    }

    /// Whether the first row has the highest key.
    pub fn descending(self) -> bool {
        matches!(self, Sort::Newest | Sort::AmountHigh)
    }
}

/// A place in the results: the sort key and journey id of a row, and which side of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub id: i64,
    /// true: the rows after this one (Next); false: the rows before it (Previous).
    pub after: bool,
}

impl Cursor {
    pub fn encode(key: i64, id: i64) -> String {
        format!("{key}_{id}")
    }

    fn decode(s: &str, after: bool) -> Option<Cursor> {
        let (k, i) = s.split_once('_')?;
        Some(Cursor {
            key: k.parse().ok()?,
            id: i.parse().ok()?,
            after,
        })
    }
}

/// A search, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Slugs of the services asked for; empty means every service the person holds.
    pub services: Vec<String>,
    pub text: Option<BoxTerm>,
    /// Lower-cased reference, and whether it is a prefix.
    pub reference: Option<(String, bool)>,
    /// Lower-cased parts of the payer's email and the cardholder's name.
    pub email: Option<String>,
    pub cardholder: Option<String>,
    pub last4: Option<String>,
    pub first6: Option<String>,
    pub brand: Option<String>,
    pub groups: Vec<StatusGroup>,
    pub range: Option<Range>,
    /// Pence, both inclusive.
    pub min_amount: Option<i64>,
    pub max_amount: Option<i64>,
    /// Metadata key, and a lower-cased value (None: the key is present at all).
    pub metadata: Option<(String, Option<String>)>,
    pub case_reference: Option<String>,
    pub attention_only: bool,
    pub sort: Sort,
    pub cursor: Option<Cursor>,
}

impl Default for Search {
    fn default() -> Search {
        Search {
            services: Vec::new(),
            text: None,
            reference: None,
            email: None,
            cardholder: None,
            last4: None,
            first6: None,
            brand: None,
            groups: Vec::new(),
            range: None,
            min_amount: None,
            max_amount: None,
            metadata: None,
            case_reference: None,
            attention_only: false,
            sort: Sort::Newest,
            cursor: None,
        }
    }
}

/// A field's problem: (field name as the form has it, message).
pub type Problem = (&'static str, String);

/// The card brands the platform reports.
pub const BRANDS: [(&str, &str); 8] = [
    ("visa", "Visa"),
    ("master-card", "Mastercard"),
    ("american-express", "American Express"),
    ("diners-club", "Diners Club"),
    ("discover", "Discover"),
    ("jcb", "JCB"),
    ("unionpay", "Union Pay"),
    ("maestro", "Maestro"),
];

/// Check a form. `now` and `zone` give "today" and turn local dates into instants.
pub fn parse(form: &Form, now: OffsetDateTime, zone: Zone) -> Result<Search, Vec<Problem>> {
    let mut problems: Vec<Problem> = Vec::new();
    let mut s = Search::default();
    let mut too_long = |field: &'static str, label: &str, v: &str| {
        if v.chars().count() > FIELD_MAX {
            problems.push((
                field,
                format!("{label} must be {FIELD_MAX} characters or fewer"),
            ));
            true
        } else if v.chars().any(char::is_control) {
            problems.push((
                field,
                format!("{label} must only contain letters, numbers, spaces and punctuation"),
            ));
            true
        } else {
            false
        }
    };
    let fields: [(&'static str, &str, &str); 13] = [
        ("q", "Search", &form.q),
        ("reference", "Reference", &form.reference),
        ("email", "Payer email", &form.email),
        ("cardholder", "Cardholder name", &form.cardholder),
        ("last4", "Last 4 digits", &form.last4),
        ("first6", "First 6 digits", &form.first6),
        ("brand", "Card brand", &form.brand),
        ("meta_key", "Metadata key", &form.meta_key),
        ("meta_value", "Metadata value", &form.meta_value),
        ("case_reference", "Case reference", &form.case_reference),
        ("min_amount", "Minimum amount", &form.min_amount),
        ("max_amount", "Maximum amount", &form.max_amount),
        ("from_date", "From date", &form.from_date),
    ];
    let mut long = false;
    for (field, label, value) in fields {
        long |= too_long(field, label, value);
    }
    for (field, label, value) in [
        ("to_date", "To date", &form.to_date),
        ("from_time", "From time", &form.from_time),
        ("to_time", "To time", &form.to_time),
    ] {
        long |= too_long(field, label, value);
    }
    if long {
        return Err(problems);
    }

    s.services = form.services.clone();
    s.text = recognise(&form.q);
    let reference = form.reference.trim();
    if !reference.is_empty() {
        let prefix = match form.reference_match.as_str() {
            "" | "exact" => false,
            "prefix" => true,
            _ => {
                problems.push((
                    "reference_match",
                    "Choose whether the reference is exact or the start of one".into(),
                ));
                false
            }
        };
        s.reference = Some((reference.to_lowercase(), prefix));
    }
    let email = form.email.trim();
    if !email.is_empty() {
        s.email = Some(email.to_lowercase());
    }
    let cardholder = form.cardholder.trim();
    if !cardholder.is_empty() {
        s.cardholder = Some(cardholder.to_lowercase());
    }
    s.last4 = digits(&mut problems, "last4", "Last 4 digits", &form.last4, 4);
    s.first6 = digits(&mut problems, "first6", "First 6 digits", &form.first6, 6);
    let brand = form.brand.trim();
    if !brand.is_empty() {
        match BRANDS.iter().find(|(name, _)| *name == brand) {
            Some((name, _)) => s.brand = Some((*name).to_string()),
            None => problems.push(("brand", "Choose a card brand from the list".into())),
        }
    }
    for g in &form.statuses {
        match StatusGroup::parse(g) {
            Some(group) if !s.groups.contains(&group) => s.groups.push(group),
            Some(_) => {}
            None => problems.push(("status", "Choose statuses from the list".into())),
        }
    }
    s.range = range(&mut problems, form, now, zone);
    s.min_amount = amount(
        &mut problems,
        "min_amount",
        "Minimum amount",
        &form.min_amount,
    );
    s.max_amount = amount(
        &mut problems,
        "max_amount",
        "Maximum amount",
        &form.max_amount,
    );
    if let (Some(lo), Some(hi)) = (s.min_amount, s.max_amount) {
        if lo > hi {
            problems.push((
                "max_amount",
                "Maximum amount must be the same as or more than the minimum".into(),
            ));
        }
    }
    let key = form.meta_key.trim();
    let value = form.meta_value.trim();
    if !key.is_empty() {
        s.metadata = Some((
            key.to_string(),
            (!value.is_empty()).then(|| value.to_lowercase()),
        ));
    } else if !value.is_empty() {
        problems.push((
            "meta_key",
            "Enter the metadata key the value belongs to".into(),
        ));
    }
    let case = form.case_reference.trim();
    if !case.is_empty() {
        s.case_reference = Some(case.to_lowercase());
    }
    s.attention_only = form.attention;
    s.sort = match form.sort.as_str() {
        "" => Sort::Newest,
        other => match Sort::ALL.into_iter().find(|o| o.name() == other) {
            Some(o) => o,
            None => {
                problems.push(("sort", "Choose an order from the list".into()));
                Sort::Newest
            }
        },
    };
    // A page position that does not read is dropped: the first page is shown.
    s.cursor = if !form.after.is_empty() {
        Cursor::decode(&form.after, true)
    } else if !form.before.is_empty() {
        Cursor::decode(&form.before, false)
    } else {
        None
    };
    if problems.is_empty() {
        Ok(s)
    } else {
        Err(problems)
    }
}

fn digits(
    problems: &mut Vec<Problem>,
    field: &'static str,
    label: &str,
    raw: &str,
    n: usize,
) -> Option<String> {
    let t: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    if t.is_empty() {
        return None;
    }
    if t.len() == n && t.bytes().all(|b| b.is_ascii_digit()) {
        Some(t)
    } else {
        problems.push((
            field,
            format!("{label} must be {n} numbers, like {}", &"1234567"[..n]),
        ));
        None
    }
}

fn amount(problems: &mut Vec<Problem>, field: &'static str, label: &str, raw: &str) -> Option<i64> {
    if raw.trim().is_empty() {
        return None;
    }
    match money::parse(raw) {
        Ok(p) => Some(p),
        Err(money::Unreadable::TooMuch) => {
            problems.push((
                field,
                format!(
                    "{label} must be {} or less: no payment is more",
                    money::pounds(money::MAX_PENCE)
                ),
            ));
            None
        }
        Err(_) => {
            problems.push((
                field,
                format!("{label} must be an amount in pounds, like 12.50"),
            ));
            None
        }
    }
}

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

fn range(
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
    let (from, to): (Option<(Date, Option<Time>)>, Option<(Date, Option<Time>)>) = if custom {
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime, time};

    fn london() -> Zone {
        Zone::named("Europe/London").unwrap()
    }

    fn parse_q(q: &str) -> Result<Search, Vec<Problem>> {
        parse(
            &Form::from_query(q),
            datetime!(2026-07-15 10:00 UTC),
            london(),
        )
    }

    #[test]
    fn the_search_box_recognises_what_it_is_given() {
        assert_eq!(recognise("  "), None);
        assert_eq!(recognise("4242"), Some(BoxTerm::LastFour("4242".into())));
        assert_eq!(
            recognise("424242"),
            Some(BoxTerm::FirstSix("424242".into()))
        );
        assert_eq!(
            recognise("Jo.Bloggs@Example.org"),
            Some(BoxTerm::Email("jo.bloggs@example.org".into()))
        );
        assert_eq!(
            recognise("@example"),
            Some(BoxTerm::EmailPart("@example".into()))
        );
        assert_eq!(recognise("jo@"), Some(BoxTerm::EmailPart("jo@".into())));
        // 5 digits, 26-character ids, references and case numbers are identifiers.
        assert_eq!(
            recognise("12345"),
            Some(BoxTerm::Identifier("12345".into()))
        );
        assert_eq!(
            recognise("hu20sqlact5260q2nanm0q8u93"),
            Some(BoxTerm::Identifier("hu20sqlact5260q2nanm0q8u93".into()))
        );
        assert_eq!(
            recognise(" PERMIT-0042 "),
            Some(BoxTerm::Identifier("PERMIT-0042".into()))
        );
    }

    #[test]
    fn filters_read_from_the_url_and_back() {
        let q = "q=abc&service=a&service=b&status=success&status=declined&period=30-days&attention=yes&junk=1&sort=amount_high";
        let f = Form::from_query(q);
        assert_eq!(f.services, vec!["a", "b"]);
        assert!(f.attention);
        let again = Form::from_query(&f.to_query());
        assert_eq!(f, again);
        assert!(f.is_filtered());
        assert!(!Form::from_query("sort=oldest&junk=1").is_filtered());
        let s = parse_q(q).unwrap();
        assert_eq!(s.groups, vec![StatusGroup::Success, StatusGroup::Declined]);
        assert_eq!(s.sort, Sort::AmountHigh);
        assert!(s.attention_only);
    }

    #[test]
    fn dates_and_times_as_staff_type_them() {
        assert_eq!(parse_date("27/3/2026"), Some(date!(2026 - 03 - 27)));
        assert_eq!(parse_date("2026-03-27"), Some(date!(2026 - 03 - 27)));
        assert_eq!(parse_date("31/2/2026"), None);
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_time("14:30"), Some(time!(14:30)));
        assert_eq!(parse_time("2:30pm"), Some(time!(14:30)));
        assert_eq!(parse_time("12am"), Some(time!(00:00)));
        assert_eq!(parse_time("25:00"), None);
        assert_eq!(parse_time("13pm"), None);
    }

    #[test]
    fn periods_are_local_days() {
        // 15 July 2026 in London (BST): today starts at 23:00 UTC on the 14th.
        let s = parse_q("period=today").unwrap();
        assert_eq!(
            s.range,
            Some(Range::Created(
                Some(crate::store::to_micros(datetime!(2026-07-14 23:00 UTC))),
                Some(crate::store::to_micros(datetime!(2026-07-15 23:00 UTC))),
            ))
        );
        let s = parse_q("period=previous-month&date_field=settled").unwrap();
        assert_eq!(
            s.range,
            Some(Range::Settled(
                Some("2026-06-01".into()),
                Some("2026-06-30".into())
            ))
        );
        assert_eq!(parse_q("period=all").unwrap().range, None);
        assert_eq!(parse_q("").unwrap().range, None);
        for p in Period::ALL {
            assert!(parse_q(&format!("period={}", p.key())).is_ok());
        }
    }

    #[test]
    fn a_custom_range_is_inclusive_of_its_last_day_or_minute() {
        let s = parse_q("from_date=1/1/2026&to_date=2/1/2026").unwrap();
        assert_eq!(
            s.range,
            Some(Range::Created(
                Some(crate::store::to_micros(datetime!(2026-01-01 00:00 UTC))),
                Some(crate::store::to_micros(datetime!(2026-01-03 00:00 UTC))),
            ))
        );
        let s =
            parse_q("from_date=1/1/2026&from_time=09:00&to_date=1/1/2026&to_time=17:00").unwrap();
        assert_eq!(
            s.range,
            Some(Range::Created(
                Some(crate::store::to_micros(datetime!(2026-01-01 09:00 UTC))),
                Some(crate::store::to_micros(datetime!(2026-01-01 17:01 UTC))),
            ))
        );
    }

    #[test]
    fn bad_input_names_each_field() {
        let e = parse_q(
            "from_date=31/2/2026&min_amount=£12.3.4&last4=12a4&status=nope&period=x&brand=bitcoin",
        )
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|(f, _)| *f).collect();
        for f in ["from_date", "min_amount", "last4", "status", "brand"] {
            assert!(fields.contains(&f), "{f} in {fields:?}");
        }
        let e = parse_q("to_date=1/1/2026&from_date=2/1/2026").unwrap_err();
        assert_eq!(e[0].0, "to_date");
        let e = parse_q("min_amount=20&max_amount=10").unwrap_err();
        assert_eq!(e[0].0, "max_amount");
        let e = parse_q("q=a%00b").unwrap_err();
        assert_eq!(e[0].0, "q");
        let huge = format!("q={}", "x".repeat(5000));
        let e = parse_q(&huge).unwrap_err();
        assert_eq!(e[0].0, "q");
        let e = parse_q("meta_value=x").unwrap_err();
        assert_eq!(e[0].0, "meta_key");
    }

    #[test]
    fn amount_filters_are_read_by_the_one_money_rule() {
        let s = parse_q("min_amount=£12.3&max_amount=100000").unwrap();
        assert_eq!((s.min_amount, s.max_amount), (Some(1230), Some(10_000_000)));
        // Thousands separators are refused here as in a refund, with the field named.
        let e = parse_q("min_amount=1,234.50").unwrap_err();
        assert_eq!(e[0].0, "min_amount");
        assert!(e[0].1.contains("like 12.50"), "{:?}", e[0].1);
        let e = parse_q("max_amount=100000.01").unwrap_err();
        assert_eq!(e[0].0, "max_amount");
        assert!(e[0].1.contains("£100,000.00 or less"), "{:?}", e[0].1);
    }

    #[test]
    fn cursors_that_do_not_read_start_again() {
        let s = parse_q("after=123_45").unwrap();
        assert_eq!(
            s.cursor,
            Some(Cursor {
                key: 123,
                id: 45,
                after: true
            })
        );
        assert_eq!(parse_q("after=x").unwrap().cursor, None);
        assert_eq!(
            parse_q("before=-5_7").unwrap().cursor,
            Some(Cursor {
                key: -5,
                id: 7,
                after: false
            })
        );
    }

    #[test]
    fn status_groups_cover_every_state() {
        assert_eq!(
            StatusGroup::of("failed", Some("P0010")),
            StatusGroup::Declined
        );
        assert_eq!(
            StatusGroup::of("failed", Some("P0020")),
            StatusGroup::TimedOut
        );
        assert_eq!(
            StatusGroup::of("failed", Some("P0030")),
            StatusGroup::Cancelled
        );
        assert_eq!(
            StatusGroup::of("cancelled", Some("P0040")),
            StatusGroup::Cancelled
        );
        assert_eq!(StatusGroup::of("capturable", None), StatusGroup::InProgress);
        for g in StatusGroup::ALL {
            for (status, code) in g.members() {
                assert_eq!(StatusGroup::of(status, *code), g);
            }
        }
    }
}
