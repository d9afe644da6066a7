//! The SQL behind the payments search. A search always looks inside a list of services (the
//! ones the person holds, narrowed by the form), newest first (or by amount), a page at a time
//! with keyset cursors, and counts up to a cap.
//!
//! How a query is shaped, chosen per search (`Shape`):
//! - **Lookup**: a selective filter (an id, a reference, card digits, a whole email, a case
//!   reference, a metadata value, or a "contains" that matches few rows) finds the candidate
//!   rows through its own index; the few rows found are then sorted.
//! - **Branches**: anything else walks an index already in the page's order, once per service
//!   (and per status, or card brand, when those are asked for), each walk stopping after a
//!   page; the walks are merged by one outer ORDER BY ... LIMIT. A page never costs more than
//!   (branches x page size) index entries plus whatever the remaining filters skip.
//!
//! On SQLite the filters that are not meant to drive a query are written `+column`, which
//! keeps the planner from choosing their index; PostgreSQL's planner has statistics and is
//! left to choose. "Contains" uses a trigram index on both (FTS5 on SQLite, pg_trgm on
//! PostgreSQL).

use crate::on_db;
use crate::search::query::{BoxTerm, Range, Search, Sort, StatusGroup};
use crate::store::sql::{bound, Builder, Built};
use crate::store::{Backend, Db, StoreError, StoreResult};

/// A "contains" or prefix filter matching at most this many rows is a lookup.
pub const LOOKUP_LIMIT: i64 = 5_000;

/// One row of results.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub service_id: i64,
    pub payment_id: String,
    pub reference: String,
    pub email: Option<String>,
    pub amount: i64,
    pub status: String,
    pub state_code: Option<String>,
    pub card_brand: Option<String>,
    pub last_digits: Option<String>,
    pub created_at: i64,
    pub needs_attention: bool,
}

const COLUMNS: &str = "j.id, j.service_id, j.payment_id, j.reference, j.email, j.amount, j.status, j.state_code, j.card_brand, j.last_digits, j.created_at, j.needs_attention";
const OUTER_COLUMNS: &str = "id, service_id, payment_id, reference, email, amount, status, state_code, card_brand, last_digits, created_at, needs_attention";

/// A column that must not drive the query (see the module notes): on SQLite, `+j.column`.
trait Unindexed {
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
    format!("{column} : \"{}\"", v.replace('"', "\"\""))
}

/// The filter a lookup is driven by.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Driver {
    Identifier(String),
    EmailIs(String),
    LastFour(String),
    FirstSix(String),
    ReferenceIs(String),
    CaseReference(String),
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
    fn filter(&self) -> &Driver {
        match self {
            Driver::Found(d, _) => d,
            d => d,
        }
    }

    /// Whether counting through this filter's index beats walking: not for a trigram
    /// match on SQLite, which must find every match before it can count any.
    fn counts_through_index(&self, backend: Backend) -> bool {
        match self {
            Driver::EmailContains(_) | Driver::CardholderContains(_) => {
                backend == Backend::Postgres
            }
            _ => true,
        }
    }

    /// Whether a probe keeps the ids it finds, for the page and the count to read by id: for
    /// a trigram match, which costs far more than reading a few thousand rows by id. (A
    /// btree range is cheaper to ask again than its ids are to pass around.)
    fn probe_keeps_ids(&self) -> bool {
        matches!(
            self,
            Driver::EmailContains(_) | Driver::CardholderContains(_)
        )
    }

    /// Whether the driver's filter can match many rows: it drives only when a probe finds
    /// few enough.
    fn needs_probe(&self) -> bool {
        matches!(
            self,
            Driver::ReferencePrefix(_)
                | Driver::EmailContains(_)
                | Driver::CardholderContains(_)
                | Driver::FirstSix(_)
                | Driver::Metadata(..)
                | Driver::Settled(..)
        )
    }
}

/// The candidate drivers of a search, most selective first.
fn drivers(s: &Search, backend: Backend) -> Vec<Driver> {
    let mut d = Vec::new();
    match &s.text {
        Some(BoxTerm::Identifier(t)) => d.push(Driver::Identifier(t.clone())),
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
fn lookup_scope(b: &mut Builder, d: &Driver, services: &[i64]) -> String {
    let by_id = matches!(
        d,
        Driver::Identifier(_)
            | Driver::Metadata(..)
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
fn driver_condition(b: &mut Builder, d: &Driver, services: &[i64]) -> String {
    match d {
        Driver::Identifier(t) => {
            let lower = t.to_lowercase();
            let (s1, r) = (b.ids(services), b.text(&lower));
            let (s2, p) = (b.ids(services), b.text(t));
            let (s3, c) = (b.ids(services), b.text(&lower));
            let (s4, v) = (b.ids(services), b.text(t));
            format!(
                "j.id IN (SELECT id FROM journeys WHERE service_id IN ({s1}) AND reference_key = {r} \
                 UNION SELECT id FROM journeys WHERE payment_id = {p} AND service_id IN ({s2}) \
                 UNION SELECT id FROM journeys WHERE service_id IN ({s3}) AND lower(case_reference) = {c} \
                 UNION SELECT id FROM journeys WHERE service_id IN ({s4}) AND provider_id = {v})"
            )
        }
        Driver::EmailIs(e) => format!("j.email_key = {}", b.text(e)),
        Driver::LastFour(x) => format!("j.last_digits = {}", b.text(x)),
        Driver::FirstSix(x) => format!("j.first_digits = {}", b.text(x)),
        Driver::ReferenceIs(r) => format!("j.reference_key = {}", b.text(r)),
        Driver::CaseReference(c) => format!("lower(j.case_reference) = {}", b.text(c)),
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
        Driver::Found(_, ids) => {
            let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            match b.backend() {
                Backend::Sqlite => format!(
                    "j.id IN (SELECT value FROM json_each({}))",
                    b.text(&format!("[{list}]"))
                ),
                Backend::Postgres => format!(
                    "j.id = ANY(CAST({} AS BIGINT[]))",
                    b.text(&format!("{{{list}}}"))
                ),
            }
        }
        Driver::Settled(lo, hi) => {
            let mut parts = vec!["j.settled_date IS NOT NULL".to_string()];
            parts.extend(b.dates("j.settled_date", lo.as_deref(), hi.as_deref()));
            parts.join(" AND ")
        }
    }
}

/// How the rows of a branch walk are chosen: one status, one brand, the attention flag, or
/// every row of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Walk {
    All,
    Status(&'static str),
    Brand(String),
    Attention,
    /// One metadata key and value, in time order through the metadata table's own index
    /// (its rows carry their journey's created time).
    Metadata(String, String),
}

/// The walks for a branch search, per service.
fn walks(s: &Search) -> Vec<Walk> {
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
fn residuals(b: &mut Builder, s: &Search, skip: Option<&Driver>, walk: &Walk) -> Vec<String> {
    let mut c = Vec::new();
    let skip = skip.map(Driver::filter);
    let unless = |d: Driver, b: &mut Builder, c: &mut Vec<String>| {
        if skip != Some(&d) {
            let cond = residual_condition(b, &d);
            c.push(cond);
        }
    };
    match &s.text {
        Some(BoxTerm::Identifier(t)) => unless(Driver::Identifier(t.clone()), b, &mut c),
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

/// An amount range on `col`, either end open.
fn amount_condition(b: &mut Builder, col: &str, lo: Option<i64>, hi: Option<i64>) -> String {
    let parts = b.inclusive(col, lo, hi);
    if parts.is_empty() {
        "TRUE".into()
    } else {
        parts.join(" AND ")
    }
}

/// A bound on the created time of payments settled on or before `day` (YYYY-MM-DD): the
/// start of the day after next, in UTC (a local day ends at most 14 hours after UTC's).
fn created_before_settling(day: &str) -> Option<i64> {
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

/// A driver's filter written as a plain check on the row (no index wanted).
fn residual_condition(b: &mut Builder, d: &Driver) -> String {
    match d {
        Driver::Found(filter, _) => residual_condition(b, filter),
        Driver::Identifier(t) => {
            let lower = t.to_lowercase();
            let (r, p, c, v) = (b.text(&lower), b.text(t), b.text(&lower), b.text(t));
            format!(
                "({} = {r} OR {} = {p} OR lower({}) = {c} OR {} = {v})",
                b.residual("reference_key"),
                b.residual("payment_id"),
                b.residual("case_reference"),
                b.residual("provider_id")
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

/// The sort key column.
fn key_column(sort: Sort) -> &'static str {
    if sort.by_amount() {
        "amount"
    } else {
        "created_at"
    }
}

/// (ORDER BY for the walk, and the cursor's comparison), given the direction the rows are
/// read in: a "before" cursor reads backwards and the page is turned round afterwards.
fn order(s: &Search, prefix: &str, sortable: bool) -> (String, Option<&'static str>) {
    let key = key_column(s.sort);
    let reading_down = reads_down(s);
    let dir = if reading_down { "DESC" } else { "ASC" };
    let cmp = s.cursor.map(|_| if reading_down { "<" } else { ">" });
    let k = if sortable {
        format!("{prefix}{key}")
    } else {
        format!("+{prefix}{key}")
    };
    (format!("{k} {dir}, {prefix}id {dir}"), cmp)
}

/// Whether `s` reads its keys downwards: a descending sort read forwards, or an ascending
/// one read backwards (Previous).
fn reads_down(s: &Search) -> bool {
    s.sort.descending() == s.cursor.map(|c| c.after).unwrap_or(true)
}

fn cursor_condition(
    b: &mut Builder,
    s: &Search,
    cmp: Option<&str>,
    prefix: &str,
) -> Option<String> {
    let (c, cmp) = (s.cursor?, cmp?);
    let key = key_column(s.sort);
    let k = b.int(c.key);
    let id = b.int(c.id);
    Some(format!("({prefix}{key}, {prefix}id) {cmp} ({k}, {id})"))
}

/// The shape a search runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Lookup(String),
    Branches(usize),
}

/// The list query for `s` within `services`, driven by `driver` (a lookup) or walked.
/// One service's walk of a metadata key and value in the page's time order: through the
/// metadata table's (service, key, value, created, journey) index, each row found joined to
/// its journey for the remaining filters, stopping after a page.
fn metadata_walk(
    b: &mut Builder,
    s: &Search,
    service: i64,
    key: &str,
    value: &str,
    limit: i64,
    n: usize,
) -> String {
    let (svc, k, v) = (b.int(service), b.text(key), b.text(value));
    let mut conds = Vec::new();
    // The walk reads the time range on the metadata rows, where its index is.
    if let Some(Range::Created(lo, hi)) = &s.range {
        conds.extend(b.half_open("m.created_at", *lo, *hi));
    }
    // The remaining filters are checks on the journey found, never a way in.
    let walked = Driver::Metadata(key.to_string(), Some(value.to_string()));
    conds.extend(residuals(
        b,
        s,
        Some(&walked),
        &Walk::Metadata(key.to_string(), value.to_string()),
    ));
    let (ord, cmp) = order(s, "m.", true);
    conds.extend(cursor_condition(b, s, cmp, "m."));
    let lim = b.int(limit);
    let rest: String = conds.iter().map(|c| format!(" AND {c}")).collect();
    format!(
        "SELECT * FROM (SELECT {COLUMNS} FROM \
         (SELECT journey_id AS id, created_at FROM journey_metadata \
          WHERE service_id = {svc} AND key = {k} AND value_key = {v}) AS m \
         JOIN journeys j ON j.id = m.id WHERE TRUE{rest} ORDER BY {ord} LIMIT {lim}) AS b{n}"
    )
}

fn build_list(
    backend: Backend,
    services: &[i64],
    s: &Search,
    driver: Option<&Driver>,
    limit: i64,
) -> Built {
    let mut b = Builder::new(backend);
    match driver {
        Some(d) => {
            let mut conds = vec![lookup_scope(&mut b, d, services)];
            conds.push(driver_condition(&mut b, d, services));
            conds.extend(residuals(&mut b, s, Some(d), &Walk::All));
            // SQLite: sort the few rows found rather than walk the date index.
            let (ord, cmp) = order(s, "j.", backend == Backend::Postgres);
            conds.extend(cursor_condition(&mut b, s, cmp, "j."));
            let lim = b.int(limit);
            let sql = format!(
                "SELECT {COLUMNS} FROM journeys j WHERE {} ORDER BY {ord} LIMIT {lim}",
                conds.join(" AND ")
            );
            b.finish(sql)
        }
        None => {
            let mut parts = Vec::new();
            for service in services {
                for walk in walks(s) {
                    if let Walk::Metadata(key, value) = &walk {
                        parts.push(metadata_walk(
                            &mut b,
                            s,
                            *service,
                            key,
                            value,
                            limit,
                            parts.len(),
                        ));
                        continue;
                    }
                    let mut conds = vec![format!("j.service_id = {}", b.int(*service))];
                    match &walk {
                        Walk::All | Walk::Metadata(..) => {}
                        Walk::Status(st) => conds.push(format!("j.status = '{st}'")),
                        Walk::Brand(br) => conds.push(format!("j.card_brand = {}", b.text(br))),
                        Walk::Attention => conds.push("j.needs_attention".into()),
                    }
                    conds.extend(residuals(&mut b, s, None, &walk));
                    let (ord, cmp) = order(s, "j.", true);
                    conds.extend(cursor_condition(&mut b, s, cmp, "j."));
                    let lim = b.int(limit);
                    parts.push(format!(
                        "SELECT * FROM (SELECT {COLUMNS} FROM journeys j WHERE {} ORDER BY {ord} LIMIT {lim}) AS b{}",
                        conds.join(" AND "),
                        parts.len()
                    ));
                }
            }
            let (ord, _) = order(s, "", true);
            let lim = b.int(limit);
            let sql = if parts.len() == 1 {
                parts.remove(0)
            } else {
                format!(
                    "SELECT {OUTER_COLUMNS} FROM ({}) AS merged ORDER BY {ord} LIMIT {lim}",
                    parts.join(" UNION ALL ")
                )
            };
            b.finish(sql)
        }
    }
}

/// The count query: at most `cap` + 1 rows are counted.
fn build_count(
    backend: Backend,
    services: &[i64],
    s: &Search,
    driver: Option<&Driver>,
    cap: i64,
) -> Built {
    let mut b = Builder::new(backend);
    let mut s = s.clone();
    s.cursor = None;
    match driver {
        Some(d) => {
            let mut conds = vec![lookup_scope(&mut b, d, services)];
            conds.push(driver_condition(&mut b, d, services));
            conds.extend(residuals(&mut b, &s, Some(d), &Walk::All));
            let lim = b.int(cap + 1);
            let sql = format!(
                "SELECT COUNT(*) FROM (SELECT 1 AS one FROM journeys j WHERE {} LIMIT {lim}) AS c",
                conds.join(" AND ")
            );
            b.finish(sql)
        }
        None => {
            let mut parts = Vec::new();
            // Counting does not care about order: walk statuses even when sorting by amount.
            let mut by_time = s.clone();
            by_time.sort = Sort::Newest;
            for service in services {
                for walk in walks(&by_time) {
                    let mut conds = vec![format!("j.service_id = {}", b.int(*service))];
                    match &walk {
                        Walk::All => {}
                        Walk::Status(st) => conds.push(format!("j.status = '{st}'")),
                        Walk::Brand(br) => conds.push(format!("j.card_brand = {}", b.text(br))),
                        Walk::Attention => conds.push("j.needs_attention".into()),
                        Walk::Metadata(k, v) => {
                            let d = Driver::Metadata(k.clone(), Some(v.clone()));
                            conds.push(driver_condition(&mut b, &d, &[*service]));
                        }
                    }
                    conds.extend(residuals(&mut b, &by_time, None, &walk));
                    let lim = b.int(cap + 1);
                    parts.push(format!(
                        "(SELECT COUNT(*) FROM (SELECT 1 AS one FROM journeys j WHERE {} LIMIT {lim}) AS c{})",
                        conds.join(" AND "),
                        parts.len()
                    ));
                }
            }
            let sql = format!("SELECT {}", parts.join(" + "));
            b.finish(sql)
        }
    }
}

/// A probe: the rows the driver alone finds, up to the lookup limit + 1: their ids (see
/// `probe_keeps_ids`), or how many.
fn build_probe(backend: Backend, services: &[i64], d: &Driver) -> Built {
    let mut b = Builder::new(backend);
    let scope = lookup_scope(&mut b, d, services);
    let cond = driver_condition(&mut b, d, services);
    let lim = b.int(LOOKUP_LIMIT + 1);
    let found = format!("SELECT j.id FROM journeys j WHERE {scope} AND {cond} LIMIT {lim}");
    b.finish(if d.probe_keeps_ids() {
        found
    } else {
        format!("SELECT COUNT(*) FROM ({found}) AS p")
    })
}

async fn fetch_ids(db: &Db, built: &Built) -> StoreResult<Vec<i64>> {
    Ok(
        on_db!(db, pool => bound!(sqlx::query_scalar::<_, i64>(&built.sql), &built.binds).fetch_all(pool).await?),
    )
}

/// The rows of a list query, in `s`'s reading order.
///
/// SQLite hands each row's each value across a channel from its worker thread, copied; a
/// page of 51 rows is some 600 values. Read instead as one JSON array, it is one value, and
/// the list page (the console's busiest) does a third less work. The array is sorted here
/// rather than trusted to keep the subquery's order.
pub async fn fetch_rows(db: &Db, built: &Built, s: &Search) -> StoreResult<Vec<Row>> {
    match db {
        Db::Postgres(pool, _) => Ok(bound!(sqlx::query_as::<_, Row>(&built.sql), &built.binds)
            .fetch_all(pool)
            .await?),
        Db::Sqlite(pool, _) => {
            let sql = format!(
                "SELECT json_group_array(json_array({OUTER_COLUMNS})) FROM ({}) AS page",
                built.sql
            );
            let text: String = bound!(sqlx::query_scalar::<_, String>(&sql), &built.binds)
                .fetch_one(pool)
                .await?;
            let mut rows = unpack_rows(&text)?;
            sort_for_reading(&mut rows, s);
            Ok(rows)
        }
    }
}

/// A row as `json_array(OUTER_COLUMNS)` writes it.
type PackedRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

fn unpack_rows(text: &str) -> StoreResult<Vec<Row>> {
    let packed: Vec<PackedRow> = serde_json::from_str(text)
        .map_err(|e| StoreError::Invalid(format!("a page of search results read badly: {e}")))?;
    Ok(packed
        .into_iter()
        .map(|p| Row {
            id: p.0,
            service_id: p.1,
            payment_id: p.2,
            reference: p.3,
            email: p.4,
            amount: p.5,
            status: p.6,
            state_code: p.7,
            card_brand: p.8,
            last_digits: p.9,
            created_at: p.10,
            needs_attention: p.11 != 0,
        })
        .collect())
}

/// Put rows in the order `s` reads them (`order`'s): by the sort key, then id, downwards or
/// upwards.
pub fn sort_for_reading(rows: &mut [Row], s: &Search) {
    let by_amount = s.sort.by_amount();
    let key = |r: &Row| (if by_amount { r.amount } else { r.created_at }, r.id);
    if reads_down(s) {
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(key(r)));
    } else {
        rows.sort_unstable_by_key(key);
    }
}

pub async fn fetch_count(db: &Db, built: &Built) -> StoreResult<i64> {
    Ok(
        on_db!(db, pool => bound!(sqlx::query_scalar::<_, i64>(&built.sql), &built.binds).fetch_one(pool).await?),
    )
}

/// The queries a search will run: chosen after probing the drivers that need it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub shape: Shape,
    pub list: Built,
    pub count: Built,
    /// The count, when a probe has already counted exactly what `count` would.
    pub counted: Option<i64>,
    /// The probes run to choose, with what each found.
    pub probes: Vec<(Built, i64)>,
}

/// Choose how to run `s` in `services`: the first driver that is selective (or probes as
/// few enough rows) leads a lookup; with none, the search walks. `known_many` says of a probe
/// whether it is known to have found more than the lookup limit lately (it is not run again).
pub async fn plan(
    db: &Db,
    services: &[i64],
    s: &Search,
    limit: i64,
    cap: i64,
    known_many: &(dyn Fn(&Built) -> bool + Sync),
) -> StoreResult<Plan> {
    let backend = db.backend();
    let mut probes = Vec::new();
    let mut chosen = None;
    // Counting has no order to keep: a filter with an index of its own counts faster through
    // it than a walk that checks every row, even when it matches too many rows to lead the
    // page (the count stops at the cap either way).
    let mut counter = None;
    // A probe that found few enough rows of a search with no other filter has counted it.
    let mut counted = None;
    let mut shape = None;
    if !services.is_empty() {
        for d in drivers(s, backend) {
            if d.needs_probe() {
                let probe = build_probe(backend, services, &d);
                let (found, ids) = if known_many(&probe) {
                    (LOOKUP_LIMIT + 1, None)
                } else if d.probe_keeps_ids() {
                    let ids = fetch_ids(db, &probe).await?;
                    (ids.len() as i64, Some(ids))
                } else {
                    (fetch_count(db, &probe).await?, None)
                };
                probes.push((probe, found));
                if found > LOOKUP_LIMIT {
                    if counter.is_none() && d.counts_through_index(backend) {
                        counter = Some(d);
                    }
                    continue;
                }
                let mut scratch = Builder::new(backend);
                if residuals(&mut scratch, s, Some(&d), &Walk::All).is_empty() {
                    counted = Some(found);
                }
                shape = Some(Shape::Lookup(format!("{d:?}")));
                // The page and the count read the rows found by id: the trigram index is
                // asked once.
                chosen = Some(match ids {
                    Some(ids) => Driver::Found(Box::new(d), ids),
                    None => d,
                });
                break;
            }
            shape = Some(Shape::Lookup(format!("{d:?}")));
            chosen = Some(d);
            break;
        }
    }
    let counter = chosen.clone().or(counter).or_else(|| {
        if s.min_amount.is_none() && s.max_amount.is_none() {
            return None;
        }
        match walks(s).as_slice() {
            [Walk::All] => Some(Driver::Amount(s.min_amount, s.max_amount)),
            [Walk::Brand(brand)] => Some(Driver::BrandAmount(
                brand.clone(),
                s.min_amount,
                s.max_amount,
            )),
            // A walk of statuses is an index range already.
            _ => None,
        }
    });
    let shape = shape.unwrap_or_else(|| Shape::Branches(services.len() * walks(s).len()));
    Ok(Plan {
        shape,
        list: build_list(backend, services, s, chosen.as_ref(), limit),
        count: build_count(backend, services, s, counter.as_ref(), cap),
        counted,
        probes,
    })
}

/// The database's plan for a query, as text.
pub async fn explain(db: &Db, built: &Built) -> StoreResult<String> {
    match db {
        Db::Sqlite(pool, _) => {
            let sql = format!("EXPLAIN QUERY PLAN {}", built.sql);
            let rows: Vec<(i64, i64, i64, String)> = bound!(sqlx::query_as(&sql), &built.binds)
                .fetch_all(pool)
                .await?;
            Ok(rows
                .into_iter()
                .map(|(_, _, _, d)| d)
                .collect::<Vec<_>>()
                .join("\n"))
        }
        Db::Postgres(pool, _) => {
            let sql = format!("EXPLAIN {}", built.sql);
            let rows: Vec<String> = bound!(sqlx::query_scalar(&sql), &built.binds)
                .fetch_all(pool)
                .await?;
            Ok(rows.join("\n"))
        }
    }
}

/// Journeys by platform payment id within `services` (the search box's id, a journey page).
pub async fn by_payment_id(
    db: &Db,
    services: &[i64],
    payment_id: &str,
) -> StoreResult<Vec<(i64, i64)>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = Builder::new(db.backend());
    let p = b.text(payment_id);
    let ids = b.ids(services);
    let built = b.finish(format!(
        "SELECT id, service_id FROM journeys WHERE payment_id = {p} AND service_id IN ({ids}) ORDER BY service_id"
    ));
    Ok(on_db!(db, pool => bound!(sqlx::query_as(&built.sql), &built.binds).fetch_all(pool).await?))
}

/// Let the planner learn the tables' shape (SQLite keeps no statistics unless asked).
pub async fn refresh_statistics(db: &Db) -> StoreResult<()> {
    match db {
        Db::Sqlite(_, writer) => {
            sqlx::raw_sql("PRAGMA analysis_limit = 1000; ANALYZE journeys; ANALYZE journey_metadata; PRAGMA optimize;")
                .execute(&writer.pool)
                .await?;
        }
        Db::Postgres(pool, _) => {
            sqlx::raw_sql("ANALYZE journeys; ANALYZE journey_metadata;")
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::query::{Cursor, Form};

    fn search(q: &str) -> Search {
        crate::search::query::parse(
            &Form::from_query(q),
            time::macros::datetime!(2026-07-15 10:00 UTC),
            crate::timezone::Zone::utc(),
        )
        .unwrap()
    }

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
    fn walks_are_one_per_service_and_merged() {
        let s = search("status=success&status=declined");
        let built = build_list(Backend::Sqlite, &[1, 2], &s, None, 51);
        assert_eq!(built.sql.matches("SELECT * FROM (SELECT").count(), 4);
        assert!(built.sql.contains("UNION ALL"));
        assert!(built
            .sql
            .ends_with(&format!("LIMIT ${}", built.binds.len())));
        let one = build_list(Backend::Postgres, &[1], &search(""), None, 51);
        assert!(!one.sql.contains("UNION"));
    }

    #[test]
    fn cursors_read_forwards_and_backwards() {
        let mut s = search("");
        s.cursor = Some(Cursor {
            key: 10,
            id: 5,
            after: true,
        });
        let built = build_list(Backend::Postgres, &[1], &s, None, 51);
        assert!(
            built.sql.contains("(j.created_at, j.id) < ("),
            "{}",
            built.sql
        );
        assert!(built.sql.contains("DESC"));
        s.cursor = Some(Cursor {
            key: 10,
            id: 5,
            after: false,
        });
        let built = build_list(Backend::Postgres, &[1], &s, None, 51);
        assert!(
            built.sql.contains("(j.created_at, j.id) > ("),
            "{}",
            built.sql
        );
        assert!(built.sql.contains("ASC"));
    }

    #[test]
    fn a_metadata_value_walks_the_metadata_rows_in_page_order() {
        let s = search("meta_key=ledger_code&meta_value=AB12&status=success");
        assert_eq!(
            walks(&s),
            vec![Walk::Metadata("ledger_code".into(), "ab12".into())]
        );
        let built = build_list(Backend::Postgres, &[1, 2], &s, None, 51);
        assert!(built.sql.contains("FROM journey_metadata"), "{}", built.sql);
        assert!(
            built.sql.contains("ORDER BY m.created_at DESC, m.id DESC"),
            "{}",
            built.sql
        );
        // The pair is the walk, not a check on each row; the status is a check.
        assert!(!built.sql.contains("EXISTS"), "{}", built.sql);
        assert!(built.sql.contains("j.status"), "{}", built.sql);
        // A key alone, or a sort by amount, walks as before.
        assert_eq!(walks(&search("meta_key=ledger_code")), vec![Walk::All]);
        assert_eq!(
            walks(&search(
                "meta_key=ledger_code&meta_value=x&sort=amount_high"
            )),
            vec![Walk::All]
        );
    }

    #[test]
    fn a_brand_and_amount_count_through_their_own_index() {
        let s = search("brand=visa&min_amount=20&max_amount=25");
        let d = Driver::BrandAmount("visa".into(), s.min_amount, s.max_amount);
        let count = build_count(Backend::Sqlite, &[1, 2], &s, Some(&d), 10_000);
        assert!(
            count.sql.contains("j.card_brand = $") && count.sql.contains("j.amount >= $"),
            "{}",
            count.sql
        );
        // Neither is checked twice.
        assert!(!count.sql.contains("+j.card_brand"), "{}", count.sql);
        assert!(!count.sql.contains("+j.amount"), "{}", count.sql);
    }

    #[test]
    fn a_settled_range_bounds_the_created_time_it_walks() {
        assert_eq!(
            created_before_settling("2026-10-30"),
            Some(crate::store::to_micros(
                time::macros::datetime!(2026-11-01 00:00 UTC)
            ))
        );
        assert_eq!(created_before_settling("2026-13-01"), None);
        assert_eq!(created_before_settling("soon"), None);
        let mut s = search("");
        s.range = Some(Range::Settled(None, Some("2026-10-30".into())));
        let walk = build_list(Backend::Sqlite, &[1], &s, None, 51);
        assert!(walk.sql.contains("j.created_at < $"), "{}", walk.sql);
        // Led by the settled index, the bound is not needed.
        let d = Driver::Settled(None, Some("2026-10-30".into()));
        let lookup = build_list(Backend::Sqlite, &[1], &s, Some(&d), 51);
        assert!(!lookup.sql.contains("created_at <"), "{}", lookup.sql);
    }

    #[test]
    fn wildcards_typed_by_staff_are_literal() {
        assert_eq!(like("50%_off\\", false), "%50\\%\\_off\\\\%");
        assert_eq!(fts_phrase("email", "a\"b"), "email : \"a\"\"b\"");
    }

    #[test]
    fn a_packed_page_reads_back_and_sorts_in_reading_order() {
        let text = r#"[[7,1,"pay7","R-7","a@b.example",1250,"success",null,"visa","4242",300,0],
            [9,2,"pay9","R-9",null,99,"failed","P0010",null,null,300,1],
            [3,1,"pay3","R-\"3\"","x@y.example",5000,"created",null,"master-card","1111",100,0]]"#;
        let mut rows = unpack_rows(text).unwrap();
        assert_eq!(rows[1].email, None);
        assert_eq!(rows[1].state_code.as_deref(), Some("P0010"));
        assert!(rows[1].needs_attention && !rows[0].needs_attention);
        assert_eq!(rows[2].reference, "R-\"3\"");
        let ids = |rows: &[Row]| rows.iter().map(|r| r.id).collect::<Vec<_>>();
        // Newest first: by created, then id, both downwards.
        sort_for_reading(&mut rows, &search(""));
        assert_eq!(ids(&rows), [9, 7, 3]);
        // Previous from a newest-first page reads upwards.
        let mut back = search("");
        back.cursor = Some(Cursor {
            key: 50,
            id: 1,
            after: false,
        });
        sort_for_reading(&mut rows, &back);
        assert_eq!(ids(&rows), [3, 7, 9]);
        // By amount, largest first.
        sort_for_reading(&mut rows, &search("sort=amount_high"));
        assert_eq!(ids(&rows), [3, 7, 9]);
        sort_for_reading(&mut rows, &search("sort=amount_low"));
        assert_eq!(ids(&rows), [9, 7, 3]);
        assert!(unpack_rows("[]").unwrap().is_empty());
        assert!(unpack_rows("[[1,2]]").is_err());
    }
}
