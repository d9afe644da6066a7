//! Reading the configuration: the settings as written (`RawConfig`, with their defaults) and
//! `Config::from_figment`, which checks each one and names the setting that is wrong.

use std::net::IpAddr;
use std::path::PathBuf;

use rocket::figment::Figment;
use serde::Deserialize;

use super::keys::{parse_secret_key, sha256, DEV_KEY_SEED};
use super::{env_name, Config, ConfigError, LogFormat, Mode, SsoProvider, SsoTotp};

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
    #[serde(default = "default_retention_batch")]
    retention_batch: i64,
    #[serde(default = "default_retention_pause_percent")]
    retention_pause_percent: u32,
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
fn default_retention_batch() -> i64 {
    super::RetentionPace::DEFAULT.batch
}
fn default_retention_pause_percent() -> u32 {
    super::RetentionPace::DEFAULT.pause_percent
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

impl Config {
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
        if !(1..=100_000).contains(&raw.retention_batch) || raw.retention_pause_percent > 10_000 {
            return Err(ConfigError(format!(
                "{} must be from 1 to 100000 and {} from 0 to 10000",
                env_name("retention_batch"),
                env_name("retention_pause_percent")
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
            retention_pace: super::RetentionPace {
                batch: raw.retention_batch,
                pause_percent: raw.retention_pause_percent,
                ..super::RetentionPace::DEFAULT
            },
            events_allow_loopback: raw.events_allow_loopback,
            events_rotation_overlap_secs: raw.events_rotation_overlap_secs,
            platform_hosts,
        })
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
    use rocket::figment::providers::Serialized;

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
