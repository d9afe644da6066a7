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
/// `+`, `-`, `@`, tab, the full-width forms of the first four, and `|` (a DDE call). A line
/// break (`is_line_break`) where a line's text should start counts too.
const FORMULA_STARTS: [char; 10] = [
    '=', '+', '-', '@', '\t', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}', '|',
];

/// Characters that start a new line for a spreadsheet or a tool reading the text: CR, LF,
/// vertical tab, form feed, next line (U+0085), and the line and paragraph separators
/// (U+2028, U+2029).
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\r' | '\n' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Whether the text holds a line break, decided from bytes without decoding: the ASCII ones,
/// U+0085 (C2 85) and U+2028/U+2029 (E2 80 A8/A9).
fn has_line_break(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| line_break_at(bytes, i, b))
}

fn line_break_at(bytes: &[u8], i: usize, b: u8) -> bool {
    match b {
        b'\r' | b'\n' | 0x0B | 0x0C => true,
        0x85 => i >= 1 && bytes[i - 1] == 0xC2,
        0xA8 | 0xA9 => i >= 2 && bytes[i - 2] == 0xE2 && bytes[i - 1] == 0x80,
        _ => false,
    }
}

/// Characters a spreadsheet may skip or trim before it decides a cell is a formula: spaces
/// (ordinary, no-break and the other Unicode spaces), zero-width spaces and joiners, the byte
/// order mark, bidi and format marks (left-to-right and right-to-left marks, embeddings,
/// overrides and isolates, the soft hyphen, invisible operators U+2061–U+2064), and `;` (a
/// separator in locales that use the comma for decimals, so `;=1` is a formula in a cell of
/// its own there).
fn hides_start(c: char) -> bool {
    (c.is_whitespace() && c != '\t' && !is_line_break(c))
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{AD}'
                | '\u{FEFF}'
                | ';'
        )
}

/// Whether one line of text starts a formula once what a spreadsheet skips is skipped.
fn line_starts_formula(line: &str) -> bool {
    for c in line.chars() {
        if FORMULA_STARTS.contains(&c) || is_line_break(c) {
            return true;
        }
        if !hides_start(c) {
            return false;
        }
    }
    false
}

/// The common case, decided from bytes without looking further: a cell that starts with a
/// letter or digit and holds no line break cannot start a formula anywhere.
fn plainly_safe(text: &str) -> bool {
    text.as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphanumeric)
        && !has_line_break(text.as_bytes())
}

/// The lines after the first (text after each line break; CRLF gives an empty line between).
fn later_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_line_break).skip(1)
}

/// Whether a text cell needs neutralising: its start, or the start of any line after an
/// embedded line break, reads as a formula.
pub fn looks_like_formula(text: &str) -> bool {
    !plainly_safe(text) && (line_starts_formula(text) || later_lines(text).any(line_starts_formula))
}

/// A text cell a spreadsheet will not run: a cell whose start looks like a formula gets a
/// leading apostrophe, and so does each line after an embedded line break that starts one
/// (`"note\n=1+1"` becomes `"note\n'=1+1"`), so that neither a spreadsheet nor a tool that
/// reads the file line by line sees a formula. Ordinary cells are returned as they are,
/// without allocating.
pub fn neutralise(text: &str) -> Cow<'_, str> {
    if !looks_like_formula(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 4);
    if line_starts_formula(text) {
        out.push('\'');
    }
    let mut rest = text;
    while let Some(at) = rest.find(is_line_break) {
        // Line breaks are 1 to 3 bytes long: step over the whole character.
        let next = rest[at..]
            .chars()
            .next()
            .map_or(at + 1, |c| at + c.len_utf8());
        out.push_str(&rest[..next]);
        rest = &rest[next..];
        if line_starts_formula(rest.split(is_line_break).next().unwrap_or("")) {
            out.push('\'');
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
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
    // The hot path of every export: one pass over the bytes decides both whether the cell
    // needs quotes and whether it holds a line break; a cell that starts with a letter or
    // digit and has no line break cannot start a formula and is copied as it is.
    let bytes = text.as_bytes();
    let (mut quote, mut line_break) = (false, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b',' | b'"' => quote = true,
            b'\r' | b'\n' => {
                quote = true;
                line_break = true;
            }
            _ if line_break_at(bytes, i, b) => line_break = true,
            _ => {}
        }
    }
    if !line_break && bytes.first().is_some_and(u8::is_ascii_alphanumeric) {
        if quote {
            push_quoted(out, text);
        } else {
            out.extend_from_slice(bytes);
        }
        return;
    }
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

    /// Table of cells and what they become, for the starts hidden behind spaces, the DDE bar,
    /// the semicolon and embedded line breaks.
    #[test]
    fn hidden_and_later_formulas_are_neutralised() {
        let table: &[(&str, &str)] = &[
            (" =1+1", "' =1+1"),
            ("   -2", "'   -2"),
            ("\u{A0}=1+1", "'\u{A0}=1+1"),
            ("\u{200B}=1+1", "'\u{200B}=1+1"),
            ("\u{200C}@SUM(A1)", "'\u{200C}@SUM(A1)"),
            ("\u{200D}+1", "'\u{200D}+1"),
            ("\u{FEFF}=1", "'\u{FEFF}=1"),
            ("\u{2060}=1", "'\u{2060}=1"),
            ("\u{3000}=1", "'\u{3000}=1"),
            (" \u{A0}\u{200B} =1", "' \u{A0}\u{200B} =1"),
            ("|calc", "'|calc"),
            (" |calc", "' |calc"),
            (";=1+1", "';=1+1"),
            (";;=1", "';;=1"),
            ("; +1", "'; +1"),
            ("; \u{A0}@x", "'; \u{A0}@x"),
            ("note\n=1+1", "\"note\n'=1+1\""),
            ("note\r=1+1", "\"note\r'=1+1\""),
            ("note\r\n=1+1", "\"note\r\n'=1+1\""),
            ("note\n =1+1", "\"note\n' =1+1\""),
            ("note\n\u{200B}@x", "\"note\n'\u{200B}@x\""),
            ("a\nb\n|c", "\"a\nb\n'|c\""),
            ("=a\n=b", "\"'=a\n'=b\""),
            ("a\n;=1", "\"a\n';=1\""),
            // Other line breaks start a line too: VT, FF, NEL, line and paragraph separators.
            ("note\u{2028}=1+1", "note\u{2028}'=1+1"),
            ("note\u{2029}@x", "note\u{2029}'@x"),
            ("note\u{85}+1", "note\u{85}'+1"),
            ("note\u{0B}-1", "note\u{0B}'-1"),
            ("note\u{0C}=1", "note\u{0C}'=1"),
            ("a\u{2028}b\u{2029} |c", "a\u{2028}b\u{2029}' |c"),
            ("\u{2028}=1", "'\u{2028}'=1"),
            ("note\n\u{2028}=1", "\"note\n\u{2028}'=1\""),
            // Bidi and format marks before the formula are skipped like spaces.
            ("\u{200E}=1+1", "'\u{200E}=1+1"),
            ("\u{200F}@SUM(A1)", "'\u{200F}@SUM(A1)"),
            ("\u{AD}-2", "'\u{AD}-2"),
            ("\u{2061}+1", "'\u{2061}+1"),
            ("\u{2062}=1", "'\u{2062}=1"),
            ("\u{2063}=1", "'\u{2063}=1"),
            ("\u{2064}|calc", "'\u{2064}|calc"),
            ("\u{202E}=1", "'\u{202E}=1"),
            ("\u{2066}=1", "'\u{2066}=1"),
            (" \u{200F}\u{AD} =1", "' \u{200F}\u{AD} =1"),
            ("note\n\u{200E}=1", "\"note\n'\u{200E}=1\""),
            ("note\u{2028}\u{200F}=1", "note\u{2028}'\u{200F}=1"),
            // Left alone: plain text, spaces before ordinary text, a semicolon or bar inside,
            // and later lines that do not start a formula.
            ("plain", "plain"),
            (" plain", " plain"),
            ("\u{A0}12", "\u{A0}12"),
            (";", ";"),
            ("; note", "; note"),
            ("a|b", "a|b"),
            ("two\nlines", "\"two\nlines\""),
            ("a\r\nb", "\"a\r\nb\""),
            ("a\n\nb", "\"a\n\nb\""),
            ("a\n", "\"a\n\""),
            ("café", "café"),
            ("(1)", "(1)"),
            ("a\u{2028}b", "a\u{2028}b"),
            ("a\u{0B}b\u{0C}c\u{85}d", "a\u{0B}b\u{0C}c\u{85}d"),
            ("\u{200E}plain", "\u{200E}plain"),
            ("\u{AD}12", "\u{AD}12"),
        ];
        for (cell, want) in table {
            assert_eq!(&one(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn ordinary_cells_are_borrowed() {
        for cell in [
            "Ada Lovelace",
            "ref-123",
            "12.50",
            "",
            " x",
            "(x)",
            "a\nb",
            "é=1",
            "café",
            "Ņ=1",
            "a\u{2028}b",
            "\u{200F}x",
        ] {
            assert!(
                matches!(neutralise(cell), Cow::Borrowed(_)),
                "{cell:?} was copied"
            );
        }
    }

    #[test]
    fn money_is_exact() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(1250), "12.50");
        assert_eq!(money(-1250), "-12.50");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(100), "1.00");
        assert_eq!(money(12_345_678_901), "123456789.01");
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
