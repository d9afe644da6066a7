//! Reading pages and sending forms: percent-encoding, form bodies, a field's value, the text
//! between two marks, a redirect's target, and a signed-out visitor's CSRF token.

use rocket::http::ContentType;
use rocket::local::asynchronous::LocalResponse;

use super::app::TestApp;

/// Percent-encode for a form body or a query string.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the first `<input name="…" value="…">` in a page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&#x2F;", "/")
            .replace("&amp;", "&"),
    )
}

/// The text between `start` and the next `end` after it.
pub fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let s = html.find(start)? + start.len();
    let e = html[s..].find(end)? + s;
    Some(&html[s..e])
}

pub fn location(response: &LocalResponse<'_>) -> String {
    response
        .headers()
        .get_one("Location")
        .unwrap_or_default()
        .to_string()
}

impl TestApp {
    /// The CSRF token a signed-out visitor's form carries (fetching a page sets the cookie).
    pub async fn signed_out_token(&self, page: &str) -> String {
        let html = self
            .client
            .get(page)
            .dispatch()
            .await
            .into_string()
            .await
            .unwrap_or_default();
        input_value(&html, "csrf_token").expect("a csrf_token field")
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> LocalResponse<'_> {
        self.client
            .post(path.to_string())
            .header(ContentType::Form)
            .body(form_body(fields))
            .dispatch()
            .await
    }

    /// A form's answer that is a redirect (post/redirect/get), followed as a browser would:
    /// the page it leads to, read by GET.
    pub async fn follow(&self, response: LocalResponse<'_>) -> String {
        assert_eq!(
            response.status(),
            rocket::http::Status::SeeOther,
            "a redirect after the form"
        );
        let to = location(&response);
        let page = self.client.get(to.clone()).dispatch().await;
        assert_eq!(page.status(), rocket::http::Status::Ok, "{to}");
        page.into_string().await.unwrap_or_default()
    }
}
