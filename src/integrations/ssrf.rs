//! The guard that keeps event endpoints from pointing paydesk at itself or its neighbours
//! (server-side request forgery). A URL must be https and every address its host resolves to
//! must be a public one: no loopback, private (RFC 1918, fc00::/7), link-local (169.254/16,
//! fe80::/10, where cloud metadata lives), unspecified, multicast, broadcast, CGNAT
//! (100.64/10) or otherwise reserved address. The check runs when an endpoint is saved and
//! again before every delivery; the delivery then connects to the very address that was
//! checked, so a name that changes its answer in between (DNS rebinding) gains nothing.
//!
//! Tests (and only they, by explicit configuration) may allow loopback, and plain http to it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// The longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2000;

/// Why a URL or an address is refused, in words for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Enter a URL such as https://crm.example.gov.uk/paydesk/events")]
    NotAUrl,
    #[error("The URL must start with https://")]
    NotHttps,
    #[error("The URL must not contain a user name or password")]
    Credentials,
    #[error("The URL must be {MAX_URL_LEN} characters or fewer")]
    TooLong,
    #[error("The URL points at a private or reserved address ({0}); use a public address")]
    Forbidden(IpAddr),
    #[error("The URL's host name could not be found ({0})")]
    Unresolvable(String),
}

/// Whether `ip` may receive events. With `allow_loopback`, loopback addresses may (tests).
pub fn check_ip(ip: IpAddr, allow_loopback: bool) -> Result<(), Refusal> {
    let refused = match ip {
        IpAddr::V4(v4) => v4_refused(v4, allow_loopback),
        IpAddr::V6(v6) => v6_refused(v6, allow_loopback),
    };
    if refused {
        Err(Refusal::Forbidden(ip))
    } else {
        Ok(())
    }
}

fn v4_refused(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        return !allow_loopback;
    }
    ip.is_unspecified()
        || a == 0 // "this network"
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local() // 169.254/16
        || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64/10
        || ip.is_multicast() // 224/4
        || a >= 240 // reserved, and broadcast
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || ip.is_documentation()
}

fn v6_refused(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    // An IPv4 address carried in IPv6 (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96) is judged
    // as the IPv4 address it reaches.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_refused(v4, allow_loopback);
    }
    let s = ip.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return v4_refused(v4, allow_loopback);
    }
    if ip.is_loopback() {
        return !allow_loopback;
    }
    ip.is_unspecified()
        || ip.is_multicast() // ff00::/8
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] == 0 && s[1..6] == [0, 0, 0, 0, 0]) // IPv4-compatible and other ::/80
        || s[0] == 0x2002 // 6to4 embeds an IPv4 address that may be private
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
}

/// An endpoint URL that passed the checks that need no network: where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: Url,
    pub host: String,
    pub port: u16,
    /// The host is an address written in the URL: no name to resolve.
    pub literal: Option<IpAddr>,
}

/// Check an endpoint URL without the network: https (or http to a loopback address when
/// loopback is allowed), no credentials, a host, and a literal address that is allowed.
pub fn check_url(raw: &str, allow_loopback: bool) -> Result<Target, Refusal> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LEN {
        return Err(Refusal::TooLong);
    }
    let url = Url::parse(raw).map_err(|_| Refusal::NotAUrl)?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Refusal::NotHttps);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    let (host, literal) = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => (d.to_string(), None),
        Some(Host::Ipv4(v4)) => (v4.to_string(), Some(IpAddr::V4(v4))),
        Some(Host::Ipv6(v6)) => (v6.to_string(), Some(IpAddr::V6(v6))),
        _ => return Err(Refusal::NotAUrl),
    };
    if let Some(ip) = literal {
        check_ip(ip, allow_loopback)?;
    }
    if url.scheme() == "http" {
        // Plain http only for a test's own loopback receiver.
        let loopback_literal = literal.is_some_and(|ip| ip.is_loopback());
        let loopback_name = host.eq_ignore_ascii_case("localhost");
        if !(allow_loopback && (loopback_literal || loopback_name)) {
            return Err(Refusal::NotHttps);
        }
    }
    let port = url.port_or_known_default().ok_or(Refusal::NotAUrl)?;
    Ok(Target {
        url,
        host,
        port,
        literal,
    })
}

/// Check a URL and resolve its host: every address the name has must be allowed (a name
/// with one private address among public ones is refused). Returns the address to connect
/// to.
pub async fn resolve(raw: &str, allow_loopback: bool) -> Result<(Target, SocketAddr), Refusal> {
    let target = check_url(raw, allow_loopback)?;
    if let Some(ip) = target.literal {
        return Ok((target.clone(), SocketAddr::new(ip, target.port)));
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|_| Refusal::Unresolvable(target.host.clone()))?
        .collect();
    let Some(first) = found.first().copied() else {
        return Err(Refusal::Unresolvable(target.host.clone()));
    };
    for addr in &found {
        check_ip(addr.ip(), allow_loopback)?;
    }
    Ok((target, first))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        check_ip(s.parse().unwrap(), false).is_err()
    }

    #[test]
    fn private_and_reserved_addresses_are_refused() {
        for bad in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(refused(bad), "{bad} should be refused");
        }
        for good in [
            "93.184.216.34",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "8.8.8.8",
        ] {
            assert!(!refused(good), "{good} should be allowed");
        }
    }

    #[test]
    fn loopback_only_when_allowed_and_never_private() {
        assert!(check_ip("127.0.0.1".parse().unwrap(), true).is_ok());
        assert!(check_ip("::1".parse().unwrap(), true).is_ok());
        assert!(check_ip("10.0.0.1".parse().unwrap(), true).is_err());
        assert!(check_ip("169.254.169.254".parse().unwrap(), true).is_err());
    }

    #[test]
    fn urls_must_be_https_without_credentials() {
        assert!(check_url("https://crm.example.gov.uk/hook", false).is_ok());
        assert_eq!(
            check_url("http://crm.example.gov.uk/hook", false),
            Err(Refusal::NotHttps)
        );
        assert_eq!(
            check_url("ftp://crm.example.gov.uk/", false),
            Err(Refusal::NotHttps)
        );
        assert_eq!(
            check_url("https://u:p@crm.example.gov.uk/", false),
            Err(Refusal::Credentials)
        );
        assert_eq!(check_url("not a url", false), Err(Refusal::NotAUrl));
        assert_eq!(check_url("", false), Err(Refusal::NotAUrl));
        assert!(matches!(
            check_url("https://127.0.0.1/", false),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            check_url("https://[::1]:8443/", false),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            check_url("https://169.254.169.254/latest", false),
            Err(Refusal::Forbidden(_))
        ));
        // Integer and hex spellings of an address are parsed as the address they are.
        assert!(matches!(
            check_url("https://2130706433/", false),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            check_url("https://0x7f.1/", false),
            Err(Refusal::Forbidden(_))
        ));
        assert_eq!(
            check_url(
                &format!("https://a.example/{}", "x".repeat(MAX_URL_LEN)),
                false
            ),
            Err(Refusal::TooLong)
        );
        // Tests may use plain http to loopback, and nothing else.
        assert!(check_url("http://127.0.0.1:8080/hook", true).is_ok());
        assert_eq!(
            check_url("http://10.0.0.1/hook", true),
            Err(Refusal::Forbidden("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            check_url("http://crm.example.gov.uk/", true),
            Err(Refusal::NotHttps)
        );
    }

    #[tokio::test]
    async fn names_are_judged_by_what_they_resolve_to() {
        assert!(matches!(
            resolve("https://localhost/hook", false).await,
            Err(Refusal::Forbidden(_))
        ));
        let (_, addr) = resolve("http://localhost:9/hook", true).await.unwrap();
        assert!(addr.ip().is_loopback());
    }
}
