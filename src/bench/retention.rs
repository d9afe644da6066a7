//! `paydesk bench retention`: seed a fresh bench database with journeys, then time the
//! retention run redacting all of them (every journey is past its period at the run's
//! clock), and the payments search's p95 idle and while the run goes on (targets: ≤ 10 minutes
//! for 1,000,000 payments; busy p95 ≤ 2× idle).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::search::{self as sb, SeedPlan, Target};
use crate::personal_data::retention::Pace;
use crate::search::query::Form;
use crate::AppState;

pub const POSTGRES_DATABASE: &str = "paydesk_bench_retention";

pub struct RetentionBench {
    pub journeys: i64,
    pub postgres_url: Option<String>,
    pub sqlite_path: PathBuf,
    pub skip_sqlite: bool,
    /// How the run is paced (`PAYDESK_RETENTION_BATCH`, `PAYDESK_RETENTION_PAUSE_PERCENT`).
    pub pace: Pace,
}

pub struct RetentionFigures {
    pub pace: Pace,
    pub paused: Duration,
    pub backend: &'static str,
    pub journeys: i64,
    pub redacted: u64,
    pub took: Duration,
    pub idle_p95: Duration,
    pub busy_p95: Duration,
    pub busy_samples: usize,
}

impl RetentionFigures {
    pub fn misses(&self) -> Vec<String> {
        let mut m = Vec::new();
        let limit = Duration::from_secs(600).mul_f64(self.journeys as f64 / 1_000_000.0);
        if self.took > limit {
            m.push(format!(
                "{}: redaction took {:.1} s (target ≤ {:.0} s)",
                self.backend,
                self.took.as_secs_f64(),
                limit.as_secs_f64()
            ));
        }
        if self.busy_p95 > self.idle_p95 * 2 {
            m.push(format!(
                "{}: search p95 {:.1} ms while redacting (target ≤ 2 × {:.1} ms)",
                self.backend,
                ms(self.busy_p95),
                ms(self.idle_p95)
            ));
        }
        m
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn print(f: &RetentionFigures) {
    println!(
        "retention on {} ({} journeys; batches of {}, pause {} % of each batch's time, tidy every {}):",
        f.backend, f.journeys, f.pace.batch, f.pace.pause_percent, f.pace.tidy_every
    );
    println!(
        "  redacted {} in {:.1} s ({:.0} journeys/s)",
        f.redacted,
        f.took.as_secs_f64(),
        f.redacted as f64 / f.took.as_secs_f64().max(1e-9)
    );
    println!(
        "  of which paused for searches and between batches: {:.1} s",
        f.paused.as_secs_f64()
    );
    println!(
        "  search p95 idle {:.1} ms; while redacting {:.1} ms ({} searches, {:.2}×)",
        ms(f.idle_p95),
        ms(f.busy_p95),
        f.busy_samples,
        f.busy_p95.as_secs_f64() / f.idle_p95.as_secs_f64().max(1e-9)
    );
}

pub async fn retention(settings: &RetentionBench) -> anyhow::Result<Vec<RetentionFigures>> {
    let mut figures = Vec::new();
    if !settings.skip_sqlite {
        let f = one(
            &Target::Sqlite(settings.sqlite_path.clone()),
            settings.journeys,
            settings.pace,
        )
        .await
        .context("on SQLite")?;
        print(&f);
        figures.push(f);
    }
    if let Some(server) = settings.postgres_url.as_deref() {
        sb::create_postgres_database(server, POSTGRES_DATABASE).await?;
        let f = one(
            &Target::Postgres(server.to_string(), POSTGRES_DATABASE),
            settings.journeys,
            settings.pace,
        )
        .await
        .context("on PostgreSQL")?;
        print(&f);
        figures.push(f);
    }
    if figures.is_empty() {
        bail!("nothing to measure: --skip-sqlite needs --postgres-url");
    }
    Ok(figures)
}

/// One search as the payments page runs it: a status filter over every service.
async fn search_once(state: &AppState, ids: &[i64]) -> anyhow::Result<Duration> {
    let form = Form {
        statuses: vec!["success".into()],
        ..Default::default()
    };
    let search = crate::search::query::parse(&form, state.clock.now(), state.config.time_zone)
        .map_err(|p| anyhow::anyhow!("the bench's search does not parse: {p:?}"))?;
    let started = Instant::now();
    crate::search::run_with(&state.db, None, ids, &search).await?;
    Ok(started.elapsed())
}

fn p95(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d.get(((d.len() as f64) * 0.95) as usize)
        .or(d.last())
        .copied()
        .unwrap_or_default()
}

async fn one(target: &Target, journeys: i64, pace: Pace) -> anyhow::Result<RetentionFigures> {
    // Redaction changes the data: always start from a fresh database.
    target.wipe().await?;
    let url = target.url();
    let state = sb::open(&url, 0).await?;
    let plan = sb::plan_seeding(&state.db, journeys).await?;
    if let SeedPlan::Again { .. } = plan {
        bail!("the bench database was not empty after wiping it");
    }
    let services = sb::ensure_services(&state).await?;
    sb::seed(&state.db, &services, journeys, plan).await?;
    // As autovacuum would have after the load (the search bench does the same).
    sb::vacuum_analyze(&state.db).await?;
    crate::store::search::refresh_statistics(&state.db).await?;
    let backend = state.db.backend().name();
    let ids: Vec<i64> = services.iter().map(|s| s.id).collect();
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(search_once(&state, &ids).await?);
    }
    // Far enough on that every journey is past the default period.
    let at = time::macros::datetime!(2099-01-01 00:00 UTC);
    let done = Arc::new(AtomicBool::new(false));
    let searcher = {
        let (state, ids, done) = (state.clone(), ids.clone(), done.clone());
        tokio::spawn(async move {
            let mut busy = Vec::new();
            while !done.load(Ordering::Relaxed) {
                match search_once(&state, &ids).await {
                    Ok(d) => busy.push(d),
                    Err(e) => eprintln!("search failed while redacting: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            busy
        })
    };
    eprintln!("[{backend}] redacting {journeys} journeys…");
    let started = Instant::now();
    let report = crate::personal_data::retention::run_paced(&state.db, at, pace, None).await?;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let busy = searcher.await.unwrap_or_default();
    Ok(RetentionFigures {
        pace,
        paused: report.paused,
        backend,
        journeys,
        redacted: report.redacted,
        took,
        idle_p95: p95(idle),
        busy_samples: busy.len(),
        busy_p95: p95(busy),
    })
}
