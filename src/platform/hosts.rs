//! The hosts a service's platform address and OAuth2 token address may name: an allow-list a
//! platform admin sets in configuration (`PAYDESK_PLATFORM_HOSTS`), by default the GOV.UK Pay
//! API alone. A service admin cannot point paydesk (and its saved credentials) at another
//! host, nor use "Test connection" to find out what answers inside paydesk's network.
//! Loopback hosts are for the demo and tests only: the release profile refuses them.

use std::net::IpAddr;

use serde::Deserialize;
use url::{Host, Url};

/// The GOV.UK Pay API: the one host allowed when nothing else is configured.
pub const DEFAULT_HOST: &str = "publicapi.payments.service.gov.uk";

/// The setting as written: one string (hosts separated by commas or spaces) or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HostsSetting {
    Text(String),
    List(Vec<String>),
}

/// One allowed host, with its port when the entry named one (otherwise any port).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    host: Host<String>,
    port: Option<u16>,
}

impl Rule {
    fn parse(entry: &str) -> Result<Rule, String> {
        let entry = entry.trim();
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return Ok(Rule {
                host: match ip {
                    IpAddr::V4(v4) => Host::Ipv4(v4),
                    IpAddr::V6(v6) => Host::Ipv6(v6),
                },
                port: None,
            });
        }
        let bad = || {
            format!(
                "{entry:?} is not a host name, or a host and port (like {DEFAULT_HOST} or 127.0.0.1:9000)"
            )
        };
        if entry.is_empty() || entry.contains(['/', '@', '\\', '?', '#']) {
            return Err(bad());
        }
        let url = Url::parse(&format!("https://{entry}/")).map_err(|_| bad())?;
        let host = url.host().map(|h| h.to_owned()).ok_or_else(bad)?;
        Ok(Rule {
            host,
            port: url.port(),
        })
    }

    fn is_loopback(&self) -> bool {
        match &self.host {
            Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            Host::Ipv4(ip) => ip.is_loopback(),
            Host::Ipv6(ip) => ip.is_loopback(),
        }
    }

    fn allows(&self, url: &Url) -> bool {
        let host_matches = match (&self.host, url.host()) {
            (Host::Domain(a), Some(Host::Domain(b))) => a
                .trim_end_matches('.')
                .eq_ignore_ascii_case(b.trim_end_matches('.')),
            (Host::Ipv4(a), Some(Host::Ipv4(b))) => *a == b,
            (Host::Ipv6(a), Some(Host::Ipv6(b))) => *a == b,
            _ => false,
        };
        host_matches
            && self
                .port
                .is_none_or(|p| url.port_or_known_default() == Some(p))
    }

    fn show(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }
}

/// The allowed hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformHosts {
    rules: Vec<Rule>,
}

impl Default for PlatformHosts {
    fn default() -> PlatformHosts {
        PlatformHosts {
            rules: vec![Rule {
                host: Host::Domain(DEFAULT_HOST.into()),
                port: None,
            }],
        }
    }
}

/// Why a platform or token address may not be saved or called, in words for the admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefusal {
    #[error("Enter an address starting with https://, like https://{DEFAULT_HOST}")]
    NotAUrl,
    #[error("The address must start with https://")]
    NotHttps,
    #[error("The address must not contain a user name, a password, a backslash or spaces")]
    Unusual,
    #[error("paydesk may not call {host}: a platform admin allows only {allowed}")]
    NotAllowed { host: String, allowed: String },
}

impl PlatformHosts {
    /// The allow-list a setting describes; None for the default. `release` refuses loopback
    /// hosts, which are for the demo and tests.
    pub fn from_setting(
        setting: Option<&HostsSetting>,
        release: bool,
    ) -> Result<PlatformHosts, String> {
        let entries: Vec<String> = match setting {
            None => return Ok(PlatformHosts::default()),
            Some(HostsSetting::Text(t)) => t
                .split([',', ' ', '\n', '\t'])
                .filter(|e| !e.trim().is_empty())
                .map(str::to_string)
                .collect(),
            Some(HostsSetting::List(l)) => l.clone(),
        };
        let rules = entries
            .iter()
            .map(|e| Rule::parse(e))
            .collect::<Result<Vec<_>, _>>()?;
        if rules.is_empty() {
            return Err(format!(
                "name at least one host, such as {DEFAULT_HOST} (the default)"
            ));
        }
        if release {
            if let Some(r) = rules.iter().find(|r| r.is_loopback()) {
                return Err(format!(
                    "{} is a loopback host, allowed only for the demo and tests, not in the release profile",
                    r.show()
                ));
            }
        }
        Ok(PlatformHosts { rules })
    }

    /// The same list with this machine's loopback addresses added (the demo's sandbox).
    pub fn with_loopback(mut self) -> PlatformHosts {
        for host in [
            Host::Ipv4(std::net::Ipv4Addr::LOCALHOST),
            Host::Ipv6(std::net::Ipv6Addr::LOCALHOST),
            Host::Domain("localhost".to_string()),
        ] {
            let rule = Rule { host, port: None };
            if !self.rules.contains(&rule) {
                self.rules.push(rule);
            }
        }
        self
    }

    /// The hosts, for messages and the log.
    pub fn describe(&self) -> String {
        self.rules
            .iter()
            .map(Rule::show)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Check a platform or token address: a URL, https (or http to an allowed loopback host),
    /// no user name or password, and a host on the list.
    pub fn check(&self, raw: &str) -> Result<Url, AddressRefusal> {
        let raw = raw.trim();
        if raw
            .chars()
            .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
        {
            return Err(AddressRefusal::Unusual);
        }
        let url = Url::parse(raw).map_err(|_| AddressRefusal::NotAUrl)?;
        if !url.username().is_empty() || url.password().is_some() || authority_has_at(raw) {
            return Err(AddressRefusal::Unusual);
        }
        let host = url.host().ok_or(AddressRefusal::NotAUrl)?;
        let loopback = match &host {
            Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            Host::Ipv4(ip) => ip.is_loopback(),
            Host::Ipv6(ip) => ip.is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(AddressRefusal::NotHttps),
        }
        if !self.rules.iter().any(|r| r.allows(&url)) {
            return Err(AddressRefusal::NotAllowed {
                host: host.to_string(),
                allowed: self.describe(),
            });
        }
        Ok(url)
    }
}

/// Whether the part between `//` and the path holds an `@` (even `https://@host/`).
fn authority_has_at(raw: &str) -> bool {
    let Some((_, rest)) = raw.split_once("//") else {
        return false;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest[..end].contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(text: &str) -> PlatformHosts {
        PlatformHosts::from_setting(Some(&HostsSetting::Text(text.into())), false).unwrap()
    }

    fn allowed(list: &PlatformHosts, url: &str) -> bool {
        list.check(url).is_ok()
    }

    #[test]
    fn by_default_only_the_govuk_pay_api_is_allowed() {
        let list = PlatformHosts::from_setting(None, true).unwrap();
        let cases: &[(&str, bool)] = &[
            ("https://publicapi.payments.service.gov.uk", true),
            ("https://publicapi.payments.service.gov.uk/", true),
            ("https://PUBLICAPI.payments.service.gov.uk/v1", true),
            ("https://publicapi.payments.service.gov.uk./", true),
            ("https://publicapi.payments.service.gov.uk:8443/", true),
            ("http://publicapi.payments.service.gov.uk/", false),
            ("https://10.0.0.1", false),
            ("https://169.254.169.254/latest/meta-data", false),
            ("https://127.0.0.1:9000", false),
            ("http://127.0.0.1:9000", false),
            ("http://localhost:9000", false),
            ("https://[::1]/", false),
            ("https://[::ffff:169.254.169.254]/", false),
            ("https://pay.example.gov", false),
            (
                "https://publicapi.payments.service.gov.uk.evil.example/",
                false,
            ),
            ("https://evilpublicapi.payments.service.gov.uk/", false),
            ("https://payments.service.gov.uk/", false),
            ("https://publicapi.payments.service.gov.uk@10.0.0.1/", false),
            ("https://x@publicapi.payments.service.gov.uk/", false),
            (
                "https://10.0.0.1\\@publicapi.payments.service.gov.uk/",
                false,
            ),
            (
                "https://publicapi.payments.service.gov.uk\\@10.0.0.1/",
                false,
            ),
            ("ftp://publicapi.payments.service.gov.uk/", false),
            ("publicapi.payments.service.gov.uk", false),
            ("", false),
        ];
        for (url, want) in cases {
            assert_eq!(allowed(&list, url), *want, "{url}");
        }
        assert!(matches!(
            list.check("https://10.0.0.1"),
            Err(AddressRefusal::NotAllowed { .. })
        ));
    }

    #[test]
    fn configured_hosts_with_and_without_ports() {
        let list = hosts("pay.example.gov, 127.0.0.1 [::1] sandbox.example.gov:8443");
        let cases: &[(&str, bool)] = &[
            ("https://pay.example.gov/", true),
            ("https://pay.example.gov:444/", true),
            ("http://127.0.0.1:9000/", true),
            ("https://127.0.0.1/", true),
            ("http://[::1]:9000/", true),
            ("http://localhost:9000/", false),
            ("https://sandbox.example.gov:8443/", true),
            ("https://sandbox.example.gov/", false),
            ("https://127.0.0.2/", false),
            ("https://publicapi.payments.service.gov.uk/", false),
            ("http://pay.example.gov/", false),
        ];
        for (url, want) in cases {
            assert_eq!(allowed(&list, url), *want, "{url}");
        }
        let demo = PlatformHosts::default().with_loopback();
        assert!(allowed(&demo, "http://127.0.0.1:7001"));
        assert!(allowed(&demo, "http://localhost:7001"));
        assert!(allowed(&demo, "https://publicapi.payments.service.gov.uk"));
        assert!(!allowed(&demo, "https://10.0.0.1"));
    }

    #[test]
    fn the_setting_is_checked() {
        let list = PlatformHosts::from_setting(
            Some(&HostsSetting::List(vec![
                "a.example".into(),
                "b.example".into(),
            ])),
            true,
        )
        .unwrap();
        assert_eq!(list.describe(), "a.example, b.example");
        for bad in [
            "",
            " , ",
            "https://a.example",
            "a.example/path",
            "u@a.example",
            "a b\\c",
        ] {
            assert!(
                PlatformHosts::from_setting(Some(&HostsSetting::Text(bad.into())), false).is_err(),
                "{bad:?}"
            );
        }
        for loopback in ["127.0.0.1", "localhost", "[::1]", "127.0.0.1:9000", "::1"] {
            let setting = HostsSetting::Text(format!("{DEFAULT_HOST} {loopback}"));
            assert!(
                PlatformHosts::from_setting(Some(&setting), true).is_err(),
                "{loopback} refused in release"
            );
            assert!(PlatformHosts::from_setting(Some(&setting), false).is_ok());
        }
    }
}
