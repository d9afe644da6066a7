//! `paydesk service`: create services.

use std::process::ExitCode;

use clap::Subcommand;

use paydesk::audit::Actor;
use paydesk::AppState;

#[derive(Subcommand)]
pub(super) enum ServiceCommand {
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

pub(super) async fn service_command(state: &AppState, command: ServiceCommand) -> ExitCode {
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
