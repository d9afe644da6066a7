//! Personal data (issue 21): the inventory of every text column, and retention removing a
//! payer's data everywhere (scanning every text column of every table and, on SQLite, the
//! file's bytes) while month-end totals, the audit chain and held payments stay as they were.

use paydesk::personal_data::{holds, inventory, retention};
use paydesk::store::{personal_data as pd_store, Db};
use time::Duration;

use crate::common::{journey_record, store_journeys};
use crate::common::{start_time, TestApp};

#[tokio::test]
async fn inventory_covers_every_text_column() {
    let app = TestApp::new().await;
    let columns = pd_store::text_columns(&app.state.db)
        .await
        .expect("columns");
    assert!(columns.len() > 50, "found {} text columns", columns.len());
    let missing: Vec<String> = columns
        .iter()
        .filter(|(t, c)| inventory::class_of(t, c).is_none())
        .map(|(t, c)| format!("{t}.{c}"))
        .collect();
    assert!(
        missing.is_empty(),
        "text columns not classified in src/personal_data/inventory.rs (payer data or not?): {missing:?}"
    );
    // And the inventory names no column that is gone (tables the database has).
    let stale: Vec<String> = inventory::COLUMNS
        .iter()
        .filter(|(t, _, _)| columns.iter().any(|(t2, _)| t2 == t))
        .filter(|(t, c, _)| !columns.iter().any(|(t2, c2)| t2 == t && c2 == c))
        .map(|(t, c, _)| format!("{t}.{c}"))
        .collect();
    assert!(
        stale.is_empty(),
        "inventory names missing columns: {stale:?}"
    );
}

/// How many rows of every text column of every table contain `needle`, ignoring case (byte
/// columns read as text too: PostgreSQL's `bytea` through `encode(…, 'escape')`).
pub(crate) async fn scan(db: &Db, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytea: Vec<(String, String)> = match db {
        Db::Sqlite(..) => Vec::new(),
        Db::Postgres(pool, _) => sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND data_type = 'bytea'",
        )
        .fetch_all(pool)
        .await
        .expect("bytea columns"),
    };
    for (table, column) in pd_store::text_columns(db).await.expect("columns") {
        let read = if bytea.contains(&(table.clone(), column.clone())) {
            format!("encode(\"{column}\", 'escape')")
        } else {
            format!("CAST(\"{column}\" AS TEXT)")
        };
        let sql = format!("SELECT COUNT(*) FROM \"{table}\" WHERE lower({read}) LIKE $1");
        let pattern = format!("%{}%", needle.to_lowercase());
        let n: i64 = match db {
            Db::Sqlite(pool, _) => sqlx::query_scalar(&sql)
                .bind(&pattern)
                .fetch_one(pool)
                .await
                .expect("scan"),
            Db::Postgres(pool, _) => sqlx::query_scalar(&sql)
                .bind(&pattern)
                .fetch_one(pool)
                .await
                .expect("scan"),
        };
        if n > 0 {
            found.push(format!("{table}.{column} ({n})"));
        }
    }
    found
}

pub(crate) async fn exec(db: &Db, sql: &str) {
    match db {
        Db::Sqlite(_, w) => {
            sqlx::query(sql).execute(&w.pool).await.expect(sql);
        }
        Db::Postgres(pool, _) => {
            sqlx::query(sql).execute(pool).await.expect(sql);
        }
    }
}

pub(crate) async fn month_end(app: &TestApp) -> Vec<u8> {
    let services = paydesk::services::all(&app.state.db)
        .await
        .expect("services");
    let packs = paydesk::exports::pack::build(&app.state.db, &services, "2026-11-01", "2026-11-30")
        .await
        .expect("pack");
    paydesk::exports::pack::to_csv(&packs)
}

pub(crate) fn payer(
    n: usize,
    marker: &str,
    created: time::OffsetDateTime,
) -> paydesk::journeys::record::JourneyRecord {
    let mut r = journey_record(&format!("pay{n}"), &format!("REF-{n}"), created);
    r.email = Some(format!("{marker}mail{n}@example.org"));
    r.cardholder_name = Some(format!("Ann {marker}name{n}"));
    r.metadata = Some(format!(
        "{{\"ledger_code\": \"{marker}meta{n}\", \"count\": 3}}"
    ));
    r.settled_date = Some("2026-11-12".into());
    r.fee = Some(25);
    r.net_amount = Some(975);
    r
}

#[tokio::test]
async fn retention_redacts_everywhere_keeps_totals_chain_and_holds() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    let service = app.service("parking").await;
    let made = start_time() - Duration::days(10);
    // Payers whose data goes ("zqgone"), and ones held or recent whose data stays ("zqkeep").
    let gone: Vec<_> = (0..3).map(|n| payer(n, "zqgone", made)).collect();
    let held_by_admin = payer(7, "zqkeep", made);
    let held_by_refund = payer(8, "zqkeep", made);
    let recent = payer(9, "zqkeep", start_time() + Duration::days(2500));
    let mut all = gone.clone();
    all.extend([
        held_by_admin.clone(),
        held_by_refund.clone(),
        recent.clone(),
    ]);
    store_journeys(&app, service, &all).await;

    // Copies of the first payer's data: a refund comment (and its timeline note), a mail to
    // them, a stored API answer, an unconfirmed form.
    let jid = |p: &str| format!("(SELECT id FROM journeys WHERE payment_id = '{p}')");
    let g0 = jid("pay0");
    exec(
        db,
        "INSERT INTO staff (email, email_key, name, status, created_at, updated_at) \
         VALUES ('cw@example.gov', 'cw@example.gov', 'Case Worker', 'active', 0, 0)",
    )
    .await;
    exec(db, &format!(
        "INSERT INTO refund_requests (service_id, journey_id, payment_id, amount, reason, comment, state, form_key, \
         requested_by, requested_at, approval_required, decision_comment, expires_at, updated_at) \
         VALUES ({service}, {g0}, 'pay0', 100, 'duplicate', 'Spoke to Ann zqgonename0', 'succeeded', 'k1', 1, 0, FALSE, \
         'ok zqgonename0', 0, 0)")).await;
    exec(db, &format!(
        "INSERT INTO journey_events (journey_id, occurred_at, kind, message, detail, source, dedupe_key, recorded_at) \
         VALUES ({g0}, 0, 'staff', 'Sam rejected the refund of £1.00: Spoke to Ann zqgonename0', '{{\"amount\":100,\"comment\":\"Spoke to Ann zqgonename0\"}}', 'paydesk', 'n1', 0)")).await;
    exec(db, &format!(
        "INSERT INTO refund_requests (service_id, journey_id, payment_id, amount, reason, comment, state, form_key, \
         requested_by, requested_at, approval_required, expires_at, updated_at) \
         VALUES ({service}, {}, 'pay8', 100, 'duplicate', NULL, 'awaiting_approval', 'k2', 1, 0, TRUE, 0, 0)",
        jid("pay8"))).await;
    let sent = store_micros(made + Duration::days(1));
    exec(db, &format!(
        "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, created_at, updated_at) \
         VALUES ('mail_send', '{{\"to\":\"zqgonemail0@example.org\",\"subject\":\"Refund\",\"text\":\"Dear Ann zqgonename0\",\"html\":\"\"}}', \
         'succeeded', 1, 5, {sent}, {sent}, {sent})")).await;
    exec(db, &format!(
        "INSERT INTO api_tokens (service_id, name, token_hash, token_prefix, scopes, created_by, created_at) \
         VALUES ({service}, 'crm', 'h', 'p', '[]', 1, 0)")).await;
    exec(db, "INSERT INTO api_idempotency (token_id, idem_key, fingerprint, status, body, created_at) \
         VALUES (1, 'i1', 'f', 201, '{\"payment_id\":\"pay0\",\"email\":\"zqgonemail0@example.org\"}', 0)").await;

    // A refund decision's audit entry: its comment sits beside the chain.
    let mut tx = db.begin().await.expect("begin");
    paydesk::audit::append(
        &mut tx,
        app.state.clock.now(),
        paydesk::audit::AuditEvent::new(
            paydesk::audit::Actor::System,
            "refund_approved",
            "payment:pay0",
        )
        .details(serde_json::json!({"request": 1, "comment": "x"}))
        .personal("comment", "Spoke to Ann zqgonename0"),
    )
    .await
    .expect("audit");
    tx.commit().await.expect("commit");
    let admin = paydesk::audit::Actor::staff(1, "cw@example.gov");
    holds::place(
        db,
        app.state.clock.now(),
        admin,
        1,
        None,
        holds::HoldOn {
            service_id: service,
            payment_id: "pay7",
            reason: "Court claim 42",
        },
    )
    .await
    .expect("hold");
    assert_eq!(holds::open(db, &[service]).await.expect("holds").len(), 1);

    for marker in ["zqgone", "zqkeep"] {
        assert!(!scan(db, marker).await.is_empty(), "seeded {marker}");
    }
    let totals_before = month_end(&app).await;

    // Seven years and a bit on: the daily run is claimed once and redacts.
    app.clock.advance(Duration::days(2556));
    let now = app.state.clock.now();
    assert!(retention::schedule(db, now).await.expect("schedule"));
    assert!(
        !retention::schedule(db, now).await.expect("schedule again"),
        "claimed once"
    );
    app.state.job_runner().run_due().await.expect("run the job");

    let left = scan(db, "zqgone").await;
    assert!(
        left.is_empty(),
        "redacted payer data still found in {left:?}"
    );
    // The held payments keep their data; the recent one too.
    let kept = scan(db, "zqkeep").await;
    for col in [
        "journeys.email",
        "journeys.cardholder_name",
        "journeys.metadata",
        "journey_metadata.value_key",
    ] {
        assert!(
            kept.iter().any(|k| k.starts_with(&format!("{col} (3)"))),
            "{col} kept: {kept:?}"
        );
    }
    // Amounts, states, references and dates stay, so the month-end figures do too.
    assert_eq!(
        String::from_utf8_lossy(&month_end(&app).await),
        String::from_utf8_lossy(&totals_before)
    );

    // On SQLite the bytes are gone from the file (secure_delete, the index merged, the WAL
    // checkpointed).
    if let Some(path) = app.db.url().strip_prefix("sqlite://") {
        for file in [path.to_string(), format!("{path}-wal")] {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes).to_lowercase();
            for n in 0..3 {
                for what in ["mail", "name", "meta"] {
                    let marker = format!("zqgone{what}{n}");
                    assert!(!text.contains(&marker), "{marker} still in {file}");
                }
            }
            if file == path {
                assert!(text.contains("zqkeepmail7"), "held data is still in {file}");
            }
        }
    }

    // The audit log records counts, and still verifies.
    let report = paydesk::audit::verify(db, None).await.expect("verify");
    assert!(report.intact(), "{:?}", report.problem);
    let entries = paydesk::store::audit::latest(db, 20).await.expect("latest");
    let run = entries
        .iter()
        .find(|e| e.action == "personal_data_redacted")
        .expect("a redaction entry");
    let details: serde_json::Value = serde_json::from_str(&run.details).expect("json");
    assert_eq!(details["journeys"], 3, "{details}");
    assert_eq!(details["held_skipped"], 2, "{details}");
    assert_eq!(details["refund_comments"], 1, "{details}");
    assert_eq!(details["mail"], 1, "{details}");

    // Any other change is still found, and named.
    let size = report.entries;
    crate::audit::tamper(
        db,
        "UPDATE audit_log SET action = 'nothing_to_see' WHERE seq = 2",
    )
    .await;
    let report = paydesk::audit::verify(db, None).await.expect("verify");
    assert_eq!(
        report.problem.map(|p| p.first_bad_seq()),
        Some(2),
        "of {size}"
    );

    // A second run finds nothing more to do; releasing the hold lets the next one redact it.
    let again = retention::run(db, now).await.expect("run again");
    assert_eq!((again.redacted, again.held), (0, 2));
}

fn store_micros(t: time::OffsetDateTime) -> i64 {
    paydesk::store::to_micros(t)
}

#[tokio::test]
async fn retention_setting_is_checked_and_audited() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    let service = app.service("parking").await;
    let r = pd_store::retention_of(db, service)
        .await
        .expect("read")
        .expect("service");
    assert_eq!(r.retention_days, retention::DEFAULT_DAYS);
    assert!(retention::parse_days("100", false).is_err());
    let days = retention::parse_days("100", true).expect("a platform admin may go lower");
    retention::set_days(
        db,
        app.state.clock.now(),
        paydesk::audit::Actor::System,
        None,
        service,
        days,
    )
    .await
    .expect("set");
    let r = pd_store::retention_of(db, service)
        .await
        .expect("read")
        .expect("service");
    assert_eq!(r.retention_days, 100);
    let entries = paydesk::store::audit::latest(db, 1).await.expect("latest");
    assert_eq!(entries[0].action, "retention_changed");
    assert!(retention::set_days(
        db,
        app.state.clock.now(),
        paydesk::audit::Actor::System,
        None,
        999,
        400
    )
    .await
    .is_err());
}

#[tokio::test]
async fn audit_personal_values_are_outside_the_chain_and_checked() {
    let app = TestApp::new().await;
    let db = &app.state.db;
    let row = paydesk::audit::record(
        db,
        app.state.clock.now(),
        paydesk::audit::AuditEvent::new(
            paydesk::audit::Actor::System,
            "refund_rejected",
            "payment:p1",
        )
        .details(serde_json::json!({"request": 1}))
        .personal("comment", "Called Mrs Zqside"),
    )
    .await
    .expect("record");
    assert!(!row.details.contains("Zqside"), "{}", row.details);
    assert!(row.details.contains("\"personal\""), "{}", row.details);
    assert!(paydesk::audit::verify(db, None)
        .await
        .expect("verify")
        .intact());
    // A changed side value is named at its entry.
    exec(
        db,
        "UPDATE audit_personal SET value = 'Called someone else'",
    )
    .await;
    let report = paydesk::audit::verify(db, None).await.expect("verify");
    assert_eq!(report.problem.map(|p| p.first_bad_seq()), Some(row.seq));
    // Erased, the chain verifies again.
    exec(
        db,
        "UPDATE audit_personal SET value = NULL, salt = NULL, erased_at = 1",
    )
    .await;
    assert!(paydesk::audit::verify(db, None)
        .await
        .expect("verify")
        .intact());
}

fn manager(
    p: &crate::common::Person,
    services: &[i64],
) -> paydesk::personal_data::erasure::Manager {
    paydesk::personal_data::erasure::Manager {
        staff_id: p.id,
        actor: paydesk::audit::Actor::staff(p.id, &p.email),
        ip: None,
        service_ids: services.to_vec(),
    }
}

#[tokio::test]
async fn subject_access_finds_the_payer_across_services_with_who_viewed() {
    use paydesk::personal_data::access::{self, Payer};
    let app = TestApp::new().await;
    let db = &app.state.db;
    let parking = app.service("parking").await;
    let permits = app.service("permits").await;
    let other = app.service("other").await;
    let mut a = payer(1, "zqsar", start_time());
    a.email = Some("Same.Payer@example.org".into());
    let mut b = payer(2, "zqsar", start_time());
    b.email = Some("same.payer@example.org".into());
    let mut c = payer(3, "zqsar", start_time());
    c.email = Some("same.payer@example.org".into());
    store_journeys(&app, parking, &[a]).await;
    store_journeys(&app, permits, &[b]).await;
    store_journeys(&app, other, &[c]).await;
    // A caseworker looked at the first payment.
    paydesk::audit::record(
        db,
        start_time(),
        paydesk::audit::AuditEvent::new(
            paydesk::audit::Actor::staff(9, "viewer@example.gov"),
            "sensitive_read",
            "payment:pay1",
        )
        .details(serde_json::json!({"what": "journey page"})),
    )
    .await
    .expect("view");
    let payer = Payer::parse("same.payer@EXAMPLE.org", "", "").expect("payer");
    let doc = access::bundle(
        db,
        start_time(),
        paydesk::audit::Actor::System,
        None,
        &[parking, permits],
        &payer,
    )
    .await
    .expect("bundle");
    let ids: Vec<&str> = doc["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .map(|p| p["payment_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["pay1", "pay2"], "both services, not the third: {doc}");
    assert_eq!(doc["viewed_by"][0]["who"], "viewer@example.gov", "{doc}");
    assert_eq!(doc["viewed_by"][0]["payment_id"], "pay1");
    // By card and name too.
    let by_card = Payer::parse("", "4242", "ANN zqsarname2").expect("payer");
    let doc = access::bundle(
        db,
        start_time(),
        paydesk::audit::Actor::System,
        None,
        &[parking, permits],
        &by_card,
    )
    .await
    .expect("bundle");
    assert_eq!(doc["payments"].as_array().map(|p| p.len()), Some(1));
    let last = paydesk::store::audit::latest(db, 1).await.expect("latest");
    assert_eq!(last[0].action, "personal_data_access");
    assert!(
        !last[0].details.contains("zqsar"),
        "the search is beside the chain: {}",
        last[0].details
    );
}

#[tokio::test]
async fn erasure_needs_a_second_person_and_skips_held_payments() {
    use paydesk::identity::permissions::Role;
    use paydesk::personal_data::access::Payer;
    use paydesk::personal_data::erasure;
    let app = TestApp::new().await;
    let db = &app.state.db;
    let parking = app.service("parking").await;
    let asker = app
        .person("asker@example.gov", Role::ServiceAdmin, Some("parking"))
        .await;
    let second = app
        .person("second@example.gov", Role::ServiceAdmin, Some("parking"))
        .await;
    let mut records: Vec<_> = (1..=3).map(|n| payer(n, "zqerase", start_time())).collect();
    for r in &mut records {
        r.email = Some("erase.me@example.org".into());
    }
    store_journeys(&app, parking, &records).await;
    holds::place(
        db,
        start_time(),
        paydesk::audit::Actor::System,
        asker.id,
        None,
        holds::HoldOn {
            service_id: parking,
            payment_id: "pay3",
            reason: "Legal claim",
        },
    )
    .await
    .expect("hold");
    let payer = Payer::parse("erase.me@example.org", "", "").expect("payer");
    let id = erasure::request(
        db,
        start_time(),
        &manager(&asker, &[parking]),
        &payer,
        "Payer asked",
        "DPA-7",
    )
    .await
    .expect("request");
    // The asker alone cannot carry it out.
    let alone = erasure::decide(db, start_time(), &manager(&asker, &[parking]), id, true).await;
    assert!(
        matches!(
            alone,
            Err(paydesk::personal_data::PersonalDataError::Refused(_))
        ),
        "{alone:?}"
    );
    assert!(
        !scan(db, "zqerasename1").await.is_empty(),
        "nothing erased yet"
    );
    let done = erasure::decide(db, start_time(), &manager(&second, &[parking]), id, true)
        .await
        .expect("approve")
        .expect("done");
    assert_eq!(done.redacted, 2);
    assert_eq!(done.held.len(), 1);
    assert_eq!(done.held[0].0, "pay3");
    for gone in ["zqerasename1", "zqerasemeta2"] {
        assert!(scan(db, gone).await.is_empty(), "{gone} erased");
    }
    assert!(
        !scan(db, "zqerasename3").await.is_empty(),
        "held payment kept"
    );
    // Erased payments look like retention's, but say why.
    let why: Vec<Option<String>> = match db {
        Db::Sqlite(pool, _) => {
            sqlx::query_scalar("SELECT redacted_reason FROM journeys ORDER BY id")
                .fetch_all(pool)
                .await
                .expect("q")
        }
        Db::Postgres(pool, _) => {
            sqlx::query_scalar("SELECT redacted_reason FROM journeys ORDER BY id")
                .fetch_all(pool)
                .await
                .expect("q")
        }
    };
    assert_eq!(
        why,
        [
            Some("erasure".to_string()),
            Some("erasure".to_string()),
            None
        ]
    );
    // The erased payment's page says so, and shows no error for the empty fields.
    app.sign_in(&second).await;
    let page = app
        .client
        .get("/payments/pay1?service=parking")
        .dispatch()
        .await;
    assert_eq!(page.status(), rocket::http::Status::Ok);
    let html = page.into_string().await.unwrap_or_default();
    assert!(
        html.contains("Personal details removed on 20 November 2026 under the service&#x27;s retention policy")
            || html.contains("Personal details removed on 20 November 2026 under the service's retention policy"),
        "{html}"
    );
    // Decided once; the request no longer says who the payer was.
    assert!(
        erasure::decide(db, start_time(), &manager(&second, &[parking]), id, true)
            .await
            .is_err()
    );
    // Only the held payment still has the address.
    assert_eq!(
        scan(db, "erase.me").await,
        ["journeys.email (1)", "journeys.email_key (1)"]
    );
    let report = paydesk::audit::verify(db, None).await.expect("verify");
    assert!(report.intact(), "{:?}", report.problem);
}

#[tokio::test]
async fn retention_page_on_the_service_settings() {
    use paydesk::identity::permissions::Role;
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let admin = app
        .person("admin@example.gov", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;
    let show = app
        .client
        .get(format!("/admin/services/{parking}"))
        .dispatch()
        .await;
    let html = show.into_string().await.unwrap_or_default();
    assert!(html.contains("2555 days"), "{html}");
    let form = app
        .client
        .get(format!("/admin/services/{parking}/retention"))
        .dispatch()
        .await;
    assert_eq!(form.status(), rocket::http::Status::Ok);
    let token = app.token();
    // Below a year is for platform admins only: the form comes back with the error.
    for (typed, error) in [
        ("100", "at least 365"),
        ("seven years", "whole number"),
        ("", "Enter how many days"),
    ] {
        let r = app
            .post_form(
                &format!("/admin/services/{parking}/retention"),
                &[("csrf_token", &token), ("days", typed)],
            )
            .await;
        assert_eq!(r.status(), rocket::http::Status::Ok);
        let html = r.into_string().await.unwrap_or_default();
        assert!(
            html.contains("Error:") && html.contains(error),
            "{typed}: {html}"
        );
    }
    let r = app
        .post_form(
            &format!("/admin/services/{parking}/retention"),
            &[("csrf_token", &token), ("days", "400")],
        )
        .await;
    let page = app.follow(r).await;
    assert!(page.contains("400 days"), "{page}");
    // Another service's page is not there for them.
    let other = app.service("other").await;
    let r = app
        .client
        .get(format!("/admin/services/{other}/retention"))
        .dispatch()
        .await;
    assert_eq!(r.status(), rocket::http::Status::NotFound);
}

#[tokio::test]
async fn subject_access_page_downloads_the_bundle() {
    use paydesk::identity::permissions::Role;
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let mut a = payer(1, "zqweb", start_time());
    a.email = Some("web.payer@example.org".into());
    store_journeys(&app, parking, &[a]).await;
    let admin = app
        .person("sa@example.gov", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;
    let form = app.client.get("/personal-data/access").dispatch().await;
    assert_eq!(form.status(), rocket::http::Status::Ok);
    let token = app.token();
    let r = app
        .post_form(
            "/personal-data/access",
            &[("csrf_token", &token), ("email", "")],
        )
        .await;
    assert_eq!(r.status(), rocket::http::Status::UnprocessableEntity);
    assert!(r.into_string().await.unwrap_or_default().contains("Error:"));
    let r = app
        .post_form(
            "/personal-data/access",
            &[("csrf_token", &token), ("email", "WEB.payer@example.org")],
        )
        .await;
    assert_eq!(r.status(), rocket::http::Status::SeeOther);
    let to = crate::common::location(&r);
    let file = app.client.get(to.clone()).dispatch().await;
    assert_eq!(file.status(), rocket::http::Status::Ok);
    let doc: serde_json::Value =
        serde_json::from_str(&file.into_string().await.unwrap_or_default()).expect("json");
    assert_eq!(doc["payments"][0]["payment_id"], "pay1", "{doc}");
    // Used once.
    let again = app.client.get(to).dispatch().await;
    assert_eq!(again.status(), rocket::http::Status::NotFound);
    let last = paydesk::store::audit::latest(&app.state.db, 1)
        .await
        .expect("latest");
    assert_eq!(last[0].action, "personal_data_access");
}

#[tokio::test]
async fn erasure_pages_need_a_second_person() {
    use paydesk::identity::permissions::Role;
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let mut a = payer(1, "zqpage", start_time());
    a.email = Some("page.payer@example.org".into());
    store_journeys(&app, parking, &[a]).await;
    let asker = app
        .person("asker@example.gov", Role::ServiceAdmin, Some("parking"))
        .await;
    let second = app
        .person("second@example.gov", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&asker).await;
    let token = app.token();
    let r = app
        .post_form(
            "/personal-data/erasure",
            &[("csrf_token", &token), ("email", "page.payer@example.org")],
        )
        .await;
    assert_eq!(
        r.status(),
        rocket::http::Status::UnprocessableEntity,
        "reason and case reference needed"
    );
    let r = app
        .post_form(
            "/personal-data/erasure",
            &[
                ("csrf_token", &token),
                ("email", "page.payer@example.org"),
                ("reason", "Payer asked"),
                ("case_reference", "DPA-9"),
            ],
        )
        .await;
    let html = app.follow(r).await;
    assert!(html.contains("You asked for this"), "{html}");
    // The asker alone is refused.
    let r = app
        .post_form(
            "/personal-data/erasure/1",
            &[("csrf_token", &token), ("decision", "approve")],
        )
        .await;
    let html = r.into_string().await.unwrap_or_default();
    assert!(html.contains("someone else must approve it"), "{html}");
    assert!(!scan(&app.state.db, "zqpagename1").await.is_empty());
    app.post_form("/logout", &[("csrf_token", &token)]).await;
    app.sign_in(&second).await;
    let token = app.token();
    let r = app
        .post_form(
            "/personal-data/erasure/1",
            &[("csrf_token", &token), ("decision", "approve")],
        )
        .await;
    let html = app.follow(r).await;
    assert!(html.contains("Erasure approved"), "{html}");
    assert!(scan(&app.state.db, "zqpagename1").await.is_empty());
}
