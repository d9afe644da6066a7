//! Bulk refunds against a real sandbox platform process: a 2,000-row file makes exactly 2,000
//! platform refunds (also when a refund commits and the platform then hangs), a batch with
//! refused rows sends nothing until its uploader leaves them out, the uploader cannot approve
//! their own batch, and a file naming another service's payments refunds nothing there.

use std::collections::BTreeSet;

use paydesk::identity::permissions::Role;
use paydesk::journeys::sync::{self, BackfillSettings, Stream};
use paydesk::refunds::bulk::{self, BatchRefusal};
use paydesk::refunds::{RefundSettings, Staff};
use paydesk::store::refund_batches as batch_store;
use serde_json::json;

use crate::common::sandbox::SandboxProcess;
use crate::common::{refund_app, set_refund_settings, TestApp};

pub(crate) struct World {
    pub(crate) app: TestApp,
    pub(crate) sandbox: SandboxProcess,
    pub(crate) service_id: i64,
    pub(crate) other_service: i64,
    pub(crate) finance: Staff,
    pub(crate) approver: Staff,
}

pub(crate) fn staff(id: i64, email: &str, name: &str) -> Staff {
    Staff {
        id,
        email: email.into(),
        name: name.into(),
        ip: None,
    }
}

/// A sandbox with `seed` payments on each of two accounts, both read into paydesk (services
/// "parking" and "planning"), a finance person and a service admin of parking.
pub(crate) async fn world(seed: usize, threshold: Option<i64>) -> World {
    let seed = seed.to_string();
    let sandbox = SandboxProcess::start_with(&[
        "--seed",
        &seed,
        "--accounts",
        "2",
        "--refund-delay-ms",
        "50",
    ]);
    let app = refund_app(|c| c.job_concurrency = 8).await;
    let service_id = sandbox.connect(&app, "parking", 1).await;
    let other_service = sandbox.connect(&app, "planning", 2).await;
    for s in [service_id, other_service] {
        set_refund_settings(
            &app,
            s,
            &RefundSettings {
                refund_approval_threshold: threshold,
                ..Default::default()
            },
        )
        .await;
        let service = paydesk::services::by_id(&app.state.db, s)
            .await
            .unwrap()
            .unwrap();
        let client = app
            .state
            .platforms
            .client(&app.state.config, &service)
            .unwrap();
        let pass = sync::backfill(
            &app.state.db,
            time::OffsetDateTime::now_utc,
            client.as_ref(),
            s,
            Stream::Payments,
            BackfillSettings {
                overlap: std::time::Duration::from_secs(900),
                page_size: 500,
                budget: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(pass, sync::Pass::Complete);
    }
    let fin = app
        .person("bulk-fin@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    let admin = app
        .person(
            "bulk-admin@example.gov.uk",
            Role::ServiceAdmin,
            Some("parking"),
        )
        .await;
    World {
        finance: staff(fin.id, &fin.email, "Fin Ance"),
        approver: staff(admin.id, &admin.email, "Ad Min"),
        app,
        sandbox,
        service_id,
        other_service,
    }
}

impl World {
    pub(crate) fn scope(&self) -> BTreeSet<i64> {
        BTreeSet::from([self.service_id])
    }

    pub(crate) async fn refundable(&self, service_id: i64, n: i64) -> Vec<(String, i64, i64)> {
        batch_store::refundable_sample(&self.app.state.db, service_id, n)
            .await
            .unwrap()
    }

    pub(crate) async fn upload(&self, who: &Staff, text: &str) -> i64 {
        bulk::upload(
            &self.app.state.db,
            self.app.state.clock.now(),
            who,
            Some(&self.scope()),
            "refunds.csv",
            text.as_bytes(),
        )
        .await
        .unwrap()
        .unwrap()
    }

    pub(crate) async fn batch(&self, id: i64) -> batch_store::BatchRow {
        batch_store::by_id(&self.app.state.db, id)
            .await
            .unwrap()
            .unwrap()
    }

    pub(crate) async fn platform_refunds(&self, account: &str) -> i64 {
        self.sandbox.totals(account).await["refunds"]
            .as_i64()
            .unwrap()
    }

    /// Run the jobs that are due now until none is left (follow-ups, due later, wait).
    pub(crate) async fn run_jobs(&self) {
        let runner = self.app.state.job_runner();
        let mut idle = 0;
        for _ in 0..10_000 {
            let pass = runner.run_due().await.unwrap();
            if pass.claimed == 0 {
                idle += 1;
                if idle > 2 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            } else {
                idle = 0;
            }
        }
    }
}

pub(crate) fn csv_of(rows: &[(String, i64, i64)], amount: impl Fn(i64) -> String) -> String {
    let mut text = String::from("payment_id,amount,reason,comment\r\n");
    for (id, _, available) in rows {
        text.push_str(&format!(
            "{id},{},duplicate,\"bulk, test\"\r\n",
            amount(*available)
        ));
    }
    text
}

#[tokio::test]
async fn a_2000_row_batch_makes_exactly_2000_platform_refunds() {
    let w = world(2900, None).await;
    let mut rows = w.refundable(w.service_id, 2100).await;
    rows.retain(|r| r.2 >= 100);
    rows.truncate(2000);
    assert_eq!(
        rows.len(),
        2000,
        "the sandbox seeds enough refundable payments"
    );
    let before = w.platform_refunds("account-1").await;
    let text = csv_of(&rows, |_| "1.00".into());
    let id = w.upload(&w.finance, &text).await;
    let b = w.batch(id).await;
    assert_eq!(
        (b.ready_count, b.refused_count, b.total_amount),
        (2000, 0, 200_000)
    );
    assert_eq!(b.file_hash, bulk::hash_of(text.as_bytes()));
    // The first refund commits on the platform and then the platform hangs.
    w.sandbox
        .set_faults("account-1", json!({"refund_commit_then_hang_next": 1}))
        .await;
    let now = w.app.state.clock.now();
    bulk::confirm(&w.app.state.db, now, &w.finance, id, &b.file_hash, false)
        .await
        .unwrap()
        .unwrap();
    w.run_jobs().await;
    // The hung attempt is retried after its delay; run again past it.
    for _ in 0..5 {
        w.app.clock.advance(time::Duration::seconds(20));
        w.run_jobs().await;
    }
    let made = w.platform_refunds("account-1").await - before;
    if made != 2000 {
        let jobs = paydesk::store::jobs::list(&w.app.state.db, None, 5000)
            .await
            .unwrap();
        let mut by: std::collections::BTreeMap<(String, String), (usize, Option<String>)> =
            Default::default();
        for j in jobs {
            let e = by.entry((j.kind, j.state)).or_default();
            e.0 += 1;
            if j.last_error.is_some() {
                e.1 = j.last_error;
            }
        }
        panic!(
            "{made} refunds; jobs: {by:#?}; progress {:?}",
            bulk::progress(&w.app.state.db, id).await.unwrap()
        );
    }
    let p = bulk::progress(&w.app.state.db, id).await.unwrap();
    assert_eq!((p.to_send, p.requested, p.waiting), (2000, 2000, 0));
    assert_eq!(w.batch(id).await.state, "sent");
    // Nothing more is sent by running everything again.
    w.app.clock.advance(time::Duration::minutes(30));
    w.run_jobs().await;
    assert_eq!(w.platform_refunds("account-1").await - before, 2000);
    let csv = bulk::results_csv(&w.app.state.db, id).await.unwrap();
    assert_eq!(String::from_utf8(csv).unwrap().lines().count(), 2001);
}

#[tokio::test]
async fn refused_rows_send_nothing_until_left_out() {
    let w = world(60, None).await;
    let rows = w.refundable(w.service_id, 3).await;
    let before = w.platform_refunds("account-1").await;
    let mut text = csv_of(&rows, |_| "1.00".into());
    text.push_str("no-such-payment,1.00,duplicate,\r\n");
    text.push_str(&format!("{},-1,duplicate,\r\n", rows[0].0));
    text.push_str(&format!(
        "{},£5,duplicate,\"=HYPERLINK(\"\"http://x\"\")\"\r\n",
        rows[1].0
    ));
    let id = w.upload(&w.finance, &text).await;
    let b = w.batch(id).await;
    assert_eq!((b.ready_count, b.refused_count), (3, 3));
    let refused = batch_store::refused_rows(&w.app.state.db, id, 10)
        .await
        .unwrap();
    let lines: Vec<i64> = refused.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![5, 6, 7]);
    assert!(refused[0].message.contains("no-such-payment"));
    assert!(refused[1].message.contains("cannot be read"));
    assert!(refused[2].message.contains("formula"));
    let db = &w.app.state.db;
    let now = w.app.state.clock.now();
    let r = bulk::confirm(db, now, &w.finance, id, &b.file_hash, false)
        .await
        .unwrap();
    assert_eq!(r, Err(BatchRefusal::RefusedRows));
    let r = bulk::confirm(db, now, &w.finance, id, "not-the-hash", true)
        .await
        .unwrap();
    assert_eq!(r, Err(BatchRefusal::FileChanged));
    w.run_jobs().await;
    assert_eq!(
        w.platform_refunds("account-1").await,
        before,
        "nothing sent yet"
    );
    bulk::confirm(db, now, &w.finance, id, &b.file_hash, true)
        .await
        .unwrap()
        .unwrap();
    w.run_jobs().await;
    assert_eq!(w.platform_refunds("account-1").await - before, 3);
}

#[tokio::test]
async fn a_large_batch_is_approved_by_someone_else_for_the_file_they_saw() {
    let w = world(60, Some(150)).await;
    let rows = w.refundable(w.service_id, 2).await;
    let before = w.platform_refunds("account-1").await;
    let text = csv_of(&rows, |_| "1.00".into());
    let id = w.upload(&w.finance, &text).await;
    let b = w.batch(id).await;
    assert!(
        b.needs_approval,
        "£2.00 in all is above the £1.50 threshold"
    );
    let db = &w.app.state.db;
    let now = w.app.state.clock.now();
    bulk::confirm(db, now, &w.finance, id, &b.file_hash, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.batch(id).await.state, "awaiting_approval");
    let own = bulk::approve(db, now, &w.finance, id, &b.file_hash)
        .await
        .unwrap();
    assert_eq!(own, Err(BatchRefusal::OwnBatch));
    let stale = bulk::approve(db, now, &w.approver, id, "another-hash")
        .await
        .unwrap();
    assert_eq!(stale, Err(BatchRefusal::FileChanged));
    // Both refusals are in the audit log, as failed approvals naming the batch.
    let refusals: i64 = paydesk::on_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'refund_batch_approved' \
         AND outcome = 'failure' AND target = $1")
        .bind(format!("refund_batch:{id}"))
        .fetch_one(pool).await.expect("count refusals"));
    assert_eq!(refusals, 2);
    w.run_jobs().await;
    assert_eq!(w.platform_refunds("account-1").await, before);
    bulk::approve(db, now, &w.approver, id, &b.file_hash)
        .await
        .unwrap()
        .unwrap();
    let again = bulk::approve(db, now, &w.approver, id, &b.file_hash)
        .await
        .unwrap();
    assert_eq!(again, Err(BatchRefusal::NotNow));
    w.run_jobs().await;
    assert_eq!(w.platform_refunds("account-1").await - before, 2);
    let b = w.batch(id).await;
    assert_eq!(b.approved_by, Some(w.approver.id));
    assert_eq!(b.state, "sent");
}

#[tokio::test]
async fn another_services_payments_are_refused_and_pause_holds_the_rest() {
    let w = world(60, None).await;
    let theirs = w.refundable(w.other_service, 2).await;
    let ours = w.refundable(w.service_id, 3).await;
    let before = (
        w.platform_refunds("account-1").await,
        w.platform_refunds("account-2").await,
    );
    let id = w
        .upload(&w.finance, &csv_of(&theirs, |_| "1.00".into()))
        .await;
    let b = w.batch(id).await;
    assert_eq!((b.ready_count, b.refused_count), (0, 2));
    let refused = batch_store::refused_rows(&w.app.state.db, id, 10)
        .await
        .unwrap();
    assert!(refused[0].message.contains("cannot make bulk refunds"));
    let db = &w.app.state.db;
    let now = w.app.state.clock.now();
    let r = bulk::confirm(db, now, &w.finance, id, &b.file_hash, true)
        .await
        .unwrap();
    assert_eq!(r, Err(BatchRefusal::NothingReady));
    // Pause before any row is sent: nothing goes; resume: everything goes.
    let id = w
        .upload(&w.finance, &csv_of(&ours, |_| "1.00".into()))
        .await;
    let b = w.batch(id).await;
    bulk::confirm(db, now, &w.finance, id, &b.file_hash, false)
        .await
        .unwrap()
        .unwrap();
    bulk::pause(db, now, &w.finance, id, false)
        .await
        .unwrap()
        .unwrap();
    w.run_jobs().await;
    assert_eq!(w.platform_refunds("account-1").await, before.0);
    assert_eq!(bulk::progress(db, id).await.unwrap().waiting, 3);
    bulk::pause(db, now, &w.finance, id, true)
        .await
        .unwrap()
        .unwrap();
    w.run_jobs().await;
    assert_eq!(w.platform_refunds("account-1").await - before.0, 3);
    assert_eq!(w.platform_refunds("account-2").await, before.1);
}

/// `paydesk serve` processes working the same database: the first is killed with SIGKILL
/// part-way through a 2,000-row batch (with a refund that commits on the platform and then
/// hangs), and two more (two instances at once) finish it. The platform's refunds are
/// exactly the rows: 2,000, not one more.
#[tokio::test]
async fn a_batch_survives_kill_9_and_two_instances_at_once() {
    use crate::common::{eventually, Server};
    use std::time::Duration;
    const ROWS: i64 = 2000;
    let w = world(2900, None).await;
    let mut rows = w.refundable(w.service_id, 2100).await;
    rows.retain(|r| r.2 >= 100);
    rows.truncate(ROWS as usize);
    assert_eq!(rows.len() as i64, ROWS);
    let before = w.platform_refunds("account-1").await;
    let id = w
        .upload(&w.finance, &csv_of(&rows, |_| "1.00".into()))
        .await;
    let b = w.batch(id).await;
    bulk::confirm(
        &w.app.state.db,
        w.app.state.clock.now(),
        &w.finance,
        id,
        &b.file_hash,
        false,
    )
    .await
    .unwrap()
    .unwrap();
    let env = [
        ("PAYDESK_JOB_LEASE_SECS", "3"),
        ("PAYDESK_JOB_POLL_MS", "100"),
        ("PAYDESK_JOB_CONCURRENCY", "8"),
        ("PAYDESK_PLATFORM_TIMEOUT_MS", "1500"),
        ("PAYDESK_PLATFORM_RETRIES", "0"),
    ];
    let url = w.app.db.url().to_string();
    w.sandbox
        .set_faults("account-1", json!({"refund_commit_then_hang_next": 1}))
        .await;
    let first = Server::start(&url, &env);
    let db = w.app.state.db.clone();
    let partway = eventually(Duration::from_secs(60), || async {
        let p = bulk::progress(&db, id).await.unwrap();
        (p.requested >= 300).then_some(p)
    })
    .await;
    assert!(partway.is_some(), "the first instance started the batch");
    first.kill_hard();
    let p = bulk::progress(&db, id).await.unwrap();
    assert!(p.waiting > 0, "killed mid-batch: {p:?}");
    let second = Server::start(&url, &env);
    let third = Server::start(&url, &env);
    let started = std::time::Instant::now();
    // Done when every row's refund has settled; then the platform's count must be the rows'.
    let done = eventually(Duration::from_secs(400), || async {
        let p = bulk::progress(&db, id).await.unwrap();
        (p.waiting == 0 && p.in_flight == 0).then_some(p)
    })
    .await;
    let p = bulk::progress(&db, id).await.unwrap();
    assert!(done.is_some(), "not finished: {p:?}");
    eprintln!(
        "{ROWS} rows finished by two instances in {:.1} s after the kill",
        started.elapsed().as_secs_f64()
    );
    assert_eq!((p.requested, p.succeeded, p.failed), (ROWS, ROWS, 0));
    assert_eq!(w.platform_refunds("account-1").await - before, ROWS);
    // Nothing more arrives later (a late duplicate would show here).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.platform_refunds("account-1").await - before, ROWS);
    drop(second);
    drop(third);
}
