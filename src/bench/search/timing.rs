//! Timing a case over HTTP beside the same work run directly, and list pages per second with
//! many clients (with the CPU each side used).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::json;

use super::{figures::*, mix::*, settings::*};
use crate::audit::{self, Actor, AuditEvent};
use crate::identity::accounts;
use crate::search::query::{self, Form, COUNT_CAP};
use crate::services;
use crate::store::search::{self as search_store, Shape};
use crate::store::{journeys as journey_store, staff as staff_store};
use crate::AppState;

// ---- timing -------------------------------------------------------------------------------

pub(crate) const WARM_UP: usize = 3;

pub(crate) async fn get(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
) -> (Duration, Result<(), String>) {
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

pub(crate) async fn time_case(
    state: &AppState,
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    case: &Case,
    samples: usize,
) -> anyhow::Result<CaseFigures> {
    let db = &state.db;
    let url = case.kind.url(base);
    let target = match &case.kind {
        CaseKind::Journey { .. } => JOURNEY_TARGET,
        _ => SEARCH_TARGET,
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
        CaseKind::Disputes { status, .. } => Direct::Disputes(crate::disputes::ListQuery {
            services: page_services(state, &Form::default()).await?,
            status: status.clone(),
            page: 1,
            ..Default::default()
        }),
        CaseKind::Agreements {
            reference, status, ..
        } => Direct::Agreements(crate::agreements::ListQuery {
            services: page_services(state, &Form::default()).await?,
            reference: reference.clone(),
            status: status.clone(),
            page: 1,
        }),
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
pub(crate) enum Direct {
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
    /// The disputes page's list: a page and the count.
    Disputes(crate::disputes::ListQuery),
    /// The agreements page's list: a page and the count.
    Agreements(crate::agreements::ListQuery),
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
            Direct::Disputes(q) => {
                let _mine = services::all(db).await?;
                let (_, total) = crate::disputes::list(db, q).await?;
                Ok((total.to_string(), "disputes: a page and the count".into()))
            }
            Direct::Agreements(q) => {
                let _mine = services::all(db).await?;
                let (_, total) = crate::agreements::list(db, q).await?;
                Ok((total.to_string(), "agreements: a page and the count".into()))
            }
        }
    }
}

pub(crate) fn shape_text(shape: &Shape) -> String {
    match shape {
        Shape::Lookup(driver) => {
            let name = driver.split('(').next().unwrap_or(driver);
            format!("lookup: {name}")
        }
        Shape::Branches(n) => format!("walk: {n} branches"),
    }
}

pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub(crate) async fn run_throughput(
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
pub(crate) const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// (comm, user + system CPU seconds) of a process, from /proc (Linux only).
pub(crate) fn proc_stat(pid: &str) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((comm, ticks / CLOCK_TICKS_PER_SECOND))
}

pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    proc_stat(pid).map(|(_, cpu)| cpu)
}

/// CPU seconds used so far by every process named `postgres` on this machine.
pub(crate) fn postgres_cpu_seconds() -> Option<f64> {
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

pub(crate) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.95), Duration::from_millis(95));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
