//! Managing services (`services:manage`): the rules for a service's settings as an admin
//! types them, saving them (secrets sealed, never echoed, kept when left blank), and testing
//! the connection to the platform. Every save and test is audited without secrets.

use super::{valid_time_zone, ServiceAccount};
use crate::integrations::deep_link;
use crate::platform::client::Credentials;
use crate::platform::hosts::{AddressRefusal, PlatformHosts};
use crate::store::service_admin::ExtraSettingsRow;

mod save;

pub use super::connection::{test_connection, ConnectionCheck};
pub use save::{current, extra, save, Saved};

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
    /// Saved secrets removed because their address changed (not because they were replaced).
    cleared_by_move: bool,
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

/// `((name))` placeholders in a payer email that paydesk does not fill.
fn unknown_email_placeholders(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(start) = rest.find("((") {
        let after = &rest[start + 2..];
        let end = after.find("))")?;
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
    if raw.trim().is_empty() {
        return Ok(None);
    }
    crate::money::parse(raw).map(Some).map_err(|_| {
        format!(
            "Enter the approval threshold in pounds and pence, like 100 or 250.50, at most {}, or leave it blank",
            crate::money::pounds(crate::money::MAX_PENCE)
        )
    })
}

/// A refused platform or token address in words: `shape` when it is not an https address.
fn address_problem(refusal: AddressRefusal, shape: &str) -> String {
    match refusal {
        AddressRefusal::NotAUrl | AddressRefusal::NotHttps => shape.to_string(),
        other => other.to_string(),
    }
}

fn check(
    form: &SettingsForm,
    current: Option<&Current>,
    hosts: &PlatformHosts,
) -> Result<Checked, Vec<Problem>> {
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
        if u.len() > 500 {
            problems.push((
                "platform_url",
                "Enter the platform's address, at most 500 characters".into(),
            ));
        } else if let Err(refusal) = hosts.check(u) {
            problems.push((
                "platform_url",
                address_problem(
                    refusal,
                    "Enter the platform's address starting with https://",
                ),
            ));
        }
    }
    // Saved credentials stay with the address they were saved for: a new platform address
    // (or, for OAuth2, a new token address) keeps none of them, nor the webhook secret.
    let saved = current.and_then(|c| c.credentials.as_ref());
    let moved =
        current.is_some_and(|c| c.service.platform_url.as_deref() != platform_url.as_deref());
    let current_credentials = saved.filter(|_| !moved);
    let mut cleared_by_move = false;
    let credentials = match form.auth.as_str() {
        "none" | "" => {
            if platform_url.is_some() {
                problems.push((
                    "auth",
                    "Choose how paydesk signs in to the platform: an API key or OAuth2".into(),
                ));
            }
            if saved.is_some() {
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
                    _ if moved && saved.is_some() => {
                        cleared_by_move = true;
                        Change::Remove
                    }
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
            if token_url.len() > 500 {
                problems.push((
                    "token_url",
                    "Enter the OAuth2 token address, at most 500 characters".into(),
                ));
            } else if let Err(refusal) = hosts.check(&token_url) {
                problems.push((
                    "token_url",
                    address_problem(
                        refusal,
                        "Enter the OAuth2 token address starting with https://",
                    ),
                ));
            }
            // OAuth2 credentials saved for another platform or token address.
            let token_moved = matches!(saved, Some(Credentials::ClientCredentials { token_url: t, .. })
                if moved || *t != token_url);
            let mut remove = false;
            let secret = if form.client_secret.is_empty() {
                match current_credentials {
                    Some(Credentials::ClientCredentials {
                        client_secret,
                        token_url: saved_token_url,
                        ..
                    }) if *saved_token_url == token_url => Some(client_secret.clone()),
                    _ if token_moved && !problems.iter().any(|(f, _)| *f == "token_url") => {
                        // Saved for another address: removed, not sent to the new one.
                        remove = true;
                        None
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
                None if remove => {
                    cleared_by_move = true;
                    Change::Remove
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
    let had_webhook_secret = current.is_some_and(|c| c.has_webhook_secret);
    let webhook_secret = if form.remove_webhook_secret {
        Change::Remove
    } else if form.webhook_secret.is_empty() && moved && had_webhook_secret {
        cleared_by_move = true;
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
        cleared_by_move,
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
        match check(form, None, &PlatformHosts::default()) {
            Ok(_) => vec![],
            Err(p) => p.into_iter().map(|(f, _)| f).collect(),
        }
    }

    #[test]
    fn a_complete_form_passes_and_each_bad_field_is_named() {
        assert_eq!(fields(&valid()), Vec::<&str>::new());
        let c = check(&valid(), None, &PlatformHosts::default()).unwrap();
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
    fn platform_and_token_addresses_must_be_on_the_allowed_list() {
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            (
                "api_key",
                "https://publicapi.payments.service.gov.uk",
                "",
                None,
            ),
            ("api_key", "https://10.0.0.1", "", Some("platform_url")),
            (
                "api_key",
                "https://169.254.169.254",
                "",
                Some("platform_url"),
            ),
            (
                "api_key",
                "https://pay.example.gov",
                "",
                Some("platform_url"),
            ),
            ("api_key", "http://127.0.0.1:9000", "", Some("platform_url")),
            (
                "api_key",
                "https://a@publicapi.payments.service.gov.uk",
                "",
                Some("platform_url"),
            ),
            (
                "oauth2",
                "https://publicapi.payments.service.gov.uk",
                "https://publicapi.payments.service.gov.uk/oauth/token",
                None,
            ),
            (
                "oauth2",
                "https://publicapi.payments.service.gov.uk",
                "https://10.0.0.1/token",
                Some("token_url"),
            ),
        ];
        for (auth, url, token_url, field) in cases {
            let form = SettingsForm {
                auth: auth.to_string(),
                platform_url: url.to_string(),
                client_id: "client".into(),
                client_secret: "secret".into(),
                token_url: token_url.to_string(),
                ..valid()
            };
            let got = fields(&form);
            match field {
                None => assert!(got.is_empty(), "{url} {token_url}: {got:?}"),
                Some(f) => assert!(got.contains(f), "{url} {token_url}: {got:?}"),
            }
        }
        let sandbox = PlatformHosts::default().with_loopback();
        let form = SettingsForm {
            platform_url: "http://127.0.0.1:9000".into(),
            ..valid()
        };
        assert!(check(&form, None, &sandbox).is_ok());
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
