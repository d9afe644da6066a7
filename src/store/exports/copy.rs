//! PostgreSQL's COPY text format read into export rows: fields split by tabs, `\N` for NULL,
//! backslash escapes undone, each field's text borrowed from the page where it has no escape.

use std::borrow::Cow;

use super::ExportRow;
use crate::store::StoreResult;

/// One line of PostgreSQL's COPY text format as an `ExportRow` (its fields in `ROW_FIELDS`
/// order): fields split by tabs, `\N` for NULL, and backslash escapes for backslash, tab,
/// newline and the other control characters.
pub(super) fn copy_row(line: &[u8]) -> StoreResult<ExportRow<'_>> {
    let bad =
        |what: &str| crate::store::StoreError::Invalid(format!("an export row from COPY: {what}"));
    let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
    let mut fields = line.split('\t').map(copy_field);
    let mut next = || fields.next().ok_or_else(|| bad("too few fields"));
    let int = |v: Option<Cow<'_, str>>| -> StoreResult<Option<i64>> {
        v.map(|t| {
            t.parse::<i64>()
                .map_err(|_| bad(&format!("not a number: {t}")))
        })
        .transpose()
    };
    fn required<'a>(v: Option<Cow<'a, str>>, name: &str) -> StoreResult<Cow<'a, str>> {
        v.ok_or_else(|| {
            crate::store::StoreError::Invalid(format!("an export row from COPY: no {name}"))
        })
    }
    let row = ExportRow {
        id: int(next()?)?.ok_or_else(|| bad("no id"))?,
        settled_date: next()?,
        created_at: int(next()?)?.ok_or_else(|| bad("no created_at"))?,
        payment_id: required(next()?, "payment_id")?,
        reference: required(next()?, "reference")?,
        description: required(next()?, "description")?,
        email: next()?,
        amount: int(next()?)?.ok_or_else(|| bad("no amount"))?,
        card_brand: next()?,
        cardholder_name: next()?,
        expiry_date: next()?,
        last_digits: next()?,
        status: required(next()?, "status")?,
        state_code: next()?,
        state_message: next()?,
        finished: matches!(next()?.as_deref(), Some("t" | "true" | "1")),
        provider_id: next()?,
        corporate_surcharge: int(next()?)?,
        total_amount: int(next()?)?,
        wallet_type: next()?,
        fee: int(next()?)?,
        card_type: next()?,
        payment_provider: next()?,
        case_reference: next()?,
        metadata: next()?,
        refund_id: next()?,
        refund_amount: int(next()?)?,
        refund_reason: next()?,
        requested_by: next()?,
        approved_by: next()?,
        dispute_id: next()?,
        dispute_status: next()?,
        dispute_amount: int(next()?)?,
        dispute_fee: int(next()?)?,
        dispute_reason: next()?,
        batch_id: int(next()?)?,
    };
    if fields.next().is_some() {
        return Err(bad("too many fields"));
    }
    Ok(row)
}

/// One field of a COPY text line: None for `\N`, else its text with escapes undone
/// (borrowed when it has none).
fn copy_field(raw: &str) -> Option<Cow<'_, str>> {
    if raw == "\\N" {
        return None;
    }
    if !raw.contains('\\') {
        return Some(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('v') => '\u{b}',
            Some(other) => other,
            None => '\\',
        });
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn copy_text_fields_are_unescaped_and_null_is_told_from_its_text() {
        assert_eq!(copy_field("\\N"), None);
        assert_eq!(copy_field("\\\\N").as_deref(), Some("\\N"));
        assert_eq!(
            copy_field("a\\tb\\nc\\rd\\\\e").as_deref(),
            Some("a\tb\nc\rd\\e")
        );
        assert!(matches!(copy_field("plain"), Some(Cow::Borrowed("plain"))));
        assert_eq!(copy_field("").as_deref(), Some(""));
        assert!(copy_row(&[0xff, 0xfe]).is_err());
    }

    pub(crate) fn line(fields: &[&str]) -> Vec<u8> {
        fields.join("\t").into_bytes()
    }

    pub(crate) const ROW: [&str; 36] = [
        "7",
        "2026-10-02",
        "1790000000000000",
        "pay-1",
        "REF\\t1",
        "A description",
        "\\N",
        "1250",
        "Visa",
        "\\N",
        "04/29",
        "4242",
        "success",
        "\\N",
        "\\N",
        "t",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
        "25",
        "debit",
        "sandbox",
        "CASE-1",
        "{\"a\":\"b\"}",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
        "\\N",
    ];

    #[test]
    fn a_copy_line_of_the_wrong_shape_is_an_error_not_a_row() {
        assert!(copy_row(&line(&ROW[..35])).is_err());
        let mut more = ROW.to_vec();
        more.push("extra");
        assert!(copy_row(&line(&more)).is_err());
        let mut not_number = ROW;
        not_number[7] = "12.50";
        assert!(copy_row(&line(&not_number)).is_err());
        let mut no_id = ROW;
        no_id[0] = "\\N";
        assert!(copy_row(&line(&no_id)).is_err());
    }
}
