//! CSV as spreadsheets read it, for every CSV paydesk writes (exports, the access review, the
//! audit log): RFC 4180 records (CRLF line ends, a field quoted when it holds a comma, a quote,
//! CR or LF, quotes doubled), and text cells that a spreadsheet could take for a formula
//! neutralised with a leading apostrophe.
//!
//! Only text that came from outside paydesk (a reference, a name, metadata…) is neutralised.
//! Money and counts are written by paydesk itself as plain numbers ("12.50", "-12.50"), so
//! they stay numeric in a spreadsheet, and a refund's minus sign is never mistaken for a
//! formula.

use std::borrow::Cow;

/// Characters that make a spreadsheet read a cell as a formula (or hide its start): `=`,
/// `+`, `-`, `@`, tab, CR, LF, and the full-width forms of the first four.
const FORMULA_STARTS: [char; 11] = [
    '=', '+', '-', '@', '\t', '\r', '\n', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// Whether a text cell needs neutralising.
pub fn looks_like_formula(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| FORMULA_STARTS.contains(&c))
}

/// A text cell a spreadsheet will not run: one that looks like a formula gets a leading
/// apostrophe.
pub fn neutralise(text: &str) -> Cow<'_, str> {
    if looks_like_formula(text) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

fn needs_quotes(text: &str) -> bool {
    text.bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
}

fn push_quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for b in text.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Append one text field (neutralised, then quoted as needed) to `out`.
pub fn push_text(out: &mut Vec<u8>, text: &str) {
    let neutral = neutralise(text);
    if needs_quotes(&neutral) {
        push_quoted(out, &neutral);
    } else {
        out.extend_from_slice(neutral.as_bytes());
    }
}

/// One text field as a string (neutralised, then quoted as needed).
pub fn field(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len() + 3);
    push_text(&mut out, text);
    String::from_utf8(out).unwrap_or_default()
}

/// Append a field paydesk wrote itself (a number, a date, a fixed word): never neutralised,
/// and quoted only if it somehow holds a separator.
pub fn push_plain(out: &mut Vec<u8>, text: &str) {
    if needs_quotes(text) {
        push_quoted(out, text);
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// Pence as pounds with two decimals and a leading minus when negative: 1250 → "12.50",
/// -5 → "-0.05". Integer arithmetic only, so the figures add up to the penny.
pub fn money(pence: i64) -> String {
    let mut out = Vec::with_capacity(8);
    push_money(&mut out, pence);
    String::from_utf8(out).unwrap_or_default()
}

/// Append pence as pounds (see `money`) without an intermediate string.
pub fn push_money(out: &mut Vec<u8>, pence: i64) {
    if pence < 0 {
        out.push(b'-');
    }
    let p = pence.unsigned_abs();
    push_digits(out, p / 100);
    let cents = (p % 100) as u8;
    out.extend_from_slice(&[b'.', b'0' + cents / 10, b'0' + cents % 10]);
}

/// Append an unsigned number's decimal digits.
pub fn push_digits(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

/// A record of fields written with a separator between them and CRLF at the end.
pub struct Record<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Record<'a> {
    pub fn start(out: &'a mut Vec<u8>) -> Record<'a> {
        Record { out, first: true }
    }

    fn sep(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    pub fn text(&mut self, v: &str) -> &mut Self {
        self.sep();
        push_text(self.out, v);
        self
    }

    pub fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        self.text(v.unwrap_or(""))
    }

    pub fn plain(&mut self, v: &str) -> &mut Self {
        self.sep();
        push_plain(self.out, v);
        self
    }

    pub fn money(&mut self, pence: i64) -> &mut Self {
        self.sep();
        push_money(self.out, pence);
        self
    }

    pub fn opt_money(&mut self, pence: Option<i64>) -> &mut Self {
        match pence {
            Some(p) => self.money(p),
            None => self.plain(""),
        }
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        self.sep();
        if v < 0 {
            self.out.push(b'-');
        }
        push_digits(self.out, v.unsigned_abs());
        self
    }

    pub fn end(&mut self) {
        self.out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> String {
        let mut out = Vec::new();
        push_text(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn quoting_follows_rfc_4180() {
        assert_eq!(one("plain"), "plain");
        assert_eq!(one(""), "");
        assert_eq!(one("a,b"), "\"a,b\"");
        assert_eq!(one("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(one("two\nlines"), "\"two\nlines\"");
        assert_eq!(one("cr\rhere"), "\"cr\rhere\"");
    }

    #[test]
    fn formula_starts_are_neutralised() {
        for payload in [
            "=1+1",
            "+1",
            "-1",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "\n=1",
            "\u{FF1D}1+1",
            "\u{FF0B}1",
            "\u{FF0D}1",
            "\u{FF20}x",
            "=HYPERLINK(\"http://evil\",\"x\")",
        ] {
            let cell = one(payload);
            let inner = cell.strip_prefix('"').unwrap_or(&cell);
            assert!(inner.starts_with('\''), "{payload:?} became {cell:?}");
        }
        // Only the start matters: the issue's own examples keep their text, quoted safely.
        assert_eq!(one("a\",=1+1"), "\"a\"\",=1+1\"");
        assert_eq!(one("a;=1"), "a;=1");
        assert_eq!(one("1-2"), "1-2");
    }

    #[test]
    fn money_is_exact() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(1250), "12.50");
        assert_eq!(money(-1250), "-12.50");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(100), "1.00");
        assert_eq!(money(123_456_789_01), "123456789.01");
        assert_eq!(money(i64::MIN), "-92233720368547758.08");
        assert_eq!(money(i64::MAX), "92233720368547758.07");
        let mut out = Vec::new();
        push_money(&mut out, -123_456);
        assert_eq!(out, b"-1234.56");
    }

    #[test]
    fn records_end_with_crlf_and_numbers_are_not_neutralised() {
        let mut out = Vec::new();
        Record::start(&mut out)
            .text("=cmd")
            .money(-500)
            .plain("2026-11-20")
            .int(3)
            .opt_money(None)
            .end();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "'=cmd,-5.00,2026-11-20,3,\r\n"
        );
    }
}
