//! Card numbers in free text, pure. paydesk never keeps a full card number (PAN): staff who
//! type one into a refund comment, a decision comment or a case reference are refused (as
//! GOV.UK Pay refuses a card number in a payment's reference, error P0105), and a number a
//! payer typed into text that arrives from the platform (reference, description, metadata
//! values, email, cardholder name) is masked to its first 6 and last 4 digits before it is
//! stored, so it never reaches pages, exports, logs, the audit log or the database files.
//!
//! A card number here is a run of 13 to 19 digits that passes the Luhn check, where the digits
//! may be separated by single spaces, no-break spaces or dashes (`4012 8888 8888 1881`,
//! `4012-8888-8888-1881`). A run is taken whole: longer runs of digits (more than 19) are not a
//! card number and are left as they are, so long numeric references are not cut up.
//!
//! The masked form drops the separators: `4012-8888-8888-1881` becomes `401288******1881`, the
//! form card numbers are shown in everywhere else (the platform's own first 6 / last 4).

use std::borrow::Cow;
use std::ops::Range;

/// The fewest and most digits a card number has (ISO/IEC 7812).
const MIN_DIGITS: usize = 13;
const MAX_DIGITS: usize = 19;

/// What staff are told when they type a card number.
pub const REFUSAL: &str =
    "Remove the card number: paydesk must not store card numbers, so do not type one here";

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '\u{A0}')
}

/// A run of digits found in text: its byte range and its digits.
struct Run {
    range: Range<usize>,
    digits: Vec<u8>,
}

/// Each maximal run of digits with single separators between them.
fn runs(text: &str) -> impl Iterator<Item = Run> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || loop {
        let (start, c) = chars.next()?;
        if !c.is_ascii_digit() {
            continue;
        }
        let mut digits = vec![c as u8 - b'0'];
        let mut end = start + 1;
        loop {
            match chars.peek().copied() {
                Some((at, d)) if d.is_ascii_digit() => {
                    digits.push(d as u8 - b'0');
                    end = at + 1;
                    chars.next();
                }
                Some((_, s)) if is_separator(s) => {
                    // A separator counts only between two digits.
                    let mut ahead = chars.clone();
                    ahead.next();
                    match ahead.peek() {
                        Some((_, d)) if d.is_ascii_digit() => {
                            chars.next();
                        }
                        _ => break,
                    }
                }
                _ => break,
            }
        }
        return Some(Run {
            range: start..end,
            digits,
        });
    })
}

/// The Luhn check (ISO/IEC 7812-1) on a number's digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

fn is_card(run: &Run) -> bool {
    (MIN_DIGITS..=MAX_DIGITS).contains(&run.digits.len()) && luhn_valid(&run.digits)
}

/// Whether the text holds what could be a card number.
pub fn holds_card_number(text: &str) -> bool {
    // Fast path: too few digits to hold one.
    if text.bytes().filter(u8::is_ascii_digit).count() < MIN_DIGITS {
        return false;
    }
    runs(text).any(|r| is_card(&r))
}

/// Staff-typed text: refused (with `REFUSAL`) when it holds a card number.
pub fn refuse_card_number(text: &str) -> Result<(), &'static str> {
    if holds_card_number(text) {
        Err(REFUSAL)
    } else {
        Ok(())
    }
}

/// Payer-typed text: each card number in it masked to its first 6 and last 4 digits
/// (`401288******1881`); anything else is returned as it is, without copying.
pub fn mask(text: &str) -> Cow<'_, str> {
    if !holds_card_number(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for run in runs(text).filter(is_card) {
        out.push_str(&text[at..run.range.start]);
        let n = run.digits.len();
        for (i, d) in run.digits.iter().enumerate() {
            if i < 6 || i >= n - 4 {
                out.push(char::from(b'0' + d));
            } else {
                out.push('*');
            }
        }
        at = run.range.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// `mask` for an optional value.
pub fn mask_opt(text: Option<String>) -> Option<String> {
    text.map(|t| match mask(&t) {
        Cow::Borrowed(_) => t,
        Cow::Owned(m) => m,
    })
}

/// A JSON value with every card number in it masked: strings, and numbers whose digits form
/// one (those become masked strings); keys and other values are kept.
pub fn mask_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(mask(s).into_owned()),
        Value::Number(n) => {
            let text = n.to_string();
            match mask(&text) {
                Cow::Owned(m) => Value::String(m),
                Cow::Borrowed(_) => value.clone(),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(mask_json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (mask(k).into_owned(), mask_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn luhn() {
        let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn_valid(&d("4012888888881881")));
        assert!(luhn_valid(&d("4111111111111111")));
        assert!(luhn_valid(&d("378282246310005")));
        assert!(!luhn_valid(&d("4012888888881882")));
        assert!(!luhn_valid(&[]));
    }

    #[test]
    fn finds_card_numbers_as_staff_type_them() {
        for text in [
            "4012888888881881",
            "4012-8888-8888-1881",
            "4012 8888 8888 1881",
            "4012\u{A0}8888\u{A0}8888\u{A0}1881",
            "card 4012-8888-8888-1881 refunded",
            "INV4012888888881881",
            "Amex 3782 822463 10005",
            "4222222222222",       // 13 digits
            "6011000990139424",    // 16, Discover
            "6759649826438453",    // Maestro
            "4000000000000000006", // 19
            "first 1234 then 4111 1111 1111 1111",
        ] {
            assert!(holds_card_number(text), "{text:?}");
            assert_eq!(refuse_card_number(text), Err(REFUSAL), "{text:?}");
        }
    }

    #[test]
    fn leaves_other_numbers_alone() {
        for text in [
            "",
            "CASE-42",
            "4012888888881882",             // fails Luhn
            "401288888888188",              // 15 digits, fails Luhn
            "411111111111",                 // 12 digits
            "40128888888818810000",         // 20 digits: not a card
            "4012--8888-8888-1881",         // double separator splits the run
            "4012/8888/8888/1881",          // other separators split it
            "call 0123 456 7890 on Monday", // a phone number
            "2026-11-20 12:00",
        ] {
            assert!(!holds_card_number(text), "{text:?}");
            assert_eq!(refuse_card_number(text), Ok(()));
            assert!(matches!(mask(text), Cow::Borrowed(_)), "{text:?}");
        }
    }

    #[test]
    fn masks_to_first_six_and_last_four() {
        let table = [
            ("4012888888881881", "401288******1881"),
            ("4012-8888-8888-1881", "401288******1881"),
            ("ref 4012 8888 8888 1881.", "ref 401288******1881."),
            ("4222222222222", "422222***2222"),
            ("4000000000000000006", "400000*********0006"),
            (
                "a 4111111111111111 b 4012-8888-8888-1881 c",
                "a 411111******1111 b 401288******1881 c",
            ),
            ("née 4111111111111111", "née 411111******1111"),
        ];
        for (text, want) in table {
            assert_eq!(mask(text), want, "{text:?}");
        }
        assert_eq!(
            mask_opt(Some("4111111111111111".into())).as_deref(),
            Some("411111******1111")
        );
        assert_eq!(mask_opt(None), None);
    }

    #[test]
    fn masks_inside_json() {
        let v = json!({
            "note": "card 4012-8888-8888-1881",
            "n": 4111111111111111u64,
            "ok": 42,
            "list": ["4111111111111111", true],
            "4111111111111111": "key"
        });
        let m = mask_json(&v);
        assert_eq!(m["note"], "card 401288******1881");
        assert_eq!(m["n"], "411111******1111");
        assert_eq!(m["ok"], 42);
        assert_eq!(m["list"][0], "411111******1111");
        assert_eq!(m["411111******1111"], "key");
        assert!(!m.to_string().contains("4111111111111111"));
    }
}
