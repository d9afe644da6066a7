//! An endpoint's signing secret, shown once after the POST that made it (a new endpoint, or a
//! rotation): post/redirect/get through `web::reveal`.

use rocket::http::CookieJar;
use rocket::response::Redirect;
use rocket::State;
use serde_json::json;

use super::{endpoint_href, endpoint_of};
use crate::web::errors::PageError;
use crate::web::pages::{self, render, Answer};
use crate::web::reveal::{self, Reveal};
use crate::web::session::SignedIn;
use crate::AppState;

/// A new signing secret goes to the page after the redirect, which shows it once.
pub(super) fn show_secret(
    jar: &CookieJar<'_>,
    state: &AppState,
    endpoint_id: i64,
    secret: String,
    until: Option<String>,
) -> Answer {
    reveal::hold(
        jar,
        &state.config,
        &Reveal {
            what: "event_endpoint".into(),
            id: endpoint_id,
            secret,
            until,
        },
    );
    Answer::Redirect(Redirect::to(format!(
        "{}/secret",
        endpoint_href(endpoint_id)
    )))
}

/// The endpoint's new signing secret, this once; read again, the page says it is not kept.
#[rocket::get("/integrations/events/<id>/secret")]
pub(super) async fn secret(
    state: &State<AppState>,
    staff: SignedIn,
    jar: &CookieJar<'_>,
    id: &str,
) -> Result<Answer, PageError> {
    let (endpoint, _) = endpoint_of(state, &staff, id).await?;
    let shown = reveal::take(jar, "event_endpoint", endpoint.id);
    let mut c = pages::signed_in(state, &staff, "/integrations/events");
    c.insert(
        "secret".into(),
        json!(shown.as_ref().map(|r| r.secret.clone())),
    );
    c.insert("endpoint_href".into(), json!(endpoint_href(endpoint.id)));
    c.insert("rotated_until".into(), json!(shown.and_then(|r| r.until)));
    Ok(Answer::Page(render("events/secret", c)))
}
