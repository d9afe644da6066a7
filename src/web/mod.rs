//! The HTTP face of paydesk: routes, request guards, fairings and error pages. It knows HTTP
//! and templates; rules and SQL live in the capability modules and `store`.

pub mod access;
pub mod account;
pub mod admin_services;
pub mod agreements;
pub mod api;
pub mod api_tokens;
pub mod audit_view;
pub mod auth;
pub mod csrf;
pub mod dashboard;
pub mod disputes;
pub mod erasure;
pub mod errors;
pub mod events;
pub mod exports;
pub mod format;
pub mod health;
pub mod holds;
pub mod hooks;
pub mod html;
pub mod journey_lookup;
pub mod list_filters;
pub mod pages;
pub mod payment_rows;
pub mod payments;
pub mod personal_data;
pub mod ratelimit;
pub mod refunds;
pub mod request;
pub mod reveal;
pub mod session;
pub mod sso;
pub mod staff;
pub mod stepup;
pub mod subject_access;

use rocket::fs::FileServer;
use rocket::{Build, Rocket};

use crate::AppState;

/// Mount every route, catcher and fairing of the web layer.
pub fn mount(rocket: Rocket<Build>, state: &AppState) -> Rocket<Build> {
    rocket
        .attach(request::RequestFairing)
        .manage(ratelimit::SignInLimiter::per_minute(
            state.config.sign_in_rate_per_minute,
        ))
        .manage(sso::Providers::new())
        .manage(payments::FilterForms::default())
        .manage(api::ApiLimiter::per_minute(
            state.config.api_rate_per_minute,
            state.config.sign_in_rate_per_minute,
        ))
        .mount("/", rocket::routes![health::healthz, health::metrics])
        .mount("/", dashboard::routes())
        .mount("/", auth::routes())
        .mount("/", account::routes())
        .mount("/", stepup::routes())
        .mount("/", sso::routes())
        .mount("/", hooks::routes())
        .mount("/", payments::routes())
        .mount("/", refunds::routes())
        .mount("/", disputes::routes())
        .mount("/", agreements::routes())
        .mount("/", exports::routes())
        .mount("/", staff::routes())
        .mount("/", admin_services::routes())
        .mount("/", personal_data::routes())
        .mount("/", subject_access::routes())
        .mount("/", erasure::routes())
        .mount("/", holds::routes())
        .manage(std::sync::Arc::new(
            crate::audit_view::ChainVerifier::default(),
        ))
        .mount("/", audit_view::routes())
        .mount("/", events::routes())
        .mount("/", api_tokens::routes())
        .mount(api::BASE, api::routes())
        .mount(
            "/static",
            FileServer::from(state.config.static_dir.clone()).rank(20),
        )
        .register("/", errors::catchers())
        .register(api::BASE, api::catchers())
}

/// The values every page's layout uses.
pub fn app_context(state: &AppState) -> serde_json::Value {
    serde_json::json!({
        "service_name": state.config.service_name,
        "environment_label": if state.config.is_demo() { Some("Demo") } else { None },
    })
}
