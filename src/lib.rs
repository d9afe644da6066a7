//! paydesk: a staff console for a government payments platform.
//!
//! `AppState::open` connects to the database and migrates it; `app` builds the Rocket
//! application around that state. See DESIGN.md for how the modules layer.

pub mod agreements;
pub mod audit;
pub mod audit_view;
pub mod bench;
pub mod card_data;
pub mod clock;
pub mod config;
pub mod context;
pub mod crypto;
pub mod csv;
pub mod dashboard;
pub mod demo;
pub mod disputes;
pub mod drafts;
pub mod exports;
pub mod foreground;
pub mod identity;
pub mod integrations;
pub mod jobs;
pub mod journeys;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod money;
pub mod personal_data;
pub mod platform;
pub mod refunds;
pub mod schedule;
pub mod search;
pub mod services;
pub mod store;
pub mod timezone;
pub mod web;

use std::sync::{Arc, Mutex};

use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Build, Orbit, Rocket};
use rocket_dyn_templates::Template;
use serde_json::json;
use tokio::sync::watch;

use crate::audit::{Actor, AuditEvent};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::context::Context;
use crate::jobs::{JobContext, JobRunner, Registry};
use crate::metrics::Metrics;
use crate::platform::cache::Platforms;
use crate::store::{Db, PoolSettings, StoreError};

/// Everything a request or a job may need, shared across the process: the capabilities'
/// `Context` (reached through `Deref`, so `state.db` reads as before) and the web's own.
#[derive(Clone)]
pub struct AppState {
    context: Context,
    pub jobs: Arc<Registry>,
    pub platforms: Arc<Platforms>,
    /// Search counts that reached the cap, kept briefly (see `search::CountCache`).
    pub counts: Arc<search::CountCache>,
    /// Refusals of unauthenticated requests not yet summarised in the audit log.
    pub refusals: Arc<audit::refusals::Refusals>,
}

/// Why the application state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

impl AppState {
    /// Connect to the configured database and bring its schema up to date.
    pub async fn open(config: Config, clock: SharedClock) -> Result<AppState, OpenError> {
        let settings = PoolSettings {
            max_connections: config.db_max_connections,
            ..PoolSettings::default()
        };
        let db = Db::connect(&config.database_url, &settings).await?;
        db.migrate().await?;
        let state = AppState::with_db(config, db, clock)?;
        // A log written before links were keyed carries on from an entry that commits to it.
        audit::anchor::carry_on(&state.db, &state.config, state.clock.now()).await?;
        // Credentials saved before they were bound to their address are bound to the one
        // their service has now; until then they are not used.
        if let Err(e) = services::binding::bind_saved_credentials(&state).await {
            tracing::error!(error = %e, "could not bind saved platform credentials to their addresses");
        }
        Ok(state)
    }

    pub fn with_db(config: Config, db: Db, clock: SharedClock) -> Result<AppState, OpenError> {
        let mail = Arc::new(mail::MailTemplates::load(&config.template_dir)?);
        db.set_audit_chain_key(config.audit_chain_key())?;
        Ok(AppState {
            context: Context {
                mail,
                config: Arc::new(config),
                db,
                clock,
                metrics: Arc::new(Metrics::default()),
            },
            jobs: Arc::new(job_registry()),
            platforms: Arc::default(),
            counts: Arc::default(),
            refusals: Arc::default(),
        })
    }

    /// What capabilities are handed.
    pub fn context(&self) -> &Context {
        &self.context
    }

    pub fn job_context(&self) -> JobContext {
        JobContext {
            db: self.db.clone(),
            clock: self.clock.clone(),
            config: self.config.clone(),
            platforms: self.platforms.clone(),
            metrics: self.metrics.clone(),
        }
    }

    pub fn job_runner(&self) -> JobRunner {
        JobRunner::new(self.job_context(), self.jobs.clone())
    }
}

impl std::ops::Deref for AppState {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.context
    }
}

/// For set-up before the state is shared (a benchmark's port, a test's clock).
impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut Context {
        &mut self.context
    }
}

/// The job queue's registry: every capability's handlers. The queue itself knows none.
pub fn job_registry() -> Registry {
    Registry::of(
        [
            mail::handlers(),
            identity::handlers(),
            journeys::handlers(),
            refunds::handlers(),
            agreements::handlers(),
            exports::handlers(),
            integrations::events::handlers(),
            personal_data::handlers(),
        ]
        .into_iter()
        .flatten(),
    )
}

/// Every capability's periodic work, for the one scheduler.
pub fn periodic_work() -> Vec<schedule::Periodic> {
    [
        journeys::periodic(),
        refunds::periodic(),
        identity::periodic(),
        personal_data::periodic(),
    ]
    .concat()
}

/// The Rocket application for `state`.
pub fn app(state: AppState) -> Rocket<Build> {
    let rocket = rocket::custom(state.config.rocket_figment())
        .manage(state.clone())
        .attach(Template::fairing())
        // An empty shield replaces Rocket's defaults; our request fairing sets every header.
        .attach(rocket::shield::Shield::new())
        .attach(Lifecycle::default());
    web::mount(rocket, &state)
}

/// Records start-up and shutdown in the audit log (PCI DSS 10.2.1.6) and runs the job worker
/// for as long as the server does.
#[derive(Default)]
struct Lifecycle {
    stop_worker: Mutex<Option<watch::Sender<bool>>>,
    stop_anchor: Mutex<Option<watch::Sender<bool>>>,
}

#[rocket::async_trait]
impl Fairing for Lifecycle {
    fn info(&self) -> Info {
        Info {
            name: "audit start and shutdown; job worker",
            kind: Kind::Liftoff | Kind::Shutdown,
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        let Some(state) = rocket.state::<AppState>() else {
            return;
        };
        let event =
            AuditEvent::new(Actor::System, "sys_startup", "system:paydesk").details(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "address": rocket.config().address.to_string(),
                "port": rocket.config().port,
                "database": state.db.backend().name(),
                "profile": state.config.profile,
            }));
        if let Err(e) = audit::record(&state.db, state.clock.now(), event).await {
            tracing::error!(error = %e, "could not record start-up in the audit log");
        }
        // Checkpoints of the audit log outside the database, and summaries of refusals, run
        // in every instance whether or not it runs jobs.
        let (tx, rx) = watch::channel(false);
        if let Ok(mut slot) = self.stop_anchor.lock() {
            *slot = Some(tx);
        }
        tokio::spawn(audit::anchor::run(
            state.db.clone(),
            state.clock.clone(),
            state.config.clone(),
            state.refusals.clone(),
            rx,
        ));
        if state.config.jobs_enabled {
            let (tx, rx) = watch::channel(false);
            if let Ok(mut slot) = self.stop_worker.lock() {
                *slot = Some(tx);
            }
            tokio::spawn(state.job_runner().run_until(rx.clone()));
            // Each connected service's sync is queued from here (once across instances).
            // Each capability's periodic work (service syncs, expiries, the inactivity sweep…);
            // what must happen once across instances claims its turn in the database.
            tokio::spawn(schedule::run(
                state.db.clone(),
                state.clock.clone(),
                std::time::Duration::from_secs(state.config.sync_interval_secs.clamp(1, 15)),
                periodic_work(),
                rx.clone(),
            ));
            tokio::spawn(exports::run_cleaner(
                state.db.clone(),
                state.clock.clone(),
                state.config.clone(),
                rx,
            ));
        }
        tracing::info!(address = %rocket.config().address, port = rocket.config().port, database = state.db.backend().name(), "paydesk is listening");
    }

    async fn on_shutdown(&self, rocket: &Rocket<Orbit>) {
        if let Some(tx) = self.stop_worker.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(true);
        }
        if let Some(tx) = self.stop_anchor.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(true);
        }
        let Some(state) = rocket.state::<AppState>() else {
            return;
        };
        if let Err(e) = state
            .refusals
            .flush(&state.db, state.clock.now(), true)
            .await
        {
            tracing::error!(error = %e, "could not write the summary of refused requests");
        }
        if let Err(e) = audit::record(
            &state.db,
            state.clock.now(),
            AuditEvent::new(Actor::System, "sys_shutdown", "system:paydesk"),
        )
        .await
        {
            tracing::error!(error = %e, "could not record shutdown in the audit log");
        }
        // The last checkpoint covers the shutdown entry itself.
        if let Err(e) = audit::anchor::tick(&state.db, &state.config, state.clock.now(), true).await
        {
            tracing::error!(error = %e, "could not checkpoint the audit log at shutdown");
        }
        tracing::info!("paydesk stopped");
    }
}
