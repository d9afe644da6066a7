//! The one ticker: every few seconds it runs each capability's periodic work (queueing
//! service syncs, expiring refund requests, the daily inactivity sweep, refreshing search
//! statistics). It knows no capability: the composition root (`lib.rs`) hands it what each
//! capability's `periodic()` returns. Work that must happen once across instances claims its
//! turn in the database itself; this only says when to ask.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::clock::SharedClock;
use crate::store::Db;

pub type TaskError = Box<dyn std::error::Error + Send + Sync>;
type TaskFuture = Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send>>;

/// One piece of periodic work.
#[derive(Clone)]
pub struct Periodic {
    pub name: &'static str,
    /// At most this often (None: at every tick).
    pub every: Option<Duration>,
    /// The first run waits this long after start-up.
    pub first_after: Duration,
    task: Arc<dyn Fn(Db, OffsetDateTime) -> TaskFuture + Send + Sync>,
}

impl Periodic {
    /// Work run at every tick.
    pub fn each_tick<F, Fut, E>(name: &'static str, task: F) -> Periodic
    where
        F: Fn(Db, OffsetDateTime) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<TaskError>,
    {
        Periodic {
            name,
            every: None,
            first_after: Duration::ZERO,
            task: Arc::new(move |db, now| {
                let fut = task(db, now);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }),
        }
    }

    /// Work run at most every `every`, the first time `first_after` start-up.
    pub fn every(mut self, every: Duration, first_after: Duration) -> Periodic {
        self.every = Some(every);
        self.first_after = first_after;
        self
    }
}

/// Run `work` every `tick` until `stop` turns true.
pub async fn run(
    db: Db,
    clock: SharedClock,
    tick: Duration,
    work: Vec<Periodic>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut due: Vec<Instant> = work.iter().map(|w| started + w.first_after).collect();
    loop {
        if *stop.borrow() {
            break;
        }
        for (w, next) in work.iter().zip(due.iter_mut()) {
            if Instant::now() < *next {
                continue;
            }
            if let Some(every) = w.every {
                *next = Instant::now() + every;
            }
            if let Err(e) = (w.task)(db.clone(), clock.now()).await {
                tracing::error!(work = w.name, error = %e, "periodic work failed; it runs again at the next turn");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => {}
        }
    }
}
