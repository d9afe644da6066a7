//! `paydesk bench`: measure performance and print the figures.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use paydesk::bench;

#[derive(Subcommand)]
pub(super) enum BenchCommand {
    /// Backfill payments from the sandbox platform (in this process) into SQLite and, given a
    /// server, PostgreSQL, and print payments imported per second.
    Sync {
        #[arg(long, default_value_t = 1_000_000)]
        payments: usize,
        #[arg(long, env = "PAYDESK_BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
    },
    /// Post signed webhooks to a running console over HTTP and print acknowledgements per
    /// second and their latency percentiles.
    Webhooks {
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, env = "PAYDESK_BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
    },
    /// Refunds end to end against the sandbox platform in this process: the time from
    /// approval to submission at a steady 20 approvals a second (p50, p99), then refunds
    /// completed per second when many are approved at once; checks exactly one platform
    /// refund per request.
    Refunds {
        #[arg(long, default_value_t = 200)]
        steady: usize,
        #[arg(long, default_value_t = 1000)]
        burst: usize,
        #[arg(long, env = "PAYDESK_BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
    },
    /// Bulk refunds: the dry run of a `--rows` file against `--payments` payments (target
    /// at most 5 s for 10,000 rows), then `--send` rows sent end to end against the sandbox
    /// platform in this process, as refunds completed per second (target at least 50);
    /// checks exactly one platform refund per row.
    BulkRefunds {
        #[arg(long, default_value_t = 20_000)]
        payments: usize,
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
        #[arg(long, default_value_t = 1_000)]
        send: usize,
        #[arg(long, env = "PAYDESK_BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
    },
    /// Audit appends per second (1 and 8 writers) and the time to verify a large log, on
    /// SQLite and, given a server, PostgreSQL. Each runs in a scratch database.
    Audit {
        /// PostgreSQL server to run on as well (a scratch database is created and dropped).
        #[arg(long, env = "PAYDESK_BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
        /// Appends to time for each writer count.
        #[arg(long, default_value_t = 8000)]
        appends: usize,
        /// Size of the log to verify.
        #[arg(long, default_value_t = 1_000_000)]
        verify_entries: i64,
    },
    /// Stream CSV exports of 100,000 and `--rows` payments through HTTP from a fresh
    /// `paydesk serve` each, and print rows/s, the server's peak memory and the ratio to the
    /// database's own bulk CSV export of the same rows, measured in the same run.
    Export {
        #[arg(long, default_value_t = 1_000_000)]
        rows: i64,
        #[arg(long, default_value_t = 100_000)]
        small_rows: i64,
        #[arg(long, env = "PAYDESK_BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
        #[arg(long, default_value = "var/bench-export.db")]
        sqlite_path: PathBuf,
        /// Measure PostgreSQL only.
        #[arg(long)]
        skip_sqlite: bool,
    },
    /// Time the retention run redacting every journey of a freshly seeded database, and the
    /// payments search's p95 idle and while it runs.
    Retention {
        #[arg(long, default_value_t = 1_000_000)]
        journeys: i64,
        #[arg(long, env = "PAYDESK_BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
        #[arg(long, default_value = "var/bench-retention.db")]
        sqlite_path: PathBuf,
        /// Measure PostgreSQL only.
        #[arg(long)]
        skip_sqlite: bool,
        /// Journeys per batch (default: the run's, PAYDESK_RETENTION_BATCH's default).
        #[arg(long)]
        batch: Option<i64>,
        /// Pause after each batch, as a percentage of the time it took.
        #[arg(long)]
        pause_percent: Option<u32>,
        /// Journeys between two VACUUMs of the journeys during the run (PostgreSQL).
        #[arg(long)]
        tidy_every: Option<u64>,
    },
    /// Time a fixed mix of payment searches, the journey page, the disputes list and the
    /// agreements search over HTTP (p50/p95/p99, and the ratio to the same work run directly),
    /// list pages per second with many clients, and print the query plans. Seeds persistent
    /// bench databases (with disputes and agreements in proportion) once and reuses them.
    Search {
        /// Journeys in the SQLite bench database.
        #[arg(long, default_value_t = 1_000_000)]
        journeys: i64,
        /// Journeys in the PostgreSQL bench database.
        #[arg(long, default_value_t = 5_000_000)]
        postgres_journeys: i64,
        /// PostgreSQL server to measure as well; the database paydesk_bench_search is created
        /// on it when missing and kept.
        #[arg(long, env = "PAYDESK_BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
        #[arg(long, default_value = "var/bench-search.db")]
        sqlite_path: PathBuf,
        /// Timed requests per search.
        #[arg(long, default_value_t = 50)]
        samples: usize,
        /// Length of each throughput run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent clients in the throughput runs.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Measure PostgreSQL only.
        #[arg(long)]
        skip_sqlite: bool,
        /// Throw the bench databases away and seed them again.
        #[arg(long)]
        reseed: bool,
        /// Print each query's SQL next to its plan.
        #[arg(long)]
        sql: bool,
        /// Run only the throughput runs (no timed mix, no plans): for profiling.
        #[arg(long)]
        throughput_only: bool,
    },
}

pub(super) async fn bench(command: BenchCommand) -> ExitCode {
    use paydesk::bench::platform as pb;
    match command {
        BenchCommand::Sync {
            payments,
            postgres_url,
        } => match pb::sync(payments, postgres_url.as_deref()).await {
            Ok(figures) => {
                pb::print_sync(&figures);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("paydesk: bench failed: {e}");
                ExitCode::FAILURE
            }
        },
        BenchCommand::Refunds {
            steady,
            burst,
            postgres_url,
        } => match paydesk::bench::refunds::refunds(steady, burst, postgres_url.as_deref()).await {
            Ok(figures) => {
                paydesk::bench::refunds::print(&figures);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("paydesk: bench failed: {e}");
                ExitCode::FAILURE
            }
        },
        BenchCommand::BulkRefunds {
            payments,
            rows,
            send,
            postgres_url,
        } => match paydesk::bench::bulk_refunds::bulk_refunds(
            payments,
            rows,
            send,
            postgres_url.as_deref(),
        )
        .await
        {
            Ok(figures) => {
                paydesk::bench::bulk_refunds::print(&figures);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("paydesk: bench failed: {e}");
                ExitCode::FAILURE
            }
        },
        BenchCommand::Webhooks {
            messages,
            concurrency,
            postgres_url,
        } => match pb::webhooks(messages, concurrency, postgres_url.as_deref()).await {
            Ok(figures) => {
                pb::print_webhooks(&figures, concurrency);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("paydesk: bench failed: {e}");
                ExitCode::FAILURE
            }
        },
        BenchCommand::Retention {
            journeys,
            postgres_url,
            sqlite_path,
            skip_sqlite,
            batch,
            pause_percent,
            tidy_every,
        } => {
            let default = paydesk::personal_data::retention::Pace::DEFAULT;
            let settings = bench::retention::RetentionBench {
                journeys,
                postgres_url,
                sqlite_path,
                skip_sqlite,
                pace: paydesk::personal_data::retention::Pace {
                    batch: batch.unwrap_or(default.batch).max(1),
                    pause_percent: pause_percent.unwrap_or(default.pause_percent),
                    tidy_every: tidy_every.unwrap_or(default.tidy_every).max(1),
                },
            };
            match bench::retention::retention(&settings).await {
                Ok(figures) => {
                    let misses: Vec<String> = figures.iter().flat_map(|f| f.misses()).collect();
                    if misses.is_empty() {
                        println!("every target met");
                    } else {
                        println!("targets missed:");
                        for m in misses {
                            println!("  {m}");
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("paydesk: bench failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        BenchCommand::Audit {
            postgres_url,
            appends,
            verify_entries,
        } => {
            let settings = bench::AuditBench {
                postgres_url,
                appends,
                verify_entries,
            };
            match bench::audit(&settings).await {
                Ok(figures) => {
                    bench::print_audit(&figures);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("paydesk: bench failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        BenchCommand::Export {
            rows,
            small_rows,
            postgres_url,
            sqlite_path,
            skip_sqlite,
        } => {
            let settings = bench::export::ExportBench {
                rows,
                small_rows,
                postgres_url,
                sqlite_path,
                skip_sqlite,
            };
            match bench::export::export(&settings).await {
                Ok(figures) => {
                    let misses: Vec<String> = figures.iter().flat_map(|f| f.misses()).collect();
                    println!();
                    if misses.is_empty() {
                        println!("every target met");
                    } else {
                        println!("targets missed:");
                        for m in misses {
                            println!("  {m}");
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("paydesk: bench failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        BenchCommand::Search {
            journeys,
            postgres_journeys,
            postgres_url,
            sqlite_path,
            samples,
            seconds,
            clients,
            skip_sqlite,
            reseed,
            sql,
            throughput_only,
        } => {
            let settings = bench::search::SearchBench {
                sqlite_journeys: journeys,
                postgres_journeys,
                postgres_url,
                sqlite_path,
                samples,
                seconds,
                clients,
                skip_sqlite,
                reseed,
                show_sql: sql,
                throughput_only,
            };
            // Each backend's figures are printed as soon as they are known.
            match bench::search::search(&settings).await {
                Ok(figures) => {
                    let misses: Vec<String> = figures.iter().flat_map(|f| f.misses()).collect();
                    println!();
                    if misses.is_empty() {
                        println!("every target met");
                    } else {
                        println!("targets missed:");
                        for m in misses {
                            println!("  {m}");
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("paydesk: bench failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
