//! Managing services (`services:manage`): the rules for a service's settings as an admin
//! types them, saving them (secrets sealed, never echoed, kept when left blank), and testing
//! the connection to the platform. Every save and test is audited without secrets.

use serde_json::json;

use super::{credentials_context, valid_time_zone, webhook_context, ServiceAccount, ServiceError};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::crypto;
use crate::integrations::deep_link;
use crate::platform::client::{Credentials, PlatformError};
use crate::platform::types::PaymentSearch;
use crate::refunds::rules;
use crate::store;
use crate::store::service_admin::{self as admin_store, ExtraSettingsRow, ServiceUpdate};
use crate::store::services::{self as service_store, NewServiceRow};
use crate::AppState;

/// A service's settings as typed into the form. Secrets left blank keep the saved ones.
#[derive(Debug, Clone, Default)]
pub struct SettingsForm {
    pub name: String,
    pub slug: String,
    pub time_zone: String,
    pub platform_url: String,
    /// `none`, `api_key` or `oauth2`.
    pub auth: String,
    pub api_key: String,
    pub client_id: String,
    pub client_secret: String,
    pub token_url: String,
    pub scopes: String,
    pub webhook_secret: String,
    pub remove_webhook_secret: bool,
    pub refund_approval_threshold: String,
    pub refund_case_reference_required: bool,
    pub refund_email_enabled: bool,
    pub refund_email_subject: String,
    pub refund_email_text: String,
    pub deep_link_template: String,
}

/// A field and what is wrong with it.
pub type Problem = (&'static str, String);

/// What the service holds now, for an edit.
pub struct Current {
    pub service: ServiceAccount,
    pub credentials: Option<Credentials>,
    pub has_webhook_secret: bool,
}

/// A change to one sealed value.
#[derive(Debug, Clone, PartialEq)]
enum Change<T> {
    Keep,
    Set(T),
    Remove,
}

/// Settings that passed every rule.
#[derive(Debug, Clone)]
struct Checked {
    name: String,
    slug: String,
    time_zone: String,
    platform_url: Option<String>,
    credentials: Change<Credentials>,
    webhook_secret: Change<String>,
    extra: ExtraSettingsRow,
}

/// The placeholders a payer email may use (see `refunds::submit::payer_mail`).
const EMAIL_PLACEHOLDERS: [&str; 3] = ["amount", "reference", "service"];

/// The slug rule, shared with `services::check`.
pub fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 40
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
}

/// A platform or token address: https, or http to this machine only (a sandbox, a test).
fn platform_address(raw: &str) -> bool {
    match url::Url::parse(raw) {
        Ok(u) if u.scheme() == "https" => u.host_str().is_some(),
        Ok(u) if u.scheme() == "http" => {
            matches!(u.host(), Some(url::Host::Domain("localhost")))
                || matches!(u.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
                || matches!(u.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        }
        _ => false,
    }
}

/// `((name))` placeholders in a payer email that paydesk does not fill.
fn unknown_email_placeholders(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(start) = rest.find("((") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("))") else {
            return None;
        };
        let name = &after[..end];
        if !EMAIL_PLACEHOLDERS.contains(&name) {
            return Some(name.chars().take(40).collect());
        }
        rest = &after[end + 2..];
    }
    None
}

/// A threshold as typed: blank for none, otherwise pounds and pence (0 asks for approval of
/// every refund).
fn parse_threshold(raw: &str) -> Result<Option<i64>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let zero = t.strip_prefix('£').unwrap_or(t);
    if matches!(zero, "0" | "0.0" | "0.00") {
        return Ok(Some(0));
    }
    rules::parse_amount(t).map(Some).map_err(|_| {
        "Enter the approval threshold in pounds and pence, like 100 or 250.50, or leave it blank"
            .to_string()
    })
}

fn check(form: &SettingsForm, current: Option<&Current>) -> Result<Checked, Vec<Problem>> {
    let mut problems: Vec<Problem> = Vec::new();
    let name = form.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        problems.push((
            "name",
            "Enter the service's name, at most 200 characters".into(),
        ));
    }
    let slug = form.slug.trim().to_string();
    if !valid_slug(&slug) {
        problems.push((
            "slug",
            "Enter a slug of 1 to 40 lower-case letters, digits and hyphens, like parking-permits"
                .into(),
        ));
    }
    let time_zone = form.time_zone.trim().to_string();
    if !valid_time_zone(&time_zone) {
        problems.push((
            "time_zone",
            "Enter a time zone by its IANA name, like Europe/London".into(),
        ));
    }
    let platform_url = Some(form.platform_url.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(u) = &platform_url {
        if u.len() > 500 || !platform_address(u) {
            problems.push((
                "platform_url",
                "Enter the platform's address starting with https://".into(),
            ));
        }
    }
    let current_credentials = current.and_then(|c| c.credentials.as_ref());
    let credentials = match form.auth.as_str() {
        "none" | "" => {
            if platform_url.is_some() {
                problems.push((
                    "auth",
                    "Choose how paydesk signs in to the platform: an API key or OAuth2".into(),
                ));
            }
            if current_credentials.is_some() {
                Change::Remove
            } else {
                Change::Keep
            }
        }
        "api_key" => {
            let key = form.api_key.trim();
            if key.is_empty() {
                match current_credentials {
                    Some(Credentials::ApiKey { .. }) => Change::Keep,
                    _ => {
                        problems.push(("api_key", "Enter the API key".into()));
                        Change::Keep
                    }
                }
            } else if key.len() > 500 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push((
                    "api_key",
                    "Enter the API key as the platform shows it, without spaces".into(),
                ));
                Change::Keep
            } else {
                Change::Set(Credentials::ApiKey {
                    api_key: key.to_string(),
                })
            }
        }
        "oauth2" => {
            let client_id = form.client_id.trim().to_string();
            let token_url = form.token_url.trim().to_string();
            if client_id.is_empty() || client_id.len() > 500 {
                problems.push(("client_id", "Enter the OAuth2 client id".into()));
            }
            if !platform_address(&token_url) || token_url.len() > 500 {
                problems.push((
                    "token_url",
                    "Enter the OAuth2 token address starting with https://".into(),
                ));
            }
            let secret = if form.client_secret.is_empty() {
                match current_credentials {
                    Some(Credentials::ClientCredentials { client_secret, .. }) => {
                        Some(client_secret.clone())
                    }
                    _ => {
                        problems.push(("client_secret", "Enter the OAuth2 client secret".into()));
                        None
                    }
                }
            } else if form.client_secret.len() > 500 {
                problems.push((
                    "client_secret",
                    "The client secret must be at most 500 characters".into(),
                ));
                None
            } else {
                Some(form.client_secret.clone())
            };
            let scopes: Vec<String> = form.scopes.split_whitespace().map(str::to_string).collect();
            match secret {
                Some(client_secret) => {
                    let new = Credentials::ClientCredentials {
                        client_id,
                        client_secret,
                        token_url,
                        scopes,
                    };
                    if current_credentials == Some(&new) {
                        Change::Keep
                    } else {
                        Change::Set(new)
                    }
                }
                None => Change::Keep,
            }
        }
        _ => {
            problems.push(("auth", "Choose how paydesk signs in to the platform".into()));
            Change::Keep
        }
    };
    if form.auth != "none" && !form.auth.is_empty() && platform_url.is_none() {
        problems.push((
            "platform_url",
            "Enter the platform's address, or choose no platform account".into(),
        ));
    }
    let webhook_secret = if form.remove_webhook_secret {
        Change::Remove
    } else if form.webhook_secret.is_empty() {
        Change::Keep
    } else {
        let s = form.webhook_secret.trim();
        if s.len() < 16 || s.len() > 200 {
            problems.push((
                "webhook_secret",
                "The webhook signing secret must be 16 to 200 characters".into(),
            ));
        }
        Change::Set(s.to_string())
    };
    let threshold = match parse_threshold(&form.refund_approval_threshold) {
        Ok(t) => t,
        Err(m) => {
            problems.push(("refund_approval_threshold", m));
            None
        }
    };
    let subject = form.refund_email_subject.trim();
    if subject.chars().count() > 200 || subject.contains(['\r', '\n']) {
        problems.push((
            "refund_email_subject",
            "The email subject must be one line of at most 200 characters".into(),
        ));
    } else if let Some(name) = unknown_email_placeholders(subject) {
        problems.push((
            "refund_email_subject",
            format!("The email subject uses (({name})), which paydesk does not fill: use ((amount)), ((reference)) or ((service))"),
        ));
    }
    let text = form.refund_email_text.trim();
    if text.chars().count() > 5_000 {
        problems.push((
            "refund_email_text",
            "The email text must be at most 5,000 characters".into(),
        ));
    } else if let Some(name) = unknown_email_placeholders(text) {
        problems.push((
            "refund_email_text",
            format!("The email text uses (({name})), which paydesk does not fill: use ((amount)), ((reference)) or ((service))"),
        ));
    }
    let deep_link = form.deep_link_template.trim();
    if !deep_link.is_empty() {
        if let Err(p) = deep_link::validate(deep_link) {
            problems.push(("deep_link_template", p.to_string()));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Checked {
        name,
        slug,
        time_zone,
        platform_url,
        credentials,
        webhook_secret,
        extra: ExtraSettingsRow {
            refund_approval_threshold: threshold,
            refund_case_reference_required: form.refund_case_reference_required,
            refund_email_enabled: form.refund_email_enabled,
            refund_email_subject: Some(subject.to_string()).filter(|s| !s.is_empty()),
            refund_email_text: Some(text.to_string()).filter(|s| !s.is_empty()),
            deep_link_template: Some(deep_link.to_string()).filter(|s| !s.is_empty()),
        },
    })
}

/// A new webhook signing secret: 32 random bytes, as `whsec_` and base64.
pub fn generate_webhook_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The form as a service's current settings fill it (secrets blank).
pub fn form_of(current: &Current, extra: &ExtraSettingsRow) -> SettingsForm {
    let s = &current.service;
    let mut f = SettingsForm {
        name: s.name.clone(),
        slug: s.slug.clone(),
        time_zone: s.time_zone.clone(),
        platform_url: s.platform_url.clone().unwrap_or_default(),
        auth: "none".into(),
        refund_approval_threshold: extra
            .refund_approval_threshold
            .map(|t| format!("{}.{:02}", t / 100, t % 100))
            .unwrap_or_default(),
        refund_case_reference_required: extra.refund_case_reference_required,
        refund_email_enabled: extra.refund_email_enabled,
        refund_email_subject: extra.refund_email_subject.clone().unwrap_or_default(),
        refund_email_text: extra.refund_email_text.clone().unwrap_or_default(),
        deep_link_template: extra.deep_link_template.clone().unwrap_or_default(),
        ..Default::default()
    };
    match &current.credentials {
        Some(Credentials::ApiKey { .. }) => f.auth = "api_key".into(),
        Some(Credentials::ClientCredentials {
            client_id,
            token_url,
            scopes,
            ..
        }) => {
            f.auth = "oauth2".into();
            f.client_id = client_id.clone();
            f.token_url = token_url.clone();
            f.scopes = scopes.join(" ");
        }
        None => {}
    }
    f
}

/// The service's settings as the edit page starts from: the account with its credentials
/// opened (to know what a blank secret keeps).
pub async fn current(state: &AppState, id: i64) -> Result<Option<Current>, ServiceError> {
    let Some(service) = super::by_id(&state.db, id).await? else {
        return Ok(None);
    };
    let credentials = service.credentials(&state.config)?;
    let has_webhook_secret = service.row.webhook_secret.is_some();
    Ok(Some(Current {
        service,
        credentials,
        has_webhook_secret,
    }))
}

/// The other settings (refunds, emails, deep link).
pub async fn extra(state: &AppState, id: i64) -> Result<ExtraSettingsRow, ServiceError> {
    Ok(admin_store::extra_settings(&state.db, id)
        .await?
        .unwrap_or_default())
}

/// What the audit log says about credentials: their kind, never a part of them.
fn credentials_kind(c: Option<&Credentials>) -> &'static str {
    match c {
        None => "none",
        Some(Credentials::ApiKey { .. }) => "api_key",
        Some(Credentials::ClientCredentials { .. }) => "oauth2",
    }
}

/// Create (`target` None) or change a service. `Ok(Err(problems))` when the settings are
/// not acceptable; nothing is saved then.
pub async fn save(
    state: &AppState,
    actor: Actor,
    ip: Option<String>,
    current: Option<&Current>,
    form: &SettingsForm,
) -> Result<Result<i64, Vec<Problem>>, ServiceError> {
    let checked = match check(form, current) {
        Ok(c) => c,
        Err(p) => return Ok(Err(p)),
    };
    let except = current.map(|c| c.service.id);
    if admin_store::slug_taken(&state.db, &checked.slug, except).await? {
        return Ok(Err(vec![(
            "slug",
            format!("Another service already has the slug {}", checked.slug),
        )]));
    }
    let now = state.clock.now();
    let key = state.config.platform_key();
    let mut tx = state.db.begin().await?;
    let (id, action) = match current {
        Some(c) => (c.service.id, "service_updated"),
        None => {
            let id = service_store::insert(
                &mut tx,
                &NewServiceRow {
                    slug: &checked.slug,
                    name: &checked.name,
                    time_zone: &checked.time_zone,
                    platform_url: None,
                    credentials: None,
                    webhook_secret: None,
                },
                store::to_micros(now),
            )
            .await?;
            (id, "service_created")
        }
    };
    // Sealed with the row's id, so a sealed value copied to another service does not open.
    let old_credentials = current.and_then(|c| c.service.row.credentials.clone());
    let old_secret = current.and_then(|c| c.service.row.webhook_secret.clone());
    let new_credentials: Option<Credentials> = match &checked.credentials {
        Change::Keep => current.and_then(|c| c.credentials.clone()),
        Change::Set(c) => Some(c.clone()),
        Change::Remove => None,
    };
    let sealed_credentials = match &checked.credentials {
        Change::Keep => old_credentials,
        Change::Set(c) => Some(crypto::seal(
            &key,
            &credentials_context(id),
            json!(c).to_string().as_bytes(),
        )),
        Change::Remove => None,
    };
    let sealed_secret = match &checked.webhook_secret {
        Change::Keep => old_secret,
        Change::Set(s) => Some(crypto::seal(&key, &webhook_context(id), s.as_bytes())),
        Change::Remove => None,
    };
    admin_store::update(
        &mut tx,
        id,
        &ServiceUpdate {
            slug: &checked.slug,
            name: &checked.name,
            time_zone: &checked.time_zone,
            platform_url: checked.platform_url.as_deref(),
            credentials: sealed_credentials.as_deref(),
            webhook_secret: sealed_secret.as_deref(),
            extra: &checked.extra,
        },
        store::to_micros(now),
    )
    .await?;
    let mut details = json!({
        "slug": checked.slug,
        "name": checked.name,
        "time_zone": checked.time_zone,
        "platform_url": checked.platform_url,
        "credentials_kind": credentials_kind(new_credentials.as_ref()),
        "credentials_changed": !matches!(checked.credentials, Change::Keep),
        "webhook_signing_changed": !matches!(checked.webhook_secret, Change::Keep),
        "webhook_signing_set": sealed_secret.is_some(),
        "refund_approval_threshold": checked.extra.refund_approval_threshold,
        "refund_case_reference_required": checked.extra.refund_case_reference_required,
        "refund_email_enabled": checked.extra.refund_email_enabled,
        "refund_email_wording_set": checked.extra.refund_email_subject.is_some() || checked.extra.refund_email_text.is_some(),
        "deep_link_template": checked.extra.deep_link_template,
    });
    if let Some(c) = current {
        details["previous_slug"] = json!(c.service.slug);
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, action, format!("service:{id}"))
            .from_ip(ip)
            .details(details),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(id))
}

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
}

impl ConnectionCheck {
    pub const ALL: [ConnectionCheck; 9] = [
        ConnectionCheck::Connected,
        ConnectionCheck::Refused,
        ConnectionCheck::Unreachable,
        ConnectionCheck::TimedOut,
        ConnectionCheck::Busy,
        ConnectionCheck::PlatformFault,
        ConnectionCheck::NotThePlatform,
        ConnectionCheck::NotConnected,
        ConnectionCheck::Unreadable,
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
    state: &AppState,
    actor: Actor,
    ip: Option<String>,
    service: &ServiceAccount,
) -> Result<ConnectionCheck, ServiceError> {
    let answer = match state.platforms.client(&state.config, service) {
        Err(ServiceError::NotConnected(_)) => (ConnectionCheck::NotConnected, None),
        Err(ServiceError::Sealed(_)) => (ConnectionCheck::Unreadable, None),
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
    audit::record(&state.db, state.clock.now(), event).await?;
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> SettingsForm {
        SettingsForm {
            name: "Parking permits".into(),
            slug: "parking".into(),
            time_zone: "Europe/London".into(),
            platform_url: "https://publicapi.payments.service.gov.uk".into(),
            auth: "api_key".into(),
            api_key: "api_test_0123456789".into(),
            webhook_secret: "0123456789abcdef".into(),
            refund_approval_threshold: "100".into(),
            deep_link_template: "https://crm.example.gov/cases/{case_ref}".into(),
            ..Default::default()
        }
    }

    fn fields(form: &SettingsForm) -> Vec<&'static str> {
        match check(form, None) {
            Ok(_) => vec![],
            Err(p) => p.into_iter().map(|(f, _)| f).collect(),
        }
    }

    #[test]
    fn a_complete_form_passes_and_each_bad_field_is_named() {
        assert_eq!(fields(&valid()), Vec::<&str>::new());
        let c = check(&valid(), None).unwrap();
        assert_eq!(c.extra.refund_approval_threshold, Some(10_000));
        let cases: Vec<(SettingsForm, &str)> = vec![
            (
                SettingsForm {
                    slug: "Parking Permits".into(),
                    ..valid()
                },
                "slug",
            ),
            (
                SettingsForm {
                    slug: "".into(),
                    ..valid()
                },
                "slug",
            ),
            (
                SettingsForm {
                    name: " ".into(),
                    ..valid()
                },
                "name",
            ),
            (
                SettingsForm {
                    time_zone: "London".into(),
                    ..valid()
                },
                "time_zone",
            ),
            (
                SettingsForm {
                    platform_url: "http://pay.example.gov".into(),
                    ..valid()
                },
                "platform_url",
            ),
            (
                SettingsForm {
                    api_key: "".into(),
                    ..valid()
                },
                "api_key",
            ),
            (
                SettingsForm {
                    webhook_secret: "short".into(),
                    ..valid()
                },
                "webhook_secret",
            ),
            (
                SettingsForm {
                    refund_approval_threshold: "-5".into(),
                    ..valid()
                },
                "refund_approval_threshold",
            ),
            (
                SettingsForm {
                    refund_approval_threshold: "1e3".into(),
                    ..valid()
                },
                "refund_approval_threshold",
            ),
            (
                SettingsForm {
                    deep_link_template: "http://crm.example.gov/{case_ref}".into(),
                    ..valid()
                },
                "deep_link_template",
            ),
            (
                SettingsForm {
                    deep_link_template: "https://crm.example.gov/{case}".into(),
                    ..valid()
                },
                "deep_link_template",
            ),
            (
                SettingsForm {
                    refund_email_text: "Hi ((name))".into(),
                    ..valid()
                },
                "refund_email_text",
            ),
            (
                SettingsForm {
                    refund_email_subject: "a\nBcc: x".into(),
                    ..valid()
                },
                "refund_email_subject",
            ),
            (
                SettingsForm {
                    auth: "oauth2".into(),
                    ..valid()
                },
                "client_id",
            ),
            (
                SettingsForm {
                    auth: "none".into(),
                    ..valid()
                },
                "auth",
            ),
        ];
        for (form, field) in cases {
            assert!(
                fields(&form).contains(&field),
                "{field}: {:?}",
                fields(&form)
            );
        }
    }

    #[test]
    fn loopback_http_is_allowed_for_sandboxes_only() {
        assert!(platform_address("http://127.0.0.1:9000"));
        assert!(platform_address("http://localhost:9000"));
        assert!(platform_address("https://pay.example.gov"));
        assert!(!platform_address("http://pay.example.gov"));
        assert!(!platform_address("ftp://127.0.0.1"));
    }

    #[test]
    fn thresholds() {
        assert_eq!(parse_threshold(""), Ok(None));
        assert_eq!(parse_threshold("0"), Ok(Some(0)));
        assert_eq!(parse_threshold("£250.50"), Ok(Some(25_050)));
        assert!(parse_threshold("ten").is_err());
        assert!(parse_threshold("1,000").is_err());
    }

    #[test]
    fn generated_secrets_are_long_and_differ() {
        let a = generate_webhook_secret();
        assert!(a.starts_with("whsec_") && a.len() > 40);
        assert_ne!(a, generate_webhook_secret());
    }
}
