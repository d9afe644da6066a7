//! Email addresses as staff accounts use them: the look-up key and the plausibility rule.

/// The form of an email address used for uniqueness and look-ups.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible email address: something@domain.tld, no spaces, not absurdly long.
pub fn is_valid_email(email: &str) -> bool {
    let email = email.trim();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}
