//! The HTTP face of paydesk: routes, request guards, fairings and error pages. It knows HTTP
//! and templates; rules and SQL live in the capability modules and `store`.

pub mod csrf;
pub mod errors;
pub mod health;
pub mod request;

use rocket::fs::FileServer;
use rocket::{Build, Rocket};
use rocket_dyn_templates::{context, Template};

use crate::AppState;

/// Mount every route, catcher and fairing of the web layer.
pub fn mount(rocket: Rocket<Build>, state: &AppState) -> Rocket<Build> {
    rocket
        .attach(request::RequestFairing)
        .mount("/", rocket::routes![home, health::healthz, health::metrics])
        .mount(
            "/static",
            FileServer::from(state.config.static_dir.clone()).rank(20),
        )
        .register("/", errors::catchers())
}

/// The values every page's layout uses.
pub fn app_context(state: &AppState) -> serde_json::Value {
    serde_json::json!({
        "service_name": state.config.service_name,
        "environment_label": if state.config.is_demo() { Some("Demo") } else { None },
    })
}

#[rocket::get("/")]
fn home(state: &rocket::State<AppState>) -> Template {
    Template::render("home", context! { app: app_context(state) })
}
