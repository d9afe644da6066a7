//! Reading a bulk refund file, pure and strict: UTF-8 with or without a byte order mark,
//! comma or semicolon between fields (decided by the header row), RFC 4180 quoting (a quoted
//! field may hold the separator, a doubled quote or a line break), CRLF or LF line ends.
//! What cannot be read at all is a `FileProblem` naming the line; what is wrong with one row
//! is left to the dry run, which names the row.

/// The largest file accepted, in bytes (10,000 rows of a payment id, an amount, a reason and
/// a long comment fit in well under this).
pub const MAX_BYTES: usize = 5 * 1024 * 1024;

/// The most rows (after the header) one file may hold.
pub const MAX_ROWS: usize = 10_000;

/// The columns a file may have, as the header names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    PaymentId,
    Reference,
    Amount,
    Reason,
    Comment,
    CaseReference,
}

impl Column {
    pub const ALL: [Column; 6] = [
        Column::PaymentId,
        Column::Reference,
        Column::Amount,
        Column::Reason,
        Column::Comment,
        Column::CaseReference,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::PaymentId => "payment_id",
            Column::Reference => "reference",
            Column::Amount => "amount",
            Column::Reason => "reason",
            Column::Comment => "comment",
            Column::CaseReference => "case_reference",
        }
    }

    /// A header cell as a column: case, spaces, hyphens and underscores do not matter
    /// ("Payment ID", "payment-id" and "payment_id" are the same column).
    fn of_header(cell: &str) -> Option<Column> {
        let key: String = cell
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-'))
            .flat_map(char::to_lowercase)
            .collect();
        Column::ALL
            .into_iter()
            .find(|c| c.name().replace('_', "") == key)
    }
}

/// Why a file cannot be read at all. Nothing of it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileProblem {
    Empty,
    TooBig,
    NotText,
    OnlyHeader,
    TooManyRows,
    UnknownColumns(Vec<String>),
    RepeatedColumn(String),
    MissingColumns(Vec<&'static str>),
    NoPaymentColumn,
    UnclosedQuote { line: usize },
    StrayQuote { line: usize },
}

impl FileProblem {
    pub fn message(&self) -> String {
        match self {
            FileProblem::Empty => "The selected file is empty".into(),
            FileProblem::TooBig => format!(
                "The selected file must be smaller than {} MB",
                MAX_BYTES / (1024 * 1024)
            ),
            FileProblem::NotText => {
                "The selected file must be a CSV file saved as UTF-8 text".into()
            }
            FileProblem::OnlyHeader => {
                "The selected file has a header row but no refunds: add a row for each refund"
                    .into()
            }
            FileProblem::TooManyRows => format!(
                "The selected file must have {} rows or fewer: split it into smaller files",
                crate::money::thousands(MAX_ROWS as i64)
            ),
            FileProblem::UnknownColumns(names) => format!(
                "The header row has columns paydesk does not know: {}. Use only payment_id, reference, amount, reason, comment and case_reference",
                names.join(", ")
            ),
            FileProblem::RepeatedColumn(name) => {
                format!("The header row names the column {name} more than once")
            }
            FileProblem::MissingColumns(names) => format!(
                "The header row must have the column{} {}",
                if names.len() == 1 { "" } else { "s" },
                names.join(" and ")
            ),
            FileProblem::NoPaymentColumn => {
                "The header row must have a payment_id or a reference column".into()
            }
            FileProblem::UnclosedQuote { line } => format!(
                "Line {line} opens a quote (\") that is never closed"
            ),
            FileProblem::StrayQuote { line } => format!(
                "Line {line} has a quote (\") inside a field that is not quoted: put the whole field in quotes and double the quote"
            ),
        }
    }
}

/// One row as the file gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct InputRow {
    /// The row's number, counting the header as row 1 (as a spreadsheet numbers it).
    pub line: usize,
    pub payment_id: String,
    pub reference: String,
    pub amount: String,
    pub reason: String,
    pub comment: String,
    pub case_reference: String,
    /// How many fields the row had, when not as many as the header.
    pub field_count_mismatch: Option<(usize, usize)>,
}

impl InputRow {
    pub fn get(&self, c: Column) -> &str {
        match c {
            Column::PaymentId => &self.payment_id,
            Column::Reference => &self.reference,
            Column::Amount => &self.amount,
            Column::Reason => &self.reason,
            Column::Comment => &self.comment,
            Column::CaseReference => &self.case_reference,
        }
    }

    fn set(&mut self, c: Column, v: String) {
        match c {
            Column::PaymentId => self.payment_id = v,
            Column::Reference => self.reference = v,
            Column::Amount => self.amount = v,
            Column::Reason => self.reason = v,
            Column::Comment => self.comment = v,
            Column::CaseReference => self.case_reference = v,
        }
    }
}

/// A file read: its columns in order and its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkFile {
    pub columns: Vec<Column>,
    pub separator: u8,
    pub rows: Vec<InputRow>,
}

/// Read a file's bytes.
pub fn read(bytes: &[u8]) -> Result<BulkFile, FileProblem> {
    if bytes.len() > MAX_BYTES {
        return Err(FileProblem::TooBig);
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(FileProblem::Empty);
    }
    // A NUL or other control byte (tab, CR and LF aside) is never in a CSV typed or saved
    // by a spreadsheet: a binary file (a spreadsheet's own format, a PDF, an image).
    if bytes
        .iter()
        .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n'))
    {
        return Err(FileProblem::NotText);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| FileProblem::NotText)?;
    let separator = separator_of(text);
    let mut records = Records::new(text, separator);
    let header = match records.next() {
        Some(r) => r?,
        None => return Err(FileProblem::Empty),
    };
    let columns = columns_of(&header.1)?;
    let mut rows = Vec::new();
    for record in records {
        let (line, fields) = record?;
        // A blank line (often the last) is not a row.
        if fields.len() == 1 && fields[0].trim().is_empty() {
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Err(FileProblem::TooManyRows);
        }
        let mut row = InputRow {
            line,
            ..Default::default()
        };
        if fields.len() != columns.len() {
            row.field_count_mismatch = Some((fields.len(), columns.len()));
        }
        for (c, v) in columns.iter().zip(fields) {
            row.set(*c, v);
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(FileProblem::OnlyHeader);
    }
    Ok(BulkFile {
        columns,
        separator,
        rows,
    })
}

/// The separator the header row uses: a semicolon when it has one outside quotes and no
/// comma; otherwise a comma.
fn separator_of(text: &str) -> u8 {
    let mut quoted = false;
    let (mut commas, mut semicolons) = (0, 0);
    for b in text.bytes() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semicolons += 1,
            _ => {}
        }
    }
    if semicolons > 0 && commas == 0 {
        b';'
    } else {
        b','
    }
}

fn columns_of(header: &[String]) -> Result<Vec<Column>, FileProblem> {
    let mut columns = Vec::new();
    let mut unknown = Vec::new();
    for cell in header {
        match Column::of_header(cell) {
            Some(c) if columns.contains(&c) => {
                return Err(FileProblem::RepeatedColumn(c.name().into()))
            }
            Some(c) => columns.push(c),
            None => unknown.push(if cell.trim().is_empty() {
                "(a column without a name)".to_string()
            } else {
                cell.trim().chars().take(40).collect()
            }),
        }
    }
    if !unknown.is_empty() {
        return Err(FileProblem::UnknownColumns(unknown));
    }
    let missing: Vec<&'static str> = [Column::Amount, Column::Reason]
        .into_iter()
        .filter(|c| !columns.contains(c))
        .map(Column::name)
        .collect();
    if !missing.is_empty() {
        return Err(FileProblem::MissingColumns(missing));
    }
    if !columns.contains(&Column::PaymentId) && !columns.contains(&Column::Reference) {
        return Err(FileProblem::NoPaymentColumn);
    }
    Ok(columns)
}

/// The records of a CSV text, each with the line it starts on.
struct Records<'a> {
    text: &'a str,
    at: usize,
    line: usize,
    separator: u8,
}

impl<'a> Records<'a> {
    fn new(text: &'a str, separator: u8) -> Records<'a> {
        Records {
            text,
            at: 0,
            line: 1,
            separator,
        }
    }

    fn record(&mut self) -> Result<(usize, Vec<String>), FileProblem> {
        let bytes = self.text.as_bytes();
        let start_line = self.line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut i = self.at;
        loop {
            // The start of a field.
            if i < bytes.len() && bytes[i] == b'"' {
                i += 1;
                loop {
                    let Some(rel) = self.text[i..].find('"') else {
                        return Err(FileProblem::UnclosedQuote { line: start_line });
                    };
                    let chunk = &self.text[i..i + rel];
                    self.line += chunk.matches('\n').count();
                    field.push_str(chunk);
                    i += rel + 1;
                    if i < bytes.len() && bytes[i] == b'"' {
                        field.push('"');
                        i += 1;
                    } else {
                        break;
                    }
                }
                // After the closing quote: a separator, a line end or the end.
                if i < bytes.len()
                    && bytes[i] != self.separator
                    && bytes[i] != b'\n'
                    && bytes[i] != b'\r'
                {
                    return Err(FileProblem::StrayQuote { line: self.line });
                }
            } else {
                let end = bytes[i..]
                    .iter()
                    .position(|&b| b == self.separator || b == b'\n' || b == b'\r')
                    .map_or(bytes.len(), |p| i + p);
                let raw = &self.text[i..end];
                if raw.contains('"') {
                    return Err(FileProblem::StrayQuote { line: self.line });
                }
                field.push_str(raw);
                i = end;
            }
            fields.push(std::mem::take(&mut field));
            if i >= bytes.len() {
                break;
            }
            match bytes[i] {
                b if b == self.separator => i += 1,
                b'\r' => {
                    i += 1;
                    if i < bytes.len() && bytes[i] == b'\n' {
                        i += 1;
                    }
                    self.line += 1;
                    break;
                }
                _ => {
                    i += 1;
                    self.line += 1;
                    break;
                }
            }
        }
        self.at = i;
        Ok((start_line, fields))
    }
}

impl Iterator for Records<'_> {
    type Item = Result<(usize, Vec<String>), FileProblem>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.text.len() {
            return None;
        }
        let r = self.record();
        if r.is_err() {
            // Nothing after a record that cannot be read is read.
            self.at = self.text.len();
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<InputRow> {
        read(text.as_bytes()).unwrap().rows
    }

    #[test]
    fn a_plain_file_is_read() {
        let f = read(b"payment_id,amount,reason\npay1,5.00,duplicate\npay2,full,fraud\n").unwrap();
        assert_eq!(
            f.columns,
            vec![Column::PaymentId, Column::Amount, Column::Reason]
        );
        assert_eq!(f.rows.len(), 2);
        assert_eq!(f.rows[0].line, 2);
        assert_eq!(f.rows[1].amount, "full");
    }

    #[test]
    fn a_bom_crlf_semicolons_and_quotes_are_read() {
        let text = "\u{FEFF}Payment ID;Amount;Reason;Comment\r\npay1;5.00;other;\"a; b, \"\"c\"\"\r\nd\"\r\npay2;1;duplicate;\r\n";
        let f = read(text.as_bytes()).unwrap();
        assert_eq!(f.separator, b';');
        assert_eq!(f.rows.len(), 2);
        assert_eq!(f.rows[0].payment_id, "pay1");
        assert_eq!(f.rows[0].comment, "a; b, \"c\"\r\nd");
        assert_eq!(f.rows[1].line, 4, "the quoted line break counts");
        assert_eq!(f.rows[1].comment, "");
    }

    #[test]
    fn quoted_commas_stay_in_their_field() {
        let r =
            rows("reference,amount,reason,comment\n\"REF,1\",\"1,000.00\",duplicate,\"x, y\"\n");
        assert_eq!(r[0].reference, "REF,1");
        assert_eq!(r[0].amount, "1,000.00");
        assert_eq!(r[0].comment, "x, y");
    }

    #[test]
    fn files_that_cannot_be_read_say_why() {
        let cases: Vec<(Vec<u8>, FileProblem)> = vec![
            (b"".to_vec(), FileProblem::Empty),
            (b"\xEF\xBB\xBF \r\n".to_vec(), FileProblem::Empty),
            (
                b"payment_id,amount,reason\r\n".to_vec(),
                FileProblem::OnlyHeader,
            ),
            (
                b"payment_id,amount,reason\n\n\n".to_vec(),
                FileProblem::OnlyHeader,
            ),
            (
                vec![0x50, 0x4B, 0x03, 0x04, 0x00, 0x00],
                FileProblem::NotText,
            ),
            (
                b"payment_id,amount,reason\npay\xff,1,fraud\n".to_vec(),
                FileProblem::NotText,
            ),
            (vec![b'a'; MAX_BYTES + 1], FileProblem::TooBig),
            (
                b"payment_id,amount,reason,colour\n".to_vec(),
                FileProblem::UnknownColumns(vec!["colour".into()]),
            ),
            (
                b"payment_id,reason\np,duplicate\n".to_vec(),
                FileProblem::MissingColumns(vec!["amount"]),
            ),
            (
                b"payment_id\np\n".to_vec(),
                FileProblem::MissingColumns(vec!["amount", "reason"]),
            ),
            (
                b"amount,reason\n1,fraud\n".to_vec(),
                FileProblem::NoPaymentColumn,
            ),
            (
                b"amount,reason,Amount\n".to_vec(),
                FileProblem::RepeatedColumn("amount".into()),
            ),
            (
                b"payment_id,amount,reason\n\"pay,1,fraud\n".to_vec(),
                FileProblem::UnclosedQuote { line: 2 },
            ),
            (
                b"payment_id,amount,reason\npay\"1,1,fraud\n".to_vec(),
                FileProblem::StrayQuote { line: 2 },
            ),
        ];
        for (bytes, problem) in cases {
            let got = read(&bytes).unwrap_err();
            assert_eq!(
                got,
                problem,
                "{:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
            );
            assert!(!got.message().is_empty());
        }
    }

    #[test]
    fn a_fifty_megabyte_file_is_refused_by_its_size() {
        let mut big = b"payment_id,amount,reason\n".to_vec();
        while big.len() < 50 * 1024 * 1024 {
            big.extend_from_slice(b"pay_0123456789abcdef,1.00,duplicate\n");
        }
        assert_eq!(read(&big), Err(FileProblem::TooBig));
        assert!(FileProblem::TooBig.message().contains("5 MB"));
    }

    #[test]
    fn ten_thousand_rows_are_read_and_one_more_is_refused() {
        let mut text = String::from("payment_id,amount,reason\n");
        for n in 0..MAX_ROWS {
            text.push_str(&format!("pay{n},1.00,duplicate\n"));
        }
        assert_eq!(read(text.as_bytes()).unwrap().rows.len(), MAX_ROWS);
        text.push_str("one-more,1.00,duplicate\n");
        assert_eq!(read(text.as_bytes()), Err(FileProblem::TooManyRows));
    }

    #[test]
    fn a_row_with_too_few_or_many_fields_is_marked() {
        let r = rows("payment_id,amount,reason\npay1,1\npay2,1,fraud,extra\n");
        assert_eq!(r[0].field_count_mismatch, Some((2, 3)));
        assert_eq!(r[1].field_count_mismatch, Some((4, 3)));
        assert_eq!(r[0].reason, "");
    }

    #[test]
    fn a_last_line_without_a_line_end_is_a_row() {
        let r = rows("payment_id,amount,reason\r\npay1,1,fraud");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].reason, "fraud");
    }
}
