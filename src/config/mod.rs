//! One typed configuration, read from `Rocket.toml` (per profile) and `PAYDESK_*` environment
//! variables, validated once at start-up (`read`). A bad value stops the program with a message
//! that names the setting. The keys derived from the secret key are in `keys`.

use std::net::IpAddr;
use std::path::PathBuf;

use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::{Figment, Profile};
use serde::Deserialize;

mod keys;
mod read;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Where paydesk runs: a developer's machine, the demo, or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Debug,
    Demo,
    Release,
}

/// How the daily personal data retention run (`personal_data::retention`) shares the database
/// with people using paydesk: `batch` journeys per transaction; after each, a pause of
/// `pause_percent` % of the time the batch took; before each, a short wait while a search
/// of this instance is running; and after every `tidy_every` journeys, a tidy of the journeys
/// table (a VACUUM on PostgreSQL) so searches do not slow as the run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPace {
    pub batch: i64,
    pub pause_percent: u32,
    pub tidy_every: u64,
}

impl RetentionPace {
    pub const DEFAULT: RetentionPace = RetentionPace {
        batch: 500,
        pause_percent: 100,
        tidy_every: 25_000,
    };
    /// As fast as it goes: one large batch after another (the run before pacing).
    pub const FLAT: RetentionPace = RetentionPace {
        batch: 2500,
        pause_percent: 0,
        tidy_every: 25_000,
    };

    /// The pause after a batch that took `took`.
    pub fn pause_after(&self, took: std::time::Duration) -> std::time::Duration {
        took.mul_f64(f64::from(self.pause_percent) / 100.0)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub profile: String,
    pub database_url: String,
    pub address: IpAddr,
    pub port: u16,
    pub log_format: LogFormat,
    pub service_name: String,
    /// The header a trusted reverse proxy sets to the client's address; none by default, so a
    /// client cannot choose the address recorded in the audit log.
    pub trusted_ip_header: Option<String>,
    /// Bearer token for `/metrics`; without one, only loopback clients may read it.
    pub metrics_token: Option<String>,
    pub db_max_connections: u32,
    pub jobs_enabled: bool,
    pub job_poll_ms: u64,
    pub job_lease_secs: u64,
    pub job_concurrency: usize,
    pub template_dir: PathBuf,
    pub static_dir: PathBuf,
    master_key: [u8; 32],
    /// True when no secret key was configured and a development key is in use.
    pub insecure_dev_key: bool,
    /// The address people use to reach paydesk, for links in emails and printed set-up links.
    pub public_url: String,
    /// Where mail goes: `smtp://host:port`, `smtps://user:pass@host`, or `file://folder`.
    pub mail_url: String,
    pub mail_from: String,
    /// Whether cookies are `__Host-` and Secure. Always in release; in debug and the demo only
    /// when paydesk listens beyond loopback (plain HTTP on one's own machine needs them off).
    pub secure_cookies: bool,
    /// Sign-in attempts (password, code, reset requests) allowed per client address per minute.
    pub sign_in_rate_per_minute: u32,
    /// Requests each API token may make per minute (then 429 with Retry-After).
    pub api_rate_per_minute: u32,
    /// Single sign-on providers, in the order their buttons appear.
    pub sso_providers: Vec<SsoProvider>,
    pub sso_totp: SsoTotp,
    /// Calls to the payment platform: connect and total timeouts, and how many times a read
    /// (or a request the platform refused with 429) is tried again.
    pub platform_connect_timeout_ms: u64,
    pub platform_timeout_ms: u64,
    pub platform_retries: u32,
    /// The longest single wait between retries; a longer `Retry-After` ends the call with a
    /// clear "rate limited" error for the caller (a job) to schedule.
    pub platform_max_backoff_ms: u64,
    /// How often each service's backfill runs, and how far back past its cursor it looks
    /// again (the platform's search is eventually consistent).
    pub sync_interval_secs: u64,
    pub sync_overlap_secs: u64,
    /// Minutes after a payment should have expired (90 minutes after creation) before a
    /// journey without a final state is flagged "needs attention".
    pub stuck_after_minutes: u64,
    /// The zone whose days the payments search and the dashboard count in ("today",
    /// "previous month", a day's totals).
    pub time_zone: crate::timezone::Zone,
    /// Where background exports write their files (shared storage when several instances
    /// serve one database), how many rows make an export run in the background rather than
    /// stream at once, and how many days a finished file is kept.
    pub export_dir: PathBuf,
    pub export_background_rows: i64,
    pub export_keep_days: u32,
    /// How the daily retention run shares the database with people searching: journeys per
    /// transaction, and the pause after each batch as a percentage of the time it took
    /// (PAYDESK_RETENTION_BATCH, PAYDESK_RETENTION_PAUSE_PERCENT).
    pub retention_pace: RetentionPace,
    /// Where signed checkpoints of the audit log's head are written (outside the database).
    pub audit_checkpoint_dir: PathBuf,
    /// Outbound events: whether endpoints may be loopback addresses (and plain http to them).
    /// Only for tests; refused in the release profile.
    pub events_allow_loopback: bool,
    /// How long a rotated endpoint secret keeps signing beside its successor.
    pub events_rotation_overlap_secs: u64,
    /// The hosts a service's platform and token addresses may name (PAYDESK_PLATFORM_HOSTS).
    pub platform_hosts: crate::platform::hosts::PlatformHosts,
}

/// An OpenID Connect identity provider staff may sign in with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct SsoProvider {
    /// Short name used in URLs (`/login/sso/<id>`).
    pub id: String,
    /// The button's words, such as "Sign in with your council account".
    pub label: String,
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(default = "default_sso_scopes")]
    pub scopes: Vec<String>,
}

fn default_sso_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

/// Whether staff who sign in through an identity provider also give paydesk's own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SsoTotp {
    Always,
    /// Unless the ID token's `amr` says the provider already used more than one factor.
    UnlessProviderMfa,
    Never,
}

/// Defaults that apply when neither Rocket.toml nor the environment says otherwise.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://var/paydesk.db";

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// The environment variable that sets a given key.
pub fn env_name(key: &str) -> String {
    format!("PAYDESK_{}", key.to_ascii_uppercase())
}

impl Config {
    /// The figment paydesk reads: Rocket's (Rocket.toml and ROCKET_*), our defaults, then
    /// PAYDESK_* on top. `PAYDESK_PROFILE` picks the profile.
    pub fn figment() -> Figment {
        let mut figment = rocket::Config::figment()
            .join(Serialized::defaults(serde_json::json!({
                "database_url": DEFAULT_DATABASE_URL,
                "log_format": "text",
            })))
            .merge(
                Toml::file(
                    std::env::var("PAYDESK_CONFIG").unwrap_or_else(|_| "Rocket.toml".into()),
                )
                .nested(),
            )
            .merge(
                Env::prefixed("PAYDESK_")
                    .ignore(&["profile", "config"])
                    .global(),
            );
        if let Ok(profile) = std::env::var("PAYDESK_PROFILE") {
            figment = figment.select(Profile::from_env_or("PAYDESK_PROFILE", profile));
        }
        figment
    }

    /// Read and validate the configuration. `demo` marks `paydesk demo`.
    pub fn load(demo: bool) -> Result<Config, ConfigError> {
        Config::from_figment(&Config::figment(), demo)
    }

    /// A configuration for tests and tools: debug mode, the given database, nothing from the
    /// environment. Its secret key is `TEST_SECRET_KEY`, the one tests hand to the binary, so
    /// that both link the same audit chain.
    pub fn for_tests(database_url: &str) -> Config {
        let figment = Figment::from(rocket::Config::debug_default()).merge(Serialized::defaults(
            serde_json::json!({
                "database_url": database_url,
                "log_format": "text",
                "secret_key": TEST_SECRET_KEY,
                "audit_checkpoint_dir": std::env::temp_dir().join("paydesk-test-checkpoints"),
                "jobs_enabled": false,
                "db_max_connections": 5,
                // Tests talk to sandboxes and listeners on this machine, and save a made-up host.
                "platform_hosts": "publicapi.payments.service.gov.uk publicapi.example.gov auth.example.gov 127.0.0.1 localhost [::1]",
            }),
        ));
        Config::from_figment(&figment, false).expect("the test configuration is valid")
    }

    /// The figment handed to Rocket: ours, with Rocket's own secret key derived from the master
    /// key and the client-address header switched off unless one is trusted.
    pub fn rocket_figment(&self) -> Figment {
        let rocket_key = self.derive_key("rocket");
        let ip_header: serde_json::Value = match &self.trusted_ip_header {
            Some(h) => serde_json::Value::String(h.clone()),
            None => serde_json::Value::Bool(false),
        };
        Config::figment().merge(Serialized::globals(serde_json::json!({
            "address": self.address.to_string(),
            "port": self.port,
            "secret_key": hex::encode(rocket_key),
            "ip_header": ip_header,
            "template_dir": self.template_dir,
            "log_level": "critical",
            "cli_colors": false,
            // No `Server: Rocket` header: it would tell a prober which framework to look up.
            "ident": false,
        })))
    }

    pub fn is_demo(&self) -> bool {
        self.mode == Mode::Demo
    }
}

/// The secret key of `Config::for_tests` (public: tests and benchmarks only).
pub const TEST_SECRET_KEY: &str =
    "3f1c9a7e5b2d4f6081a3c5e7092b4d6f8a1c3e5072b4d6f8091a2b3c4d5e6f70";

#[cfg(test)]
mod rocket_figment_tests {
    #[test]
    fn rocket_accepts_the_figment_we_hand_it() {
        let config = super::Config::for_tests("sqlite://var/x.db");
        let extracted = config.rocket_figment().extract::<rocket::Config>();
        assert!(extracted.is_ok(), "{:?}", extracted.err());
    }
}
