//! One typed configuration, read from `Rocket.toml` (per profile) and `PAYDESK_*` environment
//! variables, validated once at start-up. A bad value stops the program with a message that
//! names the setting.

use std::net::IpAddr;
use std::path::PathBuf;

use hmac::{Hmac, Mac};
use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::{Figment, Profile};
use serde::Deserialize;
use sha2::Sha256;

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

/// The settings as written in Rocket.toml or the environment, before validation.
#[derive(Debug, Deserialize)]
struct RawConfig {
    database_url: String,
    address: IpAddr,
    port: u16,
    log_format: LogFormat,
    /// A string when set through PAYDESK_SECRET_KEY or Rocket.toml; Rocket's own default (a
    /// byte sequence) counts as not set.
    #[serde(default)]
    secret_key: Option<rocket::figment::value::Value>,
    #[serde(default = "default_service_name")]
    service_name: String,
    #[serde(default)]
    trusted_ip_header: Option<String>,
    #[serde(default)]
    metrics_token: Option<String>,
    #[serde(default = "default_db_max_connections")]
    db_max_connections: u32,
    #[serde(default = "yes")]
    jobs_enabled: bool,
    #[serde(default = "default_job_poll_ms")]
    job_poll_ms: u64,
    #[serde(default = "default_job_lease_secs")]
    job_lease_secs: u64,
    #[serde(default = "default_job_concurrency")]
    job_concurrency: usize,
    #[serde(default)]
    template_dir: Option<PathBuf>,
    #[serde(default)]
    static_dir: Option<PathBuf>,
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default = "default_mail_url")]
    mail_url: String,
    #[serde(default = "default_mail_from")]
    mail_from: String,
    #[serde(default = "default_sign_in_rate")]
    sign_in_rate_per_minute: u32,
    #[serde(default = "default_api_rate")]
    api_rate_per_minute: u32,
    #[serde(default)]
    sso_providers: Vec<SsoProvider>,
    #[serde(default = "default_sso_totp")]
    sso_totp: SsoTotp,
    #[serde(default = "default_platform_connect_timeout_ms")]
    platform_connect_timeout_ms: u64,
    #[serde(default = "default_platform_timeout_ms")]
    platform_timeout_ms: u64,
    #[serde(default = "default_platform_retries")]
    platform_retries: u32,
    #[serde(default = "default_platform_max_backoff_ms")]
    platform_max_backoff_ms: u64,
    #[serde(default = "default_sync_interval_secs")]
    sync_interval_secs: u64,
    #[serde(default = "default_sync_overlap_secs")]
    sync_overlap_secs: u64,
    #[serde(default = "default_stuck_after_minutes")]
    stuck_after_minutes: u64,
    #[serde(default = "default_time_zone")]
    time_zone: String,
    #[serde(default = "default_export_dir")]
    export_dir: PathBuf,
    #[serde(default = "default_export_background_rows")]
    export_background_rows: i64,
    #[serde(default = "default_export_keep_days")]
    export_keep_days: u32,
    #[serde(default = "default_audit_checkpoint_dir")]
    audit_checkpoint_dir: PathBuf,
    #[serde(default)]
    events_allow_loopback: bool,
    #[serde(default = "default_events_rotation_overlap_secs")]
    events_rotation_overlap_secs: u64,
    #[serde(default)]
    platform_hosts: Option<crate::platform::hosts::HostsSetting>,
}

fn default_export_dir() -> PathBuf {
    PathBuf::from("var/exports")
}
fn default_export_background_rows() -> i64 {
    100_000
}
fn default_audit_checkpoint_dir() -> PathBuf {
    PathBuf::from("var/audit-checkpoints")
}
fn default_export_keep_days() -> u32 {
    7
}

fn default_events_rotation_overlap_secs() -> u64 {
    24 * 3600
}

fn default_platform_connect_timeout_ms() -> u64 {
    3_000
}
fn default_platform_timeout_ms() -> u64 {
    15_000
}
fn default_platform_retries() -> u32 {
    4
}
fn default_platform_max_backoff_ms() -> u64 {
    10_000
}
fn default_sync_interval_secs() -> u64 {
    60
}
fn default_sync_overlap_secs() -> u64 {
    900
}
fn default_stuck_after_minutes() -> u64 {
    15
}

fn default_mail_url() -> String {
    "file://var/mail".into()
}
fn default_mail_from() -> String {
    "paydesk <paydesk@localhost>".into()
}
fn default_sign_in_rate() -> u32 {
    30
}
fn default_api_rate() -> u32 {
    120
}
fn default_sso_totp() -> SsoTotp {
    SsoTotp::UnlessProviderMfa
}

fn default_time_zone() -> String {
    "Europe/London".into()
}

fn default_service_name() -> String {
    "paydesk".into()
}
fn default_db_max_connections() -> u32 {
    10
}
fn yes() -> bool {
    true
}
fn default_job_poll_ms() -> u64 {
    500
}
fn default_job_lease_secs() -> u64 {
    60
}
fn default_job_concurrency() -> usize {
    4
}

/// Defaults that apply when neither Rocket.toml nor the environment says otherwise.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://var/paydesk.db";

/// The development key used in debug and demo when no secret key is set. It is public, so
/// release refuses it.
const DEV_KEY_SEED: &[u8] = b"paydesk insecure development key - never use in production";

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

    pub fn from_figment(figment: &Figment, demo: bool) -> Result<Config, ConfigError> {
        let profile = figment.profile().to_string();
        let raw: RawConfig = figment.extract().map_err(describe_figment_error)?;
        let mode = if demo {
            Mode::Demo
        } else if profile == "release" || profile == "production" {
            Mode::Release
        } else {
            Mode::Debug
        };

        if !(raw.database_url.starts_with("sqlite:")
            || raw.database_url.starts_with("postgres:")
            || raw.database_url.starts_with("postgresql:"))
        {
            return Err(ConfigError(format!(
                "{} must start with sqlite:// or postgres:// (got {:?})",
                env_name("database_url"),
                crate::store::redact_url(&raw.database_url)
            )));
        }
        let time_zone = crate::timezone::Zone::named(raw.time_zone.trim()).ok_or_else(|| {
            ConfigError(format!(
                "{} must be a time zone name such as Europe/London (got {:?})",
                env_name("time_zone"),
                raw.time_zone
            ))
        })?;
        if raw.service_name.trim().is_empty() {
            return Err(ConfigError(format!(
                "{} must not be empty",
                env_name("service_name")
            )));
        }
        if raw.export_background_rows < 1 || raw.export_keep_days < 1 {
            return Err(ConfigError(format!(
                "{} and {} must be at least 1",
                env_name("export_background_rows"),
                env_name("export_keep_days")
            )));
        }
        if raw.db_max_connections == 0 {
            return Err(ConfigError(format!(
                "{} must be at least 1",
                env_name("db_max_connections")
            )));
        }
        if raw.job_concurrency == 0 || raw.job_poll_ms == 0 || raw.job_lease_secs < 2 {
            return Err(ConfigError(format!(
                "{}, {} and {} must be positive ({} at least 2)",
                env_name("job_concurrency"),
                env_name("job_poll_ms"),
                env_name("job_lease_secs"),
                env_name("job_lease_secs")
            )));
        }
        if let Some(header) = &raw.trusted_ip_header {
            if header.is_empty()
                || !header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(ConfigError(format!(
                    "{} must be a header name such as X-Forwarded-For",
                    env_name("trusted_ip_header")
                )));
            }
        }

        let secret_text = match &raw.secret_key {
            Some(rocket::figment::value::Value::String(_, s)) => Some(s.trim().to_string()),
            _ => None,
        };
        let (master_key, insecure_dev_key) = match secret_text.as_deref().filter(|s| !s.is_empty()) {
            Some(text) => (parse_secret_key(text)?, false),
            None if mode == Mode::Release => {
                return Err(ConfigError(format!(
                    "{} is not set: paydesk will not start in the release profile without a secret key \
                     (make one with `openssl rand -hex 32`)",
                    env_name("secret_key")
                )))
            }
            None => (sha256(DEV_KEY_SEED), true),
        };
        if mode == Mode::Release && master_key == sha256(DEV_KEY_SEED) {
            return Err(ConfigError(format!(
                "{} is the public development key; set a real one",
                env_name("secret_key")
            )));
        }

        let public_url = match raw
            .public_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                u.trim_end_matches('/').to_string()
            }
            Some(_) => {
                return Err(ConfigError(format!(
                    "{} must start with https:// (or http:// for local use)",
                    env_name("public_url")
                )))
            }
            None => match raw.address {
                IpAddr::V6(a) => format!("http://[{a}]:{}", raw.port),
                IpAddr::V4(a) => format!("http://{a}:{}", raw.port),
            },
        };
        if !["smtp://", "smtps://", "file://"]
            .iter()
            .any(|p| raw.mail_url.starts_with(p))
        {
            return Err(ConfigError(format!(
                "{} must start with smtp://, smtps:// or file://",
                env_name("mail_url")
            )));
        }
        if raw.mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError(format!(
                "{} must be an address such as \"paydesk <paydesk@example.gov.uk>\"",
                env_name("mail_from")
            )));
        }
        if raw.sign_in_rate_per_minute == 0 {
            return Err(ConfigError(format!(
                "{} must be at least 1",
                env_name("sign_in_rate_per_minute")
            )));
        }
        if raw.api_rate_per_minute == 0 {
            return Err(ConfigError(format!(
                "{} must be at least 1",
                env_name("api_rate_per_minute")
            )));
        }
        for p in &raw.sso_providers {
            let id_ok = !p.id.is_empty()
                && p.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !id_ok || p.label.trim().is_empty() || p.client_id.is_empty() {
                return Err(ConfigError(format!(
                    "{}: each provider needs an id (lower-case letters, digits, -), a label and a client_id",
                    env_name("sso_providers")
                )));
            }
            if url::Url::parse(&p.issuer).is_err() {
                return Err(ConfigError(format!(
                    "{}: the issuer of {:?} is not a URL",
                    env_name("sso_providers"),
                    p.id
                )));
            }
        }
        if raw.platform_connect_timeout_ms == 0
            || raw.platform_timeout_ms == 0
            || raw.sync_interval_secs == 0
        {
            return Err(ConfigError(format!(
                "{}, {} and {} must be positive",
                env_name("platform_connect_timeout_ms"),
                env_name("platform_timeout_ms"),
                env_name("sync_interval_secs")
            )));
        }
        if mode == Mode::Release && raw.events_allow_loopback {
            return Err(ConfigError(format!(
                "{} is for tests only and is refused in the release profile",
                env_name("events_allow_loopback")
            )));
        }
        if raw.events_rotation_overlap_secs > 30 * 24 * 3600 {
            return Err(ConfigError(format!(
                "{} must be at most 30 days (2592000 seconds)",
                env_name("events_rotation_overlap_secs")
            )));
        }
        let secure_cookies = mode == Mode::Release || !raw.address.is_loopback();
        let mut platform_hosts = crate::platform::hosts::PlatformHosts::from_setting(
            raw.platform_hosts.as_ref(),
            mode == Mode::Release,
        )
        .map_err(|e| ConfigError(format!("{}: {e}", env_name("platform_hosts"))))?;
        if mode == Mode::Demo {
            // The demo's sandbox platform listens on this machine.
            platform_hosts = platform_hosts.with_loopback();
        }

        let source_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Ok(Config {
            mode,
            profile,
            database_url: raw.database_url,
            address: raw.address,
            port: raw.port,
            log_format: raw.log_format,
            service_name: raw.service_name,
            trusted_ip_header: raw.trusted_ip_header,
            metrics_token: raw.metrics_token.filter(|t| !t.is_empty()),
            db_max_connections: raw.db_max_connections,
            jobs_enabled: raw.jobs_enabled,
            job_poll_ms: raw.job_poll_ms,
            job_lease_secs: raw.job_lease_secs,
            job_concurrency: raw.job_concurrency,
            template_dir: raw
                .template_dir
                .unwrap_or_else(|| source_dir.join("templates")),
            static_dir: raw.static_dir.unwrap_or_else(|| source_dir.join("static")),
            master_key,
            insecure_dev_key,
            public_url,
            mail_url: raw.mail_url,
            mail_from: raw.mail_from,
            secure_cookies,
            sign_in_rate_per_minute: raw.sign_in_rate_per_minute,
            api_rate_per_minute: raw.api_rate_per_minute,
            sso_providers: raw.sso_providers,
            sso_totp: raw.sso_totp,
            platform_connect_timeout_ms: raw.platform_connect_timeout_ms,
            platform_timeout_ms: raw.platform_timeout_ms,
            platform_retries: raw.platform_retries,
            platform_max_backoff_ms: raw.platform_max_backoff_ms,
            sync_interval_secs: raw.sync_interval_secs,
            sync_overlap_secs: raw.sync_overlap_secs,
            stuck_after_minutes: raw.stuck_after_minutes,
            time_zone,
            export_dir: raw.export_dir,
            export_background_rows: raw.export_background_rows,
            export_keep_days: raw.export_keep_days,
            audit_checkpoint_dir: raw.audit_checkpoint_dir,
            events_allow_loopback: raw.events_allow_loopback,
            events_rotation_overlap_secs: raw.events_rotation_overlap_secs,
            platform_hosts,
        })
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

    /// A key for one purpose, derived from the master secret so that purposes never share one.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.master_key).expect("HMAC accepts any key length");
        mac.update(b"paydesk/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn audit_checkpoint_key(&self) -> [u8; 32] {
        self.derive_key("audit-checkpoint/v1")
    }

    /// The folder this database's audit checkpoints go to: a folder per database under
    /// `audit_checkpoint_dir`, named by a hash of the database URL (without its password),
    /// so that paydesks on different databases never read each other's checkpoints.
    pub fn audit_checkpoint_folder(&self) -> PathBuf {
        let url = &self.database_url;
        let without_password = match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &url[scheme + 3..at];
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{}{user}{}", &url[..scheme + 3], &url[at..])
            }
            _ => url.clone(),
        };
        self.audit_checkpoint_dir
            .join(hex::encode(&sha256(without_password.as_bytes())[..8]))
    }

    /// The key that links the audit chain (each entry's hash is a MAC under it).
    pub fn audit_chain_key(&self) -> [u8; 32] {
        self.derive_key("audit-chain/v1")
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

    /// The key that seals TOTP secrets at rest.
    pub fn totp_key(&self) -> [u8; 32] {
        self.derive_key("totp-secret/v1")
    }

    /// The key that seals service credentials and webhook secrets at rest.
    pub fn platform_key(&self) -> [u8; 32] {
        self.derive_key("platform-credentials/v1")
    }

    /// The key that seals outbound event endpoints' signing secrets at rest.
    pub fn events_key(&self) -> [u8; 32] {
        self.derive_key("event-endpoint-secrets/v1")
    }

    /// The key behind CSRF tokens.
    pub fn csrf_key(&self) -> [u8; 32] {
        self.derive_key("csrf/v1")
    }

    pub fn is_demo(&self) -> bool {
        self.mode == Mode::Demo
    }
}

/// The secret key of `Config::for_tests` (public: tests and benchmarks only).
pub const TEST_SECRET_KEY: &str =
    "3f1c9a7e5b2d4f6081a3c5e7092b4d6f8a1c3e5072b4d6f8091a2b3c4d5e6f70";

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(bytes).into()
}

/// A secret key is at least 32 random bytes, written as hex or base64.
fn parse_secret_key(text: &str) -> Result<[u8; 32], ConfigError> {
    use base64::Engine;
    let bytes = if text.len() >= 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    };
    match bytes {
        Some(b) if b.len() >= 32 => {
            if b.iter().all(|&x| x == b[0]) {
                return Err(ConfigError(format!(
                    "{} is not random (every byte is the same)",
                    env_name("secret_key")
                )));
            }
            Ok(sha256(&b))
        }
        _ => Err(ConfigError(format!(
            "{} must be at least 32 random bytes written as hex (64+ characters) or base64; \
             make one with `openssl rand -hex 32`",
            env_name("secret_key")
        ))),
    }
}

fn describe_figment_error(e: rocket::figment::Error) -> ConfigError {
    let key = e.path.join(".");
    let detail = e.kind.to_string();
    if key.is_empty() {
        ConfigError(detail)
    } else {
        let source = e
            .metadata
            .as_ref()
            .map(|m| m.name.to_string())
            .unwrap_or_default();
        ConfigError(format!(
            "{} (`{key}`){}: {detail}",
            env_name(&key),
            if source.is_empty() {
                String::new()
            } else {
                format!(" from {source}")
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figment(values: serde_json::Value) -> Figment {
        Figment::from(rocket::Config::debug_default())
            .merge(Serialized::defaults(serde_json::json!({
                "database_url": "sqlite://var/x.db",
                "log_format": "text",
            })))
            .merge(Serialized::globals(values))
    }

    #[test]
    fn bad_port_names_the_setting() {
        let err = Config::from_figment(&figment(serde_json::json!({"port": "eighty"})), false)
            .unwrap_err();
        assert!(err.0.contains("PAYDESK_PORT"), "{}", err.0);
    }

    #[test]
    fn bad_log_format_names_the_setting() {
        let err = Config::from_figment(&figment(serde_json::json!({"log_format": "xml"})), false)
            .unwrap_err();
        assert!(err.0.contains("PAYDESK_LOG_FORMAT"), "{}", err.0);
    }

    #[test]
    fn bad_database_url_names_the_setting() {
        let err = Config::from_figment(
            &figment(serde_json::json!({"database_url": "mysql://x"})),
            false,
        )
        .unwrap_err();
        assert!(err.0.contains("PAYDESK_DATABASE_URL"), "{}", err.0);
    }

    #[test]
    fn release_refuses_to_start_without_a_secret_key() {
        let f = figment(serde_json::json!({})).select("release");
        let err = Config::from_figment(&f, false).unwrap_err();
        assert!(err.0.contains("PAYDESK_SECRET_KEY"), "{}", err.0);
        let weak = figment(serde_json::json!({"secret_key": "short"})).select("release");
        assert!(Config::from_figment(&weak, false)
            .unwrap_err()
            .0
            .contains("PAYDESK_SECRET_KEY"));
        let zeros = figment(serde_json::json!({"secret_key": "0".repeat(64)})).select("release");
        assert!(Config::from_figment(&zeros, false).is_err());
        let good =
            figment(serde_json::json!({"secret_key": hex::encode([1u8, 2, 3, 4].repeat(8))}))
                .select("release");
        let config = Config::from_figment(&good, false).unwrap();
        assert_eq!(config.mode, Mode::Release);
        assert!(!config.insecure_dev_key);
    }

    #[test]
    fn debug_falls_back_to_the_development_key() {
        let config = Config::from_figment(&figment(serde_json::json!({})), false).unwrap();
        assert!(config.insecure_dev_key);
        assert_ne!(config.derive_key("a"), config.derive_key("b"));
    }
}
#[cfg(test)]
mod rocket_figment_tests {
    #[test]
    fn rocket_accepts_the_figment_we_hand_it() {
        let config = super::Config::for_tests("sqlite://var/x.db");
        let extracted = config.rocket_figment().extract::<rocket::Config>();
        assert!(extracted.is_ok(), "{:?}", extracted.err());
    }
}
