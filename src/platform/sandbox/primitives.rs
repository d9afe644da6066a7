//! What every part of the sandbox counts in: sandbox time (milliseconds since the epoch, and
//! its conversions), the platform's 26-character ids, and a GET link. Kept apart from the
//! records (`data`) so that the records and what hangs off them (`disputes`) can share them.

use std::fmt;

use rand::Rng;
use time::{Date, OffsetDateTime};

use crate::platform::types::Link;

/// Sandbox time, in milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// A payment or refund id as the platform issues them: 26 characters of lower-case base32.
/// Held inline so a million of them need no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id([u8; 26]);

impl Id {
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Id {
        let mut bytes = [0u8; 26];
        for b in bytes.iter_mut() {
            *b = ALPHABET[rng.gen_range(0..ALPHABET.len())];
        }
        Id(bytes)
    }

    pub fn parse(s: &str) -> Option<Id> {
        let bytes: [u8; 26] = s.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| ALPHABET.contains(b))
            .then_some(Id(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from ALPHABET, so always ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.as_str())
    }
}

pub fn get_link(href: String) -> Link {
    Link {
        href,
        method: "GET".into(),
    }
}

pub fn to_time(ms: Millis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn from_time(t: OffsetDateTime) -> Millis {
    (t.unix_timestamp_nanos() / 1_000_000) as Millis
}

pub fn date_of(ms: Millis) -> Date {
    to_time(ms).date()
}

/// Midnight UTC at the start of `d`.
pub fn start_of(d: Date) -> Millis {
    from_time(d.midnight().assume_utc())
}
