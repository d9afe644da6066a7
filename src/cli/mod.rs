//! The subcommands of the `paydesk` command: the command line (`Cli`) and one file per
//! group of subcommands.

mod audit;
mod bench;
mod export;
mod jobs;
mod serve;
mod service;
mod token;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use paydesk::config::Config;
use paydesk::{clock, logging, AppState};

use audit::AuditCommand;
use bench::BenchCommand;
use jobs::JobsCommand;
use service::ServiceCommand;
use token::TokenCommand;
use user::UserCommand;

#[derive(Parser)]
#[command(
    name = "paydesk",
    version,
    about = "A staff console for a government payments platform"
)]
pub(crate) struct Cli {
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
        /// Add dispute rows (negative amounts, positive when won) after each service's
        /// refunds.
        #[arg(long)]
        disputes: bool,
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

pub(crate) async fn run(cli: Cli) -> ExitCode {
    if let Command::Bench { command } = cli.command {
        return bench::bench(command).await;
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
        return serve::demo(payments, sandbox_port).await;
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
        Command::Serve => serve::serve(state.clone()).await,
        Command::Migrate => {
            println!("database is up to date ({})", state.db.backend().name());
            ExitCode::SUCCESS
        }
        Command::Audit { command } => audit::audit_command(&state, command).await,
        Command::Jobs { command } => jobs::jobs_command(&state, command).await,
        Command::User { command } => user::user_command(&state, command).await,
        Command::Service { command } => service::service_command(&state, command).await,
        Command::Token { command } => token::token_command(&state, command).await,
        Command::SyncStatus => jobs::sync_status(&state).await,
        Command::Export {
            services,
            from,
            to,
            by,
            refunds,
            refunds_only,
            disputes,
            statuses,
            time_zone,
        } => {
            let mut include = match (refunds, refunds_only) {
                (_, true) => vec!["refunds".to_string()],
                (true, false) => vec!["payments".to_string(), "refunds".to_string()],
                (false, false) => vec!["payments".to_string()],
            };
            if disputes {
                include.push("disputes".to_string());
            }
            let fields = paydesk::exports::Fields {
                services,
                by,
                from,
                to,
                time_zone: time_zone.unwrap_or_else(|| state.config.time_zone.name().to_string()),
                statuses,
                include,
            };
            export::export_command(&state, fields).await
        }
        Command::Bench { .. } => unreachable!("handled above"),
        Command::Sandbox { .. } | Command::Demo { .. } => unreachable!("handled above"),
    };
    state.db.close().await;
    code
}
