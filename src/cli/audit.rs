//! `paydesk audit`: verify and anchor the tamper-evident audit log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use paydesk::audit;
use paydesk::AppState;

#[derive(Subcommand)]
pub(super) enum AuditCommand {
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

pub(super) async fn audit_command(state: &AppState, command: AuditCommand) -> ExitCode {
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
        AuditCommand::Verify { checkpoint } => ExitCode::from(
            audit::anchor::verify_command(&state.db, &state.config, checkpoint).await,
        ),
    }
}
