//! `paydesk bench search`: the payments search at scale. A persistent bench database is seeded
//! once (1,000,000 journeys on SQLite, 5,000,000 on PostgreSQL, with disputes and recurring
//! agreements in proportion) and reused by later runs. A console runs in this process on its
//! own port; a fixed mix of searches, the journey page, the disputes list and the agreements
//! search are timed over HTTP, each next to the same search run directly, then list pages per second
//! with many clients, then the query plans the mix relied on.
//!
//! Progress goes to stderr; the figures and plans go to stdout.

mod database;
mod figures;
mod generator;
mod mix;
mod plans;
mod settings;
mod timing;

use std::time::Duration;

use anyhow::{bail, Context};

use crate::identity::permissions::Role;
use crate::store::search::{self as search_store};
use crate::store::Backend;
use crate::AppState;
pub(crate) use database::{
    bench_session, count_journeys, create_postgres_database, ensure_services, open, plan_seeding,
    restore_dropped_indexes, seed, seed_disputes_and_agreements, vacuum_analyze, BenchService,
    SeedPlan, Target,
};
pub use figures::{print_search, CaseFigures, PlanReport, SearchFigures, Seeding, Throughput};
use mix::*;
use plans::plans;
pub use settings::*;
use timing::*;

/// Run the benchmark on SQLite (unless skipped) and, given a server, PostgreSQL. Each
/// backend's figures are printed as soon as they are known.
pub async fn search(settings: &SearchBench) -> anyhow::Result<Vec<SearchFigures>> {
    // Library warnings (sqlx's slow statements among them) on stderr, so stdout holds only
    // the figures; Rocket's own logger stands aside when one is installed.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,sqlx=error,rocket_dyn_templates=error")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
    let mut figures = Vec::new();
    if !settings.skip_sqlite {
        let target = Target::Sqlite(settings.sqlite_path.clone());
        if settings.reseed {
            target.wipe().await?;
        }
        let f = run_backend(&target, settings.sqlite_journeys, settings)
            .await
            .context("on SQLite")?;
        print_search(&f, settings);
        figures.push(f);
    }
    if let Some(server) = settings.postgres_url.as_deref() {
        let target = Target::Postgres(server.to_string(), POSTGRES_DATABASE);
        if settings.reseed {
            target.wipe().await?;
        } else {
            create_postgres_database(server, POSTGRES_DATABASE)
                .await
                .context("creating the PostgreSQL bench database")?;
        }
        let f = run_backend(&target, settings.postgres_journeys, settings)
            .await
            .context("on PostgreSQL")?;
        print_search(&f, settings);
        figures.push(f);
    }
    if figures.is_empty() {
        bail!("nothing to measure: --skip-sqlite needs --postgres-url");
    }
    Ok(figures)
}

async fn run_backend(
    target: &Target,
    journeys: i64,
    settings: &SearchBench,
) -> anyhow::Result<SearchFigures> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = target.url();
    let mut state = open(&url, port).await?;
    let mut plan = plan_seeding(&state.db, journeys).await?;
    if let SeedPlan::Again { have } = plan {
        eprintln!(
            "[{}] the bench database holds {have} journeys seeded for another size: seeding it again from scratch",
            state.db.backend().name()
        );
        state.db.close().await;
        target.wipe().await?;
        state = open(&url, port).await?;
        plan = plan_seeding(&state.db, journeys).await?;
    }
    let result = measure(&state, journeys, plan, settings).await;
    state.db.close().await;
    result
}

async fn measure(
    state: &AppState,
    journeys: i64,
    plan: SeedPlan,
    settings: &SearchBench,
) -> anyhow::Result<SearchFigures> {
    let db = &state.db;
    let backend = db.backend().name();
    let services = ensure_services(state).await?;
    let seeding = seed(db, &services, journeys, plan).await?;
    // Rebuilds what an interrupted bulk load left dropped; a no-op otherwise.
    restore_dropped_indexes(db).await?;
    let held = count_journeys(db).await?;
    seed_disputes_and_agreements(db, held).await?;
    vacuum_analyze(db).await?;
    eprintln!("[{backend}] refreshing the planner's statistics…");
    search_store::refresh_statistics(db).await?;

    let cookie = bench_session(
        state,
        &services,
        "search-bench@bench.example",
        "Search benchmark",
        Role::Viewer,
    )
    .await?;
    // Disputes are read by finance and agreements by caseworkers: a service admin reads both.
    let admin_cookie = bench_session(
        state,
        &services,
        "search-bench-admin@bench.example",
        "Search benchmark (disputes and agreements)",
        Role::ServiceAdmin,
    )
    .await?;
    let cases = mix(state, &services, held).await?;

    let rocket = crate::app(state.clone()).ignite().await?;
    let shutdown = rocket.shutdown();
    let server = tokio::spawn(rocket.launch());
    let base = format!("http://127.0.0.1:{}", state.config.port);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(settings.clients.max(1) * 2)
        .build()?;
    wait_listening(&http, &base).await?;

    let load_average = load_average();
    let measured = async {
        let mut rows = Vec::new();
        for case in cases.iter().filter(|_| !settings.throughput_only) {
            eprintln!("[{backend}] timing {}…", case.name);
            let cookie = if case.kind.needs_admin() {
                &admin_cookie
            } else {
                &cookie
            };
            rows.push(time_case(state, &http, &base, cookie, case, settings.samples).await?);
        }
        let list_urls: Vec<String> = cases
            .iter()
            .filter_map(|c| match &c.kind {
                CaseKind::List { query, .. } => Some(list_url(&base, query)),
                _ => None,
            })
            .collect();
        // The list as staff open it and page through it: its first page and the mix's deep
        // pages of it (Next twenty times, Previous, a cursor a year back).
        let mut plain_urls = vec![list_url(&base, "")];
        plain_urls.extend(cases.iter().filter_map(|c| match &c.kind {
            CaseKind::List { query, .. } if c.name.starts_with("deep:") => {
                Some(list_url(&base, query))
            }
            _ => None,
        }));
        let mut throughput = Vec::new();
        for (label, urls, targeted) in [
            ("list pages, rotating through the mix", list_urls, false),
            ("the plain list, first and deep pages", plain_urls, true),
        ] {
            eprintln!(
                "[{backend}] {label}: {} clients for {} s…",
                settings.clients, settings.seconds
            );
            let run = run_throughput(
                &http,
                urls,
                &cookie,
                settings.clients,
                settings.seconds,
                label,
                state.db.backend() == Backend::Postgres,
            )
            .await?;
            throughput.push(Throughput { targeted, ..run });
        }
        let plans = if settings.throughput_only {
            Vec::new()
        } else {
            eprintln!("[{backend}] reading the query plans…");
            plans(state, &cases).await?
        };
        Ok::<_, anyhow::Error>((rows, throughput, plans))
    }
    .await;
    shutdown.notify();
    let _ = server.await;
    let (cases, throughput, plans) = measured?;
    Ok(SearchFigures {
        backend,
        journeys: held,
        load_average,
        seeding,
        samples: settings.samples,
        cases,
        throughput,
        plans,
    })
}

async fn wait_listening(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the console did not answer on {base}/healthz within 10 s")
}
