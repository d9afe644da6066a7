//! `paydesk bench bulk-refunds`: the dry run of a 10,000-row file (read, every payment looked
//! up, every row checked, the batch and its rows stored) against a service holding
//! `--payments` payments, then a batch of `--send` rows sent end to end (rows become
//! requests, each submitted exactly once to the sandbox platform running in this process and
//! followed to success), as refunds completed per second. Checks exactly one platform refund
//! per row.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::refunds::{refund_world, RefundWorld};
use crate::audit::Actor;
use crate::clock;
use crate::identity::accounts;
use crate::identity::permissions::Role;
use crate::journeys::sync::{self, BackfillSettings, Pass, Stream};
use crate::refunds::bulk;
use crate::refunds::Staff;
use crate::services;
use crate::store::refund_batches as batch_store;
use crate::store::scratch::ScratchDb;

#[derive(Debug, Clone)]
pub struct BulkFigures {
    pub backend: &'static str,
    pub payments: i64,
    pub dry_run_rows: usize,
    pub dry_run_ready: i64,
    pub dry_run_time: Duration,
    pub sent: usize,
    pub send_time: Duration,
    pub platform_refunds: usize,
}

/// Run on SQLite and, given a server, PostgreSQL.
pub async fn bulk_refunds(
    payments: usize,
    rows: usize,
    send: usize,
    postgres_url: Option<&str>,
) -> anyhow::Result<Vec<BulkFigures>> {
    let mut targets = vec![None];
    if let Some(pg) = postgres_url {
        targets.push(Some(pg));
    }
    let mut figures = Vec::new();
    for target in targets {
        let scratch = ScratchDb::create(target, "paydesk_bench").await?;
        let result = one(&scratch.url, payments, rows, send).await;
        scratch.destroy().await?;
        figures.push(result?);
    }
    Ok(figures)
}

fn file_of(sample: &[(String, i64, i64)], rows: usize, amount: &str) -> String {
    let mut text = String::from("payment_id,amount,reason,comment\n");
    for (payment_id, _, _) in sample.iter().cycle().take(rows) {
        text.push_str(&format!("{payment_id},{amount},duplicate,bench\n"));
    }
    text
}

async fn one(url: &str, payments: usize, rows: usize, send: usize) -> anyhow::Result<BulkFigures> {
    let RefundWorld {
        platform,
        state,
        service_id,
        ..
    } = refund_world(url, "bench-bulk-key", payments).await?;
    let backend = state.db.backend().name();
    let service = services::by_id(&state.db, service_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no bench service"))?;
    let client = state.platforms.client(&state.config, &service)?;
    eprintln!("[{backend}] reading {payments} payments into paydesk…");
    let pass = sync::backfill(
        &state.db,
        || clock::system().now(),
        client.as_ref(),
        service_id,
        Stream::Payments,
        BackfillSettings {
            overlap: Duration::from_secs(900),
            page_size: 500,
            budget: None,
        },
    )
    .await?;
    anyhow::ensure!(pass == Pass::Complete, "the backfill stopped early");
    let made = accounts::add_staff(
        &state,
        Actor::System,
        "finance@bench.example",
        "Bench",
        Role::Finance,
        Some("bench"),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let finance = Staff {
        id: made.staff_id,
        email: "finance@bench.example".into(),
        name: "Bench".into(),
        ip: None,
    };
    let scope = BTreeSet::from([service_id]);
    let sample = batch_store::refundable_sample(&state.db, service_id, rows as i64).await?;
    anyhow::ensure!(
        !sample.is_empty(),
        "the sandbox seeded no refundable payment"
    );

    // The dry run: 10,000 rows of 1p each (a payment named more than once when fewer are
    // refundable, which the dry run counts against what is left).
    let text = file_of(&sample, rows, "0.01");
    eprintln!("[{backend}] dry run of {rows} rows…");
    let started = Instant::now();
    let id = bulk::upload(
        &state.db,
        state.clock.now(),
        &finance,
        Some(&scope),
        "bench.csv",
        text.as_bytes(),
    )
    .await?
    .map_err(|p| anyhow::anyhow!(p.message()))?;
    let dry_run_time = started.elapsed();
    let dry = batch_store::by_id(&state.db, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the batch went missing"))?;

    // End to end: `send` rows, each a different payment, sent and followed to success.
    let send = send.min(sample.len());
    let text = file_of(&sample[..send], send, "0.02");
    let id = bulk::upload(
        &state.db,
        state.clock.now(),
        &finance,
        Some(&scope),
        "bench-send.csv",
        text.as_bytes(),
    )
    .await?
    .map_err(|p| anyhow::anyhow!(p.message()))?;
    let batch = batch_store::by_id(&state.db, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the batch went missing"))?;
    anyhow::ensure!(
        batch.refused_count == 0,
        "{} rows refused",
        batch.refused_count
    );
    let before = platform.totals("bench").map(|t| t.refunds).unwrap_or(0);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..2)
        .map(|n| {
            let runner = state.job_runner().with_worker_id(format!("bench-{n}"));
            let rx = stopped.clone();
            tokio::spawn(async move { runner.run_until(rx).await })
        })
        .collect();
    eprintln!("[{backend}] sending {send} refunds…");
    let started = Instant::now();
    bulk::confirm(
        &state.db,
        state.clock.now(),
        &finance,
        id,
        &batch.file_hash,
        false,
    )
    .await?
    .map_err(|r| anyhow::anyhow!(r.message()))?;
    loop {
        let p = bulk::progress(&state.db, id).await?;
        if p.succeeded + p.failed >= send as i64 {
            anyhow::ensure!(p.failed == 0, "{} rows failed", p.failed);
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(900),
            "the batch did not finish within 15 minutes: {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let send_time = started.elapsed();
    let _ = stop.send(true);
    for w in workers {
        let _ = w.await;
    }
    let after = platform.totals("bench").map(|t| t.refunds).unwrap_or(0);
    platform.stop().await;
    state.db.close().await;
    Ok(BulkFigures {
        backend,
        payments: payments as i64,
        dry_run_rows: rows,
        dry_run_ready: dry.ready_count,
        dry_run_time,
        sent: send,
        send_time,
        platform_refunds: (after - before) as usize,
    })
}

pub fn print(figures: &[BulkFigures]) {
    println!(
        "paydesk bench bulk-refunds — {} cores (sandbox platform in this process, refunds settle after 200 ms)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>12} {:>8} {:>10} {:>11} {:>15}",
        "backend",
        "payments",
        "rows",
        "ready",
        "dry run",
        "sent",
        "time",
        "refunds/s",
        "exactly once"
    );
    for f in figures {
        println!(
            "{:<10} {:>9} {:>9} {:>9} {:>10.2} s {:>8} {:>8.1} s {:>11.1} {:>15}",
            f.backend,
            f.payments,
            f.dry_run_rows,
            f.dry_run_ready,
            f.dry_run_time.as_secs_f64(),
            f.sent,
            f.send_time.as_secs_f64(),
            f.sent as f64 / f.send_time.as_secs_f64().max(1e-9),
            if f.platform_refunds == f.sent {
                format!("yes ({})", f.platform_refunds)
            } else {
                format!("NO ({})", f.platform_refunds)
            }
        );
    }
}
