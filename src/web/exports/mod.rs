//! Export pages: the export form (`/exports`), which streams a CSV at once or, for a big range
//! or on request, starts a background export; a background export's page with its progress
//! and download; the month-end pack (`/exports/pack`) is in `month_end`. The rules and the
//! rows live in `crate::exports`; this module reads forms and turns chunks into an HTTP
//! download.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rocket::form::FromForm;
use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Redirect, Responder, Response};
use rocket::serde::json::Json;
use rocket::{Route, State};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, ReadBuf};

use crate::exports::{self, Chunks, Downloader, Fields, Filter, Plan, Problem};
use crate::identity::signin::CurrentSession;
use crate::search::query::StatusGroup;
use crate::services::ServiceAccount;
use crate::store::exports::ExportRecord;
use crate::timezone;
use crate::web::auth::RequestOrigin;
use crate::web::dashboard::QueryPairs;
use crate::web::errors::PageError;
use crate::web::format::{local_time, thousands};
use crate::web::pages::{self, problem, render, Answer};
use crate::web::session::{CsrfForm, SignedIn};
use crate::AppState;

mod month_end;
pub mod search;

pub fn routes() -> Vec<Route> {
    rocket::routes![
        form_page,
        create,
        search::download,
        export_page,
        export_status,
        download,
        month_end::pack_page,
        month_end::pack_csv
    ]
}

/// The export form as posted.
#[derive(FromForm, Default, Debug)]
pub struct ExportForm {
    #[field(default = Vec::new())]
    services: Vec<String>,
    #[field(default = String::new())]
    by: String,
    #[field(default = String::new())]
    from: String,
    #[field(default = String::new())]
    to: String,
    #[field(default = String::new())]
    time_zone: String,
    #[field(default = Vec::new())]
    statuses: Vec<String>,
    #[field(default = Vec::new())]
    include: Vec<String>,
    #[field(default = String::new())]
    background: String,
    #[field(default = String::new())]
    gzip: String,
}

/// Longest value a page echoes back into a field.
const ECHO_LIMIT: usize = 200;

fn cut(s: &str) -> String {
    s.chars().take(ECHO_LIMIT).collect()
}

fn downloader(staff: &CurrentSession, origin: &RequestOrigin) -> Downloader {
    Downloader {
        actor: staff.actor(),
        ip: origin.0.ip.clone(),
    }
}

/// Time zones offered: the console's, each service's, and UTC.
fn zone_options(state: &AppState, services: &[ServiceAccount]) -> Vec<Value> {
    let mut names: Vec<String> = vec![state.config.time_zone.name().to_string()];
    for s in services {
        if !names.contains(&s.time_zone) {
            names.push(s.time_zone.clone());
        }
    }
    if !names.iter().any(|n| n == "UTC") {
        names.push("UTC".into());
    }
    names
        .into_iter()
        .map(|n| json!({"value": n, "text": n}))
        .collect()
}

fn state_tag(state: &str) -> (&'static str, &'static str) {
    match state {
        "queued" => ("Waiting to start", "grey"),
        "running" => ("Being prepared", "blue"),
        "finished" => ("Ready", "green"),
        "failed" => ("Failed", "red"),
        "expired" => ("Deleted", "grey"),
        _ => ("Unknown", "grey"),
    }
}

fn percent(r: &ExportRecord) -> i64 {
    match r.state.as_str() {
        "finished" => 100,
        _ if r.rows_expected <= 0 => 0,
        _ => (r.rows_written * 100 / r.rows_expected).clamp(0, 99),
    }
}

fn describe(filter: &Value) -> String {
    let by = match filter.get("by").and_then(Value::as_str) {
        Some("settled") => "settled",
        _ => "created",
    };
    let what = match (
        filter.get("payments").and_then(Value::as_bool),
        filter.get("refunds").and_then(Value::as_bool),
    ) {
        (Some(true), Some(true)) => "Payments and refunds",
        (Some(true), _) => "Payments",
        _ => "Refunds",
    };
    format!(
        "{what} {by} {} to {}",
        filter.get("from").and_then(Value::as_str).unwrap_or(""),
        filter.get("to").and_then(Value::as_str).unwrap_or("")
    )
}

fn record_view(
    state: &AppState,
    r: &ExportRecord,
    names: &std::collections::HashMap<i64, String>,
) -> Value {
    let filter: Value = serde_json::from_str(&r.filter).unwrap_or(Value::Null);
    let (text, colour) = state_tag(&r.state);
    let services: Vec<String> = exports::record_services(r)
        .iter()
        .map(|id| {
            names
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("Service {id}"))
        })
        .collect();
    let zone = state.config.time_zone;
    json!({
        "id": r.id,
        "href": format!("/exports/{}", r.id),
        "download_href": format!("/exports/{}/download", r.id),
        "what": describe(&filter),
        "services": services.join(", "),
        "state": r.state,
        "state_text": text,
        "state_colour": colour,
        "active": r.state == "queued" || r.state == "running",
        "ready": r.state == "finished",
        "percent": percent(r),
        "rows_written": thousands(r.rows_written),
        "rows_expected": thousands(r.rows_expected),
        "requested": local_time(zone, r.created_at),
        "expires": r.expires_at.map(|e| local_time(zone, e)),
        "gzip": r.gzip,
        "failure": r.failure,
    })
}

/// The form's page, with `fields` as typed and `problems`.
async fn form_context(
    state: &AppState,
    staff: &CurrentSession,
    allowed: &[ServiceAccount],
    fields: &ExportForm,
    problems: &[Problem],
    notice: Option<String>,
) -> Result<Map<String, Value>, PageError> {
    let mut c = pages::signed_in(state, staff, "/exports");
    let records = exports::visible(&state.db, staff.staff.id, &staff.grants).await?;
    let names = exports::service_names(&state.db, &records).await?;
    let views: Vec<Value> = records
        .iter()
        .map(|r| record_view(state, r, &names))
        .collect();
    let error_of = |field: &str| {
        problems
            .iter()
            .find(|p| p.field == field)
            .map(|p| p.message.clone())
    };
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| problem(p.field, p.message.clone()))
        .collect();
    c.insert("errors".into(), json!(errors));
    c.insert(
        "field_errors".into(),
        json!({
            "services": error_of("services"),
            "by": error_of("by"),
            "from": error_of("from"),
            "to": error_of("to"),
            "time_zone": error_of("time_zone"),
            "statuses": error_of("statuses"),
            "include": error_of("include"),
        }),
    );
    c.insert(
        "service_options".into(),
        json!(allowed
            .iter()
            .map(|s| json!({"value": s.slug, "text": s.name}))
            .collect::<Vec<_>>()),
    );
    c.insert(
        "status_options".into(),
        json!(StatusGroup::ALL
            .iter()
            .map(|g| json!({"value": g.name(), "text": g.label()}))
            .collect::<Vec<_>>()),
    );
    c.insert("zone_options".into(), json!(zone_options(state, allowed)));
    c.insert(
        "by_options".into(),
        json!([
            {"value": "created", "text": "The date the payment or refund was made"},
            {"value": "settled", "text": "The settlement date (the day the money was paid out)"},
        ]),
    );
    c.insert(
        "include_options".into(),
        json!([
            {"value": "payments", "text": "Payments"},
            {"value": "refunds", "text": "Refunds that succeeded"},
            {"value": "disputes", "text": "Disputes (chargebacks)"},
        ]),
    );
    c.insert(
        "form".into(),
        json!({
            "services": fields.services.iter().map(|s| cut(s)).collect::<Vec<_>>(),
            "by": if fields.by == "settled" { "settled" } else { "created" },
            "from": cut(&fields.from),
            "to": cut(&fields.to),
            "time_zone": cut(&fields.time_zone),
            "statuses": fields.statuses.iter().map(|s| cut(s)).collect::<Vec<_>>(),
            "include": fields.include.iter().map(|s| cut(s)).collect::<Vec<_>>(),
            "background": fields.background == "yes",
            "gzip": fields.gzip == "yes",
        }),
    );
    c.insert("exports".into(), json!(views));
    c.insert(
        "any_active".into(),
        json!(records
            .iter()
            .any(|r| r.state == "queued" || r.state == "running")),
    );
    c.insert("notice".into(), json!(notice));
    c.insert(
        "background_rows".into(),
        json!(thousands(state.config.export_background_rows)),
    );
    c.insert("keep_days".into(), json!(state.config.export_keep_days));
    Ok(c)
}

/// The fields of a first visit: every service, the previous month by created date, payments,
/// refunds and disputes (with refund rows, dispute rows too: a lost dispute takes money back
/// from the payout, so a file without them would not match the bank).
fn default_form(state: &AppState, allowed: &[ServiceAccount]) -> ExportForm {
    let zone = state.config.time_zone;
    let today = zone.date_of(state.clock.now());
    let first = timezone::first_of_previous_month(today);
    let last = timezone::first_of_month(today)
        .previous_day()
        .unwrap_or(first);
    ExportForm {
        services: allowed.iter().map(|s| s.slug.clone()).collect(),
        by: "created".into(),
        from: uk_date(first),
        to: uk_date(last),
        time_zone: zone.name().into(),
        include: vec!["payments".into(), "refunds".into(), "disputes".into()],
        ..<ExportForm as Default>::default()
    }
}

/// A date as the form's hint shows them: 1/10/2026.
fn uk_date(d: time::Date) -> String {
    format!("{}/{}/{}", d.day(), u8::from(d.month()), d.year())
}

fn notice_text(notice: Option<&str>) -> Option<String> {
    match notice? {
        "started" => {
            Some("Your export is being prepared. It appears below when it is ready.".into())
        }
        _ => None,
    }
}

#[rocket::get("/exports?<notice>")]
async fn form_page(
    state: &State<AppState>,
    staff: SignedIn,
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let allowed = exports::exportable_services(&state.db, &staff.grants).await?;
    let fields = default_form(state, &allowed);
    let c = form_context(state, &staff, &allowed, &fields, &[], notice_text(notice)).await?;
    Ok(Answer::Page(render("exports/index", c)))
}

/// A CSV download made of chunks as they come; if the export breaks off, the connection is
/// cut so the file cannot look complete.
pub struct CsvDownload {
    file_name: String,
    body: CsvBody,
}

enum CsvBody {
    Chunks(ChunkReader),
    File(tokio::fs::File, u64),
}

impl<'r> Responder<'r, 'static> for CsvDownload {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut r = Response::build();
        let gz = self.file_name.ends_with(".gz");
        r.header(if gz {
            ContentType::new("application", "gzip")
        } else {
            ContentType::new("text", "csv").with_params(("charset", "utf-8"))
        })
        .header(Header::new(
            "Content-Disposition",
            format!("attachment; filename=\"{}\"", self.file_name),
        ))
        .header(Header::new("Cache-Control", "no-store"));
        match self.body {
            CsvBody::Chunks(reader) => {
                Ok(r.streamed_body(reader).max_chunk_size(64 * 1024).finalize())
            }
            CsvBody::File(file, len) => Ok(r.sized_body(Some(len as usize), file).finalize()),
        }
    }
}

/// Reads the chunks of a streamed export as bytes.
struct ChunkReader {
    chunks: Chunks,
    current: Vec<u8>,
    at: usize,
}

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.at < self.current.len() {
                let n = buf.remaining().min(self.current.len() - self.at);
                let at = self.at;
                buf.put_slice(&self.current[at..at + n]);
                self.at += n;
                return Poll::Ready(Ok(()));
            }
            match self.chunks.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Poll::Ready(Some(Err(message))) => {
                    return Poll::Ready(Err(io::Error::other(message)))
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[derive(rocket::Responder)]
#[allow(clippy::large_enum_variant)]
enum ExportAnswer {
    Page(Answer),
    Download(CsvDownload),
}

#[rocket::post("/exports", data = "<form>")]
async fn create(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    form: CsrfForm<ExportForm>,
) -> Result<ExportAnswer, PageError> {
    let fields = form.0;
    let allowed = exports::exportable_services(&state.db, &staff.grants).await?;
    let invalid = |problems: Vec<Problem>| {
        let (staff, allowed, fields) = (&staff, &allowed, &fields);
        async move {
            let c = form_context(state, staff, allowed, fields, &problems, None).await?;
            Ok::<_, PageError>(ExportAnswer::Page(Answer::Invalid(render(
                "exports/index",
                c,
            ))))
        }
    };
    let parsed = exports::filter::parse(&Fields {
        services: fields.services.clone(),
        by: fields.by.clone(),
        from: fields.from.clone(),
        to: fields.to.clone(),
        time_zone: fields.time_zone.clone(),
        statuses: fields.statuses.clone(),
        include: fields.include.clone(),
    });
    let filter: Filter = match parsed {
        Ok(f) => f,
        Err(problems) => return invalid(problems).await,
    };
    let chosen = match exports::resolve(&filter, &allowed) {
        Ok(c) => c,
        Err(problems) => return invalid(problems).await,
    };
    let plan = Plan::prepare(&state.db, filter, chosen, None).await?;
    let threshold = state.config.export_background_rows;
    let gzip = fields.gzip == "yes";
    let counted = plan.count(Some(threshold + 1)).await?;
    let who = downloader(&staff, &origin);
    if fields.background == "yes" || gzip || counted > threshold {
        let id = exports::start_background(
            &state.db,
            state.clock.now(),
            staff.staff.id,
            &who,
            &plan,
            gzip,
            counted,
        )
        .await?;
        return Ok(ExportAnswer::Page(Answer::Redirect(Redirect::to(format!(
            "/exports/{id}?started={}",
            if counted > threshold { "big" } else { "asked" }
        )))));
    }
    let file_name = format!("{}.csv", plan.filter.file_stem());
    let chunks = exports::stream(state.db.clone(), state.clock.clone(), plan, who);
    Ok(ExportAnswer::Download(CsvDownload {
        file_name,
        body: CsvBody::Chunks(ChunkReader {
            chunks,
            current: Vec::new(),
            at: 0,
        }),
    }))
}

/// A background export the person may see, or 404 (another person's export reads the same
/// as one that does not exist).
async fn visible_export(
    state: &AppState,
    staff: &CurrentSession,
    id: i64,
) -> Result<ExportRecord, PageError> {
    let record = crate::store::exports::get(&state.db, id)
        .await?
        .ok_or(Status::NotFound)?;
    if !exports::may_download(&record, staff.staff.id, &staff.grants) {
        return Err(Status::NotFound.into());
    }
    Ok(record)
}

#[rocket::get("/exports/<id>?<started>")]
async fn export_page(
    state: &State<AppState>,
    staff: SignedIn,
    id: i64,
    started: Option<&str>,
) -> Result<Answer, PageError> {
    let record = visible_export(state, &staff, id).await?;
    let names = exports::service_names(&state.db, std::slice::from_ref(&record)).await?;
    let mut c = pages::signed_in(state, &staff, "/exports");
    let view = record_view(state, &record, &names);
    c.insert(
        "summary".into(),
        json!([
            {"key": "Status", "value": view["state_text"]},
            {"key": "Services", "value": view["services"]},
            {"key": "Asked for", "value": view["requested"]},
            {"key": "Rows", "value": view["rows_written"]},
        ]),
    );
    c.insert("export".into(), view);
    let notice = match started {
        Some("big") => Some(format!(
            "This export has more than {} rows, so paydesk is preparing it in the background. You can leave this page and come back.",
            thousands(state.config.export_background_rows)
        )),
        Some("asked") => Some("paydesk is preparing your export. You can leave this page and come back.".into()),
        _ => None,
    };
    c.insert("notice".into(), json!(notice));
    Ok(Answer::Page(render("exports/show", c)))
}

/// A background export's progress, for the page's script.
#[rocket::get("/exports/<id>/status")]
async fn export_status(
    state: &State<AppState>,
    staff: SignedIn,
    id: i64,
) -> Result<Json<Value>, PageError> {
    let record = visible_export(state, &staff, id).await?;
    Ok(Json(json!({
        "state": record.state,
        "rows_written": record.rows_written,
        "rows_expected": record.rows_expected,
        "percent": percent(&record),
    })))
}

#[rocket::get("/exports/<id>/download")]
async fn download(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: i64,
) -> Result<CsvDownload, PageError> {
    let record = visible_export(state, &staff, id).await?;
    if record.state != "finished" {
        return Err(Status::NotFound.into());
    }
    let path = exports::file_path(&state.config, &record);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Status::Gone.into()),
        Err(e) => return Err(PageError::internal(e)),
    };
    let len = file.metadata().await?.len();
    exports::audit_download(
        &state.db,
        state.clock.now(),
        &downloader(&staff, &origin),
        &record,
    )
    .await?;
    let filter: Result<Filter, _> = serde_json::from_str(&record.filter);
    let stem = filter
        .map(|f| f.file_stem())
        .unwrap_or_else(|_| format!("paydesk-export-{id}"));
    Ok(CsvDownload {
        file_name: format!("{stem}.csv{}", if record.gzip { ".gz" } else { "" }),
        body: CsvBody::File(file, len),
    })
}
