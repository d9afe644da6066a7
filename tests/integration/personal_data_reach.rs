//! Personal data beyond the journey (issue 21, the places retention first did not reach):
//! recurring agreements, the uploaded bulk refund file, form drafts, job attempts' errors and
//! export files are redacted with the payer's payments, scanning every text and byte column for
//! a seeded marker; an open dispute holds a payment; the payer's disputes and agreements are in
//! the subject access bundle.

use paydesk::identity::permissions::Role;
use paydesk::personal_data::retention;
use paydesk::store::Db;
use time::Duration;

use crate::common::{start_time, store_journeys, TestApp};
use crate::personal_data::{exec, month_end, payer, scan};

fn jid(p: &str) -> String {
    format!("(SELECT id FROM journeys WHERE payment_id = '{p}')")
}

/// A stored bulk refund file (bytes as uploaded).
async fn batch(db: &Db, bytes: &[u8], state: &str, uploaded_by: i64, at: i64) {
    let sql = "INSERT INTO refund_batches (file_name, file_bytes, file_hash, row_count, ready_count, \
               refused_count, total_amount, approval_rows, needs_approval, state, uploaded_by, uploaded_at, updated_at) \
               VALUES ('refunds.csv', $1, 'abc123', 2, 1, 1, 100, 0, FALSE, $2, $3, $4, $4)";
    paydesk::on_db!(db, pool => sqlx::query(sql).bind(bytes).bind(state).bind(uploaded_by).bind(at)
        .execute(pool).await.map(|_| ()).expect("batch"));
}

async fn one_text(db: &Db, sql: &str) -> Option<String> {
    paydesk::on_db!(db, pool => sqlx::query_scalar::<_, Option<String>>(sql)
        .fetch_one(pool).await.expect(sql))
}

async fn one_int(db: &Db, sql: &str) -> Option<i64> {
    paydesk::on_db!(db, pool => sqlx::query_scalar::<_, Option<i64>>(sql)
        .fetch_one(pool).await.expect(sql))
}

#[tokio::test]
async fn retention_reaches_agreements_bulk_files_drafts_job_errors_and_exports() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    let service = app.service("parking").await;
    let staff = app
        .person("cw@example.gov", Role::ServiceAdmin, Some("parking"))
        .await;
    let made = start_time() - Duration::days(10);
    let old = paydesk::store::to_micros(made);
    let mut records: Vec<_> = (0..3).map(|n| payer(n, "zqgone", made)).collect();
    records.push(payer(5, "zqdisp", made));
    records.push(payer(6, "zqwon", made));
    store_journeys(&app, service, &records).await;

    // Agreements: one cancelled long ago under pay0 (redacted with it), one still active under
    // pay1 (kept), one cancelled long ago with no payment (redacted by its own date).
    for (id, uid, status, cancelled, pay) in [
        (
            "agr-gone",
            "zqgoneuid",
            "cancelled",
            Some(old),
            Some("pay0"),
        ),
        (
            "agr-active",
            "zqkeepactiveuid",
            "active",
            None,
            Some("pay1"),
        ),
        ("agr-orphan", "zqgoneorphan", "cancelled", Some(old), None),
    ] {
        let rank = if status == "active" { 1 } else { 2 };
        let cancelled = cancelled.map_or("NULL".to_string(), |c| c.to_string());
        exec(db, &format!(
            "INSERT INTO agreements (service_id, agreement_id, reference, description, user_identifier, status, \
             status_rank, created_at, cancelled_at, observed_at, first_seen_at, updated_at) \
             VALUES ({service}, '{id}', 'AGR-{id}', 'Rent for {uid}desc', '{uid}', '{status}', {rank}, {old}, \
             {cancelled}, {old}, {old}, {old})")).await;
        if let Some(p) = pay {
            exec(db, &format!(
                "INSERT INTO agreement_payments (service_id, payment_id, agreement_id) VALUES ({service}, '{p}', '{id}')"
            )).await;
        }
    }
    exec(db, &format!(
        "INSERT INTO agreement_cancellations (service_id, agreement_id, requested_by, reason, state, requested_at) \
         VALUES ({service}, 'agr-gone', 'staff:1', 'Mr zqgonecancel moved away', 'sent', {old})")).await;

    // Disputes: an open one holds pay5; a won one does not hold pay6.
    for (p, status, rank) in [("pay5", "needs_response", 0), ("pay6", "won", 2)] {
        exec(db, &format!(
            "INSERT INTO disputes (service_id, dispute_id, payment_id, journey_id, amount, status, status_rank, \
             created_at, observed_at, first_seen_at, updated_at) \
             VALUES ({service}, 'dsp-{p}', '{p}', {}, 1000, '{status}', {rank}, {old}, {old}, {old}, {old})",
            jid(p))).await;
    }

    // A finished bulk refund file naming pay0 (and a line that found no payment).
    batch(
        db,
        b"payment_id,amount,reason,comment\npay0,100,duplicate,Spoke to zqgonename0\nnope,100,other,zqgoneunmatched\n",
        "sent",
        staff.id,
        old,
    )
    .await;
    exec(db, &format!(
        "INSERT INTO refund_batch_rows (batch_id, line, input, ready, message, service_id, journey_id, payment_id, \
         comment, needs_approval, send_state) VALUES \
         (1, 2, '{{\"comment\":\"Spoke to zqgonename0\"}}', TRUE, 'ok', {service}, {}, 'pay0', 'Spoke to zqgonename0', FALSE, 'requested'), \
         (1, 3, '{{\"comment\":\"zqgoneunmatched\"}}', FALSE, 'No such payment', NULL, NULL, NULL, 'zqgoneunmatched', FALSE, 'left_out')",
        jid("pay0"))).await;

    // Form drafts: a live one naming pay0, and one long expired.
    let later = paydesk::store::to_micros(start_time() + Duration::days(3000));
    exec(
        db,
        &format!(
            "INSERT INTO form_drafts (draft_key, staff_id, kind, body, expires_at) VALUES \
         ('d1', {}, 'refund', '{{\"payment_id\":\"pay0\",\"comment\":\"zqgonedraft\"}}', {later}), \
         ('d2', {}, 'refund', '{{\"comment\":\"zqgoneolddraft\"}}', {old})",
            staff.id, staff.id
        ),
    )
    .await;

    // Mail to pay0's payer whose attempt failed quoting the address.
    exec(db, &format!(
        "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, created_at, updated_at, last_error) \
         VALUES ('mail_send', '{{\"to\":\"zqgonemail0@example.org\",\"subject\":\"Refund\",\"text\":\"Dear Ann\",\"html\":\"\"}}', \
         'succeeded', 2, 5, {old}, {old}, {old}, NULL)")).await;
    exec(db, &format!(
        "INSERT INTO job_attempts (job_id, attempt, worker, started_at, finished_at, outcome, error) \
         VALUES (1, 1, 'w', {old}, {old}, 'failed', '550 <zqgonemail0@example.org>: mailbox unavailable')")).await;

    // A finished export of the service's November made before the run.
    let day = paydesk::store::to_micros(start_time());
    exec(db, &format!(
        "INSERT INTO exports (requested_by, service_ids, filter, gzip, state, rows_expected, rows_written, \
         bytes_written, file_name, created_at, finished_at, expires_at, updated_at) \
         VALUES ({}, '[{service}]', '{{\"from\":\"2026-11-01\",\"to\":\"2026-11-30\"}}', FALSE, 'finished', 1, 1, 10, \
         'x.csv', {day}, {day}, {later}, {day})", staff.id)).await;

    for marker in ["zqgone", "zqwon", "zqdisp"] {
        assert!(!scan(db, marker).await.is_empty(), "seeded {marker}");
    }
    let totals = month_end(&app).await;

    app.clock.advance(Duration::days(2556));
    let now = app.state.clock.now();
    let report = retention::run(db, now).await.expect("run");
    assert_eq!(report.redacted, 4, "{report:?}");

    let left = scan(db, "zqgone").await;
    assert!(left.is_empty(), "redacted payer data still in {left:?}");
    assert!(
        scan(db, "zqwon").await.is_empty(),
        "a finished dispute holds nothing"
    );
    let kept = scan(db, "zqdisp").await;
    assert!(
        kept.iter().any(|k| k.starts_with("journeys.email")),
        "an open dispute holds the payment: {kept:?}"
    );
    let active = scan(db, "zqkeepactiveuid").await;
    assert!(
        active
            .iter()
            .any(|k| k.starts_with("agreements.user_identifier")),
        "an active agreement keeps its data: {active:?}"
    );
    // The bulk file's bytes are gone; its hash, and so what was approved, stays.
    assert_eq!(
        one_text(db, "SELECT file_hash FROM refund_batches WHERE id = 1").await,
        Some("abc123".into())
    );
    assert!(one_int(
        db,
        "SELECT file_removed_at FROM refund_batches WHERE id = 1"
    )
    .await
    .is_some());
    assert_eq!(
        one_int(
            db,
            "SELECT redacted_at FROM agreements WHERE agreement_id = 'agr-gone'"
        )
        .await,
        Some(paydesk::store::to_micros(now))
    );
    // The export made before the run expires now (the cleaner deletes its file).
    assert!(
        one_int(db, "SELECT expires_at FROM exports WHERE id = 1")
            .await
            .is_some_and(|e| e <= paydesk::store::to_micros(now)),
        "export expired"
    );
    assert_eq!(report.exports_expired, 1);
    assert_eq!(
        String::from_utf8_lossy(&month_end(&app).await),
        String::from_utf8_lossy(&totals)
    );
    let verified = paydesk::audit::verify(db, None).await.expect("verify");
    assert!(verified.intact(), "{:?}", verified.problem);

    // A later sync reading the agreement again does not bring its data back.
    let mut tx = db.begin().await.expect("begin");
    paydesk::store::agreements::upsert(
        &mut tx,
        service,
        &paydesk::store::agreements::AgreementRecord {
            agreement_id: "agr-gone".into(),
            reference: "AGR-agr-gone".into(),
            description: "Rent for zqgoneagain".into(),
            user_identifier: Some("zqgoneagain".into()),
            status: "cancelled",
            status_rank: 2,
            card_brand: None,
            card_last4: None,
            card_expiry: None,
            card_type: None,
            created_at: old,
            active_at: None,
            cancelled_at: Some(old),
        },
        paydesk::store::to_micros(now),
        paydesk::store::to_micros(now),
    )
    .await
    .expect("upsert");
    tx.commit().await.expect("commit");
    assert!(scan(db, "zqgoneagain").await.is_empty());
}

#[tokio::test]
async fn subject_access_includes_the_payers_disputes_and_agreements() {
    use paydesk::personal_data::access::{self, Payer};
    let app = TestApp::new().await;
    let db = &app.state.db;
    let service = app.service("parking").await;
    let mut a = payer(1, "zqsad", start_time());
    a.email = Some("dispute.payer@example.org".into());
    store_journeys(&app, service, &[a]).await;
    let at = paydesk::store::to_micros(start_time());
    exec(db, &format!(
        "INSERT INTO disputes (service_id, dispute_id, payment_id, journey_id, amount, reason, status, status_rank, \
         created_at, observed_at, first_seen_at, updated_at) \
         VALUES ({service}, 'dsp-1', 'pay1', {}, 1000, 'fraudulent', 'under_review', 1, {at}, {at}, {at}, {at})",
        jid("pay1"))).await;
    exec(db, &format!(
        "INSERT INTO agreements (service_id, agreement_id, reference, description, user_identifier, status, \
         status_rank, created_at, observed_at, first_seen_at, updated_at) \
         VALUES ({service}, 'agr-1', 'AGR-1', 'Monthly rent', 'tenant-77', 'active', 1, {at}, {at}, {at}, {at})"
    )).await;
    exec(db, &format!(
        "INSERT INTO agreement_payments (service_id, payment_id, agreement_id) VALUES ({service}, 'pay1', 'agr-1')"
    )).await;
    let doc = access::bundle(
        db,
        start_time(),
        paydesk::audit::Actor::System,
        None,
        &[service],
        &Payer::parse("dispute.payer@example.org", "", "").expect("payer"),
    )
    .await
    .expect("bundle");
    assert_eq!(doc["disputes"][0]["dispute_id"], "dsp-1", "{doc}");
    assert_eq!(doc["disputes"][0]["status"], "under_review");
    assert_eq!(
        doc["agreements"][0]["user_identifier"], "tenant-77",
        "{doc}"
    );
    assert_eq!(doc["agreements"][0]["description"], "Monthly rent");
    // The open dispute holds the payment: retention skips it.
    app.clock.advance(Duration::days(2556));
    let report = retention::run(db, app.state.clock.now())
        .await
        .expect("run");
    assert_eq!((report.redacted, report.held), (0, 1));
}

/// `n` payers of the parking service (their data marked with `marker`), then the clock moved
/// past the default retention period.
async fn payers_past_retention(app: &TestApp, n: usize, marker: &str) {
    let service = app.service("parking").await;
    let made = start_time() - Duration::days(10);
    store_journeys(
        app,
        service,
        &(0..n).map(|i| payer(i, marker, made)).collect::<Vec<_>>(),
    )
    .await;
    app.clock.advance(Duration::days(2556));
}

#[tokio::test]
async fn a_run_past_its_budget_stops_and_the_job_queues_the_rest() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    payers_past_retention(&app, 3, "zqbudget").await;
    let now = app.state.clock.now();
    let pace = retention::Pace {
        batch: 1,
        pause_percent: 0,
        tidy_every: 1,
    };
    let stopped = retention::run_paced(db, now, pace, Some(std::time::Duration::ZERO))
        .await
        .expect("run");
    assert!(stopped.unfinished);
    assert_eq!(stopped.redacted, 0);
    // The daily job redacts in batches and, done within its budget, queues no follow-up.
    assert!(retention::schedule(db, now).await.expect("schedule"));
    app.state.job_runner().run_due().await.expect("run the job");
    assert!(scan(db, "zqbudget").await.is_empty());
    let queued: i64 = paydesk::on_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'personal_data_retention' AND state = 'queued'")
        .fetch_one(pool).await.expect("count"));
    assert_eq!(queued, 0);
}

/// On PostgreSQL a long run VACUUMs the journeys part-way (every `tidy_every` journeys), so
/// dead row versions do not pile up under people's searches; the last VACUUM comes at the end.
#[tokio::test]
async fn a_long_run_tidies_the_journeys_as_it_goes() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    payers_past_retention(&app, 5, "zqtidy").await;
    let vacuums = "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'journeys'";
    let postgres = matches!(db, Db::Postgres(..));
    let before = if postgres {
        one_int(db, vacuums).await
    } else {
        None
    };
    let pace = retention::Pace {
        batch: 1,
        pause_percent: 0,
        tidy_every: 2,
    };
    let report = retention::run_paced(db, app.state.clock.now(), pace, None)
        .await
        .expect("run");
    assert_eq!(report.redacted, 5);
    assert!(scan(db, "zqtidy").await.is_empty());
    if postgres {
        let after = one_int(db, vacuums).await.expect("journeys' statistics");
        // Two tidies (after the 2nd and the 4th journey) and the VACUUM that ends the run.
        assert_eq!(after - before.unwrap_or(0), 3);
    }
}
