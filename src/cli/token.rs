//! `paydesk token`: make API tokens.

use std::process::ExitCode;

use clap::Subcommand;

use paydesk::audit::Actor;
use paydesk::{store, AppState};

#[derive(Subcommand)]
pub(super) enum TokenCommand {
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

pub(super) async fn token_command(state: &AppState, command: TokenCommand) -> ExitCode {
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
