//! How a sandbox is asked to run: its options, the accounts it serves (`AccountSpec`, with
//! the checks an account must pass) and the errors starting one can meet.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::seed;
use super::webhooks;

/// How the sandbox runs. Build with `..Default::default()`: fields may be added.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub address: IpAddr,
    /// 0 picks any free port; [`RunningSandbox::base_url`] says which.
    pub port: u16,
    /// Seeds the generated payments (with the account id and the payment's index).
    pub random_seed: u64,
    /// Keep state here across restarts. Its anchor, random seed and each stored account's
    /// name and payment count win over these options, so the same payments come back;
    /// credentials and webhook targets given here win over stored ones; accounts it does not
    /// know are added.
    pub data_file: Option<PathBuf>,
    pub accounts: Vec<AccountSpec>,
    /// How long (sandbox time) a submitted refund takes to succeed or fail.
    pub refund_settle_after: Duration,
    /// How long an OAuth access token lasts (sandbox time).
    pub token_ttl: Duration,
    /// The delays between webhook attempts; defaults to the platform's
    /// [`webhooks::RETRY_SCHEDULE`]. Tests shorten it.
    pub webhook_retry_schedule: Vec<Duration>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            random_seed: 1,
            data_file: None,
            accounts: Vec::new(),
            refund_settle_after: Duration::from_secs(2),
            token_ttl: Duration::from_secs(3600),
            webhook_retry_schedule: webhooks::RETRY_SCHEDULE.to_vec(),
        }
    }
}

/// A platform account: its credentials, where its webhooks go, and how many payments it is
/// seeded with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSpec {
    pub id: String,
    pub name: String,
    pub api_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub payments: usize,
}

impl AccountSpec {
    /// The `n`th default account (from 1): `account-n`, `sandbox-key-n`, `sandbox-client-n`,
    /// `sandbox-secret-n`.
    pub fn default_numbered(n: usize, payments: usize) -> AccountSpec {
        let name = seed::DEFAULT_NAMES
            .get(n.wrapping_sub(1))
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("Service {n}"));
        AccountSpec {
            id: format!("account-{n}"),
            name,
            api_key: format!("sandbox-key-{n}"),
            client_id: Some(format!("sandbox-client-{n}")),
            client_secret: Some(format!("sandbox-secret-{n}")),
            webhook_url: None,
            webhook_secret: None,
            payments,
        }
    }
}

/// `count` default accounts with `payments` seeded payments each.
pub fn default_accounts(count: usize, payments: usize) -> Vec<AccountSpec> {
    (1..=count)
        .map(|n| AccountSpec::default_numbered(n, payments))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox could not start its server: {0}")]
    Server(String),
    #[error("the sandbox data file: {0}")]
    Data(String),
    #[error("invalid sandbox account: {0}")]
    Account(String),
    #[error("the sandbox could not build its webhook client: {0}")]
    Http(String),
}

pub fn validate_spec(spec: &AccountSpec) -> Result<(), String> {
    let id_ok = !spec.id.is_empty()
        && spec.id.len() <= 64
        && spec
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err("id must be 1-64 letters, digits, '-' or '_'".into());
    }
    if spec.api_key.trim().is_empty() {
        return Err("api_key must not be empty".into());
    }
    if spec.client_id.is_some() != spec.client_secret.is_some() {
        return Err("client_id and client_secret go together".into());
    }
    if spec.payments > 5_000_000 {
        return Err("payments must be at most 5000000".into());
    }
    if let Some(url) = spec.webhook_url.as_deref().filter(|u| !u.is_empty()) {
        check_webhook_url(url)?;
    }
    Ok(())
}

/// Webhook targets must be plain http(s) URLs.
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err("webhook url must be an http or https URL".into()),
    }
}
