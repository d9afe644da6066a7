//! `paydesk user`: create and disable staff accounts.

use std::process::ExitCode;

use clap::Subcommand;

use paydesk::audit::Actor;
use paydesk::{store, AppState};

#[derive(Subcommand)]
pub(super) enum UserCommand {
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

pub(super) async fn user_command(state: &AppState, command: UserCommand) -> ExitCode {
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
