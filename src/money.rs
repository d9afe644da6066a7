//! Money and counts as people read them: pence shown as pounds with thousands separators
//! (£1,234.56, -£12.50), and whole numbers grouped (1,234,567). The one formatter every page,
//! email and figure uses; CSV files keep their own plain numeric form (`csv::money`). And
//! the one parser of money a person types (a refund, a search filter, a service's threshold,
//! a row of a bulk file), with the one limit: the platform's 10,000,000 pence.

/// The most any amount may be, in pence: the platform's own limit on a payment or a refund
/// (£100,000.00). Nothing a person types above it is read as an amount.
pub const MAX_PENCE: i64 = 10_000_000;

/// Why typed money could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Nothing was typed.
    Missing,
    /// Not pounds and pence: letters, a sign, three decimals, thousands separators, ...
    NotAnAmount,
    /// Pounds and pence, but more than `MAX_PENCE`.
    TooMuch,
}

/// Money as a person types it, in pence: "5", "£5", "12.5", "12.50", " 7.00 ". The strictest
/// rule, the same everywhere: digits, an optional leading £, an optional point with one or
/// two digits of pence; no sign, no exponent, no spaces inside, no thousands separators
/// ("1,234.50" is refused, so a comma can never be misread as a decimal point); at most
/// `MAX_PENCE`. Zero reads as 0: whether zero is allowed is the caller's rule.
pub fn parse(raw: &str) -> Result<i64, Unreadable> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(Unreadable::Missing);
    }
    let t = t.strip_prefix('£').unwrap_or(t);
    let (whole, pence) = match t.split_once('.') {
        Some((w, p)) => (w, Some(p)),
        None => (t, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // More than eight digits of pounds cannot be an amount at all (and cannot overflow).
    if !digits(whole) || whole.len() > 8 {
        return Err(Unreadable::NotAnAmount);
    }
    let pence = match pence {
        None => 0,
        Some(p) if p.len() <= 2 && digits(p) => {
            let n: i64 = p.parse().map_err(|_| Unreadable::NotAnAmount)?;
            if p.len() == 1 {
                n * 10
            } else {
                n
            }
        }
        Some(_) => return Err(Unreadable::NotAnAmount),
    };
    let whole: i64 = whole.parse().map_err(|_| Unreadable::NotAnAmount)?;
    let amount = whole * 100 + pence;
    if amount > MAX_PENCE {
        return Err(Unreadable::TooMuch);
    }
    Ok(amount)
}

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

    #[test]
    fn typed_money_is_read_exactly_or_refused() {
        assert_eq!(parse("5"), Ok(500));
        assert_eq!(parse("£5"), Ok(500));
        assert_eq!(parse("12.5"), Ok(1250));
        assert_eq!(parse("12.50"), Ok(1250));
        assert_eq!(parse(" 7.00 "), Ok(700));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("0.01"), Ok(1));
        assert_eq!(parse("100000"), Ok(MAX_PENCE));
        assert_eq!(parse("100000.00"), Ok(MAX_PENCE));
        assert_eq!(parse("100000.01"), Err(Unreadable::TooMuch));
        assert_eq!(parse("99999999.99"), Err(Unreadable::TooMuch));
        assert_eq!(parse(""), Err(Unreadable::Missing));
        assert_eq!(parse("   "), Err(Unreadable::Missing));
        for bad in [
            "-1",
            "+5",
            "1e3",
            "1.5p",
            "5£",
            "£",
            "12.",
            ".5",
            "12.345",
            "£12.3.4",
            "1,000.00",
            "1,234.50",
            "12,34",
            "1 000",
            "NaN",
            "0x10",
            "١٢",
            "999999999",
            "£ 5",
        ] {
            assert_eq!(parse(bad), Err(Unreadable::NotAnAmount), "{bad:?}");
        }
    }
}
