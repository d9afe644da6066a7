//! `paydesk bench …`: commands that measure and print figures. They are not tests.

pub mod bulk_refunds;
pub mod export;
pub mod platform;
pub mod refunds;
pub mod retention;
pub mod search;

use std::time::{Duration, Instant};

use serde_json::json;

use crate::audit::{self, Actor, AuditEvent};
use crate::clock::{self, SharedClock};
use crate::store::audit::{self as audit_store, AuditRow};
use crate::store::scratch::ScratchDb;
use crate::store::{self, Db, PoolSettings};

/// Settings for `paydesk bench audit`.
#[derive(Debug, Clone)]
pub struct AuditBench {
    pub postgres_url: Option<String>,
    pub appends: usize,
    pub verify_entries: i64,
}

/// Figures for one backend.
#[derive(Debug, Clone)]
pub struct AuditFigures {
    pub backend: &'static str,
    pub appends_1: f64,
    pub appends_8: f64,
    pub verify_entries: i64,
    pub verify_time: Duration,
}

pub async fn audit(settings: &AuditBench) -> anyhow::Result<Vec<AuditFigures>> {
    let mut figures = Vec::new();
    let mut targets: Vec<Option<&str>> = vec![None];
    if let Some(pg) = settings.postgres_url.as_deref() {
        targets.push(Some(pg));
    }
    for target in targets {
        let scratch = ScratchDb::create(target, "paydesk_bench").await?;
        let result = audit_one(&scratch.url, settings).await;
        scratch.destroy().await?;
        figures.push(result?);
    }
    Ok(figures)
}

async fn audit_one(url: &str, settings: &AuditBench) -> anyhow::Result<AuditFigures> {
    let db = Db::connect(
        url,
        &PoolSettings {
            max_connections: 10,
            ..Default::default()
        },
    )
    .await?;
    db.migrate().await?;
    // The chain key of the test configuration: links are keyed as in production.
    let key = crate::config::Config::for_tests(url).audit_chain_key();
    db.set_audit_chain_key(key)?;
    let clock = clock::system();
    let backend = db.backend().name();
    eprintln!("[{backend}] {} appends with 1 writer…", settings.appends);
    let appends_1 = appends_per_second(&db, &clock, 1, settings.appends).await?;
    eprintln!("[{backend}] {} appends with 8 writers…", settings.appends);
    let appends_8 = appends_per_second(&db, &clock, 8, settings.appends).await?;

    let have = audit_store::count(&db).await?;
    eprintln!(
        "[{backend}] loading the log up to {} entries…",
        settings.verify_entries
    );
    bulk_extend(&db, &key, settings.verify_entries - have).await?;
    eprintln!("[{backend}] verifying…");
    let started = Instant::now();
    let report = audit::verify(&db, None).await?;
    let verify_time = started.elapsed();
    anyhow::ensure!(
        report.intact(),
        "the benchmark log does not verify: {:?}",
        report.problem
    );
    db.close().await;
    Ok(AuditFigures {
        backend,
        appends_1,
        appends_8,
        verify_entries: report.entries,
        verify_time,
    })
}

async fn appends_per_second(
    db: &Db,
    clock: &SharedClock,
    writers: usize,
    total: usize,
) -> anyhow::Result<f64> {
    let per_writer = total / writers;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db = db.clone();
        let clock = clock.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let event = AuditEvent::new(
                    Actor::Staff {
                        id: format!("bench-{w}"),
                        label: format!("writer{w}@bench.example"),
                    },
                    "bench_append",
                    format!("bench:{i}"),
                )
                .from_ip(Some("127.0.0.1".into()))
                .details(json!({"writer": w, "i": i}));
                audit::record(&db, clock.now(), event).await?;
            }
            Ok::<_, audit::AuditError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per_writer * writers) as f64 / started.elapsed().as_secs_f64())
}

/// Append `n` more chained entries in large batches.
async fn bulk_extend(db: &Db, key: &[u8; 32], n: i64) -> anyhow::Result<()> {
    if n <= 0 {
        return Ok(());
    }
    let (mut seq, mut prev) = match audit_store::latest(db, 1).await?.first() {
        Some(row) => (
            row.seq,
            <[u8; 32]>::try_from(hex::decode(&row.hash)?.as_slice())?,
        ),
        None => (0, [0u8; 32]),
    };
    let start = store::to_micros(time::OffsetDateTime::now_utc());
    let target = seq + n;
    while seq < target {
        let mut rows = Vec::with_capacity(1000);
        while seq < target && rows.len() < 1000 {
            seq += 1;
            let mut row = AuditRow {
                seq,
                occurred_at: start + seq,
                actor_type: "staff".into(),
                actor_id: format!("{}", seq % 50),
                actor_label: format!("user{}@bench.example", seq % 50),
                action: "bench_bulk".into(),
                target: format!("payment:{seq}"),
                outcome: "success".into(),
                origin_ip: Some("10.0.0.1".into()),
                details: format!("{{\"amount\":{},\"reason\":\"bench\"}}", seq % 10_000),
                hash: String::new(),
            };
            let hash = audit::keyed_entry_hash(key, &prev, &row);
            row.hash = hex::encode(hash);
            prev = hash;
            rows.push(row);
        }
        let mut tx = db.begin().await?;
        audit_store::insert_many(&mut tx, &rows).await?;
        tx.commit().await?;
    }
    Ok(())
}

pub fn print_audit(figures: &[AuditFigures]) {
    println!(
        "paydesk bench audit — {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:<10} {:>22} {:>22} {:>26}",
        "backend", "appends/s (1 writer)", "appends/s (8 writers)", "verify time"
    );
    for f in figures {
        println!(
            "{:<10} {:>22.0} {:>22.0} {:>26}",
            f.backend,
            f.appends_1,
            f.appends_8,
            format!(
                "{:.2} s for {} entries",
                f.verify_time.as_secs_f64(),
                f.verify_entries
            )
        );
    }
}
