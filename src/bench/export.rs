//! `paydesk bench export`: stream a CSV export of 100,000 and of `--rows` payments through
//! HTTP from a real `paydesk serve` process (a fresh one for each size, so its peak memory
//! is that export's), and, in the same run, the database's own bulk export of the same rows
//! with the same SQL: PostgreSQL's `COPY (…) TO STDOUT WITH CSV`, and the `sqlite3` shell's
//! CSV output. Prints rows/s, MB/s, the server's peak resident memory, and the ratio.
//!
//! The bench databases are seeded once (the search bench's generator: three services, a
//! year of payments, metadata on each) and reused.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use super::search::{self as sb, BenchService, SeedPlan, Target};
use crate::exports::{self, Filter, Plan};
use crate::identity::permissions::Role;
use crate::money::thousands;
use crate::store::exports::DateBasis;
use crate::store::{self, Backend, Db};
use crate::timezone::Zone;
use crate::AppState;

pub const POSTGRES_DATABASE: &str = "paydesk_bench_export";

pub struct ExportBench {
    pub rows: i64,
    pub small_rows: i64,
    pub postgres_url: Option<String>,
    pub sqlite_path: PathBuf,
    pub skip_sqlite: bool,
}

/// One export size's figures.
#[derive(Debug, Clone)]
pub struct SizeFigures {
    pub rows: i64,
    pub http: Duration,
    pub bytes: u64,
    /// The server's peak resident set (VmHWM), in KiB.
    pub peak_kib: u64,
    pub direct: Duration,
    pub direct_bytes: u64,
    pub direct_tool: String,
}

impl SizeFigures {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.http.as_secs_f64().max(1e-9)
    }
    pub fn direct_rows_per_second(&self) -> f64 {
        self.rows as f64 / self.direct.as_secs_f64().max(1e-9)
    }
    pub fn ratio(&self) -> f64 {
        self.rows_per_second() / self.direct_rows_per_second().max(1e-9)
    }
}

pub struct ExportFigures {
    pub backend: &'static str,
    pub journeys: i64,
    pub sizes: Vec<SizeFigures>,
}

impl ExportFigures {
    pub fn misses(&self) -> Vec<String> {
        let mut m = Vec::new();
        for s in &self.sizes {
            if s.rows_per_second() < 250_000.0 {
                m.push(format!(
                    "{}: {} rows at {:.0} rows/s (target ≥ 250,000)",
                    self.backend,
                    s.rows,
                    s.rows_per_second()
                ));
            }
            if s.ratio() < 0.5 {
                m.push(format!(
                    "{}: {} rows at {:.2} of the database's own export (target ≥ 0.5)",
                    self.backend,
                    s.rows,
                    s.ratio()
                ));
            }
            if s.peak_kib > 100 * 1024 {
                m.push(format!(
                    "{}: {} rows peaked at {:.1} MB (target ≤ 100 MB)",
                    self.backend,
                    s.rows,
                    s.peak_kib as f64 / 1024.0
                ));
            }
        }
        m
    }
}

pub async fn export(settings: &ExportBench) -> anyhow::Result<Vec<ExportFigures>> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
    let mut figures = Vec::new();
    if !settings.skip_sqlite {
        let f = one(&Target::Sqlite(settings.sqlite_path.clone()), settings)
            .await
            .context("on SQLite")?;
        print(&f);
        figures.push(f);
    }
    if let Some(server) = settings.postgres_url.as_deref() {
        sb::create_postgres_database(server, POSTGRES_DATABASE).await?;
        let f = one(
            &Target::Postgres(server.to_string(), POSTGRES_DATABASE),
            settings,
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

/// The bench database holding at least `rows` journeys, seeded when needed.
async fn seeded(target: &Target, rows: i64) -> anyhow::Result<(AppState, Vec<BenchService>)> {
    let url = target.url();
    let mut state = sb::open(&url, 0).await?;
    let mut plan = sb::plan_seeding(&state.db, rows).await?;
    if let SeedPlan::Again { .. } = plan {
        state.db.close().await;
        target.wipe().await?;
        state = sb::open(&url, 0).await?;
        plan = sb::plan_seeding(&state.db, rows).await?;
    }
    let services = sb::ensure_services(&state).await?;
    sb::seed(&state.db, &services, rows, plan).await?;
    // Planner statistics as a running console keeps them (hourly on SQLite, autovacuum on
    // PostgreSQL): without them PostgreSQL sorts a whole service for each page.
    eprintln!(
        "[{}] refreshing planner statistics…",
        state.db.backend().name()
    );
    crate::store::search::refresh_statistics(&state.db).await?;
    Ok((state, services))
}

async fn one(target: &Target, settings: &ExportBench) -> anyhow::Result<ExportFigures> {
    let (state, services) = seeded(target, settings.rows).await?;
    let backend = state.db.backend();
    let journeys = count(&state.db).await?;
    let cookie = sb::bench_session(
        &state,
        &services,
        "export-bench@bench.example",
        "Export benchmark",
        Role::Finance,
    )
    .await?;
    let session_id = cookie
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .ok_or_else(|| anyhow!("no session"))?;
    // The server runs as in production (the release profile), where the session cookie has
    // its `__Host-` name.
    let mut production = state.config.as_ref().clone();
    production.secure_cookies = true;
    let cookie = format!(
        "{}={session_id}",
        crate::web::session::session_cookie_name(&production)
    );
    let token = crate::web::csrf::token_for(&state.config.csrf_key(), &session_id);
    let mut sizes = Vec::new();
    let mut wanted = vec![settings.small_rows.min(settings.rows), settings.rows];
    wanted.dedup();
    for want in wanted {
        let (from, to) = days_holding(&state.db, want).await?;
        let filter = Filter {
            services: services.iter().map(|s| s.slug.clone()).collect(),
            by: DateBasis::Created,
            from,
            to,
            time_zone: "Europe/London".into(),
            statuses: Vec::new(),
            payments: true,
            refunds: false,
            disputes: false,
        };
        let all = crate::services::all(&state.db).await?;
        let chosen = exports::resolve(&filter, &all).map_err(|_| anyhow!("bench services"))?;
        let plan = Plan::prepare(&state.db, filter.clone(), chosen, None).await?;
        let rows = plan.count(None).await?;
        eprintln!(
            "[{}] exporting {rows} rows ({} to {})…",
            backend.name(),
            filter.from,
            filter.to
        );
        // The database's own export first, which also warms its cache for both.
        let _ = direct(&state, &plan, target).await?;
        let (http, bytes, peak_kib, served) =
            through_http(target, &cookie, &token, &filter).await?;
        if served != rows {
            bail!("the HTTP export gave {served} rows, the database counts {rows}");
        }
        let (direct_time, direct_bytes, tool) = direct(&state, &plan, target).await?;
        sizes.push(SizeFigures {
            rows,
            http,
            bytes,
            peak_kib,
            direct: direct_time,
            direct_bytes,
            direct_tool: tool,
        });
    }
    state.db.close().await;
    Ok(ExportFigures {
        backend: backend.name(),
        journeys,
        sizes,
    })
}

async fn count(db: &Db) -> anyhow::Result<i64> {
    Ok(crate::store::bench::count_journeys(db).await?)
}

/// Whole local days, ending with the newest journey's, holding at least `want` journeys.
async fn days_holding(db: &Db, want: i64) -> anyhow::Result<(String, String)> {
    let zone = Zone::named("Europe/London").unwrap_or_else(Zone::utc);
    let (newest, nth) = crate::store::bench::newest_and_nth_created(db, want - 1).await?;
    let oldest = match nth {
        Some(t) => t,
        None => crate::store::bench::oldest_created(db).await?,
    };
    let day = |us: i64| exports::filter::iso(zone.date_of(store::from_micros(us)));
    Ok((day(oldest), day(newest)))
}

/// The secret key the bench's own configuration uses (`Config::for_tests`), handed to the
/// server so that the session and CSRF token made here are good there.
fn bench_secret_key() -> String {
    crate::config::TEST_SECRET_KEY.to_string()
}

struct ServeProcess(Child);

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Start a fresh `paydesk serve`, post the export form, read the CSV as it streams:
/// (time to the last byte, bytes, the server's peak memory, rows).
async fn through_http(
    target: &Target,
    cookie: &str,
    token: &str,
    filter: &Filter,
) -> anyhow::Result<(Duration, u64, u64, i64)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let exe = std::env::current_exe().context("finding the paydesk binary")?;
    let child = Command::new(exe)
        .arg("serve")
        .env("PAYDESK_DATABASE_URL", target.url())
        .env("PAYDESK_PORT", port.to_string())
        .env("PAYDESK_ADDRESS", "127.0.0.1")
        .env("PAYDESK_SECRET_KEY", bench_secret_key())
        .env("PAYDESK_JOBS_ENABLED", "false")
        .env("PAYDESK_EXPORT_BACKGROUND_ROWS", "1000000000000")
        .env("PAYDESK_DB_MAX_CONNECTIONS", "10")
        .env("PAYDESK_PROFILE", "release")
        .env("PAYDESK_LOG_FORMAT", "text")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting paydesk serve")?;
    let server = ServeProcess(child);
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("paydesk serve did not start on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("csrf_token", token);
    for s in &filter.services {
        form.append_pair("services", s);
    }
    form.append_pair("by", "created")
        .append_pair("from", &filter.from)
        .append_pair("to", &filter.to)
        .append_pair("time_zone", &filter.time_zone)
        .append_pair("include", "payments");
    let body = form.finish();
    let started = Instant::now();
    let mut response = http
        .post(format!("{base}/exports"))
        .header("Cookie", cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("the export answered {}", response.status());
    }
    let mut bytes = 0u64;
    let mut lines = 0i64;
    let mut last = 0u8;
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
        // Records end with CRLF; the bench's rows hold no line breaks of their own.
        let mut prev = last;
        for &b in chunk.iter() {
            if b == b'\n' && prev == b'\r' {
                lines += 1;
            }
            prev = b;
        }
        last = prev;
    }
    let took = started.elapsed();
    let peak = peak_kib(pid).unwrap_or(0);
    drop(server);
    Ok((took, bytes, peak, lines - 1))
}

/// The database's own CSV export of the same rows with the same SQL (no paging).
async fn direct(
    state: &AppState,
    plan: &Plan,
    target: &Target,
) -> anyhow::Result<(Duration, u64, String)> {
    let statements = plan.bulk_queries(state.db.backend());
    match (&state.db, target) {
        (Db::Sqlite(..), Target::Sqlite(path)) => {
            let mut script = String::new();
            for s in &statements {
                script.push_str(&crate::store::sql::inline(store::Backend::Sqlite, s)?);
                script.push_str(";\n");
            }
            let started = Instant::now();
            let mut child = Command::new("sqlite3")
                .arg("-csv")
                .arg("-bail")
                .arg(path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("running sqlite3 (install Debian's sqlite3 package)")?;
            {
                use std::io::Write;
                let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("sqlite3 stdin"))?;
                stdin.write_all(script.as_bytes())?;
            }
            let mut out = child
                .stdout
                .take()
                .ok_or_else(|| anyhow!("sqlite3 stdout"))?;
            let bytes = std::io::copy(&mut out, &mut std::io::sink())?;
            let status = child.wait()?;
            if !status.success() {
                bail!("sqlite3 failed: {status}");
            }
            Ok((started.elapsed(), bytes, "sqlite3 -csv".into()))
        }
        (Db::Postgres(..), Target::Postgres(..)) => {
            let (took, bytes) = crate::store::bench::copy_csv(&state.db, &statements).await?;
            Ok((took, bytes, "COPY … TO STDOUT WITH CSV".into()))
        }
        _ => bail!("the database and the bench target disagree"),
    }
}

pub fn print(f: &ExportFigures) {
    let backend = if f.backend == "postgres" {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    println!();
    println!(
        "bench export — {} ({} journeys held), streamed through HTTP from a fresh `paydesk serve`, {} cores",
        backend.name(),
        thousands(f.journeys),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:>10}  {:>8}  {:>12}  {:>8}  {:>10}  {:>16}  {:>6}",
        "rows", "seconds", "rows/s", "MB/s", "peak RSS", "database rows/s", "ratio"
    );
    for s in &f.sizes {
        println!(
            "{:>10}  {:>8.2}  {:>12}  {:>8.1}  {:>7.1} MB  {:>16}  {:>6.2}",
            thousands(s.rows),
            s.http.as_secs_f64(),
            thousands(s.rows_per_second() as i64),
            s.bytes as f64 / 1e6 / s.http.as_secs_f64().max(1e-9),
            s.peak_kib as f64 / 1024.0,
            thousands(s.direct_rows_per_second() as i64),
            s.ratio()
        );
    }
    if let Some(s) = f.sizes.first() {
        println!(
            "database's own export: {} (same SQL, one statement per service, no paging); CSV bytes paydesk {} vs database {} for the last size",
            s.direct_tool,
            f.sizes.last().map(|l| l.bytes).unwrap_or(0),
            f.sizes.last().map(|l| l.direct_bytes).unwrap_or(0)
        );
    }
    println!("targets: ≥ 250,000 rows/s; ≥ 0.5 of the database's own export; peak ≤ 100 MB, the same at each size");
}
