//! Issue 16, items 5–8: an audit chain that holds against someone with the database. Every
//! test acts as an intruder with write access to the database would: the append-only
//! triggers dropped or disabled, rows edited with SQL, then `verify` (the function, and the
//! real binary where it matters) must name what happened.

use std::net::SocketAddr;

use paydesk::audit::{self, anchor, Actor, AuditEvent, Break};
use paydesk::config::Config;
use paydesk::store::audit::{self as audit_store, AuditRow};
use paydesk::store::Db;
use rocket::http::{ContentType, Header, Status};
use serde_json::json;

use crate::admin_services::{unescape, Visitor};
use crate::audit::tamper;
use crate::common::{paydesk_command, start_time, Server, TestApp, TestDb};
use paydesk::identity::permissions::Role;

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

async fn append(db: &Db, from: usize, n: usize) {
    for i in from..from + n {
        audit::record(db, start_time(), event(i)).await.unwrap();
    }
}

/// Put the triggers back (SQLite drops them to tamper), so a report shows only the break.
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

async fn attack(db: &Db, sql: &str) {
    tamper(db, sql).await;
    restore_triggers(db).await;
}

async fn problem(db: &Db) -> Option<Break> {
    let report = audit::verify(db, None).await.unwrap();
    assert!(report.triggers_present, "the triggers were put back");
    report.problem
}

fn output(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().expect("run paydesk");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A plain HTTP form POST to a running server, without cookies; the status line and headers.
fn raw_post(port: u16, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

async fn rehash_plain_from(db: &Db, from: i64) {
    rehash_plain(db, from, i64::MAX).await
}

/// Rewrite entries `from..=to` with plain SHA-256 links recomputed forward, as someone who has
/// the database but not the key would (insert-only is enough once the rows are gone).
async fn rehash_plain(db: &Db, from: i64, to: i64) {
    let mut rows = audit_store::latest(db, 1_000).await.unwrap();
    rows.reverse();
    let mut prev: [u8; 32] = match rows.iter().find(|r| r.seq == from - 1) {
        Some(r) => hex::decode(&r.hash).unwrap().try_into().unwrap(),
        None => [0u8; 32],
    };
    let mut forged: Vec<AuditRow> = rows
        .into_iter()
        .filter(|r| r.seq >= from && r.seq <= to)
        .collect();
    forged[0].details = r#"{"amount":999999,"reason":"duplicate payment"}"#.into();
    for row in forged.iter_mut() {
        let h = audit::entry_hash(&prev, row);
        row.hash = hex::encode(h);
        prev = h;
    }
    attack(
        db,
        &format!("DELETE FROM audit_log WHERE seq >= {from} AND seq <= {to}"),
    )
    .await;
    let mut tx = db.begin().await.unwrap();
    audit_store::insert_many(&mut tx, &forged).await.unwrap();
    tx.commit().await.unwrap();
}

fn cli_verify(url: &str) -> (i32, String) {
    let (code, out, err) = output(paydesk_command(url).args(["audit", "verify"]));
    (code, format!("{out}{err}"))
}

#[tokio::test]
async fn an_edit_to_any_column_or_to_the_stored_hash_is_named() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    append(&db, 0, 6).await;
    assert_eq!(problem(&db).await, None);
    // A copy of entry 3, to put each column back after editing it.
    paydesk::on_db!(&db, pool => {
        sqlx::raw_sql("CREATE TABLE kept AS SELECT * FROM audit_log WHERE seq = 3")
            .execute(pool)
            .await
            .unwrap();
    });
    let edits = [
        ("occurred_at", "occurred_at + 1"),
        ("actor_type", "'system'"),
        ("actor_id", "'8'"),
        ("actor_label", "'someone.else@council.example'"),
        ("action", "'refund_viewed'"),
        ("target", "'payment:other'"),
        ("outcome", "'failure'"),
        ("origin_ip", "NULL"),
        (
            "details",
            "'{\"amount\":1,\"reason\":\"duplicate payment\"}'",
        ),
        // The same hash, written differently, and another hash altogether.
        ("hash", "upper(hash)"),
        (
            "hash",
            "CASE WHEN substr(hash, 1, 2) = 'ff' THEN 'ee' ELSE 'ff' END || substr(hash, 3)",
        ),
    ];
    for (column, value) in edits {
        attack(
            &db,
            &format!("UPDATE audit_log SET {column} = {value} WHERE seq = 3"),
        )
        .await;
        assert_eq!(
            problem(&db).await,
            Some(Break::HashMismatch { seq: 3 }),
            "editing {column} to {value}"
        );
        attack(
            &db,
            &format!("UPDATE audit_log SET {column} = (SELECT {column} FROM kept) WHERE seq = 3"),
        )
        .await;
        assert_eq!(problem(&db).await, None, "{column} put back");
    }
    // Through the binary too, with and without a checkpoint.
    attack(
        &db,
        "UPDATE audit_log SET actor_type = 'system' WHERE seq = 3",
    )
    .await;
    let (code, out) = cli_verify(test_db.url());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("first bad entry is sequence 3"), "{out}");
    let (_, cp, _) = output(paydesk_command(test_db.url()).args(["audit", "checkpoint"]));
    let file = std::env::temp_dir().join(format!("paydesk-cp-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, cp).unwrap();
    let (code, out, _) = output(
        paydesk_command(test_db.url())
            .args(["audit", "verify", "--checkpoint"])
            .arg(&file),
    );
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("first bad entry is sequence 3"), "{out}");
}

#[tokio::test]
async fn a_rehashed_rewrite_after_the_last_checkpoint_does_not_verify() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    append(db, 0, 5).await;
    let cp = anchor::tick(
        &app.state.db,
        &app.state.config,
        app.state.clock.now(),
        false,
    )
    .await
    .unwrap()
    .expect("a first checkpoint");
    append(db, 10, 5).await;
    let size = cp.size;
    // Entries after the checkpoint rewritten, every link recomputed with plain SHA-256.
    rehash_plain_from(db, size + 2).await;
    assert_eq!(
        problem(db).await,
        Some(Break::HashMismatch { seq: size + 2 })
    );
    // The whole log rewritten the same way: plain links never count once a keyed one exists,
    // and an all-plain log is not keyed.
    rehash_plain_from(db, 1).await;
    assert_eq!(
        problem(db).await,
        Some(Break::NotKeyed { entries: size + 5 })
    );
    // Keyed with a key of the intruder's own: no better.
    let mut rows = audit_store::latest(db, 100).await.unwrap();
    rows.reverse();
    let mut prev = [0u8; 32];
    for row in rows.iter_mut() {
        let h = audit::keyed_entry_hash(&[7u8; 32], &prev, row);
        row.hash = hex::encode(h);
        prev = h;
    }
    attack(db, "DELETE FROM audit_log").await;
    let mut tx = db.begin().await.unwrap();
    audit_store::insert_many(&mut tx, &rows).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(problem(db).await, Some(Break::HashMismatch { seq: 1 }));
    // The binary (which checks the newest checkpoint by itself) says so, and a fresh start
    // does not "carry on" a rewritten log.
    let (code, out) = cli_verify(app.db.url());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT intact"), "{out}");
}

#[tokio::test]
async fn a_forged_appended_entry_and_a_swapped_pair_do_not_verify() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    append(&db, 0, 6).await;
    // An entry appended with a correct plain hash: INSERT is all it needs.
    let head = audit_store::latest(&db, 1).await.unwrap().remove(0);
    let mut forged = head.clone();
    forged.seq = 7;
    forged.action = "refund_approved".into();
    let prev: [u8; 32] = hex::decode(&head.hash).unwrap().try_into().unwrap();
    forged.hash = hex::encode(audit::entry_hash(&prev, &forged));
    let mut tx = db.begin().await.unwrap();
    audit_store::insert_many(&mut tx, &[forged]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(problem(&db).await, Some(Break::HashMismatch { seq: 7 }));
    let (code, out) = cli_verify(test_db.url());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("first bad entry is sequence 7"), "{out}");
    attack(&db, "DELETE FROM audit_log WHERE seq >= 7").await;
    assert_eq!(problem(&db).await, None);

    // Entries 3 and 4 swap places.
    attack(
        &db,
        "UPDATE audit_log SET seq = -3 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = -3",
    )
    .await;
    assert_eq!(problem(&db).await, Some(Break::HashMismatch { seq: 3 }));
}

#[tokio::test]
async fn a_deleted_tail_or_an_emptied_table_is_caught_by_the_automatic_checkpoint() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    append(db, 0, 4).await;
    let first = anchor::tick(
        &app.state.db,
        &app.state.config,
        app.state.clock.now(),
        false,
    )
    .await
    .unwrap()
    .expect("checkpoint");
    // Nothing new within the interval: no new file.
    append(db, 10, 2).await;
    assert!(anchor::tick(
        &app.state.db,
        &app.state.config,
        app.state.clock.now(),
        false
    )
    .await
    .unwrap()
    .is_none());
    // Past it: a checkpoint of the new head.
    app.clock.advance(anchor::CHECKPOINT_EVERY);
    let second = anchor::tick(
        &app.state.db,
        &app.state.config,
        app.state.clock.now(),
        false,
    )
    .await
    .unwrap()
    .expect("checkpoint");
    assert_eq!(second.size, first.size + 2);
    let folder = app.state.config.audit_checkpoint_folder();
    assert_eq!(
        anchor::newest(&folder, &app.state.config.audit_checkpoint_key()),
        Some(second.clone())
    );

    // The newest entries deleted: the rest of the chain holds, the checkpoint does not.
    attack(
        db,
        &format!("DELETE FROM audit_log WHERE seq > {}", second.size - 2),
    )
    .await;
    let (report, newest) =
        anchor::verify_with_folder(db, &folder, &app.state.config.audit_checkpoint_key(), None)
            .await
            .unwrap();
    assert_eq!(newest.map(|c| c.size), Some(second.size));
    assert_eq!(
        report.problem,
        Some(Break::Truncated {
            checkpoint_size: second.size,
            log_size: second.size - 2
        })
    );
    let (code, out) = cli_verify(app.db.url());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("were deleted"), "{out}");
    // New entries over the gap are never blessed by a new checkpoint.
    append(db, 20, 5).await;
    app.clock.advance(anchor::CHECKPOINT_EVERY);
    assert!(anchor::tick(
        &app.state.db,
        &app.state.config,
        app.state.clock.now(),
        true
    )
    .await
    .is_err());
    let (report, _) =
        anchor::verify_with_folder(db, &folder, &app.state.config.audit_checkpoint_key(), None)
            .await
            .unwrap();
    // On SQLite the new entries fill the numbers again and differ from the checkpoint; on
    // PostgreSQL the head row still counts from the deleted entries, so they leave a gap.
    assert!(
        matches!(
            report.problem,
            Some(Break::CheckpointMismatch { seq }) if seq == second.size
        ) || matches!(
            report.problem,
            Some(Break::Gap { expected, .. }) if expected == second.size - 1
        ),
        "{:?}",
        report.problem
    );

    // Every entry deleted.
    attack(db, "DELETE FROM audit_log").await;
    let (code, out) = cli_verify(app.db.url());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the log has 0 entries"), "{out}");
}

#[tokio::test]
async fn an_old_unkeyed_log_carries_on_keyed_after_the_upgrade() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    // A log as the previous version wrote it: plain SHA-256 links.
    let mut prev = [0u8; 32];
    let mut rows = Vec::new();
    for seq in 1..=5i64 {
        let mut row = AuditRow {
            seq,
            occurred_at: 1_700_000_000_000_000 + seq,
            actor_type: "staff".into(),
            actor_id: "7".into(),
            actor_label: "case.worker@council.example".into(),
            action: "refund_requested".into(),
            target: format!("payment:old{seq}"),
            outcome: "success".into(),
            origin_ip: None,
            details: "{}".into(),
            hash: String::new(),
        };
        let h = audit::entry_hash(&prev, &row);
        row.hash = hex::encode(h);
        prev = h;
        rows.push(row);
    }
    let mut tx = db.begin().await.unwrap();
    audit_store::insert_many(&mut tx, &rows).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(problem(&db).await, Some(Break::NotKeyed { entries: 5 }));

    // The new version starts on it.
    let state = paydesk::AppState::open(Config::for_tests(test_db.url()), paydesk::clock::system())
        .await
        .unwrap();
    let boundary = audit_store::at(&db, 6)
        .await
        .unwrap()
        .expect("a boundary entry");
    assert_eq!(boundary.action, "audit_chain_keyed");
    assert!(
        boundary.details.contains(&hex::encode(prev)),
        "{}",
        boundary.details
    );
    append(&db, 0, 3).await;
    let report = audit::verify(&db, None).await.unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.keyed_from, Some(6));
    assert_eq!(report.entries, 9);
    // Opening it again adds nothing.
    drop(state);
    let _again =
        paydesk::AppState::open(Config::for_tests(test_db.url()), paydesk::clock::system())
            .await
            .unwrap();
    assert_eq!(audit_store::count(&db).await.unwrap(), 9);

    // The old entries are still checked, the old way.
    attack(
        &db,
        "UPDATE audit_log SET target = 'payment:other' WHERE seq = 2",
    )
    .await;
    assert_eq!(problem(&db).await, Some(Break::HashMismatch { seq: 2 }));
    // Re-hashing the old part forward breaks the keyed boundary, which committed to it.
    rehash_plain(&db, 2, 5).await;
    assert_eq!(problem(&db).await, Some(Break::HashMismatch { seq: 6 }));
    // Re-hashing everything plain leaves a log that is not keyed at all.
    rehash_plain_from(&db, 1).await;
    assert_eq!(problem(&db).await, Some(Break::NotKeyed { entries: 9 }));
}

async fn count_action(db: &Db, action: &str) -> usize {
    audit_store::by_action(db, action).await.unwrap().len()
}

fn from(ip: &str) -> SocketAddr {
    format!("{ip}:40000").parse().unwrap()
}

#[tokio::test]
async fn three_hundred_forged_webhooks_are_one_summary_entry_and_counted() {
    let app = TestApp::new().await;
    paydesk::services::add(
        &app.state,
        Actor::System,
        &paydesk::services::NewService {
            slug: "parking".into(),
            name: "Parking".into(),
            time_zone: "Europe/London".into(),
            webhook_secret: Some("whsec_a_long_enough_secret_123".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .unwrap();
    let before = audit_store::count(&app.state.db).await.unwrap();
    for i in 0..300 {
        let ip = if i < 295 {
            "198.51.100.7"
        } else {
            "198.51.100.8"
        };
        let r = app
            .client
            .post("/hooks/govuk-pay/parking")
            .remote(from(ip))
            .header(ContentType::JSON)
            .header(Header::new("Pay-Signature", "0".repeat(64)))
            .body(format!("{{\"webhook_message_id\":\"m{i}\"}}"))
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::Unauthorized);
    }
    assert_eq!(
        app.state.metrics.counter("paydesk_webhooks_rejected_total"),
        300
    );
    assert_eq!(
        audit_store::count(&app.state.db).await.unwrap(),
        before,
        "nothing chained per request"
    );
    // Once the minute closes: one entry per source, with the count.
    app.clock.advance(time::Duration::minutes(1));
    app.state
        .refusals
        .flush(&app.state.db, app.state.clock.now(), false)
        .await
        .unwrap();
    let entries = audit_store::by_action(&app.state.db, "webhook_signature_fail")
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    let counts: Vec<i64> = entries
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.details).unwrap()["count"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(counts.iter().sum::<i64>(), 300);
    assert!(counts.contains(&295));
    assert_eq!(entries[0].origin_ip.as_deref(), Some("198.51.100.7"));
    assert!(audit::verify(&app.state.db, None).await.unwrap().intact());
}

#[tokio::test]
async fn three_hundred_anonymous_bad_csrf_posts_are_one_summary_while_a_signed_in_persons_stay_individual(
) {
    // The sign-in limit (per address) would answer 429 before the form is read; raised here
    // so that all 300 reach the CSRF check, as they would from many addresses.
    let app = TestApp::with_config(|c| c.sign_in_rate_per_minute = 1_000).await;
    for _ in 0..300 {
        let r = app
            .client
            .post("/login")
            .remote(from("203.0.113.9"))
            .header(ContentType::Form)
            .body("csrf_token=forged&email=a%40example.gov.uk&password=x")
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::Forbidden);
    }
    assert_eq!(
        app.state
            .metrics
            .counter("paydesk_csrf_refused_signed_out_total"),
        300
    );
    assert_eq!(count_action(&app.state.db, "csrf_fail").await, 0);

    app.service("parking").await;
    let person = app
        .person("ada@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    app.sign_in(&person).await;
    for _ in 0..3 {
        let r = app.post_form("/logout", &[("csrf_token", "forged")]).await;
        assert_eq!(r.status(), Status::Forbidden);
    }
    let individual = audit_store::by_action(&app.state.db, "csrf_fail")
        .await
        .unwrap();
    assert_eq!(
        individual.len(),
        3,
        "a signed-in person's refusals stay individual"
    );
    assert!(individual.iter().all(|e| e.actor_type == "staff"));

    // At shutdown every count is written, the current minute's too.
    assert_eq!(
        app.state
            .refusals
            .flush(&app.state.db, app.state.clock.now(), false)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        app.state
            .refusals
            .flush(&app.state.db, app.state.clock.now(), true)
            .await
            .unwrap(),
        1
    );
    let all = audit_store::by_action(&app.state.db, "csrf_fail")
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    let summary = all.iter().find(|e| e.actor_type == "anonymous").unwrap();
    assert!(
        summary.details.contains("\"count\":300"),
        "{}",
        summary.details
    );
    assert_eq!(app.state.refusals.pending(), 0);
}

#[tokio::test]
async fn the_audit_page_says_how_far_the_chain_is_verified_and_flags_a_missing_tail() {
    let app = TestApp::new().await;
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    append(&app.state.db, 0, 3).await;
    let cp = anchor::tick(
        &app.state.db,
        &app.state.config,
        app.state.clock.now(),
        false,
    )
    .await
    .unwrap()
    .expect("checkpoint");
    let v = Visitor::new(&app, &pa).await;
    let page = unescape(&v.get("/audit").await.body);
    assert!(page.contains("Verified up to entry"), "{page}");
    assert!(
        page.contains(", checkpointed at 20 Nov 2026, 09:00:00"),
        "{page}"
    );

    attack(
        &app.state.db,
        &format!("DELETE FROM audit_log WHERE seq > {}", cp.size - 2),
    )
    .await;
    app.clock.advance(time::Duration::minutes(6));
    let page = unescape(&v.get("/audit").await.body);
    assert!(page.contains("The audit log does not verify"), "{page}");
    assert!(page.contains("were deleted"), "{page}");
    assert!(
        page.contains(&format!("covers {} entries", cp.size)),
        "{page}"
    );
}

#[tokio::test]
async fn a_graceful_shutdown_writes_the_counts_and_a_checkpoint_of_the_last_entry() {
    let test_db = TestDb::new().await;
    let server = Server::start(test_db.url(), &[]);
    for _ in 0..5 {
        let reply = raw_post(server.port, "/login", "csrf_token=forged");
        assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    }
    let status = server.terminate();
    assert!(status.success(), "graceful exit: {status:?}");
    let db = test_db.connect().await;
    // One entry for the minute (two if the posts straddled a minute), counting all five.
    let summary = audit_store::by_action(&db, "csrf_fail").await.unwrap();
    assert!((1..=2).contains(&summary.len()), "{summary:?}");
    let counted: i64 = summary
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.details).unwrap()["count"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(counted, 5);
    let config = Config::for_tests(test_db.url());
    let newest = anchor::newest(
        &config.audit_checkpoint_folder(),
        &config.audit_checkpoint_key(),
    )
    .expect("a checkpoint at shutdown");
    let head = audit_store::latest(&db, 1).await.unwrap().remove(0);
    assert_eq!(head.action, "sys_shutdown");
    assert_eq!((newest.size, newest.head), (head.seq, head.hash));
}
