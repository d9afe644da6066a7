//! The `paydesk` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use paydesk::audit::{self, Actor, Checkpoint};
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
    /// Measure performance and print the figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the whole log; exit 0 when intact, 1 naming the first bad entry otherwise.
    Verify {
        /// A checkpoint made earlier by `paydesk audit checkpoint`, to also catch truncation
        /// or a rewrite of everything before it.
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
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Create a service with a slug (used in URLs and commands) and a name.
    Add {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
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
        Command::Bench { .. } => unreachable!("handled above"),
    };
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
            let checkpoint = match checkpoint {
                None => None,
                Some(path) => {
                    let parsed = std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))
                        .and_then(|text| {
                            serde_json::from_str::<Checkpoint>(text.trim()).map_err(|e| {
                                format!("{} is not a paydesk checkpoint: {e}", path.display())
                            })
                        })
                        .and_then(|cp| {
                            cp.authenticate(&key).map(|_| cp).map_err(|e| e.to_string())
                        });
                    match parsed {
                        Ok(cp) => Some(cp),
                        Err(e) => {
                            eprintln!("paydesk: {e}");
                            return ExitCode::from(2);
                        }
                    }
                }
            };
            match audit::verify(&state.db, checkpoint.as_ref()).await {
                Ok(report) => {
                    if let Some(problem) = &report.problem {
                        println!(
                            "audit log is NOT intact: first bad entry is sequence {}",
                            problem.first_bad_seq()
                        );
                        println!("{problem}");
                    }
                    if !report.triggers_present {
                        println!("audit log is NOT protected: the triggers that refuse UPDATE and DELETE are missing or disabled");
                    }
                    if report.intact() {
                        println!(
                            "audit log intact: {} entries, head {}{}",
                            report.entries,
                            report.head,
                            if report.checkpoint_checked {
                                ", consistent with the checkpoint"
                            } else {
                                ""
                            }
                        );
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("paydesk: {e}");
                    ExitCode::from(2)
                }
            }
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

async fn bench(command: BenchCommand) -> ExitCode {
    match command {
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

async fn service_command(state: &AppState, command: ServiceCommand) -> ExitCode {
    match command {
        ServiceCommand::Add { slug, name } => {
            let slug_ok = !slug.is_empty()
                && slug.len() <= 40
                && slug
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !slug_ok || name.trim().is_empty() {
                eprintln!("paydesk: the slug must be lower-case letters, digits and hyphens (at most 40), and the name must not be empty");
                return ExitCode::from(2);
            }
            match store::staff::service_by_slug(&state.db, &slug).await {
                Ok(Some(_)) => {
                    eprintln!("paydesk: there is already a service {slug:?}");
                    return ExitCode::from(2);
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("paydesk: {e}");
                    return ExitCode::FAILURE;
                }
            }
            match paydesk::identity::accounts::add_service(state, Actor::System, &slug, name.trim())
                .await
            {
                Ok(id) => {
                    println!("Created service {slug} (id {id}).");
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
