//! The application on a fresh database with a manual clock, reached through Rocket's local
//! client, and the services tests set it up with.

use std::sync::Arc;

use paydesk::audit::Actor;
use paydesk::clock::{ManualClock, SharedClock};
use paydesk::config::Config;
use paydesk::AppState;
use rocket::local::asynchronous::Client;

use super::db::TestDb;

pub fn start_time() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-20 09:00:00 UTC)
}

/// The application on a fresh database with a manual clock, reached through Rocket's local
/// client. The job worker is off: tests drive it with `state.job_runner().run_due()`.
pub struct TestApp {
    pub client: Client,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub db: TestDb,
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::build(|_| {}, |r| r).await
    }

    pub async fn with_config(configure: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::build(configure, |r| r).await
    }

    pub async fn build(
        configure: impl FnOnce(&mut Config),
        extend: impl FnOnce(rocket::Rocket<rocket::Build>) -> rocket::Rocket<rocket::Build>,
    ) -> TestApp {
        let db = TestDb::new().await;
        let mut config = Config::for_tests(db.url());
        configure(&mut config);
        let clock = ManualClock::new(start_time());
        let shared: SharedClock = clock.clone();
        let state = AppState::open(config, shared)
            .await
            .expect("open the app state");
        let client = Client::tracked(extend(paydesk::app(state.clone())))
            .await
            .expect("a valid rocket");
        TestApp {
            client,
            state,
            clock,
            db,
        }
    }
}

impl TestApp {
    pub async fn service(&self, slug: &str) -> i64 {
        let new = paydesk::services::NewService {
            slug: slug.into(),
            name: format!("Service {slug}"),
            time_zone: "Europe/London".into(),
            ..Default::default()
        };
        paydesk::services::add(&self.state, Actor::System, &new)
            .await
            .expect("add service")
            .expect("a valid service")
    }
}
