//! Reconciliation exports: CSV of payments and refunds for any range, streamed page by page
//! (keyset) so memory stays flat however many rows; background exports for big ranges,
//! written by a job to a file that is kept for a few days; and the month-end pack (`pack`).
//!
//! The rules of the CSV itself are in `columns` (columns, amounts) and `crate::csv` (quoting,
//! neutralising); what an export is of is in `filter`.

pub mod access;
pub mod columns;
pub mod filter;
pub mod pack;

use std::collections::{BTreeSet, HashMap};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::audit::{self, Actor, AuditEvent};
use crate::clock::SharedClock;
use crate::identity::permissions::{Grants, Permission};
use crate::jobs::{self, JobContext, JobFailure, JobHandler, JobKind, JobRun};
use crate::services::{self, ServiceAccount};
use crate::store::exports::{
    self as export_store, ExportRecord, Key, NewExport, PageRows, Pass, Range, Reader, Slice,
};
use crate::store::{self, Db, StoreError};
pub use filter::{Fields, Filter, Problem};

/// Rows read from the database at a time.
pub const PAGE_ROWS: i64 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Service(#[from] services::ServiceError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("export file: {0}")]
    File(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// The services a person may export from: where they hold `exports:create`.
pub async fn exportable_services(
    db: &Db,
    grants: &Grants,
) -> Result<Vec<ServiceAccount>, ExportError> {
    let all = services::all(db).await?;
    Ok(all
        .into_iter()
        .filter(|s| grants.can(Permission::ExportsCreate, s.id))
        .collect())
}

/// The services a filter names, each of them one the person may export from; a problem
/// otherwise (unknown and forbidden services read the same, so nothing leaks).
pub fn resolve(
    filter: &Filter,
    allowed: &[ServiceAccount],
) -> Result<Vec<ServiceAccount>, Vec<Problem>> {
    let mut chosen = Vec::new();
    for slug in &filter.services {
        match allowed.iter().find(|s| &s.slug == slug) {
            Some(s) => chosen.push(s.clone()),
            None => {
                return Err(vec![Problem {
                    field: "services",
                    message: "Select services from the list".into(),
                }])
            }
        }
    }
    Ok(chosen)
}

/// An export ready to run: its filter, the services in order, and how rows are written.
pub struct Plan {
    pub filter: Filter,
    pub services: Vec<ServiceAccount>,
    pub layout: columns::Layout,
    range: Range,
    statuses: Vec<(&'static str, Option<&'static str>)>,
    /// (service id, pass), in the order they are written.
    slices: Vec<(i64, Pass)>,
    /// The export's own connection: its counts, metadata keys and pages are read there, so
    /// that reading millions of rows fills one small cache (see `Reader`), not the pool's.
    reader: tokio::sync::Mutex<Option<Reader>>,
}

/// Where writing has got to: the slice, the last row written in it, and the metadata keys
/// the header named (so that a background export resumed later keeps its columns).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    pub slice: usize,
    pub after: Option<Key>,
    pub header_written: bool,
    pub metadata_keys: Option<Vec<String>>,
}

impl Plan {
    /// Prepare `filter` over `services`; the metadata columns are those keys the services'
    /// payments carry (or `keys`, when resuming).
    pub async fn prepare(
        db: &Db,
        filter: Filter,
        services: Vec<ServiceAccount>,
        keys: Option<Vec<String>>,
    ) -> Result<Plan, ExportError> {
        let ids: Vec<i64> = services.iter().map(|s| s.id).collect();
        let mut reader = Reader::open(db).await?;
        let metadata_keys = match keys {
            Some(k) => k,
            None if ids.is_empty() => Vec::new(),
            None => {
                let max = columns::METADATA_COLUMNS_MAX as i64;
                let k = export_store::metadata_keys(&mut reader, &ids, max + 1).await?;
                if k.len() > columns::METADATA_COLUMNS_MAX {
                    tracing::warn!(
                        keys = k.len(),
                        "more metadata keys than export columns: the first {} (sorted) are exported",
                        columns::METADATA_COLUMNS_MAX
                    );
                }
                k.into_iter().take(columns::METADATA_COLUMNS_MAX).collect()
            }
        };
        let mut slices = Vec::new();
        for s in &services {
            if filter.payments {
                slices.push((s.id, Pass::Payments));
            }
            if filter.refunds {
                slices.push((s.id, Pass::Refunds));
            }
        }
        let deep_links = services
            .iter()
            .filter_map(|s| Some((s.id, s.deep_link_template()?.to_string())))
            .collect();
        let layout = columns::Layout {
            zone: filter.zone(),
            services: services.iter().map(|s| (s.id, s.name.clone())).collect(),
            deep_links,
            metadata_keys,
        };
        Ok(Plan {
            range: filter.range(),
            statuses: filter.status_members(),
            filter,
            services,
            layout,
            slices,
            reader: tokio::sync::Mutex::new(Some(reader)),
        })
    }

    /// Close the export's connection (it also closes when the plan is dropped).
    pub async fn close(&self) {
        if let Some(r) = self.reader.lock().await.take() {
            r.close().await;
        }
    }

    fn slice(&self, i: usize) -> Option<Slice<'_>> {
        let (service_id, pass) = *self.slices.get(i)?;
        Some(Slice {
            service_id,
            pass,
            range: &self.range,
            statuses: &self.statuses,
        })
    }

    /// Each slice's rows in one statement, without paging: what the bench runs through the
    /// database's own bulk export.
    pub fn bulk_queries(&self, backend: store::Backend) -> Vec<crate::store::sql::Built> {
        (0..self.slices.len())
            .filter_map(|i| self.slice(i))
            .map(|s| export_store::page_query(backend, &s, None, i64::MAX))
            .collect()
    }

    /// How many rows the export holds, counting at most `cap` in all.
    pub async fn count(&self, cap: Option<i64>) -> Result<i64, ExportError> {
        let mut guard = self.reader.lock().await;
        let reader = guard
            .as_mut()
            .ok_or_else(|| ExportError::Invalid("the export is closed".into()))?;
        let mut total = 0;
        for i in 0..self.slices.len() {
            let Some(s) = self.slice(i) else { break };
            let left = cap.map(|c| (c - total).max(0));
            if left == Some(0) {
                break;
            }
            total += export_store::count(reader, &s, left).await?;
        }
        Ok(total)
    }

    /// Write the next page of rows (and the header, first) to `out`: the number of rows
    /// written, or None once every slice is done.
    pub async fn next_page(
        &self,
        progress: &mut Progress,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, ExportError> {
        self.start(progress, out);
        match self.next_rows(progress).await? {
            Some(page) => {
                self.write(&page, out)?;
                Ok(Some(page.rows.len()))
            }
            None => Ok(None),
        }
    }

    /// The header, once, at the start of an export.
    fn start(&self, progress: &mut Progress, out: &mut Vec<u8>) {
        if !progress.header_written {
            self.layout.header(out);
            progress.header_written = true;
            progress.metadata_keys = Some(self.layout.metadata_keys.clone());
        }
    }

    /// Read the next page of rows from the database, or None once every slice is done.
    async fn next_rows(&self, progress: &mut Progress) -> Result<Option<Page>, ExportError> {
        let mut guard = self.reader.lock().await;
        let reader = guard
            .as_mut()
            .ok_or_else(|| ExportError::Invalid("the export is closed".into()))?;
        loop {
            let Some(slice) = self.slice(progress.slice) else {
                return Ok(None);
            };
            let rows =
                export_store::page(reader, &slice, progress.after.as_ref(), PAGE_ROWS).await?;
            if let Some(last) = rows.last_key(&self.range)? {
                progress.after = Some(last);
            }
            if (rows.len() as i64) < PAGE_ROWS {
                progress.slice += 1;
                progress.after = None;
            }
            if !rows.is_empty() {
                return Ok(Some(Page {
                    service_id: slice.service_id,
                    rows,
                }));
            }
        }
    }

    fn write(&self, page: &Page, out: &mut Vec<u8>) -> Result<(), ExportError> {
        page.rows
            .each(|row| self.layout.row(out, page.service_id, row))?;
        Ok(())
    }
}

/// Rows read from one slice.
struct Page {
    service_id: i64,
    rows: PageRows,
}

/// The filter as audit entries record it, with the services by slug.
fn filter_json(filter: &Filter) -> Value {
    serde_json::to_value(filter).unwrap_or(Value::Null)
}

// ---- streamed downloads -------------------------------------------------------------------

/// Who is downloading, for the audit entry written when the stream ends.
#[derive(Debug, Clone)]
pub struct Downloader {
    pub actor: Actor,
    pub ip: Option<String>,
}

/// Chunks of CSV as they are made; an `Err` means the export broke off and the download must
/// not look complete.
pub type Chunks = mpsc::Receiver<Result<Vec<u8>, String>>;

/// Stream `plan` in the background: pages go into a small channel (so memory stays flat and
/// a slow client slows the reading), and when the stream ends, however it ends, one audit
/// entry records the filter and how many rows went out.
pub fn stream(db: Db, clock: SharedClock, plan: Plan, who: Downloader) -> Chunks {
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, String>>(2);
    let plan = Arc::new(plan);
    // Reading the next page overlaps with writing this one: one task reads pages from the
    // database, the other turns them into CSV.
    let (pages_tx, mut pages) = mpsc::channel::<Result<Page, ExportError>>(1);
    let reader_plan = plan.clone();
    let reader = tokio::spawn(async move {
        let mut progress = Progress::default();
        loop {
            match reader_plan.next_rows(&mut progress).await {
                Ok(Some(page)) => {
                    if pages_tx.send(Ok(page)).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = pages_tx.send(Err(e)).await;
                    break;
                }
            }
        }
        reader_plan.close().await;
    });
    tokio::spawn(async move {
        let mut rows: i64 = 0;
        let mut header = Vec::new();
        plan.start(&mut Progress::default(), &mut header);
        let outcome: Result<(), String> = if tx.send(Ok(header)).await.is_err() {
            Err("the client stopped reading".into())
        } else {
            loop {
                let written = match pages.recv().await {
                    None => break Ok(()),
                    Some(page) => page.and_then(|page| {
                        let mut out = Vec::with_capacity(page.rows.len() * 400);
                        plan.write(&page, &mut out)?;
                        Ok((page.rows.len() as i64, out))
                    }),
                };
                match written {
                    Ok((n, out)) => {
                        rows += n;
                        if tx.send(Ok(out)).await.is_err() {
                            break Err("the client stopped reading".into());
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "a streamed export failed");
                        let _ = tx
                            .send(Err("the export could not be completed".into()))
                            .await;
                        break Err(e.to_string());
                    }
                }
            }
        };
        // A reader still running finds the pages channel closed and stops at its next page,
        // closing its connection.
        drop(pages);
        drop(reader);
        let mut event = AuditEvent::new(who.actor, "export_downloaded", "export:stream")
            .from_ip(who.ip)
            .details(json!({
                "filter": filter_json(&plan.filter),
                "rows": rows,
                "streamed": true,
                "problem": outcome.as_ref().err(),
            }));
        if outcome.is_err() {
            event = event.failed();
        }
        if let Err(e) = audit::record(&db, clock.now(), event).await {
            tracing::error!(error = %e, "could not audit a streamed export");
        }
    });
    rx
}

/// Write the whole export to `out` (the command line's export): rows written.
pub async fn write_all(plan: &Plan, out: &mut impl Write) -> Result<i64, ExportError> {
    let mut progress = Progress::default();
    let mut rows = 0i64;
    let mut buf = Vec::with_capacity(1 << 20);
    let result = loop {
        buf.clear();
        let page = match plan.next_page(&mut progress, &mut buf).await {
            Ok(p) => p,
            Err(e) => break Err(e),
        };
        if let Err(e) = out.write_all(&buf) {
            break Err(e.into());
        }
        match page {
            Some(n) => rows += n as i64,
            None => break Ok(()),
        }
    };
    plan.close().await;
    result?;
    out.flush()?;
    Ok(rows)
}

// ---- background exports -------------------------------------------------------------------

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

pub use access::may_download;

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
