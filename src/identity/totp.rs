//! Time-based one-time codes (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), the form every
//! authenticator app understands. A code is accepted for the current step or one either side
//! (clock drift), and only for a step later than the last one used, so each code works once.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;

pub const STEP_SECONDS: i64 = 30;
pub const DIGITS: u32 = 6;
/// 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

/// A new random secret.
pub fn generate_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The time step a Unix time falls in.
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// HOTP (RFC 4226) for one counter value, with `digits` digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!(
        "{:0width$}",
        binary % 10u32.pow(digits),
        width = digits as usize
    )
}

/// The code for a time step.
pub fn code_for_step(secret: &[u8], step: i64) -> String {
    hotp(secret, step.max(0) as u64, DIGITS)
}

/// Check `code` at `unix_seconds`. Returns the step it matched, which the caller stores as the
/// last used step, or None. Spaces in the code are ignored; anything else that is not six
/// digits never matches.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_seconds: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_seconds);
    // Check every candidate, so timing does not tell which step matched.
    let mut matched = None;
    for step in [now - 1, now, now + 1] {
        let ok: bool = code_for_step(secret, step)
            .as_bytes()
            .ct_eq(code.as_bytes())
            .into();
        if ok && last_used_step.is_none_or(|last| step > last) {
            matched = Some(step);
        }
    }
    matched
}

/// RFC 4648 base32 without padding, as authenticator apps expect the key typed in.
pub fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u64, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decode base32 as people type it (any case, spaces ignored); None on a bad character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u64, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = match c.to_ascii_uppercase() {
            u @ 'A'..='Z' => u as u64 - 'A' as u64,
            d @ '2'..='7' => d as u64 - '2' as u64 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The key in groups of four, easier to read aloud and type.
pub fn grouped(base32: &str) -> String {
    base32
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `otpauth://` URI an authenticator app reads from a QR code.
pub fn provisioning_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        base32_encode(secret),
        enc(issuer)
    )
}

/// The sealing context of a person's TOTP secret.
pub fn totp_context(staff_id: i64) -> String {
    format!("staff:{staff_id}:totp")
}

pub fn pending_totp_context(staff_id: i64) -> String {
    format!("staff:{staff_id}:pending-totp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trip() {
        let secret = generate_secret();
        let typed = grouped(&base32_encode(&secret)).to_lowercase();
        assert_eq!(base32_decode(&typed), Some(secret));
        assert_eq!(base32_decode("JBSW Y3DP"), Some(b"Hello".to_vec()));
        assert_eq!(base32_decode("JBSW1"), None);
    }

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn matches_the_rfc_6238_test_vectors() {
        // RFC 6238 appendix B, SHA-1, 8 digits.
        for (time, expected) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(
                hotp(RFC_SECRET, step_at(time) as u64, 8),
                expected,
                "t = {time}"
            );
        }
        assert_eq!(code_for_step(RFC_SECRET, step_at(59)), "287082");
    }

    #[test]
    fn accepts_one_step_of_drift_and_each_code_once() {
        let t = 1_800_000_000;
        let now = step_at(t);
        let code = code_for_step(RFC_SECRET, now);
        assert_eq!(verify(RFC_SECRET, &code, t, None), Some(now));
        assert_eq!(
            verify(RFC_SECRET, &code, t, Some(now)),
            None,
            "a used code is refused"
        );
        assert_eq!(
            verify(
                RFC_SECRET,
                &code_for_step(RFC_SECRET, now - 1),
                t,
                Some(now - 2)
            ),
            Some(now - 1)
        );
        assert_eq!(
            verify(RFC_SECRET, &code_for_step(RFC_SECRET, now - 2), t, None),
            None,
            "too old"
        );
        assert_eq!(
            verify(RFC_SECRET, &code_for_step(RFC_SECRET, now + 1), t, None),
            Some(now + 1)
        );
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(verify(RFC_SECRET, &spaced, t, None), Some(now));
        for bad in ["", "12345", "1234567", "12a456", "١٢٣٤٥٦"] {
            assert_eq!(verify(RFC_SECRET, bad, t, None), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32_encode(b""), "");
        assert_eq!(base32_encode(b"f"), "MY");
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32_encode(RFC_SECRET),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(grouped("GEZDGNBVGY"), "GEZD GNBV GY");
        assert_eq!(generate_secret().len(), 20);
    }

    #[test]
    fn provisioning_uri_escapes_names() {
        let uri = provisioning_uri(RFC_SECRET, "paydesk Demo", "sam@council.example");
        assert_eq!(uri, "otpauth://totp/paydesk%20Demo:sam@council.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=paydesk%20Demo&algorithm=SHA1&digits=6&period=30");
    }
}
