//! The filters that can lead a lookup (`Driver`), most selective first, each written two ways:
//! as the condition its own index serves, and as a plain check on the row. On SQLite a check
//! names its column `+j.column`, which keeps the planner off that column's index.

use crate::search::query::{BoxTerm, Range, Search, WORDS_MIN};
use crate::store::sql::Builder;
use crate::store::Backend;

use super::{LOOKUP_LIMIT, METADATA_LOOKUP_LIMIT};

/// A column that must not drive the query (see the module notes): on SQLite, `+j.column`.
pub(super) trait Unindexed {
    fn residual(&self, column: &str) -> String;
}

impl Unindexed for Builder {
    fn residual(&self, column: &str) -> String {
        match self.backend() {
            Backend::Sqlite => format!("+j.{column}"),
            Backend::Postgres => format!("j.{column}"),
        }
    }
}

/// `LIKE` pattern for "contains" / "starts with", with the wildcards in `v` escaped.
fn like(v: &str, prefix_only: bool) -> String {
    let escaped = v
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    if prefix_only {
        format!("{escaped}%")
    } else {
        format!("%{escaped}%")
    }
}

/// An FTS5 query for a phrase in one column: the trigrams of `v`, in order.
fn fts_phrase(column: &str, v: &str) -> String {
    format!("{column} : {}", fts_any(v))
}

/// An FTS5 query for a phrase in any of the table's columns.
fn fts_any(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// A reference without its prefix: the part of `column` (a lower-cased reference) after its
/// first hyphen, or all of it. The same expression as the index `journeys_service_reference_tail`.
fn reference_tail(b: &Builder, column: &str) -> String {
    match b.backend() {
        Backend::Sqlite => format!("substr({column}, instr({column}, '-') + 1)"),
        Backend::Postgres => format!("substr({column}, strpos({column}, '-') + 1)"),
    }
}

/// The filter a lookup is driven by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Driver {
    /// The search box's text, exactly: a payment id, a reference (with or without its
    /// prefix), the payment's or a refund's case reference, a provider id.
    Identifier(String),
    /// The search box's text as an identifier, or inside the payer's email or the
    /// cardholder's name.
    Words(String),
    EmailIs(String),
    LastFour(String),
    FirstSix(String),
    ReferenceIs(String),
    CaseReference(String),
    /// Payments taken under a recurring agreement (by its id).
    Agreement(String),
    Metadata(String, Option<String>),
    ReferencePrefix(String),
    EmailContains(String),
    CardholderContains(String),
    Settled(Option<String>, Option<String>),
    /// An amount range: drives counts only (a page in time order walks instead).
    Amount(Option<i64>, Option<i64>),
    /// One card brand's amount range: drives counts only, through the (service, brand,
    /// amount) index, when a page walks that brand.
    BrandAmount(String, Option<i64>, Option<i64>),
    /// The rows a probed driver found (few enough to lead), as their ids: the page and the
    /// count read these rows by id instead of asking the driver's index again.
    Found(Box<Driver>, Vec<i64>),
}

impl Driver {
    /// The filter that found the rows: itself, or what a `Found` found them by.
    pub(super) fn filter(&self) -> &Driver {
        match self {
            Driver::Found(d, _) => d,
            d => d,
        }
    }

    /// Whether counting through this filter's index beats walking: not for a trigram
    /// match on SQLite, which must find every match before it can count any.
    pub(super) fn counts_through_index(&self, backend: Backend) -> bool {
        match self {
            Driver::EmailContains(_) | Driver::CardholderContains(_) | Driver::Words(_) => {
                backend == Backend::Postgres
            }
            _ => true,
        }
    }

    /// The most rows a probe may find for this driver to lead a lookup (its rows are all read
    /// and sorted for the page). A metadata value has a walk of its own in page order
    /// (`Walk::Metadata`) that reads only the page's rows, so it leads only when it is rare.
    pub(super) fn lookup_limit(&self) -> i64 {
        match self {
            Driver::Metadata(_, Some(_)) => METADATA_LOOKUP_LIMIT,
            _ => LOOKUP_LIMIT,
        }
    }

    /// Whether a probe keeps the ids it finds, for the page and the count to read by id: for
    /// a trigram match, which costs far more than reading a few thousand rows by id. (A
    /// btree range is cheaper to ask again than its ids are to pass around.)
    pub(super) fn probe_keeps_ids(&self) -> bool {
        matches!(
            self,
            Driver::EmailContains(_) | Driver::CardholderContains(_) | Driver::Words(_)
        )
    }

    /// Whether the driver's filter can match many rows: it drives only when a probe finds
    /// few enough.
    pub(super) fn needs_probe(&self) -> bool {
        matches!(
            self,
            Driver::ReferencePrefix(_)
                | Driver::Words(_)
                | Driver::EmailContains(_)
                | Driver::CardholderContains(_)
                | Driver::FirstSix(_)
                | Driver::Metadata(..)
                | Driver::Settled(..)
        )
    }
}

/// The search box's text that is not an email or card digits: looked for inside names and
/// emails as well when it is long enough.
pub(super) fn box_text(t: &str) -> Driver {
    if t.chars().count() >= WORDS_MIN {
        Driver::Words(t.to_string())
    } else {
        Driver::Identifier(t.to_string())
    }
}

/// The candidate drivers of a search, most selective first.
pub(super) fn drivers(s: &Search, backend: Backend) -> Vec<Driver> {
    let mut d = Vec::new();
    match &s.text {
        Some(BoxTerm::Identifier(t)) => d.push(box_text(t)),
        Some(BoxTerm::Email(e)) => d.push(Driver::EmailIs(e.clone())),
        Some(BoxTerm::LastFour(x)) => d.push(Driver::LastFour(x.clone())),
        _ => {}
    }
    if let Some(x) = &s.last4 {
        d.push(Driver::LastFour(x.clone()));
    }
    if let Some((r, false)) = &s.reference {
        d.push(Driver::ReferenceIs(r.clone()));
    }
    if let Some(c) = &s.case_reference {
        d.push(Driver::CaseReference(c.clone()));
    }
    if let Some(a) = &s.agreement {
        d.push(Driver::Agreement(a.clone()));
    }
    if let Some((k, Some(v))) = &s.metadata {
        d.push(Driver::Metadata(k.clone(), Some(v.clone())));
    }
    // Those that may match many rows come last, each probed before it drives.
    if let Some((r, true)) = &s.reference {
        d.push(Driver::ReferencePrefix(r.clone()));
    }
    // A trigram index needs three characters to look anything up.
    let trigram = |v: &str| v.chars().count() >= 3 || backend == Backend::Postgres;
    match &s.text {
        Some(BoxTerm::EmailPart(e)) if trigram(e) => d.push(Driver::EmailContains(e.clone())),
        Some(BoxTerm::FirstSix(x)) => d.push(Driver::FirstSix(x.clone())),
        _ => {}
    }
    if let Some(e) = &s.email {
        if trigram(e) {
            d.push(Driver::EmailContains(e.clone()));
        }
    }
    if let Some(c) = &s.cardholder {
        if trigram(c) {
            d.push(Driver::CardholderContains(c.clone()));
        }
    }
    if let Some(x) = &s.first6 {
        d.push(Driver::FirstSix(x.clone()));
    }
    if let Some((k, None)) = &s.metadata {
        d.push(Driver::Metadata(k.clone(), None));
    }
    if let Some(Range::Settled(lo, hi)) = &s.range {
        d.push(Driver::Settled(lo.clone(), hi.clone()));
    }
    d
}

/// The services condition of a lookup. A driver that finds journey ids itself (a subquery,
/// the trigram index) must not be displaced on SQLite by the service's date index.
pub(super) fn lookup_scope(b: &mut Builder, d: &Driver, services: &[i64]) -> String {
    let by_id = matches!(
        d,
        Driver::Identifier(_)
            | Driver::Words(_)
            | Driver::Metadata(..)
            | Driver::Agreement(_)
            | Driver::EmailContains(_)
            | Driver::CardholderContains(_)
            | Driver::Found(..)
    );
    let ids = b.ids(services);
    if by_id {
        format!("{} IN ({ids})", b.residual("service_id"))
    } else {
        format!("j.service_id IN ({ids})")
    }
}

/// The condition a driver adds, written so that its index serves it.
pub(super) fn driver_condition(b: &mut Builder, d: &Driver, services: &[i64]) -> String {
    match d {
        Driver::Identifier(t) => format!("j.id IN ({})", identifier_ids(b, t, services)),
        Driver::Words(t) => {
            let ids = identifier_ids(b, t, services);
            let words = match b.backend() {
                Backend::Sqlite => format!(
                    "SELECT rowid FROM journey_text WHERE journey_text MATCH {}",
                    b.text(&fts_any(&t.to_lowercase()))
                ),
                Backend::Postgres => {
                    let scope = b.ids(services);
                    let pattern = like(&t.to_lowercase(), false);
                    let (e, n) = (b.text(&pattern), b.text(&pattern));
                    format!(
                        "SELECT id FROM journeys WHERE service_id IN ({scope}) AND \
                         (email_key LIKE {e} ESCAPE '\\' OR lower(cardholder_name) LIKE {n} ESCAPE '\\')"
                    )
                }
            };
            format!("j.id IN ({ids} UNION {words})")
        }
        Driver::EmailIs(e) => format!("j.email_key = {}", b.text(e)),
        Driver::LastFour(x) => format!("j.last_digits = {}", b.text(x)),
        Driver::FirstSix(x) => format!("j.first_digits = {}", b.text(x)),
        Driver::ReferenceIs(r) => format!("j.reference_key = {}", b.text(r)),
        Driver::CaseReference(c) => format!("lower(j.case_reference) = {}", b.text(c)),
        Driver::Agreement(a) => {
            let ids = b.ids(services);
            let a = b.text(a);
            format!(
                "j.id IN (SELECT aj.id FROM agreement_payments ap \
                 JOIN journeys aj ON aj.service_id = ap.service_id AND aj.payment_id = ap.payment_id \
                 WHERE ap.service_id IN ({ids}) AND ap.agreement_id = {a})"
            )
        }
        Driver::Metadata(k, v) => {
            let ids = b.ids(services);
            let key = b.text(k);
            match v {
                Some(v) => {
                    let value = b.text(v);
                    format!("j.id IN (SELECT journey_id FROM journey_metadata WHERE service_id IN ({ids}) AND key = {key} AND value_key = {value})")
                }
                None => format!("j.id IN (SELECT journey_id FROM journey_metadata WHERE service_id IN ({ids}) AND key = {key})"),
            }
        }
        Driver::ReferencePrefix(r) => match b.backend() {
            // SQLite compares bytes: the prefix's range is [r, r + U+10FFFF).
            Backend::Sqlite => {
                let lo = b.text(r);
                let hi = b.text(&format!("{r}\u{10FFFF}"));
                format!("j.reference_key >= {lo} AND j.reference_key < {hi}")
            }
            Backend::Postgres => {
                format!(
                    "j.reference_key LIKE {} ESCAPE '\\'",
                    b.text(&like(r, true))
                )
            }
        },
        Driver::EmailContains(e) => match b.backend() {
            Backend::Sqlite => format!(
                "j.id IN (SELECT rowid FROM journey_text WHERE journey_text MATCH {})",
                b.text(&fts_phrase("email", e))
            ),
            Backend::Postgres => {
                format!("j.email_key LIKE {} ESCAPE '\\'", b.text(&like(e, false)))
            }
        },
        Driver::CardholderContains(c) => match b.backend() {
            Backend::Sqlite => format!(
                "j.id IN (SELECT rowid FROM journey_text WHERE journey_text MATCH {})",
                b.text(&fts_phrase("cardholder_name", c))
            ),
            Backend::Postgres => format!(
                "lower(j.cardholder_name) LIKE {} ESCAPE '\\'",
                b.text(&like(c, false))
            ),
        },
        Driver::Amount(lo, hi) => amount_condition(b, "j.amount", *lo, *hi),
        Driver::BrandAmount(brand, lo, hi) => {
            let brand = b.text(brand);
            let amount = amount_condition(b, "j.amount", *lo, *hi);
            format!("j.card_brand = {brand} AND {amount}")
        }
        Driver::Found(_, ids) => b.one_of("j.id", ids),
        Driver::Settled(lo, hi) => {
            let mut parts = vec!["j.settled_date IS NOT NULL".to_string()];
            parts.extend(b.dates("j.settled_date", lo.as_deref(), hi.as_deref()));
            parts.join(" AND ")
        }
    }
}

/// The journeys (within `services`) that the search box's text names exactly, each through its
/// own index: reference, reference without its prefix, payment id, case reference, provider
/// id, and the case reference typed for one of its refunds.
fn identifier_ids(b: &mut Builder, t: &str, services: &[i64]) -> String {
    let lower = t.to_lowercase();
    let tail = reference_tail(b, "reference_key");
    let (s1, r) = (b.ids(services), b.text(&lower));
    let (s2, p) = (b.ids(services), b.text(t));
    let (s3, c) = (b.ids(services), b.text(&lower));
    let (s4, v) = (b.ids(services), b.text(t));
    let (s5, rt) = (b.ids(services), b.text(&lower));
    let (s6, rc) = (b.ids(services), b.text(&lower));
    format!(
        "SELECT id FROM journeys WHERE service_id IN ({s1}) AND reference_key = {r} \
         UNION SELECT id FROM journeys WHERE payment_id = {p} AND service_id IN ({s2}) \
         UNION SELECT id FROM journeys WHERE service_id IN ({s3}) AND lower(case_reference) = {c} \
         UNION SELECT id FROM journeys WHERE service_id IN ({s4}) AND provider_id = {v} \
         UNION SELECT id FROM journeys WHERE service_id IN ({s5}) AND {tail} = {rt} \
         UNION SELECT journey_id FROM refund_requests WHERE service_id IN ({s6}) AND lower(case_reference) = {rc}"
    )
}

/// An amount range on `col`, either end open.
pub(super) fn amount_condition(
    b: &mut Builder,
    col: &str,
    lo: Option<i64>,
    hi: Option<i64>,
) -> String {
    let parts = b.inclusive(col, lo, hi);
    if parts.is_empty() {
        "TRUE".into()
    } else {
        parts.join(" AND ")
    }
}

/// The search box's text as an exact identifier, checked on the row (see `identifier_ids`).
fn identifier_check(b: &mut Builder, t: &str) -> String {
    let lower = t.to_lowercase();
    let reference = b.residual("reference_key");
    let tail = reference_tail(b, &reference);
    let (r, p, c, v) = (b.text(&lower), b.text(t), b.text(&lower), b.text(t));
    let (rt, rc) = (b.text(&lower), b.text(&lower));
    format!(
        "({reference} = {r} OR {} = {p} OR lower({}) = {c} OR {} = {v} OR {tail} = {rt} \
         OR EXISTS (SELECT 1 FROM refund_requests rr WHERE rr.journey_id = j.id AND lower(rr.case_reference) = {rc}))",
        b.residual("payment_id"),
        b.residual("case_reference"),
        b.residual("provider_id")
    )
}

/// A driver's filter written as a plain check on the row (no index wanted).
pub(super) fn residual_condition(b: &mut Builder, d: &Driver) -> String {
    match d {
        Driver::Found(filter, _) => residual_condition(b, filter),
        Driver::Identifier(t) => identifier_check(b, t),
        Driver::Words(t) => {
            let exact = identifier_check(b, t);
            let pattern = like(&t.to_lowercase(), false);
            let (e, n) = (b.text(&pattern), b.text(&pattern));
            format!(
                "({exact} OR {} LIKE {e} ESCAPE '\\' OR lower({}) LIKE {n} ESCAPE '\\')",
                b.residual("email_key"),
                b.residual("cardholder_name")
            )
        }
        Driver::EmailIs(e) => format!("{} = {}", b.residual("email_key"), b.text(e)),
        Driver::LastFour(x) => format!("{} = {}", b.residual("last_digits"), b.text(x)),
        Driver::FirstSix(x) => format!("{} = {}", b.residual("first_digits"), b.text(x)),
        Driver::ReferenceIs(r) => format!("{} = {}", b.residual("reference_key"), b.text(r)),
        Driver::ReferencePrefix(r) => format!(
            "{} LIKE {} ESCAPE '\\'",
            b.residual("reference_key"),
            b.text(&like(r, true))
        ),
        Driver::CaseReference(c) => {
            format!("lower({}) = {}", b.residual("case_reference"), b.text(c))
        }
        Driver::Agreement(a) => format!(
            "EXISTS (SELECT 1 FROM agreement_payments ap WHERE ap.service_id = j.service_id \
             AND ap.payment_id = j.payment_id AND ap.agreement_id = {})",
            b.text(a)
        ),
        Driver::EmailContains(e) => format!(
            "{} LIKE {} ESCAPE '\\'",
            b.residual("email_key"),
            b.text(&like(e, false))
        ),
        Driver::CardholderContains(n) => format!(
            "lower({}) LIKE {} ESCAPE '\\'",
            b.residual("cardholder_name"),
            b.text(&like(n, false))
        ),
        Driver::Metadata(k, v) => {
            let key = b.text(k);
            match v {
                Some(v) => {
                    let value = b.text(v);
                    format!("EXISTS (SELECT 1 FROM journey_metadata m WHERE m.journey_id = j.id AND m.key = {key} AND m.value_key = {value})")
                }
                None => format!("EXISTS (SELECT 1 FROM journey_metadata m WHERE m.journey_id = j.id AND m.key = {key})"),
            }
        }
        Driver::Amount(lo, hi) => {
            let col = b.residual("amount");
            amount_condition(b, &col, *lo, *hi)
        }
        Driver::BrandAmount(brand, lo, hi) => {
            let (col, brand_col) = (b.residual("amount"), b.residual("card_brand"));
            let brand = b.text(brand);
            let amount = amount_condition(b, &col, *lo, *hi);
            format!("{brand_col} = {brand} AND {amount}")
        }
        Driver::Settled(lo, hi) => {
            let col = b.residual("settled_date");
            let mut parts = vec![format!("{col} IS NOT NULL")];
            parts.extend(b.dates(&col, lo.as_deref(), hi.as_deref()));
            parts.join(" AND ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::search::testing::search;
    use crate::store::search::walks::{walks, Walk};

    #[test]
    fn selective_filters_drive_a_lookup_and_the_rest_walk() {
        let d = drivers(&search("q=4242&status=success"), Backend::Sqlite);
        assert_eq!(d[0], Driver::LastFour("4242".into()));
        let d = drivers(&search("status=success&brand=visa"), Backend::Sqlite);
        assert!(d.is_empty());
        assert_eq!(
            walks(&search("status=success&brand=visa")),
            vec![Walk::Brand("visa".into())]
        );
        assert_eq!(
            walks(&search("status=in_progress")).len(),
            4,
            "one walk per status in the group"
        );
        // Two letters are too short for a trigram index on SQLite: the walk filters instead.
        assert!(drivers(&search("email=jo"), Backend::Sqlite).is_empty());
        assert_eq!(
            drivers(&search("email=jo"), Backend::Postgres),
            vec![Driver::EmailContains("jo".into())]
        );
    }

    #[test]
    fn the_box_looks_inside_names_and_emails_from_three_characters() {
        let d = drivers(&search("q=Harris"), Backend::Sqlite);
        assert_eq!(d[0], Driver::Words("Harris".into()));
        assert!(d[0].needs_probe() && d[0].probe_keeps_ids());
        let d = drivers(&search("q=ab"), Backend::Postgres);
        assert_eq!(d[0], Driver::Identifier("ab".into()));
        assert!(!d[0].needs_probe());
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let mut b = Builder::new(backend);
            let found = driver_condition(&mut b, &Driver::Words("05461673".into()), &[1]);
            // The reference's tail is written as its index is, and a refund's case
            // reference is a way in of its own.
            let tail = match backend {
                Backend::Sqlite => "substr(reference_key, instr(reference_key, '-') + 1) = $",
                Backend::Postgres => "substr(reference_key, strpos(reference_key, '-') + 1) = $",
            };
            assert!(found.contains(tail), "{found}");
            assert!(found.contains("FROM refund_requests"), "{found}");
            // Walked, the same meaning is a check on each row.
            let check = residual_condition(&mut b, &Driver::Words("Harris".into()));
            assert!(
                check.contains("LIKE") && check.contains("EXISTS"),
                "{check}"
            );
        }
    }

    #[test]
    fn wildcards_typed_by_staff_are_literal() {
        assert_eq!(like("50%_off\\", false), "%50\\%\\_off\\\\%");
        assert_eq!(fts_phrase("email", "a\"b"), "email : \"a\"\"b\"");
    }
}
