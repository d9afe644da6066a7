//! Card numbers in free text, pure. paydesk never keeps a full card number (PAN): staff who
//! type one into a refund comment, a decision comment or a case reference are refused (as
//! GOV.UK Pay refuses a card number in a payment's reference, error P0105), and a number a
//! payer typed into text that arrives from the platform (reference, description, metadata
//! values, email, cardholder name) is masked to its first 6 and last 4 digits before it is
//! stored, so it never reaches pages, exports, logs, the audit log or the database files.
//!
//! Text is read as runs of digit groups. A digit is `0`–`9` or its full-width form
//! (`０`–`９`). Two groups belong to one run when at most two separator characters stand
//! between them: any Unicode whitespace (space, tab, no-break, thin and narrow no-break
//! spaces…), `-`, `–`, `—`, `.`, `/` or `_`. So `4012 8888 8888 1881`, `4012--8888--8888--1881`,
//! `4012–8888–8888–1881`, `4012/8888/8888/1881` and `４０１２８８８８８８８８１８８１` are all runs.
//!
//! A card number is a window of 13 to 19 digits inside a run that passes the Luhn check. The
//! windows examined start and end on group boundaries, so the card number in
//! `Order 12 4012 8888 8888 1881` or `4012-8888-8888-1881-2026` is found despite the digits
//! next to it. An unbroken string of digits is one group and is judged whole: 13 to 19 digits
//! passing Luhn is a card number; a longer unbroken string is an identifier, not searched
//! inside. Searching inside would flag most long numbers by chance (one window in ten passes
//! Luhn, and a 16-digit string has ten windows of 13 or more), refusing ordinary references
//! from staff and corrupting payers' references; a card number glued to other digits with no
//! separator is the price. Numbers with fewer than 13 digits are left alone.
//!
//! Each start has at most 7 window lengths and each window's Luhn sum comes from prefix sums
//! in constant time, so a scan is linear in the text (about n·7 checks); text with fewer than
//! 13 digits is decided without allocating.
//!
//! The masked form keeps a window's first 6 and last 4 digits (as ASCII digits), puts `*`
//! for the rest and drops the window's separators: `4012-8888-8888-1881` becomes
//! `401288******1881`, the form card numbers are shown in everywhere else (the platform's own
//! first 6 / last 4). Text and digits outside the window stay as they were
//! (`Order 12 4012 8888 8888 1881` becomes `Order 12 401288******1881`). Where card-number
//! windows overlap, a digit is hidden if any of them hides it, so none survives in full.

use std::borrow::Cow;
use std::ops::Range;

/// The fewest and most digits a card number has (ISO/IEC 7812).
const MIN_DIGITS: usize = 13;
const MAX_DIGITS: usize = 19;
/// The most separator characters between two groups of one run.
const MAX_SEPARATORS: usize = 2;

/// What staff are told when they type a card number.
pub const REFUSAL: &str =
    "Remove the card number: paydesk must not store card numbers, so do not type one here";

/// A digit's value: ASCII or full-width (U+FF10–U+FF19).
fn digit(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '\u{FF10}'..='\u{FF19}' => Some((u32::from(c) - 0xFF10) as u8),
        _ => None,
    }
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '\u{2013}' | '\u{2014}' | '.' | '/' | '_')
}

/// Whether the text has too few digits to hold a card number (no allocation).
fn too_few_digits(text: &str) -> bool {
    let mut n = 0;
    for c in text.chars() {
        if digit(c).is_some() {
            n += 1;
            if n >= MIN_DIGITS {
                return false;
            }
        }
    }
    true
}

/// A run of digit groups found in text. Its buffers are reused from run to run.
#[derive(Default)]
struct Run {
    /// Each digit's value.
    digits: Vec<u8>,
    /// Each digit's byte range in the text (full-width digits are 3 bytes).
    spans: Vec<Range<usize>>,
    /// The index (in `digits`) of each group's first digit.
    groups: Vec<usize>,
    /// Luhn prefix sums: `sums[p][i]` adds the first `i` digits, doubling those whose index
    /// has parity `p`.
    sums: [Vec<u32>; 2],
}

impl Run {
    fn push(&mut self, at: usize, c: char, d: u8) {
        self.digits.push(d);
        self.spans.push(at..at + c.len_utf8());
    }

    /// Reads the first run at or after byte `from` of `text`; false when there is none.
    fn read(&mut self, text: &str, from: usize) -> bool {
        self.digits.clear();
        self.spans.clear();
        self.groups.clear();
        let mut chars = text[from..].char_indices().peekable();
        loop {
            let Some((at, c)) = chars.next() else {
                return false;
            };
            if let Some(d) = digit(c) {
                self.groups.push(0);
                self.push(from + at, c, d);
                break;
            }
        }
        while let Some(&(at, c)) = chars.peek() {
            if let Some(d) = digit(c) {
                self.push(from + at, c, d);
                chars.next();
                continue;
            }
            // Up to MAX_SEPARATORS separators, then a digit, start the run's next group.
            let mut ahead = chars.clone();
            let mut seps = 0;
            let next = loop {
                match ahead.next() {
                    Some((_, s)) if seps < MAX_SEPARATORS && is_separator(s) => seps += 1,
                    Some((at, c)) if seps > 0 => break digit(c).map(|d| (at, c, d)),
                    _ => break None,
                }
            };
            let Some((at, c, d)) = next else { break };
            self.groups.push(self.digits.len());
            self.push(from + at, c, d);
            chars = ahead;
        }
        true
    }

    /// The byte just after the run's last digit.
    fn end(&self) -> usize {
        self.spans.last().map_or(0, |s| s.end)
    }

    fn settle_sums(&mut self) {
        for (p, sums) in self.sums.iter_mut().enumerate() {
            sums.clear();
            sums.push(0);
            let mut total = 0;
            for (i, &d) in self.digits.iter().enumerate() {
                total += if i % 2 == p { doubled(d) } else { u32::from(d) };
                sums.push(total);
            }
        }
    }

    /// Whether digits `a..b` pass the Luhn check (after `settle_sums`).
    fn luhn(&self, a: usize, b: usize) -> bool {
        // The last digit is not doubled, the one before it is, and so on: the doubled
        // digits are those whose index parity differs from the last one's.
        let sums = &self.sums[b % 2];
        (sums[b] - sums[a]).is_multiple_of(10)
    }

    /// Calls `visit` with each Luhn-valid candidate window `a..b` of digit indexes (see the
    /// module doc) until it returns true; true if it did.
    fn card_windows(&self, mut visit: impl FnMut(usize, usize) -> bool) -> bool {
        let n = self.digits.len();
        let g = &self.groups;
        let group_end = |k: usize| g.get(k + 1).copied().unwrap_or(n);
        // Windows that start and end on group boundaries.
        for (k, &a) in g.iter().enumerate() {
            for h in k..g.len() {
                let b = group_end(h);
                if b - a > MAX_DIGITS {
                    break;
                }
                if b - a >= MIN_DIGITS && self.luhn(a, b) && visit(a, b) {
                    return true;
                }
            }
        }
        false
    }
}

fn doubled(d: u8) -> u32 {
    let v = u32::from(d) * 2;
    if v > 9 {
        v - 9
    } else {
        v
    }
}

/// The Luhn check (ISO/IEC 7812-1) on a number's digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        sum += if i % 2 == 1 {
            doubled(*d)
        } else {
            u32::from(*d)
        };
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// Whether the text holds what could be a card number.
pub fn holds_card_number(text: &str) -> bool {
    if too_few_digits(text) {
        return false;
    }
    let mut run = Run::default();
    let mut from = 0;
    while run.read(text, from) {
        from = run.end();
        if run.digits.len() >= MIN_DIGITS {
            run.settle_sums();
            if run.card_windows(|_, _| true) {
                return true;
            }
        }
    }
    false
}

/// Staff-typed text: refused (with `REFUSAL`) when it holds a card number.
pub fn refuse_card_number(text: &str) -> Result<(), &'static str> {
    if holds_card_number(text) {
        Err(REFUSAL)
    } else {
        Ok(())
    }
}

/// Which digits of a run a mask covers, hides and joins, as difference counts over the
/// run's digit indexes (each window adds in constant time), then as running totals.
#[derive(Default)]
struct Marks {
    /// In some card-number window.
    covered: Vec<i32>,
    /// Replaced by `*` (past a window's first 6, before its last 4).
    hidden: Vec<i32>,
    /// The gap after digit `i` is inside a window, so its separators are dropped.
    joined: Vec<i32>,
}

impl Marks {
    fn reset(&mut self, n: usize) {
        for v in [&mut self.covered, &mut self.hidden, &mut self.joined] {
            v.clear();
            v.resize(n + 1, 0);
        }
    }

    fn add(&mut self, a: usize, b: usize) {
        self.covered[a] += 1;
        self.covered[b] -= 1;
        self.hidden[a + 6] += 1;
        self.hidden[b - 4] -= 1;
        self.joined[a] += 1;
        self.joined[b - 1] -= 1;
    }

    fn settle(&mut self) {
        for v in [&mut self.covered, &mut self.hidden, &mut self.joined] {
            let mut total = 0;
            for x in v.iter_mut() {
                total += *x;
                *x = total;
            }
        }
    }
}

/// Payer-typed text: each card number in it masked to its first 6 and last 4 digits
/// (`401288******1881`); anything else is returned as it is, without copying.
pub fn mask(text: &str) -> Cow<'_, str> {
    if too_few_digits(text) {
        return Cow::Borrowed(text);
    }
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut run = Run::default();
    let mut marks = Marks::default();
    let mut from = 0;
    while run.read(text, from) {
        from = run.end();
        let n = run.digits.len();
        if n < MIN_DIGITS {
            continue;
        }
        run.settle_sums();
        marks.reset(n);
        let mut found = false;
        run.card_windows(|a, b| {
            marks.add(a, b);
            found = true;
            false
        });
        if !found {
            continue;
        }
        marks.settle();
        let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
        out.push_str(&text[copied..run.spans[0].start]);
        for (i, span) in run.spans.iter().enumerate() {
            if marks.hidden[i] > 0 {
                out.push('*');
            } else if marks.covered[i] > 0 {
                out.push(char::from(b'0' + run.digits[i]));
            } else {
                out.push_str(&text[span.clone()]);
            }
            if let Some(next) = run.spans.get(i + 1) {
                if marks.joined[i] == 0 {
                    out.push_str(&text[span.end..next.start]);
                }
            }
        }
        copied = run.end();
    }
    match out {
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(text),
    }
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

    /// The prefix-sum check on every window agrees with the plain Luhn check.
    #[test]
    fn window_luhn_agrees_with_luhn() {
        let mut run = Run::default();
        for text in [
            "12401288888888188120261234567",
            "4111111111111111378282246310005",
            "９８７６５４３２１０１２３４５６７８９０",
        ] {
            assert!(run.read(text, 0));
            run.settle_sums();
            let n = run.digits.len();
            for a in 0..n {
                for b in a + 1..=n {
                    assert_eq!(
                        run.luhn(a, b),
                        luhn_valid(&run.digits[a..b]),
                        "{text:?} {a}..{b}"
                    );
                }
            }
        }
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

    /// Card numbers next to other digits, and split by other separators or written in
    /// full-width digits: all missed before.
    #[test]
    fn finds_card_numbers_beside_digits_and_behind_other_separators() {
        for text in [
            // Next to other digits.
            "Order 12 4012 8888 8888 1881",
            "Tel 07 4012-8888-8888-1881",
            "Tel 07 4012\u{2013}8888\u{2013}8888\u{2013}1881",
            "4012-8888-8888-1881-2026",
            "4012 8888 8888 1881 12 34",
            "9999999 4111111111111111 9999999",
            // Other separators.
            "4012--8888--8888--1881",
            "4012\u{2013}8888\u{2013}8888\u{2013}1881", // en dash
            "4012\u{2014}8888\u{2014}8888\u{2014}1881", // em dash
            "4012.8888.8888.1881",
            "4012/8888/8888/1881",
            "4012_8888_8888_1881",
            "4012  8888  8888  1881",
            "4012\t8888\t8888\t1881",
            "4012\n8888\n8888\n1881",
            "4012\u{2009}8888\u{2009}8888\u{2009}1881", // thin space
            "4012\u{202F}8888\u{202F}8888\u{202F}1881", // narrow no-break space
            "4012\u{3000}8888\u{3000}8888\u{3000}1881", // ideographic space
            "4012\u{2003}8888\u{2003}8888\u{2003}1881", // em space
            "4012. 8888 -8888 /1881",
            // Full-width digits, alone and mixed.
            "\u{FF14}\u{FF10}\u{FF11}\u{FF12}\u{FF18}\u{FF18}\u{FF18}\u{FF18}\u{FF18}\u{FF18}\u{FF18}\u{FF18}\u{FF11}\u{FF18}\u{FF18}\u{FF11}",
            "\u{FF14}\u{FF10}\u{FF11}\u{FF12} 8888 8888 1881",
        ] {
            assert!(holds_card_number(text), "{text:?}");
            assert_eq!(refuse_card_number(text), Err(REFUSAL), "{text:?}");
            assert!(matches!(mask(text), Cow::Owned(_)), "{text:?}");
        }
    }

    #[test]
    fn leaves_other_numbers_alone() {
        for text in [
            "",
            "CASE-42",
            "4111111111111113", // fails Luhn, and so does every window in it
            "411111111111",     // 12 digits
            "4012 - 8888 - 8888 - 1881", // three characters between groups split the run
            "4012,8888,8888,1881", // a comma is not a separator
            "4012:8888:8888:1881", // nor a colon
            "call 0123 456 7890 on Monday", // a phone number
            "2026-11-20 12:00",
            "\u{FF11}\u{FF12}\u{FF13}",
            // Unbroken strings are judged whole: these hold a Luhn-valid stretch inside but
            // are not card numbers themselves.
            "124012888888881881",
            "40128888888818810000",
            "12345678901234567890123",
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

    /// Only the card number's window is masked: digits and text around it stay as typed.
    #[test]
    fn masks_the_window_and_leaves_what_is_around_it() {
        let table = [
            (
                "Order 12 4012 8888 8888 1881",
                "Order 12 401288******1881",
            ),
            ("Tel 07 4012-8888-8888-1881", "Tel 07 401288******1881"),
            ("4012-8888-8888-1881-2026", "401288******1881-2026"),
            ("4012-8888-8888-1881 0000", "401288******1881 0000"),
            ("12 4012888888881881", "12 401288******1881"),
            ("4012--8888--8888--1881!", "401288******1881!"),
            (
                "x 4012\u{2013}8888\u{2014}8888\u{2009}1881 y",
                "x 401288******1881 y",
            ),
            ("4012.8888/8888_1881", "401288******1881"),
            ("4012\u{202F}8888\u{202F}8888\u{202F}1881", "401288******1881"),
            (
                "née \u{FF14}\u{FF10}\u{FF11}\u{FF12} \u{FF18}\u{FF18}\u{FF18}\u{FF18} \u{FF18}\u{FF18}\u{FF18}\u{FF18} \u{FF11}\u{FF18}\u{FF18}\u{FF11} ok",
                "née 401288******1881 ok",
            ),
            (
                "\u{FF11}\u{FF12} 4012888888881881 \u{FF19}",
                "\u{FF11}\u{FF12} 401288******1881 \u{FF19}",
            ),
            (
                "2026-11-20: 4111 1111 1111 1111, then 4012/8888/8888/1881",
                "2026-11-20: 411111******1111, then 401288******1881",
            ),
        ];
        for (text, want) in table {
            assert_eq!(mask(text), want, "{text:?}");
        }
    }

    /// Whatever overlaps, masking leaves no card number behind.
    #[test]
    fn masked_text_holds_no_card_number() {
        for text in [
            "Order 12 4012 8888 8888 1881",
            "4111 1111 1111 1111 1111 1111 1111",
            "4012888888881881401288888888188140128888888818814012888888881881",
            "4000000000000000006 4000000000000000006",
            "1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0",
            "00000000000000000000000000",
            "\u{FF14}\u{FF11}\u{FF11}\u{FF11}-1111-1111-1111-1111",
        ] {
            let masked = mask(text);
            assert!(!holds_card_number(&masked), "{text:?} became {masked:?}");
        }
    }

    /// Long digit-heavy text stays linear: every start has at most 7 window lengths.
    #[test]
    fn long_text_is_scanned() {
        let grouped = "12 ".repeat(2000);
        let unbroken = "7".repeat(6000);
        for text in [grouped.as_str(), unbroken.as_str()] {
            let masked = mask(text);
            assert!(!holds_card_number(&masked));
        }
        assert!(holds_card_number(&format!("{grouped}4111111111111111")));
    }

    #[test]
    fn masks_inside_json() {
        let v = json!({
            "note": "card 4012-8888-8888-1881",
            "n": 4111111111111111u64,
            "ok": 42,
            "list": ["4111111111111111", true],
            "4111111111111111": "key",
            "order": "Order 12 4012 8888 8888 1881"
        });
        let m = mask_json(&v);
        assert_eq!(m["note"], "card 401288******1881");
        assert_eq!(m["n"], "411111******1111");
        assert_eq!(m["ok"], 42);
        assert_eq!(m["list"][0], "411111******1111");
        assert_eq!(m["411111******1111"], "key");
        assert_eq!(m["order"], "Order 12 401288******1881");
        assert!(!m.to_string().contains("4111111111111111"));
    }
}
