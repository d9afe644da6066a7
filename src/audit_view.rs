//! Reading the audit log (`audit:read`): the search filter and its rules, pages newest first
//! (keyset on the sequence number), a bounded CSV download with every cell neutralised, and
//! the state of the hash chain. Looking at the log and downloading it are audited too.
//!
//! Scope: a person who holds `audit:read` in some services only (a service admin) sees the
//! entries about those services (the service itself, its payments: see
//! `store::audit_search`); entries about nothing in particular, such as sign-ins, are for
//! people who hold it everywhere (platform admins).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime};

use crate::audit::{self, Actor, AuditError, AuditEvent, Checkpoint};
use crate::context::Context;
use crate::store;
use crate::store::audit::AuditRow;
use crate::store::audit_search::{self, AuditQuery};
use crate::timezone::Zone;

/// Entries on one page.
pub const PAGE_SIZE: i64 = 50;

/// The most entries one download holds; a filter matching more is refused with a message.
pub const CSV_LIMIT: i64 = 10_000;

/// The filter as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterForm {
    pub person: String,
    pub action: String,
    pub target: String,
    pub from: String,
    pub to: String,
}

/// A filter that passed the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub person: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub from: Option<Date>,
    pub to: Option<Date>,
}

pub type Problem = (&'static str, String);

fn parse_date(raw: &str) -> Option<Date> {
    Date::parse(raw.trim(), format_description!("[year]-[month]-[day]")).ok()
}

/// Check the filter: short values, dates as YYYY-MM-DD, the range the right way round.
pub fn parse(form: &FilterForm) -> Result<Filter, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut text = |field: &'static str, raw: &str, label: &str| {
        let t = raw.trim();
        if t.chars().count() > 200 || t.chars().any(char::is_control) {
            problems.push((field, format!("The {label} must be at most 200 characters")));
            None
        } else {
            Some(t.to_string()).filter(|s| !s.is_empty())
        }
    };
    let person = text("person", &form.person, "person").map(|p| p.to_lowercase());
    let action = text("action", &form.action, "action");
    let target = text("target", &form.target, "object");
    let mut date = |field: &'static str, raw: &str| {
        if raw.trim().is_empty() {
            return None;
        }
        let d = parse_date(raw);
        if d.is_none() {
            problems.push((
                field,
                "Enter the date as year-month-day, like 2026-11-20".to_string(),
            ));
        }
        d
    };
    let from = date("from", &form.from);
    let to = date("to", &form.to);
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            problems.push((
                "to",
                "The end date must be the same as or after the start date".into(),
            ));
        }
    }
    if problems.is_empty() {
        Ok(Filter {
            person,
            action,
            target,
            from,
            to,
        })
    } else {
        Err(problems)
    }
}

impl Filter {
    /// The filter as the audit log records it.
    pub fn describe(&self) -> Value {
        json!({
            "person": self.person,
            "action": self.action,
            "object": self.target,
            "from": self.from.map(|d| d.to_string()),
            "to": self.to.map(|d| d.to_string()),
        })
    }

    fn query(&self, zone: Zone, services: &Option<Vec<i64>>, limit: i64) -> AuditQuery {
        AuditQuery {
            actor_label: self.person.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            from: self.from.map(|d| store::to_micros(zone.start_of(d))),
            to: self
                .to
                .and_then(|d| d.next_day())
                .map(|d| store::to_micros(zone.start_of(d))),
            before_seq: None,
            after_seq: None,
            services: services.clone(),
            limit,
        }
    }
}

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Newest,
    /// Entries older than this one.
    Before(i64),
    /// Entries newer than this one.
    After(i64),
}

/// One page of entries, newest first, and the cursors of its neighbours.
#[derive(Debug, Clone)]
pub struct Page {
    pub rows: Vec<AuditRow>,
    /// Show the newer page: entries after this sequence number.
    pub newer: Option<i64>,
    /// Show the older page: entries before this sequence number.
    pub older: Option<i64>,
}

/// Who is looking, and what they may see: None for every entry, or the services whose
/// entries they may read.
pub struct Reader {
    pub actor: Actor,
    pub ip: Option<String>,
    pub services: Option<Vec<i64>>,
}

/// A page of the log, recorded as looked at (with the filter) before it is read.
pub async fn page(
    ctx: &Context,
    reader: &Reader,
    filter: &Filter,
    cursor: Cursor,
) -> Result<Page, AuditError> {
    let now = ctx.clock.now();
    audit::record(
        &ctx.db,
        now,
        AuditEvent::new(reader.actor.clone(), "audit_viewed", "audit_log")
            .from_ip(reader.ip.clone())
            .details(json!({
                "filter": filter.describe(),
                "page": match cursor {
                    Cursor::Newest => json!("newest"),
                    Cursor::Before(s) => json!({"before": s}),
                    Cursor::After(s) => json!({"after": s}),
                },
                "scope": reader.services,
            })),
    )
    .await?;
    let mut q = filter.query(ctx.config.time_zone, &reader.services, PAGE_SIZE + 1);
    match cursor {
        Cursor::Newest => {}
        Cursor::Before(s) => q.before_seq = Some(s),
        Cursor::After(s) => q.after_seq = Some(s),
    }
    let mut rows = audit_search::search(&ctx.db, &q).await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    let (newer_exists, older_exists) = match cursor {
        Cursor::Newest => (false, more),
        Cursor::Before(_) => (true, more),
        Cursor::After(_) => (more, true),
    };
    if more {
        match cursor {
            // Newest first: the extra row is the oldest, at the end.
            Cursor::Newest | Cursor::Before(_) => {
                rows.truncate(PAGE_SIZE as usize);
            }
            // Found oldest first and reversed: the extra row is the newest, at the start.
            Cursor::After(_) => {
                rows.remove(0);
            }
        }
    }
    let newer = if newer_exists {
        rows.first().map(|r| r.seq)
    } else {
        None
    };
    let older = if older_exists {
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(Page { rows, newer, older })
}

/// Why a download was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportRefusal {
    TooMany,
}

/// The entries matching the filter as CSV (RFC 4180, every cell neutralised), newest first,
/// recorded with the filter and the number of rows.
pub async fn export(
    ctx: &Context,
    reader: &Reader,
    filter: &Filter,
) -> Result<Result<String, ExportRefusal>, AuditError> {
    let q = filter.query(ctx.config.time_zone, &reader.services, CSV_LIMIT + 1);
    let rows = audit_search::search(&ctx.db, &q).await?;
    let now = ctx.clock.now();
    if rows.len() as i64 > CSV_LIMIT {
        audit::record(
            &ctx.db,
            now,
            AuditEvent::new(reader.actor.clone(), "audit_exported", "audit_log")
                .failed()
                .from_ip(reader.ip.clone())
                .details(json!({"filter": filter.describe(), "refused": "more than the limit", "limit": CSV_LIMIT})),
        )
        .await?;
        return Ok(Err(ExportRefusal::TooMany));
    }
    let mut out = String::new();
    write_row(
        &mut out,
        &[
            "Sequence",
            "Time (UTC)",
            "Actor type",
            "Actor id",
            "Person",
            "Action",
            "Object",
            "Outcome",
            "IP address",
            "Details",
            "Hash",
        ],
    );
    for r in &rows {
        let when = store::from_micros(r.occurred_at)
            .format(&Rfc3339)
            .unwrap_or_default();
        write_row(
            &mut out,
            &[
                &r.seq.to_string(),
                &when,
                &r.actor_type,
                &r.actor_id,
                &r.actor_label,
                &r.action,
                &r.target,
                &r.outcome,
                r.origin_ip.as_deref().unwrap_or(""),
                &r.details,
                &r.hash,
            ],
        );
    }
    audit::record(
        &ctx.db,
        now,
        AuditEvent::new(reader.actor.clone(), "audit_exported", "audit_log")
            .from_ip(reader.ip.clone())
            .details(
                json!({"filter": filter.describe(), "rows": rows.len(), "scope": reader.services}),
            ),
    )
    .await?;
    Ok(Ok(out))
}

/// Cells are written by `crate::csv`: neutralised, then quoted as RFC 4180 needs.
pub use crate::csv::{field, neutralise};

fn write_row(out: &mut String, cells: &[&str]) {
    let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

// ---- the chain's state ---------------------------------------------------------------------

/// The last verification of the whole chain.
#[derive(Debug, Clone)]
pub struct ChainStatus {
    pub checked_at: OffsetDateTime,
    pub entries: i64,
    pub intact: bool,
    pub problem: Option<String>,
    pub first_bad_seq: Option<i64>,
    pub triggers_present: bool,
    /// The newest checkpoint outside the database that the walk was checked against: how many
    /// entries it covers and when it was made.
    pub checkpoint: Option<(i64, OffsetDateTime)>,
}

/// Verifies the whole chain at most once every `MAX_AGE`, in the background. A page waits
/// for a fresh verification only briefly (`WAIT`): on a small log it sees the result at once;
/// on a large one it shows the last result and when it was made, and the walk (constant
/// memory, one at a time per process) finishes on its own.
#[derive(Default)]
pub struct ChainVerifier {
    last: Mutex<Option<ChainStatus>>,
    running: AtomicBool,
}

impl ChainVerifier {
    pub const MAX_AGE: Duration = Duration::minutes(5);
    pub const WAIT: StdDuration = StdDuration::from_secs(2);

    /// The latest result, starting a new verification when the last one is older than
    /// `MAX_AGE`. `running` says whether one is under way.
    pub async fn status(self: &Arc<Self>, ctx: &Context) -> (Option<ChainStatus>, bool) {
        let (db, now) = (&ctx.db, ctx.clock.now());
        let (dir, key) = (
            ctx.config.audit_checkpoint_folder(),
            ctx.config.audit_checkpoint_key(),
        );
        let stale = self
            .last
            .lock()
            .map(|l| {
                l.as_ref()
                    .is_none_or(|s| now - s.checked_at > Self::MAX_AGE)
            })
            .unwrap_or(true);
        if stale && !self.running.swap(true, Ordering::SeqCst) {
            let me = self.clone();
            let db = db.clone();
            let task = tokio::spawn(async move {
                let result = audit::anchor::verify_with_folder(&db, &dir, &key, None).await;
                match result {
                    Ok((report, newest)) => {
                        let status = ChainStatus {
                            checked_at: now,
                            entries: report.entries,
                            intact: report.intact(),
                            first_bad_seq: report.problem.as_ref().map(|p| p.first_bad_seq()),
                            problem: report.problem.map(|p| p.to_string()),
                            triggers_present: report.triggers_present,
                            checkpoint: newest.and_then(|cp| {
                                OffsetDateTime::parse(&cp.created_at, &Rfc3339)
                                    .ok()
                                    .map(|t| (cp.size, t))
                            }),
                        };
                        if let Ok(mut l) = me.last.lock() {
                            *l = Some(status);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not verify the audit log"),
                }
                me.running.store(false, Ordering::SeqCst);
            });
            // Past the wait the task goes on by itself and the next page shows its result.
            let _ = tokio::time::timeout(Self::WAIT, task).await;
        }
        let last = self.last.lock().ok().and_then(|l| l.clone());
        (last, self.running.load(Ordering::SeqCst))
    }
}

/// A checkpoint of the log as it is now, to copy and keep outside paydesk.
pub async fn checkpoint(ctx: &Context) -> Result<Checkpoint, AuditError> {
    audit::checkpoint(&ctx.db, &ctx.config.audit_checkpoint_key(), ctx.clock.now()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_neutralised() {
        for risky in [
            "=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\nx", "＝1", "＋1", "－1", "＠x",
        ] {
            assert!(neutralise(risky).starts_with('\''), "{risky:?}");
        }
        assert_eq!(neutralise("payment:abc"), "payment:abc");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("line\nbreak"), "\"line\nbreak\"");
        let mut out = String::new();
        write_row(&mut out, &["a", "-2", "c,d"]);
        assert_eq!(out, "a,'-2,\"c,d\"\r\n");
    }

    #[test]
    fn filters_are_checked() {
        let ok = parse(&FilterForm {
            person: " Alice@Example.gov.uk ".into(),
            from: "2026-11-01".into(),
            to: "2026-11-20".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.person.as_deref(), Some("alice@example.gov.uk"));
        let bad = parse(&FilterForm {
            from: "20/11/2026".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(bad[0].0, "from");
        let backwards = parse(&FilterForm {
            from: "2026-11-20".into(),
            to: "2026-11-01".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(backwards[0].0, "to");
        assert_eq!(parse(&FilterForm::default()), Ok(Filter::default()));
    }
}
