//! What the search bench measured, and how it is printed (stdout).

use std::time::Duration;

use super::settings::*;

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

// ---- output -------------------------------------------------------------------------------

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub(crate) use crate::money::thousands;

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

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
