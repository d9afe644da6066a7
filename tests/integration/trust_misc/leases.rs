//! Item 16: a worker renews the leases of the jobs it runs, so a long job stays with a live
//! worker, a dead worker's job is picked up within the (one-minute) lease, and a worker whose
//! job was taken over stops it and can neither renew nor record it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paydesk::clock::Clock;
use paydesk::jobs::{self, JobContext, JobFailure, JobHandler, JobKind, JobRun, JobRunner};
use paydesk::store::jobs as job_store;
use paydesk::store::{self, Db};
use serde_json::json;

use crate::common::*;

/// Sleeps `ms` (real time) and records each attempt that ran to its end.
struct Slow {
    finished: Arc<Mutex<HashMap<i64, Vec<i32>>>>,
}

const SLOW: JobKind = JobKind {
    name: "trust_slow",
    retry_delays_secs: &[1],
};

#[async_trait::async_trait]
impl JobHandler for Slow {
    fn kind(&self) -> JobKind {
        SLOW
    }
    async fn run(&self, _ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let ms = job.payload["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.finished
            .lock()
            .unwrap()
            .entry(job.id)
            .or_default()
            .push(job.attempt);
        Ok(())
    }
}

fn slow_runner(
    app: &TestApp,
    db: Db,
    worker: &str,
    finished: &Arc<Mutex<HashMap<i64, Vec<i32>>>>,
) -> JobRunner {
    let mut registry = paydesk::job_registry();
    registry.register(Arc::new(Slow {
        finished: finished.clone(),
    }));
    let ctx = JobContext {
        db,
        clock: app.state.clock.clone(),
        config: app.state.config.clone(),
        platforms: app.state.platforms.clone(),
        metrics: app.state.metrics.clone(),
    };
    JobRunner::new(ctx, Arc::new(registry))
        .with_worker_id(worker)
        .with_jitter(|| 0.0)
}

async fn enqueue_slow(app: &TestApp, ms: u64) -> i64 {
    let now = app.clock.now();
    let mut tx = app.state.db.begin().await.unwrap();
    let id = jobs::enqueue(&mut tx, SLOW, &json!({"ms": ms}), now, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

fn attempts_of(rows: &[job_store::AttemptRow]) -> Vec<(i32, String, String)> {
    rows.iter()
        .map(|a| (a.attempt, a.outcome.clone(), a.worker.clone()))
        .collect()
}

#[test]
fn the_default_lease_is_a_minute_and_is_renewed_every_twenty_seconds() {
    let config = paydesk::config::Config::for_tests("sqlite::memory:");
    assert_eq!(config.job_lease_secs, 60);
    assert_eq!(
        JobRunner::heartbeat_interval(Duration::from_secs(60)),
        Duration::from_secs(20)
    );
    assert_eq!(
        JobRunner::heartbeat_interval(Duration::from_secs(300)),
        Duration::from_secs(20),
        "at most every 20 s"
    );
    assert_eq!(
        JobRunner::heartbeat_interval(Duration::from_secs(3)),
        Duration::from_secs(1)
    );
}

#[tokio::test]
async fn a_long_job_keeps_its_lease_while_its_worker_lives() {
    let app = TestApp::with_config(|c| c.job_lease_secs = 2).await;
    let finished = Arc::new(Mutex::new(HashMap::new()));
    let id = enqueue_slow(&app, 5_000).await;
    let a = slow_runner(&app, app.db.connect().await, "worker-a", &finished);
    let b = slow_runner(&app, app.db.connect().await, "worker-b", &finished);
    let running = tokio::spawn(async move { a.run_due().await.unwrap() });
    // Time passes for paydesk as it does for the worker; B keeps looking for due jobs.
    let started = Instant::now();
    while !running.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.clock.advance(time::Duration::milliseconds(100));
        assert_eq!(
            b.run_due().await.unwrap().claimed,
            0,
            "B took the job {:?} into it, with a 2 s lease",
            started.elapsed()
        );
    }
    let pass = running.await.unwrap();
    assert_eq!((pass.claimed, pass.succeeded), (1, 1));
    assert!(started.elapsed() >= Duration::from_secs(5));
    let job = job_store::get(&app.state.db, id).await.unwrap().unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("succeeded", 1));
    assert_eq!(finished.lock().unwrap().get(&id), Some(&vec![1]));
}

#[tokio::test]
async fn a_dead_workers_job_is_picked_up_within_the_lease_and_the_old_owner_is_refused() {
    let app = TestApp::new().await;
    let finished = Arc::new(Mutex::new(HashMap::new()));
    let id = enqueue_slow(&app, 0).await;
    let lease = Duration::from_secs(app.state.config.job_lease_secs);
    assert!(lease <= Duration::from_secs(60));
    // Worker A claims the job, as `kill -9` would leave it: no renewal, no result.
    let now = app.clock.now();
    let claimed = job_store::claim(
        &app.state.db,
        "worker-a",
        store::to_micros(now),
        store::to_micros(now + lease),
        10,
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 1);
    let b = slow_runner(&app, app.state.db.clone(), "worker-b", &finished);
    app.clock
        .advance(time::Duration::seconds(lease.as_secs() as i64 - 1));
    assert_eq!(
        b.run_due().await.unwrap().claimed,
        0,
        "held while the lease lasts"
    );
    app.clock.advance(time::Duration::seconds(2));
    let pass = b.run_due().await.unwrap();
    assert_eq!(
        (pass.claimed, pass.succeeded),
        (1, 1),
        "picked up within a minute"
    );

    // A comes back: its renewal and its result are both refused.
    let later = store::to_micros(app.clock.now());
    assert!(
        !job_store::renew(&app.state.db, id, 1, "worker-a", later, later + 60_000_000)
            .await
            .unwrap()
    );
    let mut tx = app.state.db.begin().await.unwrap();
    assert!(
        !job_store::finish(&mut tx, id, 1, "worker-a", later, None, None)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    // Nor can B's own finished attempt be renewed back to life.
    assert!(
        !job_store::renew(&app.state.db, id, 2, "worker-b", later, later + 60_000_000)
            .await
            .unwrap()
    );
    let job = job_store::get(&app.state.db, id).await.unwrap().unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("succeeded", 2));
    assert_eq!(job.locked_by, None);
    assert_eq!(
        attempts_of(&job_store::attempts(&app.state.db, id).await.unwrap()),
        [
            (1, "lost".to_string(), "worker-a".to_string()),
            (2, "succeeded".to_string(), "worker-b".to_string())
        ]
    );
}

#[tokio::test]
async fn a_worker_whose_job_was_taken_over_stops_it_and_records_nothing() {
    let app = TestApp::with_config(|c| c.job_lease_secs = 2).await;
    let finished = Arc::new(Mutex::new(HashMap::new()));
    let id = enqueue_slow(&app, 4_000).await;
    let a = slow_runner(&app, app.db.connect().await, "worker-a", &finished);
    let b = slow_runner(&app, app.db.connect().await, "worker-b", &finished);
    let started = Instant::now();
    let a_pass = tokio::spawn(async move { a.run_due().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Time jumps past A's lease (as if A's process had been paused), and B takes the job
    // over; should A's heartbeat renew first, time jumps again until B has it.
    let clock = app.clock.clone();
    let b_pass = tokio::spawn(async move {
        loop {
            clock.advance(time::Duration::seconds(10));
            let pass = b.run_due().await.unwrap();
            if pass.claimed > 0 {
                return pass;
            }
        }
    });
    let a_pass = a_pass.await.unwrap();
    assert_eq!(
        (a_pass.claimed, a_pass.fenced_off, a_pass.succeeded),
        (1, 1, 0)
    );
    assert!(
        started.elapsed() < Duration::from_millis(3_500),
        "A stopped at its next heartbeat, not at the end of its work: {:?}",
        started.elapsed()
    );
    let b_pass = b_pass.await.unwrap();
    assert_eq!((b_pass.claimed, b_pass.succeeded), (1, 1));
    assert_eq!(
        finished.lock().unwrap().get(&id),
        Some(&vec![2]),
        "only B's attempt ran to its end"
    );
    assert_eq!(
        app.state.metrics.counter("paydesk_job_leases_lost_total"),
        1
    );
    assert_eq!(
        attempts_of(&job_store::attempts(&app.state.db, id).await.unwrap()),
        [
            (1, "lost".to_string(), "worker-a".to_string()),
            (2, "succeeded".to_string(), "worker-b".to_string())
        ]
    );
}
