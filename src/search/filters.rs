//! What a search is once read and checked (`Search`), and the pieces it is made of: status
//! groups, what the search box was understood to be, date ranges, sort orders, page cursors
//! and the card brands. Pure: no I/O.

use serde::Serialize;

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
    /// Anything else: a platform payment id, a reference (with or without its prefix, such as
    /// "PRK-"), the payment's or a refund's case reference, or a provider id, exactly
    /// (references and case references in any case); and, from 3 characters, part of the
    /// payer's email or the cardholder's name (a surname, a whole name) in any case.
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
            BoxTerm::Identifier(t) if t.chars().count() >= WORDS_MIN => format!(
                "payment id, reference, case reference or provider id is “{t}”, \
                 or payer email or cardholder name contains it"
            ),
            BoxTerm::Identifier(t) => {
                format!("payment id, reference, case reference or provider id is “{t}”")
            }
        }
    }
}

/// The fewest characters of the search box's text that are looked for inside names and
/// emails (a trigram index needs three to look anything up).
pub const WORDS_MIN: usize = 3;

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

    pub(super) fn decode(s: &str, after: bool) -> Option<Cursor> {
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
    /// An agreement id, exactly: payments taken under that recurring agreement.
    pub agreement: Option<String>,
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
            agreement: None,
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
