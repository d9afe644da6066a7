//! The walks of a search that no filter leads (a service's rows in page order: all of them, or
//! one status, brand, attention flag or metadata value) and every other filter written as a
//! check on the rows walked or looked up.

use super::drivers::{box_text, residual_condition, Driver, Unindexed};
use crate::search::query::{BoxTerm, Range, Search, StatusGroup};
use crate::store::sql::Builder;

/// How the rows of a branch walk are chosen: one status, one brand, the attention flag, or
/// every row of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Walk {
    All,
    Status(&'static str),
    Brand(String),
    Attention,
    /// One metadata key and value, in time order through the metadata table's own index
    /// (its rows carry their journey's created time).
    Metadata(String, String),
}

/// The walks for a branch search, per service.
pub(super) fn walks(s: &Search) -> Vec<Walk> {
    if s.sort.by_amount() {
        return vec![Walk::All];
    }
    if let Some((k, Some(v))) = &s.metadata {
        return vec![Walk::Metadata(k.clone(), v.clone())];
    }
    if s.attention_only {
        return vec![Walk::Attention];
    }
    if let Some(brand) = &s.brand {
        return vec![Walk::Brand(brand.clone())];
    }
    if !s.groups.is_empty() {
        let mut statuses: Vec<&'static str> = Vec::new();
        for g in &s.groups {
            for (status, _) in g.members() {
                if !statuses.contains(status) {
                    statuses.push(status);
                }
            }
        }
        return statuses.into_iter().map(Walk::Status).collect();
    }
    vec![Walk::All]
}

/// Every filter of the search as a condition, except `skip` (the driver, written separately).
pub(super) fn residuals(
    b: &mut Builder,
    s: &Search,
    skip: Option<&Driver>,
    walk: &Walk,
) -> Vec<String> {
    let mut c = Vec::new();
    let skip = skip.map(Driver::filter);
    let unless = |d: Driver, b: &mut Builder, c: &mut Vec<String>| {
        if skip != Some(&d) {
            let cond = residual_condition(b, &d);
            c.push(cond);
        }
    };
    match &s.text {
        Some(BoxTerm::Identifier(t)) => unless(box_text(t), b, &mut c),
        Some(BoxTerm::Email(e)) => unless(Driver::EmailIs(e.clone()), b, &mut c),
        Some(BoxTerm::EmailPart(e)) => unless(Driver::EmailContains(e.clone()), b, &mut c),
        Some(BoxTerm::LastFour(x)) => unless(Driver::LastFour(x.clone()), b, &mut c),
        Some(BoxTerm::FirstSix(x)) => unless(Driver::FirstSix(x.clone()), b, &mut c),
        None => {}
    }
    if let Some((r, prefix)) = &s.reference {
        let d = if *prefix {
            Driver::ReferencePrefix(r.clone())
        } else {
            Driver::ReferenceIs(r.clone())
        };
        unless(d, b, &mut c);
    }
    if let Some(e) = &s.email {
        unless(Driver::EmailContains(e.clone()), b, &mut c);
    }
    if let Some(n) = &s.cardholder {
        unless(Driver::CardholderContains(n.clone()), b, &mut c);
    }
    if let Some(x) = &s.last4 {
        unless(Driver::LastFour(x.clone()), b, &mut c);
    }
    if let Some(x) = &s.first6 {
        unless(Driver::FirstSix(x.clone()), b, &mut c);
    }
    if let Some(k) = &s.case_reference {
        unless(Driver::CaseReference(k.clone()), b, &mut c);
    }
    if let Some(a) = &s.agreement {
        unless(Driver::Agreement(a.clone()), b, &mut c);
    }
    if let Some((k, v)) = &s.metadata {
        let walked = matches!((walk, v), (Walk::Metadata(wk, wv), Some(v)) if wk == k && wv == v);
        if !walked {
            unless(Driver::Metadata(k.clone(), v.clone()), b, &mut c);
        }
    }
    match &s.range {
        Some(Range::Settled(lo, hi)) => {
            let settled = Driver::Settled(lo.clone(), hi.clone());
            // A payment settles on or after the day it was made: a walk in time order starts
            // at the end of the range's last day (with a day to spare for time zones), not at
            // today's payments, which settle later.
            if skip != Some(&settled) {
                if let Some(bound) = hi.as_deref().and_then(created_before_settling) {
                    let col = if skip.is_some() || s.sort.by_amount() {
                        b.residual("created_at")
                    } else {
                        "j.created_at".to_string()
                    };
                    c.push(format!("{col} < {}", b.int(bound)));
                }
            }
            unless(settled, b, &mut c);
        }
        Some(Range::Created(lo, hi)) => {
            // A walk in time order reads it as a range of its index's second column; a
            // lookup, or a walk in amount order, only checks it.
            let col = if skip.is_some() || s.sort.by_amount() {
                b.residual("created_at")
            } else {
                "j.created_at".to_string()
            };
            c.extend(b.half_open(&col, *lo, *hi));
        }
        None => {}
    }
    let brand_amount = matches!(skip, Some(Driver::BrandAmount(..)));
    if let Some(brand) = &s.brand {
        if *walk != Walk::Brand(brand.clone()) && !brand_amount {
            c.push(format!("{} = {}", b.residual("card_brand"), b.text(brand)));
        }
    }
    if !s.groups.is_empty() {
        c.push(groups_condition(b, &s.groups, walk));
    }
    if (s.min_amount.is_some() || s.max_amount.is_some()) && !brand_amount {
        unless(Driver::Amount(s.min_amount, s.max_amount), b, &mut c);
    }
    if s.attention_only && *walk != Walk::Attention {
        c.push(format!("{} = TRUE", b.residual("needs_attention")));
    }
    c
}

/// A bound on the created time of payments settled on or before `day` (YYYY-MM-DD): the
/// start of the day after next, in UTC (a local day ends at most 14 hours after UTC's).
pub(super) fn created_before_settling(day: &str) -> Option<i64> {
    let mut parts = day.splitn(3, '-').map(str::parse::<i32>);
    let (y, m, d) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(y, month, u8::try_from(d).ok()?).ok()?;
    let after = date.checked_add(time::Duration::days(2))?;
    Some(crate::store::to_micros(after.midnight().assume_utc()))
}

/// The status groups as a condition. Statuses and codes come from a fixed list, so they are
/// written as literals.
fn groups_condition(b: &Builder, groups: &[StatusGroup], walk: &Walk) -> String {
    let status = b.residual("status");
    let code = b.residual("state_code");
    let mut alternatives = Vec::new();
    for g in groups {
        for (s, c) in g.members() {
            if let Walk::Status(walked) = walk {
                if walked != s {
                    continue;
                }
            }
            alternatives.push(match c {
                Some(c) => format!("({status} = '{s}' AND {code} = '{c}')"),
                None => format!("{status} = '{s}'"),
            });
        }
    }
    if alternatives.is_empty() {
        "FALSE".into()
    } else {
        format!("({})", alternatives.join(" OR "))
    }
}
