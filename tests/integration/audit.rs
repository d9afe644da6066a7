use paydesk::audit::{self, Actor, AuditEvent, Break};
use paydesk::store::audit as audit_store;
use paydesk::store::Db;
use serde_json::json;

use crate::common::{start_time, TestDb};

fn event(i: usize) -> AuditEvent {
    AuditEvent::new(
        Actor::Staff {
            id: "7".into(),
            label: "case.worker@council.example".into(),
        },
        "refund_requested",
        format!("payment:pay{i}"),
    )
    .from_ip(Some("192.0.2.10".into()))
    .details(json!({"amount": 1000 + i, "reason": "duplicate payment"}))
}

async fn log_with(n: usize) -> (TestDb, Db) {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    for i in 0..n {
        audit::record(&db, start_time(), event(i)).await.unwrap();
    }
    (test_db, db)
}

/// Run raw SQL with the append-only triggers switched off, as an intruder with database
/// access would.
pub(crate) async fn tamper(db: &Db, sql: &str) {
    match db {
        Db::Sqlite(pool, _) => {
            sqlx::raw_sql("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
                .execute(pool)
                .await
                .unwrap();
            sqlx::raw_sql(sql).execute(pool).await.unwrap();
        }
        Db::Postgres(pool, _) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::raw_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap();
            sqlx::raw_sql("ALTER TABLE audit_log ENABLE TRIGGER USER")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }
}

/// Put the triggers back, so that a report shows only the break itself.
async fn restore_triggers(db: &Db) {
    if let Db::Sqlite(pool, _) = db {
        sqlx::raw_sql(
            "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'x'); END; \
             CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'x'); END;",
        )
        .execute(pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let (_t, db) = log_with(6).await;
    let report = audit::verify(&db, None).await.unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.entries, 6);
    let rows = audit_store::latest(&db, 10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![6, 5, 4, 3, 2, 1]
    );
    assert_eq!(rows[0].origin_ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(
        rows[0].details,
        r#"{"amount":1005,"reason":"duplicate payment"}"#
    );
}

#[tokio::test]
async fn the_database_refuses_update_and_delete() {
    let (_t, db) = log_with(3).await;
    for sql in [
        "UPDATE audit_log SET action = 'nothing_to_see' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_log",
    ] {
        let result = paydesk::on_db!(&db, pool => sqlx::query(sql).execute(pool).await.map(|_| ()));
        let err = result.expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    if let Db::Postgres(pool, _) = &db {
        let err = sqlx::query("TRUNCATE audit_log")
            .execute(pool)
            .await
            .expect_err("truncate")
            .to_string();
        assert!(err.contains("append-only"), "{err}");
    }
    assert_eq!(audit_store::count(&db).await.unwrap(), 3);
    assert!(audit::verify(&db, None).await.unwrap().intact());
}

#[tokio::test]
async fn an_edited_entry_is_named() {
    let (_t, db) = log_with(6).await;
    tamper(&db, "UPDATE audit_log SET details = '{\"amount\":1,\"reason\":\"duplicate payment\"}' WHERE seq = 3").await;
    let report = audit::verify(&db, None).await.unwrap();
    assert_eq!(report.problem, Some(Break::HashMismatch { seq: 3 }));
    assert!(!report.intact());
}

#[tokio::test]
async fn missing_or_disabled_triggers_make_the_log_unprotected() {
    let (_t, db) = log_with(2).await;
    match &db {
        Db::Sqlite(pool, _) => sqlx::raw_sql("DROP TRIGGER audit_log_no_delete")
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap(),
        Db::Postgres(pool, _) => {
            sqlx::raw_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_delete")
                .execute(pool)
                .await
                .map(|_| ())
                .unwrap()
        }
    };
    let report = audit::verify(&db, None).await.unwrap();
    assert_eq!(report.problem, None, "the chain itself still holds");
    assert!(
        !report.triggers_present,
        "a removed or disabled trigger must be reported"
    );
    assert!(!report.intact());
}

#[tokio::test]
async fn a_deleted_entry_in_the_middle_is_named() {
    let (_t, db) = log_with(6).await;
    tamper(&db, "DELETE FROM audit_log WHERE seq = 4").await;
    restore_triggers(&db).await;
    let report = audit::verify(&db, None).await.unwrap();
    assert_eq!(
        report.problem,
        Some(Break::Gap {
            expected: 4,
            found: 5
        })
    );
    assert!(report.triggers_present, "the triggers were put back");
    assert_eq!(report.problem.unwrap().first_bad_seq(), 4);
}

#[tokio::test]
async fn truncation_is_caught_by_a_checkpoint() {
    let (_t, db) = log_with(5).await;
    let key = b"checkpoint key";
    let cp = audit::checkpoint(&db, key, start_time()).await.unwrap();
    assert_eq!(cp.size, 5);
    cp.authenticate(key).unwrap();
    for i in 0..2 {
        audit::record(&db, start_time(), event(10 + i))
            .await
            .unwrap();
    }
    let report = audit::verify(&db, Some(&cp)).await.unwrap();
    assert!(
        report.intact(),
        "growth after a checkpoint is fine: {report:?}"
    );

    // Deleting the newest entries leaves a perfectly consistent chain; only the checkpoint
    // shows that entries 4..7 once existed.
    tamper(&db, "DELETE FROM audit_log WHERE seq >= 4").await;
    restore_triggers(&db).await;
    assert!(audit::verify(&db, None).await.unwrap().problem.is_none());
    let report = audit::verify(&db, Some(&cp)).await.unwrap();
    assert_eq!(
        report.problem,
        Some(Break::Truncated {
            checkpoint_size: 5,
            log_size: 3
        })
    );
    assert_eq!(report.problem.unwrap().first_bad_seq(), 4);
}

#[tokio::test]
async fn rewriting_the_whole_chain_is_caught_by_a_checkpoint() {
    let (_t, db) = log_with(4).await;
    let cp = audit::checkpoint(&db, b"k", start_time()).await.unwrap();
    // An intruder rewrites history and recomputes every hash so the chain holds again.
    let mut rows = audit_store::latest(&db, 100).await.unwrap();
    rows.reverse();
    rows[1].details = r#"{"amount":999999,"reason":"duplicate payment"}"#.into();
    let mut prev = [0u8; 32];
    for row in rows.iter_mut() {
        let h = audit::entry_hash(&prev, row);
        row.hash = hex::encode(h);
        prev = h;
    }
    tamper(&db, "DELETE FROM audit_log").await;
    restore_triggers(&db).await;
    let mut tx = db.begin().await.unwrap();
    audit_store::insert_many(&mut tx, &rows).await.unwrap();
    tx.commit().await.unwrap();

    // Plain links are self-consistent, but links are keyed: no entry carries this paydesk's
    // key, so the forgery shows even without the checkpoint.
    assert_eq!(
        audit::verify(&db, None).await.unwrap().problem,
        Some(Break::NotKeyed { entries: 4 })
    );
    let report = audit::verify(&db, Some(&cp)).await.unwrap();
    assert_eq!(report.problem, Some(Break::CheckpointMismatch { seq: 4 }));
}

#[tokio::test]
async fn a_forged_checkpoint_does_not_authenticate() {
    let (_t, db) = log_with(2).await;
    let mut cp = audit::checkpoint(&db, b"real key", start_time())
        .await
        .unwrap();
    assert!(cp.authenticate(b"another key").is_err());
    cp.size = 1;
    assert!(cp.authenticate(b"real key").is_err());
}

#[tokio::test]
async fn appends_stay_linear_under_concurrency_from_two_pools() {
    // Two pools on one database stand for two paydesk processes.
    let test_db = TestDb::new().await;
    let pools = [test_db.connect().await, test_db.connect().await];
    let mut tasks = Vec::new();
    for w in 0..8 {
        let db = pools[w % 2].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                audit::record(&db, start_time(), event(w * 100 + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = audit::verify(&pools[0], None).await.unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.entries, 120);
}

#[tokio::test]
async fn an_entry_commits_or_rolls_back_with_its_transaction() {
    let (_t, db) = log_with(1).await;
    let mut tx = db.begin().await.unwrap();
    audit::append(&mut tx, start_time(), event(2))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(audit_store::count(&db).await.unwrap(), 1);

    let mut tx = db.begin().await.unwrap();
    let row = audit::append(&mut tx, start_time(), event(3))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(row.seq, 2, "a rolled-back entry leaves no gap");
    assert!(audit::verify(&db, None).await.unwrap().intact());
}

#[tokio::test]
async fn secrets_never_reach_the_details() {
    let (_t, db) = log_with(0).await;
    let row = audit::record(
        &db,
        start_time(),
        event(0).details(json!({"password": "correct horse battery", "note": "x"})),
    )
    .await
    .unwrap();
    assert!(!row.details.contains("correct horse"));
    assert!(row.details.contains("[redacted]"));
}

#[tokio::test]
async fn a_rolled_back_entry_never_misleads_the_next_append() {
    // Process A remembers the head it wrote, but that transaction rolls back; process B then
    // writes the real entry with the same number. A's next append must chain to B's entry.
    let test_db = TestDb::new().await;
    let (a, b) = (test_db.connect().await, test_db.connect().await);
    audit::record(&a, start_time(), event(1)).await.unwrap();
    let mut tx = a.begin().await.unwrap();
    audit::append(&mut tx, start_time(), event(2))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    audit::record(&b, start_time(), event(3)).await.unwrap();
    let row = audit::record(&a, start_time(), event(4)).await.unwrap();
    assert_eq!(row.seq, 3);
    let mut tx = a.begin().await.unwrap();
    assert_eq!(
        audit::append(&mut tx, start_time(), event(5))
            .await
            .unwrap()
            .seq,
        4
    );
    tx.commit().await.unwrap();
    let report = audit::verify(&a, None).await.unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.entries, 4);
}

#[tokio::test]
async fn a_transaction_that_appends_twice_never_deadlocks_with_a_standalone_append() {
    // The transaction holds the chain's head (the head row on PostgreSQL, the writer on
    // SQLite); a standalone append waits for it; the transaction then appends again and
    // commits. Neither may wait on the other forever.
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    audit::record(&db, start_time(), event(0)).await.unwrap();
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut tx = db.begin().await.unwrap();
        audit::append(&mut tx, start_time(), event(1))
            .await
            .unwrap();
        let waiting = {
            let db = db.clone();
            tokio::spawn(async move { audit::record(&db, start_time(), event(2)).await.unwrap() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        audit::append(&mut tx, start_time(), event(3))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        waiting.await.unwrap()
    })
    .await;
    let standalone = outcome.expect("no deadlock between a transaction and a standalone append");
    assert_eq!(standalone.seq, 4);
    let report = audit::verify(&db, None).await.unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.entries, 4);
}
