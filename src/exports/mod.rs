//! Reconciliation exports: CSV of payments, refunds and disputes for any range, streamed page by page
//! (keyset) so memory stays flat however many rows; background exports for big ranges,
//! written by a job to a file that is kept for a few days (`background`); and the month-end
//! pack (`pack`).
//!
//! The rules of the CSV itself are in `columns` (columns, amounts) and `crate::csv` (quoting,
//! neutralising); what an export is of is in `filter`.

pub mod access;
mod background;
pub mod columns;
pub mod filter;
pub mod pack;

use std::io::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::audit::{self, Actor, AuditEvent};
use crate::clock::SharedClock;
use crate::identity::permissions::{Grants, Permission};
use crate::services::{self, ServiceAccount};
use crate::store::exports::{self as export_store, Key, PageRows, Pass, Range, Reader, Slice};
use crate::store::{self, Db, StoreError};
pub use background::{
    audit_download, file_path, handlers, record_services, remove_expired, run_cleaner,
    service_names, start_background, visible, WRITE_JOB,
};
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
    /// Only these journeys, when the export is of what a search found.
    journeys: Option<Vec<i64>>,
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
            if filter.disputes {
                slices.push((s.id, Pass::Disputes));
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
            journeys: None,
            reader: tokio::sync::Mutex::new(Some(reader)),
        })
    }

    /// An export of the payments a search found (`ids`, at most the search's count cap, in
    /// `services`): payment rows only, with the same columns and rules as any export, in
    /// the order they were made. The payments page's "download these results".
    pub async fn of_journeys(
        db: &Db,
        services: Vec<ServiceAccount>,
        ids: Vec<i64>,
        time_zone: &str,
    ) -> Result<Plan, ExportError> {
        let filter = Filter {
            services: services.iter().map(|s| s.slug.clone()).collect(),
            by: export_store::DateBasis::Created,
            from: String::new(),
            to: String::new(),
            time_zone: time_zone.to_string(),
            statuses: Vec::new(),
            payments: true,
            refunds: false,
            disputes: false,
        };
        let mut plan = Plan::prepare(db, filter, services, None).await?;
        plan.range = Range::Created {
            from: i64::MIN,
            to: i64::MAX,
        };
        plan.journeys = Some(ids);
        Ok(plan)
    }

    /// What the audit entry says the export was of.
    fn described(&self) -> Value {
        match &self.journeys {
            Some(ids) => json!({
                "search_results": ids.len(),
                "services": self.filter.services,
            }),
            None => filter_json(&self.filter),
        }
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
            journeys: self.journeys.as_deref(),
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
pub(crate) fn filter_json(filter: &Filter) -> Value {
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
                "filter": plan.described(),
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

pub use access::may_download;
