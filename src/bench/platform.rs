//! `paydesk bench sync` and `paydesk bench webhooks`: the backfill's import rate from the
//! sandbox platform, and how fast verified webhooks are acknowledged. Each backend runs in a
//! scratch database; the sandbox runs in this process on its own port.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock;
use crate::config::Config;
use crate::journeys::sync::{self, BackfillSettings, Pass, Stream};
use crate::platform::client::{Account, ClientSettings, Credentials, GovUkPay};
use crate::platform::sandbox::{self, AccountSpec, SandboxOptions};
use crate::platform::signature;
use crate::services::{self, NewService};
use crate::store::journeys as journey_store;
use crate::store::scratch::ScratchDb;
use crate::store::{Db, PoolSettings};
use crate::AppState;

/// Figures for one backend.
#[derive(Debug, Clone)]
pub struct SyncFigures {
    pub backend: &'static str,
    pub payments: i64,
    pub refunds: i64,
    pub payments_time: Duration,
    pub refunds_time: Duration,
    pub matches_platform: bool,
}

fn targets(postgres_url: Option<&str>) -> Vec<Option<&str>> {
    let mut t = vec![None];
    if let Some(pg) = postgres_url {
        t.push(Some(pg));
    }
    t
}

async fn open(url: &str, jobs: bool) -> anyhow::Result<AppState> {
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
    config.jobs_enabled = jobs;
    Ok(AppState::with_db(config, db, clock::system())?)
}

/// Backfill `payments` seeded payments from the sandbox into each backend.
pub async fn sync(payments: usize, postgres_url: Option<&str>) -> anyhow::Result<Vec<SyncFigures>> {
    let spec = AccountSpec {
        id: "bench".into(),
        name: "Benchmark service".into(),
        api_key: "bench-api-key".into(),
        client_id: None,
        client_secret: None,
        webhook_url: None,
        webhook_secret: None,
        payments,
    };
    eprintln!("seeding {payments} payments in the sandbox…");
    let seeded = Instant::now();
    let platform = sandbox::start(SandboxOptions {
        accounts: vec![spec.clone()],
        ..Default::default()
    })
    .await?;
    eprintln!("seeded in {:.1} s", seeded.elapsed().as_secs_f64());
    let totals = platform
        .totals("bench")
        .ok_or_else(|| anyhow::anyhow!("the sandbox has no bench account"))?;
    let mut figures = Vec::new();
    for target in targets(postgres_url) {
        let scratch = ScratchDb::create(target, "paydesk_bench").await?;
        let result = sync_one(&scratch.url, platform.base_url(), &spec).await;
        scratch.destroy().await?;
        let mut f = result?;
        f.matches_platform =
            f.payments == totals.payments as i64 && f.refunds == totals.refunds as i64;
        figures.push(f);
    }
    platform.stop().await;
    Ok(figures)
}

async fn sync_one(url: &str, base_url: &str, spec: &AccountSpec) -> anyhow::Result<SyncFigures> {
    let state = open(url, false).await?;
    let backend = state.db.backend().name();
    let service_id = services::add(
        &state,
        crate::audit::Actor::System,
        &NewService {
            slug: "bench".into(),
            name: spec.name.clone(),
            time_zone: "Europe/London".into(),
            platform_url: Some(base_url.into()),
            credentials: Some(Credentials::ApiKey {
                api_key: spec.api_key.clone(),
            }),
            webhook_secret: None,
        },
    )
    .await?
    .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    let client = GovUkPay::new(
        &Account {
            base_url: base_url.into(),
            credentials: Credentials::ApiKey {
                api_key: spec.api_key.clone(),
            },
        },
        ClientSettings::default(),
    )?;
    let settings = BackfillSettings {
        overlap: Duration::from_secs(900),
        page_size: 500,
        budget: None,
    };
    let mut times = Vec::new();
    for stream in [Stream::Payments, Stream::Refunds] {
        eprintln!("[{backend}] backfilling {}…", stream.as_str());
        let t = Instant::now();
        let pass = sync::backfill(
            &state.db,
            || clock::system().now(),
            &client,
            service_id,
            stream,
            settings,
        )
        .await?;
        anyhow::ensure!(pass == Pass::Complete, "the backfill stopped early");
        times.push(t.elapsed());
    }
    let (payments, _, refunds, _) = journey_store::totals(&state.db, service_id).await?;
    state.db.close().await;
    Ok(SyncFigures {
        backend,
        payments,
        refunds,
        payments_time: times[0],
        refunds_time: times[1],
        matches_platform: false,
    })
}

pub fn print_sync(figures: &[SyncFigures]) {
    println!("paydesk bench sync — {} cores", cores());
    println!(
        "{:<10} {:>10} {:>12} {:>14} {:>9} {:>12} {:>22}",
        "backend", "payments", "time", "payments/s", "refunds", "time", "matches the platform"
    );
    for f in figures {
        println!(
            "{:<10} {:>10} {:>10.2} s {:>14.0} {:>9} {:>10.2} s {:>22}",
            f.backend,
            f.payments,
            f.payments_time.as_secs_f64(),
            f.payments as f64 / f.payments_time.as_secs_f64().max(1e-9),
            f.refunds,
            f.refunds_time.as_secs_f64(),
            if f.matches_platform { "yes" } else { "NO" }
        );
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[derive(Debug, Clone)]
pub struct WebhookFigures {
    pub backend: &'static str,
    pub sent: usize,
    pub acknowledged: usize,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Post `messages` signed webhooks over HTTP, `concurrency` at a time, to a console running
/// on each backend, and time the acknowledgements.
pub async fn webhooks(
    messages: usize,
    concurrency: usize,
    postgres_url: Option<&str>,
) -> anyhow::Result<Vec<WebhookFigures>> {
    let mut figures = Vec::new();
    for target in targets(postgres_url) {
        let scratch = ScratchDb::create(target, "paydesk_bench").await?;
        let result = webhooks_one(&scratch.url, messages, concurrency).await;
        scratch.destroy().await?;
        figures.push(result?);
    }
    Ok(figures)
}

async fn webhooks_one(
    url: &str,
    messages: usize,
    concurrency: usize,
) -> anyhow::Result<WebhookFigures> {
    const SECRET: &str = "bench-webhook-signing-secret";
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut state = open(url, false).await?;
    let backend = state.db.backend().name();
    if let Some(config) = Arc::get_mut(&mut state.config) {
        config.port = port;
    }
    services::add(
        &state,
        crate::audit::Actor::System,
        &NewService {
            slug: "bench".into(),
            name: "Benchmark service".into(),
            time_zone: "Europe/London".into(),
            platform_url: Some("http://127.0.0.1:9".into()),
            credentials: Some(Credentials::ApiKey {
                api_key: "unused".into(),
            }),
            webhook_secret: Some(SECRET.into()),
        },
    )
    .await?
    .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    let rocket = crate::app(state.clone()).ignite().await?;
    let shutdown = rocket.shutdown();
    let server = tokio::spawn(rocket.launch());
    let endpoint = format!("http://127.0.0.1:{port}/hooks/govuk-pay/bench");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    // Wait for the console to listen.
    for _ in 0..100 {
        if http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bodies: Vec<Vec<u8>> = (0..messages)
        .map(|i| {
            serde_json::json!({
                "webhook_message_id": format!("bench-{i}"),
                "created_date": "2026-11-20T10:00:00.000Z",
                "resource_id": format!("payment{:08}", i % 5000),
                "api_version": 1,
                "resource_type": "payment",
                "event_type": "card_payment_succeeded",
                "resource": {"payment_id": format!("payment{:08}", i % 5000), "amount": 1000}
            })
            .to_string()
            .into_bytes()
        })
        .collect();
    let queue = Arc::new(tokio::sync::Mutex::new(bodies.into_iter()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let queue = queue.clone();
        let http = http.clone();
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut ok = 0usize;
            loop {
                let Some(body) = queue.lock().await.next() else {
                    break;
                };
                let sig = signature::sign(SECRET, &body);
                let t = Instant::now();
                let response = http
                    .post(&endpoint)
                    .header("Content-Type", "application/json")
                    .header(signature::HEADER, sig)
                    .body(body)
                    .send()
                    .await;
                latencies.push(t.elapsed());
                if response.is_ok_and(|r| r.status().is_success()) {
                    ok += 1;
                }
            }
            (ok, latencies)
        }));
    }
    let mut latencies = Vec::new();
    let mut acknowledged = 0;
    for t in tasks {
        let (ok, l) = t.await?;
        acknowledged += ok;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    shutdown.notify();
    let _ = server.await;
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    let figures = WebhookFigures {
        backend,
        sent: messages,
        acknowledged,
        per_second: acknowledged as f64 / elapsed.as_secs_f64().max(1e-9),
        p50: pick(0.50),
        p99: pick(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    };
    state.db.close().await;
    Ok(figures)
}

pub fn print_webhooks(figures: &[WebhookFigures], concurrency: usize) {
    println!(
        "paydesk bench webhooks — {} cores, {concurrency} senders, signed with Pay-Signature, acknowledged after the inbox and job are committed",
        cores()
    );
    println!(
        "{:<10} {:>8} {:>13} {:>12} {:>10} {:>10} {:>10}",
        "backend", "sent", "acknowledged", "acks/s", "p50", "p99", "max"
    );
    for f in figures {
        println!(
            "{:<10} {:>8} {:>13} {:>12.0} {:>7.1} ms {:>7.1} ms {:>7.1} ms",
            f.backend,
            f.sent,
            f.acknowledged,
            f.per_second,
            f.p50.as_secs_f64() * 1000.0,
            f.p99.as_secs_f64() * 1000.0,
            f.max.as_secs_f64() * 1000.0
        );
    }
}
