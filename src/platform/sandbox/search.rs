//! The search endpoints' query strings (`GET /v1/payments`, `GET /v1/refunds`): parsing and
//! validating them as the platform does (every bad parameter named in one P0401 answer),
//! matching payments, and the page links that repeat the filters.

use time::Date;

use super::data::{from_time, get_link, Brand, Millis, PayRec};
use crate::platform::agreement_wire::AgreementStatus;
use crate::platform::dispute_wire::DisputeStatus;
use crate::platform::types::{parse_date, wire_time, PaymentStatus, SearchLinks};

/// The largest (and default) page.
pub const MAX_PAGE_SIZE: usize = 500;

#[derive(Debug, Clone, Default)]
pub struct PaymentQuery {
    pub reference: Option<String>,
    /// Lower-case.
    pub email: Option<String>,
    pub state: Option<PaymentStatus>,
    pub card_brand: Option<String>,
    /// Lower-case.
    pub cardholder_name: Option<String>,
    pub first6: Option<String>,
    pub last4: Option<String>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub from_settled: Option<Date>,
    pub to_settled: Option<Date>,
    pub page: usize,
    pub size: usize,
    /// The filters as given, to repeat in the page links.
    pub echo: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct RefundQuery {
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub from_settled: Option<Date>,
    pub to_settled: Option<Date>,
    pub page: usize,
    pub size: usize,
    pub echo: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct DisputeQuery {
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub from_settled: Option<Date>,
    pub to_settled: Option<Date>,
    pub status: Option<DisputeStatus>,
    pub page: usize,
    pub size: usize,
    pub echo: Vec<(&'static str, String)>,
}

pub struct AgreementQuery {
    /// Matched whole, ignoring case.
    pub reference: Option<String>,
    pub status: Option<AgreementStatus>,
    pub page: usize,
    pub size: usize,
    pub echo: Vec<(&'static str, String)>,
}

/// Decoded `name=value` pairs of a query string.
pub fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// The value of a parameter, if given and not blank (the last one wins).
fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.trim().is_empty())
}

/// An RFC 3339 time. A `+` that was not percent-encoded arrives as a space: accept it.
fn parse_time(s: &str) -> Option<Millis> {
    let s = s.trim();
    wire_time::parse(s)
        .or_else(|| wire_time::parse(&s.replace(' ', "+")))
        .map(from_time)
}

fn parse_day(s: &str) -> Option<Date> {
    let s = s.trim();
    (s.len() == 10).then(|| parse_date(s)).flatten()
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// Collects the names of bad parameters while parsing the good ones.
struct Parser<'a> {
    pairs: &'a [(String, String)],
    bad: Vec<&'static str>,
    echo: Vec<(&'static str, String)>,
}

impl<'a> Parser<'a> {
    fn new(pairs: &'a [(String, String)]) -> Parser<'a> {
        Parser {
            pairs,
            bad: Vec::new(),
            echo: Vec::new(),
        }
    }

    fn field<T>(&mut self, name: &'static str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        let raw = value(self.pairs, name)?;
        match parse(raw) {
            Some(v) => {
                self.echo.push((name, raw.to_string()));
                Some(v)
            }
            None => {
                self.bad.push(name);
                None
            }
        }
    }

    fn paging(&mut self) -> (usize, usize) {
        let page = match value(self.pairs, "page") {
            None => 1,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(p) if p >= 1 => p,
                _ => {
                    self.bad.push("page");
                    1
                }
            },
        };
        let size = match value(self.pairs, "display_size") {
            None => MAX_PAGE_SIZE,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(s) if (1..=MAX_PAGE_SIZE).contains(&s) => s,
                _ => {
                    self.bad.push("display_size");
                    MAX_PAGE_SIZE
                }
            },
        };
        (page, size)
    }

    fn finish(self) -> Result<Vec<(&'static str, String)>, Vec<&'static str>> {
        if self.bad.is_empty() {
            Ok(self.echo)
        } else {
            Err(self.bad)
        }
    }
}

/// `GET /v1/payments` parameters, or the names of the invalid ones.
pub fn payment_query(pairs: &[(String, String)]) -> Result<PaymentQuery, Vec<&'static str>> {
    let mut p = Parser::new(pairs);
    let reference = p.field("reference", |s| Some(s.to_string()));
    let email = p.field("email", |s| Some(s.to_lowercase()));
    let state = p.field("state", |s| {
        PaymentStatus::parse(s.trim()).filter(|s| *s != PaymentStatus::Capturable)
    });
    let card_brand = p.field("card_brand", |s| Some(s.trim().to_string()));
    let from = p.field("from_date", parse_time);
    let to = p.field("to_date", parse_time);
    let (page, size) = p.paging();
    let cardholder_name = p.field("cardholder_name", |s| Some(s.to_lowercase()));
    let first6 = p.field("first_digits_card_number", |s| {
        digits(s, 6).then(|| s.to_string())
    });
    let last4 = p.field("last_digits_card_number", |s| {
        digits(s, 4).then(|| s.to_string())
    });
    let from_settled = p.field("from_settled_date", parse_day);
    let to_settled = p.field("to_settled_date", parse_day);
    let echo = p.finish()?;
    Ok(PaymentQuery {
        reference,
        email,
        state,
        card_brand,
        cardholder_name,
        first6,
        last4,
        from,
        to,
        from_settled,
        to_settled,
        page,
        size,
        echo,
    })
}

/// `GET /v1/refunds` parameters, or the names of the invalid ones.
pub fn refund_query(pairs: &[(String, String)]) -> Result<RefundQuery, Vec<&'static str>> {
    let mut p = Parser::new(pairs);
    let from = p.field("from_date", parse_time);
    let to = p.field("to_date", parse_time);
    let from_settled = p.field("from_settled_date", parse_day);
    let to_settled = p.field("to_settled_date", parse_day);
    let (page, size) = p.paging();
    let echo = p.finish()?;
    Ok(RefundQuery {
        from,
        to,
        from_settled,
        to_settled,
        page,
        size,
        echo,
    })
}

/// `GET /v1/disputes` parameters, or the names of the invalid ones.
pub fn dispute_query(pairs: &[(String, String)]) -> Result<DisputeQuery, Vec<&'static str>> {
    let mut p = Parser::new(pairs);
    let from = p.field("from_date", parse_time);
    let to = p.field("to_date", parse_time);
    let from_settled = p.field("from_settled_date", parse_day);
    let to_settled = p.field("to_settled_date", parse_day);
    let status = p.field("status", |s| DisputeStatus::parse(s.trim()));
    let (page, size) = p.paging();
    let echo = p.finish()?;
    Ok(DisputeQuery {
        from,
        to,
        from_settled,
        to_settled,
        status,
        page,
        size,
        echo,
    })
}

/// `GET /v1/agreements` parameters, or the names of the invalid ones.
pub fn agreement_query(pairs: &[(String, String)]) -> Result<AgreementQuery, Vec<&'static str>> {
    let mut p = Parser::new(pairs);
    let reference = p.field("reference", |s| {
        (s.trim().chars().count() <= 255).then(|| s.trim().to_string())
    });
    let status = p.field("status", |s| AgreementStatus::parse(s.trim()));
    let (page, size) = p.paging();
    let echo = p.finish()?;
    Ok(AgreementQuery {
        reference,
        status,
        page,
        size,
        echo,
    })
}

/// Case-insensitive substring test; `needle` is already lower-case.
fn contains_ci(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    // Most values are already lower-case: the library's substring search settles those.
    if hay.contains(needle) {
        return true;
    }
    if !hay.bytes().any(|b| b.is_ascii_uppercase()) && hay.is_ascii() {
        return false;
    }
    if hay.is_ascii() && needle.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    hay.to_lowercase().contains(needle)
}

impl PaymentQuery {
    /// Whether anything but the creation dates (which the sorted index answers) filters.
    pub fn filters_beyond_dates(&self) -> bool {
        self.reference.is_some()
            || self.email.is_some()
            || self.state.is_some()
            || self.card_brand.is_some()
            || self.cardholder_name.is_some()
            || self.first6.is_some()
            || self.last4.is_some()
            || self.from_settled.is_some()
            || self.to_settled.is_some()
    }

    /// The filters (not the paging), to recognise the same search on its next page.
    pub fn cache_key(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.echo {
            q.append_pair(k, v);
        }
        q.finish()
    }

    pub fn matches(&self, p: &PayRec, today: Date) -> bool {
        if let Some(r) = &self.reference {
            let same = if p.reference.is_ascii() && r.is_ascii() {
                p.reference.eq_ignore_ascii_case(r)
            } else {
                p.reference.to_lowercase() == r.to_lowercase()
            };
            if !same {
                return false;
            }
        }
        if let Some(e) = &self.email {
            if !p.email.as_deref().is_some_and(|m| contains_ci(m, e)) {
                return false;
            }
        }
        if let Some(s) = self.state {
            if p.st.status() != s {
                return false;
            }
        }
        let card = p.card.as_deref();
        if let Some(b) = &self.card_brand {
            let wanted = Brand::parse(b);
            if !card.is_some_and(|c| Some(c.brand) == wanted) {
                return false;
            }
        }
        if let Some(n) = &self.cardholder_name {
            if !card.is_some_and(|c| contains_ci(&c.holder, n)) {
                return false;
            }
        }
        if let Some(f) = &self.first6 {
            if card.is_none_or(|c| c.first6() != f) {
                return false;
            }
        }
        if let Some(l) = &self.last4 {
            if card.is_none_or(|c| c.last4() != l) {
                return false;
            }
        }
        if (self.from_settled.is_some() || self.to_settled.is_some())
            && !in_dates(p.settled_date(today), self.from_settled, self.to_settled)
        {
            return false;
        }
        true
    }
}

/// The navigation links of a results page: absolute, repeating the filters.
pub fn page_links(
    origin: &str,
    path: &str,
    echo: &[(&'static str, String)],
    page: usize,
    size: usize,
    total: usize,
) -> SearchLinks {
    let last = total.div_ceil(size).max(1);
    let href = |n: usize| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in echo {
            q.append_pair(k, v);
        }
        q.append_pair("page", &n.to_string());
        q.append_pair("display_size", &size.to_string());
        get_link(format!("{origin}{path}?{}", q.finish()))
    };
    SearchLinks {
        self_link: Some(href(page)),
        first_page: Some(href(1)),
        last_page: Some(href(last)),
        prev_page: (page > 1).then(|| href((page - 1).min(last))),
        next_page: (page < last).then(|| href(page + 1)),
    }
}

/// Whether an optional date lies in the inclusive range; no date never matches a range.
pub fn in_dates(d: Option<Date>, from: Option<Date>, to: Option<Date>) -> bool {
    match d {
        None => from.is_none() && to.is_none(),
        Some(d) => from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        pairs(Some(s))
    }

    #[test]
    fn names_every_bad_parameter() {
        let err = payment_query(&q(
            "from_date=yesterday&state=lost&display_size=501&page=0&last_digits_card_number=12",
        ))
        .unwrap_err();
        assert_eq!(
            err,
            vec![
                "state",
                "from_date",
                "page",
                "display_size",
                "last_digits_card_number"
            ]
        );
        assert!(refund_query(&q("to_settled_date=2024-13-01")).is_err());
        assert_eq!(
            dispute_query(&q(
                "status=open&from_date=2024-01-01T00:00:00Z&display_size=0"
            ))
            .unwrap_err(),
            vec!["status", "display_size"]
        );
        let ok = dispute_query(&q("status=needs_response&to_settled_date=2024-02-01")).unwrap();
        assert_eq!(ok.status, Some(DisputeStatus::NeedsResponse));
    }

    #[test]
    fn reads_times_with_an_unencoded_plus() {
        let ok = payment_query(&q("from_date=2024-01-01T00:00:00+00:00&email=Bob")).unwrap();
        assert_eq!(ok.from, Some(1_704_067_200_000));
        assert_eq!(ok.email.as_deref(), Some("bob"));
        assert_eq!((ok.page, ok.size), (1, 500));
        assert_eq!(ok.echo[0], ("email", "Bob".to_string()));
    }

    #[test]
    fn links_repeat_the_filters() {
        let echo = vec![("state", "success".to_string())];
        let l = page_links("http://h:1", "/v1/payments", &echo, 2, 10, 25);
        assert_eq!(
            l.next_page.unwrap().href,
            "http://h:1/v1/payments?state=success&page=3&display_size=10"
        );
        assert!(l.last_page.unwrap().href.contains("page=3"));
        assert!(l.prev_page.unwrap().href.contains("page=1"));
        let only = page_links("http://h:1", "/v1/refunds", &[], 1, 500, 0);
        assert!(only.next_page.is_none() && only.prev_page.is_none());
    }

    #[test]
    fn case_insensitive_matching() {
        assert!(contains_ci("Mary.OBrien@example.com", "obrien"));
        assert!(contains_ci("Zoë Müller", "müller"));
        assert!(!contains_ci("abc", "abcd"));
    }
}
