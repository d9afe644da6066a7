//! Bulk refund pages: the upload form (`/refunds/bulk`, after the second factor within 5
//! minutes), a batch's page (`/refunds/bulk/<id>`: the dry run's summary and refused rows,
//! going on, approval by a second person, progress, pause and resume) and its results as a
//! CSV. The rules and every change live in `crate::refunds::bulk`.

use std::collections::BTreeSet;

use rocket::data::Capped;
use rocket::form::FromForm;
use rocket::fs::TempFile;
use rocket::http::{ContentType, Header, Status};
use rocket::response::Redirect;
use rocket::serde::json::Json;
use rocket::State;
use serde_json::{json, Map, Value};
use tokio::io::AsyncReadExt;

use super::shared::*;
use crate::identity::permissions::Permission;
use crate::refunds::bulk::{self, file, BatchRefusal, BatchRow, Progress};
use crate::refunds::rules::pounds;
use crate::store::refund_batches as batch_store;
use crate::web::auth::RequestOrigin;
use crate::web::errors::PageError;
use crate::web::pages::{self, problem, render, Answer};
use crate::web::session::{CarriesCsrf, CsrfForm, CsrfUpload, SignedIn};
use crate::web::stepup;
use crate::AppState;

const PATH: &str = "/refunds/bulk";

/// The upload form.
#[derive(FromForm)]
pub(super) struct Upload<'r> {
    csrf_token: String,
    file: Option<Capped<TempFile<'r>>>,
}

impl CarriesCsrf for Upload<'_> {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// A step on a batch: the file's hash the person saw, and the step-up's fields.
#[derive(FromForm, Default)]
pub(super) struct Step {
    #[field(default = String::new())]
    hash: String,
    #[field(default = String::new())]
    leave_out: String,
    #[field(default = String::new())]
    code: String,
    #[field(default = String::new())]
    stepping_up: String,
}

fn scope(staff: &SignedIn, p: Permission) -> Option<BTreeSet<i64>> {
    staff.grants.services_with(p)
}

/// Whether the person may see (and act on) a batch with `p`: they uploaded it, or they hold
/// `p` in every service its rows refund in.
async fn may(
    state: &AppState,
    staff: &SignedIn,
    batch: &BatchRow,
    p: Permission,
) -> Result<bool, PageError> {
    if batch.uploaded_by == staff.staff.id && p == Permission::RefundsBulk {
        return Ok(true);
    }
    let services = batch_store::services(&state.db, batch.id).await?;
    Ok(!services.is_empty() && services.iter().all(|s| staff.grants.can(p, *s)))
}

/// The batch, if it exists and the person may see it (otherwise 404: a batch of another
/// service is not shown to exist).
async fn batch_for(state: &AppState, staff: &SignedIn, id: i64) -> Result<BatchRow, PageError> {
    let Some(batch) = batch_store::by_id(&state.db, id).await? else {
        return Err(Status::NotFound.into());
    };
    if may(state, staff, &batch, Permission::RefundsBulk).await?
        || may(state, staff, &batch, Permission::RefundsApprove).await?
    {
        Ok(batch)
    } else {
        Err(Status::NotFound.into())
    }
}

fn state_tag(state: &str) -> (&'static str, &'static str) {
    match state {
        "checked" => ("Checked: not sent", "grey"),
        "awaiting_approval" => ("Awaiting approval", "yellow"),
        "sending" => ("Sending", "blue"),
        "paused" => ("Paused", "orange"),
        "sent" => ("Sent", "green"),
        _ => ("Cancelled", "grey"),
    }
}

async fn upload_page(
    state: &AppState,
    staff: &SignedIn,
    errors: Vec<Value>,
    notice: Option<&str>,
) -> Result<Map<String, Value>, PageError> {
    let now = state.clock.now();
    let mut c = pages::signed_in(state, staff, "/refunds");
    let mut names = Names::default();
    let mut batches = Vec::new();
    for b in batch_store::recent(&state.db, 50).await? {
        if !may(state, staff, &b, Permission::RefundsBulk).await? {
            continue;
        }
        let (text, colour) = state_tag(&b.state);
        batches.push(json!({
            "href": format!("{PATH}/{}", b.id), "id": b.id, "file_name": b.file_name,
            "uploaded_by": names.of(state, b.uploaded_by).await?, "age": age(now, b.uploaded_at),
            "rows": b.row_count, "total": pounds(b.total_amount), "state": text, "colour": colour,
        }));
    }
    c.insert("batches".into(), json!(batches));
    c.insert("stepped_up".into(), json!(staff.second_factor_recent(now)));
    c.insert(
        "max_rows".into(),
        json!(crate::money::thousands(file::MAX_ROWS as i64)),
    );
    c.insert("max_mb".into(), json!(file::MAX_BYTES / (1024 * 1024)));
    c.insert(
        "field_error".into(),
        json!(errors
            .first()
            .and_then(|e| e.get("message"))
            .cloned()
            .unwrap_or(Value::Null)),
    );
    c.insert("errors".into(), Value::Array(errors));
    c.insert("notice".into(), json!(notice));
    Ok(c)
}

#[rocket::get("/refunds/bulk?<notice>")]
pub(super) async fn upload_form(
    state: &State<AppState>,
    staff: SignedIn,
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let notice = match notice {
        Some("stepped-up") => Some("You confirmed it's you: you can upload a file now"),
        _ => None,
    };
    let c = upload_page(state, &staff, Vec::new(), notice).await?;
    Ok(Answer::Page(render("refunds/bulk_upload", c)))
}

/// The second factor, asked before a file is chosen (a file cannot be carried through the
/// "Confirm it's you" page).
#[rocket::post("/refunds/bulk/confirm-identity", data = "<form>")]
pub(super) async fn step_up(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    form: CsrfForm<Step>,
) -> Result<Answer, PageError> {
    let gate = stepup::Gate {
        code: &form.0.code,
        stepping_up: &form.0.stepping_up,
        what: "refund_batch_upload",
        action: format!("{PATH}/confirm-identity"),
        hidden: vec![("stepping_up", "1".into())],
        purpose: "upload a file of refunds".into(),
        button: "Continue",
        back: PATH.into(),
    };
    if let Some(page) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(page);
    }
    Ok(Answer::Redirect(Redirect::to(format!(
        "{PATH}?notice=stepped-up"
    ))))
}

async fn bytes_of(f: &Capped<TempFile<'_>>) -> Result<Option<Vec<u8>>, PageError> {
    if !f.is_complete() {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut reader = f
        .open()
        .await
        .map_err(|e| PageError::internal(format!("reading an upload: {e}")))?;
    reader
        .read_to_end(&mut out)
        .await
        .map_err(|e| PageError::internal(format!("reading an upload: {e}")))?;
    Ok(Some(out))
}

#[rocket::post("/refunds/bulk", data = "<form>")]
pub(super) async fn upload(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    form: CsrfUpload<Upload<'_>>,
) -> Result<Answer, PageError> {
    let now = state.clock.now();
    let too_big = || file::FileProblem::TooBig.message();
    let refuse = |message: String| async {
        let c = upload_page(state, &staff, vec![problem("file", message)], None).await?;
        Ok::<Answer, PageError>(Answer::Invalid(render("refunds/bulk_upload", c)))
    };
    if !staff.second_factor_recent(now) {
        return refuse(
            "Confirm it's you again before you upload: it has been more than 5 minutes".into(),
        )
        .await;
    }
    let Ok(upload) = form.0 else {
        return refuse(too_big()).await;
    };
    let Some(f) = upload
        .file
        .as_ref()
        .filter(|f| !f.is_empty() || f.name().is_some())
    else {
        return refuse("Select a CSV file of refunds".into()).await;
    };
    let Some(bytes) = bytes_of(f).await? else {
        return refuse(too_big()).await;
    };
    let name = f
        .raw_name()
        .map(|n| n.dangerous_unsafe_unsanitized_raw().as_str().to_string())
        .unwrap_or_else(|| "refunds.csv".into());
    let scope = scope(&staff, Permission::RefundsBulk);
    match bulk::upload(
        &state.db,
        now,
        &who(&staff, origin.0.ip.clone()),
        scope.as_ref(),
        &name,
        &bytes,
    )
    .await?
    {
        Ok(id) => Ok(Answer::Redirect(Redirect::to(format!("{PATH}/{id}")))),
        Err(problem) => refuse(problem.message()).await,
    }
}

/// The batch's page: what the dry run found, what may be done next, and progress.
async fn batch_page(
    state: &AppState,
    staff: &SignedIn,
    batch: &BatchRow,
    errors: Vec<Value>,
    notice: Option<&str>,
) -> Result<Map<String, Value>, PageError> {
    let now = state.clock.now();
    let me = staff.staff.id;
    let mut names = Names::default();
    let mut c = pages::signed_in(state, staff, "/refunds");
    let (text, colour) = state_tag(&batch.state);
    let uploader = names.of(state, batch.uploaded_by).await?;
    let approver = match batch.approved_by {
        Some(a) => Some(names.of(state, a).await?),
        None => None,
    };
    let cancelled_by = match batch.cancelled_by {
        Some(a) => Some(names.of(state, a).await?),
        None => None,
    };
    let zone = state.config.time_zone;
    let when = |us: i64| crate::web::format::local_time(zone, us);
    c.insert("batch".into(), json!({
        "id": batch.id, "file_name": batch.file_name, "hash": batch.file_hash,
        "state": batch.state, "state_text": text, "colour": colour,
        "uploaded_by": uploader, "uploaded_at": when(batch.uploaded_at), "age": age(now, batch.uploaded_at),
        "approved_by": approver, "approved_at": batch.approved_at.map(when),
        "cancelled_by": cancelled_by, "cancelled_at": batch.cancelled_at.map(when),
        "rows": crate::money::thousands(batch.row_count), "ready": batch.ready_count,
        "ready_text": crate::money::thousands(batch.ready_count),
        "refused": batch.refused_count, "refused_text": crate::money::thousands(batch.refused_count),
        "total": pounds(batch.total_amount), "approval_rows": batch.approval_rows,
        "needs_approval": batch.needs_approval, "leave_out_refused": batch.leave_out_refused,
    }));
    let refusals: Vec<Value> = batch_store::refusals(&state.db, batch.id)
        .await?
        .into_iter()
        .map(|(label, n)| json!({"label": label, "count": n}))
        .collect();
    c.insert("refusals".into(), json!(refusals));
    let refused: Vec<Value> = batch_store::refused_rows(&state.db, batch.id, 500)
        .await?
        .into_iter()
        .map(|r| {
            let input: file::InputRow = serde_json::from_str(&r.input).unwrap_or_default();
            let payment = if input.payment_id.trim().is_empty() { input.reference } else { input.payment_id };
            json!({"line": r.line, "payment": payment, "amount": input.amount, "message": r.message})
        })
        .collect();
    c.insert("refused_rows".into(), json!(refused));
    let is_uploader = batch.uploaded_by == me;
    c.insert(
        "may_confirm".into(),
        json!(is_uploader && batch.state == "checked" && batch.ready_count > 0),
    );
    c.insert(
        "may_approve".into(),
        json!(
            !is_uploader
                && batch.state == "awaiting_approval"
                && may(state, staff, batch, Permission::RefundsApprove).await?
        ),
    );
    c.insert(
        "own_awaiting".into(),
        json!(is_uploader && batch.state == "awaiting_approval"),
    );
    let may_pause = may(state, staff, batch, Permission::RefundsBulk).await?;
    c.insert(
        "may_pause".into(),
        json!(may_pause && batch.state == "sending"),
    );
    c.insert(
        "may_resume".into(),
        json!(may_pause && batch.state == "paused"),
    );
    c.insert(
        "may_cancel".into(),
        json!(
            may_pause
                && matches!(
                    batch.state.as_str(),
                    "checked" | "awaiting_approval" | "paused"
                )
        ),
    );
    let progress = bulk::progress(&state.db, batch.id).await?;
    c.insert("progress".into(), json!(progress));
    c.insert(
        "sending".into(),
        json!(
            matches!(batch.state.as_str(), "sending" | "paused" | "sent")
                || (batch.state == "cancelled" && batch.sending_at.is_some())
        ),
    );
    c.insert("errors".into(), Value::Array(errors));
    c.insert("notice".into(), json!(notice));
    c.insert("back_href".into(), json!(PATH));
    Ok(c)
}

#[rocket::get("/refunds/bulk/<id>?<notice>")]
pub(super) async fn batch(
    state: &State<AppState>,
    staff: SignedIn,
    id: i64,
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let b = batch_for(state, &staff, id).await?;
    let notice = match notice {
        Some("confirmed") if b.state == "awaiting_approval" => {
            Some("The batch is waiting for approval by someone else with the finance role")
        }
        Some("confirmed") | Some("approved") | Some("resumed") => {
            Some("The refunds are being sent")
        }
        Some("paused") => {
            Some("The batch is paused: no more of its rows will be sent until it is resumed")
        }
        Some("cancelled") => {
            Some("The batch is cancelled: none of its rows not yet asked for will be sent")
        }
        _ => None,
    };
    let c = batch_page(state, &staff, &b, Vec::new(), notice).await?;
    Ok(Answer::Page(render("refunds/bulk_batch", c)))
}

/// The batch's page again, saying why a step was refused.
async fn refused_page(
    state: &AppState,
    staff: &SignedIn,
    id: i64,
    why: BatchRefusal,
) -> Result<Answer, PageError> {
    let b = batch_for(state, staff, id).await?;
    let c = batch_page(
        state,
        staff,
        &b,
        vec![problem("batch-actions", why.message())],
        None,
    )
    .await?;
    Ok(Answer::Invalid(render("refunds/bulk_batch", c)))
}

fn to_batch(id: i64, notice: &str) -> Answer {
    Answer::Redirect(Redirect::to(format!("{PATH}/{id}?notice={notice}")))
}

#[rocket::post("/refunds/bulk/<id>/confirm", data = "<form>")]
pub(super) async fn confirm(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: i64,
    form: CsrfForm<Step>,
) -> Result<Answer, PageError> {
    batch_for(state, &staff, id).await?;
    let leave_out = form.0.leave_out == "yes";
    let who = who(&staff, origin.0.ip.clone());
    match bulk::confirm(
        &state.db,
        state.clock.now(),
        &who,
        id,
        &form.0.hash,
        leave_out,
    )
    .await?
    {
        Ok(()) => Ok(to_batch(id, "confirmed")),
        Err(why) => refused_page(state, &staff, id, why).await,
    }
}

#[rocket::post("/refunds/bulk/<id>/approve", data = "<form>")]
pub(super) async fn approve(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: i64,
    form: CsrfForm<Step>,
) -> Result<Answer, PageError> {
    let b = batch_for(state, &staff, id).await?;
    if !may(state, &staff, &b, Permission::RefundsApprove).await? {
        return Err(Status::NotFound.into());
    }
    let f = form.0;
    let gate = stepup::Gate {
        code: &f.code,
        stepping_up: &f.stepping_up,
        what: "refund_batch_approve",
        action: format!("{PATH}/{id}/approve"),
        hidden: vec![("hash", f.hash.clone()), ("stepping_up", "1".into())],
        purpose: format!(
            "approve {} refunds totalling {}",
            b.ready_count,
            pounds(b.total_amount)
        ),
        button: "Approve the refunds",
        back: format!("{PATH}/{id}"),
    };
    if let Some(page) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(page);
    }
    let who = who(&staff, origin.0.ip.clone());
    match bulk::approve(&state.db, state.clock.now(), &who, id, &f.hash).await? {
        Ok(()) => Ok(to_batch(id, "approved")),
        Err(why) => refused_page(state, &staff, id, why).await,
    }
}

async fn pause_or_resume(
    state: &AppState,
    staff: &SignedIn,
    origin: &RequestOrigin,
    id: i64,
    resume: bool,
) -> Result<Answer, PageError> {
    let b = batch_for(state, staff, id).await?;
    if !may(state, staff, &b, Permission::RefundsBulk).await? {
        return Err(Status::NotFound.into());
    }
    let who = who(staff, origin.0.ip.clone());
    match bulk::pause(&state.db, state.clock.now(), &who, id, resume).await? {
        Ok(()) => Ok(to_batch(id, if resume { "resumed" } else { "paused" })),
        Err(why) => refused_page(state, staff, id, why).await,
    }
}

#[rocket::post("/refunds/bulk/<id>/pause", data = "<_form>")]
pub(super) async fn pause(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: i64,
    _form: CsrfForm<Step>,
) -> Result<Answer, PageError> {
    pause_or_resume(state, &staff, &origin, id, false).await
}

/// Cancel a batch that has sent nothing yet or is paused: its rows not yet asked for are
/// never sent.
#[rocket::post("/refunds/bulk/<id>/cancel", data = "<_form>")]
pub(super) async fn cancel(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: i64,
    _form: CsrfForm<Step>,
) -> Result<Answer, PageError> {
    let b = batch_for(state, &staff, id).await?;
    if !may(state, &staff, &b, Permission::RefundsBulk).await? {
        return Err(Status::NotFound.into());
    }
    let who = who(&staff, origin.0.ip.clone());
    match bulk::cancel(&state.db, state.clock.now(), &who, id).await? {
        Ok(_) => Ok(to_batch(id, "cancelled")),
        Err(why) => refused_page(state, &staff, id, why).await,
    }
}

#[rocket::post("/refunds/bulk/<id>/resume", data = "<_form>")]
pub(super) async fn resume(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: i64,
    _form: CsrfForm<Step>,
) -> Result<Answer, PageError> {
    pause_or_resume(state, &staff, &origin, id, true).await
}

/// The batch's progress, for the page to update itself.
#[rocket::get("/refunds/bulk/<id>/progress")]
pub(super) async fn progress(
    state: &State<AppState>,
    staff: SignedIn,
    id: i64,
) -> Result<Json<Value>, PageError> {
    let b = batch_for(state, &staff, id).await?;
    let p: Progress = bulk::progress(&state.db, id).await?;
    let (text, _) = state_tag(&b.state);
    Ok(Json(
        json!({"state": b.state, "state_text": text, "progress": p}),
    ))
}

#[derive(rocket::Responder)]
pub(super) struct Download {
    body: (ContentType, Vec<u8>),
    disposition: Header<'static>,
}

/// The rows with their outcomes, as a CSV, at any time.
#[rocket::get("/refunds/bulk/<id>/results.csv")]
pub(super) async fn results(
    state: &State<AppState>,
    staff: SignedIn,
    id: i64,
) -> Result<Download, PageError> {
    batch_for(state, &staff, id).await?;
    let csv = bulk::results_csv(&state.db, id).await?;
    Ok(Download {
        body: (ContentType::CSV, csv),
        disposition: Header::new(
            "Content-Disposition",
            format!("attachment; filename=\"paydesk-refund-batch-{id}.csv\""),
        ),
    })
}
