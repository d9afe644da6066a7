//! The audit view (`audit:read`) at `/audit`: search by person, action, object and dates,
//! newest first in pages, a CSV download of the same filter, and the state of the hash chain
//! with a checkpoint to keep. Rules live in `crate::audit_view`; this module reads the query
//! and shows the page.

use std::collections::BTreeSet;
use std::sync::Arc;

use rocket::http::uri::Origin;
use rocket::http::{ContentType, Header};
use rocket::{Route, State};
use serde_json::{json, Value};

use super::auth::RequestOrigin;
use super::errors::PageError;
use super::format::local_time;
use super::pages::{self, render, Answer};
use super::session::SignedIn;
use crate::audit_view::{self, ChainVerifier, Cursor, ExportRefusal, FilterForm, Reader};
use crate::identity::permissions::Permission;
use crate::AppState;

pub fn routes() -> Vec<Route> {
    rocket::routes![view, export]
}

const PATH: &str = "/audit";

/// The filter and cursor from a query string (the first of a repeated field wins).
fn from_query(raw: &str) -> (FilterForm, Option<Cursor>) {
    let mut f = FilterForm::default();
    let mut cursor = None;
    let mut seen = BTreeSet::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if !seen.insert(k.to_string()) {
            continue;
        }
        let v = v.into_owned();
        match k.as_ref() {
            "person" => f.person = v,
            "action" => f.action = v,
            "target" => f.target = v,
            "from" => f.from = v,
            "to" => f.to = v,
            "before" => cursor = v.parse().ok().map(Cursor::Before).or(cursor),
            "after" => cursor = v.parse().ok().map(Cursor::After).or(cursor),
            _ => {}
        }
    }
    (f, cursor)
}

fn to_query(f: &FilterForm) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("person", &f.person),
        ("action", &f.action),
        ("target", &f.target),
        ("from", &f.from),
        ("to", &f.to),
    ] {
        if !v.trim().is_empty() {
            q.append_pair(k, v.trim());
        }
    }
    q.finish()
}

fn with(query: &str, extra: &str) -> String {
    match (query.is_empty(), extra.is_empty()) {
        (true, true) => String::new(),
        (true, false) => format!("?{extra}"),
        (false, true) => format!("?{query}"),
        (false, false) => format!("?{query}&{extra}"),
    }
}

fn reader(staff: &SignedIn, origin: &RequestOrigin) -> Reader {
    Reader {
        actor: staff.actor(),
        ip: origin.0.ip.clone(),
        services: staff
            .grants
            .services_with(Permission::AuditRead)
            .map(|ids| ids.into_iter().collect()),
    }
}

fn echo(f: &FilterForm) -> Value {
    let cut = |s: &str| s.chars().take(500).collect::<String>();
    json!({
        "person": cut(&f.person),
        "action": cut(&f.action),
        "target": cut(&f.target),
        "from": cut(&f.from),
        "to": cut(&f.to),
    })
}

#[rocket::get("/audit")]
async fn view(
    state: &State<AppState>,
    verifier: &State<Arc<ChainVerifier>>,
    staff: SignedIn,
    origin: RequestOrigin,
    uri: &Origin<'_>,
) -> Result<Answer, PageError> {
    let raw = uri.query().map(|q| q.as_str()).unwrap_or("");
    let (form, cursor) = from_query(raw);
    let zone = state.config.time_zone;
    let who = reader(&staff, &origin);
    let mut c = pages::signed_in(state, &staff, PATH);
    c.insert("form".into(), echo(&form));
    c.insert("zone".into(), json!(zone.name()));
    c.insert("scoped".into(), json!(who.services.is_some()));
    pages::insert_problems(&mut c, vec![]);
    let mut invalid = false;
    if raw.len() > 8 * 1024 {
        pages::insert_problems(
            &mut c,
            vec![("person", "Your search is too long".to_string())],
        );
        invalid = true;
    } else {
        match audit_view::parse(&form) {
            Err(problems) => {
                pages::insert_problems(&mut c, problems);
                invalid = true;
            }
            Ok(filter) => {
                let page = audit_view::page(state, &who, &filter, cursor.unwrap_or(Cursor::Newest))
                    .await?;
                let query = to_query(&form);
                let rows: Vec<Value> = page
                    .rows
                    .iter()
                    .map(|r| {
                        let details: String = r.details.chars().take(400).collect();
                        json!({
                            "seq": r.seq,
                            "when": local_time(zone, r.occurred_at),
                            "person": r.actor_label,
                            "actor_type": r.actor_type,
                            "action": r.action,
                            "target": r.target,
                            "ok": r.outcome == "success",
                            "outcome": r.outcome,
                            "ip": r.origin_ip,
                            "details": if details == "{}" { String::new() } else { details },
                        })
                    })
                    .collect();
                c.insert("rows".into(), Value::Array(rows));
                c.insert("searched".into(), json!(true));
                c.insert(
                    "newer_href".into(),
                    json!(page
                        .newer
                        .map(|s| format!("{PATH}{}", with(&query, &format!("after={s}"))))),
                );
                c.insert(
                    "older_href".into(),
                    json!(page
                        .older
                        .map(|s| format!("{PATH}{}", with(&query, &format!("before={s}"))))),
                );
                c.insert(
                    "export_href".into(),
                    json!(format!("{PATH}/export.csv{}", with(&query, ""))),
                );
                c.insert("filtered".into(), json!(!query.is_empty()));
            }
        }
    }
    let (chain, running) = verifier.status(state).await;
    let anchored = chain.as_ref().and_then(|s| s.checkpoint);
    c.insert(
        "chain".into(),
        json!({
            "running": running,
            "known": chain.is_some(),
            "intact": chain.as_ref().is_some_and(|s| s.intact),
            "entries": chain.as_ref().map(|s| super::format::thousands(s.entries)),
            "checked": chain.as_ref().map(|s| local_time(zone, crate::store::to_micros(s.checked_at))),
            "problem": chain.as_ref().and_then(|s| s.problem.clone()),
            "triggers_missing": chain.as_ref().is_some_and(|s| !s.triggers_present),
            "checkpoint_size": anchored.map(|(size, _)| super::format::thousands(size)),
            "checkpointed": anchored.map(|(_, at)| local_time(zone, crate::store::to_micros(at))),
        }),
    );
    let cp = audit_view::checkpoint(state).await?;
    c.insert(
        "checkpoint".into(),
        json!({
            "size": cp.size,
            "head": cp.head,
            "created_at": cp.created_at,
            "json": serde_json::to_string(&cp).unwrap_or_default(),
        }),
    );
    let template = render("audit/index", c);
    Ok(if invalid {
        Answer::Invalid(template)
    } else {
        Answer::Page(template)
    })
}

/// A CSV file to download.
#[derive(rocket::Responder)]
pub struct Download {
    body: (ContentType, String),
    disposition: Header<'static>,
}

#[derive(rocket::Responder)]
pub enum ExportAnswer {
    File(Download),
    Page(Answer),
}

#[rocket::get("/audit/export.csv")]
async fn export(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    uri: &Origin<'_>,
) -> Result<ExportAnswer, PageError> {
    let raw = uri.query().map(|q| q.as_str()).unwrap_or("");
    let (form, _) = from_query(raw);
    let who = reader(&staff, &origin);
    let refuse = |problems: Vec<(&'static str, String)>| {
        let mut c = pages::signed_in(state, &staff, PATH);
        c.insert("form".into(), echo(&form));
        c.insert("zone".into(), json!(state.config.time_zone.name()));
        c.insert("scoped".into(), json!(who.services.is_some()));
        pages::insert_problems(&mut c, problems);
        ExportAnswer::Page(Answer::Invalid(render("audit/index", c)))
    };
    let filter = match audit_view::parse(&form) {
        Ok(f) => f,
        Err(problems) => return Ok(refuse(problems)),
    };
    match audit_view::export(state, &who, &filter).await? {
        Ok(csv) => {
            let name = format!(
                "paydesk-audit-{}.csv",
                state.clock.now().date()
            );
            Ok(ExportAnswer::File(Download {
                body: (ContentType::CSV, csv),
                disposition: Header::new(
                    "Content-Disposition",
                    format!("attachment; filename=\"{name}\""),
                ),
            }))
        }
        Err(ExportRefusal::TooMany) => Ok(refuse(vec![(
            "person",
            format!(
                "More than {} entries match: narrow the search (a person, an action or dates) to download them",
                super::format::thousands(audit_view::CSV_LIMIT)
            ),
        )])),
    }
}
