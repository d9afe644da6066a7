//! Testing a service's connection to the platform ("Test connection"), for `services:manage`:
//! one read with the saved settings, the answer in words for the admin, audited without
//! secrets. Saved credentials are only sent where they were saved for (`platform::cache`).

use serde_json::json;

use super::{ServiceAccount, ServiceError};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::context::Context;
use crate::platform::cache::Platforms;
use crate::platform::client::PlatformError;
use crate::platform::types::PaymentSearch;

/// What testing the connection found, in words for the admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionCheck {
    Connected,
    Refused,
    Unreachable,
    TimedOut,
    Busy,
    PlatformFault,
    NotThePlatform,
    NotConnected,
    Unreadable,
    /// The saved credentials were sealed for another address: not sent.
    Moved,
    /// The address's host is not on the configured list: not called.
    HostNotAllowed,
}

impl ConnectionCheck {
    pub const ALL: [ConnectionCheck; 11] = [
        ConnectionCheck::Connected,
        ConnectionCheck::Refused,
        ConnectionCheck::Unreachable,
        ConnectionCheck::TimedOut,
        ConnectionCheck::Busy,
        ConnectionCheck::PlatformFault,
        ConnectionCheck::NotThePlatform,
        ConnectionCheck::NotConnected,
        ConnectionCheck::Unreadable,
        ConnectionCheck::Moved,
        ConnectionCheck::HostNotAllowed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ConnectionCheck::Connected => "connected",
            ConnectionCheck::Refused => "refused",
            ConnectionCheck::Unreachable => "unreachable",
            ConnectionCheck::TimedOut => "timed-out",
            ConnectionCheck::Busy => "busy",
            ConnectionCheck::PlatformFault => "platform-fault",
            ConnectionCheck::NotThePlatform => "not-the-platform",
            ConnectionCheck::NotConnected => "not-connected",
            ConnectionCheck::Unreadable => "unreadable",
            ConnectionCheck::Moved => "moved",
            ConnectionCheck::HostNotAllowed => "host-not-allowed",
        }
    }

    pub fn parse(code: &str) -> Option<ConnectionCheck> {
        ConnectionCheck::ALL.into_iter().find(|c| c.code() == code)
    }

    pub fn ok(self) -> bool {
        self == ConnectionCheck::Connected
    }

    /// The answer in plain words. `url` is the platform's address; `oauth2` says which kind
    /// of credentials were refused.
    pub fn message(self, url: &str, oauth2: bool) -> String {
        match self {
            ConnectionCheck::Connected => "Connected: the platform answered and accepted paydesk's credentials".into(),
            ConnectionCheck::Refused if oauth2 => "The platform refused the OAuth2 client id or secret: check them and save again".into(),
            ConnectionCheck::Refused => "The platform refused the API key: check it is the service's live or test key and save it again".into(),
            ConnectionCheck::Unreachable => format!("Could not reach {url}: check the address, and that paydesk's network can reach it"),
            ConnectionCheck::TimedOut => format!("{url} did not answer in time: try again, or check the address"),
            ConnectionCheck::Busy => "The platform is limiting how often paydesk may call it: try again in a minute".into(),
            ConnectionCheck::PlatformFault => "The platform answered with an error of its own: try again later".into(),
            ConnectionCheck::NotThePlatform => format!("Something answered at {url}, but not as the payment platform does: check the address"),
            ConnectionCheck::NotConnected => "There is no platform account to test: enter the platform's address and credentials first".into(),
            ConnectionCheck::Unreadable => "The saved credentials could not be opened (was paydesk's secret key changed?): enter them again".into(),
            ConnectionCheck::Moved => format!("The saved credentials were saved for another address than {url}, so paydesk did not send them: enter them again"),
            ConnectionCheck::HostNotAllowed => format!("paydesk may not call {url}: ask a platform admin to allow its host (PAYDESK_PLATFORM_HOSTS)"),
        }
    }

    fn of(error: &PlatformError) -> ConnectionCheck {
        match error {
            PlatformError::Api { status, .. } if matches!(*status, 401 | 403) => {
                ConnectionCheck::Refused
            }
            PlatformError::InvalidCredentials(_) => ConnectionCheck::Refused,
            PlatformError::Api { status, .. } if *status >= 500 => ConnectionCheck::PlatformFault,
            PlatformError::Api { .. } | PlatformError::BadResponse(_) => {
                ConnectionCheck::NotThePlatform
            }
            PlatformError::RateLimited { .. } => ConnectionCheck::Busy,
            PlatformError::Timeout(_) => ConnectionCheck::TimedOut,
            PlatformError::Connect(_) | PlatformError::Settings(_) => ConnectionCheck::Unreachable,
        }
    }
}

/// Ask the platform for one payment with the service's saved settings, and record what
/// happened.
pub async fn test_connection(
    ctx: &Context,
    platforms: &Platforms,
    actor: Actor,
    ip: Option<String>,
    service: &ServiceAccount,
) -> Result<ConnectionCheck, ServiceError> {
    let answer = match platforms.client(&ctx.config, service) {
        Err(ServiceError::NotConnected(_)) => (ConnectionCheck::NotConnected, None),
        Err(ServiceError::Sealed(_)) => (ConnectionCheck::Unreadable, None),
        Err(ServiceError::Moved(_)) => (ConnectionCheck::Moved, None),
        Err(ServiceError::HostNotAllowed { refusal, .. }) => {
            (ConnectionCheck::HostNotAllowed, Some(refusal.to_string()))
        }
        Err(ServiceError::Platform(e)) => (ConnectionCheck::of(&e), Some(e.to_string())),
        Err(e) => return Err(e),
        Ok(client) => {
            let query = PaymentSearch {
                display_size: Some(1),
                ..Default::default()
            };
            match client.search_payments(&query).await {
                Ok(_) => (ConnectionCheck::Connected, None),
                Err(e) => (ConnectionCheck::of(&e), Some(e.to_string())),
            }
        }
    };
    let (check, error) = answer;
    let mut event = AuditEvent::new(
        actor,
        "service_connection_tested",
        format!("service:{}", service.id),
    )
    .from_ip(ip)
    .details(json!({"result": check.code(), "platform_url": service.platform_url, "error": error}));
    if !check.ok() {
        event.outcome = Outcome::Failure;
    }
    audit::record(&ctx.db, ctx.clock.now(), event).await?;
    Ok(check)
}
