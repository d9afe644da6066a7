//! Bulk refunds, continued: every kind of bad input the issue lists is named (per row where it
//! is a row's fault) and creates no refund request; a batch can be cancelled while nothing is
//! sent or while it is paused, and then sends no more; and the batch is named wherever its
//! refunds show (the requests list, the payment's page and timeline, outbound events, the
//! API's refund and exports).

use paydesk::refunds::bulk::{self, BatchRefusal};
use paydesk::store::refund_batches as batch_store;
use rocket::http::Status;
use serde_json::Value;

use crate::bulk::{csv_of, world, World};

async fn count(w: &World, sql: &str) -> i64 {
    paydesk::on_db!(&w.app.state.db, pool => sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool).await.unwrap())
}

async fn requests(w: &World) -> i64 {
    count(w, "SELECT COUNT(*) FROM refund_requests").await
}

async fn batches(w: &World) -> i64 {
    count(w, "SELECT COUNT(*) FROM refund_batches").await
}

async fn get(w: &World, path: String) -> (Status, String) {
    let r = w.app.client.get(path).dispatch().await;
    (r.status(), r.into_string().await.unwrap_or_default())
}

fn pounds(pence: i64) -> String {
    format!("{}.{:02}", pence / 100, pence % 100)
}

#[tokio::test]
async fn files_that_cannot_be_read_are_named_and_keep_nothing() {
    let w = world(30, None).await;
    let (before_requests, before_batches) = (requests(&w).await, batches(&w).await);
    let mut fifty = b"payment_id,amount,reason\n".to_vec();
    while fifty.len() < 50 * 1024 * 1024 {
        fifty.extend_from_slice(b"pay_0123456789abcdef,1.00,duplicate\n");
    }
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("an empty file", Vec::new(), "The selected file is empty"),
        (
            "only a header",
            b"\xEF\xBB\xBFpayment_id,amount,reason\r\n".to_vec(),
            "has a header row but no refunds",
        ),
        (
            "unknown columns",
            b"payment_id,amount,reason,colour\r\npay1,1.00,duplicate,red\r\n".to_vec(),
            "columns paydesk does not know: colour",
        ),
        (
            "a missing required column",
            b"payment_id,reason\r\npay1,duplicate\r\n".to_vec(),
            "must have the column amount",
        ),
        ("a 50 MB file", fifty, "smaller than 5 MB"),
        (
            "a binary file",
            vec![0x50, 0x4B, 0x03, 0x04, 0x14, 0x00, 0x06, 0x00, 0x08, 0x00],
            "saved as UTF-8 text",
        ),
    ];
    for (what, bytes, named) in cases {
        let got = bulk::upload(
            &w.app.state.db,
            w.app.state.clock.now(),
            &w.finance,
            Some(&w.scope()),
            "refunds.csv",
            &bytes,
        )
        .await
        .unwrap();
        let problem = got.expect_err(what);
        assert!(
            problem.message().contains(named),
            "{what}: {}",
            problem.message()
        );
    }
    assert_eq!(requests(&w).await, before_requests, "no refund request");
    assert_eq!(batches(&w).await, before_batches, "nothing kept");
}

#[tokio::test]
async fn each_bad_row_is_named_and_none_is_ever_sent() {
    let w = world(80, None).await;
    let mut ours = w.refundable(w.service_id, 40).await;
    ours.retain(|r| r.2 >= 200);
    assert!(ours.len() >= 4);
    let theirs = w.refundable(w.other_service, 1).await;
    let before = w.platform_refunds("account-1").await;
    let before_requests = requests(&w).await;
    // A byte order mark, CRLF line ends and quoted commas are read as a spreadsheet writes
    // them; every other row has one fault of the list.
    let rows = [
        format!("{},1.00,duplicate,\"sorry, twice\"", ours[0].0),
        format!("{},£5,duplicate,", ours[1].0),
        format!("{},5.001,duplicate,", ours[1].0),
        format!("{},-1,duplicate,", ours[1].0),
        format!("{},1e3,duplicate,", ours[1].0),
        format!("{},\"1,000.00\",duplicate,", ours[1].0),
        format!(
            "{},1.00,duplicate,\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
            ours[2].0
        ),
        format!("{},{},duplicate,", ours[3].0, pounds(ours[3].2)),
        format!("{},1.00,fraud,", ours[3].0),
        format!("{},1.00,duplicate,", theirs[0].0),
    ];
    let text = format!(
        "\u{FEFF}payment_id,amount,reason,comment\r\n{}\r\n",
        rows.join("\r\n")
    );
    let id = w.upload(&w.finance, &text).await;
    let b = w.batch(id).await;
    assert_eq!((b.ready_count, b.refused_count), (2, 8));
    assert_eq!(
        requests(&w).await,
        before_requests,
        "a dry run asks for nothing"
    );
    let refused = batch_store::refused_rows(&w.app.state.db, id, 20)
        .await
        .unwrap();
    let message = |line: i64| {
        refused
            .iter()
            .find(|r| r.line == line)
            .map(|r| r.message.clone())
            .unwrap_or_else(|| panic!("row {line} was not refused"))
    };
    assert!(message(3).contains("currency sign"), "{}", message(3));
    for line in 4..=7 {
        assert!(
            message(line).contains("cannot be read"),
            "row {line}: {}",
            message(line)
        );
    }
    assert!(message(8).contains("formula"), "{refused:#?}");
    assert!(
        message(10).contains("earlier rows of this file"),
        "{}",
        message(10)
    );
    assert!(
        message(11).contains("cannot make bulk refunds"),
        "{}",
        message(11)
    );
    // Nothing goes until the uploader leaves the refused rows out.
    let db = &w.app.state.db;
    let now = w.app.state.clock.now();
    let r = bulk::confirm(db, now, &w.finance, id, &b.file_hash, false)
        .await
        .unwrap();
    assert_eq!(r, Err(BatchRefusal::RefusedRows));
    w.run_jobs().await;
    assert_eq!(requests(&w).await, before_requests);
    bulk::confirm(db, now, &w.finance, id, &b.file_hash, true)
        .await
        .unwrap()
        .unwrap();
    w.run_jobs().await;
    assert_eq!(
        requests(&w).await - before_requests,
        2,
        "the ready rows only"
    );
    assert_eq!(w.platform_refunds("account-1").await - before, 2);
    let refused = batch_store::refused_rows(db, id, 20).await.unwrap();
    assert!(refused.iter().all(|r| r.request_id.is_none()));
    let csv = String::from_utf8(bulk::results_csv(db, id).await.unwrap()).unwrap();
    assert!(csv.contains("\"sorry, twice\""), "{csv}");
    assert!(
        csv.contains("'=HYPERLINK"),
        "the formula is neutralised: {csv}"
    );
}

#[tokio::test]
async fn a_batch_is_cancelled_before_sending_or_while_paused_and_sends_no_more() {
    let w = world(60, None).await;
    let rows = w.refundable(w.service_id, 6).await;
    let db = &w.app.state.db;
    let now = w.app.state.clock.now();
    let before = w.platform_refunds("account-1").await;
    // Checked, not yet sent: cancelled, it cannot go on.
    let first = w
        .upload(&w.finance, &csv_of(&rows[..2], |_| "1.00".into()))
        .await;
    let hash = w.batch(first).await.file_hash;
    assert_eq!(
        bulk::cancel(db, now, &w.finance, first).await.unwrap(),
        Ok(2)
    );
    let b = w.batch(first).await;
    assert_eq!(b.state, "cancelled");
    assert_eq!(b.cancelled_by, Some(w.finance.id));
    assert!(b.cancelled_at.is_some());
    let r = bulk::confirm(db, now, &w.finance, first, &hash, false)
        .await
        .unwrap();
    assert_eq!(r, Err(BatchRefusal::NotNow));
    // Sending: pause first; paused, cancelled; resuming is refused and nothing is sent.
    let second = w
        .upload(&w.finance, &csv_of(&rows[2..6], |_| "1.00".into()))
        .await;
    let hash = w.batch(second).await.file_hash;
    bulk::confirm(db, now, &w.finance, second, &hash, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bulk::cancel(db, now, &w.finance, second).await.unwrap(),
        Err(BatchRefusal::PauseFirst)
    );
    bulk::pause(db, now, &w.finance, second, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bulk::cancel(db, now, &w.finance, second).await.unwrap(),
        Ok(4)
    );
    assert_eq!(
        bulk::pause(db, now, &w.finance, second, true)
            .await
            .unwrap(),
        Err(BatchRefusal::NotNow)
    );
    w.run_jobs().await;
    assert_eq!(
        w.platform_refunds("account-1").await,
        before,
        "nothing sent"
    );
    let p = bulk::progress(db, second).await.unwrap();
    assert_eq!(
        (p.cancelled, p.requested, p.waiting, p.failed),
        (4, 0, 0, 0)
    );
    let csv = String::from_utf8(bulk::results_csv(db, second).await.unwrap()).unwrap();
    assert_eq!(
        csv.matches("Not sent: the batch was cancelled by Fin Ance")
            .count(),
        4
    );
    // Audited with the batch and its file's hash.
    let entries = paydesk::store::audit::latest(db, 200).await.unwrap();
    let cancelled: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "refund_batch_cancelled" && e.outcome == "success")
        .collect();
    assert_eq!(cancelled.len(), 2);
    let details = format!("{cancelled:?}");
    assert!(details.contains(&hash), "{details}");
    // A batch that has finished sending cannot be cancelled.
    let third = w
        .upload(&w.finance, &csv_of(&rows[..1], |_| "0.50".into()))
        .await;
    let hash = w.batch(third).await.file_hash;
    bulk::confirm(db, now, &w.finance, third, &hash, false)
        .await
        .unwrap()
        .unwrap();
    w.run_jobs().await;
    assert_eq!(w.batch(third).await.state, "sent");
    assert_eq!(
        bulk::cancel(db, now, &w.finance, third).await.unwrap(),
        Err(BatchRefusal::NotNow)
    );
}

#[tokio::test]
async fn the_batch_is_named_wherever_its_refunds_show() {
    let w = world(60, None).await;
    // An endpoint for refund events (never reached: only what is written is looked at).
    let mut tx = w.app.state.db.begin().await.unwrap();
    paydesk::store::events::insert_endpoint(
        &mut tx,
        &paydesk::store::events::NewEndpointRow {
            service_id: w.service_id,
            url: "https://crm.example.gov/events",
            description: "CRM",
            event_types: "refund.requested refund.succeeded",
            created_by: None,
        },
        0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let rows = w.refundable(w.service_id, 1).await;
    let id = w
        .upload(&w.finance, &csv_of(&rows, |_| "1.00".into()))
        .await;
    let hash = w.batch(id).await.file_hash;
    let db = &w.app.state.db;
    bulk::confirm(db, w.app.state.clock.now(), &w.finance, id, &hash, false)
        .await
        .unwrap()
        .unwrap();
    w.run_jobs().await;
    let request = batch_store::rows(db, id, 0, 10).await.unwrap()[0]
        .request_id
        .unwrap();
    // Outbound events carry batch_id.
    let payloads: Vec<String> = paydesk::on_db!(db, pool => sqlx::query_scalar::<_, String>(
        "SELECT payload FROM outbound_events WHERE event_type = 'refund.requested'")
        .fetch_all(pool).await.unwrap());
    assert_eq!(payloads.len(), 1);
    let event: Value = serde_json::from_str(&payloads[0]).unwrap();
    assert_eq!(event["data"]["batch_id"], id, "{event}");
    assert_eq!(event["data"]["refund_request_id"], request);
    // The requests list, the payment's page (its refund requests and its timeline).
    let fin = w
        .app
        .person(
            "names-fin@example.gov.uk",
            paydesk::identity::permissions::Role::Finance,
            Some("parking"),
        )
        .await;
    w.app.sign_in(&fin).await;
    let link = format!("href=\"/refunds/bulk/{id}\"");
    let (status, list) = get(&w, "/refunds/requests".into()).await;
    assert_eq!(status, Status::Ok);
    assert!(list.contains(&link), "the requests list names the batch");
    let (status, page) = get(&w, format!("/payments/{}?service=parking", rows[0].0)).await;
    assert_eq!(status, Status::Ok, "{page}");
    assert_eq!(
        page.matches(&link).count(),
        2,
        "the refund requests table and the timeline name the batch"
    );
}
