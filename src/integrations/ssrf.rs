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
    #[error("The URL must not contain backslashes, spaces or control characters")]
    Unusual,
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
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || ip.is_documentation()
}

fn v6_refused(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    // An IPv4 address carried inside an IPv6 one is judged as the IPv4 address it reaches.
    if let Some(v4) = embedded_v4(ip) {
        return v4_refused(v4, allow_loopback);
    }
    if ip.is_loopback() {
        return !allow_loopback;
    }
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_multicast() // ff00::/8
        || (s[0] & 0xff00) == 0 // ::/8 reserved: IPv4-compatible ::/96 and the rest
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48
        || (s[0] == 0x64 && s[1] == 0xff9b) // any other NAT64 64:ff9b::/32 form
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments 2001::/23, Teredo 2001::/32
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
        || s[0] == 0x2002 // 6to4 2002::/16: reaches whatever IPv4 address it embeds
        || (s[0] & 0xfff0) == 0x3ff0 // documentation 3fff::/20
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
}

/// The IPv4 address an IPv6 address stands for, in the forms a host reaches directly as
/// that IPv4 address: IPv4-mapped `::ffff:0:0/96`, IPv4-translated `::ffff:0:0:0/96` and
/// the NAT64 well-known prefix `64:ff9b::/96`. (IPv4-compatible `::/96`, local-use NAT64,
/// 6to4 and Teredo are refused whole, whatever they embed.)
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let mapped = s[0..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff;
    let translated = s[0..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0;
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
    (mapped || translated || nat64).then(tail)
}

/// The Teredo client's IPv4 address (the last 32 bits, inverted), for the record: Teredo
/// addresses are refused whole.
#[cfg(test)]
fn teredo_client(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[0] == 0x2001 && s[1] == 0).then(|| {
        let bits = ((u32::from(s[6]) << 16) | u32::from(s[7])) ^ 0xffff_ffff;
        Ipv4Addr::from(bits)
    })
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
    // Parsers disagree about backslashes, spaces and control characters (the URL standard
    // drops tabs and newlines and reads `\` as `/`): such a URL is refused, so that what is
    // checked here is what any reader would connect to.
    if raw
        .chars()
        .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
    {
        return Err(Refusal::Unusual);
    }
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Refusal::NotHttps);
    }
    if !url.username().is_empty() || url.password().is_some() || has_userinfo(raw) {
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

/// Whether the authority part of `raw` (between `//` and the path) holds an `@`, even an
/// empty user name (`https://@host/`), which the parsed URL no longer shows.
fn has_userinfo(raw: &str) -> bool {
    let Some((_, rest)) = raw.split_once("//") else {
        return false;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest[..end].contains('@')
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

    /// Every address here must be refused, whichever way it is written.
    const REFUSED: &[(&str, &str)] = &[
        ("127.0.0.1", "loopback"),
        ("127.1.2.3", "loopback /8"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata, link-local"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "this network"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.255", "CGNAT"),
        ("192.0.0.8", "IETF assignments"),
        ("192.0.2.1", "documentation"),
        ("192.88.99.1", "6to4 relay"),
        ("198.18.0.1", "benchmarking"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("::1", "IPv6 loopback"),
        ("::", "IPv6 unspecified"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("fe80::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("100::1", "discard-only"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        // IPv4-mapped ::ffff:0:0/96
        ("::ffff:127.0.0.1", "mapped loopback"),
        ("::ffff:10.0.0.1", "mapped private"),
        ("::ffff:169.254.169.254", "mapped metadata"),
        ("::ffff:7f00:1", "mapped loopback, hex"),
        // IPv4-translated ::ffff:0:0:0/96
        ("::ffff:0:127.0.0.1", "translated loopback"),
        ("::ffff:0:7f00:1", "translated loopback, hex"),
        ("::ffff:0:a00:1", "translated private"),
        ("::ffff:0:a9fe:a9fe", "translated metadata"),
        // IPv4-compatible ::/96 (deprecated), whatever it embeds
        ("::127.0.0.1", "compatible loopback"),
        ("::7f00:1", "compatible loopback, hex"),
        ("::8.8.8.8", "compatible, public"),
        // NAT64 well-known prefix 64:ff9b::/96
        ("64:ff9b::7f00:1", "NAT64 loopback"),
        ("64:ff9b::127.0.0.1", "NAT64 loopback, dotted"),
        ("64:ff9b::a9fe:a9fe", "NAT64 metadata"),
        ("64:ff9b::c0a8:101", "NAT64 private"),
        // Local-use NAT64 64:ff9b:1::/48, whatever it embeds and wherever
        ("64:ff9b:1::7f00:1", "local-use NAT64 loopback"),
        ("64:ff9b:1::808:808", "local-use NAT64 public"),
        ("64:ff9b:1:7f00:1::", "local-use NAT64 /48 form"),
        ("64:ff9b:0:0:1::", "NAT64 prefix, not the /96 form"),
        // 6to4 2002::/16
        ("2002:7f00:1::", "6to4 loopback"),
        ("2002:a00:1::1", "6to4 private"),
        ("2002:a9fe:a9fe::1", "6to4 metadata"),
        ("2002:808:808::1", "6to4 public: refused whole"),
        // Teredo 2001::/32: client address is the last 32 bits inverted
        (
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "Teredo client 127.0.0.1",
        ),
        (
            "2001:0:4136:e378:8000:63bf:f5ff:fffe",
            "Teredo client 10.0.0.1",
        ),
        ("2001::1", "Teredo"),
        ("2001:2::1", "benchmarking, IETF /23"),
    ];

    const ALLOWED: &[&str] = &[
        "93.184.216.34",
        "100.128.0.1",
        "172.32.0.1",
        "8.8.8.8",
        "2606:4700::1111",
        "2a00:1450:4009:81f::200e",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "::ffff:0:808:808",
        "64:ff9b::808:808",
    ];

    #[test]
    fn private_and_reserved_addresses_are_refused_in_every_spelling() {
        for (bad, why) in REFUSED {
            let ip: IpAddr = bad.parse().unwrap_or_else(|_| panic!("{bad} parses"));
            assert!(refused(bad), "{bad} ({why}) should be refused");
            // And as a URL's host, written literally.
            let url = match ip {
                IpAddr::V4(_) => format!("https://{bad}/hook"),
                IpAddr::V6(_) => format!("https://[{bad}]/hook"),
            };
            assert!(
                matches!(check_url(&url, false), Err(Refusal::Forbidden(_))),
                "{url} ({why}) should be refused"
            );
            if !ip.is_loopback()
                && !matches!(ip, IpAddr::V6(v6) if embedded_v4(v6).is_some_and(|v| v.is_loopback()))
            {
                assert!(
                    check_ip(ip, true).is_err(),
                    "{bad} refused even with loopback on"
                );
            }
        }
        for good in ALLOWED {
            assert!(!refused(good), "{good} should be allowed");
        }
    }

    #[test]
    fn teredo_client_addresses_are_read_inverted() {
        assert_eq!(
            teredo_client("2001:0:4136:e378:8000:63bf:80ff:fffe".parse().unwrap()),
            Some(Ipv4Addr::new(127, 0, 0, 1))
        );
        assert_eq!(teredo_client("2002::1".parse().unwrap()), None);
    }

    #[test]
    fn userinfo_backslashes_and_hidden_characters_are_refused() {
        let cases: &[(&str, Refusal)] = &[
            ("https://8.8.8.8\\@127.0.0.1/", Refusal::Unusual),
            ("https://crm.example.gov.uk\\@127.0.0.1/", Refusal::Unusual),
            ("https://crm.example.gov.uk\\hook", Refusal::Unusual),
            ("https://crm.example.gov.uk/a\\b", Refusal::Unusual),
            ("https://crm.exa\tmple.gov.uk/", Refusal::Unusual),
            ("https://crm.example.gov.uk/\nhook", Refusal::Unusual),
            ("https://crm.example .gov.uk/", Refusal::NotAUrl),
            ("https://8.8.8.8@127.0.0.1/", Refusal::Credentials),
            ("https://user@crm.example.gov.uk/", Refusal::Credentials),
            ("https://:pw@crm.example.gov.uk/", Refusal::Credentials),
            ("https://@crm.example.gov.uk/", Refusal::Credentials),
            ("https://a:b@8.8.8.8/", Refusal::Credentials),
        ];
        for (url, want) in cases {
            assert_eq!(check_url(url, false).as_ref().err(), Some(want), "{url}");
        }
        // An @ after the authority is only a path character.
        assert!(check_url("https://crm.example.gov.uk/people/@me", false).is_ok());
        assert!(check_url("https://crm.example.gov.uk/?to=a@b", false).is_ok());
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
