//! `paydesk bench refunds`: refunds taken end to end (requested, approved by a second person,
//! submitted exactly once, followed to success) against the sandbox platform running in this
//! process, and how long an approved refund waits before it reaches the platform.
//!
//! Two phases on each backend: a steady phase, where approvals arrive at a healthy rate and
//! each one's approval-to-submission time is measured; then a burst, where many approved
//! refunds are queued at once and the rate at which they complete is measured.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::audit::Actor;
use crate::clock;
use crate::config::Config;
use crate::identity::accounts;
use crate::identity::permissions::Role;
use crate::platform::client::Credentials;
use crate::platform::sandbox::{self, AccountSpec, SandboxOptions};
use crate::refunds::rules::State;
use crate::refunds::{self, Ask, Asked, HowMuch, RefundSettings, Staff};
use crate::services::{self, NewService};
use crate::store::refunds as refund_store;
use crate::store::scratch::ScratchDb;
use crate::store::{Db, PoolSettings};
use crate::AppState;

#[derive(Debug, Clone)]
pub struct RefundFigures {
    pub backend: &'static str,
    pub steady: usize,
    pub approval_to_submission_p50: Duration,
    pub approval_to_submission_p99: Duration,
    pub approval_to_submission_max: Duration,
    pub burst: usize,
    pub burst_time: Duration,
    pub platform_refunds: usize,
    pub exactly_once: bool,
}

/// Run both phases on SQLite and, given a server, PostgreSQL.
pub async fn refunds(
    steady: usize,
    burst: usize,
    postgres_url: Option<&str>,
) -> anyhow::Result<Vec<RefundFigures>> {
    let mut targets = vec![None];
    if let Some(pg) = postgres_url {
        targets.push(Some(pg));
    }
    let mut figures = Vec::new();
    for target in targets {
        let scratch = ScratchDb::create(target, "paydesk_bench").await?;
        let result = one(&scratch.url, steady, burst).await;
        scratch.destroy().await?;
        figures.push(result?);
    }
    Ok(figures)
}

/// A bench's world: the sandbox platform in this process with one account of `payments`
/// payments (refunds settle after 200 ms), a migrated database at `url` with the job queue on
/// (16 at once), and a paydesk service "bench" connected to that account.
pub(super) struct RefundWorld {
    pub platform: sandbox::RunningSandbox,
    pub state: AppState,
    pub spec: AccountSpec,
    pub service_id: i64,
}

pub(super) async fn refund_world(
    url: &str,
    api_key: &str,
    payments: usize,
) -> anyhow::Result<RefundWorld> {
    let spec = AccountSpec {
        id: "bench".into(),
        name: "Benchmark service".into(),
        api_key: api_key.into(),
        client_id: None,
        client_secret: None,
        webhook_url: None,
        webhook_secret: None,
        payments,
    };
    let platform = sandbox::start(SandboxOptions {
        accounts: vec![spec.clone()],
        refund_settle_after: Duration::from_millis(200),
        ..Default::default()
    })
    .await?;
    let db = Db::connect(
        url,
        &PoolSettings {
            max_connections: 16,
            ..Default::default()
        },
    )
    .await?;
    db.migrate().await?;
    let mut config = Config::for_tests(url);
    config.jobs_enabled = true;
    config.job_concurrency = 16;
    let state = AppState::with_db(config, db, clock::system())?;
    let service_id = services::add(
        &state,
        Actor::System,
        &NewService {
            slug: "bench".into(),
            name: spec.name.clone(),
            time_zone: "Europe/London".into(),
            platform_url: Some(platform.base_url().into()),
            credentials: Some(Credentials::ApiKey {
                api_key: spec.api_key.clone(),
            }),
            webhook_secret: None,
        },
    )
    .await?
    .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    Ok(RefundWorld {
        platform,
        state,
        spec,
        service_id,
    })
}

async fn one(url: &str, steady: usize, burst: usize) -> anyhow::Result<RefundFigures> {
    let RefundWorld {
        platform,
        state,
        spec,
        service_id,
    } = refund_world(url, "bench-refunds-key", 0).await?;
    let backend = state.db.backend().name();
    // Every refund needs a second person: threshold 0.
    let mut tx = state.db.begin().await?;
    refund_store::set_settings(
        &mut tx,
        service_id,
        &RefundSettings {
            refund_approval_threshold: Some(0),
            ..Default::default()
        },
        0,
    )
    .await?;
    tx.commit().await?;
    let person = |email: &str, role: Role| {
        let state = state.clone();
        let email = email.to_string();
        async move {
            let made =
                accounts::add_staff(&state, Actor::System, &email, "Bench", role, Some("bench"))
                    .await?
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            anyhow::Ok(Staff {
                id: made.staff_id,
                email,
                name: "Bench".into(),
                ip: None,
            })
        }
    };
    let caseworker = person("caseworker@bench.example", Role::Caseworker).await?;
    let finance = person("finance@bench.example", Role::Finance).await?;

    eprintln!("[{backend}] making {} paid payments…", steady + burst);
    let payments =
        paid_payments(&state, &platform, service_id, &spec.api_key, steady + burst).await?;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..2)
        .map(|n| {
            let runner = state.job_runner().with_worker_id(format!("bench-{n}"));
            let rx = stopped.clone();
            tokio::spawn(async move { runner.run_until(rx).await })
        })
        .collect();

    // Steady: an approval every 50 ms (20 a second), each measured to its submission.
    eprintln!("[{backend}] steady phase: {steady} approvals at 20 a second…");
    let mut requests = Vec::new();
    for (i, (payment_id, journey_id)) in payments.iter().take(steady).enumerate() {
        let id = ask(&state, &caseworker, service_id, payment_id, *journey_id, i).await?;
        let tick = Instant::now();
        approve(&state, &finance, id).await?;
        requests.push(id);
        let rest = Duration::from_millis(50).saturating_sub(tick.elapsed());
        tokio::time::sleep(rest).await;
    }
    wait_for(&state, &requests, State::Submitted, Duration::from_secs(60)).await?;
    let mut waits = Vec::new();
    for id in &requests {
        let row = refund_store::by_id(&state.db, *id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("request {id} went missing"))?;
        if let (Some(decided), Some(submitted)) = (row.decided_at, row.submitted_at) {
            waits.push(Duration::from_micros((submitted - decided).max(0) as u64));
        }
    }
    waits.sort();
    let pct = |p: f64| {
        waits
            .get(((waits.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };

    // Burst: everything else requested and approved at once; time until all have succeeded.
    eprintln!("[{backend}] burst phase: {burst} refunds at once…");
    let started = Instant::now();
    let mut burst_ids = Vec::new();
    for (i, (payment_id, journey_id)) in payments.iter().skip(steady).enumerate() {
        let id = ask(
            &state,
            &caseworker,
            service_id,
            payment_id,
            *journey_id,
            steady + i,
        )
        .await?;
        approve(&state, &finance, id).await?;
        burst_ids.push(id);
    }
    wait_for(
        &state,
        &burst_ids,
        State::Succeeded,
        Duration::from_secs(600),
    )
    .await?;
    let burst_time = started.elapsed();
    let _ = stop.send(true);
    for w in workers {
        let _ = w.await;
    }
    let totals = platform
        .totals("bench")
        .ok_or_else(|| anyhow::anyhow!("the sandbox has no bench account"))?;
    let platform_refunds = totals.refunds as usize;
    platform.stop().await;
    state.db.close().await;
    Ok(RefundFigures {
        backend,
        steady,
        approval_to_submission_p50: pct(0.50),
        approval_to_submission_p99: pct(0.99),
        approval_to_submission_max: waits.last().copied().unwrap_or_default(),
        burst,
        burst_time,
        platform_refunds,
        exactly_once: platform_refunds == steady + burst,
    })
}

/// `count` payments on the platform, paid, and known to paydesk: (payment id, journey id).
async fn paid_payments(
    state: &AppState,
    platform: &sandbox::RunningSandbox,
    service_id: i64,
    api_key: &str,
    count: usize,
) -> anyhow::Result<Vec<(String, i64)>> {
    let http = reqwest::Client::new();
    let service = services::by_id(&state.db, service_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no bench service"))?;
    let client = state.platforms.client(&state.config, &service)?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let created: serde_json::Value = http
            .post(format!("{}/v1/payments", platform.base_url()))
            .bearer_auth(api_key)
            .json(&json!({
                "amount": 5000, "reference": format!("BENCH-{i:06}"), "description": "Bench",
                "return_url": "https://service.example/return", "email": "payer@bench.example",
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = created["payment_id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no payment id"))?
            .to_string();
        http.post(format!(
            "{}/sandbox/payments/{id}/advance",
            platform.base_url()
        ))
        .json(&json!({"to": "success"}))
        .send()
        .await?
        .error_for_status()?;
        let done = crate::journeys::sync::refresh_with(
            &state.db,
            state.clock.now(),
            client.as_ref(),
            service_id,
            &id,
        )
        .await?;
        out.push((id, done.journey_id));
    }
    Ok(out)
}

async fn ask(
    state: &AppState,
    who: &Staff,
    service_id: i64,
    payment_id: &str,
    journey_id: i64,
    n: usize,
) -> anyhow::Result<i64> {
    let asked = refunds::request(
        &state.db,
        state.clock.now(),
        who,
        &Ask {
            service_id,
            journey_id,
            payment_id: payment_id.into(),
            how_much: Ok(HowMuch::Partial(1234)),
            reason: "requested_by_payer".into(),
            comment: String::new(),
            case_reference: String::new(),
            form_key: format!("bench-{n}"),
        },
    )
    .await?;
    match asked {
        Asked::Made { id, .. } => Ok(id),
        Asked::Refused(p) => anyhow::bail!("refund refused: {p:?}"),
    }
}

async fn approve(state: &AppState, who: &Staff, id: i64) -> anyhow::Result<()> {
    refunds::approve(&state.db, state.clock.now(), who, id, 1234, None)
        .await?
        .map_err(|r| anyhow::anyhow!("approval refused: {}", r.message()))
}

/// Wait until every request has reached `state` (or a later one).
async fn wait_for(
    state: &AppState,
    ids: &[i64],
    target: State,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let mut behind = 0;
        for id in ids {
            let row = refund_store::by_id(&state.db, *id).await?;
            let s = row.and_then(|r| State::parse(&r.state));
            let there = match target {
                State::Submitted => matches!(s, Some(State::Submitted | State::Succeeded)),
                other => s == Some(other),
            };
            if matches!(s, Some(State::Failed)) {
                anyhow::bail!("refund request {id} failed");
            }
            if !there {
                behind += 1;
            }
        }
        if behind == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "{behind} refunds had not reached {} after {} s",
            target.name(),
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn print(figures: &[RefundFigures]) {
    println!(
        "paydesk bench refunds — {} cores (sandbox platform in this process, refunds settle after 200 ms)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:<10} {:>8} {:>12} {:>12} {:>12} {:>8} {:>10} {:>12} {:>15}",
        "backend",
        "steady",
        "appr→sub p50",
        "appr→sub p99",
        "max",
        "burst",
        "time",
        "refunds/s",
        "exactly once"
    );
    for f in figures {
        println!(
            "{:<10} {:>8} {:>9.0} ms {:>9.0} ms {:>9.0} ms {:>8} {:>8.1} s {:>12.1} {:>15}",
            f.backend,
            f.steady,
            f.approval_to_submission_p50.as_secs_f64() * 1000.0,
            f.approval_to_submission_p99.as_secs_f64() * 1000.0,
            f.approval_to_submission_max.as_secs_f64() * 1000.0,
            f.burst,
            f.burst_time.as_secs_f64(),
            f.burst as f64 / f.burst_time.as_secs_f64().max(1e-9),
            if f.exactly_once {
                format!("yes ({})", f.platform_refunds)
            } else {
                format!("NO ({})", f.platform_refunds)
            }
        );
    }
}
