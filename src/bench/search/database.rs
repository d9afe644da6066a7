//! The bench database: where it lives, its services, its seeding (resumable, deterministic)
//! and the signed-in bench person. The SQL it runs is in `store::bench`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use serde_json::json;
use time::OffsetDateTime;

use super::{figures::*, generator::*};
use crate::audit::Actor;
use crate::clock;
use crate::config::Config;
use crate::identity::permissions::Role;
use crate::identity::{accounts, signin};
use crate::services::{self, NewService};
use crate::store::scratch::with_database;
use crate::store::{self, bench as bench_store, staff as staff_store, Backend, Db};
use crate::AppState;

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
                eprintln!("[postgres] dropping database {name}…");
                bench_store::drop_postgres_database(server, name)
                    .await
                    .with_context(|| format!("at {}", store::redact_url(server)))?;
                create_postgres_database(server, name).await
            }
        }
    }
}

pub(crate) fn remove_sqlite(path: &Path) -> anyhow::Result<()> {
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
    bench_store::create_postgres_database(server, name, || {
        eprintln!("[postgres] creating database {name}…")
    })
    .await
    .with_context(|| format!("at {}", store::redact_url(server)))
}

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

pub(crate) async fn count_journeys(db: &Db) -> anyhow::Result<i64> {
    Ok(bench_store::count_journeys(db).await?)
}

// ---- seeding ------------------------------------------------------------------------------

/// Journeys are spread evenly (with jitter) over this span, ending when seeding started.
pub(crate) const SPAN_MICROS: i64 = 395 * 86_400_000_000;

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
    let (first, last) = bench_store::first_and_last_created(db).await?;
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
        bench_store::run_seed_chunk(&mut tx, &sql).await?;
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
        Db::Sqlite(..) => {
            eprintln!("[sqlite] checkpointing the write-ahead log…");
            bench_store::checkpoint(db).await?;
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

/// A dispute on one successful journey in this many (a chargeback rate of a few in a
/// thousand card payments).
pub(crate) const DISPUTE_EVERY: i64 = 400;
/// A recurring agreement for one journey in this many, with one journey in twenty taken under
/// an agreement.
pub(crate) const AGREEMENT_EVERY: i64 = 200;

/// Seed disputes and agreements in proportion to the `held` journeys, unless the database
/// holds them already (a database seeded before they were benched gains them on its next run,
/// and one whose journeys were topped up gains the rest).
pub(crate) async fn seed_disputes_and_agreements(db: &Db, held: i64) -> anyhow::Result<()> {
    let name = db.backend().name();
    let (disputes, agreements) = bench_store::count_disputes_and_agreements(db).await?;
    if disputes > 0 && agreements >= held / AGREEMENT_EVERY {
        eprintln!("[{name}] reusing {disputes} disputes and {agreements} agreements");
        return Ok(());
    }
    eprintln!(
        "[{name}] seeding disputes (1 in {DISPUTE_EVERY} successful journeys) and agreements (1 in {AGREEMENT_EVERY} journeys)…"
    );
    let started = Instant::now();
    let now = store::to_micros(OffsetDateTime::now_utc());
    bench_store::seed_disputes_and_agreements(db, DISPUTE_EVERY, AGREEMENT_EVERY, now).await?;
    let (disputes, agreements) = bench_store::count_disputes_and_agreements(db).await?;
    eprintln!(
        "[{name}] seeded {disputes} disputes and {agreements} agreements in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Drop the journeys' indexes for a bulk load on PostgreSQL (see `store::bench`).
pub(crate) async fn drop_indexes_for_load(db: &Db) -> anyhow::Result<()> {
    if db.backend() != Backend::Postgres {
        return Ok(());
    }
    eprintln!("[postgres] dropping the journeys' indexes for the bulk load (rebuilt afterwards)…");
    Ok(bench_store::drop_indexes_for_load(db).await?)
}

/// Rebuild the indexes a bulk load dropped (also after an interrupted one); a no-op when
/// none are pending.
pub(crate) async fn restore_dropped_indexes(db: &Db) -> anyhow::Result<()> {
    bench_store::restore_dropped_indexes(db, |name, took| match took {
        None => eprintln!("[postgres] building index {name}…"),
        Some(t) => eprintln!("[postgres] built {name} in {:.1} s", t.as_secs_f64()),
    })
    .await?;
    Ok(())
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

pub(crate) use bench_store::{
    count_disputes_and_agreements, newest_key_at_or_before, sample_agreement_reference,
    sample_journey,
};

/// As autovacuum would have by the time anyone searched: the visibility map makes index-only
/// scans possible and hint bits are set. Quick when already done. PostgreSQL only.
pub(crate) async fn vacuum_analyze(db: &Db) -> anyhow::Result<()> {
    if db.backend() == Backend::Postgres {
        eprintln!("[postgres] VACUUM ANALYZE…");
        bench_store::vacuum_analyze(db).await?;
    }
    Ok(())
}
