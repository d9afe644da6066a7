//! The dashboard at `/`: the signed-in person's money in and out, daily totals and what needs
//! attention, for a period and services they choose with a GET form.
//!
//! The query string is read here rather than by Rocket's typed query parameters, so that
//! parameters the page does not know are ignored and a value it cannot use is explained on
//! the page (an error summary) instead of ending in a 422 or 404.

use rocket::request::{FromRequest, Outcome, Request};
use rocket::State;
use serde_json::{json, Value};

use super::errors::PageError;
use super::pages::{self, render, Answer};
use super::session::SignedIn;
use crate::dashboard::{self, Choice, Figures, Period, Span};
use crate::identity::permissions::Permission;
use crate::AppState;

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![dashboard_page]
}

/// The request's query string as decoded (name, value) pairs, in order; never fails.
pub struct QueryPairs(pub Vec<(String, String)>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for QueryPairs {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let pairs = req
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_str().as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Outcome::Success(QueryPairs(pairs))
    }
}

#[rocket::get("/")]
async fn dashboard_page(
    state: &State<AppState>,
    staff: SignedIn,
    query: QueryPairs,
) -> Result<Answer, PageError> {
    let mut c = pages::signed_in(state, &staff, "/");
    c.insert("name".into(), json!(staff.staff.name));
    let offered = dashboard::services_for(&state.db, &staff.grants).await?;
    let platform_admin = staff.grants.is_platform_admin();
    c.insert("platform_admin".into(), json!(platform_admin));
    c.insert("has_services".into(), json!(!offered.is_empty()));
    c.insert("errors".into(), json!([]));
    if offered.is_empty() {
        return Ok(Answer::Page(render("dashboard", c)));
    }

    let ids: Vec<i64> = offered.iter().map(|(id, _)| *id).collect();
    let (choice, problems) = dashboard::choose(&query.0, &ids);
    let zone = state.config.time_zone;
    let span = Span::at(choice.period, state.clock.now(), &zone);

    c.insert("periods".into(), periods());
    c.insert(
        "service_options".into(),
        offered
            .iter()
            .map(|(id, name)| json!({"value": id.to_string(), "text": name}))
            .collect(),
    );
    c.insert("chosen_services".into(), chosen(&choice));
    let error_for = |field: &str| {
        problems
            .iter()
            .find(|p| p.field == field)
            .map(|p| p.message.clone())
            .unwrap_or_default()
    };
    let period_error = error_for("period");
    // A period that could not be read leaves the radios unticked, as the person left them.
    let period = if period_error.is_empty() {
        choice.period.key()
    } else {
        ""
    };
    c.insert("period".into(), json!(period));
    c.insert("period_error".into(), json!(period_error));
    c.insert("service_error".into(), json!(error_for("service")));
    c.insert(
        "errors".into(),
        problems
            .iter()
            .map(|p| pages::problem(p.field, p.message.clone()))
            .collect(),
    );
    if !problems.is_empty() {
        return Ok(Answer::Page(render("dashboard", c)));
    }

    let figures =
        dashboard::figures(&state.db, &zone, &span, &choice.services, platform_admin).await?;
    let names: Vec<&str> = offered
        .iter()
        .filter(|(id, _)| choice.services.contains(id))
        .map(|(_, name)| name.as_str())
        .collect();
    c.insert(
        "span".into(),
        json!({
            "label": choice.period.label(),
            "first": dashboard::long_date(span.first),
            "last": dashboard::long_date(span.last),
            "one_day": span.first == span.last,
            "zone": zone.name(),
            "services": names,
            "all_services": !choice.narrowed,
        }),
    );
    c.insert("figures".into(), figures_context(&figures, &span));
    // The list behind the failed-refunds figure: the same period and services.
    let failed_href = {
        let mut failed = url::form_urlencoded::Serializer::new(String::new());
        failed.append_pair("period", choice.period.key());
        if choice.narrowed {
            for id in &choice.services {
                failed.append_pair("service", &id.to_string());
            }
        }
        format!("/refunds/failed?{}", failed.finish())
    };
    c.insert("failed_refunds_href".into(), json!(failed_href));
    // Disputes awaiting evidence, now, in the chosen services where this person reads them.
    let dispute_services: Vec<i64> = choice
        .services
        .iter()
        .copied()
        .filter(|id| staff.grants.can(Permission::DisputesRead, *id))
        .collect();
    if !dispute_services.is_empty() {
        // The disputes behind the money figure: lost, raised in the same days.
        let lost_href = {
            let mut lost = url::form_urlencoded::Serializer::new(String::new());
            lost.append_pair("status", "lost");
            lost.append_pair("from", &crate::exports::filter::iso(span.first));
            lost.append_pair("to", &crate::exports::filter::iso(span.last));
            format!("/disputes?{}", lost.finish())
        };
        c.insert("disputes_lost_href".into(), json!(lost_href));
        let n = crate::disputes::needing_response(&state.db, &dispute_services).await?;
        c.insert(
            "disputes_attention".into(),
            json!({"count": n, "text": plural(n, "dispute", "disputes"),
                   "href": "/disputes?status=needs_response"}),
        );
    }
    Ok(Answer::Page(render("dashboard", c)))
}

/// The period radios.
fn periods() -> Value {
    Period::ALL
        .iter()
        .map(|p| json!({"value": p.key(), "text": p.label()}))
        .collect()
}

/// The ticked service boxes: the chosen services (every one offered unless narrowed).
fn chosen(choice: &Choice) -> Value {
    choice
        .services
        .iter()
        .map(|id| json!(id.to_string()))
        .collect()
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!(
        "{} {}",
        dashboard::thousands(n),
        if n == 1 { one } else { many }
    )
}

fn figures_context(f: &Figures, span: &Span) -> Value {
    let chart = dashboard::chart(&f.days);
    let days: Vec<Value> = f
        .days
        .iter()
        .map(|d| {
            json!({
                "date": dashboard::long_date(d.date),
                "count": dashboard::thousands(d.count),
                "sum": dashboard::money(d.sum),
            })
        })
        .collect();
    let failures: Vec<Value> = f
        .failures
        .iter()
        .map(|r| {
            json!({
                "code": r.code.clone().unwrap_or_default(),
                "message": r.message.clone().unwrap_or_else(|| "No reason given".into()),
                "count": dashboard::thousands(r.count),
            })
        })
        .collect();
    let failed_total: i64 = f.failures.iter().map(|r| r.count).sum();
    json!({
        "payments": {
            "count": plural(f.payments.count, "payment", "payments"),
            "sum": dashboard::money(f.payments.sum),
        },
        "refunds": {
            "count": plural(f.refunds.count, "refund", "refunds"),
            "sum": dashboard::money(f.refunds.sum),
        },
        "disputes_lost": {
            "count": plural(f.disputes_lost.count, "dispute", "disputes"),
            "sum": dashboard::money(f.disputes_lost.amount),
            "fees": dashboard::money(f.disputes_lost.fees),
            "any": f.disputes_lost.count > 0,
        },
        "net": dashboard::money(f.net),
        "net_negative": f.net < 0,
        "failures": failures,
        "failed_total": plural(failed_total, "payment", "payments"),
        "days": days,
        "chart": chart,
        "chart_title": format!(
            "Successful payments each day, {} to {}",
            dashboard::long_date(span.first),
            dashboard::long_date(span.last)
        ),
        "chart_description": dashboard::chart_description(&f.days),
        "attention": {
            "stuck": f.attention.stuck,
            "stuck_text": plural(f.attention.stuck, "payment", "payments"),
            "failed_refunds": f.attention.failed_refunds,
            "failed_refunds_text": plural(f.attention.failed_refunds, "refund", "refunds"),
            "dead_jobs": f.attention.dead_jobs,
            "dead_jobs_text": f.attention.dead_jobs.map(|n| plural(n, "job", "jobs")),
        },
    })
}
