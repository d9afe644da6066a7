//! `paydesk jobs` and `paydesk sync-status`.

use std::process::ExitCode;

use clap::Subcommand;

use paydesk::audit::Actor;
use paydesk::store::jobs as job_store;
use paydesk::{jobs, store, AppState};

#[derive(Subcommand)]
pub(super) enum JobsCommand {
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

pub(super) async fn jobs_command(state: &AppState, command: JobsCommand) -> ExitCode {
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

pub(super) async fn sync_status(state: &AppState) -> ExitCode {
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
