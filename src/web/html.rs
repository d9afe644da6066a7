//! Writing HTML from Rust, for the few hot fragments a template would render too slowly (the
//! payments list's table body: fifty rows of eleven cells on every search). Text is escaped
//! exactly as Tera's autoescape does, so a fragment reads the same as the template it replaced.

/// Append `text` to `out`, escaped for element content and quoted attribute values.
pub fn escape_into(out: &mut String, text: &str) {
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            b'/' => "&#x2F;",
            _ => continue,
        };
        // Every byte escaped is ASCII, so these are character boundaries.
        out.push_str(&text[start..i]);
        out.push_str(entity);
        start = i + 1;
    }
    out.push_str(&text[start..]);
}

/// A fragment of HTML being written: text pushed through `text` is escaped, markup through
/// `raw` is not (it must be a literal of the caller's own).
#[derive(Default)]
pub struct Html(String);

impl Html {
    pub fn with_capacity(n: usize) -> Html {
        Html(String::with_capacity(n))
    }

    pub fn raw(&mut self, markup: &'static str) -> &mut Html {
        self.0.push_str(markup);
        self
    }

    pub fn text(&mut self, text: &str) -> &mut Html {
        escape_into(&mut self.0, text);
        self
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_teras_autoescape_does() {
        let mut tera = rocket_dyn_templates::tera::Tera::default();
        tera.autoescape_on(vec![""]);
        assert!(tera.add_raw_template("t", "{{ v }}").is_ok());
        for v in [
            "plain",
            "<script>alert('x')</script>",
            "a & b \"quoted\" / slash",
            "£12.50 — été ✓",
            "",
            "&amp;",
            "x\"onmouseover=\"y",
        ] {
            let mut ctx = rocket_dyn_templates::tera::Context::new();
            ctx.insert("v", v);
            let mut ours = String::new();
            escape_into(&mut ours, v);
            assert_eq!(Some(ours), tera.render("t", &ctx).ok(), "{v:?}");
        }
    }

    #[test]
    fn raw_markup_is_kept_and_text_is_escaped() {
        let mut h = Html::default();
        h.raw("<td>").text("<b>").raw("</td>");
        assert_eq!(h.into_string(), "<td>&lt;b&gt;</td>");
    }
}
