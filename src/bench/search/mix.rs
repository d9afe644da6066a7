//! The fixed mix of searches and journey pages, with values read from the seeded data.

use anyhow::anyhow;
use time::OffsetDateTime;

use super::database::*;
use crate::search::query::{self, Form, Period, Sort, StatusGroup};
use crate::services;
use crate::store;
use crate::AppState;

// ---- the mix ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) kind: CaseKind,
}

#[derive(Debug, Clone)]
pub(crate) enum CaseKind {
    /// `/payments?{query}`.
    List { query: String },
    /// `/payments/{payment_id}?service={slug}`.
    Journey {
        payment_id: String,
        service_id: i64,
        slug: String,
    },
    /// `/disputes?{query}` (needing a response first), every bench service.
    Disputes {
        query: String,
        status: Option<String>,
    },
    /// `/agreements?{query}` (newest first), every bench service.
    Agreements {
        query: String,
        reference: Option<String>,
        status: Option<String>,
    },
}

impl CaseKind {
    /// Whether the page is one a viewer may not open (disputes, agreements): the bench's
    /// service admin asks for it.
    pub(crate) fn needs_admin(&self) -> bool {
        matches!(
            self,
            CaseKind::Disputes { .. } | CaseKind::Agreements { .. }
        )
    }

    /// The page's address under `base`.
    pub(crate) fn url(&self, base: &str) -> String {
        let with = |path: &str, query: &str| {
            if query.is_empty() {
                format!("{base}{path}")
            } else {
                format!("{base}{path}?{query}")
            }
        };
        match self {
            CaseKind::List { query } => list_url(base, query),
            CaseKind::Journey {
                payment_id, slug, ..
            } => format!("{base}/payments/{}?service={}", enc(payment_id), enc(slug)),
            CaseKind::Disputes { query, .. } => with("/disputes", query),
            CaseKind::Agreements { query, .. } => with("/agreements", query),
        }
    }
}

pub(crate) fn list(name: &str, query: String) -> Case {
    Case {
        name: name.to_string(),
        kind: CaseKind::List { query },
    }
}

pub(crate) fn enc(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// A reference without its prefix: what follows its first hyphen.
fn tail(reference: &str) -> &str {
    reference
        .split_once('-')
        .map_or(reference, |(_, rest)| rest)
}

/// The fixed mix, with values read from the seeded data.
pub(crate) async fn mix(
    state: &AppState,
    services: &[BenchService],
    held: i64,
) -> anyhow::Result<Vec<Case>> {
    let db = &state.db;
    let main = &services[0];
    let sample = sample_journey(db, main.id, held / 2)
        .await?
        .ok_or_else(|| anyhow!("no journey with a case reference to take search values from"))?;
    let need = |v: &Option<String>, what: &str| {
        v.clone()
            .ok_or_else(|| anyhow!("the sample journey has no {what}"))
    };
    let email = need(&sample.email, "email")?;
    let last4 = need(&sample.last_digits, "last digits")?;
    let first6 = need(&sample.first_digits, "first digits")?;
    let case_ref = need(&sample.case_reference, "case reference")?;
    let cardholder = need(&sample.cardholder_name, "cardholder")?.to_lowercase();
    // "jane.smith1234@example.org": the name part, and the family name alone.
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    let name_part: String = local
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .to_string();
    let family = name_part
        .split('.')
        .nth(1)
        .unwrap_or(&name_part)
        .to_string();
    let prefix = &sample.reference[..sample.reference.len().saturating_sub(3)];

    let now = OffsetDateTime::now_utc();
    let day = |back: i64| {
        let d = (now - time::Duration::days(back)).date();
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    };

    let mut cases = vec![
        list("default list", String::new()),
        list("box: payment id", format!("q={}", enc(&sample.payment_id))),
        list("box: reference", format!("q={}", enc(&sample.reference))),
        list("box: email", format!("q={}", enc(&email))),
        list("box: last 4", format!("q={last4}")),
        list("box: first 6", format!("q={first6}")),
        list("box: case reference", format!("q={}", enc(&case_ref))),
        list("box: cardholder name", format!("q={}", enc(&cardholder))),
        list("box: surname", format!("q={}", enc(&family))),
        list("box: part of an email", format!("q={}", enc(&name_part))),
        list(
            "box: reference without prefix",
            format!("q={}", enc(tail(&sample.reference))),
        ),
        list(
            "reference is",
            format!("reference={}", enc(&sample.reference)),
        ),
        list(
            "reference starts with",
            format!("reference={}&reference_match=prefix", enc(prefix)),
        ),
        list(
            "email contains (name)",
            format!("email={}", enc(&name_part)),
        ),
        list(
            "email contains (family name)",
            format!("email={}", enc(&family)),
        ),
        list(
            "cardholder contains",
            format!("cardholder={}", enc(&cardholder)),
        ),
        list("last 4", format!("last4={last4}")),
        list("first 6", format!("first6={first6}")),
        list("brand: american express", "brand=american-express".into()),
        list(
            "status: success",
            format!("status={}", StatusGroup::Success.name()),
        ),
        list(
            "status: declined",
            format!("status={}", StatusGroup::Declined.name()),
        ),
        list(
            "status: error",
            format!("status={}", StatusGroup::Error.name()),
        ),
        list(
            "status: in progress",
            format!("status={}", StatusGroup::InProgress.name()),
        ),
        list("period: today", format!("period={}", Period::Today.key())),
        list(
            "period: last 30 days",
            format!("period={}", Period::Last30Days.key()),
        ),
        list(
            "period: previous month",
            format!("period={}", Period::PreviousMonth.key()),
        ),
        list(
            "from/to with times",
            format!(
                "from_date={}&from_time=09%3A00&to_date={}&to_time=17%3A30",
                day(62),
                day(60)
            ),
        ),
        list(
            "settled date range",
            format!(
                "date_field=settled&from_date={}&to_date={}",
                day(40),
                day(39)
            ),
        ),
        list("amount range", "min_amount=100&max_amount=110".into()),
        list(
            "metadata key and value",
            "meta_key=ledger_code&meta_value=LC042".into(),
        ),
        list(
            "case reference",
            format!("case_reference={}", enc(&case_ref)),
        ),
        list("needs attention", "attention=yes".into()),
        list(
            "status + period",
            format!(
                "status={}&period={}",
                StatusGroup::Success.name(),
                Period::Last30Days.key()
            ),
        ),
        list(
            "brand + amount",
            "brand=visa&min_amount=20&max_amount=25".into(),
        ),
        list(
            "service + status + period",
            format!(
                "service={}&status={}&period={}",
                services[1].slug,
                StatusGroup::Declined.name(),
                Period::PreviousMonth.key()
            ),
        ),
        list(
            "email + status",
            format!(
                "email={}&status={}",
                enc(&name_part),
                StatusGroup::Success.name()
            ),
        ),
        list(
            "sort by amount",
            format!("sort={}", Sort::AmountHigh.name()),
        ),
    ];

    // Deep pages: Next followed 20 times from the default list, Previous from there, and a
    // cursor a year back.
    let ids = page_services(state, &Form::default()).await?;
    let mut form = Form::default();
    for _ in 0..20 {
        let results = crate::search::run(db, &ids, &parse(state, &form)?).await?;
        let next = results
            .next
            .ok_or_else(|| anyhow!("the default list has fewer than 21 pages"))?;
        form = Form {
            after: next,
            ..Form::default()
        };
    }
    let previous = crate::search::run(db, &ids, &parse(state, &form)?)
        .await?
        .previous;
    cases.push(list("deep: page 21 (Next x20)", form.to_query()));
    if let Some(p) = previous {
        let back = Form {
            before: p,
            ..Form::default()
        };
        cases.push(list("deep: Previous from page 21", back.to_query()));
    }
    let year_ago = store::to_micros(now - time::Duration::days(365));
    let cursor = newest_key_at_or_before(db, main.id, year_ago).await?;
    if let Some((key, id)) = cursor {
        cases.push(list(
            "deep: cursor a year back",
            format!("after={key}_{id}"),
        ));
    }
    // Finance's disputes list and a caseworker's agreement search, at the same scale.
    cases.push(Case {
        name: "disputes: list".into(),
        kind: CaseKind::Disputes {
            query: String::new(),
            status: None,
        },
    });
    cases.push(Case {
        name: "disputes: lost".into(),
        kind: CaseKind::Disputes {
            query: "status=lost".into(),
            status: Some("lost".into()),
        },
    });
    let (_, agreements) = count_disputes_and_agreements(db).await?;
    let reference = sample_agreement_reference(db, agreements / 2)
        .await?
        .ok_or_else(|| anyhow!("no agreement to search for"))?;
    cases.push(Case {
        name: "agreements: by reference".into(),
        kind: CaseKind::Agreements {
            // Typed in lower case: the search ignores case.
            query: format!("reference={}", enc(&reference.to_lowercase())),
            reference: Some(reference.to_lowercase()),
            status: None,
        },
    });
    cases.push(Case {
        name: "agreements: active".into(),
        kind: CaseKind::Agreements {
            query: "status=active".into(),
            reference: None,
            status: Some("active".into()),
        },
    });
    cases.push(Case {
        name: "journey page".into(),
        kind: CaseKind::Journey {
            payment_id: sample.payment_id.clone(),
            service_id: main.id,
            slug: main.slug.clone(),
        },
    });
    Ok(cases)
}

pub(crate) fn parse(state: &AppState, form: &Form) -> anyhow::Result<query::Search> {
    query::parse(form, state.clock.now(), state.config.time_zone).map_err(|problems| {
        anyhow!(
            "the bench's search {:?} does not parse: {:?}",
            form.to_query(),
            problems
        )
    })
}

/// The service ids the payments page searches for this form (the bench person holds every
/// service): all services in the page's order, narrowed by `service=`.
pub(crate) async fn page_services(state: &AppState, form: &Form) -> anyhow::Result<Vec<i64>> {
    Ok(services::all(&state.db)
        .await?
        .into_iter()
        .filter(|s| form.services.is_empty() || form.services.contains(&s.slug))
        .map(|s| s.id)
        .collect())
}

pub(crate) fn list_url(base: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{base}/payments")
    } else {
        format!("{base}/payments?{query}")
    }
}
