//! The `paydesk` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use paydesk::audit::{self, Actor};
use paydesk::config::Config;
use paydesk::store::jobs as job_store;
use paydesk::{bench, clock, jobs, logging, store, AppState};

#[derive(Parser)]
#[command(
    name = "paydesk",
    version,
    about = "A staff console for a government payments platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web console (and its job worker) with the configured database.
    Serve,
    /// Try paydesk on one machine: the sandbox platform with three services and about 20,000
    /// payments, the console on SQLite (var/demo.db unless PAYDESK_DATABASE_URL is set), and
    /// a demo account for each role. Refuses PostgreSQL and the production profile.
    Demo {
        /// Payments seeded across the three demo services.
        #[arg(long, default_value_t = 20_000)]
        payments: usize,
        /// The sandbox platform's port (default: the console's port + 1).
        #[arg(long, env = "PAYDESK_SANDBOX_PORT")]
        sandbox_port: Option<u16>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Check and anchor the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Inspect the job queue and re-queue dead jobs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Create staff accounts, and disable them.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Create services (their platform settings come with the service administration).
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Make API tokens for CRM and case systems (the API tokens page does the same).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Show each service's sync with its payment platform: how much is imported, up to
    /// when, what is in progress, and the last error.
    SyncStatus,
    /// Write a reconciliation CSV to standard output: the same columns and rules as the
    /// console's export (`paydesk export --service S --from D --to D > file.csv`).
    Export {
        /// A service slug; repeat for several.
        #[arg(long = "service", required = true)]
        services: Vec<String>,
        /// First day, inclusive (2026-10-01 or 1/10/2026).
        #[arg(long)]
        from: String,
        /// Last day, inclusive.
        #[arg(long)]
        to: String,
        /// Which date the days are: created (the payment's) or settled (the platform's
        /// settlement date).
        #[arg(long, default_value = "created")]
        by: String,
        /// Add refund rows (negative amounts) after each service's payments.
        #[arg(long)]
        refunds: bool,
        /// Only refund rows.
        #[arg(long, conflicts_with = "refunds")]
        refunds_only: bool,
        /// A payment status group to keep (in_progress, success, declined, timed_out,
        /// cancelled, error); repeat for several; none: every status.
        #[arg(long = "status")]
        statuses: Vec<String>,
        /// The time zone days start in and times are written in (default: the console's).
        #[arg(long)]
        time_zone: Option<String>,
    },
    /// Measure performance and print the figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Run the sandbox payment platform (GOV.UK Pay v1 API, card page, webhooks) with
    /// seeded accounts; needs no database.
    Sandbox {
        /// 0 picks a free port (printed on the SANDBOX READY line).
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        address: std::net::IpAddr,
        /// Payments seeded per account.
        #[arg(long, default_value_t = 1000)]
        seed: usize,
        /// Seeds the generator: the same value gives the same payments.
        #[arg(long, default_value_t = 1)]
        random_seed: u64,
        /// Keep state in this file across restarts.
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        accounts: usize,
        /// How long a submitted refund takes to succeed or fail (sandbox time).
        #[arg(long, default_value_t = 2000)]
        refund_delay_ms: u64,
        /// Stop when standard input closes (so a test's sandbox dies with the test).
        #[arg(long)]
        exit_with_stdin: bool,
        /// Divide the webhook retry delays by this (for tests).
        #[arg(long, hide = true)]
        webhook_retry_divisor: Option<u32>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the whole log; exit 0 when intact, 1 naming the first bad entry otherwise.
    Verify {
        /// A checkpoint made earlier by `paydesk audit checkpoint`, to check besides the
        /// newest one in the checkpoint folder (which is always checked).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Print a checkpoint (size and head hash, authenticated with the secret key) to keep
    /// somewhere the database's administrators cannot change.
    Checkpoint,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only jobs in this state: queued, running, succeeded or dead.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one job and every attempt at it.
    Show { id: i64 },
    /// Put a dead job back in the queue for another full set of attempts.
    Requeue { id: i64 },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an invited account and print its one-time set-up link (valid 48 hours) as the
    /// last line. The person sets their own password and authenticator by following it.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// viewer, caseworker, finance, service_admin or platform_admin.
        #[arg(long)]
        role: String,
        /// The service the role is held in (by slug); not for platform_admin.
        #[arg(long)]
        service: Option<String>,
    },
    /// Disable an account: it cannot sign in, and every session it has ends at once.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Disable every account unused for 90 days, now (the server does this once a day).
    DisableInactive,
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Create a service: a slug (used in URLs and commands), a name, and its platform account.
    /// Secrets may come from the environment instead of the command line, which other users
    /// of the machine can see.
    Add {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        /// IANA time zone the service's staff work in.
        #[arg(long, default_value = "Europe/London")]
        time_zone: String,
        /// The platform's API base URL, e.g. https://publicapi.payments.service.gov.uk
        #[arg(long)]
        platform_url: Option<String>,
        /// A platform API key (bearer).
        #[arg(long, env = "PAYDESK_SERVICE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// OAuth2 client credentials, instead of an API key.
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long, env = "PAYDESK_SERVICE_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
        #[arg(long)]
        token_url: Option<String>,
        /// Space-separated OAuth2 scopes.
        #[arg(long, default_value = "")]
        scopes: String,
        /// The secret the platform signs this service's webhooks with.
        #[arg(long, env = "PAYDESK_SERVICE_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token and print it as the last line (it is shown this once). The token acts
    /// for the member of staff named by --for, who must hold integrations:manage (and what
    /// each scope needs) in the service: refunds it asks for are recorded on their behalf.
    Create {
        /// The service (by slug).
        #[arg(long)]
        service: String,
        #[arg(long)]
        name: String,
        /// Scopes, separated by spaces or commas: payments:read refunds:request cases:link.
        #[arg(long)]
        scopes: String,
        /// The email address of the member of staff the token acts for.
        #[arg(long = "for", value_name = "EMAIL")]
        for_email: String,
        /// Days until it expires (default: it does not expire).
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
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
    /// Time a fixed mix of payment searches and the journey page over HTTP (p50/p95/p99, and
    /// the ratio to the same search run directly), list pages per second with many clients,
    /// and print the query plans. Seeds persistent bench databases once and reuses them.
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paydesk: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    if let Command::Bench { command } = cli.command {
        return bench(command).await;
    }
    if let Command::Sandbox {
        port,
        address,
        seed,
        random_seed,
        data,
        accounts,
        refund_delay_ms,
        exit_with_stdin,
        webhook_retry_divisor,
    } = cli.command
    {
        let args = paydesk::platform::sandbox::cli::SandboxArgs {
            port,
            address,
            seed,
            random_seed,
            data,
            accounts,
            refund_delay_ms,
            exit_with_stdin,
            webhook_retry_divisor,
        };
        return paydesk::platform::sandbox::cli::run(args).await;
    }
    if let Command::Demo {
        payments,
        sandbox_port,
    } = cli.command
    {
        return demo(payments, sandbox_port).await;
    }
    let config = match Config::load(false) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paydesk: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format);
    if config.insecure_dev_key {
        tracing::warn!("no PAYDESK_SECRET_KEY set: using the public development key (allowed in debug and demo only)");
    }
    let state = match AppState::open(config, clock::system()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("paydesk: cannot open the database: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        Command::Serve => serve(state.clone()).await,
        Command::Migrate => {
            println!("database is up to date ({})", state.db.backend().name());
            ExitCode::SUCCESS
        }
        Command::Audit { command } => audit_command(&state, command).await,
        Command::Jobs { command } => jobs_command(&state, command).await,
        Command::User { command } => user_command(&state, command).await,
        Command::Service { command } => service_command(&state, command).await,
        Command::Token { command } => token_command(&state, command).await,
        Command::SyncStatus => sync_status(&state).await,
        Command::Export {
            services,
            from,
            to,
            by,
            refunds,
            refunds_only,
            statuses,
            time_zone,
        } => {
            let include = match (refunds, refunds_only) {
                (_, true) => vec!["refunds".to_string()],
                (true, false) => vec!["payments".to_string(), "refunds".to_string()],
                (false, false) => vec!["payments".to_string()],
            };
            let fields = paydesk::exports::Fields {
                services,
                by,
                from,
                to,
                time_zone: time_zone.unwrap_or_else(|| state.config.time_zone.name().to_string()),
                statuses,
                include,
            };
            export_command(&state, fields).await
        }
        Command::Bench { .. } => unreachable!("handled above"),
        Command::Sandbox { .. } | Command::Demo { .. } => unreachable!("handled above"),
    };
    state.db.close().await;
    code
}

async fn demo(payments: usize, sandbox_port: Option<u16>) -> ExitCode {
    use paydesk::platform::sandbox::{self, SandboxOptions};
    // Demo data lives apart from a real database unless a URL is given on purpose.
    if std::env::var_os("PAYDESK_DATABASE_URL").is_none() {
        std::env::set_var("PAYDESK_DATABASE_URL", "sqlite://var/demo.db");
    }
    let config = match Config::load(true) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paydesk: {e}");
            return ExitCode::from(2);
        }
    };
    if !config.database_url.starts_with("sqlite:") {
        eprintln!("paydesk: demo mode runs on SQLite only; it refuses PostgreSQL so demo accounts never reach a shared database (unset PAYDESK_DATABASE_URL or give a sqlite:// URL)");
        return ExitCode::from(2);
    }
    if config.profile == "release" || config.profile == "production" {
        eprintln!("paydesk: demo mode refuses the {} profile", config.profile);
        return ExitCode::from(2);
    }
    logging::init(config.log_format);
    let specs: Vec<_> = paydesk::demo::services(payments)
        .into_iter()
        .map(|(slug, name, mut spec)| {
            spec.webhook_url = Some(format!("{}/hooks/govuk-pay/{slug}", config.public_url));
            (slug, name, spec)
        })
        .collect();
    let port = sandbox_port.unwrap_or(config.port.saturating_add(1));
    eprintln!("Starting the sandbox platform with {payments} payments…");
    let platform = match sandbox::start(SandboxOptions {
        address: config.address,
        port,
        data_file: Some(PathBuf::from("var/demo-sandbox.json")),
        accounts: specs.iter().map(|(_, _, s)| s.clone()).collect(),
        ..Default::default()
    })
    .await
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("paydesk: the sandbox platform could not start on port {port}: {e} (set PAYDESK_SANDBOX_PORT to use another)");
            return ExitCode::FAILURE;
        }
    };
    let state = match AppState::open(config, clock::system()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("paydesk: cannot open the database: {e}");
            platform.stop().await;
            return ExitCode::FAILURE;
        }
    };
    let slugs: Vec<&str> = specs.iter().map(|(slug, _, _)| *slug).collect();
    let prepared = async {
        paydesk::demo::ensure_services(&state, platform.base_url(), &specs).await?;
        paydesk::demo::ensure_accounts(&state, &slugs).await
    }
    .await;
    let accounts = match prepared {
        Ok(a) => a,
        Err(e) => {
            eprintln!("paydesk: could not set up the demo: {e}");
            platform.stop().await;
            return ExitCode::FAILURE;
        }
    };
    let mut welcome = String::new();
    welcome.push_str("\npaydesk demo\n");
    welcome.push_str(&format!(
        "  console:          {}\n",
        state.config.public_url
    ));
    welcome.push_str(&format!(
        "  sandbox platform: {}  (test cards: see README)\n",
        platform.base_url()
    ));
    welcome.push_str(&format!(
        "  database:         {}\n",
        state.config.database_url
    ));
    welcome.push_str(
        "  Payments are imported in the background; the first import takes a minute or so.\n\n",
    );
    welcome
        .push_str("Demo accounts (demo mode only; the code page shows each one's current code):\n");
    for a in &accounts {
        welcome.push_str(&format!(
            "  {:<16} {:<40} password {:<32} authenticator key {}\n",
            a.role.label(),
            a.email,
            a.password,
            a.totp_key
        ));
    }
    welcome.push('\n');
    // Written once, and a closed stdout (a pipe whose reader went away) is not a reason to
    // stop the console.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(welcome.as_bytes()).and_then(|_| out.flush());
    }
    let code = serve(state.clone()).await;
    platform.stop().await;
    state.db.close().await;
    code
}

async fn serve(state: AppState) -> ExitCode {
    match paydesk::app(state).launch().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paydesk: the server could not start: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn audit_command(state: &AppState, command: AuditCommand) -> ExitCode {
    let key = state.config.audit_checkpoint_key();
    match command {
        AuditCommand::Checkpoint => {
            match audit::checkpoint(&state.db, &key, state.clock.now()).await {
                Ok(cp) => {
                    println!("{}", serde_json::to_string(&cp).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("paydesk: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        AuditCommand::Verify { checkpoint } => {
            ExitCode::from(audit::anchor::verify_command(state, checkpoint).await)
        }
    }
}

async fn jobs_command(state: &AppState, command: JobsCommand) -> ExitCode {
    let result: anyhow::Result<ExitCode> = async {
        match command {
            JobsCommand::List { state: job_state, limit } => {
                if let Some(s) = &job_state {
                    anyhow::ensure!(["queued", "running", "succeeded", "dead"].contains(&s.as_str()), "--state must be queued, running, succeeded or dead");
                }
                let rows = job_store::list(&state.db, job_state.as_deref(), limit).await?;
                println!("{:>8}  {:<20} {:<10} {:>8}  {:<25}  last error", "id", "kind", "state", "attempts", "run at (UTC)");
                for j in rows {
                    println!(
                        "{:>8}  {:<20} {:<10} {:>4}/{:<3}  {:<25}  {}",
                        j.id,
                        j.kind,
                        j.state,
                        j.attempts,
                        j.max_attempts,
                        store::from_micros(j.run_at).format(&time::format_description::well_known::Rfc3339)?,
                        j.last_error.unwrap_or_default()
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            JobsCommand::Show { id } => {
                let Some(job) = job_store::get(&state.db, id).await? else {
                    eprintln!("paydesk: no job {id}");
                    return Ok(ExitCode::FAILURE);
                };
                println!("job {} ({}) is {} after {} of {} attempts", job.id, job.kind, job.state, job.attempts, job.max_attempts);
                println!("payload: {}", job.payload);
                for a in job_store::attempts(&state.db, id).await? {
                    println!("  attempt {} by {}: {}{}", a.attempt, a.worker, a.outcome, a.error.map(|e| format!(" — {e}")).unwrap_or_default());
                }
                Ok(ExitCode::SUCCESS)
            }
            JobsCommand::Requeue { id } => {
                let actor = Actor::System;
                let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
                tracing::info!(operator = %who, job = id, "re-queueing a dead job from the command line");
                if jobs::requeue(&state.db, id, &state.jobs, actor, state.clock.now()).await? {
                    println!("job {id} is queued again");
                    Ok(ExitCode::SUCCESS)
                } else {
                    eprintln!("paydesk: job {id} does not exist or is not dead");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| {
        eprintln!("paydesk: {e}");
        ExitCode::FAILURE
    })
}

async fn export_command(state: &AppState, fields: paydesk::exports::Fields) -> ExitCode {
    use paydesk::exports;
    let filter = match exports::filter::parse(&fields) {
        Ok(f) => f,
        Err(problems) => {
            for p in problems {
                eprintln!("paydesk: --{}: {}", p.field.replace('_', "-"), p.message);
            }
            return ExitCode::from(2);
        }
    };
    let result: Result<i64, exports::ExportError> = async {
        let all = paydesk::services::all(&state.db).await?;
        let chosen = match exports::resolve(&filter, &all) {
            Ok(c) => c,
            Err(_) => {
                return Err(exports::ExportError::Invalid(format!(
                    "no such service; known services: {}",
                    all.iter()
                        .map(|s| s.slug.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        let plan = exports::Plan::prepare(&state.db, filter.clone(), chosen, None).await?;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let rows = exports::write_all(&plan, &mut out).await?;
        let user = std::env::var("USER").unwrap_or_default();
        audit::record(
            &state.db,
            state.clock.now(),
            audit::AuditEvent::new(Actor::System, "export_downloaded", "export:command-line")
                .details(serde_json::json!({
                    "filter": filter,
                    "rows": rows,
                    "via": "command line",
                    "os_user": user,
                })),
        )
        .await?;
        Ok(rows)
    }
    .await;
    match result {
        Ok(rows) => {
            eprintln!("paydesk: exported {rows} rows");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paydesk: export failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(command: BenchCommand) -> ExitCode {
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

async fn token_command(state: &AppState, command: TokenCommand) -> ExitCode {
    use paydesk::identity::permissions::{Grant, Grants, Role};
    use paydesk::integrations::api_tokens::{self, NewToken, Scope};
    let TokenCommand::Create {
        service,
        name,
        scopes,
        for_email,
        expires_in_days,
    } = command;
    let svc = match paydesk::services::by_slug(&state.db, &service).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("paydesk: there is no service {service:?}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("paydesk: {e}");
            return ExitCode::FAILURE;
        }
    };
    let staff = match store::staff::staff_by_email_key(
        &state.db,
        &paydesk::identity::email::email_key(&for_email),
    )
    .await
    {
        Ok(Some(s)) if s.status != "disabled" => s,
        Ok(_) => {
            eprintln!("paydesk: there is no enabled account for {for_email}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("paydesk: {e}");
            return ExitCode::FAILURE;
        }
    };
    let grants = match store::staff::grants(&state.db, staff.id).await {
        Ok(rows) => Grants(
            rows.iter()
                .filter_map(|g| {
                    g.role.parse::<Role>().ok().map(|role| Grant {
                        role,
                        service_id: g.service_id,
                    })
                })
                .collect(),
        ),
        Err(e) => {
            eprintln!("paydesk: {e}");
            return ExitCode::FAILURE;
        }
    };
    let new = NewToken {
        service_id: svc.id,
        name,
        scopes: scopes
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        expires_in_days,
    };
    let chosen: Vec<Scope> = match api_tokens::check(&new) {
        Ok((_, chosen)) => chosen,
        Err(problems) => {
            for (field, message) in problems {
                eprintln!("paydesk: {field}: {message}");
            }
            return ExitCode::from(2);
        }
    };
    if !api_tokens::may_manage(&grants, svc.id, &chosen) {
        eprintln!("paydesk: {for_email} does not hold integrations:manage (and what the scopes need) in {service}");
        return ExitCode::from(2);
    }
    match api_tokens::create(
        &state.db,
        state.clock.now(),
        Actor::System,
        staff.id,
        None,
        &new,
    )
    .await
    {
        Ok(Ok(created)) => {
            println!(
                "Made API token {:?} (id {}) for {} with {}. It is shown this once:",
                created.token.name, created.token.id, svc.slug, created.token.scopes
            );
            println!("{}", created.secret);
            ExitCode::SUCCESS
        }
        Ok(Err(problems)) => {
            for (field, message) in problems {
                eprintln!("paydesk: {field}: {message}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("paydesk: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn user_command(state: &AppState, command: UserCommand) -> ExitCode {
    use paydesk::identity::{accounts, permissions::Role};
    match command {
        UserCommand::Add {
            email,
            name,
            role,
            service,
        } => {
            let Ok(role) = role.parse::<Role>() else {
                eprintln!("paydesk: unknown role {role:?}: use viewer, caseworker, finance, service_admin or platform_admin");
                return ExitCode::from(2);
            };
            match accounts::add_staff(
                state,
                Actor::System,
                &email,
                &name,
                role,
                service.as_deref(),
            )
            .await
            {
                Ok(Ok(account)) => {
                    println!(
                        "Created an invited account for {} ({}).",
                        email.trim(),
                        role.label()
                    );
                    println!(
                        "Send them this one-time link to set a password and an authenticator app. It works once, until {} UTC:",
                        account.expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
                    );
                    println!("{}/setup/{}", state.config.public_url, account.setup_token);
                    ExitCode::SUCCESS
                }
                Ok(Err(problem)) => {
                    eprintln!("paydesk: {problem}");
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("paydesk: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        UserCommand::DisableInactive => {
            match paydesk::identity::inactivity::disable_inactive(&state.db, state.clock.now())
                .await
            {
                Ok(ids) => {
                    println!("Disabled {} account(s) unused for 90 days.", ids.len());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("paydesk: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        UserCommand::Disable { email } => {
            let staff =
                match store::staff::staff_by_email_key(&state.db, &accounts::email_key(&email))
                    .await
                {
                    Ok(Some(s)) => s,
                    Ok(None) => {
                        eprintln!("paydesk: there is no account for {email}");
                        return ExitCode::from(2);
                    }
                    Err(e) => {
                        eprintln!("paydesk: {e}");
                        return ExitCode::FAILURE;
                    }
                };
            match accounts::disable_staff(state, Actor::System, staff.id, None).await {
                Ok(_) => {
                    println!("Disabled {}; their sessions have ended.", staff.email);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("paydesk: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn sync_status(state: &AppState) -> ExitCode {
    let when = |t: Option<i64>| {
        t.map(|us| {
            store::from_micros(us)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        })
        .unwrap_or_else(|| "never".into())
    };
    let result: anyhow::Result<()> = async {
        for service in paydesk::services::connected(&state.db).await? {
            println!("{} ({})", service.name, service.slug);
            let states = store::journeys::sync_states(&state.db, service.id).await?;
            if states.is_empty() {
                println!("  not synced yet");
            }
            for s in states {
                println!(
                    "  {:<9} imported {:>9}  complete up to {}  last success {}",
                    s.stream,
                    s.imported_total,
                    when(s.cursor_at),
                    when(s.last_success_at)
                );
                if s.run_started_at.is_some() {
                    println!(
                        "            in progress since {}: {} this run, reached back to {}",
                        when(s.run_started_at),
                        s.run_imported,
                        when(s.run_reached)
                    );
                }
                if let Some(e) = s.last_error {
                    println!("            last error at {}: {e}", when(s.last_error_at));
                }
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paydesk: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn service_command(state: &AppState, command: ServiceCommand) -> ExitCode {
    use paydesk::platform::client::Credentials;
    use paydesk::services::{self, NewService};
    match command {
        ServiceCommand::Add {
            slug,
            name,
            time_zone,
            platform_url,
            api_key,
            client_id,
            client_secret,
            token_url,
            scopes,
            webhook_secret,
        } => {
            let credentials = match (api_key, client_id, client_secret, token_url) {
                (None, None, None, None) => None,
                (Some(api_key), None, None, None) => Some(Credentials::ApiKey { api_key }),
                (None, Some(client_id), Some(client_secret), Some(token_url)) => {
                    Some(Credentials::ClientCredentials {
                        client_id,
                        client_secret,
                        token_url,
                        scopes: scopes.split_whitespace().map(str::to_string).collect(),
                    })
                }
                _ => {
                    eprintln!("paydesk: give either --api-key, or all of --client-id, --client-secret and --token-url");
                    return ExitCode::from(2);
                }
            };
            let new = NewService {
                slug,
                name,
                time_zone,
                platform_url,
                credentials,
                webhook_secret,
            };
            match services::add(state, Actor::System, &new).await {
                Ok(Ok(id)) => {
                    println!("Created service {} (id {id}).", new.slug);
                    if new.webhook_secret.is_some() {
                        println!(
                            "Point the platform's webhooks at {}/hooks/govuk-pay/{}",
                            state.config.public_url, new.slug
                        );
                    }
                    ExitCode::SUCCESS
                }
                Ok(Err(problems)) => {
                    for p in problems {
                        eprintln!("paydesk: {p}");
                    }
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("paydesk: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
