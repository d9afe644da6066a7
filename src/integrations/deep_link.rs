//! Deep links into a service's case-management or CRM system: a per-service template such as
//! `https://crm.example.gov/cases/{case_ref}`. Pure rules: which templates are acceptable
//! (https only, known placeholders only, never in the host) and how one is filled in (every
//! value percent-encoded, so a case reference cannot add a path, a query or another host).

use std::fmt;

/// The placeholders a template may use, and what each is filled with.
pub const PLACEHOLDERS: [&str; 3] = ["case_ref", "payment_id", "reference"];

/// The longest template accepted.
pub const MAX_LEN: usize = 2_000;

/// Why a template is not acceptable, in words for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateProblem {
    TooLong,
    NotHttps,
    NotAUrl,
    UnknownPlaceholder(String),
    UnclosedBrace,
    PlaceholderInHost,
    NoPlaceholder,
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateProblem::TooLong => {
                write!(f, "The deep link template must be at most {MAX_LEN} characters")
            }
            TemplateProblem::NotHttps => write!(
                f,
                "The deep link template must start with https://, for example https://crm.example.gov/cases/{{case_ref}}"
            ),
            TemplateProblem::NotAUrl => write!(
                f,
                "The deep link template must be a web address, for example https://crm.example.gov/cases/{{case_ref}}"
            ),
            TemplateProblem::UnknownPlaceholder(name) => write!(
                f,
                "The deep link template uses {{{name}}}, which paydesk does not know: use {{case_ref}}, {{payment_id}} or {{reference}}"
            ),
            TemplateProblem::UnclosedBrace => write!(
                f,
                "The deep link template has a {{ or }} that does not belong to a placeholder such as {{case_ref}}"
            ),
            TemplateProblem::PlaceholderInHost => write!(
                f,
                "The deep link template cannot put a placeholder in the site's address: only in the path or the query"
            ),
            TemplateProblem::NoPlaceholder => write!(
                f,
                "The deep link template must use at least one placeholder, such as {{case_ref}}"
            ),
        }
    }
}

/// A piece of a template: literal text or a placeholder's name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, TemplateProblem> {
    let mut out = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                out.push(Piece::Text(rest));
                break;
            }
            Some(i) if rest.as_bytes()[i] == b'}' => return Err(TemplateProblem::UnclosedBrace),
            Some(i) => {
                if i > 0 {
                    out.push(Piece::Text(&rest[..i]));
                }
                let after = &rest[i + 1..];
                let Some(end) = after.find(['{', '}']) else {
                    return Err(TemplateProblem::UnclosedBrace);
                };
                if after.as_bytes()[end] == b'{' {
                    return Err(TemplateProblem::UnclosedBrace);
                }
                let name = &after[..end];
                if !PLACEHOLDERS.contains(&name) {
                    return Err(TemplateProblem::UnknownPlaceholder(
                        name.chars().take(40).collect(),
                    ));
                }
                out.push(Piece::Placeholder(name));
                rest = &after[end + 1..];
            }
        }
    }
    Ok(out)
}

/// Check a template as typed (already trimmed). Blank means "no deep links" and is the
/// caller's business.
pub fn validate(template: &str) -> Result<(), TemplateProblem> {
    if template.len() > MAX_LEN {
        return Err(TemplateProblem::TooLong);
    }
    let lower = template.to_ascii_lowercase();
    if !lower.starts_with("https://") {
        return Err(TemplateProblem::NotHttps);
    }
    if template
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(TemplateProblem::NotAUrl);
    }
    let parts = pieces(template)?;
    if !parts.iter().any(|p| matches!(p, Piece::Placeholder(_))) {
        return Err(TemplateProblem::NoPlaceholder);
    }
    // The site's address (everything up to the first /, ? or # after the scheme) is fixed.
    let after_scheme = &template["https://".len()..];
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    if authority.contains('{') {
        return Err(TemplateProblem::PlaceholderInHost);
    }
    if authority.is_empty() || authority.contains('\\') {
        return Err(TemplateProblem::NotAUrl);
    }
    let sample = fill(&parts, "CASE-1", "payment1", "REF-1");
    match url::Url::parse(&sample) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => {
            if !u.username().is_empty() || u.password().is_some() {
                return Err(TemplateProblem::NotAUrl);
            }
            Ok(())
        }
        _ => Err(TemplateProblem::NotAUrl),
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn fill(parts: &[Piece<'_>], case_ref: &str, payment_id: &str, reference: &str) -> String {
    let mut out = String::new();
    for p in parts {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Placeholder("case_ref") => out.push_str(&encode(case_ref)),
            Piece::Placeholder("payment_id") => out.push_str(&encode(payment_id)),
            Piece::Placeholder(_) => out.push_str(&encode(reference)),
        }
    }
    out
}

/// The link for one payment, or None when the template is not acceptable or a value it uses
/// is blank (a link to "/cases/" helps nobody).
pub fn render(template: &str, case_ref: &str, payment_id: &str, reference: &str) -> Option<String> {
    let template = template.trim();
    validate(template).ok()?;
    let parts = pieces(template).ok()?;
    for p in &parts {
        let blank = match p {
            Piece::Placeholder("case_ref") => case_ref.trim().is_empty(),
            Piece::Placeholder("payment_id") => payment_id.trim().is_empty(),
            Piece::Placeholder(_) => reference.trim().is_empty(),
            Piece::Text(_) => false,
        };
        if blank {
            return None;
        }
    }
    Some(fill(&parts, case_ref.trim(), payment_id, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_templates_pass() {
        for t in [
            "https://crm.example.gov/cases/{case_ref}",
            "https://crm.example.gov/main.aspx?etn=incident&id={case_ref}&p={payment_id}",
            "HTTPS://crm.example.gov:8443/r/{reference}/view#top",
            "https://crm.example.gov/{case_ref}/{case_ref}",
        ] {
            assert_eq!(validate(t), Ok(()), "{t}");
        }
    }

    #[test]
    fn bad_templates_are_named() {
        let cases = [
            (
                "http://crm.example.gov/cases/{case_ref}",
                TemplateProblem::NotHttps,
            ),
            ("javascript:alert(1)//{case_ref}", TemplateProblem::NotHttps),
            ("crm.example.gov/{case_ref}", TemplateProblem::NotHttps),
            (
                "https://crm.example.gov/cases/{case}",
                TemplateProblem::UnknownPlaceholder("case".into()),
            ),
            (
                "https://crm.example.gov/cases/{CASE_REF}",
                TemplateProblem::UnknownPlaceholder("CASE_REF".into()),
            ),
            (
                "https://crm.example.gov/cases/{case_ref",
                TemplateProblem::UnclosedBrace,
            ),
            (
                "https://crm.example.gov/cases/case_ref}",
                TemplateProblem::UnclosedBrace,
            ),
            (
                "https://crm.example.gov/{{case_ref}}",
                TemplateProblem::UnclosedBrace,
            ),
            (
                "https://{case_ref}.example.gov/",
                TemplateProblem::PlaceholderInHost,
            ),
            (
                "https://crm.example.gov@{case_ref}/x",
                TemplateProblem::PlaceholderInHost,
            ),
            (
                "https://crm.example.gov/cases",
                TemplateProblem::NoPlaceholder,
            ),
            ("https:///{case_ref}", TemplateProblem::NotAUrl),
            (
                "https://crm.example.gov/ {case_ref}",
                TemplateProblem::NotAUrl,
            ),
            (
                "https://user:pw@crm.example.gov/{case_ref}",
                TemplateProblem::NotAUrl,
            ),
        ];
        for (t, want) in cases {
            assert_eq!(validate(t), Err(want.clone()), "{t}");
            assert!(!want.to_string().is_empty());
        }
        assert_eq!(
            validate(&format!(
                "https://crm.example.gov/{}{{case_ref}}",
                "a".repeat(MAX_LEN)
            )),
            Err(TemplateProblem::TooLong)
        );
    }

    #[test]
    fn values_are_encoded_so_they_stay_in_their_place() {
        let t = "https://crm.example.gov/cases/{case_ref}?p={payment_id}&r={reference}";
        assert_eq!(
            render(t, "CASE/1?x=1#y", "pay 1", "R&D=é").as_deref(),
            Some("https://crm.example.gov/cases/CASE%2F1%3Fx%3D1%23y?p=pay%201&r=R%26D%3D%C3%A9")
        );
        let link = render(
            "https://crm.example.gov/{case_ref}",
            "../../evil.example",
            "p",
            "r",
        )
        .unwrap();
        assert_eq!(link, "https://crm.example.gov/..%2F..%2Fevil.example");
        assert_eq!(
            url::Url::parse(&link).unwrap().host_str(),
            Some("crm.example.gov")
        );
    }

    #[test]
    fn nothing_is_rendered_from_a_bad_template_or_a_blank_value() {
        assert_eq!(
            render("http://crm.example.gov/{case_ref}", "C1", "p", "r"),
            None
        );
        assert_eq!(
            render("https://crm.example.gov/{case_ref}", "", "p", "r"),
            None
        );
        assert_eq!(
            render("https://crm.example.gov/{case_ref}", "  ", "p", "r"),
            None
        );
        assert_eq!(
            render("https://crm.example.gov/{payment_id}", "", "p1", "r").as_deref(),
            Some("https://crm.example.gov/p1")
        );
    }
}
