//! A secret shown once, after the POST that made it (post/redirect/get): the new API token, an
//! event endpoint's signing secret. The POST hands it to the page after the redirect in a
//! private cookie (encrypted and signed with the instance's key, readable by no script, gone
//! after 5 minutes); the page takes it, so Back or a refresh cannot show it again.

use rocket::http::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};

use crate::config::Config;

const COOKIE: &str = "paydesk_reveal";
const MINUTES: i64 = 5;

/// What is shown once: which thing (`what`, `id`), its secret, and (for a signing secret
/// that replaced another) until when the old one still signs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reveal {
    pub what: String,
    pub id: i64,
    pub secret: String,
    pub until: Option<String>,
}

/// Hand `r` to the next page.
pub fn hold(jar: &CookieJar<'_>, config: &Config, r: &Reveal) {
    let Ok(text) = serde_json::to_string(r) else {
        return;
    };
    jar.add_private(
        Cookie::build((COOKIE, text))
            .path("/")
            .secure(config.secure_cookies)
            .http_only(true)
            .same_site(SameSite::Strict)
            .max_age(rocket::time::Duration::minutes(MINUTES))
            .build(),
    );
}

/// The secret of `what` `id`, if it was just made; it is forgotten either way.
pub fn take(jar: &CookieJar<'_>, what: &str, id: i64) -> Option<Reveal> {
    let held = jar.get_private(COOKIE)?;
    jar.remove_private(Cookie::build(COOKIE).path("/").build());
    serde_json::from_str::<Reveal>(held.value())
        .ok()
        .filter(|r| r.what == what && r.id == id)
}
