//! Money and counts as people read them: pence shown as pounds with thousands separators
//! (£1,234.56, -£12.50), and whole numbers grouped (1,234,567). The one formatter every page,
//! email and figure uses; CSV files keep their own plain numeric form (`csv::money`).

/// A whole number with thousands separators: 1,234,567 (and -1,234,567).
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Pence as pounds: £1,234.56 (and -£12.50).
pub fn pounds(pence: i64) -> String {
    let abs = pence.unsigned_abs();
    let sign = if pence < 0 { "-" } else { "" };
    // abs / 100 always fits an i64 (even for i64::MIN).
    format!("{sign}£{}.{:02}", thousands((abs / 100) as i64), abs % 100)
}

/// Pence as pounds, without the pence when there are none: £1,200 (for chart axes).
pub fn pounds_short(pence: i64) -> String {
    if pence % 100 == 0 {
        let sign = if pence < 0 { "-" } else { "" };
        format!("{sign}£{}", thousands((pence.unsigned_abs() / 100) as i64))
    } else {
        pounds(pence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pence_read_as_pounds_and_counts_are_grouped() {
        assert_eq!(pounds(0), "£0.00");
        assert_eq!(pounds(5), "£0.05");
        assert_eq!(pounds(123_456), "£1,234.56");
        assert_eq!(pounds(10_000_000_000), "£100,000,000.00");
        assert_eq!(pounds(-1_250), "-£12.50");
        assert_eq!(pounds(i64::MIN).chars().next(), Some('-'));
        assert_eq!(pounds(i64::MAX), "£92,233,720,368,547,758.07");
        assert_eq!(pounds_short(120_000), "£1,200");
        assert_eq!(pounds_short(150), "£1.50");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
    }
}
