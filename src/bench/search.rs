//! `paydesk bench search`: the payments search at scale. A persistent bench database is seeded
//! once (1,000,000 journeys on SQLite, 5,000,000 on PostgreSQL) and reused by later runs. A
//! console runs in this process on its own port; a fixed mix of searches and the journey page
//! are timed over HTTP, each next to the same search run directly, then list pages per second
//! with many clients, then the query plans the mix relied on.
//!
//! Progress goes to stderr; the figures and plans go to stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, Actor, AuditEvent};
use crate::clock;
use crate::config::Config;
use crate::identity::permissions::Role;
use crate::identity::{accounts, signin};
use crate::search::query::{self, Form, Period, Sort, StatusGroup, COUNT_CAP, PAGE_SIZE};
use crate::services::{self, NewService};
use crate::store::scratch::with_database;
use crate::store::search::{self as search_store, Bind, Built, Shape};
use crate::store::{self, journeys as journey_store, staff as staff_store, Backend, Db};
use crate::AppState;

/// A search's p95 must stay at or under this.
pub const SEARCH_TARGET: Duration = Duration::from_millis(50);
/// The journey page's p95 must stay at or under this.
pub const JOURNEY_TARGET: Duration = Duration::from_millis(20);
/// List pages per second SQLite must serve with the benchmark's clients.
pub const SQLITE_PAGES_PER_SECOND: f64 = 1000.0;

/// The PostgreSQL database the benchmark keeps between runs.
pub const POSTGRES_DATABASE: &str = "paydesk_bench_search";

/// Settings for `paydesk bench search`.
#[derive(Debug, Clone)]
pub struct SearchBench {
    pub sqlite_journeys: i64,
    pub postgres_journeys: i64,
    pub postgres_url: Option<String>,
    pub sqlite_path: PathBuf,
    /// Timed requests per search (after a short warm-up).
    pub samples: usize,
    /// Length of each throughput run.
    pub seconds: u64,
    /// Concurrent clients in the throughput runs.
    pub clients: usize,
    pub skip_sqlite: bool,
    /// Throw the bench databases away and seed them again.
    pub reseed: bool,
    /// Print each plan's SQL as well.
    pub show_sql: bool,
    /// Skip timing the mix and reading plans: the throughput runs alone (for profiling).
    pub throughput_only: bool,
}

/// How the bench database came to hold its journeys.
#[derive(Debug, Clone)]
pub enum Seeding {
    Reused,
    Seeded { rows: i64, took: Duration },
}

/// One row of the figures table.
#[derive(Debug, Clone)]
pub struct CaseFigures {
    pub name: String,
    pub target: Duration,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    /// p50 of the same work without HTTP, as the page does it: `search::run_with` and the
    /// console's count cache, or the journey page's store calls.
    pub direct_p50: Duration,
    /// p50 of `search::run` without the count cache: a broad search's first request.
    pub uncached_p50: Duration,
    pub results: String,
    pub shape: String,
    pub errors: usize,
}

impl CaseFigures {
    pub fn missed(&self) -> bool {
        self.p95 > self.target || self.errors > 0
    }
}

/// List pages per second with many clients.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub label: String,
    pub clients: usize,
    pub elapsed: Duration,
    pub requests: usize,
    pub errors: usize,
    pub p50: Duration,
    pub p99: Duration,
    /// CPU seconds used meanwhile by this process (its HTTP clients included) and, when the
    /// database is PostgreSQL, by the server's processes (all of them, whoever they serve).
    pub cpu_paydesk: Option<f64>,
    pub cpu_postgres: Option<f64>,
    /// Whether the list-page target applies: to the payments list as staff open it and page
    /// through it. The rotating run is a reference figure: it asks every search of the mix in
    /// turn, the trigram and metadata searches (10-25 ms of CPU each) included, which no 2
    /// cores could serve 1,000 times a second without reusing results.
    pub targeted: bool,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn missed(&self, backend: &str) -> bool {
        backend == "sqlite" && self.targeted && self.per_second() < SQLITE_PAGES_PER_SECOND
    }
}

/// The plans behind one search of the mix.
#[derive(Debug, Clone)]
pub struct PlanReport {
    pub name: String,
    pub shape: String,
    /// (what: "probe (found N)", "list", "count"; SQL; plan)
    pub queries: Vec<(String, String, String)>,
}

/// Everything measured on one backend.
#[derive(Debug, Clone)]
pub struct SearchFigures {
    pub backend: &'static str,
    pub journeys: i64,
    /// The machine's 1-minute load average when timing began (other work shares the cores).
    pub load_average: Option<f64>,
    pub seeding: Seeding,
    pub samples: usize,
    pub cases: Vec<CaseFigures>,
    pub throughput: Vec<Throughput>,
    pub plans: Vec<PlanReport>,
}

impl SearchFigures {
    /// Rows and throughput runs that missed their targets, in words.
    pub fn misses(&self) -> Vec<String> {
        let mut m: Vec<String> = self
            .cases
            .iter()
            .filter(|c| c.missed())
            .map(|c| {
                format!(
                    "{}: {} p95 {:.1} ms (target {} ms){}",
                    self.backend,
                    c.name,
                    ms(c.p95),
                    c.target.as_millis(),
                    if c.errors > 0 {
                        format!(", {} errors", c.errors)
                    } else {
                        String::new()
                    }
                )
            })
            .collect();
        if self.backend == "sqlite" {
            for t in &self.throughput {
                if t.missed(self.backend) {
                    m.push(format!(
                        "sqlite: {} {:.0} pages/s (target {:.0})",
                        t.label,
                        t.per_second(),
                        SQLITE_PAGES_PER_SECOND
                    ));
                }
            }
        }
        m
    }
}

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

/// Where a bench database lives.
pub(crate) enum Target {
    Sqlite(PathBuf),
    /// The server's URL and the database's name on it.
    Postgres(String, &'static str),
}

impl Target {
    pub(crate) fn url(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("sqlite://{}", path.display()),
            Target::Postgres(server, name) => with_database(server, name),
        }
    }

    /// Throw the database away and leave an empty one (or none: SQLite makes it on open).
    pub(crate) async fn wipe(&self) -> anyhow::Result<()> {
        match self {
            Target::Sqlite(path) => remove_sqlite(path),
            Target::Postgres(server, name) => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(server)
                    .await
                    .with_context(|| format!("connecting to {}", store::redact_url(server)))?;
                eprintln!("[postgres] dropping database {name}…");
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                create_postgres_database(server, name).await
            }
        }
    }
}

fn remove_sqlite(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => eprintln!("[sqlite] removed {}", file.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", file.display())),
        }
    }
    Ok(())
}

/// Create the bench database `name` on `server` unless it exists.
pub(crate) async fn create_postgres_database(server: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .with_context(|| format!("connecting to {}", store::redact_url(server)))?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_none() {
        eprintln!("[postgres] creating database {name}…");
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await?;
    Ok(())
}

/// The three services, with their share of the journeys: 60%, 30% and 10%.
const SERVICES: [(&str, &str, &str); 3] = [
    ("parking-permits", "Parking permits", "Parking permit"),
    (
        "garden-waste",
        "Garden waste collection",
        "Garden waste subscription",
    ),
    ("court-fines", "Court fines", "Fine payment"),
];

/// A service of the bench database.
#[derive(Debug, Clone)]
pub(crate) struct BenchService {
    pub(crate) id: i64,
    pub(crate) slug: String,
}

pub(crate) async fn open(url: &str, port: u16) -> anyhow::Result<AppState> {
    let mut config = Config::for_tests(url);
    config.port = port;
    config.jobs_enabled = false;
    // The console's default pool, not the tests' smaller one.
    config.db_max_connections = 10;
    AppState::open(config, clock::system())
        .await
        .with_context(|| format!("opening {}", store::redact_url(url)))
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
    if let Db::Postgres(pool, _) = db {
        // Rebuilds what an interrupted bulk load left dropped; a no-op otherwise.
        restore_dropped_indexes(db).await?;
        // As autovacuum would have by the time anyone searched: the visibility map makes
        // index-only scans possible and hint bits are set. Quick when already done.
        eprintln!("[postgres] VACUUM ANALYZE…");
        for table in ["journeys", "journey_metadata"] {
            sqlx::raw_sql(&format!("VACUUM (ANALYZE) {table}"))
                .execute(pool)
                .await?;
        }
    }
    eprintln!("[{backend}] refreshing the planner's statistics…");
    search_store::refresh_statistics(db).await?;
    let held = count_journeys(db).await?;

    let cookie = bench_session(
        state,
        &services,
        "search-bench@bench.example",
        "Search benchmark",
        Role::Viewer,
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
            rows.push(time_case(state, &http, &base, &cookie, case, settings.samples).await?);
        }
        let list_urls: Vec<String> = cases
            .iter()
            .filter_map(|c| match &c.kind {
                CaseKind::List { query, .. } => Some(list_url(&base, query)),
                CaseKind::Journey { .. } => None,
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

pub(crate) async fn ensure_services(state: &AppState) -> anyhow::Result<Vec<BenchService>> {
    let mut out = Vec::new();
    for (slug, name, _) in SERVICES {
        let id = match services::by_slug(&state.db, slug).await? {
            Some(s) => s.id,
            None => services::add(
                state,
                Actor::System,
                &NewService {
                    slug: slug.into(),
                    name: name.into(),
                    time_zone: "Europe/London".into(),
                    ..Default::default()
                },
            )
            .await?
            .map_err(|p| anyhow!(p.join("; ")))?,
        };
        out.push(BenchService {
            id,
            slug: slug.to_string(),
        });
    }
    Ok(out)
}

async fn count_journeys(db: &Db) -> anyhow::Result<i64> {
    Ok(
        crate::on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM journeys")
        .fetch_one(pool)
        .await?),
    )
}

// ---- seeding ------------------------------------------------------------------------------

/// Journeys are spread evenly (with jitter) over this span, ending when seeding started.
const SPAN_MICROS: i64 = 395 * 86_400_000_000;

/// What seeding has to do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SeedPlan {
    /// Enough journeys are held.
    Reuse,
    /// Insert rows `have + 1 ..= want`, the first row created at `start`: a fresh seeding
    /// (have = 0) or an interrupted one of the same size.
    Seed { have: i64, start: i64 },
    /// The rows held were seeded for another size (their times would not line up).
    Again { have: i64 },
}

/// Row n of a seeding for `want` rows is created at start + (n - 1) * (SPAN / want) plus
/// jitter below one step, so a seeding of the same size can be resumed where it stopped.
pub(crate) async fn plan_seeding(db: &Db, want: i64) -> anyhow::Result<SeedPlan> {
    eprintln!("[{}] counting journeys…", db.backend().name());
    let have = count_journeys(db).await?;
    if have >= want {
        return Ok(SeedPlan::Reuse);
    }
    if have == 0 {
        let now = store::to_micros(OffsetDateTime::now_utc());
        return Ok(SeedPlan::Seed {
            have,
            start: now - SPAN_MICROS,
        });
    }
    let step = (SPAN_MICROS / want).max(1);
    let (first, last): (i64, i64) = crate::on_db!(db, pool => sqlx::query_as::<_, (i64, i64)>(
        "SELECT (SELECT created_at FROM journeys ORDER BY id LIMIT 1), \
                (SELECT created_at FROM journeys ORDER BY id DESC LIMIT 1)")
        .fetch_one(pool)
        .await?);
    let expected = first + (have - 1) * step;
    Ok(if (last - expected).abs() <= 2 * step {
        SeedPlan::Seed { have, start: first }
    } else {
        SeedPlan::Again { have }
    })
}

/// Seed journeys as planned; rows already there are kept.
pub(crate) async fn seed(
    db: &Db,
    services: &[BenchService],
    want: i64,
    plan: SeedPlan,
) -> anyhow::Result<Seeding> {
    let backend = db.backend();
    let name = backend.name();
    let (have, start) = match plan {
        SeedPlan::Reuse => {
            eprintln!("[{name}] reusing the bench database (it holds at least {want} journeys)");
            return Ok(Seeding::Reused);
        }
        SeedPlan::Seed { have, start } => (have, start),
        SeedPlan::Again { have } => bail!("{have} journeys held were seeded for another size"),
    };
    let rows = want - have;
    let ids: Vec<i64> = services.iter().map(|s| s.id).collect();
    let gen = Generator {
        backend,
        start,
        step: (SPAN_MICROS / want).max(1),
        now: start + SPAN_MICROS,
        services: [ids[0], ids[1], ids[2]],
    };
    // A large load on PostgreSQL goes faster without the journeys' indexes; they are built
    // again afterwards from their own definitions.
    let bulk = backend == Backend::Postgres && rows >= 100_000;
    if bulk {
        drop_indexes_for_load(db).await?;
    }
    let chunk: i64 = match backend {
        Backend::Sqlite => 50_000,
        Backend::Postgres => 100_000,
    };
    eprintln!("[{name}] seeding {rows} journeys ({have} held, {want} wanted)…");
    let started = Instant::now();
    let mut from = have + 1;
    while from <= want {
        let to = (from + chunk - 1).min(want);
        let mut tx = db.begin().await?;
        tx.relax_durability().await?;
        let sql = gen.insert_sql(from, to);
        crate::on_tx!(&mut tx, conn => {
            if backend == Backend::Sqlite {
                // A large page cache for this connection while the indexes grow.
                sqlx::raw_sql("PRAGMA cache_size = -1048576").execute(&mut *conn).await?;
            }
            sqlx::raw_sql(&sql).execute(&mut *conn).await?;
        });
        tx.commit().await?;
        let done = to - have;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "[{name}] seeded {done} / {rows} ({:.0} s, {:.0} journeys/s)",
            secs,
            done as f64 / secs.max(1e-9)
        );
        from = to + 1;
    }
    match db {
        Db::Sqlite(_, writer) => {
            eprintln!("[sqlite] checkpointing the write-ahead log…");
            sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA cache_size = -65536;")
                .execute(&writer.pool)
                .await?;
        }
        Db::Postgres(..) => {
            if bulk {
                restore_dropped_indexes(db).await?;
            }
        }
    }
    let took = started.elapsed();
    eprintln!(
        "[{name}] seeded {rows} journeys in {:.1} s",
        took.as_secs_f64()
    );
    Ok(Seeding::Seeded { rows, took })
}

/// A bench-owned table holding the definitions of the indexes dropped for a bulk load, so
/// that a load interrupted half-way can still rebuild them; dropped once they are rebuilt.
const DROPPED_INDEXES: &str = "paydesk_bench_dropped_indexes";

/// Drop every index on journeys and journey_metadata that does not back a constraint,
/// saving each one's definition as PostgreSQL prints it, in one transaction: the indexes
/// rebuilt afterwards are exactly those the migrations made, whichever migration made them.
async fn drop_indexes_for_load(db: &Db) -> anyhow::Result<()> {
    let Db::Postgres(pool, _) = db else {
        return Ok(());
    };
    eprintln!("[postgres] dropping the journeys' indexes for the bulk load (rebuilt afterwards)…");
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(&format!(
        "CREATE TABLE IF NOT EXISTS {DROPPED_INDEXES} (name TEXT PRIMARY KEY, definition TEXT NOT NULL)"
    ))
    .execute(&mut *tx)
    .await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_indexdef(x.indexrelid) FROM pg_index x \
         JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         WHERE t.relname IN ('journeys', 'journey_metadata') \
         AND t.relnamespace = current_schema()::regnamespace \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (name, definition) in &indexes {
        sqlx::query(&format!(
            "INSERT INTO {DROPPED_INDEXES} (name, definition) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
        ))
        .bind(name)
        .bind(definition)
        .execute(&mut *tx)
        .await?;
        sqlx::raw_sql(&format!("DROP INDEX \"{name}\""))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Rebuild the indexes a bulk load dropped (also after an interrupted one); a no-op when
/// none are pending.
async fn restore_dropped_indexes(db: &Db) -> anyhow::Result<()> {
    let Db::Postgres(pool, _) = db else {
        return Ok(());
    };
    let pending: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(DROPPED_INDEXES)
        .fetch_one(pool)
        .await?;
    if !pending {
        return Ok(());
    }
    let indexes: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT name, definition FROM {DROPPED_INDEXES} ORDER BY name"
    ))
    .fetch_all(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql("SET maintenance_work_mem = '1GB'")
        .execute(&mut *conn)
        .await?;
    for (name, definition) in indexes {
        let present: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&name)
            .fetch_one(&mut *conn)
            .await?;
        if !present {
            eprintln!("[postgres] building index {name}…");
            let t = Instant::now();
            sqlx::raw_sql(&definition).execute(&mut *conn).await?;
            eprintln!(
                "[postgres] built {name} in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        sqlx::query(&format!("DELETE FROM {DROPPED_INDEXES} WHERE name = $1"))
            .bind(&name)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::raw_sql(&format!(
        "RESET maintenance_work_mem; DROP TABLE {DROPPED_INDEXES}"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// First and last names, for payers' emails and cardholders.
const FIRST_NAMES: [&str; 100] = [
    "Oliver",
    "George",
    "Harry",
    "Noah",
    "Jack",
    "Leo",
    "Arthur",
    "Muhammad",
    "Oscar",
    "Charlie",
    "Jacob",
    "Thomas",
    "Henry",
    "William",
    "Alfie",
    "Joshua",
    "Freddie",
    "Archie",
    "Ethan",
    "Isaac",
    "James",
    "Joseph",
    "Samuel",
    "Daniel",
    "Max",
    "Lucas",
    "Mason",
    "Theo",
    "Logan",
    "Adam",
    "Alexander",
    "Benjamin",
    "Edward",
    "Elijah",
    "Finley",
    "Harrison",
    "Reuben",
    "Tommy",
    "Sebastian",
    "Dylan",
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Ivy",
    "Lily",
    "Isabella",
    "Rosie",
    "Sophia",
    "Grace",
    "Willow",
    "Freya",
    "Florence",
    "Emily",
    "Ella",
    "Poppy",
    "Evie",
    "Elsie",
    "Charlotte",
    "Evelyn",
    "Sienna",
    "Sofia",
    "Daisy",
    "Phoebe",
    "Sophie",
    "Alice",
    "Harper",
    "Matilda",
    "Ruby",
    "Emilia",
    "Maya",
    "Millie",
    "Isabelle",
    "Ellie",
    "Esme",
    "Chloe",
    "Jessica",
    "Lucy",
    "Hannah",
    "Anna",
    "Sarah",
    "Laura",
    "Rachel",
    "Rebecca",
    "Katie",
    "Megan",
    "Zara",
    "Aisha",
    "Fatima",
    "Priya",
    "Anjali",
    "Wei",
    "Mei",
    "Chen",
    "Tomasz",
    "Agnieszka",
    "Kwame",
    "Amara",
    "Siobhan",
];
const LAST_NAMES: [&str; 100] = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Lewis",
    "James",
    "Phillips",
    "Mason",
    "Mitchell",
    "Rose",
    "Davis",
    "Rodriguez",
    "Cox",
    "Alexander",
    "Morgan",
    "Moore",
    "Martin",
    "Price",
    "Hughes",
    "Edwards",
    "Turner",
    "Hill",
    "Cooper",
    "Ward",
    "Morris",
    "King",
    "Harris",
    "Baker",
    "Allen",
    "Young",
    "Scott",
    "Carter",
    "Murphy",
    "Kelly",
    "Bell",
    "Cook",
    "Bailey",
    "Parker",
    "Miller",
    "Shaw",
    "Lee",
    "Ali",
    "Hussain",
    "Begum",
    "Ahmed",
    "Singh",
    "Kaur",
    "Campbell",
    "Stewart",
    "Anderson",
    "Reid",
    "Murray",
    "Ross",
    "Watson",
    "Fraser",
    "Graham",
    "MacDonald",
    "Kennedy",
    "Owen",
    "Lloyd",
    "Powell",
    "Griffiths",
    "Richards",
    "Chapman",
    "Webb",
    "Marshall",
    "Harvey",
    "Gray",
    "Palmer",
    "Holmes",
    "Fox",
    "Barker",
    "Ellis",
    "Knight",
    "Hunt",
    "Mills",
    "Stevens",
    "Dixon",
    "Lawson",
    "Nowak",
    "Kowalski",
    "Okafor",
];
/// Card number prefixes (BINs) per brand.
const VISA_BINS: [&str; 25] = [
    "411111", "424242", "400115", "401288", "402400", "403587", "404159", "405512", "406742",
    "407220", "408899", "410039", "412753", "414720", "417500", "419773", "421365", "422216",
    "426684", "431940", "434256", "438857", "445653", "449352", "454313",
];
const MASTERCARD_BINS: [&str; 15] = [
    "510510", "512345", "520082", "522222", "530125", "535310", "540014", "542418", "545454",
    "550000", "552433", "555555", "222300", "230011", "271000",
];
const AMEX_BINS: [&str; 4] = ["340000", "341111", "370000", "378282"];

/// (A, B, C) of each row hash: see `Generator::hash`.
const HASHES: [(i64, i64, i64); 8] = [
    (2_654_435_761, 97, 1_103_515_245),
    (2_246_822_519, 1_013_904_223, 1_140_671_485),
    (3_266_489_917, 1_664_525, 1_299_709),
    (668_265_263, 374_761_393, 1_597_334_677),
    (2_869_860_233, 1_442_695_041, 1_274_126_177),
    (1_181_783_497, 40_503, 1_022_631_237),
    (3_046_413_977, 2_166_136_261, 1_808_877_157),
    (1_911_520_717, 16_777_619, 2_038_074_743),
];
/// The largest prime below 2^32.
const PRIME: i64 = 4_294_967_291;

/// Writes the INSERT … SELECT that makes journeys numbered `from..=to`: every value is a
/// deterministic function of the row number n, so a database seeded twice is the same.
struct Generator {
    backend: Backend,
    /// When row 1 was created, and the time between rows.
    start: i64,
    step: i64,
    now: i64,
    services: [i64; 3],
}

impl Generator {
    /// A pseudo-random value in [0, 2^32) for row n: an affine map modulo a prime, an
    /// xorshift (written with | and &: SQLite has no XOR), and a multiply modulo the prime.
    /// Every intermediate value stays below 2^63 on both databases.
    fn hash(k: usize) -> String {
        let (a, b, c) = HASHES[k];
        let x = format!("((n * {a} + {b}) % {PRIME})");
        let xorshift = format!("(({x} | ({x} >> 13)) - ({x} & ({x} >> 13)))");
        format!("(({xorshift} * {c}) % {PRIME})")
    }

    /// `e` as decimal digits, zero-padded to `width`.
    fn pad(&self, e: &str, width: usize) -> String {
        match self.backend {
            Backend::Sqlite => format!("printf('%0{width}d', {e})"),
            Backend::Postgres => format!("lpad(({e})::text, {width}, '0')"),
        }
    }

    fn hex8(&self, e: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("printf('%08x', {e})"),
            Backend::Postgres => format!("lpad(to_hex({e}), 8, '0')"),
        }
    }

    /// The `idx`-th of `items`, from one constant string of fixed-width slots.
    fn pick(&self, items: &[&str], idx: &str) -> String {
        let width = items.iter().map(|s| s.len()).max().unwrap_or(1);
        let table: String = items.iter().map(|s| format!("{s:<width$}")).collect();
        let from = format!("(({idx}) % {}) * {width} + 1", items.len());
        let from = match self.backend {
            Backend::Sqlite => from,
            Backend::Postgres => format!("({from})::int"),
        };
        format!("rtrim(substr('{table}', {from}, {width}))")
    }

    /// The UTC day of a time in microseconds, `plus` days on, as YYYY-MM-DD.
    fn day(&self, micros: &str, plus: i64) -> String {
        match self.backend {
            Backend::Sqlite => format!("date(({micros}) / 1000000, 'unixepoch', '+{plus} day')"),
            Backend::Postgres => format!(
                "to_char(((to_timestamp(({micros}) / 1000000) AT TIME ZONE 'UTC')::date + {plus})::timestamp, 'YYYY-MM-DD')"
            ),
        }
    }

    /// Keeps PostgreSQL from pulling a subquery up into the query around it, which would
    /// evaluate each of its columns' expressions once per use (five times slower here).
    fn fence(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " OFFSET 0",
        }
    }

    fn least(&self, a: &str, b: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("min({a}, {b})"),
            Backend::Postgres => format!("LEAST({a}, {b})"),
        }
    }

    fn insert_sql(&self, from: i64, to: i64) -> String {
        let (head, source) = match self.backend {
            Backend::Sqlite => (
                format!("WITH RECURSIVE seq(n) AS (SELECT {from} UNION ALL SELECT n + 1 FROM seq WHERE n < {to}) "),
                "seq".to_string(),
            ),
            Backend::Postgres => (
                String::new(),
                format!("generate_series({from}::bigint, {to}::bigint) AS seq(n)"),
            ),
        };
        let hashes: Vec<String> = (0..HASHES.len())
            .map(|k| format!("{} AS h{}", Self::hash(k), k + 1))
            .collect();
        let (start, step, now) = (self.start, self.step, self.now);
        let [s0, s1, s2] = self.services;

        // Middle level: the row's choices, from its hashes.
        let em = "(h4 % 200000)";
        let given = self.pick(&FIRST_NAMES, &format!("{em} % 100"));
        let family = self.pick(&LAST_NAMES, &format!("({em} / 100) % 100"));
        let number = self.pad(&format!("({em} / 10000) * 500 + {em} % 500"), 4);
        let email = format!(
            "CASE WHEN (h4 / 200000) % 4 = 0 THEN {given} || '.' || {family} || {number} || '@example.org' \
             ELSE lower({given} || '.' || {family}) || {number} || '@example.org' END"
        );
        let cardholder = format!(
            "{} || ' ' || {}",
            self.pick(&FIRST_NAMES, "h5 % 100"),
            self.pick(&LAST_NAMES, "(h5 / 100) % 100")
        );
        let brand = "CASE WHEN h3 % 100 < 60 THEN 'visa' WHEN h3 % 100 < 90 THEN 'master-card' \
             WHEN h3 % 100 < 95 THEN 'american-express' WHEN h3 % 100 = 95 THEN 'diners-club' \
             WHEN h3 % 100 = 96 THEN 'discover' WHEN h3 % 100 = 97 THEN 'jcb' \
             WHEN h3 % 100 = 98 THEN 'maestro' ELSE 'unionpay' END";
        let bin = format!(
            "CASE WHEN h3 % 100 < 60 THEN {} WHEN h3 % 100 < 90 THEN {} WHEN h3 % 100 < 95 THEN {} \
             WHEN h3 % 100 = 95 THEN '361234' WHEN h3 % 100 = 96 THEN '601100' \
             WHEN h3 % 100 = 97 THEN '353011' WHEN h3 % 100 = 98 THEN '675900' ELSE '622126' END",
            self.pick(&VISA_BINS, "h3 / 100"),
            self.pick(&MASTERCARD_BINS, "h3 / 100"),
            self.pick(&AMEX_BINS, "h3 / 100"),
        );
        let middle = format!(
            "SELECT n, h1, h5, h6, \
               h1 % 10 AS svc, \
               h2 % 1000 AS st, \
               {start} + (n - 1) * {step} + h8 % {step} AS created, \
               100 + (h6 / 10000) % 49901 AS amount, \
               {email} AS email, \
               {cardholder} AS cardholder, \
               {brand} AS brand, \
               {bin} AS bin, \
               CASE WHEN h3 % 100 BETWEEN 90 AND 94 OR (h3 / 100000) % 3 = 0 THEN 'credit' ELSE 'debit' END AS card_type, \
               h7 % 100 AS md, \
               'LC' || {ledger} AS ledger, \
               'CASE-' || {case} AS case_ref, \
               (h1 / 1000) % 40 AS attention \
             FROM (SELECT n, {hashes} FROM {source}{fence}) AS a{fence}",
            ledger = self.pad("(h7 / 100) % 100", 3),
            case = self.pad("(h7 / 10000) % 1000000", 6),
            hashes = hashes.join(", "),
            fence = self.fence(),
        );

        // Outer level: the columns. Status buckets (per mille): success 700, declined 100,
        // timed out 80, cancelled by the payer 40, cancelled by the service 30, created 20,
        // started 20, error 10. Card details exist for success, declined and error.
        let success = "st < 700";
        let unfinished = "(st >= 950 AND st < 990)";
        let card = "(st < 800 OR st >= 990)";
        let seen = self.least("created + 600000000", &now.to_string());
        let columns = [
            ("service_id", format!("CASE WHEN svc < 6 THEN {s0} WHEN svc < 9 THEN {s1} ELSE {s2} END")),
            ("payment_id", format!("{} || {} || {}", self.hex8("h1"), self.hex8("h5"), self.pad("n", 10))),
            ("status", "CASE WHEN st < 700 THEN 'success' WHEN st < 920 THEN 'failed' WHEN st < 950 THEN 'cancelled' \
                         WHEN st < 970 THEN 'created' WHEN st < 990 THEN 'started' ELSE 'error' END".into()),
            ("status_rank", "CASE WHEN st >= 950 AND st < 970 THEN 0 WHEN st >= 970 AND st < 990 THEN 1 ELSE 4 END".into()),
            ("finished", format!("(NOT {unfinished})")),
            ("state_code", "CASE WHEN st < 700 THEN NULL WHEN st < 800 THEN 'P0010' WHEN st < 880 THEN 'P0020' \
                             WHEN st < 920 THEN 'P0030' WHEN st < 950 THEN 'P0040' WHEN st < 990 THEN NULL ELSE 'P0050' END".into()),
            ("state_message", "CASE WHEN st < 700 THEN NULL WHEN st < 800 THEN 'Payment method rejected' \
                                WHEN st < 880 THEN 'Payment expired' WHEN st < 920 THEN 'Payment was cancelled by the user' \
                                WHEN st < 950 THEN 'Payment was cancelled by the service' WHEN st < 990 THEN NULL \
                                ELSE 'Payment provider returned an error' END".into()),
            ("amount", "amount".into()),
            ("description", format!(
                "CASE WHEN svc < 6 THEN '{}' WHEN svc < 9 THEN '{}' ELSE '{}' END",
                SERVICES[0].2, SERVICES[1].2, SERVICES[2].2
            )),
            ("reference", format!("'PAY-' || {}", self.pad("n", 8))),
            ("reference_key", format!("'pay-' || {}", self.pad("n", 8))),
            ("email", "email".into()),
            ("email_key", "lower(email)".into()),
            ("language", "CASE WHEN (h5 / 10000) % 20 = 0 THEN 'cy' ELSE 'en' END".into()),
            ("cardholder_name", format!("CASE WHEN {card} THEN cardholder END")),
            ("card_brand", format!("CASE WHEN {card} THEN brand END")),
            ("card_type", format!("CASE WHEN {card} THEN card_type END")),
            ("first_digits", format!("CASE WHEN {card} THEN bin END")),
            ("last_digits", format!("CASE WHEN {card} THEN {} END", self.pad("h6 % 10000", 4))),
            ("expiry_date", format!(
                "CASE WHEN {card} THEN {} || '/' || {} END",
                self.pad("1 + (h6 / 10000000) % 12", 2),
                self.pad("27 + (h6 / 1000) % 5", 2)
            )),
            ("payment_provider", "CASE WHEN svc < 6 THEN 'worldpay' ELSE 'stripe' END".into()),
            ("provider_id", format!("CASE WHEN {success} THEN 'pi_' || {} || {} END", self.hex8("h6"), self.hex8("n"))),
            ("created_at", "created".into()),
            ("capture_submitted_at", format!("CASE WHEN {success} THEN created + 2000000 END")),
            ("captured_date", format!("CASE WHEN {success} THEN {} END", self.day("created", 0))),
            ("settled_date", format!("CASE WHEN {success} THEN {} END", self.day("created", 1))),
            ("fee", format!("CASE WHEN {success} THEN 20 + amount * 15 / 1000 END")),
            ("net_amount", format!("CASE WHEN {success} THEN amount - (20 + amount * 15 / 1000) END")),
            ("total_amount", "amount".into()),
            ("refund_status", format!("CASE WHEN {success} THEN 'available' ELSE 'unavailable' END")),
            ("refund_available", format!("CASE WHEN {success} THEN amount ELSE 0 END")),
            ("refund_submitted", "0".into()),
            ("metadata", "CASE WHEN md < 20 THEN '{\"ledger_code\":\"' || ledger || '\",\"case_reference\":\"' || case_ref || '\"}' \
                           WHEN md < 50 THEN '{\"ledger_code\":\"' || ledger || '\"}' END".into()),
            ("case_reference", "CASE WHEN md < 20 THEN case_ref END".into()),
            ("delayed_capture", "FALSE".into()),
            ("moto", "FALSE".into()),
            ("needs_attention", format!("({unfinished} AND attention = 0)")),
            ("attention_reason", format!(
                "CASE WHEN {unfinished} AND attention = 0 THEN 'No final state 15 minutes after it should have expired' END"
            )),
            ("observed_at", seen.clone()),
            ("first_seen_at", seen.clone()),
            ("updated_at", seen),
        ];
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        let values: Vec<&str> = columns.iter().map(|(_, v)| v.as_str()).collect();
        format!(
            "{head}INSERT INTO journeys ({}) SELECT {} FROM ({middle}) AS b",
            names.join(", "),
            values.join(",\n  ")
        )
    }
}

// ---- who searches -------------------------------------------------------------------------

/// A Viewer in every bench service, and a signed-in session for them: the Cookie header.
/// A signed-in session (as a `name=value` cookie) for a bench account holding `role` in
/// every bench service; the account is made the first time.
pub(crate) async fn bench_session(
    state: &AppState,
    services: &[BenchService],
    email: &str,
    name: &str,
    role: Role,
) -> anyhow::Result<String> {
    let db = &state.db;
    let key = accounts::email_key(email);
    let staff = match staff_store::staff_by_email_key(db, &key).await? {
        Some(s) => s,
        None => {
            accounts::add_staff(
                state,
                Actor::System,
                email,
                name,
                role,
                Some(&services[0].slug),
            )
            .await?
            .map_err(|e| anyhow!("creating the bench account: {e}"))?;
            staff_store::staff_by_email_key(db, &key)
                .await?
                .ok_or_else(|| anyhow!("the bench account was not created"))?
        }
    };
    let grants = staff_store::grants(db, staff.id).await?;
    let missing: Vec<i64> = services
        .iter()
        .map(|s| s.id)
        .filter(|id| {
            !grants
                .iter()
                .any(|g| g.service_id == Some(*id) && g.role == role.name())
        })
        .collect();
    if !missing.is_empty() {
        let now = store::to_micros(state.clock.now());
        let mut tx = db.begin().await?;
        for id in missing {
            staff_store::insert_grant(&mut tx, staff.id, Some(id), role.name(), "system", now)
                .await?;
        }
        tx.commit().await?;
    }
    let session = signin::start_active(
        state,
        &staff,
        "password",
        &Default::default(),
        json!({"bench": email}),
    )
    .await?;
    Ok(format!(
        "{}={session}",
        crate::web::session::session_cookie_name(&state.config)
    ))
}

// ---- the mix ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Case {
    name: String,
    kind: CaseKind,
}

#[derive(Debug, Clone)]
enum CaseKind {
    /// `/payments?{query}`.
    List { query: String },
    /// `/payments/{payment_id}?service={slug}`.
    Journey {
        payment_id: String,
        service_id: i64,
        slug: String,
    },
}

/// A real journey to take search values from.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Sample {
    payment_id: String,
    reference: String,
    email: Option<String>,
    last_digits: Option<String>,
    first_digits: Option<String>,
    case_reference: Option<String>,
    cardholder_name: Option<String>,
}

fn list(name: &str, query: String) -> Case {
    Case {
        name: name.to_string(),
        kind: CaseKind::List { query },
    }
}

fn enc(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// The fixed mix, with values read from the seeded data.
async fn mix(state: &AppState, services: &[BenchService], held: i64) -> anyhow::Result<Vec<Case>> {
    let db = &state.db;
    let main = &services[0];
    let sample: Sample = crate::on_db!(db, pool => sqlx::query_as::<_, Sample>(
        "SELECT payment_id, reference, email, last_digits, first_digits, case_reference, cardholder_name \
         FROM journeys WHERE service_id = $1 AND id >= $2 AND status = 'success' \
         AND case_reference IS NOT NULL ORDER BY id LIMIT 1")
        .bind(main.id)
        .bind(held / 2)
        .fetch_optional(pool)
        .await?)
    .ok_or_else(|| anyhow!("no journey with a case reference to take search values from"))?;
    let need = |v: &Option<String>, what: &str| {
        v.clone()
            .ok_or_else(|| anyhow!("the sample journey has no {what}"))
    };
    let email = need(&sample.email, "email")?;
    let last4 = need(&sample.last_digits, "last digits")?;
    let first6 = need(&sample.first_digits, "first digits")?;
    let case_ref = need(&sample.case_reference, "case reference")?;
    let cardholder = need(&sample.cardholder_name, "cardholder")?.to_lowercase();
    // "jane.smith1234@example.org": the name part, and the family name alone.
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    let name_part: String = local
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .to_string();
    let family = name_part
        .split('.')
        .nth(1)
        .unwrap_or(&name_part)
        .to_string();
    let prefix = &sample.reference[..sample.reference.len().saturating_sub(3)];

    let now = OffsetDateTime::now_utc();
    let day = |back: i64| {
        let d = (now - time::Duration::days(back)).date();
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    };

    let mut cases = vec![
        list("default list", String::new()),
        list("box: payment id", format!("q={}", enc(&sample.payment_id))),
        list("box: reference", format!("q={}", enc(&sample.reference))),
        list("box: email", format!("q={}", enc(&email))),
        list("box: last 4", format!("q={last4}")),
        list("box: first 6", format!("q={first6}")),
        list("box: case reference", format!("q={}", enc(&case_ref))),
        list(
            "reference is",
            format!("reference={}", enc(&sample.reference)),
        ),
        list(
            "reference starts with",
            format!("reference={}&reference_match=prefix", enc(prefix)),
        ),
        list(
            "email contains (name)",
            format!("email={}", enc(&name_part)),
        ),
        list(
            "email contains (family name)",
            format!("email={}", enc(&family)),
        ),
        list(
            "cardholder contains",
            format!("cardholder={}", enc(&cardholder)),
        ),
        list("last 4", format!("last4={last4}")),
        list("first 6", format!("first6={first6}")),
        list("brand: american express", "brand=american-express".into()),
        list(
            "status: success",
            format!("status={}", StatusGroup::Success.name()),
        ),
        list(
            "status: declined",
            format!("status={}", StatusGroup::Declined.name()),
        ),
        list(
            "status: error",
            format!("status={}", StatusGroup::Error.name()),
        ),
        list(
            "status: in progress",
            format!("status={}", StatusGroup::InProgress.name()),
        ),
        list("period: today", format!("period={}", Period::Today.key())),
        list(
            "period: last 30 days",
            format!("period={}", Period::Last30Days.key()),
        ),
        list(
            "period: previous month",
            format!("period={}", Period::PreviousMonth.key()),
        ),
        list(
            "from/to with times",
            format!(
                "from_date={}&from_time=09%3A00&to_date={}&to_time=17%3A30",
                day(62),
                day(60)
            ),
        ),
        list(
            "settled date range",
            format!(
                "date_field=settled&from_date={}&to_date={}",
                day(40),
                day(39)
            ),
        ),
        list("amount range", "min_amount=100&max_amount=110".into()),
        list(
            "metadata key and value",
            "meta_key=ledger_code&meta_value=LC042".into(),
        ),
        list(
            "case reference",
            format!("case_reference={}", enc(&case_ref)),
        ),
        list("needs attention", "attention=yes".into()),
        list(
            "status + period",
            format!(
                "status={}&period={}",
                StatusGroup::Success.name(),
                Period::Last30Days.key()
            ),
        ),
        list(
            "brand + amount",
            "brand=visa&min_amount=20&max_amount=25".into(),
        ),
        list(
            "service + status + period",
            format!(
                "service={}&status={}&period={}",
                services[1].slug,
                StatusGroup::Declined.name(),
                Period::PreviousMonth.key()
            ),
        ),
        list(
            "email + status",
            format!(
                "email={}&status={}",
                enc(&name_part),
                StatusGroup::Success.name()
            ),
        ),
        list(
            "sort by amount",
            format!("sort={}", Sort::AmountHigh.name()),
        ),
    ];

    // Deep pages: Next followed 20 times from the default list, Previous from there, and a
    // cursor a year back.
    let ids = page_services(state, &Form::default()).await?;
    let mut form = Form::default();
    for _ in 0..20 {
        let results = crate::search::run(db, &ids, &parse(state, &form)?).await?;
        let next = results
            .next
            .ok_or_else(|| anyhow!("the default list has fewer than 21 pages"))?;
        form = Form {
            after: next,
            ..Form::default()
        };
    }
    let previous = crate::search::run(db, &ids, &parse(state, &form)?)
        .await?
        .previous;
    cases.push(list("deep: page 21 (Next x20)", form.to_query()));
    if let Some(p) = previous {
        let back = Form {
            before: p,
            ..Form::default()
        };
        cases.push(list("deep: Previous from page 21", back.to_query()));
    }
    let year_ago = store::to_micros(now - time::Duration::days(365));
    let cursor: Option<(i64, i64)> = crate::on_db!(db, pool => sqlx::query_as::<_, (i64, i64)>(
        "SELECT created_at, id FROM journeys WHERE service_id = $1 AND created_at <= $2 \
         ORDER BY created_at DESC, id DESC LIMIT 1")
        .bind(main.id)
        .bind(year_ago)
        .fetch_optional(pool)
        .await?);
    if let Some((key, id)) = cursor {
        cases.push(list(
            "deep: cursor a year back",
            format!("after={key}_{id}"),
        ));
    }
    cases.push(Case {
        name: "journey page".into(),
        kind: CaseKind::Journey {
            payment_id: sample.payment_id.clone(),
            service_id: main.id,
            slug: main.slug.clone(),
        },
    });
    Ok(cases)
}

fn parse(state: &AppState, form: &Form) -> anyhow::Result<query::Search> {
    query::parse(form, state.clock.now(), state.config.time_zone).map_err(|problems| {
        anyhow!(
            "the bench's search {:?} does not parse: {:?}",
            form.to_query(),
            problems
        )
    })
}

/// The service ids the payments page searches for this form (the bench person holds every
/// service): all services in the page's order, narrowed by `service=`.
async fn page_services(state: &AppState, form: &Form) -> anyhow::Result<Vec<i64>> {
    Ok(services::all(&state.db)
        .await?
        .into_iter()
        .filter(|s| form.services.is_empty() || form.services.contains(&s.slug))
        .map(|s| s.id)
        .collect())
}

fn list_url(base: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{base}/payments")
    } else {
        format!("{base}/payments?{query}")
    }
}

// ---- timing -------------------------------------------------------------------------------

const WARM_UP: usize = 3;

async fn get(http: &reqwest::Client, url: &str, cookie: &str) -> (Duration, Result<(), String>) {
    let t = Instant::now();
    let outcome = match http
        .get(url)
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status();
            match r.bytes().await {
                Ok(_) if status == reqwest::StatusCode::OK => Ok(()),
                Ok(_) => Err(format!("HTTP {status}")),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    (t.elapsed(), outcome)
}

async fn time_case(
    state: &AppState,
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    case: &Case,
    samples: usize,
) -> anyhow::Result<CaseFigures> {
    let db = &state.db;
    let (url, target) = match &case.kind {
        CaseKind::List { query } => (list_url(base, query), SEARCH_TARGET),
        CaseKind::Journey {
            payment_id, slug, ..
        } => (
            format!("{base}/payments/{}?service={}", enc(payment_id), enc(slug)),
            JOURNEY_TARGET,
        ),
    };
    // What the page does, without HTTP.
    let direct = match &case.kind {
        CaseKind::List { query } => {
            let form = Form::from_query(query);
            Direct::List {
                ids: page_services(state, &form).await?,
                search: Box::new(parse(state, &form)?),
            }
        }
        CaseKind::Journey {
            payment_id,
            service_id,
            slug,
        } => {
            let staff = staff_store::staff_by_email_key(
                db,
                &accounts::email_key("search-bench@bench.example"),
            )
            .await?
            .ok_or_else(|| anyhow!("the bench account is missing"))?;
            Direct::Journey {
                payment_id: payment_id.clone(),
                service_id: *service_id,
                slug: slug.clone(),
                actor: Actor::staff(staff.id, &staff.email),
            }
        }
    };
    for _ in 0..WARM_UP {
        let (_, outcome) = get(http, &url, cookie).await;
        if let Err(e) = outcome {
            bail!("{}: {url} answered {e}", case.name);
        }
        direct.run(state, true).await?;
    }
    let mut over_http = Vec::with_capacity(samples);
    let mut directly = Vec::with_capacity(samples);
    let mut errors = 0;
    let mut last = (String::new(), String::new());
    for _ in 0..samples.max(1) {
        let (d, outcome) = get(http, &url, cookie).await;
        over_http.push(d);
        if outcome.is_err() {
            errors += 1;
        }
        let t = Instant::now();
        last = direct.run(state, true).await?;
        directly.push(t.elapsed());
    }
    // Without the count cache: what the first request for a broad search in a while costs.
    let mut uncached = Vec::new();
    for _ in 0..(samples / 5).clamp(3, 10) {
        let t = Instant::now();
        direct.run(state, false).await?;
        uncached.push(t.elapsed());
    }
    over_http.sort();
    directly.sort();
    uncached.sort();
    Ok(CaseFigures {
        name: case.name.clone(),
        target,
        p50: percentile(&over_http, 0.50),
        p95: percentile(&over_http, 0.95),
        p99: percentile(&over_http, 0.99),
        direct_p50: percentile(&directly, 0.50),
        uncached_p50: percentile(&uncached, 0.50),
        results: last.0,
        shape: last.1,
        errors,
    })
}

/// The work behind a page, run directly.
enum Direct {
    List {
        ids: Vec<i64>,
        search: Box<query::Search>,
    },
    /// The journey page's store calls: its services, the journey by payment id and by id,
    /// the audit record of the read, and the timeline and refunds.
    Journey {
        payment_id: String,
        service_id: i64,
        slug: String,
        actor: Actor,
    },
}

impl Direct {
    /// Run once, as the page does (`cached`: with the console's cache of capped counts) or
    /// from scratch; (results as shown, plan shape).
    async fn run(&self, state: &AppState, cached: bool) -> anyhow::Result<(String, String)> {
        let db = &state.db;
        match self {
            Direct::List { ids, search } => {
                let cache = cached.then_some(state.counts.as_ref());
                let r = crate::search::run_with(db, cache, ids, search).await?;
                let count = if r.count_capped() {
                    format!(">{COUNT_CAP}")
                } else {
                    r.count.to_string()
                };
                Ok((count, shape_text(&r.shape)))
            }
            Direct::Journey {
                payment_id,
                service_id,
                slug,
                actor,
            } => {
                let _mine = services::all(db).await?;
                let found = search_store::by_payment_id(db, &[*service_id], payment_id).await?;
                let (journey_id, _) = *found
                    .first()
                    .ok_or_else(|| anyhow!("journey {payment_id} not found"))?;
                let j = journey_store::journey_by_id(db, journey_id)
                    .await?
                    .ok_or_else(|| anyhow!("journey {journey_id} not found"))?;
                audit::record(
                    db,
                    state.clock.now(),
                    AuditEvent::new(
                        actor.clone(),
                        "sensitive_read",
                        format!("payment:{}", j.payment_id),
                    )
                    .details(json!({"service": slug, "what": "journey page (bench, direct)"})),
                )
                .await?;
                tokio::try_join!(
                    journey_store::events(db, j.id),
                    journey_store::refunds_of(db, *service_id, &j.payment_id)
                )?;
                Ok(("1 journey".into(), "payment id, then by id".into()))
            }
        }
    }
}

fn shape_text(shape: &Shape) -> String {
    match shape {
        Shape::Lookup(driver) => {
            let name = driver.split('(').next().unwrap_or(driver);
            format!("lookup: {name}")
        }
        Shape::Branches(n) => format!("walk: {n} branches"),
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run_throughput(
    http: &reqwest::Client,
    urls: Vec<String>,
    cookie: &str,
    clients: usize,
    seconds: u64,
    label: &str,
    postgres: bool,
) -> anyhow::Result<Throughput> {
    let clients = clients.max(1);
    let urls = Arc::new(urls);
    let cookie = Arc::new(cookie.to_string());
    let cpu_before = (cpu_seconds("self"), postgres_cpu_seconds());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds.max(1));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, urls, cookie) = (http.clone(), urls.clone(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut k = c;
            while Instant::now() < deadline {
                let url = &urls[k % urls.len()];
                k += clients;
                let (d, outcome) = get(&http, url, &cookie).await;
                latencies.push(d);
                if outcome.is_err() {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    let used = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
    let cpu_paydesk = used(cpu_before.0, cpu_seconds("self"));
    let cpu_postgres = if postgres {
        used(cpu_before.1, postgres_cpu_seconds())
    } else {
        None
    };
    latencies.sort();
    Ok(Throughput {
        label: label.to_string(),
        clients,
        elapsed,
        requests: latencies.len(),
        errors,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        cpu_paydesk,
        cpu_postgres,
        targeted: false,
    })
}

/// Linux's USER_HZ: the unit of the CPU times in /proc/PID/stat.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// (comm, user + system CPU seconds) of a process, from /proc (Linux only).
fn proc_stat(pid: &str) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((comm, ticks / CLOCK_TICKS_PER_SECOND))
}

fn cpu_seconds(pid: &str) -> Option<f64> {
    proc_stat(pid).map(|(_, cpu)| cpu)
}

/// CPU seconds used so far by every process named `postgres` on this machine.
fn postgres_cpu_seconds() -> Option<f64> {
    let mut total = 0.0;
    let mut seen = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some((comm, cpu)) = proc_stat(pid) {
            if comm == "postgres" {
                total += cpu;
                seen = true;
            }
        }
    }
    seen.then_some(total)
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// ---- plans --------------------------------------------------------------------------------

async fn plans(state: &AppState, cases: &[Case]) -> anyhow::Result<Vec<PlanReport>> {
    let db = &state.db;
    let mut out = Vec::new();
    for case in cases {
        match &case.kind {
            CaseKind::List { query } => {
                let form = Form::from_query(query);
                let ids = page_services(state, &form).await?;
                let search = parse(state, &form)?;
                let plan =
                    search_store::plan(db, &ids, &search, PAGE_SIZE as i64 + 1, COUNT_CAP, &|_| {
                        false
                    })
                    .await?;
                let mut queries = Vec::new();
                for (probe, found) in &plan.probes {
                    queries.push((
                        format!("probe (found {found})"),
                        probe.sql.clone(),
                        search_store::explain(db, probe).await?,
                    ));
                }
                queries.push((
                    "list".into(),
                    plan.list.sql.clone(),
                    search_store::explain(db, &plan.list).await?,
                ));
                queries.push((
                    "count".into(),
                    plan.count.sql.clone(),
                    search_store::explain(db, &plan.count).await?,
                ));
                out.push(PlanReport {
                    name: case.name.clone(),
                    shape: format!("{:?}", plan.shape),
                    queries,
                });
            }
            CaseKind::Journey {
                payment_id,
                service_id,
                ..
            } => {
                // The same statement as `store::search::by_payment_id`; then the journey by
                // its primary key.
                let built = Built {
                    sql: "SELECT id, service_id FROM journeys WHERE payment_id = $1 AND service_id IN ($2) ORDER BY service_id".into(),
                    binds: vec![Bind::Text(payment_id.clone()), Bind::Int(*service_id)],
                };
                out.push(PlanReport {
                    name: case.name.clone(),
                    shape: "by payment id".into(),
                    queries: vec![(
                        "journey by payment id".into(),
                        built.sql.clone(),
                        search_store::explain(db, &built).await?,
                    )],
                });
            }
        }
    }
    Ok(out)
}

// ---- output -------------------------------------------------------------------------------

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// One backend's figures table and plans, on stdout.
pub fn print_search(f: &SearchFigures, settings: &SearchBench) {
    let seeding = match &f.seeding {
        Seeding::Reused => "reused".to_string(),
        Seeding::Seeded { rows, took } => {
            format!("{} seeded in {:.1} s", thousands(*rows), took.as_secs_f64())
        }
    };
    println!();
    println!(
        "paydesk bench search — {}, {} journeys ({seeding}), 3 services, a Viewer in all 3; {} cores{}; {} samples per row",
        f.backend,
        thousands(f.journeys),
        cores(),
        f.load_average
            .map(|l| format!(" (load average {l:.2} when timing began)"))
            .unwrap_or_default(),
        f.samples
    );
    println!(
        "{:<32} {:>7} {:>7} {:>7} {:>7} {:>6} {:>9} {:>8}  plan",
        "search (over HTTP)",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "direct",
        "ratio",
        "no cache",
        "results"
    );
    for c in &f.cases {
        println!(
            "{:<32} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>6.2} {:>9.1} {:>8}  {}{}{}",
            c.name,
            ms(c.p50),
            ms(c.p95),
            ms(c.p99),
            ms(c.direct_p50),
            ms(c.p50) / ms(c.direct_p50).max(1e-6),
            ms(c.uncached_p50),
            c.results,
            c.shape,
            if c.errors > 0 {
                format!("  {} ERRORS", c.errors)
            } else {
                String::new()
            },
            if c.missed() { "  <-- MISSED" } else { "" }
        );
    }
    println!(
        "direct = p50 ms of the same work without HTTP, as the page does it (search::run_with and the console's cache of capped counts; journey page: its store calls); ratio = HTTP p50 / direct p50; no cache = p50 ms of search::run without the count cache (a broad search's first request in a minute)"
    );
    println!(
        "targets: p95 <= {} ms for a search, <= {} ms for the journey page; MISSED marks a row above its target",
        SEARCH_TARGET.as_millis(),
        JOURNEY_TARGET.as_millis()
    );
    for t in &f.throughput {
        let flag = if t.missed(f.backend) {
            format!("  <-- MISSED (target >= {SQLITE_PAGES_PER_SECOND:.0}/s on SQLite)")
        } else if !t.targeted {
            "  (reference figure, no target: every search of the mix in turn)".to_string()
        } else {
            String::new()
        };
        let per_page = |cpu: Option<f64>, whose: &str| {
            cpu.filter(|_| t.requests > 0)
                .map(|c| {
                    format!(
                        "; CPU per page {:.2} ms in {whose}",
                        c * 1000.0 / t.requests as f64
                    )
                })
                .unwrap_or_default()
        };
        println!(
            "throughput, {} clients, {:.1} s — {}: {:.0} pages/s ({} requests, {} errors; p50 {:.1} ms, p99 {:.1} ms{}{}){flag}",
            t.clients,
            t.elapsed.as_secs_f64(),
            t.label,
            t.per_second(),
            t.requests,
            t.errors,
            ms(t.p50),
            ms(t.p99),
            per_page(t.cpu_paydesk, "paydesk (clients included)"),
            per_page(t.cpu_postgres, "postgres (all its processes)"),
        );
    }
    println!();
    println!("query plans ({}):", f.backend);
    for p in &f.plans {
        println!("[{}] {}", p.name, p.shape);
        for (what, sql, plan) in &p.queries {
            println!("  {what}:");
            if settings.show_sql {
                println!("    sql: {sql}");
            }
            for line in plan.lines() {
                println!("    {line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_their_slots() {
        let mut first = FIRST_NAMES.to_vec();
        first.sort();
        first.dedup();
        assert_eq!(first.len(), 100);
        let mut last = LAST_NAMES.to_vec();
        last.sort();
        last.dedup();
        assert_eq!(last.len(), 100);
        assert!(FIRST_NAMES
            .iter()
            .chain(LAST_NAMES.iter())
            .all(|n| n.is_ascii() && !n.contains('\'')));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.95), Duration::from_millis(95));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
