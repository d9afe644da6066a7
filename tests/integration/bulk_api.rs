//! Bulk refunds through the CRM API against a real sandbox platform: a file's dry run sends
//! nothing; submit goes on only for the file checked, with refused rows left out on request;
//! `Idempotency-Key` replays and refuses a different body; a batch above the threshold is
//! refused in plain words until a second person approves it; and another service's token
//! neither sees the batch nor refunds in the first service.

use paydesk::identity::permissions::Role;
use paydesk::integrations::api_tokens::{self, NewToken};
use paydesk::refunds::bulk::{self, BatchRefusal};
use rocket::http::{ContentType, Header};
use serde_json::{json, Value};

use crate::bulk::{csv_of, world, World};

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    location: Option<String>,
    replayed: bool,
    json: Value,
}

async fn send(
    w: &World,
    path: &str,
    token: &str,
    body: Option<(ContentType, String)>,
    key: Option<&str>,
) -> Answer {
    let mut request = match body {
        Some(_) => w.app.client.post(path.to_string()),
        None => w.app.client.get(path.to_string()),
    };
    request = request.header(Header::new("Authorization", format!("Bearer {token}")));
    if let Some(k) = key {
        request = request.header(Header::new("Idempotency-Key", k.to_string()));
    }
    if let Some((ct, b)) = body {
        request = request.header(ct).body(b);
    }
    let r = request.dispatch().await;
    let h = |name: &str| r.headers().get_one(name).map(str::to_string);
    let (status, content_type, location) = (
        r.status().code,
        h("Content-Type").unwrap_or_default(),
        h("Location"),
    );
    let replayed = h("Idempotent-Replayed").is_some();
    let text = r.into_string().await.unwrap_or_default();
    Answer {
        status,
        content_type,
        location,
        replayed,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

async fn post_file(w: &World, token: &str, csv: &str, key: Option<&str>) -> Answer {
    send(
        w,
        "/api/v1/refund-batches",
        token,
        Some((ContentType::CSV, csv.to_string())),
        key,
    )
    .await
}

async fn submit(w: &World, token: &str, id: i64, body: Value, key: Option<&str>) -> Answer {
    send(
        w,
        &format!("/api/v1/refund-batches/{id}/submit"),
        token,
        Some((ContentType::JSON, body.to_string())),
        key,
    )
    .await
}

fn problem(a: &Answer, status: u16) {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.content_type, "application/problem+json", "{a:?}");
    assert!(a.json["detail"].is_string(), "{a:?}");
}

async fn token(w: &World, service_id: i64, creator: i64, scopes: &[&str]) -> String {
    api_tokens::create(
        &w.app.state.db,
        w.app.state.clock.now(),
        paydesk::audit::Actor::System,
        creator,
        None,
        &NewToken {
            service_id,
            name: format!("CRM {scopes:?}"),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_in_days: None,
        },
    )
    .await
    .unwrap()
    .unwrap()
    .secret
}

#[tokio::test]
async fn a_crm_dry_runs_a_file_then_submits_it_once_for_the_file_it_checked() {
    let w = world(60, None).await;
    // The service admin (refunds:bulk and integrations:manage) makes the CRM's token.
    let crm = token(&w, w.service_id, w.approver.id, &["refunds:bulk"]).await;
    let reader = token(&w, w.service_id, w.approver.id, &["payments:read"]).await;
    let rows = w.refundable(w.service_id, 3).await;
    let mut file = csv_of(&rows, |_| "1.00".into());
    file.push_str("no-such-payment,1.00,duplicate,\r\n");
    let before = w.platform_refunds("account-1").await;

    problem(&post_file(&w, &reader, &file, None).await, 403);
    let as_json = send(
        &w,
        "/api/v1/refund-batches",
        &crm,
        Some((ContentType::JSON, json!({"csv": file}).to_string())),
        None,
    )
    .await;
    problem(&as_json, 415);
    let unreadable = post_file(&w, &crm, "payment_id,amount,reason\r\n", None).await;
    problem(&unreadable, 422);
    assert_eq!(unreadable.json["errors"][0]["field"], "file");
    assert!(unreadable.json["detail"]
        .as_str()
        .unwrap()
        .contains("no refunds"));

    // The dry run: kept, answered with every row's outcome, nothing sent.
    let dry = post_file(&w, &crm, &file, Some("file-1")).await;
    assert_eq!(dry.status, 201, "{dry:?}");
    let id = dry.json["batch_id"].as_i64().unwrap();
    assert_eq!(
        dry.location.as_deref(),
        Some(format!("/api/v1/refund-batches/{id}").as_str())
    );
    assert_eq!(dry.json["state"], "checked");
    assert_eq!(
        (dry.json["ready"].as_i64(), dry.json["refused"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(dry.json["total_amount"], 300);
    assert_eq!(dry.json["file_sha256"], bulk::hash_of(file.as_bytes()));
    let outcomes = dry.json["row_outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 4);
    assert_eq!(outcomes[3]["line"], 5);
    assert_eq!(outcomes[3]["outcome"], "refused");
    assert!(outcomes[3]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-payment"));
    assert_eq!(outcomes[0]["outcome"], "ready");
    // The same file and key again: the first answer. Another body with that key: refused.
    let again = post_file(&w, &crm, &file, Some("file-1")).await;
    assert_eq!((again.status, again.replayed), (201, true));
    assert_eq!(again.json["batch_id"], id);
    let other = post_file(
        &w,
        &crm,
        &csv_of(&rows[..1], |_| "2.00".into()),
        Some("file-1"),
    )
    .await;
    problem(&other, 422);
    w.run_jobs().await;
    assert_eq!(
        w.platform_refunds("account-1").await,
        before,
        "a dry run sends nothing"
    );

    // Submit: only for the file checked, and only with the refused rows left out.
    let hash = dry.json["file_sha256"].as_str().unwrap().to_string();
    let wrong = submit(&w, &crm, id, json!({"file_sha256": "0000"}), None).await;
    problem(&wrong, 409);
    assert!(wrong.json["type"]
        .as_str()
        .unwrap()
        .ends_with("#problem-batch-file-changed"));
    let refused = submit(&w, &crm, id, json!({"file_sha256": hash}), None).await;
    problem(&refused, 409);
    assert!(refused.json["detail"]
        .as_str()
        .unwrap()
        .contains("leave_out_refused"));
    w.run_jobs().await;
    assert_eq!(w.platform_refunds("account-1").await, before);
    let body = json!({"file_sha256": hash, "leave_out_refused": true});
    let sent = submit(&w, &crm, id, body.clone(), Some("submit-1")).await;
    assert_eq!(sent.status, 202, "{sent:?}");
    assert_eq!(sent.json["state"], "sending");
    let replay = submit(&w, &crm, id, body, Some("submit-1")).await;
    assert_eq!((replay.status, replay.replayed), (202, true));
    w.run_jobs().await;
    assert_eq!(
        w.platform_refunds("account-1").await - before,
        3,
        "exactly once"
    );
    let progress = send(
        &w,
        &format!("/api/v1/refund-batches/{id}"),
        &crm,
        None,
        None,
    )
    .await;
    assert_eq!(progress.status, 200, "{progress:?}");
    assert_eq!(progress.json["progress"]["requested"], 3);
    assert_eq!(progress.json["progress"]["waiting"], 0);
    let first = &progress.json["row_outcomes"][0];
    let refund = first["refund_id"].as_i64().unwrap();
    // The refund request names its batch in the API too.
    let both = token(
        &w,
        w.service_id,
        w.approver.id,
        &["refunds:bulk", "refunds:request"],
    )
    .await;
    let r = send(&w, &format!("/api/v1/refunds/{refund}"), &both, None, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["batch_id"], id);
    // Pages of rows.
    let page = send(
        &w,
        &format!("/api/v1/refund-batches/{id}?after=2&limit=2"),
        &crm,
        None,
        None,
    )
    .await;
    let lines: Vec<i64> = page.json["row_outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 4]);
    assert!(page.json["links"]["next_rows"].is_string());
    problem(
        &send(
            &w,
            &format!("/api/v1/refund-batches/{id}?limit=0"),
            &crm,
            None,
            None,
        )
        .await,
        422,
    );
}

#[tokio::test]
async fn another_services_token_neither_sees_the_batch_nor_refunds_here() {
    let w = world(40, None).await;
    let crm = token(&w, w.service_id, w.approver.id, &["refunds:bulk"]).await;
    let planner = w
        .app
        .person(
            "plan-admin@example.gov.uk",
            Role::ServiceAdmin,
            Some("planning"),
        )
        .await;
    let theirs = token(&w, w.other_service, planner.id, &["refunds:bulk"]).await;
    let rows = w.refundable(w.service_id, 2).await;
    let file = csv_of(&rows, |_| "1.00".into());
    let dry = post_file(&w, &crm, &file, None).await;
    assert_eq!(dry.status, 201, "{dry:?}");
    let id = dry.json["batch_id"].as_i64().unwrap();
    let hash = dry.json["file_sha256"].clone();
    problem(
        &send(
            &w,
            &format!("/api/v1/refund-batches/{id}"),
            &theirs,
            None,
            None,
        )
        .await,
        404,
    );
    problem(
        &submit(&w, &theirs, id, json!({"file_sha256": hash}), None).await,
        404,
    );
    // The same file sent by the other service's token: every row refused there.
    let elsewhere = post_file(&w, &theirs, &file, None).await;
    assert_eq!(elsewhere.status, 201, "{elsewhere:?}");
    assert_eq!(elsewhere.json["ready"], 0);
    assert!(elsewhere.json["row_outcomes"][0]["message"]
        .as_str()
        .unwrap()
        .contains("cannot make bulk refunds"));
    let other_id = elsewhere.json["batch_id"].as_i64().unwrap();
    let h = elsewhere.json["file_sha256"].clone();
    let nothing = submit(
        &w,
        &theirs,
        other_id,
        json!({"file_sha256": h, "leave_out_refused": true}),
        None,
    )
    .await;
    problem(&nothing, 409);
    let before = w.platform_refunds("account-1").await;
    w.run_jobs().await;
    assert_eq!(w.platform_refunds("account-1").await, before);
}

#[tokio::test]
async fn a_batch_needing_approval_is_refused_in_plain_words_until_someone_else_approves_it() {
    let w = world(40, Some(150)).await;
    // The token acts for the service admin; the finance person approves.
    let crm = token(&w, w.service_id, w.approver.id, &["refunds:bulk"]).await;
    let rows = w.refundable(w.service_id, 2).await;
    let dry = post_file(&w, &crm, &csv_of(&rows, |_| "1.00".into()), None).await;
    assert_eq!(dry.status, 201, "{dry:?}");
    assert_eq!(dry.json["needs_approval"], true);
    let id = dry.json["batch_id"].as_i64().unwrap();
    let hash = dry.json["file_sha256"].as_str().unwrap().to_string();
    let before = w.platform_refunds("account-1").await;
    for _ in 0..2 {
        let r = submit(&w, &crm, id, json!({"file_sha256": hash}), None).await;
        problem(&r, 409);
        assert!(r.json["type"]
            .as_str()
            .unwrap()
            .ends_with("#problem-batch-needs-approval"));
        let detail = r.json["detail"].as_str().unwrap();
        assert!(detail.contains("Nothing has been sent"), "{detail}");
        assert!(detail.contains("refunds:approve"), "{detail}");
    }
    assert_eq!(w.batch(id).await.state, "awaiting_approval");
    w.run_jobs().await;
    assert_eq!(w.platform_refunds("account-1").await, before);
    let db = &w.app.state.db;
    let now = w.app.state.clock.now();
    // The person the token acts for cannot approve it; someone else can.
    let maker = crate::bulk::staff(w.approver.id, &w.approver.email, "Ad Min");
    assert_eq!(
        bulk::approve(db, now, &maker, id, &hash).await.unwrap(),
        Err(BatchRefusal::OwnBatch)
    );
    bulk::approve(db, now, &w.finance, id, &hash)
        .await
        .unwrap()
        .unwrap();
    w.run_jobs().await;
    assert_eq!(w.platform_refunds("account-1").await - before, 2);
    let r = submit(&w, &crm, id, json!({"file_sha256": hash}), None).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["state"], "sent");
    assert!(r.json["approved_at"].is_string());
}
