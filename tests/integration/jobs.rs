use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paydesk::audit::Actor;
use paydesk::clock::Clock;
use paydesk::jobs::{
    self, JobContext, JobFailure, JobHandler, JobKind, JobRun, JobRunner, SELFTEST,
};
use paydesk::store::audit as audit_store;
use paydesk::store::jobs as job_store;
use paydesk::store::{self, Db};
use serde_json::{json, Value};

use crate::common::{start_time, TestApp};

async fn enqueue(db: &Db, kind: JobKind, payload: Value, now: time::OffsetDateTime) -> i64 {
    let mut tx = db.begin().await.unwrap();
    let id = jobs::enqueue(&mut tx, kind, &payload, now, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

fn runner(app: &TestApp) -> JobRunner {
    app.state.job_runner().with_jitter(|| 0.0)
}

#[tokio::test]
async fn a_committed_job_runs_once_and_records_its_attempt() {
    let app = TestApp::new().await;
    let id = enqueue(&app.state.db, SELFTEST, json!({}), app.clock.now()).await;
    let pass = runner(&app).run_due().await.unwrap();
    assert_eq!((pass.claimed, pass.succeeded), (1, 1));
    let job = job_store::get(&app.state.db, id).await.unwrap().unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("succeeded", 1));
    let attempts = job_store::attempts(&app.state.db, id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, "succeeded");
    assert_eq!(
        runner(&app).run_due().await.unwrap().claimed,
        0,
        "a finished job is not run again"
    );
}

#[tokio::test]
async fn a_job_in_a_rolled_back_transaction_never_exists() {
    let app = TestApp::new().await;
    let mut tx = app.state.db.begin().await.unwrap();
    jobs::enqueue(&mut tx, SELFTEST, &json!({}), start_time(), start_time())
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(job_store::list(&app.state.db, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(runner(&app).run_due().await.unwrap().claimed, 0);
}

#[tokio::test]
async fn failures_retry_on_the_kind_schedule() {
    let app = TestApp::new().await;
    let id = enqueue(
        &app.state.db,
        SELFTEST,
        json!({"fail_times": 2}),
        start_time(),
    )
    .await;
    let r = runner(&app);

    assert_eq!(r.run_due().await.unwrap().retrying, 1);
    let job = job_store::get(&app.state.db, id).await.unwrap().unwrap();
    assert_eq!(job.state, "queued");
    assert_eq!(
        store::from_micros(job.run_at),
        start_time() + Duration::from_secs(1),
        "first retry after 1 s"
    );
    assert!(job.last_error.unwrap().contains("selftest failure 1"));

    assert_eq!(r.run_due().await.unwrap().claimed, 0, "not due yet");
    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(r.run_due().await.unwrap().retrying, 1);
    let job = job_store::get(&app.state.db, id).await.unwrap().unwrap();
    assert_eq!(
        store::from_micros(job.run_at),
        start_time() + Duration::from_secs(3),
        "second retry 2 s later"
    );

    app.clock.advance(time::Duration::milliseconds(1999));
    assert_eq!(r.run_due().await.unwrap().claimed, 0);
    app.clock.advance(time::Duration::milliseconds(1));
    assert_eq!(r.run_due().await.unwrap().succeeded, 1);
    let outcomes: Vec<String> = job_store::attempts(&app.state.db, id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, ["failed", "failed", "succeeded"]);
}

#[tokio::test]
async fn jitter_stretches_the_wait_by_at_most_a_fifth() {
    let app = TestApp::new().await;
    let id = enqueue(
        &app.state.db,
        SELFTEST,
        json!({"fail_times": 1}),
        start_time(),
    )
    .await;
    app.state
        .job_runner()
        .with_jitter(|| 0.999)
        .run_due()
        .await
        .unwrap();
    let job = job_store::get(&app.state.db, id).await.unwrap().unwrap();
    let wait = store::from_micros(job.run_at) - start_time();
    assert!(
        wait > time::Duration::seconds(1) && wait <= time::Duration::milliseconds(1200),
        "{wait}"
    );
}

#[tokio::test]
async fn a_job_is_dead_after_its_last_attempt_and_can_be_requeued() {
    let app = TestApp::new().await;
    let id = enqueue(
        &app.state.db,
        SELFTEST,
        json!({"fail_times": 100}),
        start_time(),
    )
    .await;
    let r = runner(&app);
    for _ in 0..4 {
        r.run_due().await.unwrap();
        app.clock.advance(time::Duration::seconds(10));
    }
    let job = job_store::get(&app.state.db, id).await.unwrap().unwrap();
    assert_eq!(
        (job.state.as_str(), job.attempts, job.max_attempts),
        ("dead", 4, 4)
    );
    assert_eq!(
        job_store::list(&app.state.db, Some("dead"), 10)
            .await
            .unwrap()
            .len(),
        1,
        "dead jobs are listable"
    );
    let dead_entries = audit_store::by_action(&app.state.db, "job_dead")
        .await
        .unwrap();
    assert_eq!(dead_entries.len(), 1);
    assert_eq!(dead_entries[0].target, format!("job:{id}"));
    assert_eq!(
        r.run_due().await.unwrap().claimed,
        0,
        "a dead job stays dead"
    );

    assert!(jobs::requeue(
        &app.state.db,
        id,
        &app.state.jobs,
        Actor::System,
        app.clock.now()
    )
    .await
    .unwrap());
    assert!(
        !jobs::requeue(
            &app.state.db,
            id,
            &app.state.jobs,
            Actor::System,
            app.clock.now()
        )
        .await
        .unwrap(),
        "only dead jobs"
    );
    let job = job_store::get(&app.state.db, id).await.unwrap().unwrap();
    assert_eq!((job.state.as_str(), job.max_attempts), ("queued", 8));
    assert_eq!(
        audit_store::by_action(&app.state.db, "job_requeued")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(r.run_due().await.unwrap().claimed, 1, "it runs again");
}

#[tokio::test]
async fn a_lost_attempt_is_reclaimed_after_its_lease_and_the_old_worker_is_fenced_off() {
    let app = TestApp::new().await;
    let id = enqueue(&app.state.db, SELFTEST, json!({}), start_time()).await;
    let now = store::to_micros(start_time());
    let lease_until = store::to_micros(start_time() + Duration::from_secs(300));
    // Worker A claims the job and then vanishes.
    let claimed = job_store::claim(&app.state.db, "worker-a", now, lease_until, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let b = runner(&app).with_worker_id("worker-b");
    assert_eq!(
        b.run_due().await.unwrap().claimed,
        0,
        "held while the lease lasts"
    );

    app.clock.advance(time::Duration::seconds(301));
    let pass = b.run_due().await.unwrap();
    assert_eq!((pass.claimed, pass.succeeded), (1, 1));
    let attempts = job_store::attempts(&app.state.db, id).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.attempt, a.outcome.as_str(), a.worker.as_str()))
            .collect::<Vec<_>>(),
        [(1, "lost", "worker-a"), (2, "succeeded", "worker-b")]
    );

    // A wakes up and tries to record its result: refused.
    let mut tx = app.state.db.begin().await.unwrap();
    let applied = job_store::finish(&mut tx, id, 1, "worker-a", now, Some("late failure"), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(!applied);
    assert_eq!(
        job_store::get(&app.state.db, id)
            .await
            .unwrap()
            .unwrap()
            .state,
        "succeeded"
    );
}

/// Counts how many times each job id was run.
struct Counting {
    runs: Arc<Mutex<HashMap<i64, Vec<i32>>>>,
}

const COUNTING: JobKind = JobKind {
    name: "counting",
    retry_delays_secs: &[1],
};

#[async_trait::async_trait]
impl JobHandler for Counting {
    fn kind(&self) -> JobKind {
        COUNTING
    }
    async fn run(&self, _ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        self.runs
            .lock()
            .unwrap()
            .entry(job.id)
            .or_default()
            .push(job.attempt);
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(())
    }
}

#[tokio::test]
async fn concurrent_workers_never_run_the_same_attempt() {
    let app = TestApp::new().await;
    let test_db = &app.db;
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let mut registry = paydesk::job_registry();
    registry.register(Arc::new(Counting { runs: runs.clone() }));
    let registry = Arc::new(registry);

    let total = 120;
    let mut tx = app.state.db.begin().await.unwrap();
    for i in 0..total {
        jobs::enqueue(
            &mut tx,
            COUNTING,
            &json!({"i": i}),
            start_time(),
            start_time(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    // Four workers, each on a pool of its own, as four processes would be.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let db = test_db.connect().await;
        let ctx = JobContext {
            db,
            clock: app.state.clock.clone(),
            config: app.state.config.clone(),
            platforms: app.state.platforms.clone(),
            metrics: app.state.metrics.clone(),
        };
        let worker = JobRunner::new(ctx, registry.clone()).with_worker_id(format!("w{w}"));
        tasks.push(tokio::spawn(async move {
            let mut idle_passes = 0;
            while idle_passes < 3 {
                if worker.run_due().await.unwrap().claimed == 0 {
                    idle_passes += 1;
                } else {
                    idle_passes = 0;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    {
        let runs = runs.lock().unwrap();
        assert_eq!(runs.len(), total, "every job ran");
        assert!(
            runs.values().all(|attempts| attempts == &vec![1]),
            "each job ran exactly once: {runs:?}"
        );
    }
    let succeeded = job_store::list(&app.state.db, Some("succeeded"), 1000)
        .await
        .unwrap();
    assert_eq!(succeeded.len(), total);
}
