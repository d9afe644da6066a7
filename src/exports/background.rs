//! Background exports: asked for (recorded, queued and audited at once), written by a job a
//! slice of time per attempt to a file that survives a worker dying, listed, downloaded, and
//! deleted when their keeping time is up.

use std::collections::{BTreeSet, HashMap};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{access, filter_json, may_download, Downloader, ExportError, Filter, Plan, Progress};
use crate::audit::{self, Actor, AuditEvent};
use crate::clock::SharedClock;
use crate::identity::permissions::{Grants, Permission};
use crate::jobs::{self, JobContext, JobFailure, JobHandler, JobKind, JobRun};
use crate::services;
use crate::store::exports::{self as export_store, ExportRecord, NewExport};
use crate::store::{self, Db};

pub const WRITE_JOB: JobKind = JobKind {
    name: "export_write",
    retry_delays_secs: &[10, 60, 300, 1_800],
};

/// Job handlers this module provides.
pub fn handlers() -> Vec<Arc<dyn JobHandler>> {
    vec![Arc::new(ExportWriter)]
}

/// Ask for a background export: recorded, queued and audited in one transaction.
pub async fn start_background(
    db: &Db,
    now: OffsetDateTime,
    staff_id: i64,
    who: &Downloader,
    plan: &Plan,
    gzip: bool,
    rows_expected: i64,
) -> Result<i64, ExportError> {
    let ids: Vec<i64> = plan.services.iter().map(|s| s.id).collect();
    let file_name = format!(
        "{}.csv{}",
        uuid::Uuid::now_v7().simple(),
        if gzip { ".gz" } else { "" }
    );
    let filter_text = serde_json::to_string(&plan.filter)
        .map_err(|e| ExportError::Invalid(format!("filter: {e}")))?;
    let service_ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    let mut tx = db.begin().await?;
    let id = export_store::insert(
        &mut tx,
        &NewExport {
            requested_by: staff_id,
            service_ids: &service_ids,
            filter: &filter_text,
            gzip,
            rows_expected,
            file_name: &file_name,
        },
        store::to_micros(now),
    )
    .await?;
    jobs::enqueue(&mut tx, WRITE_JOB, &json!({"export_id": id}), now, now).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            who.actor.clone(),
            "export_requested",
            format!("export:{id}"),
        )
        .from_ip(who.ip.clone())
        .details(json!({
            "filter": filter_json(&plan.filter),
            "gzip": gzip,
            "rows_expected": rows_expected,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The services of a stored export.
pub fn record_services(record: &ExportRecord) -> Vec<i64> {
    serde_json::from_str(&record.service_ids).unwrap_or_default()
}

/// The background exports a person sees: their own and those they may download as an
/// administrator, newest first.
pub async fn visible(
    db: &Db,
    staff_id: i64,
    grants: &Grants,
) -> Result<Vec<ExportRecord>, ExportError> {
    let admin = grants.can_somewhere(Permission::ServicesManage);
    let rows = export_store::recent(db, (!admin).then_some(staff_id), 50).await?;
    Ok(rows
        .into_iter()
        .filter(|r| may_download(r, staff_id, grants))
        .collect())
}

pub fn file_path(config: &crate::config::Config, record: &ExportRecord) -> PathBuf {
    config.export_dir.join(&record.file_name)
}

/// Record a download of a finished export (the file itself is served by the caller).
pub async fn audit_download(
    db: &Db,
    now: OffsetDateTime,
    who: &Downloader,
    record: &ExportRecord,
) -> Result<(), ExportError> {
    let filter: Value = serde_json::from_str(&record.filter).unwrap_or(Value::Null);
    audit::record(
        db,
        now,
        AuditEvent::new(
            who.actor.clone(),
            "export_downloaded",
            format!("export:{}", record.id),
        )
        .from_ip(who.ip.clone())
        .details(json!({"filter": filter, "rows": record.rows_written, "streamed": false})),
    )
    .await?;
    Ok(())
}

/// Writes a background export, a slice of time per attempt: each page is appended to the
/// file and then recorded (rows, bytes, where to go on), so a worker that dies is followed
/// by one that cuts the file back to the last recorded page and goes on from there. A long
/// export queues its own continuation rather than outlive its job's lease.
struct ExportWriter;

#[async_trait::async_trait]
impl JobHandler for ExportWriter {
    fn kind(&self) -> JobKind {
        WRITE_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let id = job
            .payload
            .get("export_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| JobFailure::permanent("no export_id"))?;
        let budget = std::time::Duration::from_secs((ctx.config.job_lease_secs / 3).clamp(1, 60));
        match write_slice(ctx, id, budget).await {
            Ok(()) => Ok(()),
            Err(ExportError::Invalid(m)) => {
                mark_failed(ctx, id, &m).await;
                Err(JobFailure::permanent(m))
            }
            Err(e) => {
                if job.attempt >= WRITE_JOB.max_attempts() {
                    mark_failed(ctx, id, "the export could not be written").await;
                }
                Err(JobFailure::retry(e.to_string()))
            }
        }
    }
}

async fn mark_failed(ctx: &JobContext, id: i64, why: &str) {
    let now = ctx.clock.now();
    let result: Result<(), ExportError> = async {
        let record = export_store::get(&ctx.db, id).await?;
        let mut tx = ctx.db.begin().await?;
        if export_store::fail(&mut tx, id, why, store::to_micros(now)).await? {
            audit::append(
                &mut tx,
                now,
                AuditEvent::new(Actor::System, "export_failed", format!("export:{id}"))
                    .failed()
                    .details(json!({"problem": why})),
            )
            .await?;
        }
        tx.commit().await?;
        if let Some(r) = record {
            let _ = std::fs::remove_file(file_path(&ctx.config, &r));
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, export = id, "could not record a failed export");
    }
}

async fn write_slice(
    ctx: &JobContext,
    id: i64,
    budget: std::time::Duration,
) -> Result<(), ExportError> {
    let started = std::time::Instant::now();
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    let record = export_store::start(&mut tx, id, store::to_micros(now)).await?;
    tx.commit().await?;
    let Some(record) = record else {
        return Ok(()); // finished, failed or expired meanwhile
    };
    let filter: Filter = serde_json::from_str(&record.filter)
        .map_err(|e| ExportError::Invalid(format!("the stored filter is unreadable: {e}")))?;
    let mut services_in = Vec::new();
    for sid in record_services(&record) {
        match services::by_id(&ctx.db, sid).await? {
            Some(s) => services_in.push(s),
            None => return Err(ExportError::Invalid("a service has gone".into())),
        }
    }
    access::requester_may_export(&ctx.db, record.requested_by, &services_in).await?;
    let mut progress: Progress = match &record.progress {
        Some(p) => serde_json::from_str(p)
            .map_err(|e| ExportError::Invalid(format!("the stored progress is unreadable: {e}")))?,
        None => Progress::default(),
    };
    let plan = Plan::prepare(&ctx.db, filter, services_in, progress.metadata_keys.clone()).await?;
    std::fs::create_dir_all(&ctx.config.export_dir)?;
    let path = file_path(&ctx.config, &record);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)?;
    let mut rows = record.rows_written;
    let mut bytes = record.bytes_written;
    if record.progress.is_none() {
        rows = 0;
        bytes = 0;
        // The first slice counts the rows exactly, for the progress bar.
        let expected = plan.count(None).await?;
        export_store::set_expected(&ctx.db, id, expected).await?;
    }
    // Whatever a lost attempt wrote after the last recorded page goes.
    file.set_len(bytes as u64)?;
    file.seek(SeekFrom::End(0))?;
    let finished = write_pages(
        ctx,
        id,
        &plan,
        &mut progress,
        &mut file,
        record.gzip,
        (&mut rows, &mut bytes),
        started,
        budget,
    )
    .await;
    plan.close().await;
    if !finished? {
        // Go on in a new job, after this one has recorded its success.
        let now = ctx.clock.now();
        let mut tx = ctx.db.begin().await?;
        jobs::enqueue(&mut tx, WRITE_JOB, &json!({"export_id": id}), now, now).await?;
        tx.commit().await?;
        return Ok(());
    }
    let now = ctx.clock.now();
    let expires = now + time::Duration::days(i64::from(ctx.config.export_keep_days));
    let mut tx = ctx.db.begin().await?;
    if export_store::finish(
        &mut tx,
        id,
        rows,
        bytes,
        store::to_micros(expires),
        store::to_micros(now),
    )
    .await?
    {
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(Actor::System, "export_written", format!("export:{id}")).details(
                json!({"rows": rows, "bytes": bytes, "gzip": record.gzip, "filter": filter_json(&plan.filter)}),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Append pages to the file, recording after each one how far the writing has got, until
/// the export is done (true) or the slice's time is up (false).
#[allow(clippy::too_many_arguments)]
async fn write_pages(
    ctx: &JobContext,
    id: i64,
    plan: &Plan,
    progress: &mut Progress,
    file: &mut std::fs::File,
    gzip: bool,
    (rows, bytes): (&mut i64, &mut i64),
    started: std::time::Instant,
    budget: std::time::Duration,
) -> Result<bool, ExportError> {
    let mut page = Vec::with_capacity(1 << 20);
    loop {
        page.clear();
        let written = plan.next_page(progress, &mut page).await?;
        if !page.is_empty() {
            if gzip {
                // Each page is its own gzip member; a file of members is one gzip stream.
                let mut gz = flate2::write::GzEncoder::new(
                    Vec::with_capacity(page.len() / 4),
                    flate2::Compression::fast(),
                );
                gz.write_all(&page)?;
                file.write_all(&gz.finish()?)?;
            } else {
                file.write_all(&page)?;
            }
            file.sync_data()?;
            *bytes = file.stream_position()? as i64;
        }
        *rows += written.unwrap_or(0) as i64;
        let progress_text = serde_json::to_string(&*progress)
            .map_err(|e| ExportError::Invalid(format!("progress: {e}")))?;
        export_store::set_progress(
            &ctx.db,
            id,
            *rows,
            *bytes,
            &progress_text,
            store::to_micros(ctx.clock.now()),
        )
        .await?;
        if written.is_none() {
            return Ok(true);
        }
        if started.elapsed() >= budget {
            return Ok(false);
        }
    }
}

/// Delete the files of exports past their keeping time (each deletion audited). Run by the
/// scheduler on every instance; the first to mark an export expired deletes its file.
pub async fn remove_expired(
    db: &Db,
    config: &crate::config::Config,
    now: OffsetDateTime,
) -> Result<usize, ExportError> {
    let due = export_store::due_for_removal(db, store::to_micros(now), 100).await?;
    let mut removed = 0;
    for record in due {
        let mut tx = db.begin().await?;
        if !export_store::expire(&mut tx, record.id, store::to_micros(now)).await? {
            tx.rollback().await?;
            continue;
        }
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(
                Actor::System,
                "export_deleted",
                format!("export:{}", record.id),
            )
            .details(json!({"kept_days": config.export_keep_days})),
        )
        .await?;
        tx.commit().await?;
        match std::fs::remove_file(file_path(config, &record)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, export = record.id, "could not delete an export file")
            }
        }
        removed += 1;
    }
    Ok(removed)
}

/// The ids of services named in several records, looked up once: id → name.
pub async fn service_names(
    db: &Db,
    records: &[ExportRecord],
) -> Result<HashMap<i64, String>, ExportError> {
    let ids: BTreeSet<i64> = records.iter().flat_map(record_services).collect();
    let mut names = HashMap::new();
    for s in services::all(db).await? {
        if ids.contains(&s.id) {
            names.insert(s.id, s.name);
        }
    }
    Ok(names)
}

/// Deletes expired export files every minute for as long as the server runs.
pub async fn run_cleaner(
    db: Db,
    clock: SharedClock,
    config: Arc<crate::config::Config>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            break;
        }
        if let Err(e) = remove_expired(&db, &config, clock.now()).await {
            tracing::error!(error = %e, "could not delete expired exports");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = stop.changed() => {}
        }
    }
}
