//! Services: the government services paydesk serves, each with its platform account (base
//! URL, credentials), the secret its webhooks are signed with, and its time zone. Credentials
//! and the webhook secret are sealed at rest (`crypto`); they are opened only to call the
//! platform or check a webhook, and never shown again after they are saved.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Actor, AuditEvent};
use crate::config::Config;
use crate::context::Context;
use crate::crypto;
use crate::platform::cache::ClientSource;
use crate::platform::client::{
    Account, ClientSettings, Credentials, GovUkPay, PaymentPlatform, PlatformError,
};
use crate::platform::hosts::AddressRefusal;
use crate::store::services::{self as service_store, NewServiceRow, ServiceAccountRow};
use crate::store::{self, Db, StoreError};

pub mod admin;
pub mod binding;
pub mod connection;

/// What is needed to create a service.
#[derive(Debug, Clone, Default)]
pub struct NewService {
    pub slug: String,
    pub name: String,
    pub time_zone: String,
    pub platform_url: Option<String>,
    pub credentials: Option<Credentials>,
    pub webhook_secret: Option<String>,
}

/// A service as the rest of paydesk sees it: secrets stay sealed until asked for.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub time_zone: String,
    pub platform_url: Option<String>,
    row: ServiceAccountRow,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(
        "the stored settings of service {0} could not be opened (was the secret key changed?)"
    )]
    Sealed(String),
    #[error("service {0} is not connected to a payment platform")]
    NotConnected(String),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The saved credentials were sealed for another platform address than the service's.
    #[error(
        "the saved credentials of service {0} belong to another platform address: enter them again"
    )]
    Moved(String),
    /// The platform or token address names a host the configuration does not allow.
    #[error("service {slug}: {refusal}")]
    HostNotAllowed {
        slug: String,
        refusal: AddressRefusal,
    },
}

/// Credentials as they are sealed: with the platform address they were saved for, inside the
/// authenticated encryption, so that they are only ever sent there (and, for OAuth2, the
/// client secret only to the token address sealed with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BoundCredentials {
    platform_url: String,
    credentials: Credentials,
}

/// Seal `credentials` for service `id`, bound to `platform_url`.
fn seal_credentials(
    config: &Config,
    id: i64,
    platform_url: &str,
    credentials: &Credentials,
) -> String {
    let bound = BoundCredentials {
        platform_url: platform_url.to_string(),
        credentials: credentials.clone(),
    };
    crypto::seal(
        &config.platform_key(),
        &credentials_context(id),
        json!(bound).to_string().as_bytes(),
    )
}

/// What a sealed credentials value holds: bound to an address, or (sealed before addresses
/// were bound) not.
enum Opened {
    Bound(BoundCredentials),
    Unbound(Credentials),
}

/// Check a platform or token address against the configured hosts.
pub fn allowed_address(config: &Config, raw: &str) -> Result<(), AddressRefusal> {
    config.platform_hosts.check(raw).map(|_| ())
}

/// Problems with a new service's settings, in words for the person who typed them.
pub fn check(new: &NewService) -> Vec<String> {
    let mut problems = Vec::new();
    let slug_ok = !new.slug.is_empty()
        && new.slug.len() <= 40
        && new
            .slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !slug_ok {
        problems.push("The slug must be 1 to 40 lower-case letters, digits and hyphens".into());
    }
    if new.name.trim().is_empty() || new.name.len() > 200 {
        problems.push("Enter a name of at most 200 characters".into());
    }
    if !valid_time_zone(&new.time_zone) {
        problems.push("The time zone must be an IANA name such as Europe/London".into());
    }
    if let Some(u) = &new.platform_url {
        match url::Url::parse(u) {
            Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => {}
            _ => problems.push("The platform URL must start with https://".into()),
        }
    }
    match &new.credentials {
        Some(Credentials::ApiKey { api_key }) if api_key.trim().is_empty() => {
            problems.push("Enter the API key".into())
        }
        Some(Credentials::ClientCredentials {
            client_id,
            client_secret,
            token_url,
            ..
        }) => {
            if client_id.trim().is_empty() || client_secret.is_empty() {
                problems.push("Enter the OAuth2 client id and secret".into());
            }
            if url::Url::parse(token_url).is_err() {
                problems.push("The token URL must be a URL".into());
            }
        }
        _ => {}
    }
    if new.credentials.is_some() != new.platform_url.is_some() {
        problems.push("A platform account needs both its URL and its credentials".into());
    }
    if let Some(secret) = &new.webhook_secret {
        if secret.len() < 16 {
            problems.push("The webhook signing secret must be at least 16 characters".into());
        }
    }
    problems
}

/// An IANA zone name the zone database knows (Europe/London, UTC).
pub fn valid_time_zone(tz: &str) -> bool {
    crate::timezone::Zone::named(tz).is_some()
}

fn credentials_context(id: i64) -> String {
    format!("service:{id}:credentials")
}

fn webhook_context(id: i64) -> String {
    format!("service:{id}:webhook_secret")
}

/// Create a service; `Ok(Err(problems))` when its settings are not acceptable.
pub async fn add(
    ctx: &Context,
    actor: Actor,
    new: &NewService,
) -> Result<Result<i64, Vec<String>>, ServiceError> {
    let mut problems = check(new);
    if let Some(u) = &new.platform_url {
        if let Err(refusal) = allowed_address(&ctx.config, u) {
            problems.push(format!("The platform URL: {refusal}"));
        }
    }
    if let Some(Credentials::ClientCredentials { token_url, .. }) = &new.credentials {
        if let Err(refusal) = allowed_address(&ctx.config, token_url) {
            problems.push(format!("The token URL: {refusal}"));
        }
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    if service_store::by_slug(&ctx.db, &new.slug).await?.is_some() {
        return Ok(Err(vec![format!(
            "There is already a service {:?}",
            new.slug
        )]));
    }
    let now = ctx.clock.now();
    let mut tx = ctx.db.begin().await?;
    let id = service_store::insert(
        &mut tx,
        &NewServiceRow {
            slug: &new.slug,
            name: new.name.trim(),
            time_zone: &new.time_zone,
            platform_url: new.platform_url.as_deref(),
            credentials: None,
            webhook_secret: None,
        },
        store::to_micros(now),
    )
    .await?;
    // Sealed after the insert so that each secret is bound to its row's id, and the
    // credentials to the platform address.
    let key = ctx.config.platform_key();
    let sealed_credentials = match (&new.credentials, &new.platform_url) {
        (Some(c), Some(u)) => Some(seal_credentials(&ctx.config, id, u, c)),
        _ => None,
    };
    let sealed_secret = new
        .webhook_secret
        .as_ref()
        .map(|s| crypto::seal(&key, &webhook_context(id), s.as_bytes()));
    service_store::set_secrets(
        &mut tx,
        id,
        sealed_credentials.as_deref(),
        sealed_secret.as_deref(),
    )
    .await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "service_created", format!("service:{id}")).details(json!({
            "slug": new.slug,
            "name": new.name.trim(),
            "time_zone": new.time_zone,
            "platform_url": new.platform_url,
            "credentials": new.credentials.as_ref().map(Credentials::describe),
            "webhook_secret_set": new.webhook_secret.is_some(),
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(id))
}

impl ServiceAccount {
    fn from_row(row: ServiceAccountRow) -> ServiceAccount {
        ServiceAccount {
            id: row.id,
            slug: row.slug.clone(),
            name: row.name.clone(),
            time_zone: row.time_zone.clone(),
            platform_url: row.platform_url.clone(),
            row,
        }
    }

    /// The service's link into case management, when it has one.
    pub fn deep_link_template(&self) -> Option<&str> {
        self.row.deep_link_template.as_deref()
    }

    pub fn is_connected(&self) -> bool {
        self.row.platform_url.is_some() && self.row.credentials.is_some()
    }

    fn open_credentials(&self, config: &Config) -> Result<Option<Opened>, ServiceError> {
        let Some(sealed) = &self.row.credentials else {
            return Ok(None);
        };
        let bytes = crypto::open(
            &config.platform_key(),
            &credentials_context(self.id),
            sealed,
        )
        .map_err(|_| ServiceError::Sealed(self.slug.clone()))?;
        if let Ok(bound) = serde_json::from_slice::<BoundCredentials>(&bytes) {
            return Ok(Some(Opened::Bound(bound)));
        }
        serde_json::from_slice(&bytes)
            .map(|c| Some(Opened::Unbound(c)))
            .map_err(|_| ServiceError::Sealed(self.slug.clone()))
    }

    /// The platform credentials, opened, with the address they were sealed for. Credentials
    /// sealed for another address than the service's now are `ServiceError::Moved`: they are
    /// never handed out for the new one. (Credentials sealed before addresses were bound are
    /// bound to the service's address when paydesk starts, see `bind_saved_credentials`.)
    fn bound_credentials(&self, config: &Config) -> Result<Option<BoundCredentials>, ServiceError> {
        match self.open_credentials(config)? {
            None => Ok(None),
            Some(Opened::Bound(b))
                if Some(b.platform_url.as_str()) == self.platform_url.as_deref() =>
            {
                Ok(Some(b))
            }
            Some(_) => Err(ServiceError::Moved(self.slug.clone())),
        }
    }

    /// The platform credentials, opened, when they belong to the service's platform address.
    pub fn credentials(&self, config: &Config) -> Result<Option<Credentials>, ServiceError> {
        Ok(self.bound_credentials(config)?.map(|b| b.credentials))
    }

    /// The webhook signing secret, opened.
    pub fn webhook_secret(&self, config: &Config) -> Result<Option<String>, ServiceError> {
        let Some(sealed) = &self.row.webhook_secret else {
            return Ok(None);
        };
        let bytes = crypto::open(&config.platform_key(), &webhook_context(self.id), sealed)
            .map_err(|_| ServiceError::Sealed(self.slug.clone()))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ServiceError::Sealed(self.slug.clone()))
    }

    /// A version stamp: a client built from older settings is not reused.
    fn version(&self) -> i64 {
        self.row.updated_at.unwrap_or(self.row.created_at)
    }
}

pub async fn by_slug(db: &Db, slug: &str) -> Result<Option<ServiceAccount>, ServiceError> {
    Ok(service_store::by_slug(db, slug)
        .await?
        .map(ServiceAccount::from_row))
}

pub async fn by_id(db: &Db, id: i64) -> Result<Option<ServiceAccount>, ServiceError> {
    Ok(service_store::by_id(db, id)
        .await?
        .map(ServiceAccount::from_row))
}

/// Every service, by name.
pub async fn all(db: &Db) -> Result<Vec<ServiceAccount>, ServiceError> {
    Ok(service_store::all(db)
        .await?
        .into_iter()
        .map(ServiceAccount::from_row)
        .collect())
}

pub async fn connected(db: &Db) -> Result<Vec<ServiceAccount>, ServiceError> {
    Ok(service_store::connected(db)
        .await?
        .into_iter()
        .map(ServiceAccount::from_row)
        .collect())
}

/// A service's platform client is made from its saved settings: only credentials sealed for
/// this very address, and only on hosts the configuration allows, however the service's row
/// came to say what it says. The cache (`platform::cache`) keeps it until the settings change.
impl ClientSource for ServiceAccount {
    type Error = ServiceError;

    fn cache_key(&self) -> (i64, i64) {
        (self.id, self.version())
    }

    fn make_client(&self, config: &Config) -> Result<Arc<dyn PaymentPlatform>, ServiceError> {
        if self.platform_url.is_none() {
            return Err(ServiceError::NotConnected(self.slug.clone()));
        }
        let Some(bound) = self.bound_credentials(config)? else {
            return Err(ServiceError::NotConnected(self.slug.clone()));
        };
        let not_allowed = |refusal| ServiceError::HostNotAllowed {
            slug: self.slug.clone(),
            refusal,
        };
        allowed_address(config, &bound.platform_url).map_err(not_allowed)?;
        if let Credentials::ClientCredentials { token_url, .. } = &bound.credentials {
            allowed_address(config, token_url).map_err(not_allowed)?;
        }
        Ok(Arc::new(GovUkPay::new(
            &Account {
                base_url: bound.platform_url,
                credentials: bound.credentials,
            },
            ClientSettings::from_config(config),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> NewService {
        NewService {
            slug: "parking".into(),
            name: "Parking permits".into(),
            time_zone: "Europe/London".into(),
            platform_url: Some("https://publicapi.payments.service.gov.uk".into()),
            credentials: Some(Credentials::ApiKey {
                api_key: "api_test_123".into(),
            }),
            webhook_secret: Some("webhook-secret-0123456789".into()),
        }
    }

    #[test]
    fn a_complete_service_passes() {
        assert!(check(&valid()).is_empty());
        assert!(check(&NewService {
            platform_url: None,
            credentials: None,
            webhook_secret: None,
            ..valid()
        })
        .is_empty());
    }

    #[test]
    fn each_bad_setting_is_named() {
        let bad = NewService {
            slug: "Parking Permits".into(),
            time_zone: "London".into(),
            platform_url: Some("ftp://x".into()),
            webhook_secret: Some("short".into()),
            ..valid()
        };
        let problems = check(&bad);
        assert_eq!(problems.len(), 4, "{problems:?}");
        let half = NewService {
            credentials: None,
            ..valid()
        };
        assert_eq!(check(&half).len(), 1);
    }

    #[test]
    fn time_zones_are_checked_for_shape() {
        assert!(valid_time_zone("Europe/London"));
        assert!(valid_time_zone("America/Argentina/Buenos_Aires"));
        assert!(valid_time_zone("UTC"));
        assert!(!valid_time_zone("London"));
        assert!(!valid_time_zone("Europe/../etc"));
        assert!(!valid_time_zone(""));
    }
}
