//! The payments list's results table body, written in Rust with the template's own GOV.UK
//! markup (see `result_rows`), and the tag and card summary each row shows.

use std::collections::HashMap;

use super::format::local_time;
use super::html::Html;
use super::journey_lookup::page_href;
use crate::money::pounds as money;
use crate::search::query::{StatusGroup, BRANDS};
use crate::store::search as search_store;
use crate::timezone::Zone;

/// The results table's body: a row a payment. Written here rather than in the template
/// because, in Tera, these fifty rows were over a third of a list page's CPU (`perf` under
/// `paydesk bench search`); the markup is the template's own, GOV.UK table and tag classes.
pub(super) fn result_rows(
    rows: &[search_store::Row],
    names: &HashMap<i64, (&str, &str)>,
    links: &HashMap<i64, (String, String)>,
    back: &str,
    zone: Zone,
) -> String {
    let mut h = Html::with_capacity(rows.len() * 1100);
    for r in rows {
        let (slug, name) = names.get(&r.service_id).copied().unwrap_or(("", ""));
        h.raw("\n        <tr class=\"govuk-table__row\">\n          <td class=\"govuk-table__cell\"><a class=\"govuk-link\" href=\"")
            .text(&page_href(&r.payment_id, slug, back, &[]))
            .raw("\">")
            .text(&r.reference)
            .raw("</a>");
        if r.needs_attention {
            h.raw(" <strong class=\"govuk-tag govuk-tag--orange\">Needs attention</strong>");
        }
        if let Some((case_reference, link)) = links.get(&r.id) {
            h.raw("<br><a class=\"govuk-link\" href=\"")
                .text(link)
                .raw("\" rel=\"noreferrer\">Case ")
                .text(case_reference)
                .raw("<span class=\"govuk-visually-hidden\"> in case management</span></a>");
        }
        let (label, colour) = status_tag(StatusGroup::of(&r.status, r.state_code.as_deref()));
        h.raw("</td>\n          <td class=\"govuk-table__cell\">")
            .text(name)
            .raw("</td>\n          <td class=\"govuk-table__cell paydesk-break\">")
            .text(r.email.as_deref().unwrap_or(""))
            .raw("</td>\n          <td class=\"govuk-table__cell govuk-table__cell--numeric\">")
            .text(&money(r.amount))
            .raw("</td>\n          <td class=\"govuk-table__cell\"><strong class=\"govuk-tag govuk-tag--")
            .raw(colour)
            .raw("\">")
            .raw(label)
            .raw("</strong></td>\n          <td class=\"govuk-table__cell\">")
            .text(&card_summary(r.card_brand.as_deref(), r.last_digits.as_deref()))
            .raw("</td>\n          <td class=\"govuk-table__cell\">")
            .text(&local_time(zone, r.created_at))
            .raw("</td>\n        </tr>");
    }
    h.into_string()
}

/// A status group's tag text and colour, as the `govuk::status_tag` macro shows them.
fn status_tag(group: StatusGroup) -> (&'static str, &'static str) {
    let colour = match group {
        StatusGroup::InProgress => "blue",
        StatusGroup::Success => "green",
        StatusGroup::Declined | StatusGroup::Error => "red",
        StatusGroup::TimedOut => "grey",
        StatusGroup::Cancelled => "orange",
    };
    (group.label(), colour)
}

pub(super) fn card_summary(brand: Option<&str>, last4: Option<&str>) -> String {
    let brand = brand
        .map(|b| {
            BRANDS
                .iter()
                .find(|(v, _)| *v == b)
                .map(|(_, t)| t.to_string())
                .unwrap_or_else(|| b.to_string())
        })
        .unwrap_or_default();
    match last4 {
        Some(l) => format!("{brand} •••• {l}").trim().to_string(),
        None => brand,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list's tags, written in Rust, read as the journey page's `govuk::status_tag`.
    #[test]
    fn status_tags_match_the_design_system_macro() {
        let mut tera = rocket_dyn_templates::tera::Tera::default();
        let macros = std::fs::read_to_string("templates/macros/govuk.html.tera");
        assert!(macros.is_ok(), "the macros template is readable");
        let added = tera.add_raw_templates(vec![
            ("macros/govuk", macros.unwrap_or_default()),
            (
                "t",
                r#"{% import "macros/govuk" as govuk %}{{ govuk::status_tag(status=s) }}"#.into(),
            ),
        ]);
        assert!(added.is_ok(), "{added:?}");
        for group in StatusGroup::ALL {
            let mut ctx = rocket_dyn_templates::tera::Context::new();
            ctx.insert("s", group.name());
            let (label, colour) = status_tag(group);
            let ours = format!("<strong class=\"govuk-tag govuk-tag--{colour}\">{label}</strong>");
            let theirs = tera.render("t", &ctx).map(|h| h.trim().to_string()).ok();
            assert_eq!(Some(ours), theirs, "{group:?}");
        }
    }
}
