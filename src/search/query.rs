//! The payments page's URL read into a `Search`. Every filter lives in the query string, so a
//! search is a bookmark and the back button returns to it. Unknown parameters are ignored;
//! each bad value gets a message naming the field, and the form is shown again as typed.
//! Pure: no I/O.

use time::OffsetDateTime;

use super::dates::range;
pub use super::dates::{parse_date, parse_time};
pub use super::filters::{
    recognise, BoxTerm, Cursor, DateField, Problem, Range, Search, Sort, StatusGroup, BRANDS,
    WORDS_MIN,
};
pub use super::form::Form;
use crate::money;
pub use crate::timezone::Period;
use crate::timezone::Zone;

/// The longest value any one field takes; longer is refused with a message, not cut.
pub const FIELD_MAX: usize = 200;
/// Results on a page.
pub const PAGE_SIZE: usize = 50;
/// Counting stops here: "more than 10,000".
pub const COUNT_CAP: i64 = 10_000;

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
        ("agreement", "Agreement", &form.agreement),
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
    let agreement = form.agreement.trim();
    if !agreement.is_empty() {
        s.agreement = Some(agreement.to_string());
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
    fn the_filters_panel_opens_only_for_a_filter_inside_it() {
        let f = |q: &str| Form::from_query(q).panel_filters_set();
        assert!(!f(""));
        assert!(!f("q=Priya+Harris"));
        assert!(!f("q=05461673&sort=oldest&after=123_45"));
        assert!(f("q=x&status=success"));
        assert!(f("min_amount=12"));
        assert!(f("attention=yes"));
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
