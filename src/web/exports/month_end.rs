//! The month-end pack (`/exports/pack`, `/exports/pack.csv`): totals by settlement date per
//! service and across them, on a page and as a small CSV. The totals are `exports::pack`'s.

use rocket::http::{ContentType, Header};
use rocket::request::Request;
use rocket::response::{self, Redirect, Responder, Response};
use rocket::State;
use serde_json::{json, Value};

use super::*;
use crate::exports::pack;

/// The pack's query, read leniently: unknown parameters are ignored, bad values explained.
struct PackQuery {
    services: Vec<String>,
    month: String,
    from: String,
    to: String,
}

impl PackQuery {
    fn read(pairs: &[(String, String)]) -> PackQuery {
        let mut q = PackQuery {
            services: Vec::new(),
            month: String::new(),
            from: String::new(),
            to: String::new(),
        };
        for (k, v) in pairs {
            match k.as_str() {
                "service" => q.services.push(cut(v)),
                "month" if q.month.is_empty() => q.month = cut(v),
                "from" if q.from.is_empty() => q.from = cut(v),
                "to" if q.to.is_empty() => q.to = cut(v),
                _ => {}
            }
        }
        q
    }

    fn href(&self, path: &str) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for svc in &self.services {
            s.append_pair("service", svc);
        }
        if !self.from.is_empty() || !self.to.is_empty() {
            s.append_pair("from", &self.from);
            s.append_pair("to", &self.to);
        } else {
            s.append_pair("month", &self.month);
        }
        format!("{path}?{}", s.finish())
    }
}

/// The pack's services and settlement dates, or problems.
fn pack_choice(
    q: &PackQuery,
    allowed: &[ServiceAccount],
) -> Result<(Vec<ServiceAccount>, String, String), Vec<Problem>> {
    let mut problems = Vec::new();
    let chosen: Vec<ServiceAccount> = if q.services.is_empty() {
        allowed.to_vec()
    } else {
        let picked: Vec<ServiceAccount> = allowed
            .iter()
            .filter(|s| q.services.contains(&s.slug))
            .cloned()
            .collect();
        if picked.len() != q.services.len() {
            problems.push(Problem {
                field: "service",
                message: "Select services from the list".into(),
            });
        }
        picked
    };
    let range = if !q.from.is_empty() || !q.to.is_empty() {
        let from = crate::search::query::parse_date(&q.from);
        let to = crate::search::query::parse_date(&q.to);
        match (from, to) {
            (Some(a), Some(b)) if a <= b => Some((a, b)),
            (Some(_), Some(_)) => {
                problems.push(Problem {
                    field: "to",
                    message: "The last settlement date must be the same as or after the first"
                        .into(),
                });
                None
            }
            (None, _) => {
                problems.push(Problem {
                    field: "from",
                    message: "Enter the first settlement date as a real date, like 1/10/2026"
                        .into(),
                });
                None
            }
            (_, None) => {
                problems.push(Problem {
                    field: "to",
                    message: "Enter the last settlement date as a real date, like 31/10/2026"
                        .into(),
                });
                None
            }
        }
    } else {
        let r = pack::month_days(&q.month);
        if r.is_none() {
            problems.push(Problem {
                field: "month",
                message: "Enter the month as a year and month, like 2026-10".into(),
            });
        }
        r
    };
    match (range, problems.is_empty()) {
        (Some((a, b)), true) => Ok((chosen, exports::filter::iso(a), exports::filter::iso(b))),
        _ => Err(problems),
    }
}

fn previous_month(state: &AppState) -> String {
    let today = state.config.time_zone.date_of(state.clock.now());
    let first = timezone::first_of_previous_month(today);
    format!("{:04}-{:02}", first.year(), u8::from(first.month()))
}

#[rocket::get("/exports/pack")]
pub(super) async fn pack_page(
    state: &State<AppState>,
    staff: SignedIn,
    query: QueryPairs,
) -> Result<Answer, PageError> {
    let allowed = exports::exportable_services(&state.db, &staff.grants).await?;
    let mut q = PackQuery::read(&query.0);
    if q.month.is_empty() && q.from.is_empty() && q.to.is_empty() {
        q.month = previous_month(state);
    }
    let mut c = pages::signed_in(state, &staff, "/exports");
    c.insert(
        "service_options".into(),
        json!(allowed
            .iter()
            .map(|s| json!({"value": s.slug, "text": s.name}))
            .collect::<Vec<_>>()),
    );
    c.insert(
        "form".into(),
        json!({"services": q.services, "month": q.month, "from": q.from, "to": q.to}),
    );
    match pack_choice(&q, &allowed) {
        Err(problems) => {
            let errors: Vec<Value> = problems
                .iter()
                .map(|p| problem(p.field, p.message.clone()))
                .collect();
            let field = |f: &str| {
                problems
                    .iter()
                    .find(|p| p.field == f)
                    .map(|p| p.message.clone())
            };
            c.insert("errors".into(), json!(errors));
            c.insert(
                "field_errors".into(),
                json!({"service": field("service"), "month": field("month"), "from": field("from"), "to": field("to")}),
            );
            Ok(Answer::Invalid(render("exports/pack", c)))
        }
        Ok((chosen, from, to)) => {
            let packs = pack::build(&state.db, &chosen, &from, &to).await?;
            let money = |p: i64| crate::refunds::rules::pounds(p);
            let day = |d: &pack::Day| {
                json!({
                    "date": d.settled_date,
                    "payments": thousands(d.payments),
                    "gross": money(d.gross),
                    "refunds_count": thousands(d.refunds_count),
                    "refunds": money(d.refunds),
                    "fees": money(d.fees),
                    "disputes_count": thousands(d.disputes_count),
                    "disputes": money(d.disputes),
                    "dispute_fees": money(d.dispute_fees),
                    "net": money(d.net()),
                })
            };
            let views: Vec<Value> = packs
                .iter()
                .map(|p| {
                    json!({
                        "name": p.service.name,
                        "slug": p.service.slug,
                        "days": p.days.iter().map(day).collect::<Vec<_>>(),
                        "total": day(&p.total),
                    })
                })
                .collect();
            c.insert("packs".into(), json!(views));
            c.insert("grand_total".into(), day(&pack::grand_total(&packs)));
            c.insert("from".into(), json!(from));
            c.insert("to".into(), json!(to));
            c.insert("csv_href".into(), json!(q.href("/exports/pack.csv")));
            c.insert(
                "export_services".into(),
                json!(chosen.iter().map(|s| s.slug.clone()).collect::<Vec<_>>()),
            );
            Ok(Answer::Page(render("exports/pack", c)))
        }
    }
}

#[rocket::get("/exports/pack.csv")]
pub(super) async fn pack_csv(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    query: QueryPairs,
) -> Result<Result<CsvBytes, Redirect>, PageError> {
    let allowed = exports::exportable_services(&state.db, &staff.grants).await?;
    let q = PackQuery::read(&query.0);
    let Ok((chosen, from, to)) = pack_choice(&q, &allowed) else {
        // The page explains what is wrong.
        return Ok(Err(Redirect::to(q.href("/exports/pack"))));
    };
    let packs = pack::build(&state.db, &chosen, &from, &to).await?;
    let slugs: Vec<&str> = chosen.iter().map(|s| s.slug.as_str()).collect();
    crate::audit::record(
        &state.db,
        state.clock.now(),
        crate::audit::AuditEvent::new(staff.actor(), "export_pack_downloaded", "export:pack")
            .from_ip(origin.0.ip.clone())
            .details(json!({"services": slugs, "from": from, "to": to})),
    )
    .await?;
    Ok(Ok(CsvBytes {
        file_name: format!("paydesk-month-end-{from}-to-{to}.csv"),
        bytes: pack::to_csv(&packs),
    }))
}

/// A small CSV made in memory (the pack: a row per day).
pub struct CsvBytes {
    file_name: String,
    bytes: Vec<u8>,
}

impl<'r> Responder<'r, 'static> for CsvBytes {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .header(ContentType::new("text", "csv").with_params(("charset", "utf-8")))
            .header(Header::new(
                "Content-Disposition",
                format!("attachment; filename=\"{}\"", self.file_name),
            ))
            .header(Header::new("Cache-Control", "no-store"))
            .sized_body(self.bytes.len(), std::io::Cursor::new(self.bytes))
            .ok()
    }
}
