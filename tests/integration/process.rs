//! Tests across a process boundary, through the real `paydesk` binary.

use std::time::Duration;

use paydesk::jobs::{self, SELFTEST};
use paydesk::store::audit as audit_store;
use paydesk::store::jobs as job_store;
use paydesk::store::Db;
use serde_json::json;

use crate::common::{eventually, paydesk_command, Server, TestDb};

fn output(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().expect("run paydesk");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_bad_setting_stops_the_program_naming_it() {
    let db = TestDb::new().await;
    let (code, _, err) = output(
        paydesk_command(db.url())
            .args(["migrate"])
            .env("PAYDESK_PORT", "eighty"),
    );
    assert_ne!(code, 0);
    assert!(err.contains("PAYDESK_PORT"), "{err}");

    let (code, _, err) = output(
        paydesk_command(db.url())
            .args(["migrate"])
            .env("PAYDESK_LOG_FORMAT", "xml"),
    );
    assert_ne!(code, 0);
    assert!(err.contains("PAYDESK_LOG_FORMAT"), "{err}");

    let (code, _, err) = output(
        paydesk_command(db.url())
            .args(["serve"])
            .env("PAYDESK_PROFILE", "release")
            .env_remove("PAYDESK_SECRET_KEY"),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("PAYDESK_SECRET_KEY"),
        "release refuses to start without a key: {err}"
    );
}

#[tokio::test]
async fn a_job_committed_before_kill_9_runs_after_restart() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let env = [
        ("PAYDESK_JOB_LEASE_SECS", "3"),
        ("PAYDESK_JOB_POLL_MS", "100"),
    ];
    let server = Server::start(test_db.url(), &env);

    let now = time::OffsetDateTime::now_utc();
    let mut tx = db.begin().await.unwrap();
    let id = jobs::enqueue(&mut tx, SELFTEST, &json!({"sleep_ms": 1500}), now, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Wait until the server is in the middle of the job, then pull the plug.
    let running = eventually(Duration::from_secs(10), || async {
        job_store::get(&db, id)
            .await
            .unwrap()
            .filter(|j| j.state == "running")
            .map(|_| ())
    })
    .await;
    assert!(running.is_some(), "the server picked the job up");
    server.kill_hard();
    assert_eq!(
        job_store::get(&db, id).await.unwrap().unwrap().state,
        "running",
        "killed mid-attempt"
    );

    let server = Server::start(test_db.url(), &env);
    let done = eventually(Duration::from_secs(20), || async {
        job_store::get(&db, id)
            .await
            .unwrap()
            .filter(|j| j.state == "succeeded")
    })
    .await
    .expect("the job finished after the restart");
    assert_eq!(done.attempts, 2);
    let attempts = job_store::attempts(&db, id).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a.outcome.as_str())
            .collect::<Vec<_>>(),
        ["lost", "succeeded"]
    );
    assert_ne!(
        attempts[0].worker, attempts[1].worker,
        "a different process finished it"
    );
    drop(server);
}

#[tokio::test]
async fn start_and_graceful_shutdown_are_audited() {
    let test_db = TestDb::new().await;
    let server = Server::start(test_db.url(), &[]);
    let head = raw_get(server.port, "/login");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("\nserver:"),
        "no Server header naming the framework: {head}"
    );
    let status = server.terminate();
    assert!(status.success(), "graceful exit: {status:?}");
    let db = test_db.connect().await;
    let actions: Vec<String> = audit_store::latest(&db, 10)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, ["sys_startup", "sys_shutdown"]);
}

/// The status line and headers of a plain HTTP GET to a running server.
fn raw_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Edit a row behind paydesk's back, as someone with the database file would.
async fn edit_directly(db: &Db, seq: i64) {
    let sql = format!("UPDATE audit_log SET target = 'job:forged' WHERE seq = {seq}");
    match db {
        Db::Sqlite(pool, _) => {
            sqlx::raw_sql("DROP TRIGGER audit_log_no_update")
                .execute(pool)
                .await
                .unwrap();
            sqlx::raw_sql(&sql).execute(pool).await.unwrap();
        }
        Db::Postgres(pool, _) => {
            sqlx::raw_sql(&format!("ALTER TABLE audit_log DISABLE TRIGGER USER; {sql}; ALTER TABLE audit_log ENABLE TRIGGER USER;")).execute(pool).await.unwrap();
        }
    }
}

#[tokio::test]
async fn audit_verify_names_the_edited_entry_and_checkpoints_catch_truncation() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    for i in 0..5 {
        paydesk::audit::record(
            &db,
            time::OffsetDateTime::now_utc(),
            paydesk::audit::AuditEvent::new(
                paydesk::audit::Actor::System,
                "test_event",
                format!("test:{i}"),
            ),
        )
        .await
        .unwrap();
    }
    let (code, out, err) = output(paydesk_command(test_db.url()).args(["audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit log intact: 5 entries"), "{out}");

    let (code, checkpoint, err) =
        output(paydesk_command(test_db.url()).args(["audit", "checkpoint"]));
    assert_eq!(code, 0, "{err}");
    let folder = tempfile::tempdir().unwrap();
    let cp_path = folder.path().join("checkpoint.json");
    std::fs::write(&cp_path, &checkpoint).unwrap();
    let (code, out, _) = output(
        paydesk_command(test_db.url())
            .args(["audit", "verify", "--checkpoint"])
            .arg(&cp_path),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("consistent with the checkpoint"));

    // A checkpoint altered by hand is refused outright.
    let forged = checkpoint.replace("\"size\":5", "\"size\":3");
    std::fs::write(folder.path().join("forged.json"), forged).unwrap();
    let (code, _, err) = output(
        paydesk_command(test_db.url())
            .args(["audit", "verify", "--checkpoint"])
            .arg(folder.path().join("forged.json")),
    );
    assert_ne!(code, 0);
    assert!(err.contains("does not authenticate"), "{err}");

    edit_directly(&db, 3).await;
    let (code, out, _) = output(paydesk_command(test_db.url()).args(["audit", "verify"]));
    assert_ne!(code, 0);
    assert!(out.contains("first bad entry is sequence 3"), "{out}");
}

#[tokio::test]
async fn user_add_prints_a_set_up_link_last_and_refuses_bad_input() {
    let test_db = TestDb::new().await;
    let run = |args: &[&str]| {
        let out = paydesk_command(test_db.url())
            .args(args)
            .output()
            .expect("run paydesk");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, _, err) = run(&[
        "service",
        "add",
        "--slug",
        "parking",
        "--name",
        "Parking permits",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&[
        "user",
        "add",
        "--email",
        "ada@example.gov.uk",
        "--name",
        "Ada",
        "--role",
        "caseworker",
        "--service",
        "parking",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let last = out.lines().last().unwrap_or_default();
    let token = last.split("/setup/").nth(1).unwrap_or_default();
    assert!(last.starts_with("http://127.0.0.1:8000/setup/"), "{out}");
    assert!(
        paydesk::identity::sessions::looks_like_session_id(token),
        "{last}"
    );

    let db = test_db.connect().await;
    let staff = paydesk::store::staff::staff_by_email_key(&db, "ada@example.gov.uk")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(staff.status, "invited");
    assert!(
        staff.password_hash.is_none(),
        "nobody typed a password for Ada"
    );

    // Mistakes get a clear message and exit 2; nothing is created.
    for (args, says) in [
        (
            vec![
                "--email",
                "ada@example.gov.uk",
                "--name",
                "Ada",
                "--role",
                "viewer",
                "--service",
                "parking",
            ],
            "already an account",
        ),
        (
            vec![
                "--email",
                "bob@example.gov.uk",
                "--name",
                "Bob",
                "--role",
                "wizard",
            ],
            "unknown role",
        ),
        (
            vec![
                "--email",
                "bob@example.gov.uk",
                "--name",
                "Bob",
                "--role",
                "viewer",
            ],
            "say which one",
        ),
        (
            vec![
                "--email",
                "bob@example.gov.uk",
                "--name",
                "Bob",
                "--role",
                "viewer",
                "--service",
                "nowhere",
            ],
            "no service",
        ),
        (
            vec![
                "--email",
                "not-an-email",
                "--name",
                "Bob",
                "--role",
                "platform_admin",
            ],
            "correct format",
        ),
    ] {
        let mut full = vec!["user", "add"];
        full.extend(args);
        let (code, _, err) = run(&full);
        assert_eq!(code, Some(2), "{full:?}: {err}");
        assert!(err.contains(says), "{full:?}: {err}");
    }
    assert!(
        paydesk::store::staff::staff_by_email_key(&db, "bob@example.gov.uk")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn demo_mode_refuses_postgres_and_the_release_profile() {
    let (code, _, err) =
        output(paydesk_command("postgres://postgres@127.0.0.1:5432/paydesk_demo").arg("demo"));
    assert_eq!(code, 2);
    assert!(err.contains("SQLite only"), "{err}");
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/demo.db", folder.path().display());
    let (code, _, err) = output(
        paydesk_command(&url)
            .arg("demo")
            .env("PAYDESK_PROFILE", "release"),
    );
    assert_eq!(code, 2);
    assert!(err.contains("release"), "{err}");
}

#[tokio::test]
async fn service_add_checks_the_platform_settings_and_keeps_secrets_out_of_view() {
    let db = TestDb::new().await;
    let (code, _, err) = output(paydesk_command(db.url()).args([
        "service",
        "add",
        "--slug",
        "parking",
        "--name",
        "Parking",
        "--api-key",
        "k-123",
    ]));
    assert_eq!(code, 2, "a key without a platform URL is refused");
    assert!(err.contains("both its URL and its credentials"), "{err}");
    let (code, out, err) = output(
        paydesk_command(db.url())
            .args(["service", "add", "--slug", "parking", "--name", "Parking"])
            .args([
                "--platform-url",
                "https://publicapi.example",
                "--time-zone",
                "Europe/London",
            ])
            .env("PAYDESK_SERVICE_API_KEY", "api_live_supersecret_123456")
            .env("PAYDESK_SERVICE_WEBHOOK_SECRET", "whsec-very-secret-value"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/hooks/govuk-pay/parking"), "{out}");
    assert!(!out.contains("supersecret") && !err.contains("supersecret"));
    // At rest the secrets are sealed, and the audit entry names the key only by its end.
    let check = db.connect().await;
    let dump: Vec<(Option<String>, Option<String>)> = paydesk::on_db!(&check, pool => sqlx::query_as(
        "SELECT credentials, webhook_secret FROM services WHERE slug = 'parking'").fetch_all(pool).await.unwrap());
    let (creds, secret) = dump[0].clone();
    assert!(creds.unwrap().starts_with("v1.") && secret.unwrap().starts_with("v1."));
    let audit = audit_store::by_action(&check, "service_created")
        .await
        .unwrap();
    assert!(
        audit[0].details.contains("API key ending 3456"),
        "{}",
        audit[0].details
    );
    assert!(!audit[0].details.contains("supersecret"));
    check.close().await;
}
